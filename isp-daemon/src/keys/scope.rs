//! The scopes an API key can hold, pure. Each `/api` route needs exactly
//! one (see the route table in `api`); a key holds any set of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One permission. The text form is `area:verb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read plugins, their health, metrics and the dependency graph.
    PluginsRead,
    /// Reload plugins, release them from quarantine.
    PluginsWrite,
    /// Read tenants and their plugin settings.
    TenantsRead,
    /// Activate and deactivate plugins for tenants.
    TenantsWrite,
    /// Change a tenant's plugin configuration.
    ConfigWrite,
    /// Read the audit log.
    AuditRead,
    /// Manage outbound webhook endpoints.
    WebhooksManage,
    /// Run the ISP flows.
    FlowsRun,
    /// Scrape `GET /metrics` (Prometheus), and nothing else.
    MetricsRead,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 9] = [
        Scope::PluginsRead,
        Scope::PluginsWrite,
        Scope::TenantsRead,
        Scope::TenantsWrite,
        Scope::ConfigWrite,
        Scope::AuditRead,
        Scope::WebhooksManage,
        Scope::FlowsRun,
        Scope::MetricsRead,
    ];

    /// The text form, e.g. `plugins:read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::PluginsRead => "plugins:read",
            Scope::PluginsWrite => "plugins:write",
            Scope::TenantsRead => "tenants:read",
            Scope::TenantsWrite => "tenants:write",
            Scope::ConfigWrite => "config:write",
            Scope::AuditRead => "audit:read",
            Scope::WebhooksManage => "webhooks:manage",
            Scope::FlowsRun => "flows:run",
            Scope::MetricsRead => "metrics:read",
        }
    }

    /// The bit of this scope in a [`ScopeSet`].
    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of [`Scope::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; the scopes are {list}", list = Scope::ALL.map(Scope::as_str).join(", "))]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of scopes as a bit set: checking one is a single AND per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeSet(u16);

impl ScopeSet {
    /// Every scope.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The scopes in the set, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_reads_back_from_its_name() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            let json = serde_json::to_string(&scope).expect("json");
            assert_eq!(serde_json::from_str::<Scope>(&json).expect("back"), scope);
        }
        let error = "plugins:admin".parse::<Scope>().expect_err("unknown");
        assert!(
            error.to_string().contains("plugins:read, plugins:write"),
            "{error}"
        );
    }

    #[test]
    fn a_set_holds_exactly_its_scopes() {
        let set: ScopeSet = [Scope::PluginsRead, Scope::AuditRead].into_iter().collect();
        for scope in Scope::ALL {
            let expected = matches!(scope, Scope::PluginsRead | Scope::AuditRead);
            assert_eq!(set.contains(scope), expected, "{scope}");
        }
        assert_eq!(ScopeSet::all().iter().count(), Scope::ALL.len());
        assert_eq!(ScopeSet::default().iter().count(), 0);
    }
}
