//! A plugin's configuration schema in the storable form the installed-plugin
//! registry keeps, with JSON defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use plugin_package::manifest::{ConfigSchema, ConfigType};

use super::file::toml_to_json;

/// One declared key, in a form the installed-plugin registry can store.
///
/// An adapter over [`plugin_package::manifest::ConfigKey`]: the manifest's schema is
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
    /// The manifest's `min`, for integer and float keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) min: Option<f64>,
    /// The manifest's `max`, for integer and float keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max: Option<f64>,
}

/// A plugin's configuration schema with JSON defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Schema {
    pub(crate) keys: BTreeMap<String, KeySpec>,
}

mod config_type_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use plugin_package::manifest::ConfigType;

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
                    min: key.min,
                    max: key.max,
                },
            );
        }
        Ok(Self { keys })
    }

    pub(super) fn known(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }
}
