//! The `[config.<key>]` schema a manifest declares, the type check every
//! configured value (TOML from a file, JSON from the admin API) goes through,
//! the environment variable that overrides a key, and the commented-out
//! `config/plugins/<id>.toml.example` a schema renders (shared by the host's
//! tenancy and xtask's install).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// The `[config.<key>]` tables of a manifest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigSchema {
    pub(super) keys: BTreeMap<String, ConfigKey>,
}

impl ConfigSchema {
    /// Keys in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ConfigKey)> + '_ {
        self.keys.iter().map(|(name, key)| (name.as_str(), key))
    }

    /// The declaration of `name`, if the schema has it.
    pub fn get(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.get(name)
    }

    /// Number of declared keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is declared.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// One declared configuration key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConfigKey {
    /// Type every value of the key must have.
    pub value_type: ConfigType,
    /// Whether the operator must set the key (then it has no default).
    pub required: bool,
    /// Value used when the operator does not set one; already type-checked.
    pub default: Option<toml::Value>,
    /// Secret values (tokens, passwords) that must never be logged or shown.
    pub sensitive: bool,
    /// Help text for operators; empty when absent.
    pub description: String,
    /// The smallest allowed value of an `integer` or `float` key (`min`).
    pub min: Option<f64>,
    /// The largest allowed value of an `integer` or `float` key (`max`).
    pub max: Option<f64>,
}

impl ConfigKey {
    /// Checks a TOML value (e.g. from the operator's config file) against the key's type.
    pub fn check_toml(&self, value: &toml::Value) -> Result<(), ConfigTypeMismatch> {
        self.value_type.check_toml(value)
    }

    /// Checks a JSON value (e.g. from the admin API) against the key's type.
    pub fn check_json(&self, value: &serde_json::Value) -> Result<(), ConfigTypeMismatch> {
        self.value_type.check_json(value)
    }
}

/// The `type` of a config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigType {
    /// A string.
    String,
    /// A 64-bit signed integer.
    Integer,
    /// A number; integers are accepted too, since `1` is a fine timeout in seconds.
    Float,
    /// `true` or `false`.
    Boolean,
    /// An array of any values.
    List,
}

impl ConfigType {
    /// The spelling used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigType::String => "string",
            ConfigType::Integer => "integer",
            ConfigType::Float => "float",
            ConfigType::Boolean => "boolean",
            ConfigType::List => "list",
        }
    }

    /// Whether a TOML value has this type.
    pub fn check_toml(self, value: &toml::Value) -> Result<(), ConfigTypeMismatch> {
        let ok = matches!(
            (self, value),
            (ConfigType::String, toml::Value::String(_))
                | (ConfigType::Integer, toml::Value::Integer(_))
                | (
                    ConfigType::Float,
                    toml::Value::Float(_) | toml::Value::Integer(_)
                )
                | (ConfigType::Boolean, toml::Value::Boolean(_))
                | (ConfigType::List, toml::Value::Array(_))
        );
        if ok {
            Ok(())
        } else {
            Err(ConfigTypeMismatch {
                expected: self,
                found: toml_type_name(value),
            })
        }
    }

    /// Whether a JSON value has this type.
    pub fn check_json(self, value: &serde_json::Value) -> Result<(), ConfigTypeMismatch> {
        use serde_json::Value as Json;
        let ok = match (self, value) {
            (ConfigType::String, Json::String(_)) => true,
            (ConfigType::Integer, Json::Number(n)) => n.is_i64(),
            (ConfigType::Float, Json::Number(_)) => true,
            (ConfigType::Boolean, Json::Bool(_)) => true,
            (ConfigType::List, Json::Array(_)) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(ConfigTypeMismatch {
                expected: self,
                found: json_type_name(value),
            })
        }
    }
}

impl fmt::Display for ConfigType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A config value whose type is not the declared one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}")]
#[non_exhaustive]
pub struct ConfigTypeMismatch {
    /// The declared type.
    pub expected: ConfigType,
    /// What the value was, in words ("a string", "a table").
    pub found: &'static str,
}

fn toml_type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

fn json_type_name(value: &serde_json::Value) -> &'static str {
    use serde_json::Value as Json;
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() => "an integer",
        Json::Number(n) if n.is_u64() => "an integer too large for 64 bits",
        Json::Number(_) => "a float",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
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

/// The text of `config/plugins/<id>.toml.example` for a plugin: every key
/// with its description, type, default and environment variable, all
/// commented out, so a copy of the file changes nothing until edited.
pub fn example_toml(manifest: &super::Manifest) -> String {
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
        serde_json::Value::String(name.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_types_check_toml_and_json_values() {
        use serde_json::json;
        let cases: &[(ConfigType, toml::Value, serde_json::Value, bool)] = &[
            (ConfigType::String, "x".into(), json!("x"), true),
            (ConfigType::String, 1.into(), json!(1), false),
            (ConfigType::Integer, 1.into(), json!(1), true),
            (ConfigType::Integer, 1.5.into(), json!(1.5), false),
            (ConfigType::Float, 1.5.into(), json!(1.5), true),
            (ConfigType::Float, 2.into(), json!(2), true),
            (ConfigType::Float, "2".into(), json!("2"), false),
            (ConfigType::Boolean, true.into(), json!(false), true),
            (ConfigType::Boolean, "true".into(), json!("true"), false),
            (ConfigType::List, vec![1].into(), json!([1]), true),
            (
                ConfigType::List,
                toml::Table::new().into(),
                json!({}),
                false,
            ),
        ];
        for (value_type, toml_value, json_value, accepted) in cases {
            assert_eq!(
                value_type.check_toml(toml_value).is_ok(),
                *accepted,
                "{value_type} vs {toml_value:?}"
            );
            assert_eq!(
                value_type.check_json(json_value).is_ok(),
                *accepted,
                "{value_type} vs {json_value}"
            );
        }
        assert_eq!(
            ConfigType::Integer
                .check_json(&json!(u64::MAX))
                .unwrap_err()
                .to_string(),
            "expected integer, found an integer too large for 64 bits"
        );
        assert_eq!(
            ConfigType::List
                .check_toml(&"a".into())
                .unwrap_err()
                .to_string(),
            "expected list, found a string"
        );
    }
}
