//! `Host`: the host's services as a plugin sees them (logs, metrics,
//! state, secrets, hooks it raises), and a tenant's configuration
//! (`TenantConfig`, `Secret`).

use std::sync::Arc;

use abi_stable::std_types::RVec;
use serde::de::DeserializeOwned;

use super::Result;
use crate::abi::{HostServicesBox, LogLevel, Payload, PluginError};

/// The host's services, as a plugin sees them. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    pub(super) inner: Arc<HostServicesBox>,
}

impl Host {
    /// Writes a log line at `level`; it lands in the host's log tagged with the plugin id.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, message.into());
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at error level.
    pub fn error(&self, message: &str) {
        self.log(LogLevel::Error, message);
    }

    /// The plugin-wide configuration, deserialized.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        let json = self.inner.config_json();
        serde_json::from_str(json.as_str())
            .map_err(|e| PluginError::invalid_config("<plugin>", e.to_string()))
    }

    /// Reads a secret for a tenant. Needs the `secrets:read` permission.
    pub fn secret(&self, tenant: &str, name: &str) -> Result<Secret> {
        self.inner
            .secret(tenant.into(), name.into())
            .into_result()
            .map(|value| Secret(value.into_string()))
    }

    /// Raises a hook with a JSON payload. Needs the `hooks:emit` permission.
    pub fn emit_json<T: serde::Serialize>(
        &self,
        tenant: &str,
        hook: &str,
        payload: &T,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(payload)
            .map_err(|e| PluginError::invalid_request(format!("hook payload: {e}")))?;
        let payload = Payload {
            content_type: "application/json".into(),
            bytes: bytes.into(),
        };
        self.inner
            .emit(tenant.into(), hook.into(), payload)
            .into_result()
    }

    /// Reads a value from the plugin's store. Needs `storage:read`.
    pub fn state_get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner
            .state_get(tenant.into(), key.into())
            .into_result()
            .map(|v| v.into_option().map(RVec::into_vec))
    }

    /// Writes a value to the plugin's store. Needs `storage:write`.
    pub fn state_put(&self, tenant: &str, key: &str, value: &[u8]) -> Result<()> {
        self.inner
            .state_put(tenant.into(), key.into(), value.into())
            .into_result()
    }

    /// Records a metric. Needs `metrics:write`.
    pub fn metric(&self, name: &str, value: f64) -> Result<()> {
        self.inner.metric(name.into(), value).into_result()
    }
}

/// A secret value: never shown by `Debug` or `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself; use it only where it is sent, never where it is printed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A tenant's configuration as handed to [`Plugin::activate`](super::Plugin::activate).
#[derive(Clone)]
pub struct TenantConfig {
    tenant: String,
    values: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may hold resolved secrets; show only which keys are set.
        f.debug_struct("TenantConfig")
            .field("tenant", &self.tenant)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TenantConfig {
    /// Builds a configuration by hand, for unit tests of plugin logic.
    pub fn new(tenant: impl Into<String>, values: serde_json::Value) -> Self {
        let values = match values {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        Self {
            tenant: tenant.into(),
            values,
        }
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The whole configuration deserialized into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(serde_json::Value::Object(self.values.clone())).map_err(|e| {
            PluginError::invalid_config(format!("tenant {}", self.tenant), e.to_string())
        })
    }

    /// One value deserialized into `T`, or `None` when the key is absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.values.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| PluginError::invalid_config(key, e.to_string())),
        }
    }

    /// A required string value.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.values
            .get(key)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| PluginError::invalid_config(key, "required string value is missing"))
    }

    /// A required value that must never be printed.
    pub fn require_secret(&self, key: &str) -> Result<Secret> {
        self.require_str(key).map(Secret::new)
    }
}
