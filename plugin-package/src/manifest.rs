//! `plugin.toml`: the manifest every installed plugin ships, parsed and validated without IO.
//!
//! Parsing happens in two steps. serde + toml turn the text into raw structs
//! (`deny_unknown_fields`, so a typo is an error, not a silently ignored key);
//! then [`Manifest::parse`] checks the rules a schema cannot express and
//! collects *all* of them, so an author fixes a manifest in one round trip.
//! Every error carries the file and a `line:column`.
//!
//! Form of the fields that have more than one reasonable spelling:
//! - `[dependencies]`: `other = "^1.2"` or `other = { version = "^1.2", optional = true }`.
//! - `[config.<key>]`: `type`, `required`, `default`, `sensitive`,
//!   `description`, and for `integer`/`float` keys `min` and `max`
//!   (inclusive; a value outside is refused when a tenant's configuration is
//!   built).
//! - `[conflicts]`: a table from plugin id to the version range it conflicts
//!   with, `legacy-sms = "*"` for every version. The table (rather than a
//!   list of ids) mirrors `[dependencies]` and lets a plugin conflict only
//!   with old releases of another (`legacy-sms = "<2"`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// The file name the host looks for in each plugin folder.
/// The manifest's file name in a plugin folder.
pub const MANIFEST_FILE_NAME: &str = "plugin.toml";

/// A parsed and validated `plugin.toml`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// The file this manifest was read from (used in every message about it).
    pub path: PathBuf,
    /// Unique plugin id, `^[a-z][a-z0-9-]{1,63}$`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The plugin's own version.
    pub version: Version,
    /// One-paragraph description; empty when absent.
    pub description: String,
    /// Authors, as written.
    pub authors: Vec<String>,
    /// SPDX licence expression, if given.
    pub license: Option<String>,
    /// What kind of plugin this is; `custom` when absent.
    pub category: Category,
    /// The `plugin-api` versions this plugin was built for.
    pub api: VersionReq,
    /// File name of the shared library, relative to the manifest's folder.
    pub library: String,
    /// Other plugins this one needs, by id.
    pub dependencies: BTreeMap<String, Dependency>,
    /// Plugins (and versions of them) this one cannot run alongside, by id.
    pub conflicts: BTreeMap<String, VersionReq>,
    /// Services this plugin offers to others, e.g. `sms`.
    pub provides: Vec<String>,
    /// Services some other installed plugin must provide, e.g. `payment`.
    pub requires: Vec<String>,
    /// Host capabilities the plugin needs.
    pub permissions: BTreeSet<Permission>,
    /// Hooks the plugin registers, in manifest order.
    pub hooks: Vec<Hook>,
    /// Schema of the plugin's configuration.
    pub config: ConfigSchema,
    /// Licence tier needed to run the plugin; `free` when absent.
    pub required_tier: String,
    /// The least isolation the author accepts (`isolation = "process"`);
    /// the operator may raise it, never lower it.
    pub isolation: Option<Isolation>,
}

/// One entry of `[dependencies]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dependency {
    /// Versions of the dependency that are acceptable.
    pub version: VersionReq,
    /// An optional dependency is used when installed and ignored when absent.
    pub optional: bool,
}

impl Dependency {
    /// A dependency on `version`, optional or not.
    pub fn new(version: VersionReq, optional: bool) -> Self {
        Self { version, optional }
    }
}

/// Filters may change or veto a payload; events only observe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Runs in order; may pass, replace or veto.
    Filter,
    /// Every subscriber is called; failures are isolated.
    Event,
}

/// Where a plugin's code runs.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In the host process: nanoseconds per call, no protection.
    #[default]
    InProcess,
    /// In one sandboxed child process for all tenants.
    Process,
    /// In one sandboxed child process per tenant (not implemented yet:
    /// refused at load with a clear error).
    ProcessPerTenant,
}

impl Isolation {
    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Process => "process",
            Self::ProcessPerTenant => "process-per-tenant",
        }
    }

    /// Parses the configuration spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::InProcess, Self::Process, Self::ProcessPerTenant]
            .into_iter()
            .find(|i| i.name() == text)
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A capability a plugin declares in `permissions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Outbound network connections (advisory: native code cannot be sandboxed).
    NetworkOutbound,
    /// Read secrets through the host.
    SecretsRead,
    /// Read the plugin's key/value store.
    StorageRead,
    /// Write the plugin's key/value store.
    StorageWrite,
    /// Raise hooks.
    HooksEmit,
    /// Record metrics.
    MetricsWrite,
    /// Start processes (advisory).
    ProcessSpawn,
}

impl Permission {
    /// Every permission, in manifest spelling.
    pub const ALL: [(Permission, &'static str); 7] = [
        (Permission::NetworkOutbound, "network:outbound"),
        (Permission::SecretsRead, "secrets:read"),
        (Permission::StorageRead, "storage:read"),
        (Permission::StorageWrite, "storage:write"),
        (Permission::HooksEmit, "hooks:emit"),
        (Permission::MetricsWrite, "metrics:write"),
        (Permission::ProcessSpawn, "process:spawn"),
    ];

    /// The manifest spelling, e.g. `secrets:read`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("unknown", |(_, name)| name)
    }

    /// Parses the manifest spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(p, _)| *p)
    }
}

/// The `category` field: one of the categories this host's plugin-api
/// declares ([`plugin_api::KNOWN_CATEGORIES`]), or `custom`. A word the host
/// does not know is a manifest error, so a typo never becomes a plugin that is
/// silently skipped by every category lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(&'static str);

impl Default for Category {
    fn default() -> Self {
        Self::CUSTOM
    }
}

impl Category {
    /// `custom`: plugins that offer only hooks and generic service calls.
    pub const CUSTOM: Category = Category("custom");

    /// The word used in the manifest, e.g. `network-automation`.
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// The category named `word`, when this host knows it.
    pub fn from_word(word: &str) -> Option<Category> {
        plugin_api::KNOWN_CATEGORIES
            .iter()
            .find(|known| **known == word)
            .map(|known| Category(known))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// One `[[hooks]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hook {
    /// Name of the hook, e.g. `order.created`.
    pub name: String,
    /// Order among the hook's handlers, lower first; 0 when absent.
    pub priority: i32,
    /// Whether the hook transforms a value or only observes an event; `event` when absent.
    pub kind: HookKind,
    /// Plugin ids whose handler for this hook must run after this one.
    pub before: Vec<String>,
    /// Plugin ids whose handler for this hook must run before this one.
    pub after: Vec<String>,
}

/// The `[config.<key>]` tables of a manifest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigSchema {
    keys: BTreeMap<String, ConfigKey>,
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

/// A `line:column` in a manifest, both counted from 1; columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// The 1-based line and column (in characters) of byte `offset` in
    /// `text`: the one line/column helper every TOML error message uses.
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One rule a manifest breaks after it parsed, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestProblem {
    /// Where in the file.
    pub position: Position,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A manifest that cannot be read, parsed or accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error(
        "cannot read plugin manifest {}: {source}; {}.",
        path.display(),
        crate::read::read_hint(source)
    )]
    Read {
        /// The manifest file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong form.
    #[error(
        "{}{}: {message}; fix this entry of the plugin manifest.",
        path.display(),
        position.map(|p| format!(":{p}")).unwrap_or_default()
    )]
    Syntax {
        /// The manifest file.
        path: PathBuf,
        /// Where the parser stopped, when it knows.
        position: Option<Position>,
        /// The parser's description, including the expected form.
        message: String,
    },
    /// The file parsed but breaks one or more manifest rules; all are listed.
    #[error("{}", render_invalid(path, problems))]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// Every broken rule, in file order.
        problems: Vec<ManifestProblem>,
    },
}

impl ManifestError {
    /// The manifest file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Read { path, .. }
            | ManifestError::Syntax { path, .. }
            | ManifestError::Invalid { path, .. } => path,
        }
    }
}

fn render_invalid(path: &Path, problems: &[ManifestProblem]) -> String {
    let mut out = format!(
        "plugin manifest {} breaks {} rule{}; fix {} and reload:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        if problems.len() == 1 { "it" } else { "each" },
    );
    for problem in problems {
        out.push_str(&format!(
            "\n  {}:{}: {}",
            path.display(),
            problem.position,
            problem.message
        ));
    }
    out
}

impl Manifest {
    /// Parses manifest `text`; `path` is only used in messages and stored in the result.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|error| ManifestError::Syntax {
            path: path.to_owned(),
            position: error
                .span()
                .map(|span| Position::of_offset(text, span.start)),
            message: error.message().trim_end().to_owned(),
        })?;
        let mut problems = Problems {
            text,
            found: Vec::new(),
        };
        let manifest = raw.validate(path, &mut problems);
        let mut problems = problems.found;
        if problems.is_empty() {
            Ok(manifest)
        } else {
            problems.sort_by_key(|p| p.position);
            Err(ManifestError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }
}

/// Collects broken rules with their positions in `text`.
struct Problems<'t> {
    text: &'t str,
    found: Vec<ManifestProblem>,
}

impl Problems<'_> {
    fn position(&self, span: Range<usize>) -> Position {
        Position::of_offset(self.text, span.start)
    }

    fn report(&mut self, span: Range<usize>, message: String) {
        let position = self.position(span);
        self.found.push(ManifestProblem { position, message });
    }
}

impl Manifest {
    /// A manifest with `id` and `version` and defaults everywhere else, for
    /// tests and benchmarks that build plugin sets in code.
    #[doc(hidden)]
    pub fn synthetic(id: &str, version: Version) -> Manifest {
        Manifest {
            path: PathBuf::from(format!("plugins/{id}/{MANIFEST_FILE_NAME}")),
            id: id.to_owned(),
            name: id.to_owned(),
            version,
            description: String::new(),
            authors: Vec::new(),
            license: None,
            category: Category::CUSTOM,
            api: VersionReq::STAR,
            library: format!("lib{id}.so"),
            dependencies: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            provides: Vec::new(),
            requires: Vec::new(),
            permissions: BTreeSet::new(),
            hooks: Vec::new(),
            config: ConfigSchema::default(),
            required_tier: default_tier(),
            isolation: None,
        }
    }
}

/// Whether `id` is a valid plugin id: `^[a-z][a-z0-9-]{1,63}$`.
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (2..=64).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

const ID_RULE: &str = "ids are 2 to 64 characters of a-z, 0-9 and `-`, starting with a letter";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    id: Spanned<String>,
    name: String,
    #[serde(deserialize_with = "de_version")]
    version: Version,
    #[serde(default)]
    description: String,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    category: Category,
    #[serde(deserialize_with = "de_version_req")]
    api: VersionReq,
    library: Spanned<String>,
    #[serde(default)]
    dependencies: BTreeMap<Spanned<String>, Dependency>,
    #[serde(default)]
    conflicts: BTreeMap<Spanned<String>, Req>,
    #[serde(default)]
    provides: Vec<Spanned<String>>,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
    #[serde(default)]
    permissions: Vec<PermissionName>,
    #[serde(default)]
    hooks: Vec<RawHook>,
    #[serde(default)]
    config: BTreeMap<Spanned<String>, RawConfigKey>,
    #[serde(default = "default_tier")]
    required_tier: String,
    #[serde(default)]
    isolation: Option<Isolation>,
}

fn default_tier() -> String {
    "free".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    name: Spanned<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default = "default_hook_kind", deserialize_with = "de_hook_kind")]
    kind: HookKind,
    #[serde(default)]
    before: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfigKey {
    #[serde(rename = "type")]
    value_type: ConfigType,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    default: Option<Spanned<toml::Value>>,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    description: String,
    #[serde(default)]
    min: Option<Spanned<f64>>,
    #[serde(default)]
    max: Option<Spanned<f64>>,
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
struct PermissionName(Permission);

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
struct Req(VersionReq);

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

impl RawManifest {
    /// Builds the manifest and reports every broken rule through `report`.
    fn validate(self, path: &Path, problems: &mut Problems<'_>) -> Manifest {
        let id = self.id.get_ref().clone();
        if !is_valid_id(&id) {
            problems.report(
                self.id.span(),
                format!("invalid plugin id `{id}`: {ID_RULE}, e.g. `twilio-sms`"),
            );
        }

        let library = self.library.get_ref();
        let is_plain_name = !library.is_empty()
            && library != "."
            && library != ".."
            && !library.contains(['/', '\\']);
        if !is_plain_name {
            problems.report(
                self.library.span(),
                format!(
                    "`library = \"{library}\"` must be a file name in the plugin's folder, \
                     such as \"libplugkit_twilio.so\", not a path"
                ),
            );
        }

        let mut dependencies = BTreeMap::new();
        for (dep_id, dependency) in self.dependencies {
            let name = dep_id.get_ref();
            if !is_valid_id(name) {
                problems.report(
                    dep_id.span(),
                    format!("invalid dependency id `{name}`: {ID_RULE}"),
                );
            }
            if *name == id {
                problems.report(
                    dep_id.span(),
                    format!("plugin `{id}` depends on itself; remove `{name}` from [dependencies]"),
                );
            }
            dependencies.insert(dep_id.into_inner(), dependency);
        }

        let mut conflicts = BTreeMap::new();
        for (other, Req(range)) in self.conflicts {
            let name = other.get_ref();
            if !is_valid_id(name) {
                problems.report(
                    other.span(),
                    format!("invalid conflict id `{name}`: {ID_RULE}"),
                );
            }
            if *name == id {
                problems.report(
                    other.span(),
                    format!(
                        "plugin `{id}` conflicts with itself; remove `{name}` from [conflicts]"
                    ),
                );
            }
            if dependencies.contains_key(name.as_str()) {
                problems.report(
                    other.span(),
                    format!(
                        "`{name}` is both a dependency and a conflict; a plugin cannot need \
                         and refuse the same plugin, so remove it from [dependencies] or [conflicts]"
                    ),
                );
            }
            conflicts.insert(other.into_inner(), range);
        }

        let provides: Vec<String> = self.provides.into_iter().map(Spanned::into_inner).collect();
        for service in &self.requires {
            if provides.contains(service.get_ref()) {
                problems.report(
                    service.span(),
                    format!(
                        "plugin requires service `{}` that it provides itself; \
                         remove it from `requires`",
                        service.get_ref()
                    ),
                );
            }
        }
        let requires = self.requires.into_iter().map(Spanned::into_inner).collect();

        let mut hooks: Vec<Hook> = Vec::with_capacity(self.hooks.len());
        let mut first_seen: BTreeMap<String, Position> = BTreeMap::new();
        for raw in self.hooks {
            let name = raw.name.get_ref();
            if let Some(first) = first_seen.get(name) {
                problems.report(
                    raw.name.span(),
                    format!(
                        "hook `{name}` is registered twice (first at line {}); \
                         keep one [[hooks]] entry per hook name",
                        first.line
                    ),
                );
            } else {
                first_seen.insert(name.clone(), problems.position(raw.name.span()));
            }
            hooks.push(Hook {
                name: raw.name.into_inner(),
                priority: raw.priority,
                kind: raw.kind,
                before: raw.before,
                after: raw.after,
            });
        }

        let mut keys = BTreeMap::new();
        for (name, raw) in self.config {
            let key_name = name.get_ref();
            if let Some(default) = &raw.default {
                if raw.required {
                    problems.report(
                        default.span(),
                        format!(
                            "config key `{key_name}` is required and also has a default; \
                             remove `default` or set `required = false`"
                        ),
                    );
                }
                if let Err(mismatch) = raw.value_type.check_toml(default.get_ref()) {
                    problems.report(
                        default.span(),
                        format!(
                            "default of config key `{key_name}` does not match its type: {mismatch}; \
                             change the default or the `type`"
                        ),
                    );
                }
            }
            let numeric = matches!(raw.value_type, ConfigType::Integer | ConfigType::Float);
            for bound in [&raw.min, &raw.max].into_iter().flatten() {
                if !numeric {
                    problems.report(
                        bound.span(),
                        format!(
                            "config key `{key_name}` is of type {} and only integer and float \
                             keys take `min`/`max`; remove them",
                            raw.value_type
                        ),
                    );
                } else if !bound.get_ref().is_finite() {
                    problems.report(
                        bound.span(),
                        format!("`min`/`max` of config key `{key_name}` must be a finite number"),
                    );
                }
            }
            if let (Some(min), Some(max)) = (&raw.min, &raw.max) {
                if min.get_ref() > max.get_ref() {
                    problems.report(
                        max.span(),
                        format!(
                            "config key `{key_name}` has `max` {} below `min` {}; swap them",
                            max.get_ref(),
                            min.get_ref()
                        ),
                    );
                }
            }
            if let Some(default) = &raw.default {
                let value = match default.get_ref() {
                    toml::Value::Integer(i) => Some(*i as f64),
                    toml::Value::Float(f) => Some(*f),
                    _ => None,
                };
                let below = raw
                    .min
                    .as_ref()
                    .is_some_and(|m| value.is_some_and(|v| v < *m.get_ref()));
                let above = raw
                    .max
                    .as_ref()
                    .is_some_and(|m| value.is_some_and(|v| v > *m.get_ref()));
                if below || above {
                    problems.report(
                        default.span(),
                        format!(
                            "the default of config key `{key_name}` is outside its `min`/`max`; \
                             change the default or the bounds"
                        ),
                    );
                }
            }
            keys.insert(
                name.into_inner(),
                ConfigKey {
                    value_type: raw.value_type,
                    required: raw.required,
                    default: raw.default.map(Spanned::into_inner),
                    sensitive: raw.sensitive,
                    description: raw.description,
                    min: raw.min.map(Spanned::into_inner),
                    max: raw.max.map(Spanned::into_inner),
                },
            );
        }

        Manifest {
            path: path.to_owned(),
            id,
            name: self.name,
            version: self.version,
            description: self.description,
            authors: self.authors,
            license: self.license,
            category: self.category,
            api: self.api,
            library: self.library.into_inner(),
            dependencies,
            conflicts,
            provides,
            requires,
            permissions: self.permissions.into_iter().map(|p| p.0).collect(),
            hooks,
            config: ConfigSchema { keys },
            required_tier: self.required_tier,
            isolation: self.isolation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as `plugin.toml` and compares the outcome, rendered as text, with `expected`:
    /// `ok` for a manifest that passes, else the error's message.
    fn check(text: &str, expected: &str) {
        let actual = match Manifest::parse(text, Path::new("plugins/demo/plugin.toml")) {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.to_string(),
        };
        assert_eq!(actual, expected, "\n--- manifest ---\n{text}");
    }

    const MINIMAL: &str = r#"
id = "demo"
name = "Demo"
version = "1.0.0"
api = "^0.2"
library = "libdemo.so"
"#;

    /// `MINIMAL` followed by `extra`, so positions in expectations start at line 7.
    fn minimal_with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    const FULL: &str = r#"
id = "twilio"
name = "Twilio SMS"
version = "1.4.2"
description = "Sends SMS through Twilio."
authors = ["Ada <ada@example.com>", "Grace"]
license = "MIT OR Apache-2.0"
category = "communication"
api = "^0.2"
library = "libplugkit_twilio.so"
conflicts = { legacy-sms = "<2" }
provides = ["sms"]
requires = ["payment"]
permissions = ["network:outbound", "secrets:read", "network:outbound"]
required_tier = "pro"

[dependencies]
http-client = "^1.2"
metrics = { version = ">=0.3, <0.5", optional = true }

[[hooks]]
name = "message.send"
priority = 10
kind = "filter"
before = ["audit-log"]

[[hooks]]
name = "order.created"

[config.account_sid]
type = "string"
required = true
description = "Twilio account SID."

[config.auth_token]
type = "string"
required = true
sensitive = true

[config.timeout_seconds]
type = "float"
default = 5

[config.regions]
type = "list"
default = ["us1"]
"#;

    #[test]
    fn full_manifest_parses_into_every_field() {
        let manifest = Manifest::parse(FULL, Path::new("twilio/plugin.toml")).unwrap();
        assert_eq!(manifest.path, Path::new("twilio/plugin.toml"));
        assert_eq!(manifest.id, "twilio");
        assert_eq!(manifest.name, "Twilio SMS");
        assert_eq!(manifest.version, Version::new(1, 4, 2));
        assert_eq!(manifest.description, "Sends SMS through Twilio.");
        assert_eq!(manifest.authors, ["Ada <ada@example.com>", "Grace"]);
        assert_eq!(manifest.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(manifest.category.as_str(), "communication");
        assert_eq!(manifest.api, VersionReq::parse("^0.2").unwrap());
        assert_eq!(manifest.library, "libplugkit_twilio.so");
        assert_eq!(
            manifest.dependencies["http-client"],
            Dependency::new(VersionReq::parse("^1.2").unwrap(), false)
        );
        assert_eq!(
            manifest.dependencies["metrics"],
            Dependency::new(VersionReq::parse(">=0.3, <0.5").unwrap(), true)
        );
        assert_eq!(
            manifest.conflicts["legacy-sms"],
            VersionReq::parse("<2").unwrap()
        );
        assert_eq!(manifest.provides, ["sms"]);
        assert_eq!(manifest.requires, ["payment"]);
        assert_eq!(
            manifest.permissions.iter().copied().collect::<Vec<_>>(),
            [Permission::NetworkOutbound, Permission::SecretsRead]
        );
        assert_eq!(manifest.required_tier, "pro");
        assert_eq!(
            manifest.hooks,
            [
                Hook {
                    name: "message.send".into(),
                    priority: 10,
                    kind: HookKind::Filter,
                    before: vec!["audit-log".into()],
                    after: vec![],
                },
                Hook {
                    name: "order.created".into(),
                    priority: 0,
                    kind: HookKind::Event,
                    before: vec![],
                    after: vec![],
                },
            ]
        );
        let keys: Vec<&str> = manifest.config.iter().map(|(name, _)| name).collect();
        assert_eq!(
            keys,
            ["account_sid", "auth_token", "regions", "timeout_seconds"]
        );
        let token = manifest.config.get("auth_token").unwrap();
        assert!(token.required && token.sensitive && token.default.is_none());
        let timeout = manifest.config.get("timeout_seconds").unwrap();
        assert_eq!(timeout.value_type, ConfigType::Float);
        assert_eq!(timeout.default, Some(toml::Value::Integer(5)));
    }

    #[test]
    fn numeric_config_keys_take_inclusive_bounds() {
        let parse = |extra: &str| Manifest::parse(&minimal_with(extra), Path::new("plugin.toml"));
        let manifest =
            parse("[config.calls]\ntype = \"integer\"\nmin = 1\nmax = 60\ndefault = 10\n")
                .expect("bounds parse");
        let calls = manifest.config.get("calls").expect("key");
        assert_eq!((calls.min, calls.max), (Some(1.0), Some(60.0)));
        let refused = |extra: &str, part: &str| {
            let error = parse(extra).expect_err("refused").to_string();
            assert!(error.contains(part), "{error}");
        };
        refused(
            "[config.name]\ntype = \"string\"\nmin = 1\n",
            "only integer and float keys take `min`/`max`",
        );
        refused(
            "[config.ratio]\ntype = \"float\"\nmin = 1.5\nmax = 0.5\n",
            "has `max` 0.5 below `min` 1.5",
        );
        refused(
            "[config.calls]\ntype = \"integer\"\nmax = 5\ndefault = 10\n",
            "is outside its `min`/`max`",
        );
    }

    #[test]
    fn minimal_manifest_gets_defaults() {
        let manifest = Manifest::parse(MINIMAL, Path::new("plugin.toml")).unwrap();
        assert_eq!(manifest.category, Category::CUSTOM);
        assert_eq!(manifest.required_tier, "free");
        assert_eq!(manifest.description, "");
        assert!(manifest.dependencies.is_empty() && manifest.config.is_empty());
    }

    #[test]
    fn a_category_the_host_does_not_know_is_an_error_not_a_silent_skip() {
        // Regression (issue 12): `analytics` used to be kept as an unknown
        // category that every lookup then skipped.
        check(
            &minimal_with("category = \"analytics\"\n"),
            "plugins/demo/plugin.toml:7:12: unknown category `analytics`, this host knows \
             `communication`, `payment`, `network-automation`, `crm`, `custom` (a new category \
             needs a host built with a plugin-api that declares it); fix this entry of the \
             plugin manifest.",
        );
        check(
            &minimal_with("category = \"network\"\n"),
            "plugins/demo/plugin.toml:7:12: unknown category `network`, this host knows \
             `communication`, `payment`, `network-automation`, `crm`, `custom` (a new category \
             needs a host built with a plugin-api that declares it); fix this entry of the \
             plugin manifest.",
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_line_column_and_the_known_keys() {
        check(
            &minimal_with("colour = \"red\"\n"),
            "plugins/demo/plugin.toml:7:1: unknown field `colour`, expected one of `id`, `name`, \
             `version`, `description`, `authors`, `license`, `category`, `api`, `library`, \
             `dependencies`, `conflicts`, `provides`, `requires`, `permissions`, `hooks`, \
             `config`, `required_tier`, `isolation`; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("[[hooks]]\nname = \"a\"\nprio = 1\n"),
            "plugins/demo/plugin.toml:9:1: unknown field `prio`, expected one of `name`, \
             `priority`, `kind`, `before`, `after`; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("[dependencies]\nother = { version = \"^1\", optinal = true }\n"),
            "plugins/demo/plugin.toml:8:9: unknown field `optinal`, expected `version` or \
             `optional`; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("[config.port]\ntyp = \"integer\"\n"),
            "plugins/demo/plugin.toml:8:1: unknown field `typ`, expected one of `type`, \
             `required`, `default`, `sensitive`, `description`, `min`, `max`; fix this entry of the \
             plugin manifest.",
        );
    }

    #[test]
    fn bad_values_are_errors_with_line_column_and_the_expected_form() {
        check(
            &MINIMAL.replace("1.0.0", "1.0"),
            "plugins/demo/plugin.toml:4:11: invalid version `1.0`: unexpected end of input while \
             parsing minor version number; expected a semantic version such as \"1.2.3\"; fix \
             this entry of the plugin manifest.",
        );
        check(
            &MINIMAL.replace("^0.2", "zero"),
            "plugins/demo/plugin.toml:5:7: invalid version requirement `zero`: unexpected \
             character 'z' while parsing major version number; expected a range such as \"^1.2\", \
             \">=1.0, <2\" or \"*\"; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("[dependencies]\nother = \"one\"\n"),
            "plugins/demo/plugin.toml:8:9: invalid version requirement `one`: unexpected \
             character 'o' while parsing major version number; expected a range such as \"^1.2\", \
             \">=1.0, <2\" or \"*\"; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("[dependencies]\nother = 5\n"),
            "plugins/demo/plugin.toml:8:9: invalid type: integer `5`, expected a version \
             requirement such as \"^1.2\" or a table such as { version = \"^1.2\", optional = true }; \
             fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("permissions = [\"storage:read\", \"network:inbound\"]\n"),
            "plugins/demo/plugin.toml:7:32: unknown permission `network:inbound`, expected one of \
             `network:outbound`, `secrets:read`, `storage:read`, `storage:write`, `hooks:emit`, \
             `metrics:write`, `process:spawn`; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("category = \"Big Thing\"\n"),
            "plugins/demo/plugin.toml:7:12: unknown category `Big Thing`, this host knows \
             `communication`, `payment`, `network-automation`, `crm`, `custom` (a new category \
             needs a host built with a plugin-api that declares it); fix this entry of the \
             plugin manifest.",
        );
        check(
            &minimal_with("[[hooks]]\nname = \"a\"\nkind = \"action\"\n"),
            "plugins/demo/plugin.toml:9:8: unknown hook kind `action`, expected `filter` or \
             `event`; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("[[hooks]]\nname = \"a\"\npriority = \"high\"\n"),
            "plugins/demo/plugin.toml:9:12: invalid type: string \"high\", expected i32; fix \
             this entry of the plugin manifest.",
        );
        check(
            &minimal_with("[config.port]\ntype = \"int\"\n"),
            "plugins/demo/plugin.toml:8:8: unknown variant `int`, expected one of `string`, \
             `integer`, `float`, `boolean`, `list`; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("conflicts = { old-sms = \"<1\", older-sms = \"one\" }\n"),
            "plugins/demo/plugin.toml:7:43: invalid version requirement `one`: unexpected \
             character 'o' while parsing major version number; expected a range such as \"^1.2\", \
             \">=1.0, <2\" or \"*\"; fix this entry of the plugin manifest.",
        );
        check(
            &MINIMAL.replace("\"1.0.0\"", "1"),
            "plugins/demo/plugin.toml:4:11: invalid type: integer `1`, expected a semantic \
             version such as \"1.2.3\"; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("authors = \"Ada\"\n"),
            "plugins/demo/plugin.toml:7:11: invalid type: string \"Ada\", expected a sequence; \
             fix this entry of the plugin manifest.",
        );
    }

    #[test]
    fn missing_required_field_and_broken_toml_are_errors() {
        check(
            &MINIMAL.replace("library = \"libdemo.so\"\n", ""),
            "plugins/demo/plugin.toml:1:1: missing field `library`; fix this entry of the plugin manifest.",
        );
        check(
            &minimal_with("provides = [\"sms\"\n"),
            "plugins/demo/plugin.toml:7:18: unclosed array, expected `]`; fix this entry of the plugin manifest.",
        );
    }

    #[test]
    fn id_must_follow_the_charset_rule() {
        let rule = "ids are 2 to 64 characters of a-z, 0-9 and `-`, starting with a letter";
        for bad in ["Demo", "d", "9lives", "demo_sms", "-demo", &"a".repeat(65)] {
            check(
                &MINIMAL.replace("\"demo\"", &format!("\"{bad}\"")),
                &format!(
                    "plugin manifest plugins/demo/plugin.toml breaks 1 rule; fix it and reload:\n  \
                     plugins/demo/plugin.toml:2:6: invalid plugin id `{bad}`: {rule}, e.g. `twilio-sms`"
                ),
            );
        }
        for good in ["ab", "sms-2", "network-automation", &"a".repeat(64)] {
            check(&MINIMAL.replace("\"demo\"", &format!("\"{good}\"")), "ok");
        }
    }

    #[test]
    fn each_semantic_rule_is_reported_at_its_entry() {
        let rule = |position: &str, message: &str| {
            format!(
                "plugin manifest plugins/demo/plugin.toml breaks 1 rule; fix it and reload:\n  \
                 plugins/demo/plugin.toml:{position}: {message}"
            )
        };
        check(
            &minimal_with("[[hooks]]\nname = \"a\"\n[[hooks]]\nname = \"b\"\n[[hooks]]\nname = \"a\"\n"),
            &rule(
                "12:8",
                "hook `a` is registered twice (first at line 8); keep one [[hooks]] entry per hook name",
            ),
        );
        check(
            &minimal_with("[config.port]\ntype = \"integer\"\ndefault = \"80\"\n"),
            &rule(
                "9:11",
                "default of config key `port` does not match its type: expected integer, found a \
                 string; change the default or the `type`",
            ),
        );
        check(
            &minimal_with("[config.port]\ntype = \"integer\"\nrequired = true\ndefault = 80\n"),
            &rule(
                "10:11",
                "config key `port` is required and also has a default; remove `default` or set \
                 `required = false`",
            ),
        );
        check(
            &minimal_with("[dependencies]\ndemo = \"^1\"\n"),
            &rule(
                "8:1",
                "plugin `demo` depends on itself; remove `demo` from [dependencies]",
            ),
        );
        check(
            &minimal_with("[dependencies]\nsms = \"^1\"\n[conflicts]\nsms = \"<1\"\n"),
            &rule(
                "10:1",
                "`sms` is both a dependency and a conflict; a plugin cannot need and refuse the \
                 same plugin, so remove it from [dependencies] or [conflicts]",
            ),
        );
        check(
            &minimal_with("[conflicts]\ndemo = \"*\"\n"),
            &rule(
                "8:1",
                "plugin `demo` conflicts with itself; remove `demo` from [conflicts]",
            ),
        );
        check(
            &MINIMAL.replace("libdemo.so", "../lib/libdemo.so"),
            &rule(
                "6:11",
                "`library = \"../lib/libdemo.so\"` must be a file name in the plugin's folder, \
                 such as \"libplugkit_twilio.so\", not a path",
            ),
        );
        check(
            &minimal_with("provides = [\"sms\"]\nrequires = [\"sms\"]\n"),
            &rule(
                "8:13",
                "plugin requires service `sms` that it provides itself; remove it from `requires`",
            ),
        );
        check(
            &minimal_with("[dependencies]\nBad_Id = \"^1\"\n"),
            &rule(
                "8:1",
                "invalid dependency id `Bad_Id`: ids are 2 to 64 characters of a-z, 0-9 and `-`, \
                 starting with a letter",
            ),
        );
    }

    #[test]
    fn all_semantic_problems_are_reported_together_in_file_order() {
        let text = r#"
id = "Demo"
name = "Demo"
version = "1.0.0"
api = "^0.2"
library = "libdemo.so"
[dependencies]
Demo = "^1"
[[hooks]]
name = "a"
[[hooks]]
name = "a"
[config.port]
type = "boolean"
required = true
default = 1
"#;
        check(
            text,
            "plugin manifest plugins/demo/plugin.toml breaks 6 rules; fix each and reload:\n  \
             plugins/demo/plugin.toml:2:6: invalid plugin id `Demo`: ids are 2 to 64 characters of \
             a-z, 0-9 and `-`, starting with a letter, e.g. `twilio-sms`\n  \
             plugins/demo/plugin.toml:8:1: invalid dependency id `Demo`: ids are 2 to 64 \
             characters of a-z, 0-9 and `-`, starting with a letter\n  \
             plugins/demo/plugin.toml:8:1: plugin `Demo` depends on itself; remove `Demo` from \
             [dependencies]\n  \
             plugins/demo/plugin.toml:12:8: hook `a` is registered twice (first at line 10); keep \
             one [[hooks]] entry per hook name\n  \
             plugins/demo/plugin.toml:16:11: config key `port` is required and also has a \
             default; remove `default` or set `required = false`\n  \
             plugins/demo/plugin.toml:16:11: default of config key `port` does not match its \
             type: expected boolean, found an integer; change the default or the `type`",
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let text = MINIMAL.replace("name = \"Demo\"", "name = \"Démo ✓\" ; colour = 1");
        // The `;` is byte 20 of its line but character 17.
        check(
            &text,
            "plugins/demo/plugin.toml:3:17: unexpected key or value, expected newline, `#`; fix \
             this entry of the plugin manifest.",
        );
    }

    // Issue 14, item 5: a manifest saved as UTF-16 or Latin-1 was reported
    // as a file the host may not read ("check that the file exists").
    #[test]
    fn a_manifest_that_is_not_utf8_says_so_and_a_byte_order_mark_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugin.toml");
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(MINIMAL.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        std::fs::write(&path, utf16).unwrap();
        let message = Manifest::load(&path).unwrap_err().to_string();
        assert!(
            message.contains("it is UTF-16 text") && message.ends_with("save it as UTF-8 text."),
            "{message}"
        );
        let mut latin1 = MINIMAL.as_bytes().to_vec();
        latin1.extend_from_slice(b"# caf\xe9\n");
        std::fs::write(&path, latin1).unwrap();
        let message = Manifest::load(&path).unwrap_err().to_string();
        assert!(message.contains("it is not UTF-8 text (byte"), "{message}");
        std::fs::write(&path, format!("\u{feff}{MINIMAL}")).unwrap();
        assert!(Manifest::load(&path).is_ok());
        let message = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("point at the file, not its folder"),
            "{message}"
        );
    }

    #[test]
    fn load_reports_an_unreadable_file_with_its_path() {
        let missing = Path::new("/nonexistent/plugkit/plugin.toml");
        let error = Manifest::load(missing).unwrap_err();
        assert!(matches!(error, ManifestError::Read { .. }));
        assert_eq!(error.path(), missing);
        assert!(
            error
                .to_string()
                .starts_with("cannot read plugin manifest /nonexistent/plugkit/plugin.toml: "),
            "{error}"
        );
    }

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
