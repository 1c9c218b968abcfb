//! The host: its configuration, the registry's core types (`Slot` per
//! plugin, `Inner` shared by every `Host` clone) and the way back from host
//! services into the host. The jobs live in the submodules: `registry`
//! (loading and finding plugins), `lifecycle` (the steps), `dispatch`
//! (hooks), `handle` (calls through `PluginHandle`), `report` (status,
//! health, metrics).
//!
//! Locking: the registry map and each plugin's current version sit behind
//! `RwLock`s that are never held while plugin code runs; each plugin's
//! lifecycle mutex serializes its lifecycle steps, and is held during them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use plugin_api::abi::PluginError;

use crate::error::{Call, HostError};
use crate::hooks::Subscription;
use crate::lifecycle::Lifecycle;
use crate::loader::{self, LoadedPlugin, Loader};
use crate::metrics::{ActiveTenants, Counters, PluginMetrics};
use crate::services::{ServiceBackend, StateStore};
use crate::signature::{SignatureStatus, TrustPolicy};
use plugin_package::manifest::Permission;

mod dispatch;
mod handle;
mod lifecycle;
mod registry;
mod report;

pub use dispatch::{EmitSummary, EventReport, FilterError, FilteredPayload};
pub use handle::PluginHandle;
pub use report::{HealthReport, PluginHealth, PluginStatus};

use dispatch::DispatchTables;

/// How a host is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Private directory for the content-addressed copies of loaded libraries.
    pub runtime_dir: PathBuf,
    /// Which libraries may load. The library default is
    /// [`TrustPolicy::AllowUnsigned`] (development); a daemon should require signatures.
    pub trust: TrustPolicy,
    /// Unload a library once nothing from it is left (default true). See
    /// ARCHITECTURE.md for the contract a plugin keeps to be unloadable.
    pub unload_libraries: bool,
    /// The `plugkit-runner` executable for plugins in process isolation;
    /// when `None`, `PLUGKIT_RUNNER` or the directory of the current
    /// executable (see ARCHITECTURE.md, isolation).
    pub runner: Option<PathBuf>,
    /// Which plugins run in a sandboxed child process (default: none).
    pub isolation: crate::isolation::IsolationPolicy,
}

impl HostConfig {
    /// A configuration whose runtime directory is private to this process.
    pub fn with_runtime_dir(runtime_dir: impl Into<PathBuf>) -> Self {
        Self {
            runtime_dir: runtime_dir.into(),
            trust: TrustPolicy::AllowUnsigned,
            unload_libraries: true,
            runner: None,
            isolation: Default::default(),
        }
    }

    /// The same configuration with another trust policy.
    pub fn trust(mut self, trust: TrustPolicy) -> Self {
        self.trust = trust;
        self
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        Self::with_runtime_dir(base.join(format!("plugkit-{}", std::process::id())))
    }
}

/// What the host knows about a plugin before loading it (from its manifest).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The id the library must report; refused with `IdentityMismatch` otherwise.
    pub expected_id: Option<String>,
    /// Capabilities the plugin may use.
    pub permissions: BTreeSet<Permission>,
    /// Plugin-wide configuration, a JSON object.
    pub config_json: Option<String>,
    /// Hooks it subscribes to.
    pub hooks: Vec<Subscription>,
    /// The version the manifest names (checked against the signature).
    pub expected_version: Option<String>,
    /// The library's minisign signature file; `<library>.minisig` when absent.
    pub signature: Option<PathBuf>,
    /// Named services the plugin provides (manifest `provides`).
    pub provides: Vec<String>,
    /// The installed `plugin.toml`; a signature must bind its exact bytes.
    pub manifest_path: Option<PathBuf>,
    /// Plugins it depends on (manifest `dependencies`); a reload cycles them.
    pub dependencies: Vec<String>,
    /// Where the plugin's code runs (in the host, or in a sandboxed child).
    pub isolation: crate::isolation::Isolation,
    /// Limits, deadlines and restart policy when not in-process.
    pub process: crate::isolation::ProcessOptions,
}

/// One loaded plugin: its lifecycle and its current version.
pub(crate) struct Slot {
    pub(crate) id: String,
    pub(crate) source: RwLock<PathBuf>,
    pub(crate) lifecycle: Mutex<Lifecycle>,
    /// Mirror of the lifecycle's tenant set for the call path, each with
    /// its counters, copied on write so a handle can keep a snapshot and
    /// check it without locking.
    pub(crate) active_tenants: RwLock<Arc<ActiveTenants>>,
    /// Bumped after every change to `active_tenants` and every swap of
    /// `current`: fast-path handles compare it to the value they checked
    /// at, and look again only when it moved (see `fast`).
    pub(crate) epoch: std::sync::atomic::AtomicU64,
    /// The configuration each active tenant was activated with, for reloads.
    pub(crate) tenant_configs: Mutex<BTreeMap<String, String>>,
    /// The version serving calls; swapped whole by a reload.
    pub(crate) current: RwLock<Arc<LoadedPlugin>>,
    pub(crate) metrics: PluginMetrics,
    pub(crate) signature: RwLock<SignatureStatus>,
    /// SHA-256 of the `plugin.toml` the serving version was loaded with; a
    /// reload with the same library but another manifest applies it.
    pub(crate) manifest_sha256: RwLock<Option<[u8; 32]>>,
    pub(crate) services: RwLock<ServicesTemplate>,
    /// Plugins this one depends on (present optional ones included).
    pub(crate) dependencies: RwLock<Vec<String>>,
    /// One reload of this plugin at a time.
    pub(crate) reload_lock: Mutex<()>,
}

pub(crate) struct ServicesTemplate {
    pub(crate) permissions: BTreeSet<Permission>,
    pub(crate) config_json: String,
    pub(crate) store: Arc<StateStore>,
    pub(crate) provides: Vec<String>,
}

impl ServicesTemplate {
    pub(crate) fn from_options(options: &LoadOptions, store: Arc<StateStore>) -> Self {
        Self {
            permissions: options.permissions.clone(),
            config_json: options
                .config_json
                .clone()
                .unwrap_or_else(|| "{}".to_owned()),
            store,
            provides: options.provides.clone(),
        }
    }
}

/// A loaded, not yet registered library.
pub(crate) struct Prepared {
    pub(crate) loaded: LoadedPlugin,
    /// SHA-256 of the manifest the signature was checked against.
    pub(crate) manifest_sha256: Option<[u8; 32]>,
    pub(crate) signature: SignatureStatus,
}

pub(crate) struct Inner {
    loader: Loader,
    trust: TrustPolicy,
    plugins: RwLock<BTreeMap<String, Arc<Slot>>>,
    subscriptions: RwLock<Vec<Subscription>>,
    /// Ordered subscribers per hook, rebuilt when subscriptions change.
    hook_order: RwLock<BTreeMap<String, Arc<Vec<Subscription>>>>,
    /// Resolved dispatch targets per hook and tenant; dropped on every
    /// lifecycle change, subscription change and reload swap.
    dispatch: RwLock<DispatchTables>,
    /// Bumped by every invalidation, so a table resolved before one is not cached after it.
    pub(crate) dispatch_generation: std::sync::atomic::AtomicU64,
    /// Plugins in the order they were loaded, for stopping in reverse.
    started: Mutex<Vec<String>>,
    /// The running live reloads' watch state (gone when they are dropped).
    live: Mutex<Vec<std::sync::Weak<crate::watch::WatchHealth>>>,
    /// The runner executable for process isolation, when configured.
    runner: Option<PathBuf>,
    isolation: crate::isolation::IsolationPolicy,
}

/// The plugin host. Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<Inner>,
}

impl Host {
    /// Creates a host with an empty registry.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        Ok(Self {
            inner: Arc::new(Inner {
                loader: Loader::new(config.runtime_dir, config.unload_libraries)?,
                trust: config.trust,
                plugins: RwLock::new(BTreeMap::new()),
                subscriptions: RwLock::new(Vec::new()),
                hook_order: RwLock::new(BTreeMap::new()),
                dispatch: RwLock::new(BTreeMap::new()),
                dispatch_generation: std::sync::atomic::AtomicU64::new(0),
                started: Mutex::new(Vec::new()),
                live: Mutex::new(Vec::new()),
                runner: config.runner,
                isolation: config.isolation,
            }),
        })
    }
}

impl Inner {
    fn slot(&self, id: &str) -> Result<Arc<Slot>, HostError> {
        self.plugins
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| HostError::UnknownPlugin {
                plugin: id.to_owned(),
            })
    }

    pub(crate) fn metrics_for(&self, id: &str, f: impl FnOnce(&PluginMetrics)) {
        if let Some(slot) = self.plugins.read().get(id) {
            f(&slot.metrics);
        }
    }
}

impl ServiceBackend for Inner {
    fn record_denied(&self, plugin: &str, tenant: Option<&str>) {
        self.metrics_for(plugin, |m| m.record_denied(tenant));
    }

    fn record_custom(&self, plugin: &str, name: &str, value: f64) {
        self.metrics_for(plugin, |m| m.record_custom(name, value));
    }

    /// The string value `name` of the tenant's activation configuration:
    /// secrets reach the host only there, resolved by tenancy.
    fn secret_for(&self, plugin: &str, tenant: &str, name: &str) -> Result<String, PluginError> {
        let config = self
            .plugins
            .read()
            .get(plugin)
            .and_then(|slot| slot.tenant_configs.lock().get(tenant).cloned());
        config
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
            .and_then(|value| value.get(name)?.as_str().map(str::to_owned))
            .ok_or_else(|| PluginError::not_found(format!("secret `{name}` for tenant `{tenant}`")))
    }

    fn emit_from_plugin(
        &self,
        plugin: &str,
        tenant: &str,
        hook: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<(), PluginError> {
        tracing::debug!(plugin, tenant, hook, "plugin raised a hook");
        self.fire_event(tenant, hook, content_type, bytes)
            .map(|_| ())
            .map_err(|e| PluginError::failed(e.to_string()))
    }
}

impl Slot {
    /// Tells fast-path handles that tenants or the serving version changed.
    pub(crate) fn bump_epoch(&self) {
        self.epoch
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// The refusal of a call for `tenant`, which is not active here.
    #[cold]
    pub(crate) fn not_active(&self, tenant: &str) -> HostError {
        HostError::NotActive {
            plugin: self.id.clone(),
            tenant: tenant.to_owned(),
        }
    }

    /// A plugin's error from a call as the host error the caller gets,
    /// counted (error, panic) under the tenant's `counters`. Every call
    /// path (`invoke`, typed, method handles, bound plugins) ends here.
    #[cold]
    #[inline(never)]
    pub(crate) fn call_failed(&self, counters: &Counters, error: &PluginError) -> HostError {
        let source = self.source.read().clone();
        let err = loader::call_error(&self.id, &source, Call::Service, error);
        self.metrics.record_error(
            Some(counters),
            &err.to_string(),
            matches!(err, HostError::CallPanicked { .. }),
        );
        err
    }
}
