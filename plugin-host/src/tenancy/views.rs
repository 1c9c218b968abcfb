//! What an operator may see: tenant views and the reports of tier changes
//! and restores. No secret and no sensitive value.

use super::*;

/// What [`Platform::change_tier`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct TierChange {
    /// The tier before.
    pub from: String,
    /// The tier after.
    pub to: String,
    /// Plugins activated because the new tier entitles them.
    pub activated: Vec<String>,
    /// Plugins deactivated because the new tier does not; their requests are kept.
    pub deactivated: Vec<String>,
    /// Plugins that should have moved and failed to, with the error.
    pub failed: Vec<(String, String)>,
    /// Who received `customer.tier_changed`.
    pub hook: EventReport,
}

/// What [`Platform::restore`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// `(tenant, plugin)` activated.
    pub activated: Vec<(String, String)>,
    /// `(tenant, plugin)` that were active already.
    pub already_active: Vec<(String, String)>,
    /// `(tenant, plugin, why)` left inactive on purpose (tier, not installed).
    pub skipped: Vec<(String, String, String)>,
    /// `(tenant, plugin, error)` whose activation failed.
    pub failed: Vec<(String, String, String)>,
}

/// One tenant as an operator may see it: no secret, no sensitive value.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TenantView {
    /// The tenant.
    pub tenant: String,
    /// Its tier.
    pub tier: String,
    /// The plugins it requested.
    pub plugins: Vec<TenantPluginView>,
}

/// One requested plugin of a [`TenantView`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TenantPluginView {
    /// The plugin.
    pub plugin: String,
    /// Its installed version, when installed.
    pub version: Option<String>,
    /// Its required tier, when installed.
    pub required_tier: Option<String>,
    /// Whether the tenant's tier allows it.
    pub entitled: bool,
    /// Whether it is active for the tenant right now.
    pub active: bool,
    /// The effective configuration; sensitive and secret values are [`REDACTED`].
    pub config: Map<String, Value>,
    /// Where each value comes from (file and line, override, variable, reference).
    pub sources: BTreeMap<String, String>,
    /// Why the configuration cannot be built now, if it cannot.
    pub problem: Option<String>,
}

impl Platform {
    /// What an operator may see of a tenant: tier, requested plugins, and
    /// their effective configuration with sensitive and secret values
    /// redacted. Resolves no secret.
    pub fn tenant_view(&self, tenant: &str) -> Result<TenantView, PlatformError> {
        let state = self.inner.state.lock();
        let record = state
            .tenants
            .get(tenant)
            .ok_or_else(|| PlatformError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        let mut plugins = Vec::new();
        for (plugin, request) in &record.plugins {
            let installed = state.plugins.get(plugin);
            let entitled = installed.is_some_and(|i| {
                self.inner
                    .tiers
                    .allows(&record.tier, &i.required_tier)
                    .unwrap_or(false)
            });
            let layered = installed
                .ok_or_else(|| PlatformError::UnknownPlugin {
                    plugin: plugin.clone(),
                })
                .and_then(|i| self.layered(i, tenant, plugin, request));
            let (config, sources, problem) = match layered {
                Ok(l) => (l.redacted(), l.sources(), None),
                Err(e) => (Map::new(), BTreeMap::new(), Some(e.to_string())),
            };
            plugins.push(TenantPluginView {
                plugin: plugin.clone(),
                version: installed.map(|i| i.version.clone()),
                required_tier: installed.map(|i| i.required_tier.clone()),
                entitled,
                active: self.is_active(plugin, tenant),
                config,
                sources,
                problem,
            });
        }
        Ok(TenantView {
            tenant: tenant.to_owned(),
            tier: record.tier.clone(),
            plugins,
        })
    }
}
