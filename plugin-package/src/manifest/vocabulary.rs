//! The closed sets of words a manifest uses: hook kinds, isolation levels,
//! permissions and categories, each with its spelling.

use std::fmt;

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
