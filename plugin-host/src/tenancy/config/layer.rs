//! Layering defaults < operator file < tenant overrides < environment, each
//! candidate checked against the schema; every problem reported at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::tenancy::secrets::{Reference, SecretRef};
use plugin_package::manifest::{env_var_name, ConfigType};

use super::environment::Environment;
use super::error::{ConfigError, ConfigProblem, ConfigSource, REDACTED};
use super::file::{config_file_path, toml_to_json, ConfigFile};
use super::schema::{KeySpec, Schema};

/// Parses a value given as text (an environment variable, a resolved
/// secret) as `value_type`; `None` when it is not one.
pub(crate) fn parse_typed(raw: &str, value_type: ConfigType) -> Option<Value> {
    match value_type {
        ConfigType::String => Some(Value::String(raw.to_owned())),
        ConfigType::Integer => raw.trim().parse::<i64>().ok().map(Value::from),
        ConfigType::Float => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        ConfigType::Boolean => match raw.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ConfigType::List => serde_json::from_str::<Vec<Value>>(raw)
            .ok()
            .map(Value::Array),
    }
}

/// One key's winning value and where it came from.
#[derive(Clone)]
pub(crate) struct Entry {
    /// The value; for a reference, the reference text.
    pub(crate) value: Value,
    pub(crate) source: ConfigSource,
    /// Set when the value is a secret reference to resolve at activation.
    pub(crate) reference: Option<SecretRef>,
    pub(crate) value_type: ConfigType,
    pub(crate) sensitive: bool,
}

/// A tenant's configuration of one plugin, layered and checked, references
/// still unresolved.
#[derive(Clone, Default)]
pub(crate) struct Layered {
    pub(crate) entries: BTreeMap<String, Entry>,
}

impl fmt::Debug for Layered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sources only: literal values from the file or the environment may be secrets.
        f.debug_map()
            .entries(self.entries.iter().map(|(k, e)| (k, e.source.to_string())))
            .finish()
    }
}

impl Layered {
    /// The configuration for display: sensitive keys and every value that
    /// comes from a secret reference are replaced by [`REDACTED`].
    pub(crate) fn redacted(&self) -> Map<String, Value> {
        self.entries
            .iter()
            .map(|(key, entry)| {
                let shown = if entry.sensitive || entry.reference.is_some() {
                    Value::String(REDACTED.to_owned())
                } else {
                    entry.value.clone()
                };
                (key.clone(), shown)
            })
            .collect()
    }

    /// Where each value came from, for display.
    pub(crate) fn sources(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(key, entry)| {
                let source = match &entry.reference {
                    Some(r) => format!("{} via {r}", entry.source),
                    None => entry.source.to_string(),
                };
                (key.clone(), source)
            })
            .collect()
    }
}

/// Everything one resolution needs.
pub(crate) struct Layers<'a> {
    pub(crate) plugin: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) schema: &'a Schema,
    pub(crate) config_dir: &'a Path,
    pub(crate) file: Option<&'a ConfigFile>,
    pub(crate) overrides: &'a Map<String, Value>,
    pub(crate) env: &'a Environment,
}

/// Checks one candidate value; the problems it has are pushed to `problems`.
fn candidate(
    key: &str,
    spec: &KeySpec,
    value: Value,
    source: ConfigSource,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Entry> {
    let mut value = value;
    let mut reference = None;
    if let Value::String(text) = &value {
        match SecretRef::classify(text) {
            Reference::Literal => {}
            Reference::Escaped(literal) => value = Value::String(literal),
            Reference::Secret(r) => reference = Some(r),
            Reference::Malformed(reason) => {
                problems.push(ConfigProblem::BadReference {
                    key: key.to_owned(),
                    source,
                    reason,
                });
                return None;
            }
        }
    }
    // A reference stands for a value of any type; it is checked once resolved.
    if reference.is_none() {
        if let Err(mismatch) = spec.value_type.check_json(&value) {
            problems.push(ConfigProblem::WrongType {
                key: key.to_owned(),
                source,
                expected: spec.value_type,
                found: mismatch.found,
            });
            return None;
        }
        if let Some(number) = value.as_f64() {
            let below = spec.min.is_some_and(|min| number < min);
            let above = spec.max.is_some_and(|max| number > max);
            if below || above {
                problems.push(ConfigProblem::OutOfRange {
                    key: key.to_owned(),
                    source,
                    allowed: match (spec.min, spec.max) {
                        (Some(min), Some(max)) => format!("between {min} and {max}"),
                        (Some(min), None) => format!("at least {min}"),
                        (None, Some(max)) => format!("at most {max}"),
                        (None, None) => "a number".to_owned(),
                    },
                });
                return None;
            }
        }
    }
    Some(Entry {
        value,
        source,
        reference,
        value_type: spec.value_type,
        sensitive: spec.sensitive,
    })
}

/// Layers defaults, the operator's file, the tenant's overrides and the
/// environment, and checks the result against the schema. Reports every
/// problem at once.
pub(crate) fn layer(layers: &Layers<'_>) -> Result<Layered, ConfigError> {
    let schema = layers.schema;
    let mut problems = Vec::new();
    let mut out = Layered::default();
    let mut set = |key: &str, entry: Option<Entry>| {
        if let Some(entry) = entry {
            out.entries.insert(key.to_owned(), entry);
        }
    };

    for (key, spec) in &schema.keys {
        if let Some(default) = &spec.default {
            let entry = candidate(
                key,
                spec,
                default.clone(),
                ConfigSource::Default,
                &mut problems,
            );
            set(key, entry);
        }
    }

    if let Some(file) = layers.file {
        for (key, (position, value)) in &file.values {
            let source = ConfigSource::File {
                path: file.path.clone(),
                position: *position,
            };
            let Some(spec) = schema.keys.get(key) else {
                problems.push(ConfigProblem::UnknownKey {
                    key: key.clone(),
                    source,
                    known: schema.known(),
                });
                continue;
            };
            let Some(json) = toml_to_json(value) else {
                problems.push(ConfigProblem::WrongType {
                    key: key.clone(),
                    source,
                    expected: spec.value_type,
                    found: "a float JSON cannot carry (nan or inf)",
                });
                continue;
            };
            let entry = candidate(key, spec, json, source, &mut problems);
            set(key, entry);
        }
    }

    // Sorted here: serde_json's map keeps insertion order when another crate
    // turns on `preserve_order`, and problems must come in a stable order.
    let overrides: BTreeMap<&String, &Value> = layers.overrides.iter().collect();
    for (key, value) in overrides {
        let source = ConfigSource::TenantOverride;
        let Some(spec) = schema.keys.get(key) else {
            problems.push(ConfigProblem::UnknownKey {
                key: key.clone(),
                source,
                known: schema.known(),
            });
            continue;
        };
        let entry = candidate(key, spec, value.clone(), source, &mut problems);
        if let Some(e) = &entry {
            if spec.sensitive && e.reference.is_none() {
                problems.push(ConfigProblem::PlaintextSecret { key: key.clone() });
                continue;
            }
        }
        set(key, entry);
    }

    // Unknown `PLUGKIT_<ID>_*` variables are not reported: the prefixes of two
    // plugins can overlap (`sms` and `sms-gateway`), so a stray variable
    // cannot be attributed to one plugin.
    for (key, spec) in &schema.keys {
        let var = env_var_name(layers.plugin, key);
        let Some(raw) = layers.env.var(&var) else {
            continue;
        };
        let source = ConfigSource::Env { var };
        let value = match SecretRef::classify(&raw) {
            Reference::Secret(_) | Reference::Malformed(_) | Reference::Escaped(_) => {
                Some(Value::String(raw))
            }
            Reference::Literal => parse_typed(&raw, spec.value_type),
        };
        match value {
            Some(value) => {
                let entry = candidate(key, spec, value, source, &mut problems);
                set(key, entry);
            }
            None => problems.push(ConfigProblem::WrongType {
                key: key.clone(),
                source,
                expected: spec.value_type,
                found: "text that does not parse as one",
            }),
        }
    }

    for (key, spec) in &schema.keys {
        let already_reported = problems.iter().any(|p| match p {
            ConfigProblem::WrongType { key: k, .. }
            | ConfigProblem::BadReference { key: k, .. }
            | ConfigProblem::PlaintextSecret { key: k } => k == key,
            _ => false,
        });
        if spec.required && !out.entries.contains_key(key) && !already_reported {
            problems.push(ConfigProblem::Missing {
                key: key.clone(),
                expected: spec.value_type,
                env_var: env_var_name(layers.plugin, key),
                file: config_file_path(layers.config_dir, layers.plugin),
            });
        }
    }

    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError::Invalid {
            plugin: layers.plugin.to_owned(),
            tenant: layers.tenant.to_owned(),
            problems,
        })
    }
}
