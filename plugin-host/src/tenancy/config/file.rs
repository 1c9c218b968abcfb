//! The operator's `config/plugins/<id>.toml`: read, parsed into JSON values
//! with their `line:column` positions. The only IO in `config`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;
use toml::Spanned;

use crate::manifest::Position;

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
        match crate::text_file::read_text(&path) {
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
///
/// The same computation as `manifest::Position::of_offset`, which is private
/// to `manifest` (a file this branch may not edit); once manifest lives in
/// the shared pure crate with `of_offset` public, call it and delete this.
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
