//! The services a plugin may call back into (log, configuration, secrets,
//! hooks, state, metrics), each gated by the permissions its manifest
//! declares. A refused call is logged and returns `PermissionDenied`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RSlice, RStr, RString, RVec};
use parking_lot::Mutex;
use plugin_api::abi::{
    HostServices, HostServicesBox, HostServices_TO, LogLevel, Payload, PluginError,
};

use plugin_package::manifest::Permission;

/// What the services need from the host, so that this module does not
/// depend on the host's registry (the host implements it).
pub(crate) trait ServiceBackend: Send + Sync {
    /// Counts a refused host service call for `plugin`, under `tenant` when
    /// the call named one the plugin is counted for.
    fn record_denied(&self, plugin: &str, tenant: Option<&str>);
    /// Counts a custom metric value for `plugin`.
    fn record_custom(&self, plugin: &str, name: &str, value: f64);
    /// Secret `name` of `plugin` for `tenant`: a string value of the
    /// tenant's activation configuration (tenancy resolved its reference).
    fn secret_for(&self, plugin: &str, tenant: &str, name: &str) -> Result<String, PluginError>;
    /// Fires hook `hook` raised by `plugin`.
    fn emit_from_plugin(
        &self,
        plugin: &str,
        tenant: &str,
        hook: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<(), PluginError>;
}

/// The per-plugin key/value store (tenant, key) → bytes.
pub(crate) type StateStore = Mutex<BTreeMap<(String, String), Vec<u8>>>;

/// What one plugin may do, and where its calls go.
pub(crate) struct PluginServices {
    pub(crate) plugin: String,
    pub(crate) permissions: BTreeSet<Permission>,
    pub(crate) config_json: String,
    pub(crate) store: Arc<StateStore>,
    pub(crate) host: Weak<dyn ServiceBackend>,
}

impl PluginServices {
    pub(crate) fn into_box(self) -> HostServicesBox {
        HostServices_TO::from_ptr(RArc::new(self), TD_Opaque)
    }

    fn require(&self, permission: Permission, tenant: Option<&str>) -> Result<(), PluginError> {
        if self.permissions.contains(&permission) {
            Ok(())
        } else {
            tracing::warn!(
                plugin = %self.plugin,
                permission = permission.name(),
                tenant = tenant.unwrap_or_default(),
                "refused a host service call: permission not declared in plugin.toml"
            );
            if let Some(host) = self.host.upgrade() {
                host.record_denied(&self.plugin, tenant);
            }
            Err(PluginError::PermissionDenied {
                permission: permission.name().into(),
            })
        }
    }
}

impl HostServices for PluginServices {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let plugin = self.plugin.as_str();
        let message = message.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            LogLevel::Error => tracing::error!(target: "plugin", plugin, "{message}"),
        }
    }

    fn config_json(&self) -> RString {
        self.config_json.as_str().into()
    }

    fn secret(&self, tenant: RStr<'_>, name: RStr<'_>) -> RResult<RString, PluginError> {
        if let Err(e) = self.require(Permission::SecretsRead, Some(tenant.as_str())) {
            return RResult::RErr(e);
        }
        let Some(host) = self.host.upgrade() else {
            return RResult::RErr(PluginError::failed("the host is shutting down"));
        };
        host.secret_for(&self.plugin, tenant.as_str(), name.as_str())
            .map(RString::from)
            .into()
    }

    fn emit(&self, tenant: RStr<'_>, hook: RStr<'_>, payload: Payload) -> RResult<(), PluginError> {
        if let Err(e) = self.require(Permission::HooksEmit, Some(tenant.as_str())) {
            return RResult::RErr(e);
        }
        let Some(host) = self.host.upgrade() else {
            return RResult::RErr(PluginError::failed("the host is shutting down"));
        };
        host.emit_from_plugin(
            &self.plugin,
            tenant.as_str(),
            hook.as_str(),
            payload.content_type.as_str(),
            payload.bytes.as_slice(),
        )
        .into()
    }

    fn state_get(
        &self,
        tenant: RStr<'_>,
        key: RStr<'_>,
    ) -> RResult<ROption<RVec<u8>>, PluginError> {
        if let Err(e) = self.require(Permission::StorageRead, Some(tenant.as_str())) {
            return RResult::RErr(e);
        }
        let store = self.store.lock();
        let value = store
            .get(&(tenant.to_string(), key.to_string()))
            .map(|v| RVec::from(v.clone()));
        RResult::ROk(value.into())
    }

    fn state_put(
        &self,
        tenant: RStr<'_>,
        key: RStr<'_>,
        value: RSlice<'_, u8>,
    ) -> RResult<(), PluginError> {
        if let Err(e) = self.require(Permission::StorageWrite, Some(tenant.as_str())) {
            return RResult::RErr(e);
        }
        self.store
            .lock()
            .insert((tenant.to_string(), key.to_string()), value.to_vec());
        RResult::ROk(())
    }

    fn metric(&self, name: RStr<'_>, value: f64) -> RResult<(), PluginError> {
        if let Err(e) = self.require(Permission::MetricsWrite, None) {
            return RResult::RErr(e);
        }
        if let Some(host) = self.host.upgrade() {
            host.record_custom(&self.plugin, name.as_str(), value);
        }
        RResult::ROk(())
    }
}
