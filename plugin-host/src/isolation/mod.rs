//! Process isolation: the same plugin library served by a sandboxed child
//! process (`plugkit-runner`) instead of in the host, chosen per plugin by
//! [`Isolation`] in `LoadOptions`.
//!
//! The host side builds a `PluginInstance` whose objects are proxies: each
//! call becomes a message on a shared-memory channel (`shm`) to the
//! runner (`runner`), which sandboxes itself (`sandbox`, `cgroups`)
//! and then loads the library with the host's own loader checks. Everything
//! above the instance (lifecycle, dispatch, handles, reload) is unchanged.
//!
//! Invariants:
//! - the only places besides `loader` with `unsafe`: `shm`, `sandbox`,
//!   `runner`, this file (the memfd) and `process::{spawn, generation}`
//!   (fork/exec, pidfd, waitid), each named in tidy's list — each block
//!   says why it holds;
//! - the child never sees a path to the plugin: it gets a sealed memfd;
//! - a failure of the process (crash, deadline, OOM, exit, garbage) reaches
//!   the caller as its own `HostError` variant (see `stash`).

mod categories;
mod cgroups;
mod process;
mod runner;
mod sandbox;
mod shm;
mod wire;

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RSlice, RStr, RVec};
use plugin_api::abi::{
    BasePlugin, BasePlugin_TO, HealthReport, HookCall, HookHandler, HookHandler_TO, HookOutcome,
    HostServicesBox, Payload, PluginError, PluginInstance, SavedState, Service, Service_TO,
    Stateful, Stateful_TO, TenantActivation,
};
use plugin_api::HealthStatus;
use serde::Serialize;

use crate::error::{Call, HostError};
use crate::loader::{CheckedCategories, Library, LoadedPlugin, PluginIdentity, StagedLibrary};

pub use runner::runner_main;

pub(crate) use process::ChildPlugin;
use wire::{Reply, Request, WireHookOutcome};

pub use plugin_package::manifest::Isolation;

/// Limits, deadlines and restart policy for a plugin in process mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessOptions {
    /// Memory limit: a cgroup v1 limit where the host can make one, else an
    /// address-space limit (default: none).
    pub memory_mb: Option<u64>,
    /// CPU quota in percent of one core: a cgroup v1 quota where possible,
    /// else `RLIMIT_CPU` of [`Self::cpu_seconds_fallback`] (default: none).
    pub cpu_percent: Option<u32>,
    /// CPU seconds for the `RLIMIT_CPU` fallback (default 300).
    pub cpu_seconds_fallback: u64,
    /// `RLIMIT_NOFILE` (default 256).
    pub open_files: u64,
    /// Deadline of a call, hook or health check (default 5 s).
    pub call_deadline: Duration,
    /// Deadline of start-up, initialize, activate, deactivate, cleanup and
    /// state hand-over (default 30 s).
    pub lifecycle_deadline: Duration,
    /// Crashes within [`Self::crash_window`] that quarantine the plugin (default 5).
    pub max_crashes: u32,
    /// The window for [`Self::max_crashes`] (default 60 s).
    pub crash_window: Duration,
    /// Delay before the first restart, doubled per crash in the window (default 5 ms).
    pub restart_backoff: Duration,
    /// The longest restart delay (default 5 s).
    pub max_backoff: Duration,
    /// How long each side busy-waits for the other before sleeping on the
    /// futex (default 10 µs). Longer is faster on idle cores (a spun reply
    /// takes < 1 µs, a futex wake-up ~7 µs on the 2-core machine) and
    /// wasteful when the cores are busy; zero always sleeps.
    pub spin: Duration,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            memory_mb: None,
            cpu_percent: None,
            cpu_seconds_fallback: 300,
            open_files: 256,
            call_deadline: Duration::from_secs(5),
            lifecycle_deadline: Duration::from_secs(30),
            max_crashes: 5,
            crash_window: Duration::from_secs(60),
            restart_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_secs(5),
            spin: Duration::from_micros(10),
        }
    }
}

/// The operator's isolation choices for a host: a default and per-plugin
/// overrides. A plugin whose manifest (or `LoadOptions`) asks for more
/// isolation gets more: the operator can raise, never lower, the author's
/// minimum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IsolationPolicy {
    /// The mode for plugins not listed in [`Self::plugins`].
    pub default: Isolation,
    /// Process options for plugins not listed in [`Self::plugins`].
    pub default_process: ProcessOptions,
    /// Per plugin id: its mode and process options.
    pub plugins: std::collections::BTreeMap<String, (Isolation, ProcessOptions)>,
}

impl IsolationPolicy {
    /// The mode and options plugin `id` runs with, given what its load
    /// options (the author's minimum from `plugin.toml`) ask for.
    pub fn resolve(
        &self,
        id: &str,
        asked: Isolation,
        asked_process: &ProcessOptions,
    ) -> (Isolation, ProcessOptions) {
        let (operator, process) = match self.plugins.get(id) {
            Some((mode, process)) => (*mode, process.clone()),
            None if self.default != Isolation::InProcess => {
                (self.default, self.default_process.clone())
            }
            None => (Isolation::InProcess, asked_process.clone()),
        };
        if asked > operator {
            tracing::info!(
                plugin = id,
                "isolation `{asked}` kept: the plugin asks for it, the operator chose `{operator}`"
            );
        }
        (asked.max(operator), process)
    }
}

/// What the host knows about an isolated plugin's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsolationStatus {
    /// The mode.
    pub mode: Isolation,
    /// The current child's pid (none while restarting or quarantined).
    pub pid: Option<i32>,
    /// Whether a child is serving calls right now.
    pub serving: bool,
    /// Restarts after crashes so far.
    pub restarts: u64,
    /// Why the plugin is quarantined, when it is.
    pub quarantined: Option<String>,
    /// One line per sandbox layer of the current child.
    pub sandbox: Vec<String>,
}

pub(crate) use crate::error::stash_failure as stash;

/// The child process behind a loaded version, when it runs isolated.
pub(crate) fn child_of(
    isolation: &Option<Arc<dyn std::any::Any + Send + Sync>>,
) -> Option<Arc<ChildPlugin>> {
    isolation.clone()?.downcast::<ChildPlugin>().ok()
}

/// The runner executable: the configured path, `PLUGKIT_RUNNER`, or
/// `plugkit-runner` next to the current executable (or one directory up,
/// for test binaries in `target/*/deps`).
pub(crate) fn find_runner(configured: Option<&Path>, plugin: &str) -> Result<PathBuf, HostError> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = configured {
        candidates.push(p.to_owned());
    }
    if let Some(p) = std::env::var_os("PLUGKIT_RUNNER") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("plugkit-runner"));
            if let Some(up) = dir.parent() {
                candidates.push(up.join("plugkit-runner"));
            }
        }
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    Err(HostError::RunnerFailed {
        plugin: plugin.to_owned(),
        runner: PathBuf::from("plugkit-runner"),
        reason: format!(
            "the runner executable was not found (tried: {}); build it with \
             `cargo build -p plugkit-runner` and set HostConfig::runner or PLUGKIT_RUNNER",
            tried.join(", ")
        ),
    })
}

/// Starts a runner for a staged, verified library and returns a plugin
/// whose instance forwards every call to it.
pub(crate) fn load_isolated(
    staged: &StagedLibrary,
    mode: Isolation,
    permissions: Vec<String>,
    options: ProcessOptions,
    runner: Option<&Path>,
) -> Result<LoadedPlugin, HostError> {
    let label = staged.label.clone();
    if mode == Isolation::ProcessPerTenant {
        let _ = std::fs::remove_file(&staged.path);
        return Err(HostError::RunnerFailed {
            plugin: label,
            runner: PathBuf::from("plugkit-runner"),
            reason: "isolation `process-per-tenant` is not implemented yet; use `process`".into(),
        });
    }
    let io = |action: &'static str, source: std::io::Error| HostError::Io {
        plugin: label.clone(),
        action,
        path: staged.path.clone(),
        source,
    };
    let runner = find_runner(runner, &label)?;
    let bytes = std::fs::read(&staged.path).map_err(|e| io("reading the private copy", e))?;
    // The child gets the bytes, not a path: the private copy goes now.
    let _ = std::fs::remove_file(&staged.path);
    let memfd = sealed_memfd(&bytes).map_err(|e| io("copying the library into a memfd", e))?;
    let child = ChildPlugin::start(&label, runner, memfd, permissions, options)?;
    let i = child.identity.clone();
    let identity = PluginIdentity {
        id: i.id,
        name: i.name,
        version: i.version,
        description: i.description,
        authors: i.authors,
        category: i.category,
        api_version: i.api_version,
    };
    let ext = child.extensions.clone();
    let categories = categories::CategoryProxy {
        child: child.clone(),
    };
    let proxy = Proxy {
        child: child.clone(),
    };
    let instance = PluginInstance {
        base: BasePlugin_TO::from_ptr(RArc::new(proxy.clone()), TD_Opaque),
        hooks: option(ext.hooks, || {
            HookHandler_TO::from_ptr(RArc::new(proxy.clone()), TD_Opaque)
        }),
        service: option(ext.service, || {
            Service_TO::from_ptr(RArc::new(proxy.clone()), TD_Opaque)
        }),
        state: option(ext.state, || {
            Stateful_TO::from_ptr(RArc::new(proxy.clone()), TD_Opaque)
        }),
        categories: categories::forwarding_objects(&categories, &ext.categories).into(),
    };
    let checked = CheckedCategories::check(&instance, &identity.id, &staged.source)?;
    Ok(LoadedPlugin {
        instance,
        categories: checked,
        identity,
        library: Arc::new(Library::in_child(staged)),
        isolation: Some(child),
        fast_bound: std::sync::atomic::AtomicUsize::new(0),
    })
}

fn option<T>(present: bool, f: impl FnOnce() -> T) -> ROption<T> {
    if present {
        ROption::RSome(f())
    } else {
        ROption::RNone
    }
}

fn sealed_memfd(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: a valid name and flags.
    let fd = unsafe {
        libc::memfd_create(
            c"plugkit-library".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    let fd = OwnedFd::from(file);
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our fd.
    if unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::F_ADD_SEALS,
            seals,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// The lifecycle, hook, service and state objects of an isolated plugin.
#[derive(Clone)]
struct Proxy {
    child: Arc<ChildPlugin>,
}

impl Proxy {
    fn request(&self, tenant: &str, call: Call, request: &Request) -> Result<Reply, PluginError> {
        self.child.request(tenant, call, request).map_err(stash)
    }

    fn done(&self, tenant: &str, call: Call, request: &Request) -> RResult<(), PluginError> {
        match self.request(tenant, call, request) {
            Ok(Reply::Done(r)) => r.map_err(PluginError::from).into(),
            Ok(other) => RResult::RErr(self.unexpected(tenant, &other)),
            Err(e) => RResult::RErr(e),
        }
    }

    fn unexpected(&self, tenant: &str, reply: &Reply) -> PluginError {
        self.child
            .garbage(tenant, format!("a reply of the wrong kind: {reply:?}"))
    }
}

impl BasePlugin for Proxy {
    fn initialize(&self, host: HostServicesBox) -> RResult<(), PluginError> {
        self.child.set_services(host);
        let r = self.done("", Call::Initialize, &Request::Initialize);
        if r.is_ok() {
            self.child.mark_initialized();
        }
        r
    }

    fn activate(&self, tenant: TenantActivation) -> RResult<(), PluginError> {
        let request = Request::Activate {
            tenant: tenant.tenant.to_string(),
            config_json: tenant.config_json.to_string(),
        };
        let r = self.done(tenant.tenant.as_str(), Call::Activate, &request);
        if r.is_ok() {
            self.child
                .tenant_activated(tenant.tenant.as_str(), tenant.config_json.as_str());
        }
        r
    }

    fn deactivate(&self, tenant: RStr<'_>) -> RResult<(), PluginError> {
        self.child.tenant_deactivated(tenant.as_str());
        let request = Request::Deactivate {
            tenant: tenant.to_string(),
        };
        self.done(tenant.as_str(), Call::Deactivate, &request)
    }

    fn cleanup(&self) -> RResult<(), PluginError> {
        let r = self.done("", Call::Cleanup, &Request::Cleanup);
        // After cleanup the plugin serves nothing: the process goes with it.
        self.child.stop();
        r
    }

    fn health(&self) -> HealthReport {
        if let Some(reason) = self.child.quarantine_reason() {
            return HealthReport {
                status: HealthStatus::Unhealthy,
                message: format!("quarantined: {reason}").into(),
            };
        }
        if !self.child.is_ready() {
            return HealthReport {
                status: HealthStatus::Degraded,
                message: "the plugin process is restarting".into(),
            };
        }
        match self.child.request("", Call::Health, &Request::Health) {
            Ok(Reply::Health { status, message }) => HealthReport {
                status,
                message: message.into(),
            },
            Ok(other) => HealthReport {
                status: HealthStatus::Unhealthy,
                message: format!("unexpected health reply {other:?}").into(),
            },
            Err(e) => HealthReport {
                status: HealthStatus::Unhealthy,
                message: e.to_string().into(),
            },
        }
    }
}

impl HookHandler for Proxy {
    fn on_hook(&self, call: HookCall<'_>) -> HookOutcome {
        let request = Request::Hook {
            tenant: call.tenant.to_string(),
            hook: call.hook.to_string(),
            content_type: call.content_type.to_string(),
            payload: call.payload.to_vec(),
        };
        match self
            .child
            .request(call.tenant.as_str(), Call::Hook, &request)
        {
            Ok(Reply::Hook(outcome)) => match outcome {
                WireHookOutcome::Continue => HookOutcome::Continue,
                WireHookOutcome::Replace {
                    content_type,
                    bytes,
                } => HookOutcome::Replace(Payload {
                    content_type: content_type.into(),
                    bytes: bytes.into(),
                }),
                WireHookOutcome::Veto(reason) => HookOutcome::Veto(reason.into()),
                WireHookOutcome::Failed(e) => HookOutcome::Failed(e.into()),
            },
            Ok(other) => HookOutcome::Failed(self.unexpected(call.tenant.as_str(), &other)),
            Err(e) => HookOutcome::Failed(PluginError::Failed {
                message: e.to_string().into(),
            }),
        }
    }
}

impl Service for Proxy {
    fn invoke(
        &self,
        tenant: RStr<'_>,
        method: RStr<'_>,
        payload: RSlice<'_, u8>,
    ) -> RResult<RVec<u8>, PluginError> {
        let request = Request::Invoke {
            tenant: tenant.to_string(),
            method: method.to_string(),
            payload: payload.to_vec(),
        };
        match self.request(tenant.as_str(), Call::Service, &request) {
            Ok(Reply::Bytes(r)) => r.map(|b| RVec::from(b.0)).map_err(PluginError::from).into(),
            Ok(other) => RResult::RErr(self.unexpected(tenant.as_str(), &other)),
            Err(e) => RResult::RErr(e),
        }
    }
}

impl Stateful for Proxy {
    fn save_state(&self) -> RResult<ROption<SavedState>, PluginError> {
        match self.request("", Call::SaveState, &Request::SaveState) {
            Ok(Reply::State(Ok(state))) => RResult::ROk(
                state
                    .map(|(format_version, bytes)| SavedState {
                        format_version,
                        bytes: bytes.into(),
                    })
                    .into(),
            ),
            Ok(Reply::State(Err(e))) => RResult::RErr(e.into()),
            Ok(other) => RResult::RErr(self.unexpected("", &other)),
            Err(e) => RResult::RErr(e),
        }
    }

    fn restore_state(&self, state: SavedState) -> RResult<(), PluginError> {
        let request = Request::RestoreState {
            format_version: state.format_version,
            bytes: state.bytes.into_vec(),
        };
        self.done("", Call::RestoreState, &request)
    }
}
