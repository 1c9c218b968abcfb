//! The serde form of `plugin.toml` and the deserializers that word each
//! malformed value (`deny_unknown_fields`, so a typo is an error), raising
//! every error where toml can attach the value's position.

use std::collections::BTreeMap;
use std::fmt;

use semver::{Version, VersionReq};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::{Category, ConfigType, Dependency, HookKind, Isolation, Permission};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    pub(super) id: Spanned<String>,
    pub(super) name: String,
    #[serde(deserialize_with = "de_version")]
    pub(super) version: Version,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) authors: Vec<String>,
    #[serde(default)]
    pub(super) license: Option<String>,
    #[serde(default)]
    pub(super) category: Category,
    #[serde(deserialize_with = "de_version_req")]
    pub(super) api: VersionReq,
    pub(super) library: Spanned<String>,
    #[serde(default)]
    pub(super) dependencies: BTreeMap<Spanned<String>, Dependency>,
    #[serde(default)]
    pub(super) conflicts: BTreeMap<Spanned<String>, Req>,
    #[serde(default)]
    pub(super) provides: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) requires: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) permissions: Vec<PermissionName>,
    #[serde(default)]
    pub(super) hooks: Vec<RawHook>,
    #[serde(default)]
    pub(super) config: BTreeMap<Spanned<String>, RawConfigKey>,
    #[serde(default = "default_tier")]
    pub(super) required_tier: String,
    #[serde(default)]
    pub(super) isolation: Option<Isolation>,
}

pub(super) fn default_tier() -> String {
    "free".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) priority: i32,
    #[serde(default = "default_hook_kind", deserialize_with = "de_hook_kind")]
    pub(super) kind: HookKind,
    #[serde(default)]
    pub(super) before: Vec<String>,
    #[serde(default)]
    pub(super) after: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfigKey {
    #[serde(rename = "type")]
    pub(super) value_type: ConfigType,
    #[serde(default)]
    pub(super) required: bool,
    #[serde(default)]
    pub(super) default: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) sensitive: bool,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) min: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) max: Option<Spanned<f64>>,
}

/// Deserializes a string through `parse`. The error is raised inside the
/// deserializer's call, which is where toml attaches the value's position;
/// an error raised after `String::deserialize` returns would point at the
/// enclosing table or list instead.
fn de_str_with<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct StrVisitor<F> {
        expecting: &'static str,
        parse: F,
    }

    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for StrVisitor<F> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            (self.parse)(text).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(StrVisitor { expecting, parse })
}

fn default_hook_kind() -> HookKind {
    HookKind::Event
}

fn de_hook_kind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HookKind, D::Error> {
    de_str_with(deserializer, "`filter` or `event`", |word| match word {
        "filter" => Ok(HookKind::Filter),
        "event" => Ok(HookKind::Event),
        _ => Err(format!(
            "unknown hook kind `{word}`, expected `filter` or `event`"
        )),
    })
}

/// One `permissions` entry; a type of its own so an error points at the entry, not the list.
pub(super) struct PermissionName(pub(super) Permission);

impl<'de> Deserialize<'de> for PermissionName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de_str_with(
            deserializer,
            "a permission such as `network:outbound`",
            |name| {
                Permission::parse(name).map(PermissionName).ok_or_else(|| {
                    let known: Vec<String> = Permission::ALL
                        .iter()
                        .map(|(_, known)| format!("`{known}`"))
                        .collect();
                    format!(
                        "unknown permission `{name}`, expected one of {}",
                        known.join(", ")
                    )
                })
            },
        )
    }
}

/// A version requirement in a position where serde needs a type, not a function.
pub(super) struct Req(pub(super) VersionReq);

impl<'de> Deserialize<'de> for Req {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de_version_req(deserializer).map(Req)
    }
}

fn de_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Version, D::Error> {
    de_str_with(
        deserializer,
        "a semantic version such as \"1.2.3\"",
        |text| {
            Version::parse(text).map_err(|error| {
            format!("invalid version `{text}`: {error}; expected a semantic version such as \"1.2.3\"")
        })
        },
    )
}

fn de_version_req<'de, D: Deserializer<'de>>(deserializer: D) -> Result<VersionReq, D::Error> {
    de_str_with(
        deserializer,
        "a version requirement such as \"^1.2\"",
        parse_version_req,
    )
}

fn parse_version_req(text: &str) -> Result<VersionReq, String> {
    VersionReq::parse(text).map_err(|error| {
        format!(
            "invalid version requirement `{text}`: {error}; expected a range such as \"^1.2\", \">=1.0, <2\" or \"*\""
        )
    })
}

impl<'de> Deserialize<'de> for Dependency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DependencyVisitor;

        impl<'de> Visitor<'de> for DependencyVisitor {
            type Value = Dependency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a version requirement such as \"^1.2\" or a table such as \
                     { version = \"^1.2\", optional = true }",
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Dependency, E> {
                let version = parse_version_req(text).map_err(E::custom)?;
                Ok(Dependency::new(version, false))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dependency, A::Error> {
                const FIELDS: &[&str] = &["version", "optional"];
                let mut version = None;
                let mut optional = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "version" if version.is_none() => {
                            version = Some(map.next_value::<Req>()?.0);
                        }
                        "optional" if optional.is_none() => {
                            optional = Some(map.next_value::<bool>()?);
                        }
                        "version" | "optional" => {
                            return Err(de::Error::custom(format!("duplicate field `{key}`")));
                        }
                        _ => return Err(de::Error::unknown_field(&key, FIELDS)),
                    }
                }
                let version = version.ok_or_else(|| de::Error::missing_field("version"))?;
                Ok(Dependency::new(version, optional.unwrap_or(false)))
            }
        }

        deserializer.deserialize_any(DependencyVisitor)
    }
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de_str_with(deserializer, "a category word", |word| {
            Category::from_word(word).ok_or_else(|| {
                let known: Vec<String> = plugin_api::KNOWN_CATEGORIES
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect();
                format!(
                    "unknown category `{word}`, this host knows {} (a new category needs a \
                     host built with a plugin-api that declares it)",
                    known.join(", ")
                )
            })
        })
    }
}
