//! `PluginHandle`: a snapshot of one plugin version and its active
//! tenants, for calls (`invoke`, and every category's typed client through
//! `Caller` and `CategoryHost`) that need no lock and never reach the
//! plugin for an inactive tenant.

use std::sync::Arc;
use std::time::Instant;

use abi_stable::std_types::RResult;
use plugin_api::abi::PluginError;
use plugin_api::category::{CategoryHost, Contract};

use super::Slot;
use crate::error::HostError;
use crate::loader::{LoadedPlugin, PluginIdentity};
use crate::metrics::ActiveTenants;

/// A snapshot of one plugin version for making calls. Holding it keeps that
/// version loaded; take a fresh one per request so reloads are picked up.
#[derive(Clone)]
pub struct PluginHandle {
    pub(crate) slot: Arc<Slot>,
    pub(crate) loaded: Arc<LoadedPlugin>,
    /// The tenants the plugin was active for when the handle was taken,
    /// with their counters: a call for any other tenant is refused before
    /// it reaches the plugin.
    pub(super) tenants: Arc<ActiveTenants>,
}

impl PluginHandle {
    /// The plugin's id.
    pub fn id(&self) -> &str {
        &self.slot.id
    }

    /// What the library says about itself.
    pub fn identity(&self) -> &PluginIdentity {
        &self.loaded.identity
    }

    /// A generic byte-level call (`service` extension).
    ///
    /// Written out rather than through the generic wrapper: this is the
    /// benchmarked hot path, and matching the ABI result in place saves
    /// moving it through two intermediate enums.
    #[inline]
    pub fn invoke(&self, tenant: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, HostError> {
        let Some(counters) = self.tenants.get(tenant) else {
            return Err(self.slot.not_active(tenant));
        };
        let Some(service) = self.loaded.instance.service.as_ref().into_option() else {
            return Err(HostError::MissingExtension {
                plugin: self.slot.id.clone(),
                extension: "service",
            });
        };
        let start = counters.start_call().then(Instant::now);
        let result = service.invoke(tenant.into(), method.into(), payload.into());
        if let Some(start) = start {
            counters.record_latency(start.elapsed());
        }
        match result {
            RResult::ROk(v) if v.capacity() == 0 => {
                // Nothing was allocated: skip the destructor call through
                // the plugin's vtable.
                std::mem::forget(v);
                Ok(Vec::new())
            }
            RResult::ROk(v) => Ok(v.into_vec()),
            RResult::RErr(error) => Err(self.slot.call_failed(counters, &error)),
        }
    }

    /// The plugin's health right now.
    pub fn health(&self) -> plugin_api::Health {
        let report = self.loaded.instance.base.health();
        plugin_api::Health {
            status: report.status,
            message: report.message.to_string(),
        }
    }

    /// Whether the plugin is active for `tenant` right now.
    pub fn is_active_for(&self, tenant: &str) -> bool {
        self.slot.active_tenants.read().contains(tenant)
    }
}

impl plugin_api::category::Caller for PluginHandle {
    type Error = HostError;

    /// Checks the tenant, counts the call, samples its latency and turns a
    /// plugin error into a host error naming the plugin.
    #[inline]
    fn call<T>(
        &self,
        tenant: &str,
        _method: &'static str,
        call: impl FnOnce() -> RResult<T, PluginError>,
    ) -> Result<T, HostError> {
        let Some(counters) = self.tenants.get(tenant) else {
            return Err(self.slot.not_active(tenant));
        };
        let start = counters.start_call().then(Instant::now);
        let result = call();
        if let Some(start) = start {
            counters.record_latency(start.elapsed());
        }
        match result {
            RResult::ROk(value) => Ok(value),
            RResult::RErr(error) => Err(self.slot.call_failed(counters, &error)),
        }
    }
}

/// `handle.communication()?.send_message(tenant, message)` and the like
/// come from this, through each category's `HandleExt`
/// (`use plugin_api::categories::*`).
impl CategoryHost for PluginHandle {
    type Error = HostError;
    type Caller<'a> = PluginHandle;

    #[inline]
    fn category<C: Contract>(&self) -> Result<C::Client<'_, PluginHandle>, HostError> {
        match self.loaded.categories.get::<C>() {
            Some(object) => Ok(C::client(object, self)),
            None => Err(HostError::MissingExtension {
                plugin: self.slot.id.clone(),
                extension: C::NAME,
            }),
        }
    }
}
