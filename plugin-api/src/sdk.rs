//! The safe SDK: the plain-Rust traits a plugin author implements, and the
//! adapters that turn them into the stable-ABI objects of [`crate::abi`].
//!
//! Every adapter method runs the author's code under `guard`, so a panic
//! becomes a [`PluginError::Panicked`] instead of aborting the host.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Once};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RSlice, RStr, RVec};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;

use crate::abi::{
    self, BasePlugin_TO, CategoryObject, HealthReport, HealthStatus, HookCall, HookHandler_TO,
    HookOutcome, HostServicesBox, LogLevel, Payload, PluginError, PluginInstance, SavedState,
    Service_TO, Stateful_TO, TenantActivation,
};

/// Errors a plugin returns. The same type crosses the boundary unchanged.
pub type Error = PluginError;

/// Shorthand for results in plugin code.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl PluginError {
    /// A general failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into().into(),
        }
    }

    /// An invalid or missing configuration value.
    pub fn invalid_config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            key: key.into().into(),
            message: message.into().into(),
        }
    }

    /// A request the plugin cannot act on.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into().into(),
        }
    }

    /// Something asked for does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound {
            what: what.into().into(),
        }
    }

    /// An error answered by an external provider.
    pub fn provider(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        Self::Provider {
            code: code.into().into(),
            message: message.into().into(),
            retryable,
        }
    }

    /// A call the plugin does not support.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::Unsupported {
            message: message.into().into(),
        }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed { message } => write!(f, "{message}"),
            Self::Panicked { message } => write!(f, "panicked: {message}"),
            Self::InvalidConfig { key, message } => {
                write!(f, "invalid configuration `{key}`: {message}")
            }
            Self::PermissionDenied { permission } => write!(
                f,
                "permission `{permission}` is not declared in the plugin's manifest; \
                 add it to `permissions` in plugin.toml"
            ),
            Self::InvalidRequest { message } => write!(f, "invalid request: {message}"),
            Self::NotFound { what } => write!(f, "not found: {what}"),
            Self::Provider {
                code,
                message,
                retryable,
            } => {
                let retry = if *retryable { " (retryable)" } else { "" };
                write!(f, "provider error {code}: {message}{retry}")
            }
            Self::Unsupported { message } => write!(f, "unsupported: {message}"),
        }
    }
}

impl std::error::Error for PluginError {}

/// A plugin's health, in plain Rust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why, when not healthy.
    pub message: String,
}

impl Health {
    /// Everything works.
    pub fn healthy() -> Self {
        Self {
            status: HealthStatus::Healthy,
            message: String::new(),
        }
    }

    /// Works with reduced function.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Degraded,
            message: message.into(),
        }
    }

    /// Does not work.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Unhealthy,
            message: message.into(),
        }
    }
}

/// The host's services, as a plugin sees them. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostServicesBox>,
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

/// A tenant's configuration as handed to [`Plugin::activate`].
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

/// Runs `f`, turning a panic into [`PluginError::Panicked`].
#[inline(always)]
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> RResult<T, PluginError> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(error)) => RResult::RErr(error),
        Err(payload) => RResult::RErr(panicked(payload)),
    }
}

#[cold]
pub(crate) fn panicked(payload: Box<dyn Any + Send>) -> PluginError {
    PluginError::Panicked {
        message: panic_message(&*payload).into(),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The host this library was initialized by, for the panic hook.
static PANIC_LOG: RwLock<Option<Host>> = RwLock::new(None);
static PANIC_HOOK: Once = Once::new();

/// Replaces this library's panic hook (each cdylib has its own std) with one
/// that forwards to the host log and never captures a backtrace: with
/// `RUST_BACKTRACE=1` the default hook symbolizes every caught panic, which
/// pins the library and grows memory without bound.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let message = panic_message(info.payload());
            let line = match info.location() {
                Some(loc) => format!("panicked at {}:{}: {message}", loc.file(), loc.line()),
                None => format!("panicked: {message}"),
            };
            match PANIC_LOG.try_read().as_ref().and_then(|h| h.as_ref()) {
                Some(host) => host.log(LogLevel::Error, &line),
                None => eprintln!("plugin {line}"),
            }
        }));
    });
}

/// Wraps an author's plugin so it can implement the ABI traits.
#[doc(hidden)]
pub struct Adapter<P>(pub(crate) P);

impl<P> Adapter<P> {
    /// The author's plugin.
    #[inline(always)]
    pub(crate) fn plugin(&self) -> &P {
        &self.0
    }
}

impl<P: Plugin> abi::BasePlugin for Adapter<P> {
    fn initialize(&self, host: HostServicesBox) -> RResult<(), PluginError> {
        let host = Host {
            inner: Arc::new(host),
        };
        *PANIC_LOG.write() = Some(host.clone());
        guard(|| self.0.initialize(&host))
    }

    fn activate(&self, tenant: TenantActivation) -> RResult<(), PluginError> {
        guard(|| {
            let values: serde_json::Value = serde_json::from_str(tenant.config_json.as_str())
                .map_err(|e| PluginError::invalid_config("<tenant>", e.to_string()))?;
            self.0
                .activate(&TenantConfig::new(tenant.tenant.as_str(), values))
        })
    }

    fn deactivate(&self, tenant: RStr<'_>) -> RResult<(), PluginError> {
        guard(|| self.0.deactivate(tenant.as_str()))
    }

    fn cleanup(&self) -> RResult<(), PluginError> {
        let result = guard(|| self.0.cleanup());
        // The host object points into the host, which outlives us, but a
        // cleaned-up plugin must hold nothing that keeps the host busy.
        *PANIC_LOG.write() = None;
        result
    }

    fn health(&self) -> HealthReport {
        match guard(|| Ok(self.0.health())) {
            RResult::ROk(h) => HealthReport {
                status: h.status,
                message: h.message.into(),
            },
            RResult::RErr(e) => HealthReport {
                status: HealthStatus::Unhealthy,
                message: e.to_string().into(),
            },
        }
    }
}

impl<P: Hooks> abi::HookHandler for Adapter<P> {
    fn on_hook(&self, call: HookCall<'_>) -> HookOutcome {
        let event = HookEvent {
            tenant: call.tenant.as_str(),
            hook: call.hook.as_str(),
            content_type: call.content_type.as_str(),
            payload: call.payload.as_slice(),
        };
        match guard(|| self.0.on_hook(event)) {
            RResult::ROk(HookAction::Continue) => HookOutcome::Continue,
            RResult::ROk(HookAction::Replace {
                content_type,
                bytes,
            }) => HookOutcome::Replace(Payload {
                content_type: content_type.into(),
                bytes: bytes.into(),
            }),
            RResult::ROk(HookAction::Veto(reason)) => HookOutcome::Veto(reason.into()),
            RResult::RErr(e) => HookOutcome::Failed(e),
        }
    }
}

impl<P: Service> abi::Service for Adapter<P> {
    #[inline]
    fn invoke(
        &self,
        tenant: RStr<'_>,
        method: RStr<'_>,
        payload: RSlice<'_, u8>,
    ) -> RResult<RVec<u8>, PluginError> {
        guard(|| {
            self.0
                .invoke(tenant.as_str(), method.as_str(), payload.as_slice())
                .map(RVec::from)
        })
    }
}

impl<P: Stateful> abi::Stateful for Adapter<P> {
    fn save_state(&self) -> RResult<ROption<SavedState>, PluginError> {
        guard(|| {
            self.0.save_state().map(|bytes| {
                ROption::RSome(SavedState {
                    format_version: P::STATE_VERSION,
                    bytes: bytes.into(),
                })
            })
        })
    }

    fn restore_state(&self, state: SavedState) -> RResult<(), PluginError> {
        guard(|| {
            self.0
                .restore_state(state.format_version, state.bytes.as_slice())
        })
    }
}

/// Builds the plugin's identity; called by `export_plugin!`.
#[doc(hidden)]
pub fn __info<P: Plugin>(version: &str, description: &str, authors: &str) -> abi::PluginInfo {
    abi::PluginInfo {
        id: P::ID.into(),
        name: P::NAME.into(),
        version: version.into(),
        description: description.into(),
        authors: authors.into(),
        category: P::CATEGORY.into(),
        api_version: crate::API_VERSION.into(),
    }
}

/// Builds one extension object from the shared plugin object.
#[doc(hidden)]
pub type __MakeExtension<P, T> = Option<fn(&RArc<Adapter<P>>) -> T>;

/// Builds one category object from the shared plugin object.
#[doc(hidden)]
pub type __ExportCategory<P> = fn(&RArc<Adapter<P>>) -> CategoryObject;

/// Which extensions `export_plugin!` should expose.
#[doc(hidden)]
pub struct __Extensions<P> {
    pub hooks: __MakeExtension<P, abi::HookHandlerBox>,
    pub service: __MakeExtension<P, abi::ServiceBox>,
    pub state: __MakeExtension<P, abi::StatefulBox>,
    pub categories: Vec<__ExportCategory<P>>,
    /// The fast call table over `Service` by name (`service` listed).
    pub fast_by_name: Option<__ExportCategory<P>>,
    /// The fast call table over `FastService` (`fast_service` listed); wins.
    pub fast_native: Option<__ExportCategory<P>>,
    /// The fast hook table (`hooks` listed).
    pub fast_hooks: Option<__ExportCategory<P>>,
}

impl<P> Default for __Extensions<P> {
    fn default() -> Self {
        Self {
            hooks: None,
            service: None,
            state: None,
            categories: Vec::new(),
            fast_by_name: None,
            fast_native: None,
            fast_hooks: None,
        }
    }
}

#[doc(hidden)]
pub fn __hooks<P: Hooks>(p: &RArc<Adapter<P>>) -> abi::HookHandlerBox {
    HookHandler_TO::from_ptr(p.clone(), TD_Opaque)
}
#[doc(hidden)]
pub fn __service<P: Service>(p: &RArc<Adapter<P>>) -> abi::ServiceBox {
    Service_TO::from_ptr(p.clone(), TD_Opaque)
}
#[doc(hidden)]
pub fn __state<P: Stateful>(p: &RArc<Adapter<P>>) -> abi::StatefulBox {
    Stateful_TO::from_ptr(p.clone(), TD_Opaque)
}

/// Builds the plugin object and its extensions; called by `export_plugin!`.
#[doc(hidden)]
pub fn __instantiate<P: Plugin>(
    extensions: __Extensions<P>,
) -> RResult<PluginInstance, PluginError> {
    install_panic_hook();
    guard(|| {
        let plugin = RArc::new(Adapter(P::new()?));
        Ok(PluginInstance {
            hooks: extension(extensions.hooks, &plugin),
            service: extension(extensions.service, &plugin),
            state: extension(extensions.state, &plugin),
            categories: extensions
                .categories
                .iter()
                .chain(extensions.fast_native.or(extensions.fast_by_name).iter())
                .chain(extensions.fast_hooks.iter())
                .map(|export| export(&plugin))
                .collect(),
            base: BasePlugin_TO::from_ptr(plugin, TD_Opaque),
        })
    })
}

fn extension<P, T>(make: __MakeExtension<P, T>, plugin: &RArc<Adapter<P>>) -> ROption<T> {
    match make {
        Some(make) => ROption::RSome(make(plugin)),
        None => ROption::RNone,
    }
}

/// Exports a plugin: the one line a plugin author writes.
///
/// ```text
/// plugin_api::export_plugin!(MyPlugin, extensions: [hooks, communication]);
/// ```
///
/// Extensions: `hooks` ([`Hooks`]), `service` ([`Service`]), `fast_service`
/// ([`FastService`](crate::fast::FastService), listed with `service`; see
/// [`crate::fast`]), `state` ([`Stateful`]), and any category module's name (`communication`,
/// `payment`, `network_automation`, `crm`; see [`crate::category`]).
///
/// The library header is exported under a symbol named after the crate
/// (`plugkit_root_module__<crate name>`), recorded in the `.plugkit_info`
/// section, so that several plugin crates can be linked into one test or
/// tool binary as `rlib`s without their symbols clashing.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::export_plugin!($plugin, extensions: []);
    };
    ($plugin:ty, extensions: [$($ext:ident),* $(,)?]) => {
        #[doc(hidden)]
        pub fn __plugkit_root_module() -> $crate::abi::PluginModRef {
            extern "C" fn info() -> $crate::abi::PluginInfo {
                // Referencing the identity record keeps the linker from dropping it.
                ::core::hint::black_box(&__PLUGKIT_INFO);
                $crate::sdk::__info::<$plugin>(
                    env!("CARGO_PKG_VERSION"),
                    env!("CARGO_PKG_DESCRIPTION"),
                    env!("CARGO_PKG_AUTHORS"),
                )
            }
            extern "C" fn instantiate(
            ) -> $crate::__abi_stable::std_types::RResult<$crate::abi::PluginInstance, $crate::abi::PluginError> {
                #[allow(unused_mut, reason = "mutated only when extensions are listed")]
                let mut ext = $crate::sdk::__Extensions::<$plugin>::default();
                $( $crate::export_plugin!(@ext ext, $plugin, $ext); )*
                $crate::sdk::__instantiate::<$plugin>(ext)
            }
            use $crate::__abi_stable::prefix_type::PrefixTypeTrait;
            $crate::abi::PluginMod { info, instantiate }.leak_into_prefix()
        }

        // What `#[abi_stable::export_root_module]` generates, spelled out so
        // plugins need no direct abi_stable dependency, under a per-crate
        // symbol the loader finds through the identity record.
        #[doc(hidden)]
        #[allow(unsafe_code, reason = "the library header is the one exported symbol; plugin crates may deny unsafe_code")]
        #[unsafe(export_name = concat!("plugkit_root_module__", env!("CARGO_CRATE_NAME")))]
        pub static __PLUGKIT_LIB_HEADER: $crate::__abi_stable::library::LibHeader = {
            extern "C" fn erased() -> $crate::__abi_stable::library::RootModuleResult {
                $crate::__abi_stable::library::__call_root_module_loader(__plugkit_root_module)
            }
            // SAFETY: `erased` returns the root module of type `PluginModRef`.
            unsafe {
                $crate::__abi_stable::library::LibHeader::from_constructor::<$crate::abi::PluginModRef>(
                    erased,
                    $crate::__abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };

        /// What this library says about itself, readable without loading it.
        #[allow(unsafe_code, reason = "a named link section; plugin crates may deny unsafe_code")]
        #[used]
        #[unsafe(link_section = ".plugkit_info")]
        static __PLUGKIT_INFO: [u8; $crate::sdk::__identity_len(
            <$plugin as $crate::Plugin>::ID,
            env!("CARGO_PKG_VERSION"),
            concat!("plugkit_root_module__", env!("CARGO_CRATE_NAME")),
        )] = $crate::sdk::__identity(
            <$plugin as $crate::Plugin>::ID,
            env!("CARGO_PKG_VERSION"),
            concat!("plugkit_root_module__", env!("CARGO_CRATE_NAME")),
        );
    };
    (@ext $e:ident, $p:ty, hooks) => {
        $e.hooks = Some($crate::sdk::__hooks::<$p>);
        $e.fast_hooks = Some($crate::fast_hooks::__export::<$p>);
    };
    (@ext $e:ident, $p:ty, service) => {
        $e.service = Some($crate::sdk::__service::<$p>);
        $e.fast_by_name = Some($crate::fast::__export_by_name::<$p>);
    };
    (@ext $e:ident, $p:ty, fast_service) => {
        $e.fast_native = Some($crate::fast::__export_native::<$p>);
    };
    (@ext $e:ident, $p:ty, state) => { $e.state = Some($crate::sdk::__state::<$p>); };
    (@ext $e:ident, $p:ty, $category:ident) => {
        $e.categories.push($crate::$category::__export::<$p>);
    };
}

/// The plugin's id, read at compile time from `plugin.toml` beside the
/// crate's `Cargo.toml`, so the id is written once. Compilation fails when
/// the file has no top-level `id = "..."` line, or when its `version`
/// differs from the crate's `Cargo.toml` version (which the library embeds).
///
/// ```ignore
/// impl plugin_api::Plugin for MyPlugin {
///     const ID: &'static str = plugin_api::manifest_id!();
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! manifest_id {
    () => {{
        const MANIFEST: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/plugin.toml"));
        const _: () = assert!(
            $crate::sdk::__str_eq(
                $crate::sdk::__manifest_str(MANIFEST, "version"),
                env!("CARGO_PKG_VERSION"),
            ),
            "plugin.toml's `version` differs from the crate's Cargo.toml `version`; make them equal"
        );
        $crate::sdk::__manifest_str(MANIFEST, "id")
    }};
}

/// The value of the top-level `key = "value"` line of a manifest text, at
/// compile time: a plain double-quoted string on one line, before the first
/// `[table]`. Panics (a compile error in a constant) otherwise.
#[doc(hidden)]
pub const fn __manifest_str(text: &'static str, key: &str) -> &'static str {
    const fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        i
    }
    let bytes = text.as_bytes();
    let key = key.as_bytes();
    let mut line = 0;
    while line < bytes.len() {
        let i = skip_blanks(bytes, line);
        if i < bytes.len() && bytes[i] == b'[' {
            break; // tables begin: no more top-level keys
        }
        let mut k = 0;
        while k < key.len() && i + k < bytes.len() && bytes[i + k] == key[k] {
            k += 1;
        }
        if k == key.len() {
            let mut j = skip_blanks(bytes, i + k);
            if j < bytes.len() && bytes[j] == b'=' {
                j = skip_blanks(bytes, j + 1);
                if j < bytes.len() && bytes[j] == b'"' {
                    let start = j + 1;
                    let mut end = start;
                    while end < bytes.len()
                        && bytes[end] != b'"'
                        && bytes[end] != b'\n'
                        && bytes[end] != b'\\'
                    {
                        end += 1;
                    }
                    if end < bytes.len() && bytes[end] == b'"' {
                        let (_, rest) = bytes.split_at(start);
                        let (value, _) = rest.split_at(end - start);
                        match core::str::from_utf8(value) {
                            Ok(value) => return value,
                            Err(_) => panic!("plugin.toml is not UTF-8"),
                        }
                    }
                }
                panic!(
                    "plugin.toml: write `id` and `version` as plain \"quoted strings\" on one line"
                );
            }
        }
        while line < bytes.len() && bytes[line] != b'\n' {
            line += 1;
        }
        line += 1;
    }
    panic!("plugin.toml needs top-level `id = \"...\"` and `version = \"...\"` lines before any [table]")
}

/// `a == b` at compile time.
#[doc(hidden)]
pub const fn __str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The identity record's prefix, so readers can find and check it.
pub(crate) const IDENTITY_MAGIC: &[u8; 8] = b"PLUGKIT1";

/// Length of the identity record `PLUGKIT1 id \0 version \0 symbol \0`.
#[doc(hidden)]
pub const fn __identity_len(id: &str, version: &str, symbol: &str) -> usize {
    IDENTITY_MAGIC.len() + id.len() + 1 + version.len() + 1 + symbol.len() + 1
}

/// Builds the identity record at compile time.
#[doc(hidden)]
pub const fn __identity<const N: usize>(id: &str, version: &str, symbol: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    let parts: [&[u8]; 4] = [
        IDENTITY_MAGIC.as_slice(),
        id.as_bytes(),
        version.as_bytes(),
        symbol.as_bytes(),
    ];
    let mut p = 0;
    while p < parts.len() {
        let part = parts[p];
        let mut j = 0;
        while j < part.len() {
            out[i] = part[j];
            i += 1;
            j += 1;
        }
        if p > 0 {
            i += 1; // NUL separator after each field
        }
        p += 1;
    }
    out
}

/// What a library's `.plugkit_info` section says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The plugin id (`Plugin::ID`).
    pub id: String,
    /// The plugin crate's version.
    pub version: String,
    /// The symbol its library header is exported under; `None` for
    /// libraries built before plugin-api 0.2 (they used abi_stable's fixed
    /// name, and are refused as too old anyway).
    pub symbol: Option<String>,
}

/// Parses an identity record found in a library's `.plugkit_info` section:
/// `PLUGKIT1` then NUL-terminated id, version and (since 0.2) symbol name.
pub fn parse_identity(section: &[u8]) -> Option<Identity> {
    let rest = section.strip_prefix(IDENTITY_MAGIC.as_slice())?;
    let mut parts = rest.split(|b| *b == 0);
    let id = std::str::from_utf8(parts.next()?).ok()?;
    let version = std::str::from_utf8(parts.next()?).ok()?;
    if id.is_empty() || version.is_empty() {
        return None;
    }
    let symbol = parts
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Some(Identity {
        id: id.to_owned(),
        version: version.to_owned(),
        symbol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "# a comment\n\
        id = \"twilio\"\n\
        name = \"Twilio\"\n\
        identifier = \"not the id\"\n\
        version   =   \"1.2.3\"\n\
        [config.id]\n\
        id = \"a table key, not the plugin's\"\n";

    #[test]
    fn manifest_values_are_read_at_compile_time_from_top_level_keys_only() {
        const ID: &str = __manifest_str(MANIFEST, "id");
        const VERSION: &str = __manifest_str(MANIFEST, "version");
        assert_eq!(ID, "twilio");
        assert_eq!(VERSION, "1.2.3");
        assert_eq!(__manifest_str(MANIFEST, "identifier"), "not the id");
    }

    #[test]
    fn strings_compare_equal_at_compile_time_only_when_identical() {
        const { assert!(__str_eq("0.1.0", "0.1.0")) };
        assert!(!__str_eq("0.1.0", "0.1.1"));
        assert!(!__str_eq("0.1.0", "0.1.0 "));
    }

    #[test]
    fn a_missing_key_or_an_unquoted_value_is_refused() {
        for (text, key) in [
            ("name = \"x\"\n[t]\nid = \"y\"\n", "id"),
            ("id = twilio\n", "id"),
            ("id = \"twi\\\"lio\"\n", "id"),
        ] {
            let refused = std::panic::catch_unwind(|| __manifest_str(text, key)).is_err();
            assert!(refused, "{text:?}");
        }
    }
}
