//! Everything that crosses the host/plugin boundary: the root module, the
//! lifecycle and extension traits, and the values they pass.
//!
//! Plugin authors never touch this module; the SDK (crate root) and
//! [`export_plugin!`](crate::export_plugin) build it for them. The host reads
//! it through `plugin-host`'s loader, which converts every value into owned
//! host types right at the boundary (a plugin-allocated `RString` kept by the
//! host would point into the plugin's allocator vtable, which dies on unload).
//!
//! # Changing this module
//! A newer host rejects a plugin built against an older layout, even for
//! appended prefix fields, so existing types are never edited in place. Add a
//! new extension trait, or bump the crate's minor version (0.x) so that the
//! version check refuses old plugins with a clear "rebuild" message.

// sabi_trait expands to impls inside functions and to `Trait_TO`-style names.
#![allow(
    non_local_definitions,
    reason = "abi_stable's sabi_trait expands impl blocks inside const items"
)]
#![allow(
    non_camel_case_types,
    reason = "abi_stable's sabi_trait generates `Trait_TO` and `Trait_CTO` names"
)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};
use serde::{Deserialize, Serialize};

use std::ffi::c_void;

/// The root module every plugin library exports (through `export_plugin!`).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The plugin's identity; cheap and side-effect free.
    pub info: extern "C" fn() -> PluginInfo,
    /// Builds the plugin object. Runs the author's constructor under a panic guard.
    #[sabi(last_prefix_field)]
    pub instantiate: extern "C" fn() -> RResult<PluginInstance, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "plugkit_plugin";
    const NAME: &'static str = "plugkit_plugin";
    // The plugin-api crate version: a plugin built against another 0.x minor
    // is refused before its layout is even looked at.
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// A plugin's identity, as compiled into it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Stable identifier, e.g. `twilio`.
    pub id: RString,
    /// Human-readable name.
    pub name: RString,
    /// The plugin's own semver version.
    pub version: RString,
    /// One-line description.
    pub description: RString,
    /// Authors, comma separated.
    pub authors: RString,
    /// Category code (one of [`crate::KNOWN_CATEGORIES`]); a string so the set can grow.
    pub category: RString,
    /// The plugin-api version the plugin was compiled against.
    pub api_version: RString,
}

/// The objects one plugin offers. Every extension is optional; categories are
/// an open list, so a new category changes no layout here.
#[repr(C)]
#[derive(StableAbi)]
pub struct PluginInstance {
    /// The lifecycle every plugin has.
    pub base: BasePluginBox,
    /// Subscribes to hooks.
    pub hooks: ROption<HookHandlerBox>,
    /// Generic byte-level service calls (the `custom` category).
    pub service: ROption<ServiceBox>,
    /// Hands state across a hot reload.
    pub state: ROption<StatefulBox>,
    /// The category contracts the plugin implements, each naming itself
    /// (see [`crate::category`]).
    pub categories: RVec<CategoryObject>,
}

/// One category object, type-erased so that the set of categories can grow
/// without changing [`PluginInstance`]'s layout. The host checks `layout`
/// against the layout it expects for `name` before it ever casts `object`.
#[repr(C)]
#[derive(StableAbi)]
pub struct CategoryObject {
    /// The category code, e.g. `communication`.
    pub name: RStr<'static>,
    /// The plugin's `&'static TypeLayout` of the object's type.
    pub layout: *const c_void,
    /// The object, boxed by the plugin.
    pub object: *mut c_void,
    /// Drops `object` with the plugin's own code and allocator.
    pub drop_object: unsafe extern "C" fn(*mut c_void),
}

// SAFETY: `object` is always a `T: Send + Sync` (see
// `category::export_object`, the only constructor), and `layout` points to
// immutable static data.
unsafe impl Send for CategoryObject {}
// SAFETY: as above.
unsafe impl Sync for CategoryObject {}

impl Drop for CategoryObject {
    fn drop(&mut self) {
        // SAFETY: `object` was made by `export_object` together with this
        // function, and is dropped exactly once, here.
        unsafe { (self.drop_object)(self.object) }
    }
}

/// An error returned across the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PluginError {
    /// The plugin could not do what was asked.
    Failed {
        /// What went wrong.
        message: RString,
    },
    /// The plugin panicked; the SDK caught it.
    Panicked {
        /// The panic message and location.
        message: RString,
    },
    /// A configuration value is missing or of the wrong type.
    InvalidConfig {
        /// The configuration key.
        key: RString,
        /// What is wrong with it.
        message: RString,
    },
    /// A host service was used without the permission declared in the manifest.
    PermissionDenied {
        /// The missing permission, e.g. `secrets:read`.
        permission: RString,
    },
    /// The request itself is invalid.
    InvalidRequest {
        /// What is wrong with it.
        message: RString,
    },
    /// The thing asked for does not exist.
    NotFound {
        /// What was not found.
        what: RString,
    },
    /// An external provider (an HTTP API, a device) answered with an error.
    Provider {
        /// The provider's error code, e.g. `21211` or `card_declined`.
        code: RString,
        /// The provider's message.
        message: RString,
        /// Whether retrying the same request may succeed.
        retryable: bool,
    },
    /// The plugin does not support this call or this tenant.
    Unsupported {
        /// What is not supported.
        message: RString,
    },
}

/// Log levels a plugin can write at.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed diagnostics.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// Something failed.
    Error,
}

/// What a plugin reports about itself.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working.
    Healthy,
    /// Working with reduced function.
    Degraded,
    /// Not working.
    Unhealthy,
}

/// A plugin's health with an explanation.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The status.
    pub status: HealthStatus,
    /// Why, when not healthy.
    pub message: RString,
}

/// Everything a tenant activation hands to the plugin.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct TenantActivation {
    /// The tenant id.
    pub tenant: RString,
    /// The tenant's resolved configuration, a JSON object (secrets already resolved).
    pub config_json: RString,
}

/// A hook invocation; borrowed so a large payload is never copied per subscriber.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct HookCall<'a> {
    /// The tenant the hook fired for.
    pub tenant: RStr<'a>,
    /// The hook name, e.g. `invoice.paid`.
    pub hook: RStr<'a>,
    /// The payload's content type, `application/json` by default.
    pub content_type: RStr<'a>,
    /// The payload bytes.
    pub payload: RSlice<'a, u8>,
}

/// An owned payload.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The content type.
    pub content_type: RString,
    /// The bytes.
    pub bytes: RVec<u8>,
}

/// What a hook subscriber decided.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Pass the payload on unchanged.
    Continue,
    /// Filters only: pass this payload on instead.
    Replace(Payload),
    /// Filters only: stop the chain, with a reason.
    Veto(RString),
    /// The subscriber failed.
    Failed(PluginError),
}

/// State handed from an old instance to a new one across a hot reload.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// A version number the plugin owns, so a new build can refuse or migrate old state.
    pub format_version: u32,
    /// The serialized state.
    pub bytes: RVec<u8>,
}

/// The lifecycle every plugin implements.
#[sabi_trait]
pub trait BasePlugin: Send + Sync {
    /// Called once after loading, with the host's services.
    fn initialize(&self, host: HostServicesBox) -> RResult<(), PluginError>;
    /// Starts serving a tenant with its configuration.
    fn activate(&self, tenant: TenantActivation) -> RResult<(), PluginError>;
    /// Stops serving a tenant.
    fn deactivate(&self, tenant: RStr<'_>) -> RResult<(), PluginError>;
    /// Called once before the plugin is dropped: stop threads, close connections.
    fn cleanup(&self) -> RResult<(), PluginError>;
    /// The plugin's health right now.
    #[sabi(last_prefix_field)]
    fn health(&self) -> HealthReport;
}

/// The lifecycle trait object.
pub type BasePluginBox = BasePlugin_TO<'static, RArc<()>>;

/// Receives hooks the plugin subscribed to in its manifest.
#[sabi_trait]
pub trait HookHandler: Send + Sync {
    /// Handles one hook invocation.
    #[sabi(last_prefix_field)]
    fn on_hook(&self, call: HookCall<'_>) -> HookOutcome;
}

/// The hook handler trait object.
pub type HookHandlerBox = HookHandler_TO<'static, RArc<()>>;

/// Generic request/response calls with byte payloads.
#[sabi_trait]
pub trait Service: Send + Sync {
    /// Calls `method` with `payload` on behalf of `tenant`.
    #[sabi(last_prefix_field)]
    fn invoke(
        &self,
        tenant: RStr<'_>,
        method: RStr<'_>,
        payload: RSlice<'_, u8>,
    ) -> RResult<RVec<u8>, PluginError>;
}

/// The service trait object.
pub type ServiceBox = Service_TO<'static, RArc<()>>;

/// Hands state over across a hot reload.
#[sabi_trait]
pub trait Stateful: Send + Sync {
    /// Serializes the state the next version should start from.
    fn save_state(&self) -> RResult<ROption<SavedState>, PluginError>;
    /// Restores state saved by a previous version.
    #[sabi(last_prefix_field)]
    fn restore_state(&self, state: SavedState) -> RResult<(), PluginError>;
}

/// The state hand-over trait object.
pub type StatefulBox = Stateful_TO<'static, RArc<()>>;

/// Services the host offers a plugin, each gated by the permissions in its manifest.
#[sabi_trait]
pub trait HostServices: Send + Sync {
    /// Writes a line to the host's log, tagged with the plugin id.
    fn log(&self, level: LogLevel, message: RStr<'_>);
    /// The plugin-wide configuration as a JSON object.
    fn config_json(&self) -> RString;
    /// Reads a named secret for a tenant (`secrets:read`).
    fn secret(&self, tenant: RStr<'_>, name: RStr<'_>) -> RResult<RString, PluginError>;
    /// Raises a hook (`hooks:emit`).
    fn emit(&self, tenant: RStr<'_>, hook: RStr<'_>, payload: Payload) -> RResult<(), PluginError>;
    /// Reads from the plugin's key/value store (`storage:read`).
    fn state_get(&self, tenant: RStr<'_>, key: RStr<'_>)
        -> RResult<ROption<RVec<u8>>, PluginError>;
    /// Writes to the plugin's key/value store (`storage:write`).
    fn state_put(
        &self,
        tenant: RStr<'_>,
        key: RStr<'_>,
        value: RSlice<'_, u8>,
    ) -> RResult<(), PluginError>;
    /// Records a metric value (`metrics:write`).
    #[sabi(last_prefix_field)]
    fn metric(&self, name: RStr<'_>, value: f64) -> RResult<(), PluginError>;
}

/// The host services trait object.
pub type HostServicesBox = HostServices_TO<'static, RArc<()>>;

/// A name/value pair, for webhook parameters and metadata.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The name.
    pub name: RString,
    /// The value.
    pub value: RString,
}

impl KeyValue {
    /// Builds a pair.
    pub fn new(name: impl Into<RString>, value: impl Into<RString>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// An inbound webhook as the daemon received it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WebhookRequest {
    /// The full URL the provider called, including the query string.
    pub url: RString,
    /// Form parameters (for form-encoded bodies), in the order received.
    pub params: RVec<KeyValue>,
    /// The raw body.
    pub body: RVec<u8>,
    /// The provider's signature header value.
    pub signature: RString,
}
