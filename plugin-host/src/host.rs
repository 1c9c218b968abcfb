//! The host: the registry of loaded plugins, their lifecycle, calls into
//! them (guarded, counted), and hook dispatch.
//!
//! Locking: the registry map and each plugin's current version sit behind
//! `RwLock`s that are never held while plugin code runs; each plugin's
//! lifecycle mutex serializes its lifecycle steps, and is held during them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use abi_stable::std_types::RResult;
use parking_lot::{Mutex, RwLock};
use plugin_api::abi::{PluginError, PluginInstance, TenantActivation};
use plugin_api::category::{CategoryHost, Contract};
use plugin_api::HealthStatus;
use serde::Serialize;

use crate::error::{Call, HostError};
use crate::hook_call::{self, Delivery, HookRoute, Outcome};
use crate::hooks::{self, HookKind, OrderingCycle, Subscription};
use crate::lifecycle::{Lifecycle, PluginState, Transition};
use crate::loader::{self, LoadedPlugin, Loader, PluginIdentity, UnloadStats};
use crate::metrics::{
    ActiveTenants, Counters, MetricsSnapshot, PluginMetrics, TenantMetricsSnapshot,
};
use crate::services::{PluginServices, ServiceBackend, StateStore};
use crate::signature::{self, SignatureCheck, SignatureStatus, TrustPolicy};
use plugin_package::manifest::Permission;

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

/// Why a filter chain did not return a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A subscriber vetoed.
    #[error("hook `{hook}`: vetoed by plugin `{plugin}`: {reason}")]
    Vetoed {
        /// The hook.
        hook: String,
        /// Who vetoed.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// A subscriber failed or panicked; a filter chain fails closed.
    #[error("hook `{hook}`: filter in plugin `{plugin}` failed: {message}")]
    Failed {
        /// The hook.
        hook: String,
        /// Who failed.
        plugin: String,
        /// The error.
        message: String,
    },
    /// The subscribers' constraints form a cycle.
    #[error(transparent)]
    Cycle(#[from] OrderingCycle),
}

/// The outcome of a filter chain that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredPayload {
    /// Content type of the final payload.
    pub content_type: String,
    /// The final payload.
    pub bytes: Vec<u8>,
    /// The plugins that ran, in order.
    pub ran: Vec<String>,
}

/// hook → tenant → resolved targets.
type DispatchTables = BTreeMap<String, BTreeMap<String, Arc<Vec<Target>>>>;

/// One resolved hook subscriber: the plugin version that will be called.
pub(crate) struct Target {
    plugin: String,
    kind: HookKind,
    slot: Arc<Slot>,
    loaded: Arc<LoadedPlugin>,
    /// Its fast hook table in `loaded`, or its `HookHandler`.
    route: HookRoute,
    /// The subscriber's counters for the tenant the table is for.
    counters: Arc<Counters>,
}

impl hook_call::EventTarget for Target {
    #[inline(always)]
    fn route(&self) -> HookRoute {
        self.route
    }

    #[inline(always)]
    fn loaded(&self) -> &LoadedPlugin {
        &self.loaded
    }

    #[inline(always)]
    fn count(&self) -> bool {
        self.counters.start_call()
    }

    fn record_latency(&self, elapsed: std::time::Duration) {
        self.counters.record_latency(elapsed);
    }
}

/// Counts from [`Host::emit`], which skips collecting names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmitSummary {
    /// Subscribers that handled the event.
    pub delivered: usize,
    /// Subscribers that failed (each logged with its plugin id and counted in its metrics).
    pub failed: usize,
}

/// What an event dispatch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventReport {
    /// Subscribers that handled it, in order.
    pub delivered: Vec<String>,
    /// Subscribers that failed, with their errors.
    pub failures: Vec<(String, String)>,
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

    /// Loads a plugin library: stages a private copy, checks it, loads it
    /// and instantiates the plugin. Returns the plugin's id.
    pub fn load(&self, path: &Path, options: LoadOptions) -> Result<String, HostError> {
        // Refused before dlopen: a second copy would share nothing with the first.
        let not_loaded = |id: &str| match self.inner.plugins.read().get(id) {
            Some(existing) => Err(HostError::AlreadyLoaded {
                plugin: id.to_owned(),
                existing: existing.source.read().clone(),
                path: path.to_owned(),
            }),
            None => Ok(()),
        };
        let Prepared {
            loaded,
            signature: signature_status,
            manifest_sha256,
        } = self.prepare(path, &options, not_loaded)?;
        let id = loaded.identity.id.clone();
        let slot = Arc::new(Slot {
            id: id.clone(),
            source: RwLock::new(path.to_owned()),
            lifecycle: Mutex::new(Lifecycle::new()),
            active_tenants: RwLock::new(Arc::new(ActiveTenants::default())),
            epoch: std::sync::atomic::AtomicU64::new(0),
            tenant_configs: Mutex::new(BTreeMap::new()),
            current: RwLock::new(Arc::new(loaded)),
            metrics: PluginMetrics::default(),
            signature: RwLock::new(signature_status),
            manifest_sha256: RwLock::new(manifest_sha256),
            services: RwLock::new(ServicesTemplate::from_options(
                &options,
                Arc::new(StateStore::default()),
            )),
            dependencies: RwLock::new(options.dependencies.clone()),
            reload_lock: Mutex::new(()),
        });
        attach_quarantine(&slot);
        {
            let mut plugins = self.inner.plugins.write();
            if let Some(existing) = plugins.get(&id) {
                return Err(HostError::AlreadyLoaded {
                    plugin: id,
                    existing: existing.source.read().clone(),
                    path: path.to_owned(),
                });
            }
            plugins.insert(id.clone(), slot);
        }
        let mut subs = options.hooks;
        for s in &mut subs {
            s.plugin = id.clone();
        }
        self.inner.subscriptions.write().extend(subs);
        self.inner.rebuild_hook_order();
        self.record_started(&id);
        tracing::info!(plugin = %id, path = %path.display(), "loaded");
        Ok(id)
    }

    /// Reads, verifies, stages and loads a library without registering it.
    pub(crate) fn prepare(
        &self,
        path: &Path,
        options: &LoadOptions,
        before_dlopen: impl FnOnce(&str) -> Result<(), HostError>,
    ) -> Result<Prepared, HostError> {
        let label = loader::label_of(path);
        let plugin = options.expected_id.clone().unwrap_or_else(|| label.clone());
        let io = |action: &'static str, at: &Path, source: std::io::Error| HostError::Io {
            plugin: plugin.clone(),
            action,
            path: at.to_owned(),
            source,
        };
        let bytes = std::fs::read(path).map_err(|e| io("reading the plugin library", path, e))?;
        let signature_path = options.signature.clone().unwrap_or_else(|| {
            let mut p = path.as_os_str().to_owned();
            p.push(".minisig");
            PathBuf::from(p)
        });
        let signature = match plugin_package::read::read_text(&signature_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("reading the signature", &signature_path, e)),
        };
        let manifest = match &options.manifest_path {
            Some(p) => Some(std::fs::read(p).map_err(|e| io("reading the manifest", p, e))?),
            None => None,
        };
        let signature_status = signature::verify(
            &self.inner.trust,
            &SignatureCheck {
                library: &bytes,
                signature: signature.as_deref(),
                plugin: &plugin,
                expected_id: options.expected_id.as_deref(),
                manifest: manifest.as_deref(),
                version: options.expected_version.as_deref(),
                path,
            },
        )?;
        let staged = self.inner.loader.stage_bytes(path, &plugin, &bytes)?;
        drop(bytes);
        // Refusals before dlopen leave no private copy behind.
        let refuse = |e: HostError| {
            let _ = std::fs::remove_file(&staged.path);
            Err(e)
        };
        if let (Some(expected), Some(embedded)) = (&options.expected_id, &staged.embedded) {
            let id = &embedded.id;
            if expected != id {
                return refuse(HostError::IdentityMismatch {
                    expected: expected.clone(),
                    found: id.clone(),
                    path: path.to_owned(),
                });
            }
        }
        if let Some(embedded) = &staged.embedded {
            if let Err(e) = before_dlopen(&embedded.id) {
                return refuse(e);
            }
        }
        // Isolation branch point (issue 13): the runner loads the library instead.
        let id = staged
            .embedded
            .as_ref()
            .map_or(plugin.as_str(), |e| e.id.as_str());
        let (mode, process) = self
            .inner
            .isolation
            .resolve(id, options.isolation, &options.process);
        let loaded = match mode {
            crate::isolation::Isolation::InProcess => self.inner.loader.load(&staged)?,
            mode => crate::isolation::load_isolated(
                &staged,
                mode,
                options
                    .permissions
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect(),
                process,
                self.inner.runner.as_deref(),
            )?,
        };
        if let Some(expected) = &options.expected_id {
            if *expected != loaded.identity.id {
                return Err(HostError::IdentityMismatch {
                    expected: expected.clone(),
                    found: loaded.identity.id.clone(),
                    path: path.to_owned(),
                });
            }
        }
        Ok(Prepared {
            loaded,
            signature: signature_status,
            manifest_sha256: manifest
                .as_deref()
                .map(|bytes| <sha2::Sha256 as sha2::Digest>::digest(bytes).into()),
        })
    }

    pub(crate) fn record_started(&self, id: &str) {
        let mut started = self.inner.started.lock();
        started.retain(|s| s != id);
        started.push(id.to_owned());
    }

    /// Loaded plugins in the order they were loaded.
    pub(crate) fn started_order(&self) -> Vec<String> {
        let loaded = self.inner.plugins.read();
        let mut order: Vec<String> = self
            .inner
            .started
            .lock()
            .iter()
            .filter(|id| loaded.contains_key(*id))
            .cloned()
            .collect();
        // Plugins loaded one by one with `load` come after, in id order.
        for id in loaded.keys() {
            if !order.contains(id) {
                order.push(id.clone());
            }
        }
        order
    }

    /// Calls the plugin's `initialize` with its host services.
    pub fn initialize(&self, id: &str) -> Result<(), HostError> {
        let slot = self.inner.slot(id)?;
        let services = self.services_for(&slot);
        self.step(&slot, Transition::Initialize, Call::Initialize, |p| {
            p.base.initialize(services)
        })
    }

    pub(crate) fn services_for(&self, slot: &Slot) -> plugin_api::abi::HostServicesBox {
        let template = slot.services.read();
        self.services_with(&slot.id, &template)
    }

    pub(crate) fn services_with(
        &self,
        plugin: &str,
        template: &ServicesTemplate,
    ) -> plugin_api::abi::HostServicesBox {
        PluginServices {
            plugin: plugin.to_owned(),
            permissions: template.permissions.clone(),
            config_json: template.config_json.clone(),
            store: template.store.clone(),
            host: {
                let backend: Arc<dyn ServiceBackend> = self.inner.clone();
                Arc::downgrade(&backend)
            },
        }
        .into_box()
    }

    /// The running live reloads' watch state, for [`Host::health`].
    pub(crate) fn inner_live(&self) -> &Mutex<Vec<std::sync::Weak<crate::watch::WatchHealth>>> {
        &self.inner.live
    }

    pub(crate) fn slot(&self, id: &str) -> Result<Arc<Slot>, HostError> {
        self.inner.slot(id)
    }

    pub(crate) fn invalidate_dispatch(&self) {
        self.inner.invalidate_dispatch();
    }

    /// Tenants the plugin is active for, with their configurations.
    pub(crate) fn tenant_configs(&self, id: &str) -> Vec<(String, String)> {
        match self.inner.slot(id) {
            Ok(slot) => slot
                .tenant_configs
                .lock()
                .iter()
                .map(|(t, c)| (t.clone(), c.clone()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Loaded plugins that depend on `id`, directly or not, in start order.
    pub(crate) fn loaded_dependents(&self, id: &str) -> Vec<String> {
        let plugins: Vec<(String, Vec<String>)> = self
            .inner
            .plugins
            .read()
            .values()
            .map(|s| (s.id.clone(), s.dependencies.read().clone()))
            .collect();
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut frontier = vec![id.to_owned()];
        while let Some(next) = frontier.pop() {
            for (plugin, deps) in &plugins {
                if deps.contains(&next) && found.insert(plugin.clone()) {
                    frontier.push(plugin.clone());
                }
            }
        }
        self.started_order()
            .into_iter()
            .filter(|p| found.contains(p))
            .collect()
    }

    /// The hook subscriptions `id` holds now.
    pub(crate) fn subscriptions_of(&self, id: &str) -> Vec<Subscription> {
        self.inner
            .subscriptions
            .read()
            .iter()
            .filter(|s| s.plugin == id)
            .cloned()
            .collect()
    }

    pub(crate) fn replace_subscriptions(&self, id: &str, subs: Vec<Subscription>) {
        {
            let mut all = self.inner.subscriptions.write();
            all.retain(|s| s.plugin != id);
            all.extend(subs.into_iter().map(|mut s| {
                s.plugin = id.to_owned();
                s
            }));
        }
        self.inner.rebuild_hook_order();
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

    /// Ids of all loaded plugins, sorted.
    pub fn plugin_ids(&self) -> Vec<String> {
        self.inner.plugins.read().keys().cloned().collect()
    }

    /// Status of every loaded plugin.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        let slots: Vec<Arc<Slot>> = self.inner.plugins.read().values().cloned().collect();
        slots.iter().map(|s| s.status()).collect()
    }

    /// Status of one plugin.
    pub fn status(&self, id: &str) -> Result<PluginStatus, HostError> {
        Ok(self.inner.slot(id)?.status())
    }

    /// A handle for calling into the plugin's current version.
    pub fn plugin(&self, id: &str) -> Result<PluginHandle, HostError> {
        let slot = self.inner.slot(id)?;
        let loaded = slot.current.read().clone();
        let tenants = slot.active_tenants.read().clone();
        Ok(PluginHandle {
            slot,
            loaded,
            tenants,
        })
    }

    /// How many old library versions were unloaded, and which stayed mapped.
    pub fn unload_stats(&self) -> UnloadStats {
        self.inner.loader.unload_stats()
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

    /// Plugins offering `extension` (`hooks`, `service`, `state`, or a
    /// category code such as `network-automation`), sorted by id. A name
    /// this host does not know is an error, never an empty list.
    pub fn plugins_with(&self, extension: &str) -> Result<Vec<String>, HostError> {
        let known = ["hooks", "service", "state"].iter().chain(
            plugin_api::KNOWN_CATEGORIES
                .iter()
                .filter(|c| **c != "custom"),
        );
        if !known.clone().any(|k| *k == extension) {
            return Err(HostError::UnknownExtension {
                name: extension.to_owned(),
                known: known.copied().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(self
            .statuses()
            .into_iter()
            .filter(|s| s.extensions.contains(&extension))
            .map(|s| s.identity.id)
            .collect())
    }

    /// Plugins exporting category `C`, sorted by id.
    pub fn providers<C: Contract>(&self) -> Vec<String> {
        let plugins = self.inner.plugins.read();
        plugins
            .values()
            .filter(|s| s.current.read().categories.get::<C>().is_some())
            .map(|s| s.id.clone())
            .collect()
    }

    /// Plugins providing the named service (manifest `provides`), sorted by id.
    pub fn providers_of(&self, service: &str) -> Vec<String> {
        let plugins = self.inner.plugins.read();
        plugins
            .values()
            .filter(|s| s.services.read().provides.iter().any(|p| p == service))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Plugins of a category (e.g. `payment`), sorted by id.
    pub fn plugins_in_category(&self, category: &str) -> Vec<String> {
        self.statuses()
            .into_iter()
            .filter(|s| s.identity.category == category)
            .map(|s| s.identity.id)
            .collect()
    }

    /// The first plugin (by id) exporting category `C` that is active for `tenant`.
    pub fn provider_for_tenant<C: Contract>(&self, tenant: &str) -> Option<PluginHandle> {
        self.providers::<C>()
            .into_iter()
            .filter_map(|id| self.plugin(&id).ok())
            .find(|p| p.is_active_for(tenant))
    }

    /// Runs a filter chain for `tenant`: each active subscriber may pass,
    /// replace or veto the payload. A failing filter stops the chain.
    pub fn run_filter(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<FilteredPayload, FilterError> {
        self.inner.run_filter(tenant, hook, content_type, payload)
    }

    /// Fires an event for `tenant`: every active subscriber is called, and
    /// one failing or panicking subscriber does not stop the others.
    pub fn fire_event(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EventReport, OrderingCycle> {
        self.inner.fire_event(tenant, hook, content_type, payload)
    }

    /// Fires an event like [`Host::fire_event`] but returns only counts: the
    /// hot path for emitters that do not need subscriber names (failures are
    /// still logged with the plugin id and counted in its metrics).
    pub fn emit(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EmitSummary, OrderingCycle> {
        self.inner.emit(tenant, hook, content_type, payload)
    }

    /// Fires an event with a JSON payload.
    pub fn fire_json<T: Serialize>(
        &self,
        tenant: &str,
        hook: &str,
        payload: &T,
    ) -> Result<EventReport, OrderingCycle> {
        match serde_json::to_vec(payload) {
            Ok(bytes) => self.fire_event(tenant, hook, "application/json", &bytes),
            Err(e) => {
                // Nothing is delivered rather than an empty payload.
                tracing::error!(hook, tenant, "hook payload does not serialize: {e}");
                Ok(EventReport {
                    delivered: Vec::new(),
                    failures: vec![(
                        "<host>".to_owned(),
                        format!("payload does not serialize: {e}"),
                    )],
                })
            }
        }
    }

    /// The ordered subscribers of a hook.
    pub fn subscribers(&self, hook: &str) -> Result<Vec<Subscription>, OrderingCycle> {
        let subs = self.inner.subscriptions.read();
        let of_hook: Vec<Subscription> = subs.iter().filter(|s| s.hook == hook).cloned().collect();
        hooks::order(hook, &of_hook)
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

impl Inner {
    fn rebuild_hook_order(&self) {
        // Orders are computed lazily per hook; dropping the caches is enough.
        self.hook_order.write().clear();
        self.invalidate_dispatch();
    }

    /// Drops the resolved dispatch tables (they hold plugin versions).
    pub(crate) fn invalidate_dispatch(&self) {
        let mut dispatch = self.dispatch.write();
        self.dispatch_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        dispatch.clear();
    }

    /// The subscribers `tenant` gets for `hook`, resolved to plugin versions.
    fn targets(&self, hook: &str, tenant: &str) -> Result<Arc<Vec<Target>>, OrderingCycle> {
        if let Some(table) = self
            .dispatch
            .read()
            .get(hook)
            .and_then(|by_tenant| by_tenant.get(tenant))
        {
            return Ok(table.clone());
        }
        let generation = self
            .dispatch_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        let order = self.ordered(hook)?;
        let table: Vec<Target> = order
            .iter()
            .filter_map(|sub| {
                let (slot, loaded, counters) = self.subscriber(&sub.plugin, tenant)?;
                let route = hook_call::route_for(&sub.plugin, &loaded)?;
                Some(Target {
                    plugin: sub.plugin.clone(),
                    kind: sub.kind,
                    slot,
                    loaded,
                    route,
                    counters,
                })
            })
            .collect();
        let table = Arc::new(table);
        let mut dispatch = self.dispatch.write();
        // Something changed while resolving: use the table once, do not keep it.
        if self
            .dispatch_generation
            .load(std::sync::atomic::Ordering::SeqCst)
            == generation
        {
            dispatch
                .entry(hook.to_owned())
                .or_default()
                .insert(tenant.to_owned(), table.clone());
        }
        Ok(table)
    }

    pub(crate) fn ordered(&self, hook: &str) -> Result<Arc<Vec<Subscription>>, OrderingCycle> {
        if let Some(order) = self.hook_order.read().get(hook) {
            return Ok(order.clone());
        }
        let of_hook: Vec<Subscription> = self
            .subscriptions
            .read()
            .iter()
            .filter(|s| s.hook == hook)
            .cloned()
            .collect();
        let order = Arc::new(hooks::order(hook, &of_hook)?);
        self.hook_order
            .write()
            .insert(hook.to_owned(), order.clone());
        Ok(order)
    }

    /// The subscriber's current version and its counters for the tenant,
    /// if it is active for the tenant.
    pub(crate) fn subscriber(
        &self,
        plugin: &str,
        tenant: &str,
    ) -> Option<(Arc<Slot>, Arc<LoadedPlugin>, Arc<Counters>)> {
        let slot = self.plugins.read().get(plugin).cloned()?;
        let counters = slot.active_tenants.read().get(tenant).cloned()?;
        let loaded = slot.current.read().clone();
        Some((slot, loaded, counters))
    }

    fn run_filter(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<FilteredPayload, FilterError> {
        let targets = self.targets(hook, tenant)?;
        let mut content_type = content_type.to_owned();
        let mut bytes = payload.to_vec();
        let mut ran = Vec::new();
        let mut out = Vec::new();
        for sub in targets.iter().filter(|t| t.kind == HookKind::Filter) {
            let slot = &sub.slot;
            let call = Delivery {
                tenant,
                hook,
                content_type: &content_type,
                payload: &bytes,
            };
            sub.counters.start_call();
            let outcome = hook_call::deliver(&sub.loaded, sub.route, call, &mut out);
            ran.push(sub.plugin.clone());
            match outcome {
                Outcome::Continue => {}
                Outcome::Replace { split } => {
                    content_type = String::from_utf8_lossy(&out[..split]).into_owned();
                    bytes = out[split..].to_vec();
                }
                Outcome::Veto => {
                    let reason = String::from_utf8_lossy(&out).into_owned();
                    tracing::info!(plugin = %sub.plugin, hook, tenant, "filter vetoed: {reason}");
                    return Err(FilterError::Vetoed {
                        hook: hook.to_owned(),
                        plugin: sub.plugin.clone(),
                        reason,
                    });
                }
                Outcome::Failed(error) => {
                    let message = slot.metrics.record_hook_error(&sub.counters, &error);
                    tracing::error!(plugin = %sub.plugin, hook, tenant, "filter failed: {message}");
                    return Err(FilterError::Failed {
                        hook: hook.to_owned(),
                        plugin: sub.plugin.clone(),
                        message,
                    });
                }
            }
        }
        Ok(FilteredPayload {
            content_type,
            bytes,
            ran,
        })
    }

    fn fire_event(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EventReport, OrderingCycle> {
        let mut report = EventReport::default();
        self.dispatch_event(
            tenant,
            hook,
            content_type,
            payload,
            |target, failure| match failure {
                None => report.delivered.push(target.plugin.clone()),
                Some(message) => report.failures.push((target.plugin.clone(), message)),
            },
        )?;
        Ok(report)
    }

    fn emit(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EmitSummary, OrderingCycle> {
        let mut summary = EmitSummary::default();
        self.dispatch_event(tenant, hook, content_type, payload, |_, failure| {
            if failure.is_some() {
                summary.failed += 1;
            } else {
                summary.delivered += 1;
            }
        })?;
        Ok(summary)
    }

    /// Calls every event subscriber; a failing one is logged and counted,
    /// and never stops the others.
    #[inline]
    fn dispatch_event(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
        mut outcome: impl FnMut(&Target, Option<String>),
    ) -> Result<(), OrderingCycle> {
        let targets = self.targets(hook, tenant)?;
        let call = Delivery {
            tenant,
            hook,
            content_type,
            payload,
        };
        // Events ignore replies; a subscriber that writes one grows this once.
        let mut out = Vec::new();
        let events = targets.iter().filter(|t| t.kind == HookKind::Event);
        hook_call::deliver_events(events, call, &mut out, |target, failure| match failure {
            Some(error) => {
                let message = target
                    .slot
                    .metrics
                    .record_hook_error(&target.counters, &error);
                tracing::warn!(plugin = %target.plugin, hook, tenant, "event subscriber failed: {message}");
                outcome(target, Some(message));
            }
            None => outcome(target, None),
        });
        Ok(())
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

/// A snapshot of one plugin version for making calls. Holding it keeps that
/// version loaded; take a fresh one per request so reloads are picked up.
#[derive(Clone)]
pub struct PluginHandle {
    pub(crate) slot: Arc<Slot>,
    pub(crate) loaded: Arc<LoadedPlugin>,
    /// The tenants the plugin was active for when the handle was taken,
    /// with their counters: a call for any other tenant is refused before
    /// it reaches the plugin.
    tenants: Arc<ActiveTenants>,
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
        self.client_with::<C, _>(self)
    }
}

impl PluginHandle {
    /// This version's `C` object as a typed client calling through
    /// `caller` (this handle, or a [`crate::fast::BoundPlugin`] over it).
    #[inline]
    pub(crate) fn client_with<'a, C: Contract, K: plugin_api::category::Caller + 'a>(
        &'a self,
        caller: &'a K,
    ) -> Result<C::Client<'a, K>, HostError> {
        match self.loaded.categories.get::<C>() {
            Some(object) => Ok(C::client(object, caller)),
            None => Err(HostError::MissingExtension {
                plugin: self.slot.id.clone(),
                extension: C::NAME,
            }),
        }
    }
}

/// Lets a quarantine fail the plugin's lifecycle (state `failed`, health red).
fn attach_quarantine(slot: &Arc<Slot>) {
    let loaded = slot.current.read().clone();
    if let Some(child) = crate::isolation::child_of(&loaded.isolation) {
        let weak = Arc::downgrade(slot);
        child.set_on_quarantine(Box::new(move |reason| {
            if let Some(slot) = weak.upgrade() {
                slot.lifecycle
                    .lock()
                    .quarantine(format!("quarantined: {reason}"));
            }
        }));
    }
}
