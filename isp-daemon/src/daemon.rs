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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use anyhow::{bail, Context, Result};
use plugin_api::category::Contract;
use plugin_api::{communication, network_automation, payment};
use plugin_host::{
    discover, embedded_identity, AuditAction, AuditEntry, AuditOutcome, DependencyGraph,
    EmbeddedIdentity, Environment, Host, HostConfig, LoadOptions, Manifest, Platform,
    PlatformConfig, PlatformError, PluginState, SignatureStatus, TenantPluginView, Tiers,
    TrustPolicy,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Problem, ProblemKind};
use crate::install;
use crate::peers::Devices;
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
    manifests: RwLock<BTreeMap<String, Manifest>>,
    waiting: Mutex<Waiting>,
    startup: Vec<String>,
    stopping: AtomicBool,
    pub(crate) watching: AtomicBool,
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

    /// Starts the daemon: stand-ins, plugins, platform state, tenants.
    /// Returns once every plugin that can start has started.
    pub fn start(config: Config, options: StartOptions) -> Result<Self> {
        let mut startup = Vec::new();
        let (state_dir, state_tmp) = match &config.state.dir {
            Some(dir) => (config.resolve(dir), None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("isp-daemon-state-")
                    .tempdir()
                    .context("creating a temporary state directory")?;
                (tmp.path().to_owned(), Some(tmp))
            }
        };
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating the state directory {}", state_dir.display()))?;

        let dirs = match &options.plugins_from_build {
            Some(map) => {
                if config.trust.policy == crate::config::TrustMode::Require {
                    bail!(
                        "--plugins-from-build installs unsigned libraries, and the trust policy is \
                         `require`; pass --allow-unsigned (development), or install signed plugins \
                         with `cargo xtask install-common-plugins` and use --plugin-dir"
                    );
                }
                let dir = state_dir.join("plugins-from-build");
                let (ids, notes) = install::from_build(map, &dir)?;
                startup.push(format!(
                    "[host] --plugins-from-build: {} laid out UNSIGNED in {}",
                    ids.join(", "),
                    dir.display()
                ));
                startup.extend(notes.into_iter().map(|n| format!("[host] {n}")));
                vec![dir]
            }
            None => config.plugin_dirs(),
        };
        let trust = config.trust.policy(&config)?;

        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        env.extend(options.env.clone());
        // Resolved by tenancy's resolver, the only one: same references and errors.
        let resolved = plugin_host::resolve_secret_reference(
            &config.admin.token,
            &plugin_host::Environment::fixed(env.clone()),
        )
        .map(|token| token.expose_secret().to_owned());
        let admin = match resolved {
            Ok(token) if !token.is_empty() => AdminSecret {
                token,
                generated: false,
            },
            Ok(_) if config.admin.generate_token_if_unset => AdminSecret {
                token: random_token()?,
                generated: true,
            },
            Ok(_) => bail!(
                "[admin] token: `{}` resolves to an empty value; set it, or set \
                 generate_token_if_unset = true for a demo",
                config.admin.token
            ),
            Err(_) if config.admin.generate_token_if_unset => AdminSecret {
                token: random_token()?,
                generated: true,
            },
            Err(e) => bail!(
                "[admin] token: {e}; set it, or set generate_token_if_unset = true for a demo"
            ),
        };
        let standins = Standins::start(&config, &env)?;
        startup.extend(standins.notes.iter().cloned());
        env.extend(standins.env.iter().cloned());
        let devices = options
            .devices
            .clone()
            .unwrap_or_else(|| Devices::none("the daemon was started without demo devices"));
        env.extend(devices.env_overrides());

        let runtime_dir = tempfile::Builder::new()
            .prefix("isp-daemon-runtime-")
            .tempdir()
            .context("creating the host's runtime directory")?;
        let host = Host::new(HostConfig::with_runtime_dir(runtime_dir.path()).trust(trust.clone()))
            .context("creating the plugin host")?;
        startup.push(format!(
            "[host] plugin directories: {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        startup.push(match &trust {
            TrustPolicy::AllowUnsigned => {
                "[host] trust: allow-unsigned — unsigned plugins load (development only)".to_owned()
            }
            TrustPolicy::Require { trusted_keys } => format!(
                "[host] trust: require — only libraries signed by one of {} trusted key(s) load",
                trusted_keys.len()
            ),
            _ => "[host] trust: custom policy".to_owned(),
        });
        let report = host.start_installed(&dirs);
        for status in host.statuses() {
            let signature = match &status.signature {
                SignatureStatus::Verified { key_id } => format!("signed by key {key_id}"),
                SignatureStatus::Unverified { reason } => format!("UNSIGNED: {reason}"),
            };
            startup.push(format!(
                "[host] started {} {} ({signature})",
                status.identity.id, status.identity.version
            ));
        }
        for problem in report.problems() {
            startup.push(format!("[host] problem: {problem}"));
        }

        let tiers = match &config.tiers {
            Some(names) => Tiers::new(names.clone()).context("[tiers]")?,
            None => Tiers::default(),
        };
        let config_dir = config
            .state
            .config_dir
            .as_deref()
            .map(|d| config.resolve(d))
            .unwrap_or_else(|| state_dir.clone());
        let mut platform_config = PlatformConfig::new(&state_dir, config_dir);
        platform_config.tiers = tiers;
        platform_config.env = Environment::fixed(env);
        platform_config.actor = "isp-daemon".to_owned();
        let platform = Platform::open(platform_config, host.clone())
            .with_context(|| format!("opening the platform state in {}", state_dir.display()))?;
        startup.push(format!(
            "[platform] state in {}{}",
            state_dir.display(),
            if state_tmp.is_some() {
                " (temporary: removed at exit; set [state] dir to keep it)"
            } else {
                ""
            }
        ));

        let waiting_path = state_dir.join(DAEMON_STATE_FILE);
        let waiting = match std::fs::read_to_string(&waiting_path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is corrupt; fix or remove it (it lists configured plugins waiting for a tier)",
                    waiting_path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Waiting {
                format: 1,
                ..Waiting::default()
            },
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", waiting_path.display()))
            }
        };

        let daemon = Daemon {
            config,
            host,
            platform,
            dirs,
            trust,
            state_dir,
            standins,
            devices,
            admin,
            manifests: RwLock::new(BTreeMap::new()),
            waiting: Mutex::new(waiting),
            startup,
            stopping: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            _runtime_dir: runtime_dir,
            _state_tmp: state_tmp,
        };
        let mut lines = Vec::new();
        daemon.register_started(&mut lines)?;
        let restored = daemon
            .platform
            .restore()
            .context("restoring the persisted state")?;
        if !restored.activated.is_empty() {
            lines.push(format!(
                "[platform] restored {} activation(s) from the persisted state",
                restored.activated.len()
            ));
        }
        for (tenant, plugin, error) in &restored.failed {
            lines.push(format!("[{plugin}] {tenant}: FAILED to restore: {error}"));
        }
        daemon.seed_tenants(&mut lines)?;
        let mut daemon = daemon;
        daemon.startup.extend(lines);
        Ok(daemon)
    }

    /// Registers every started plugin's manifest with the platform.
    fn register_started(&self, lines: &mut Vec<String>) -> Result<()> {
        let found = discover(&self.dirs, &identity_of);
        let mut manifests = self
            .manifests
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for plugin in found.plugins {
            if self.host.state(&plugin.manifest.id).is_none() {
                continue;
            }
            if let Err(e) = self.platform.register_plugin(&plugin.manifest) {
                lines.push(format!(
                    "[platform] cannot register {}: {e}",
                    plugin.manifest.id
                ));
                continue;
            }
            manifests.insert(plugin.manifest.id.clone(), plugin.manifest);
        }
        Ok(())
    }

    /// Adds configured tenants that are new, and asks for their plugins.
    fn seed_tenants(&self, lines: &mut Vec<String>) -> Result<()> {
        let existing: BTreeMap<String, String> = self.platform.tenants().into_iter().collect();
        for (tenant, configured) in &self.config.tenants {
            if let Some(tier) = existing.get(tenant) {
                if tier != &configured.tier {
                    lines.push(format!(
                        "[platform] {tenant}: keeps its persisted tier {tier} (configured: {})",
                        configured.tier
                    ));
                }
                continue;
            }
            self.platform
                .add_tenant(tenant, &configured.tier)
                .with_context(|| format!("adding tenant `{tenant}`"))?;
            lines.push(format!(
                "[platform] {tenant}: added on tier {}",
                configured.tier
            ));
            for plugin in configured.plugins.keys() {
                match self.request_configured("isp-daemon", tenant, plugin) {
                    Ok(()) => lines.push(format!("[{plugin}] {tenant}: activated")),
                    Err(why)
                        if why.kind == ProblemKind::Forbidden
                            || why.kind == ProblemKind::NotFound =>
                    {
                        let reason = self.wait_reason(tenant, plugin);
                        self.wait(tenant, plugin, &reason)?;
                        lines.push(format!("[{plugin}] {tenant}: waiting: {reason}"));
                    }
                    Err(e) => lines.push(format!("[{plugin}] {tenant}: FAILED to activate: {e}")),
                }
            }
        }
        Ok(())
    }

    fn wait_reason(&self, tenant: &str, plugin: &str) -> String {
        let tier = self.tier_of(tenant).unwrap_or_default();
        match self.required_tier(plugin) {
            Some(required) => format!(
                "tier {tier} does not include it (needs {required}); it is activated when the tier allows"
            ),
            None => "it is not installed; it is activated when it is".to_owned(),
        }
    }

    fn save_waiting(&self, waiting: &Waiting) -> Result<(), Problem> {
        let path = self.state_dir.join(DAEMON_STATE_FILE);
        let text =
            serde_json::to_vec_pretty(waiting).map_err(|e| Problem::internal(e.to_string()))?;
        // The same atomic, fsynced writer as the platform's state files.
        plugkit_durable::write_atomic(&path, &text, 0o600)
            .map_err(|e| Problem::internal(format!("writing {}: {e}", path.display())))
    }

    fn wait(&self, tenant: &str, plugin: &str, why: &str) -> Result<(), Problem> {
        let mut waiting = lock(&self.waiting);
        waiting
            .requests
            .entry(tenant.to_owned())
            .or_default()
            .insert(plugin.to_owned(), why.to_owned());
        self.save_waiting(&waiting)
    }

    fn stop_waiting(&self, tenant: &str, plugin: &str) -> Result<(), Problem> {
        let mut waiting = lock(&self.waiting);
        let removed = waiting
            .requests
            .get_mut(tenant)
            .and_then(|plugins| plugins.remove(plugin))
            .is_some();
        waiting.requests.retain(|_, plugins| !plugins.is_empty());
        if removed {
            self.save_waiting(&waiting)?;
        }
        Ok(())
    }

    /// Asks the platform for `plugin` for `tenant` with its configured settings.
    fn request_configured(&self, actor: &str, tenant: &str, plugin: &str) -> Result<(), Problem> {
        let settings = self.config.settings(tenant, plugin).unwrap_or(Value::Null);
        self.platform
            .as_actor(actor)
            .request(tenant, plugin, settings)
            .map_err(Problem::from)
    }

    /// Activates the tenant's waiting plugins that its tier now allows.
    pub(crate) fn activate_waiting(
        &self,
        actor: &str,
        tenant: &str,
    ) -> Vec<(String, Result<(), Problem>)> {
        let candidates: Vec<String> = lock(&self.waiting)
            .requests
            .get(tenant)
            .map(|plugins| plugins.keys().cloned().collect())
            .unwrap_or_default();
        let tier = self.tier_of(tenant).unwrap_or_default();
        let mut out = Vec::new();
        for plugin in candidates {
            let allowed = self.required_tier(&plugin).is_some_and(|required| {
                self.platform
                    .tiers()
                    .allows(&tier, &required)
                    .unwrap_or(false)
            });
            if !allowed {
                continue;
            }
            let outcome = self
                .request_configured(actor, tenant, &plugin)
                .and_then(|()| self.stop_waiting(tenant, &plugin));
            out.push((plugin, outcome));
        }
        out
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

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The plugin directories it scans.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.dirs
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

    /// Why `tenant` (on `tier`) has no active provider of category `C`.
    pub(crate) fn missing_provider<C: Contract>(&self, tenant: &str, tier: &str) -> String {
        let extension = C::NAME;
        let installed = self.host.providers::<C>();
        if installed.is_empty() {
            return format!("no {extension} plugin is installed");
        }
        let entitled: Vec<String> = installed
            .into_iter()
            .filter(|id| {
                self.required_tier(id).is_some_and(|required| {
                    self.platform
                        .tiers()
                        .allows(tier, &required)
                        .unwrap_or(false)
                })
            })
            .collect();
        if entitled.is_empty() {
            format!("tier {tier} has no {extension} provider")
        } else {
            format!(
                "no {extension} provider is active for {tenant} ({} not active)",
                entitled.join(", ")
            )
        }
    }

    /// A setting of the tenant's plugin as an operator may see it (redacted).
    pub(crate) fn shown_setting(&self, tenant: &str, plugin: &str, key: &str) -> Option<Value> {
        let view = self.platform.tenant_view(tenant).ok()?;
        let requested = view.plugins.into_iter().find(|p| p.plugin == plugin)?;
        requested.config.get(key).cloned()
    }

    /// Activates `plugin` for `tenant`: with `overrides` when given, else
    /// with the tenant's configured settings.
    pub fn activate(
        &self,
        actor: &str,
        tenant: &str,
        plugin: &str,
        overrides: Option<Value>,
    ) -> Result<(), Problem> {
        self.tier_of(tenant)?;
        self.known_plugin(plugin)?;
        let result = match overrides {
            Some(overrides) => self
                .platform
                .as_actor(actor)
                .request(tenant, plugin, overrides)
                .map_err(Problem::from),
            None => self.request_configured(actor, tenant, plugin),
        };
        result.map_err(|e| e.tenant(tenant).plugin(plugin))?;
        self.stop_waiting(tenant, plugin)
    }

    /// Deactivates `plugin` for `tenant` and withdraws its request.
    pub fn deactivate(&self, actor: &str, tenant: &str, plugin: &str) -> Result<(), Problem> {
        self.tier_of(tenant)?;
        self.known_plugin(plugin)?;
        let was_waiting = lock(&self.waiting)
            .requests
            .get(tenant)
            .is_some_and(|p| p.contains_key(plugin));
        match self.platform.as_actor(actor).deactivate(tenant, plugin) {
            Ok(()) => {}
            Err(PlatformError::NotRequested { .. }) if was_waiting => {}
            Err(e) => return Err(Problem::from(e).tenant(tenant).plugin(plugin)),
        }
        self.stop_waiting(tenant, plugin)
    }

    fn known_plugin(&self, plugin: &str) -> Result<(), Problem> {
        let known = self
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(plugin);
        if known {
            Ok(())
        } else {
            Err(Problem::not_found(format!(
                "no plugin `{plugin}` is installed; list the plugins with GET /api/plugins"
            ))
            .plugin(plugin))
        }
    }

    /// The tenant's configuration of `plugin`, sensitive values redacted.
    pub fn plugin_config(&self, tenant: &str, plugin: &str) -> Result<TenantPluginView, Problem> {
        self.known_plugin(plugin)?;
        let view = self
            .platform
            .tenant_view(tenant)
            .map_err(|e| Problem::from(e).tenant(tenant))?;
        view.plugins
            .into_iter()
            .find(|p| p.plugin == plugin)
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NotFound,
                    format!(
                        "tenant `{tenant}` has not requested plugin `{plugin}`, so it has no \
                         configuration of it; activate it first"
                    ),
                )
                .tenant(tenant)
                .plugin(plugin)
            })
    }

    /// Replaces the tenant's overrides of `plugin`. Validated first; a
    /// refused or failed change leaves the running configuration as it was.
    pub fn update_config(
        &self,
        actor: &str,
        tenant: &str,
        plugin: &str,
        overrides: Value,
    ) -> Result<TenantPluginView, Problem> {
        self.plugin_config(tenant, plugin)?;
        if !overrides.is_object() {
            return Err(Problem::bad_request(
                "the body must be a JSON object of configuration key → value (the tenant's \
                 overrides; sensitive keys as references such as \"${env:VAR}\")",
            )
            .tenant(tenant)
            .plugin(plugin));
        }
        self.platform
            .as_actor(actor)
            .request(tenant, plugin, overrides)
            .map_err(|e| Problem::from(e).tenant(tenant).plugin(plugin))?;
        self.plugin_config(tenant, plugin)
    }

    /// The installed plugins with their discovered manifests, and the
    /// problems found while scanning the plugin directories.
    pub fn plugins_overview(&self) -> Value {
        let found = discover(&self.dirs, &identity_of);
        let statuses = self.host.statuses();
        let available: Vec<Value> = found
            .plugins
            .iter()
            .map(|p| {
                let m = &p.manifest;
                let config: Vec<Value> = m
                    .config
                    .iter()
                    .map(|(key, spec)| {
                        json!({
                            "key": key,
                            "type": spec.value_type.as_str(),
                            "required": spec.required,
                            "sensitive": spec.sensitive,
                            "description": spec.description,
                        })
                    })
                    .collect();
                json!({
                    "id": m.id,
                    "name": m.name,
                    "version": m.version.to_string(),
                    "description": m.description,
                    "category": m.category.as_str(),
                    "required_tier": m.required_tier,
                    "provides": m.provides,
                    "hooks": m.hooks.iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
                    "folder": p.folder,
                    "library": p.library,
                    "loaded": self.host.state(&m.id).is_some(),
                    "config": config,
                })
            })
            .collect();
        let installed: Vec<Value> = statuses
            .iter()
            .map(|s| {
                let mut value = serde_json::to_value(s).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("id".to_owned(), json!(s.identity.id));
                    map.insert(
                        "required_tier".to_owned(),
                        json!(self.required_tier(&s.identity.id)),
                    );
                }
                value
            })
            .collect();
        let problems: Vec<String> = found.problems.iter().map(ToString::to_string).collect();
        json!({ "available": available, "installed": installed, "problems": problems })
    }

    /// One tenant: tier, every installed plugin's state for it, its
    /// providers, and its requests with their (redacted) configuration.
    pub fn tenant_overview(&self, tenant: &str) -> Result<Value, Problem> {
        let tier = self.tier_of(tenant)?;
        let view = self
            .platform
            .tenant_view(tenant)
            .map_err(|e| Problem::from(e).tenant(tenant))?;
        let waiting: BTreeMap<String, String> = lock(&self.waiting)
            .requests
            .get(tenant)
            .cloned()
            .unwrap_or_default();
        let manifests = self
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut plugins = Vec::new();
        for (id, manifest) in &manifests {
            let loaded = self.host.state(id).is_some();
            let active = self.host.plugin(id).is_ok_and(|h| h.is_active_for(tenant));
            let requested = view.plugins.iter().any(|p| &p.plugin == id);
            let entitled = self
                .platform
                .tiers()
                .allows(&tier, &manifest.required_tier)
                .unwrap_or(false);
            let state = if active {
                "active"
            } else if waiting.contains_key(id) {
                "waiting"
            } else if !entitled {
                "not_entitled"
            } else {
                "inactive"
            };
            plugins.push(json!({
                "plugin": id,
                "version": manifest.version.to_string(),
                "required_tier": manifest.required_tier,
                "entitled": entitled,
                "requested": requested,
                "active": active,
                "loaded": loaded,
                "state": state,
                "waiting": waiting.get(id),
            }));
        }
        fn provider<C: Contract>(host: &Host, tenant: &str) -> Option<String> {
            host.provider_for_tenant::<C>(tenant)
                .map(|h| h.id().to_owned())
        }
        Ok(json!({
            "tenant": tenant,
            "tier": tier,
            "plugins": plugins,
            "providers": {
                "payment": provider::<payment::Contract>(&self.host, tenant),
                "communication": provider::<communication::Contract>(&self.host, tenant),
                "network-automation": provider::<network_automation::Contract>(&self.host, tenant),
            },
            "requests": view.plugins,
        }))
    }

    /// Every tenant's overview.
    pub fn tenants_overview(&self) -> Result<Value, Problem> {
        let tenants = self
            .platform
            .tenants()
            .into_iter()
            .map(|(tenant, _)| self.tenant_overview(&tenant))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({ "tenants": tenants }))
    }

    /// Each plugin's metrics.
    pub fn metrics(&self) -> Value {
        let mut out = serde_json::Map::new();
        for id in self.host.plugin_ids() {
            if let Ok(snapshot) = self.host.metrics(&id) {
                out.insert(id, serde_json::to_value(snapshot).unwrap_or(Value::Null));
            }
        }
        json!({ "plugins": out })
    }

    /// The dependency graph of the installed plugins, resolved now.
    pub fn graph(&self) -> (Value, String) {
        let found = discover(&self.dirs, &identity_of);
        let manifests: Vec<Manifest> = found.plugins.into_iter().map(|p| p.manifest).collect();
        let api = semver_of(plugin_api::API_VERSION);
        let resolution = DependencyGraph::resolve(&manifests, &api);
        let mut graph = resolution.to_json();
        if let Value::Object(map) = &mut graph {
            map.insert("start_order".to_owned(), json!(resolution.start_order));
            map.insert("stop_order".to_owned(), json!(resolution.stop_order()));
            map.insert(
                "blocked".to_owned(),
                json!(resolution
                    .blocked
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()),
            );
            map.insert(
                "problems".to_owned(),
                json!(resolution
                    .problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()),
            );
        }
        (graph, resolution.to_dot())
    }

    /// The order to stop the loaded plugins in: the reverse of the
    /// dependency order, then any others (newest first).
    pub fn stop_order(&self) -> Vec<String> {
        let found = discover(&self.dirs, &identity_of);
        let manifests: Vec<Manifest> = found.plugins.into_iter().map(|p| p.manifest).collect();
        let resolution = DependencyGraph::resolve(&manifests, &semver_of(plugin_api::API_VERSION));
        let loaded = self.host.plugin_ids();
        let mut order: Vec<String> = resolution
            .stop_order()
            .into_iter()
            .filter(|id| loaded.contains(id))
            .collect();
        for id in loaded.into_iter().rev() {
            if !order.contains(&id) {
                order.push(id);
            }
        }
        order
    }

    /// The last `limit` audit entries (all when `None`), oldest first.
    pub fn audit(&self, limit: Option<usize>) -> Result<Value, Problem> {
        let entries = self
            .platform
            .audit()
            .entries()
            .map_err(|e| Problem::internal(e.to_string()))?;
        let skip = limit.map_or(0, |n| entries.len().saturating_sub(n));
        let shown: Vec<_> = entries.into_iter().skip(skip).collect();
        Ok(json!({ "path": self.platform.audit().path(), "entries": shown }))
    }

    fn audit_entry(&self, entry: AuditEntry) {
        if let Err(e) = self.platform.audit().append(&entry) {
            tracing::error!("cannot append to the audit log: {e}");
        }
    }

    /// Reloads `plugin` from its folder in the plugin directories (or starts
    /// it, when it is installed but not running) and records it in the audit log.
    pub fn reload(&self, actor: &str, plugin: &str) -> Result<Value, Problem> {
        let found = discover(&self.dirs, &identity_of);
        let Some(installed) = found.plugins.into_iter().find(|p| p.manifest.id == plugin) else {
            let problem = if self.host.state(plugin).is_some() {
                Problem::new(
                    ProblemKind::Conflict,
                    format!(
                        "plugin `{plugin}` is running, but its folder is no longer in the plugin \
                         directories; reinstall it to reload it"
                    ),
                )
            } else {
                Problem::not_found(format!(
                    "no plugin `{plugin}` is installed in {}; list the plugins with GET /api/plugins",
                    self.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            return Err(problem.plugin(plugin));
        };
        let manifest = installed.manifest;
        if self.host.state(plugin).is_none() {
            return self.start_new(actor, &manifest, &installed.library);
        }
        let report = self
            .host
            .reload(plugin, &installed.library, load_options(&manifest))
            .map_err(Problem::from)?;
        let (outcome, detail) = match &report.outcome {
            plugin_host::ReloadOutcome::Swapped => (AuditOutcome::Ok, "swapped".to_owned()),
            plugin_host::ReloadOutcome::Unchanged => (
                AuditOutcome::Ok,
                "unchanged: the library's bytes are the ones loaded".to_owned(),
            ),
            plugin_host::ReloadOutcome::RolledBack { step, error } => (
                AuditOutcome::Failed,
                format!("rolled back at the {step}: {error}"),
            ),
        };
        if report.swapped() {
            self.adopt_manifest(&manifest);
        }
        self.audit_entry(
            AuditEntry::new(actor, AuditAction::Reload, outcome)
                .plugin(plugin)
                .versions(Some(report.from_version.clone()), report.to_version.clone())
                .detail(detail),
        );
        Ok(serde_json::to_value(&report).unwrap_or(Value::Null))
    }

    /// Starts a plugin that was installed after the daemon started.
    fn start_new(
        &self,
        actor: &str,
        manifest: &Manifest,
        library: &Path,
    ) -> Result<Value, Problem> {
        let id = self
            .host
            .load(library, load_options(manifest))
            .and_then(|id| self.host.initialize(&id).map(|()| id));
        match id {
            Ok(id) => {
                let activated = self.adopt_new_plugin(actor, &id);
                Ok(json!({
                    "plugin": id,
                    "outcome": "started",
                    "to_version": manifest.version.to_string(),
                    "activated_for": activated,
                }))
            }
            Err(e) => {
                let _ = self.host.remove(&manifest.id);
                Err(Problem::from(e).plugin(&manifest.id))
            }
        }
    }

    fn adopt_manifest(&self, manifest: &Manifest) {
        if let Err(e) = self.platform.register_plugin(manifest) {
            tracing::error!(plugin = %manifest.id, "cannot register the new manifest: {e}");
            return;
        }
        self.manifests
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(manifest.id.clone(), manifest.clone());
    }

    /// After a plugin started while the daemon runs: registers it, and
    /// activates it for the tenants that had asked for it and for those
    /// whose configured settings were waiting for it.
    pub(crate) fn adopt_new_plugin(&self, actor: &str, plugin: &str) -> Vec<String> {
        let found = discover(&self.dirs, &identity_of);
        if let Some(p) = found.plugins.into_iter().find(|p| p.manifest.id == plugin) {
            self.adopt_manifest(&p.manifest);
        }
        let mut activated = Vec::new();
        // Tenants that asked for it before it went away get it back.
        match self.platform.as_actor(actor).restore() {
            Ok(restored) => {
                for (tenant, id) in restored.activated {
                    if id == plugin {
                        activated.push(tenant);
                    }
                }
                for (tenant, id, error) in restored.failed {
                    tracing::warn!(plugin = %id, tenant = %tenant, "not restored: {error}");
                }
            }
            Err(e) => tracing::error!(plugin, "restoring the tenants' requests: {e}"),
        }
        let tenants: Vec<String> = lock(&self.waiting)
            .requests
            .iter()
            .filter(|(_, plugins)| plugins.contains_key(plugin))
            .map(|(tenant, _)| tenant.clone())
            .collect();
        for tenant in tenants {
            let outcome = self.activate_waiting(actor, &tenant);
            for (id, result) in outcome {
                match result {
                    Ok(()) => activated.push(tenant.clone()),
                    Err(e) => tracing::warn!(plugin = %id, tenant = %tenant, "{e}"),
                }
            }
        }
        activated
    }

    /// Records a reload the live loop did.
    pub(crate) fn record_live_reload(&self, report: &plugin_host::ReloadReport) {
        let (outcome, detail) = match &report.outcome {
            plugin_host::ReloadOutcome::RolledBack { step, error } => (
                AuditOutcome::Failed,
                format!("hot reload rolled back at the {step}: {error}"),
            ),
            _ => (
                AuditOutcome::Ok,
                "hot reload from the plugin directory".to_owned(),
            ),
        };
        if report.swapped() {
            let found = discover(&self.dirs, &identity_of);
            if let Some(p) = found
                .plugins
                .into_iter()
                .find(|p| p.manifest.id == report.plugin)
            {
                self.adopt_manifest(&p.manifest);
            }
        }
        self.audit_entry(
            AuditEntry::new("isp-daemon", AuditAction::Reload, outcome)
                .plugin(&report.plugin)
                .versions(Some(report.from_version.clone()), report.to_version.clone())
                .detail(detail),
        );
    }

    /// A JSON summary of the daemon for the admin page.
    pub fn info(&self) -> Value {
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "plugin_dirs": self.dirs,
            "state_dir": self.state_dir,
            "trust": match &self.trust {
                TrustPolicy::AllowUnsigned => "allow-unsigned".to_owned(),
                TrustPolicy::Require { trusted_keys } => format!("require ({} key(s))", trusted_keys.len()),
                _ => "custom".to_owned(),
            },
            "tiers": self.platform.tiers().names(),
            "standins": {
                "twilio": self.standins.twilio().map(|s| s.base_url()),
                "stripe": self.standins.stripe().map(|s| s.base_url().to_owned()),
            },
            "watching": self.watching.load(Ordering::Relaxed),
            "stopping": self.stopping.load(Ordering::Relaxed),
        })
    }

    /// Stops every plugin in reverse dependency order, recording in the
    /// audit log what stops for which tenant (requests are kept, so the
    /// next start restores them). Returns what it did, one line each; a
    /// second call does nothing.
    pub fn shutdown(&self) -> Vec<String> {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        self.watching.store(false, Ordering::SeqCst);
        let mut lines = Vec::new();
        let order = self.stop_order();
        lines.push(format!(
            "[host] stopping plugins in reverse dependency order: {}",
            order.join(", ")
        ));
        for id in &order {
            let (tenants, version) = match self.host.status(id) {
                Ok(status) => (status.tenants, Some(status.identity.version.clone())),
                Err(_) => (Vec::new(), None),
            };
            for tenant in tenants {
                self.audit_entry(
                    AuditEntry::new("isp-daemon", AuditAction::Deactivate, AuditOutcome::Ok)
                        .tenant(&tenant)
                        .plugin(id)
                        .versions(version.clone(), None)
                        .detail(
                            "daemon stopping; the request is kept and restored at the next start",
                        ),
                );
            }
            match self.host.remove(id) {
                Ok(()) => lines.push(format!("[host] stopped {id}")),
                Err(e) => lines.push(format!("[host] stopped {id}, with an error: {e}")),
            }
        }
        for e in self.host.stop_all() {
            lines.push(format!("[host] stopping: {e}"));
        }
        let count = self.platform.audit().entries().map_or(0, |e| e.len());
        lines.push(format!(
            "[audit] {count} entries, each synced to {} as it was written",
            self.platform.audit().path().display()
        ));
        lines
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
}

fn semver_of(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap_or_else(|_| semver::Version::new(0, 0, 0))
}
