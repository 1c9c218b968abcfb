//! The lifecycle steps a host runs on a plugin (initialize, activate,
//! deactivate, cleanup, remove), each under the plugin's lifecycle lock and
//! checked against the pure state machine in `crate::lifecycle`; activation
//! and deactivation keep the call path's tenant set and epoch in step.

use std::sync::Arc;

use abi_stable::std_types::RResult;
use plugin_api::abi::{PluginError, PluginInstance, TenantActivation};

use super::{Host, Slot};
use crate::error::{Call, HostError};
use crate::lifecycle::{PluginState, Transition};
use crate::loader;
use crate::metrics::ActiveTenants;

impl Host {
    /// Calls the plugin's `initialize` with its host services.
    pub fn initialize(&self, id: &str) -> Result<(), HostError> {
        let slot = self.inner.slot(id)?;
        let services = self.services_for(&slot);
        self.step(&slot, Transition::Initialize, Call::Initialize, |p| {
            p.base.initialize(services)
        })
    }

    /// Activates the plugin for `tenant` with its resolved configuration (a JSON object).
    pub fn activate(&self, id: &str, tenant: &str, config_json: &str) -> Result<(), HostError> {
        // The plugin's log lines while it activates name the tenant.
        let _span = tracing::info_span!("activate", tenant).entered();
        let slot = self.inner.slot(id)?;
        let activation = TenantActivation {
            tenant: tenant.into(),
            config_json: config_json.into(),
        };
        self.step(
            &slot,
            Transition::Activate(tenant.to_owned()),
            Call::Activate,
            |p| p.base.activate(activation),
        )?;
        slot.tenant_configs
            .lock()
            .insert(tenant.to_owned(), config_json.to_owned());
        {
            let mut active = slot.active_tenants.write();
            let mut next = ActiveTenants::clone(&active);
            next.insert(tenant.to_owned(), slot.metrics.tenant(tenant));
            *active = Arc::new(next);
        }
        slot.bump_epoch();
        self.inner.invalidate_dispatch();
        Ok(())
    }

    /// Deactivates the plugin for `tenant`.
    pub fn deactivate(&self, id: &str, tenant: &str) -> Result<(), HostError> {
        let _span = tracing::info_span!("deactivate", tenant).entered();
        let slot = self.inner.slot(id)?;
        // New calls for this tenant stop first; calls in flight finish.
        {
            let mut active = slot.active_tenants.write();
            let mut next = ActiveTenants::clone(&active);
            next.remove(tenant);
            *active = Arc::new(next);
        }
        slot.bump_epoch();
        slot.tenant_configs.lock().remove(tenant);
        self.inner.invalidate_dispatch();
        self.step(
            &slot,
            Transition::Deactivate(tenant.to_owned()),
            Call::Deactivate,
            |p| p.base.deactivate(tenant.into()),
        )
    }

    /// Deactivates every tenant, then calls `cleanup`.
    pub fn cleanup(&self, id: &str) -> Result<(), HostError> {
        let slot = self.inner.slot(id)?;
        let tenants: Vec<String> = slot.lifecycle.lock().tenants().iter().cloned().collect();
        let mut first_error = None;
        for tenant in tenants {
            if let Err(e) = self.deactivate(id, &tenant) {
                first_error.get_or_insert(e);
            }
        }
        let result = self.step(&slot, Transition::Cleanup, Call::Cleanup, |p| {
            p.base.cleanup()
        });
        match (result, first_error) {
            (Err(e), _) | (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
        }
    }

    /// Cleans the plugin up if needed and removes it from the registry. The
    /// library stays mapped (see ARCHITECTURE.md, "Unloading").
    pub fn remove(&self, id: &str) -> Result<(), HostError> {
        let slot = self.inner.slot(id)?;
        let state = slot.lifecycle.lock().state();
        let result = if state == PluginState::CleanedUp {
            Ok(())
        } else {
            self.cleanup(id)
        };
        self.inner.plugins.write().remove(id);
        self.inner.subscriptions.write().retain(|s| s.plugin != id);
        self.inner.rebuild_hook_order();
        result
    }

    /// Runs one lifecycle step under the plugin's lifecycle lock.
    fn step(
        &self,
        slot: &Slot,
        transition: Transition,
        call: Call,
        f: impl FnOnce(&PluginInstance) -> RResult<(), PluginError>,
    ) -> Result<(), HostError> {
        let mut life = slot.lifecycle.lock();
        life.check(&transition)
            .map_err(|state| HostError::IllegalTransition {
                plugin: slot.id.clone(),
                state,
                transition: transition.clone(),
            })?;
        let loaded = slot.current.read().clone();
        let result = f(&loaded.instance);
        self.inner.invalidate_dispatch();
        match result {
            RResult::ROk(()) => {
                life.complete(&transition);
                tracing::info!(plugin = %slot.id, step = %transition, "lifecycle step done");
                Ok(())
            }
            RResult::RErr(error) => {
                let source = slot.source.read().clone();
                let err = loader::call_error(&slot.id, &source, call, &error);
                slot.metrics.record_error(
                    None,
                    &err.to_string(),
                    matches!(err, HostError::CallPanicked { .. }),
                );
                tracing::error!(plugin = %slot.id, step = %transition, "{err}");
                // A failed activate or deactivate concerns one tenant; the plugin
                // keeps serving the others. Anything else leaves it unusable.
                match transition {
                    Transition::Activate(_) => {}
                    Transition::Deactivate(ref t) => {
                        // The tenant is no longer served either way.
                        life.complete(&Transition::Deactivate(t.clone()));
                    }
                    Transition::Cleanup => life.complete(&Transition::Cleanup),
                    Transition::Initialize => life.fail(err.to_string()),
                }
                Err(err)
            }
        }
    }

    /// The plugin's lifecycle state.
    pub fn state(&self, id: &str) -> Option<PluginState> {
        let slot = self.inner.plugins.read().get(id).cloned()?;
        let state = slot.lifecycle.lock().state();
        Some(state)
    }
}
