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
//!
//! Split by job: `raw` is the serde form of the file and the deserializers
//! that word each malformed value; `validate` checks the rules serde cannot
//! express and builds the [`Manifest`]; `vocabulary` holds the closed sets of
//! words (category, permission, hook kind, isolation); `config` the config
//! schema and its type checks; `error` positions, problems and
//! [`ManifestError`].

mod config;
mod error;
mod raw;
mod validate;
mod vocabulary;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};

pub use config::{
    env_var_name, example_toml, ConfigKey, ConfigSchema, ConfigType, ConfigTypeMismatch,
};
pub use error::{ManifestError, ManifestProblem, Position};
pub use vocabulary::{Category, HookKind, Isolation, Permission};

use error::Problems;
use raw::{default_tier, RawManifest};

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

#[cfg(test)]
mod tests;
