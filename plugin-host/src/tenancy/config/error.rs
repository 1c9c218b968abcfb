//! What can be wrong with a configuration: the problems per key, the
//! errors that carry them, and where a value came from. Never a value.

use std::fmt;
use std::io;
use std::path::PathBuf;

use plugin_package::manifest::{ConfigType, Position};

/// What a redacted view shows instead of a sensitive or secret value.
pub const REDACTED: &str = "<redacted>";

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
    /// A number outside the key's `min`/`max`.
    OutOfRange {
        /// The key.
        key: String,
        /// Where it was set.
        source: ConfigSource,
        /// The allowed range in words: "between 1 and 60", "at least 0".
        allowed: String,
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
            Self::OutOfRange {
                key,
                source,
                allowed,
            } => write!(
                f,
                "key `{key}` (set in {source}) must be {allowed}; write a value in that range"
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
        "tenant `{tenant}`: plugin `{plugin}`: cannot read {}: {source}; {}",
        path.display(),
        plugin_package::read::read_hint(source)
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
