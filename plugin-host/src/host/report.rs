//! What the host reports about its plugins: status, health and metrics,
//! read from the registry without calling plugin code except for health.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use plugin_api::HealthStatus;
use serde::Serialize;

use super::{Host, Slot};
use crate::error::HostError;
use crate::lifecycle::PluginState;
use crate::loader::{LoadedPlugin, PluginIdentity};
use crate::metrics::{MetricsSnapshot, TenantMetricsSnapshot};
use crate::signature::SignatureStatus;

/// A plugin's state for reports.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// What the library says about itself.
    pub identity: PluginIdentity,
    /// Where it was loaded from.
    pub source: PathBuf,
    /// Lifecycle state.
    pub state: PluginState,
    /// Tenants it is active for.
    pub tenants: Vec<String>,
    /// Why it failed, when failed.
    pub failure: Option<String>,
    /// Extensions it offers.
    pub extensions: Vec<&'static str>,
    /// The private copy that is loaded.
    pub loaded_copy: PathBuf,
    /// SHA-256 of the loaded bytes, hex.
    pub sha256: String,
    /// Whether a trusted key signed it.
    pub signature: SignatureStatus,
}

/// One plugin's health in a [`HealthReport`].
#[derive(Debug, Clone, Serialize)]
pub struct PluginHealth {
    /// The plugin.
    pub plugin: String,
    /// Its lifecycle state.
    pub state: PluginState,
    /// What it reported (failed plugins are unhealthy without being asked).
    pub status: HealthStatus,
    /// Why.
    pub message: String,
    /// Its metrics.
    pub metrics: MetricsSnapshot,
}

/// The host's aggregated health.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The worst status of any plugin and of live reload (healthy when there are none).
    pub status: HealthStatus,
    /// Each plugin.
    pub plugins: Vec<PluginHealth>,
    /// Live reload's state while [`Host::watch`] runs; degraded while a
    /// watched plugin directory is gone.
    pub live_reload: Option<crate::watch::LiveReloadHealth>,
}

impl Host {
    /// Status of every loaded plugin.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        let slots: Vec<Arc<Slot>> = self.inner.plugins.read().values().cloned().collect();
        slots.iter().map(|s| s.status()).collect()
    }

    /// Status of one plugin.
    pub fn status(&self, id: &str) -> Result<PluginStatus, HostError> {
        Ok(self.inner.slot(id)?.status())
    }

    /// The plugin's metrics (over all tenants).
    pub fn metrics(&self, id: &str) -> Result<MetricsSnapshot, HostError> {
        Ok(self.inner.slot(id)?.metrics.snapshot())
    }

    /// The plugin's metrics per tenant, by tenant id: every tenant it was
    /// activated for since it was loaded, up to
    /// [`TENANT_SERIES_LIMIT`](crate::status::TENANT_SERIES_LIMIT) of them
    /// (later ones count together under
    /// [`OTHER_TENANTS`](crate::status::OTHER_TENANTS)). Calls, errors,
    /// panics, denials and hook failures outside any tenant (a lifecycle
    /// step's error, say) count only in [`Host::metrics`].
    pub fn tenant_metrics(
        &self,
        id: &str,
    ) -> Result<BTreeMap<String, TenantMetricsSnapshot>, HostError> {
        Ok(self.inner.slot(id)?.metrics.tenant_snapshots())
    }

    /// Asks every plugin for its health and aggregates the answers.
    pub fn health(&self) -> HealthReport {
        let slots: Vec<Arc<Slot>> = self.inner.plugins.read().values().cloned().collect();
        let plugins: Vec<PluginHealth> = slots
            .iter()
            .map(|slot| {
                let (state, failure) = {
                    let life = slot.lifecycle.lock();
                    (life.state(), life.failure().map(str::to_owned))
                };
                let (status, message) = match state {
                    PluginState::Failed => (
                        HealthStatus::Unhealthy,
                        failure.unwrap_or_else(|| "failed".to_owned()),
                    ),
                    PluginState::CleanedUp => (HealthStatus::Unhealthy, "cleaned up".to_owned()),
                    _ => {
                        let loaded = slot.current.read().clone();
                        let report = loaded.instance.base.health();
                        (report.status, report.message.to_string())
                    }
                };
                PluginHealth {
                    plugin: slot.id.clone(),
                    state,
                    status,
                    message,
                    metrics: slot.metrics.snapshot(),
                }
            })
            .collect();
        let live_reload = crate::watch::live_reload_health(&self.inner.live);
        let status = plugins
            .iter()
            .map(|p| p.status)
            .chain(live_reload.as_ref().map(|l| l.status))
            .max()
            .unwrap_or(HealthStatus::Healthy);
        HealthReport {
            status,
            plugins,
            live_reload,
        }
    }
}

impl Slot {
    fn status(&self) -> PluginStatus {
        let (state, tenants, failure) = {
            let life = self.lifecycle.lock();
            (
                life.state(),
                life.tenants().iter().cloned().collect(),
                life.failure().map(str::to_owned),
            )
        };
        let loaded = self.current.read().clone();
        PluginStatus {
            identity: loaded.identity.clone(),
            source: self.source.read().clone(),
            state,
            tenants,
            failure,
            extensions: extensions_of(&loaded),
            loaded_copy: loaded.library.path.clone(),
            sha256: hex::encode(loaded.library.sha256),
            signature: self.signature.read().clone(),
        }
    }
}

fn extensions_of(loaded: &LoadedPlugin) -> Vec<&'static str> {
    let instance = &loaded.instance;
    let mut out = Vec::new();
    if instance.hooks.is_some() {
        out.push("hooks");
    }
    if instance.service.is_some() {
        out.push("service");
    }
    if instance.state.is_some() {
        out.push("state");
    }
    out.extend(loaded.categories.names());
    out
}
