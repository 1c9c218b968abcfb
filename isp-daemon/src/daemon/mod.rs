//! The daemon: a [`Host`] that starts the installed plugins, a [`Platform`]
//! holding the tenants, their tiers and requests, and everything the admin
//! API and the demo do with them. Every method blocks (plugin calls, file
//! IO); async callers run them on blocking threads.
//!
//! Invariants:
//! - Configured tenants seed the platform's state only when they are new;
//!   after that the persisted state (changed through the admin API) wins.
//! - A tenant's configured plugin that its tier does not allow yet (or that
//!   is not installed yet) waits in `isp-daemon.json` and is activated when
//!   the tier allows it or the plugin appears; an operator's deactivation
//!   removes it from there, so nothing comes back on its own.
//! - Plugins stop in reverse dependency order, each tenant's request kept.
//!
//! The methods live by job in `lifecycle`, `waiting`, `operations` and
//! `views` (which lists plugins through `discovered`, the discovery
//! cache); this file holds the state and the lookups they all share.

mod catalog;
mod config_change;
mod discovered;
mod lifecycle;
mod operations;
mod packages;
mod views;
mod waiting;

pub use config_change::{ConfigUpdate, OverriddenKey};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::{bail, Context, Result};
use plugin_api::category::Contract;
use plugin_api::{communication, network_automation, payment};
use plugin_host::package::graph::DependencyGraph;
use plugin_host::package::identity::EmbeddedIdentity;
use plugin_host::package::manifest::Manifest;
use plugin_host::package::signature::{embedded_identity, SignatureStatus, TrustPolicy};
use plugin_host::status::PluginState;
use plugin_host::tenancy::{
    AuditAction, AuditEntry, AuditOutcome, Environment, TenantPluginView, Tiers,
};
use plugin_host::{Host, HostConfig, LoadOptions, Platform, PlatformConfig, PlatformError};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Problem, ProblemKind};
use crate::install;
use crate::keys::KeyStore;
use crate::peers::Devices;
use crate::ratelimit::RateLimits;
use crate::standins::Standins;

/// The daemon's own state file, beside the platform's.
pub const DAEMON_STATE_FILE: &str = "isp-daemon.json";

/// How to start a [`Daemon`] beyond its configuration.
#[derive(Debug, Default)]
pub struct StartOptions {
    /// Variables layered over the process environment (tests; the demo's devices).
    pub env: BTreeMap<String, String>,
    /// Install the reference plugins from this artifact map instead of
    /// using the configured plugin directories (see [`install::from_build`]).
    pub plugins_from_build: Option<PathBuf>,
    /// What the demo's `demo:snmpd` and `demo:sshd` stand for.
    pub devices: Option<Devices>,
}

/// The admin API's bearer token.
pub struct AdminSecret {
    token: String,
    generated: bool,
}

impl AdminSecret {
    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether it was made up for this run (then it may be printed).
    pub fn generated(&self) -> bool {
        self.generated
    }
}

impl std::fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSecret")
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

/// Configured plugins waiting for a tier or an installation, by tenant.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Waiting {
    format: u32,
    requests: BTreeMap<String, BTreeMap<String, String>>,
}

/// The running daemon.
pub struct Daemon {
    config: Config,
    host: Host,
    platform: Platform,
    dirs: Vec<PathBuf>,
    trust: TrustPolicy,
    state_dir: PathBuf,
    standins: Standins,
    devices: Devices,
    admin: AdminSecret,
    keys: Arc<KeyStore>,
    limits: Arc<RateLimits>,
    manifests: RwLock<BTreeMap<String, Manifest>>,
    /// What discovery learned, for the read paths (see `discovered`).
    discovered: discovered::DiscoveryCache,
    flow_stats: crate::flow_stats::FlowStats,
    waiting: Mutex<Waiting>,
    startup: Vec<String>,
    stopping: AtomicBool,
    pub(crate) watching: AtomicBool,
    webhooks: crate::webhook_state::Webhooks,
    pub(crate) provisioning: crate::provisioning::Provisioning,
    // Dropped last: the host's private copies and the temporary state.
    _runtime_dir: tempfile::TempDir,
    _state_tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("dirs", &self.dirs)
            .field("state_dir", &self.state_dir)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// Reads a library's embedded identity without loading it.
pub(crate) fn identity_of(path: &Path) -> Result<EmbeddedIdentity, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    embedded_identity(&bytes)
}

/// The load options a manifest implies, as the host's own supervisor builds them.
pub(crate) fn load_options(manifest: &Manifest) -> LoadOptions {
    LoadOptions::from_manifest(manifest)
}

/// 32 hex digits from the kernel's random source.
fn random_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for an admin token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Daemon {
    /// How many installed plugins could not be started (each reported in
    /// the startup lines as `[host] problem: ...`).
    pub fn startup_problems(&self) -> usize {
        self.startup
            .iter()
            .filter(|l| l.starts_with("[host] problem:"))
            .count()
    }

    /// The lines describing what the start did.
    pub fn startup_lines(&self) -> &[String] {
        &self.startup
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The platform.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The configuration the daemon runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the flows went, by tenant (for `GET /metrics`).
    pub fn flow_stats(&self) -> &crate::flow_stats::FlowStats {
        &self.flow_stats
    }

    /// The stand-ins it started.
    pub fn standins(&self) -> &Standins {
        &self.standins
    }

    /// The demo's devices.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// The admin API's token.
    pub fn admin_secret(&self) -> &AdminSecret {
        &self.admin
    }

    /// The admin API's keys (`api-keys.json` in the state directory).
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// The admin API's rate limits per key and scope.
    pub fn rate_limits(&self) -> &Arc<RateLimits> {
        &self.limits
    }

    /// Webhooks in and out (`webhooks`).
    pub fn webhooks(&self) -> &crate::webhook_state::Webhooks {
        &self.webhooks
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The plugin directories it scans.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether [`Daemon::shutdown`] has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Whether every plugin is running (none failed).
    pub fn all_running(&self) -> bool {
        self.host
            .statuses()
            .iter()
            .all(|s| s.state != PluginState::Failed)
    }

    /// The tenant's tier, or a not-found problem.
    pub fn tier_of(&self, tenant: &str) -> Result<String, Problem> {
        self.platform
            .tenants()
            .into_iter()
            .find(|(id, _)| id == tenant)
            .map(|(_, tier)| tier)
            .ok_or_else(|| Problem::unknown_tenant(tenant))
    }

    fn required_tier(&self, plugin: &str) -> Option<String> {
        self.manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(plugin)
            .map(|m| m.required_tier.clone())
    }

    /// Appends `entry` to the audit log; a failure is logged, not returned
    /// (the change it records has happened).
    pub fn audit_entry(&self, entry: AuditEntry) {
        if let Err(e) = self.platform.audit().append(&entry) {
            tracing::error!("cannot append to the audit log: {e}");
        }
    }
}

fn semver_of(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap_or_else(|_| semver::Version::new(0, 0, 0))
}
