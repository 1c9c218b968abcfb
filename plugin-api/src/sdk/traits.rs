//! What a plugin author implements: `Plugin` and the extension traits
//! `Hooks`, `Service`, `Stateful`, with the hook types they see.

use serde::de::DeserializeOwned;

use super::{Health, Host, Result, TenantConfig};
use crate::abi::PluginError;

/// A hook invocation as a subscriber sees it.
#[derive(Debug, Clone, Copy)]
pub struct HookEvent<'a> {
    /// The tenant it fired for.
    pub tenant: &'a str,
    /// The hook name.
    pub hook: &'a str,
    /// The payload's content type.
    pub content_type: &'a str,
    /// The payload.
    pub payload: &'a [u8],
}

impl HookEvent<'_> {
    /// The payload parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.payload).map_err(|e| {
            PluginError::invalid_request(format!(
                "hook `{}` payload is not the expected JSON: {e}",
                self.hook
            ))
        })
    }
}

/// What a hook subscriber decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// Pass the payload on unchanged.
    Continue,
    /// Filters only: replace the payload.
    Replace {
        /// The new content type.
        content_type: String,
        /// The new bytes.
        bytes: Vec<u8>,
    },
    /// Filters only: stop the chain.
    Veto(String),
}

impl HookAction {
    /// Replaces the payload with `value` as JSON.
    pub fn replace_json<T: serde::Serialize>(value: &T) -> Result<Self> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| PluginError::invalid_request(format!("replacement payload: {e}")))?;
        Ok(Self::Replace {
            content_type: "application/json".to_owned(),
            bytes,
        })
    }
}

/// The lifecycle a plugin author implements.
///
/// All methods take `&self`: the host may call a plugin from many threads at
/// once, so per-tenant state lives behind the plugin's own locks. The host
/// serializes lifecycle calls for one plugin.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Stable identifier, matching `id` in plugin.toml; write
    /// `const ID: &'static str = plugin_api::manifest_id!();` to take it from there.
    const ID: &'static str;
    /// Human-readable name.
    const NAME: &'static str;
    /// Category code, e.g. `communication` (one of [`crate::KNOWN_CATEGORIES`]).
    const CATEGORY: &'static str;

    /// Builds the plugin object. No IO here; do that in `initialize`.
    fn new() -> Result<Self>;

    /// Called once after loading.
    fn initialize(&self, host: &Host) -> Result<()> {
        let _ = host;
        Ok(())
    }

    /// Starts serving a tenant.
    fn activate(&self, tenant: &TenantConfig) -> Result<()> {
        let _ = tenant;
        Ok(())
    }

    /// Stops serving a tenant.
    fn deactivate(&self, tenant: &str) -> Result<()> {
        let _ = tenant;
        Ok(())
    }

    /// Called once before unloading: stop every thread the plugin started.
    fn cleanup(&self) -> Result<()> {
        Ok(())
    }

    /// The plugin's health right now.
    fn health(&self) -> Health {
        Health::healthy()
    }
}

/// Receives the hooks listed under `[[hooks]]` in plugin.toml.
pub trait Hooks: Plugin {
    /// Handles one invocation.
    fn on_hook(&self, event: HookEvent<'_>) -> Result<HookAction>;
}

/// Generic byte-level calls (the `custom` category).
pub trait Service: Plugin {
    /// Handles `method` for `tenant`.
    fn invoke(&self, tenant: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>>;
}

/// State that survives a hot reload.
pub trait Stateful: Plugin {
    /// The format version of the bytes `save_state` produces.
    const STATE_VERSION: u32;
    /// Serializes the state.
    fn save_state(&self) -> Result<Vec<u8>>;
    /// Restores state saved by a previous build with format `version`.
    fn restore_state(&self, version: u32, bytes: &[u8]) -> Result<()>;
}
