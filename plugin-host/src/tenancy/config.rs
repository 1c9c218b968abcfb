//! Layered plugin configuration for one tenant: manifest defaults <
//! `config/plugins/<id>.toml` < the tenant's overrides < `PLUGKIT_<ID>_<KEY>`
//! environment variables, checked against the manifest's `[config]` schema.
//!
//! Pure apart from [`ConfigFile::read`]. Secret references are recognised
//! here but resolved elsewhere (`secrets`), so nothing in this module ever
//! holds a resolved secret. Values themselves never appear in an error or in
//! `Debug` output: a misconfigured sensitive key must not leak through the
//! message that reports it.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use toml::Spanned;

use crate::manifest::{ConfigSchema, ConfigType, Manifest, Position};
use crate::tenancy::secrets::{Reference, SecretRef};

/// What a redacted view shows instead of a sensitive or secret value.
pub const REDACTED: &str = "<redacted>";

/// Where environment variables come from: the process, or a fixed set (tests,
/// or a daemon that snapshots its environment at start).
#[derive(Clone, Default)]
pub struct Environment {
    fixed: Option<Arc<BTreeMap<String, String>>>,
}

impl Environment {
    /// The process environment, read at each use.
    pub fn process() -> Self {
        Self { fixed: None }
    }

    /// A fixed set of variables; the process environment is not consulted.
    pub fn fixed<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            fixed: Some(Arc::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            )),
        }
    }

    /// The value of `name`, when it is set and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<String> {
        match &self.fixed {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: environment values are often credentials.
        match &self.fixed {
            None => f.write_str("Environment::process"),
            Some(vars) => f
                .debug_tuple("Environment::fixed")
                .field(&vars.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// The environment variable that overrides `key` of `plugin`:
/// `PLUGKIT_<ID>_<KEY>`, upper-cased, every other character than a letter or
/// digit turned into `_`.
pub fn env_var_name(plugin: &str, key: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("PLUGKIT_{}_{}", clean(plugin), clean(key))
}

/// One declared key, in a form the installed-plugin registry can store.
///
/// An adapter over [`crate::manifest::ConfigKey`]: the manifest's schema is
/// built only by its parser and is not serializable, and the registry must
/// describe a plugin without its manifest file at hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeySpec {
    #[serde(rename = "type", with = "config_type_serde")]
    pub(crate) value_type: ConfigType,
    #[serde(default)]
    pub(crate) required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default: Option<Value>,
    #[serde(default)]
    pub(crate) sensitive: bool,
}

/// A plugin's configuration schema with JSON defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Schema {
    pub(crate) keys: BTreeMap<String, KeySpec>,
}

mod config_type_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::manifest::ConfigType;

    pub(super) fn serialize<S: Serializer>(t: &ConfigType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ConfigType, D::Error> {
        ConfigType::deserialize(d)
    }
}

impl Schema {
    /// Converts a manifest's schema. Fails on a default JSON cannot carry
    /// (a non-finite float), naming the key.
    pub(crate) fn from_manifest(schema: &ConfigSchema) -> Result<Self, String> {
        let mut keys = BTreeMap::new();
        for (name, key) in schema.iter() {
            let default = match &key.default {
                None => None,
                Some(value) => Some(toml_to_json(value).ok_or_else(|| {
                    format!("the default of config key `{name}` cannot be represented in JSON")
                })?),
            };
            keys.insert(
                name.to_owned(),
                KeySpec {
                    value_type: key.value_type,
                    required: key.required,
                    default,
                    sensitive: key.sensitive,
                },
            );
        }
        Ok(Self { keys })
    }

    fn known(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSource {
    /// The manifest's `default`.
    Default,
    /// The operator's `config/plugins/<id>.toml`.
    File {
        /// The file.
        path: PathBuf,
        /// Where the value starts.
        position: Position,
    },
    /// The tenant's overrides (stored in the platform's state).
    TenantOverride,
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("the manifest default"),
            Self::File { path, position } => write!(f, "{}:{position}", path.display()),
            Self::TenantOverride => f.write_str("the tenant's overrides"),
            Self::Env { var } => write!(f, "environment variable `{var}`"),
        }
    }
}

/// One thing wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// The schema has no such key.
    UnknownKey {
        /// The key.
        key: String,
        /// Where it was set.
        source: ConfigSource,
        /// The keys the schema declares.
        known: Vec<String>,
    },
    /// The value has another type than the declared one.
    WrongType {
        /// The key.
        key: String,
        /// Where it was set.
        source: ConfigSource,
        /// The declared type.
        expected: ConfigType,
        /// What the value is, in words; the value itself is never shown.
        found: &'static str,
    },
    /// A required key is set nowhere.
    Missing {
        /// The key.
        key: String,
        /// The declared type.
        expected: ConfigType,
        /// The variable that would set it.
        env_var: String,
        /// The operator's file that would set it.
        file: PathBuf,
    },
    /// A sensitive key was given a literal value in the tenant's overrides,
    /// which are stored on disk.
    PlaintextSecret {
        /// The key.
        key: String,
    },
    /// A string looks like a secret reference but is not a valid one.
    BadReference {
        /// The key.
        key: String,
        /// Where it was set.
        source: ConfigSource,
        /// What is wrong (never the text itself).
        reason: String,
    },
}

fn type_example(t: ConfigType) -> &'static str {
    match t {
        ConfigType::String => "a quoted string such as \"text\"",
        ConfigType::Integer => "an integer such as 42",
        ConfigType::Float => "a number such as 1.5",
        ConfigType::Boolean => "true or false",
        ConfigType::List => "a list such as [\"a\", \"b\"]",
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey { key, source, known } => write!(
                f,
                "key `{key}` (set in {source}) is not in the plugin's [config] schema, which \
                 declares {}; remove it or fix its spelling",
                if known.is_empty() {
                    "no keys".to_owned()
                } else {
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            Self::WrongType {
                key,
                source,
                expected,
                found,
            } => write!(
                f,
                "key `{key}` (set in {source}) must be of type {expected}, found {found}; \
                 write {}",
                type_example(*expected)
            ),
            Self::Missing {
                key,
                expected,
                env_var,
                file,
            } => write!(
                f,
                "required key `{key}` ({expected}) is not set; set it in {}, in the tenant's \
                 overrides, or with the environment variable `{env_var}`",
                file.display()
            ),
            Self::PlaintextSecret { key } => write!(
                f,
                "key `{key}` is sensitive and the tenant's overrides are stored on disk, so it \
                 must be a secret reference such as \"${{vault:path#key}}\", \"${{env:VAR}}\" or \
                 \"${{file:/path}}\", never the value itself"
            ),
            Self::BadReference {
                key,
                source,
                reason,
            } => write!(
                f,
                "key `{key}` (set in {source}) is not a valid secret reference: {reason}; write \
                 \"${{env:VAR}}\", \"${{file:/path}}\" or \"${{vault:path#key}}\", or start a \
                 literal value with \"$${{\""
            ),
        }
    }
}

/// A configuration that cannot be read or does not fit the schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The operator's file exists but cannot be read.
    #[error(
        "tenant `{tenant}`: plugin `{plugin}`: cannot read {}: {source}; check that the host \
         may read it",
        path.display()
    )]
    Read {
        /// The plugin.
        plugin: String,
        /// The tenant whose configuration was being built.
        tenant: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The operator's file is not valid TOML.
    #[error(
        "tenant `{tenant}`: plugin `{plugin}`: {}{}: {message}; fix the file",
        path.display(),
        position.map(|p| format!(":{p}")).unwrap_or_default()
    )]
    Syntax {
        /// The plugin.
        plugin: String,
        /// The tenant whose configuration was being built.
        tenant: String,
        /// The file.
        path: PathBuf,
        /// Where the parser stopped, when it knows.
        position: Option<Position>,
        /// The parser's message (never the offending text).
        message: String,
    },
    /// The layers do not fit the schema; every problem is listed.
    #[error("{}", render_invalid(plugin, tenant, problems))]
    Invalid {
        /// The plugin.
        plugin: String,
        /// The tenant.
        tenant: String,
        /// Every problem, keys in order.
        problems: Vec<ConfigProblem>,
    },
}

fn render_invalid(plugin: &str, tenant: &str, problems: &[ConfigProblem]) -> String {
    let mut out = format!(
        "configuration of plugin `{plugin}` for tenant `{tenant}` has {} problem{}; fix {} and \
         retry:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        if problems.len() == 1 { "it" } else { "each" },
    );
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

/// The operator's `config/plugins/<id>.toml`, parsed into JSON values with
/// positions.
pub(crate) struct ConfigFile {
    path: PathBuf,
    values: BTreeMap<String, (Position, toml::Value)>,
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The operator's file for `plugin` under `config_dir`.
pub(crate) fn config_file_path(config_dir: &Path, plugin: &str) -> PathBuf {
    config_dir.join("plugins").join(format!("{plugin}.toml"))
}

impl ConfigFile {
    /// Reads `config_dir/plugins/<plugin>.toml`; `None` when it does not exist.
    pub(crate) fn read(
        config_dir: &Path,
        plugin: &str,
        tenant: &str,
    ) -> Result<Option<Self>, ConfigError> {
        let path = config_file_path(config_dir, plugin);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(plugin, tenant, &path, &text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ConfigError::Read {
                plugin: plugin.to_owned(),
                tenant: tenant.to_owned(),
                path,
                source,
            }),
        }
    }

    /// Parses `text`; `path` is used in messages.
    pub(crate) fn parse(
        plugin: &str,
        tenant: &str,
        path: &Path,
        text: &str,
    ) -> Result<Self, ConfigError> {
        let raw: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
            toml::from_str(text).map_err(|error| ConfigError::Syntax {
                plugin: plugin.to_owned(),
                tenant: tenant.to_owned(),
                path: path.to_owned(),
                position: error.span().map(|s| position_of(text, s.start)),
                message: error.message().trim_end().to_owned(),
            })?;
        let values = raw
            .into_iter()
            .map(|(key, value)| {
                let position = position_of(text, value.span().start);
                (key.into_inner(), (position, value.into_inner()))
            })
            .collect();
        Ok(Self {
            path: path.to_owned(),
            values,
        })
    }
}

/// The 1-based line and character column of byte `offset` in `text`.
fn position_of(text: &str, offset: usize) -> Position {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// TOML to JSON; `None` for a float JSON cannot carry.
pub(crate) fn toml_to_json(value: &toml::Value) -> Option<Value> {
    Some(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::Number(serde_json::Number::from_f64(*f)?),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(toml_to_json).collect::<Option<_>>()?)
        }
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Some((k.clone(), toml_to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

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

/// Runs the whole layering for one tenant on text inputs, as activation
/// does before it resolves secrets: `manifest`'s schema, the operator's
/// file `file_text`, the tenant's `overrides` and the environment `env`.
/// Returns what the operator would be shown: the redacted configuration and
/// its sources, or the error message. For `cargo xtask fuzz`, which feeds it
/// mutated inputs; not part of the API.
#[doc(hidden)]
pub fn layered_config_report(
    manifest: &Manifest,
    file_text: &str,
    overrides: &Map<String, Value>,
    env: &[(String, String)],
) -> Result<String, String> {
    let plugin = manifest.id.as_str();
    let tenant = "fuzz-tenant";
    let config_dir = Path::new("config");
    let schema = Schema::from_manifest(&manifest.config)?;
    let file = ConfigFile::parse(
        plugin,
        tenant,
        &config_file_path(config_dir, plugin),
        file_text,
    )
    .map_err(|e| e.to_string())?;
    let env = Environment::fixed(env.iter().cloned());
    let layered = layer(&Layers {
        plugin,
        tenant,
        schema: &schema,
        config_dir,
        file: Some(&file),
        overrides,
        env: &env,
    })
    .map_err(|e| e.to_string())?;
    Ok(format!(
        "{layered:?} {:?} {:?}",
        layered.redacted(),
        layered.sources()
    ))
}

/// The text of `config/plugins/<id>.toml.example` for a plugin: every key
/// with its description, type, default and environment variable, all
/// commented out, so a copy of the file changes nothing until edited.
pub fn example_toml(manifest: &Manifest) -> String {
    let id = &manifest.id;
    let mut out = format!(
        "# Configuration of plugin `{id}` {}, for every tenant.\n\
         # Copy this file to {id}.toml and uncomment what you change.\n\
         # Layers, later wins: manifest defaults < this file < per-tenant overrides\n\
         # < environment variables PLUGKIT_<ID>_<KEY>.\n\
         # A string value may be a secret reference, resolved at activation:\n\
         # \"${{env:VAR}}\", \"${{file:/path}}\" or \"${{vault:path#key}}\".\n",
        manifest.version
    );
    if manifest.config.is_empty() {
        out.push_str("\n# This plugin declares no configuration keys.\n");
    }
    for (name, key) in manifest.config.iter() {
        out.push('\n');
        for line in key.description.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str(&format!("# {}\n", line.trim()));
        }
        let mut facts = vec![key.value_type.as_str().to_owned()];
        if key.required {
            facts.push("required".to_owned());
        }
        if key.sensitive {
            facts.push("sensitive: use a secret reference".to_owned());
        }
        out.push_str(&format!(
            "# {} · env {}\n",
            facts.join(", "),
            env_var_name(id, name)
        ));
        let shown_name = toml_key(name);
        let value = match (&key.default, key.sensitive) {
            (_, true) => format!("\"${{vault:plugins/{id}#{name}}}\""),
            (Some(default), false) => default.to_string(),
            (None, false) => placeholder(key.value_type).to_owned(),
        };
        out.push_str(&format!("# {shown_name} = {value}\n"));
    }
    out
}

fn placeholder(t: ConfigType) -> &'static str {
    match t {
        ConfigType::String => "\"\"",
        ConfigType::Integer => "0",
        ConfigType::Float => "0.0",
        ConfigType::Boolean => "false",
        ConfigType::List => "[]",
    }
}

/// A key as TOML needs it: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MANIFEST: &str = r#"
id = "demo"
name = "Demo"
version = "1.2.0"
api = "^0.1"
library = "libdemo.so"

[config.token]
type = "string"
required = true
sensitive = true
description = "API token."

[config.greeting]
type = "string"
default = "hello"

[config.port]
type = "integer"
default = 80

[config.ratio]
type = "float"

[config.on]
type = "boolean"
default = true

[config.tags]
type = "list"
default = ["a"]
"#;

    fn manifest() -> Manifest {
        Manifest::parse(MANIFEST, Path::new("plugins/demo/plugin.toml")).unwrap()
    }

    fn schema() -> Schema {
        Schema::from_manifest(&manifest().config).unwrap()
    }

    /// Layers `file`, `overrides` and `env` for tenant `acme` and renders
    /// the outcome: the values (`key=value@source` lines, secrets redacted)
    /// or the error message.
    fn check(file: &str, overrides: Value, env: &[(&str, &str)], expected: &str) {
        let schema = schema();
        let config_dir = Path::new("config");
        let path = config_file_path(config_dir, "demo");
        let file = (!file.is_empty()).then(|| ConfigFile::parse("demo", "acme", &path, file));
        let file = match file.transpose() {
            Ok(f) => f,
            Err(e) => {
                assert_eq!(e.to_string(), expected);
                return;
            }
        };
        let Value::Object(overrides) = overrides else {
            panic!("overrides must be an object")
        };
        let env = Environment::fixed(env.iter().copied());
        let actual = match layer(&Layers {
            plugin: "demo",
            tenant: "acme",
            schema: &schema,
            config_dir,
            file: file.as_ref(),
            overrides: &overrides,
            env: &env,
        }) {
            Ok(layered) => {
                let shown = layered.redacted();
                let sources = layered.sources();
                shown
                    .iter()
                    .map(|(k, v)| format!("{k}={v}@{}", sources[k]))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Err(e) => e.to_string(),
        };
        assert_eq!(actual, expected);
    }

    const TOKEN: (&str, &str) = ("PLUGKIT_DEMO_TOKEN", "${env:DEMO_TOKEN}");

    #[test]
    fn later_layers_win() {
        check(
            "port = 8080\ngreeting = \"file\"\n",
            json!({ "greeting": "tenant" }),
            &[TOKEN, ("PLUGKIT_DEMO_PORT", "9090")],
            "greeting=\"tenant\"@the tenant's overrides\n\
             on=true@the manifest default\n\
             port=9090@environment variable `PLUGKIT_DEMO_PORT`\n\
             tags=[\"a\"]@the manifest default\n\
             token=\"<redacted>\"@environment variable `PLUGKIT_DEMO_TOKEN` via ${env:DEMO_TOKEN}",
        );
        check(
            "port = 8080\ntoken = \"${vault:demo#token}\"\nratio = 1\n",
            json!({}),
            &[],
            "greeting=\"hello\"@the manifest default\n\
             on=true@the manifest default\n\
             port=8080@config/plugins/demo.toml:1:8\n\
             ratio=1@config/plugins/demo.toml:3:9\n\
             tags=[\"a\"]@the manifest default\n\
             token=\"<redacted>\"@config/plugins/demo.toml:2:9 via ${vault:demo#token}",
        );
    }

    #[test]
    fn environment_values_are_parsed_as_the_declared_type() {
        check(
            "",
            json!({ "token": "${file:/run/token}" }),
            &[
                ("PLUGKIT_DEMO_RATIO", "2.5"),
                ("PLUGKIT_DEMO_ON", "false"),
                ("PLUGKIT_DEMO_TAGS", "[\"x\", 1]"),
                ("PLUGKIT_DEMO_GREETING", "$${not a ref}"),
            ],
            "greeting=\"${not a ref}\"@environment variable `PLUGKIT_DEMO_GREETING`\n\
             on=false@environment variable `PLUGKIT_DEMO_ON`\n\
             port=80@the manifest default\n\
             ratio=2.5@environment variable `PLUGKIT_DEMO_RATIO`\n\
             tags=[\"x\",1]@environment variable `PLUGKIT_DEMO_TAGS`\n\
             token=\"<redacted>\"@the tenant's overrides via ${file:/run/token}",
        );
    }

    #[test]
    fn every_problem_names_key_tenant_source_and_expected_type() {
        check(
            "port = \"eighty\"\ncolour = \"red\"\n",
            json!({ "ratio": "high", "token": "hunter2", "greting": "hi" }),
            &[("PLUGKIT_DEMO_ON", "yes")],
            "configuration of plugin `demo` for tenant `acme` has 6 problems; fix each and retry:\n  \
             key `colour` (set in config/plugins/demo.toml:2:10) is not in the plugin's [config] \
             schema, which declares `greeting`, `on`, `port`, `ratio`, `tags`, `token`; remove it \
             or fix its spelling\n  \
             key `port` (set in config/plugins/demo.toml:1:8) must be of type integer, found a \
             string; write an integer such as 42\n  \
             key `greting` (set in the tenant's overrides) is not in the plugin's [config] \
             schema, which declares `greeting`, `on`, `port`, `ratio`, `tags`, `token`; remove it \
             or fix its spelling\n  \
             key `ratio` (set in the tenant's overrides) must be of type float, found a string; \
             write a number such as 1.5\n  \
             key `token` is sensitive and the tenant's overrides are stored on disk, so it must \
             be a secret reference such as \"${vault:path#key}\", \"${env:VAR}\" or \
             \"${file:/path}\", never the value itself\n  \
             key `on` (set in environment variable `PLUGKIT_DEMO_ON`) must be of type boolean, \
             found text that does not parse as one; write true or false",
        );
    }

    #[test]
    fn missing_required_keys_say_where_to_set_them() {
        check(
            "",
            json!({}),
            &[],
            "configuration of plugin `demo` for tenant `acme` has 1 problem; fix it and retry:\n  \
             required key `token` (string) is not set; set it in config/plugins/demo.toml, in the \
             tenant's overrides, or with the environment variable `PLUGKIT_DEMO_TOKEN`",
        );
    }

    #[test]
    fn malformed_references_are_reported_without_their_text() {
        check(
            "",
            json!({ "token": "${vault:no-key}", "greeting": "${nope:x}" }),
            &[],
            "configuration of plugin `demo` for tenant `acme` has 2 problems; fix each and retry:\n  \
             key `greeting` (set in the tenant's overrides) is not a valid secret reference: \
             unknown scheme `nope`; write \"${env:VAR}\", \"${file:/path}\" or \
             \"${vault:path#key}\", or start a literal value with \"$${\"\n  \
             key `token` (set in the tenant's overrides) is not a valid secret reference: a vault \
             reference needs `#key` after the path; write \"${env:VAR}\", \"${file:/path}\" or \
             \"${vault:path#key}\", or start a literal value with \"$${\"",
        );
    }

    #[test]
    fn file_syntax_errors_have_path_and_position_but_not_the_text() {
        check(
            "port = 80\ntoken = \"s3cr3t\n",
            json!({}),
            &[],
            "tenant `acme`: plugin `demo`: config/plugins/demo.toml:2:16: invalid basic string, expected `\"`; \
             fix the file",
        );
    }

    #[test]
    fn secret_values_never_reach_errors_or_debug() {
        let secret = "hunter2-canary";
        let schema = schema();
        let overrides = json!({ "token": secret, "port": secret });
        let Value::Object(overrides) = overrides else {
            unreachable!()
        };
        let env = Environment::fixed([("PLUGKIT_DEMO_ON", secret), ("X", secret)]);
        let err = layer(&Layers {
            plugin: "demo",
            tenant: "acme",
            schema: &schema,
            config_dir: Path::new("config"),
            file: None,
            overrides: &overrides,
            env: &env,
        })
        .unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
        assert!(!format!("{env:?}").contains(secret), "{env:?}");
        let file = ConfigFile::parse(
            "demo",
            "acme",
            Path::new("f.toml"),
            "token = \"hunter2-canary\"",
        )
        .unwrap();
        assert!(!format!("{file:?}").contains(secret));
    }

    #[test]
    fn env_var_names_are_upper_case_with_underscores() {
        let cases = [
            ("tenant-echo", "api_key", "PLUGKIT_TENANT_ECHO_API_KEY"),
            ("sms", "from.number", "PLUGKIT_SMS_FROM_NUMBER"),
            ("a2", "b-c", "PLUGKIT_A2_B_C"),
        ];
        for (plugin, key, expected) in cases {
            assert_eq!(env_var_name(plugin, key), expected);
        }
    }

    #[test]
    fn text_values_parse_as_their_type() {
        let cases: &[(&str, ConfigType, Option<Value>)] = &[
            ("x", ConfigType::String, Some(json!("x"))),
            (" 42 ", ConfigType::Integer, Some(json!(42))),
            ("4.2", ConfigType::Integer, None),
            ("4.2", ConfigType::Float, Some(json!(4.2))),
            ("NaN", ConfigType::Float, None),
            ("true", ConfigType::Boolean, Some(json!(true))),
            ("1", ConfigType::Boolean, None),
            ("[1, \"a\"]", ConfigType::List, Some(json!([1, "a"]))),
            ("a,b", ConfigType::List, None),
        ];
        for (raw, t, expected) in cases {
            assert_eq!(&parse_typed(raw, *t), expected, "{raw:?} as {t}");
        }
    }

    #[test]
    fn example_is_valid_toml_that_changes_nothing_until_edited() {
        let example = example_toml(&manifest());
        let parsed = ConfigFile::parse("demo", "acme", Path::new("x"), &example).unwrap();
        assert!(parsed.values.is_empty(), "{example}");
        assert!(example.contains("# API token.\n# string, required, sensitive: use a secret reference · env PLUGKIT_DEMO_TOKEN\n# token = \"${vault:plugins/demo#token}\"\n"), "{example}");
        assert!(example.contains("# port = 80\n"), "{example}");
        assert!(example.contains("# ratio = 0.0\n"), "{example}");
        // Uncommenting every line gives a file the schema accepts.
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        check(
            &uncommented,
            json!({}),
            &[],
            "greeting=\"hello\"@config/plugins/demo.toml:1:12\n\
             on=true@config/plugins/demo.toml:2:6\n\
             port=80@config/plugins/demo.toml:3:8\n\
             ratio=0.0@config/plugins/demo.toml:4:9\n\
             tags=[\"a\"]@config/plugins/demo.toml:5:8\n\
             token=\"<redacted>\"@config/plugins/demo.toml:6:9 via ${vault:plugins/demo#token}",
        );
    }
}
