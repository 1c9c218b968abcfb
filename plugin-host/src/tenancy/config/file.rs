//! The operator's `config/plugins/<id>.toml`: read, parsed into JSON values
//! with their `line:column` positions. The only IO in `config`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;
use toml::Spanned;

use plugin_package::manifest::Position;

use super::error::ConfigError;

/// The operator's `config/plugins/<id>.toml`, parsed into JSON values with
/// positions.
pub(crate) struct ConfigFile {
    pub(super) path: PathBuf,
    pub(super) values: BTreeMap<String, (Position, toml::Value)>,
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
        match plugin_package::read::read_text(&path) {
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
                position: error.span().map(|s| Position::of_offset(text, s.start)),
                message: error.message().trim_end().to_owned(),
            })?;
        let values = raw
            .into_iter()
            .map(|(key, value)| {
                let position = Position::of_offset(text, value.span().start);
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
///
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
