//! The daemon's configuration file (TOML): plugin directories, trust, state,
//! the admin API, the stand-ins, the tenants with their tiers and plugin
//! settings, and the demo script. [`EMBEDDED`] is the default.
//!
//! Pure apart from [`Config::load`] and [`TrustConfig::policy`], which read
//! files. Secrets never appear as values: the admin token and sensitive
//! plugin settings are references (`${env:VAR}`, `${file:/path}`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use plugin_host::isolation::{Isolation, IsolationPolicy, ProcessOptions};
use plugin_host::package::signature::TrustPolicy;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::requests::{DeviceAlertRequest, NewCustomer, TierChangeRequest};

/// The embedded default configuration: three demo tenants and the demo script.
pub const EMBEDDED: &str = include_str!("demo.toml");

/// A parsed configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where installed plugins are.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Which libraries may load.
    #[serde(default)]
    pub trust: TrustConfig,
    /// Where state lives.
    #[serde(default)]
    pub state: StateConfig,
    /// The tiers, lowest first; `free < pro < enterprise` when absent.
    #[serde(default)]
    pub tiers: Option<Vec<String>>,
    /// The admin API.
    pub admin: AdminConfig,
    /// Rate limits of API keys, by scope (`[rate_limits]`).
    #[serde(default)]
    pub rate_limits: crate::ratelimit::RateLimitConfig,
    /// The API stand-ins.
    #[serde(default)]
    pub standins: StandinsConfig,
    /// Tenants by id.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// The demo script.
    #[serde(default)]
    pub demo: DemoConfig,
    /// Webhooks in and out.
    #[serde(default)]
    pub webhooks: crate::webhook_state::WebhooksConfig,
    /// Plugins from an OCI registry by subscription tier (`crate::provisioning`).
    #[serde(default)]
    pub provisioning: Option<crate::provisioning::ProvisioningConfig>,
    /// The Vault or OpenBao server for `${vault:path#key}` references (`crate::vault`).
    #[serde(default)]
    pub vault: Option<crate::vault::VaultSection>,
    /// Relative paths are relative to this folder.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[plugins]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Plugin directories, scanned in order.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Per plugin id: where it runs (`[plugins.isolation.<id>]`). Plugins
    /// not listed run in-process unless their `plugin.toml` asks for more.
    #[serde(default)]
    pub isolation: BTreeMap<String, PluginIsolation>,
}

/// `[plugins.isolation.<id>]`: a plugin's isolation mode and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginIsolation {
    /// `in-process`, `process` or `process-per-tenant`.
    pub mode: Isolation,
    /// Memory limit of the plugin's process.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// CPU quota of the plugin's process, in percent of one core.
    #[serde(default)]
    pub cpu_percent: Option<u32>,
    /// Deadline of a call or hook, in milliseconds (default 5000).
    #[serde(default)]
    pub call_deadline_ms: Option<u64>,
    /// Crashes within a minute that quarantine the plugin (default 5).
    #[serde(default)]
    pub max_crashes: Option<u32>,
}

impl PluginIsolation {
    /// The host's process options for this entry.
    pub fn process_options(&self) -> ProcessOptions {
        let defaults = ProcessOptions::default();
        ProcessOptions {
            memory_mb: self.memory_mb,
            cpu_percent: self.cpu_percent,
            call_deadline: self
                .call_deadline_ms
                .map_or(defaults.call_deadline, std::time::Duration::from_millis),
            max_crashes: self.max_crashes.unwrap_or(defaults.max_crashes),
            ..defaults
        }
    }
}

impl PluginsConfig {
    /// The host's isolation policy for these plugins.
    pub fn isolation_policy(&self) -> IsolationPolicy {
        IsolationPolicy {
            plugins: self
                .isolation
                .iter()
                .map(|(id, entry)| (id.clone(), (entry.mode, entry.process_options())))
                .collect(),
            ..IsolationPolicy::default()
        }
    }
}

/// `[trust]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The policy.
    #[serde(default)]
    pub policy: TrustMode,
    /// Trusted minisign public keys: base64 lines, or the text of `.pub` files.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Folders whose `*.pub` files are trusted keys.
    #[serde(default)]
    pub key_dirs: Vec<PathBuf>,
}

/// Whether unsigned libraries may load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustMode {
    /// Only libraries signed by a trusted key.
    #[default]
    Require,
    /// Anything, loudly (development).
    AllowUnsigned,
}

/// `[state]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// State directory; a fresh temporary one per run when absent.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The operator's configuration directory (`plugins/<id>.toml`); the
    /// state directory when absent.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `address:port` to listen on.
    pub listen: String,
    /// The bearer token, as a reference.
    pub token: String,
    /// Make up a token for the run when the reference does not resolve.
    #[serde(default)]
    pub generate_token_if_unset: bool,
}

/// `[standins]`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandinsConfig {
    /// The Twilio stand-in.
    #[serde(default)]
    pub twilio: StandinMode,
    /// The Stripe stand-in.
    #[serde(default)]
    pub stripe: StandinMode,
}

/// When a stand-in runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StandinMode {
    /// When the real credentials are not in the environment.
    #[default]
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// `[tenants.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tier the tenant starts with.
    pub tier: String,
    /// Settings per plugin id: the tenant's overrides of the plugin's configuration.
    #[serde(default)]
    pub plugins: BTreeMap<String, toml::Table>,
}

/// `[demo]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// The flows to run, in order.
    #[serde(default)]
    pub steps: Vec<DemoStep>,
}

/// One flow of the demo script.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "flow", rename_all = "kebab-case")]
pub enum DemoStep {
    /// A new customer signs up.
    NewCustomer(NewCustomer),
    /// A device raises an alert.
    DeviceAlert(DeviceAlertRequest),
    /// A tenant changes tier.
    TierChange(TierChangeRequest),
}

impl DemoStep {
    /// The tenant the step concerns.
    pub fn tenant(&self) -> &str {
        match self {
            Self::NewCustomer(c) => &c.tenant,
            Self::DeviceAlert(a) => &a.tenant,
            Self::TierChange(t) => &t.tenant,
        }
    }
}

impl Config {
    /// The embedded default, relative paths resolved against the current directory.
    pub fn embedded() -> Result<Self> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        Self::parse(EMBEDDED, &cwd).context("the embedded default configuration")
    }

    /// Reads a configuration file; relative paths in it (plugin, state,
    /// configuration and trusted-key directories, `[provisioning]
    /// plugin_dir`) are relative to its folder, made absolute here (the
    /// folder canonicalized) so they do not depend on the current
    /// directory of whoever reads them later (the watcher compares them
    /// with the absolute paths the OS reports).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration {}", path.display()))?;
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(folder).with_context(|| {
            format!(
                "resolving the folder of the configuration {} (its relative paths are relative \
                 to it)",
                path.display()
            )
        })?;
        Self::parse(&text, &base).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks a configuration.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self> {
        let mut config: Config = toml::from_str(text).context("not a valid configuration")?;
        config.base_dir = base_dir.to_owned();
        config.check(text)?;
        Ok(config)
    }

    fn check(&self, text: &str) -> Result<()> {
        self.listen_addr()?;
        self.check_tiers(text)?;
        if let Some(every) = self
            .provisioning
            .as_ref()
            .and_then(|p| p.refresh_interval.as_deref())
        {
            if let Err(e) = humantime::parse_duration(every) {
                bail!(
                    "[provisioning] refresh_interval = {every:?}{} is not a duration ({e}); write \
                     one such as \"5m\" or \"1h\", or drop it to refresh only at start and on \
                     POST /api/provisioning/refresh",
                    at_line(text, "refresh_interval")
                );
            }
        }
        if self.admin.token.trim().is_empty() {
            bail!("[admin] token is empty; set it to a reference such as \"${{env:ISP_DAEMON_ADMIN_TOKEN}}\"");
        }
        if !is_reference(&self.admin.token) {
            bail!(
                "[admin] token must be a secret reference such as \"${{env:ISP_DAEMON_ADMIN_TOKEN}}\" \
                 or \"${{file:/etc/isp-daemon/token}}\", never the token itself"
            );
        }
        for (index, step) in self.demo.steps.iter().enumerate() {
            if !self.tenants.contains_key(step.tenant()) {
                bail!(
                    "[[demo.steps]] number {}: tenant `{}` is not configured under [tenants]",
                    index + 1,
                    step.tenant()
                );
            }
        }
        Ok(())
    }

    /// The tier list is valid and every tenant's tier is in it; errors name
    /// the tenant and the line of its table.
    fn check_tiers(&self, text: &str) -> Result<()> {
        let names: Vec<String> = match &self.tiers {
            Some(names) => {
                if let Err(e) = plugin_host::tenancy::Tiers::new(names.clone()) {
                    bail!(
                        "tiers = {names:?}{}: {e}; list each tier once, lowest first",
                        at_line(text, "tiers")
                    );
                }
                names.clone()
            }
            None => DEFAULT_TIERS.map(str::to_owned).to_vec(),
        };
        for (id, tenant) in &self.tenants {
            if !names.contains(&tenant.tier) {
                bail!(
                    "[tenants.{id}]{}: tier = {:?} is not a configured tier; use one of {} (the \
                     top-level `tiers` list, lowest first{})",
                    at_line(text, &format!("[tenants.{id}]")),
                    tenant.tier,
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" < "),
                    if self.tiers.is_none() {
                        "; absent, it is free < pro < enterprise"
                    } else {
                        ""
                    }
                );
            }
        }
        Ok(())
    }

    /// The admin API's address.
    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.admin.listen.parse().with_context(|| {
            format!(
                "[admin] listen = {:?} is not an address:port such as \"127.0.0.1:8089\"",
                self.admin.listen
            )
        })
    }

    /// `path` made absolute against the configuration's folder, `.` and
    /// `..` components resolved lexically (a plugin directory that is a
    /// symlink stays the link, so swapping it re-arms the watch).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        let joined = if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        };
        normalize(&joined)
    }

    /// The configured plugin directories, absolute.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        self.plugins.dirs.iter().map(|d| self.resolve(d)).collect()
    }

    /// The tenant's configured settings of `plugin` as a JSON object, if any.
    pub fn settings(&self, tenant: &str, plugin: &str) -> Option<Value> {
        let table = self.tenants.get(tenant)?.plugins.get(plugin)?;
        Some(match serde_json::to_value(table) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => Value::Object(Map::new()),
        })
    }
}

impl TrustConfig {
    /// The host's trust policy; `require` without any key is an error.
    pub fn policy(&self, config: &Config) -> Result<TrustPolicy> {
        match self.policy {
            TrustMode::AllowUnsigned => Ok(TrustPolicy::AllowUnsigned),
            TrustMode::Require => {
                let mut keys: Vec<String> = Vec::new();
                let listed = self.keys.iter().cloned();
                let mut from_dirs = Vec::new();
                for dir in &self.key_dirs {
                    from_dirs.extend(read_key_dir(&config.resolve(dir))?);
                }
                // The same folder may be named twice (configuration and command line).
                for key in listed.chain(from_dirs) {
                    if !keys.iter().any(|k| k.trim() == key.trim()) {
                        keys.push(key);
                    }
                }
                if keys.is_empty() {
                    bail!(
                        "trust policy `require` has no trusted key: `cargo xtask install-plugin` \
                         writes the signing key's public half to config/trusted-keys/; add keys \
                         under [trust] keys or key_dirs, pass --trusted-key, or pass \
                         --allow-unsigned for development"
                    );
                }
                Ok(TrustPolicy::Require { trusted_keys: keys })
            }
        }
    }
}

/// Every `*.pub` file in `dir`, sorted by name; nothing when `dir` does not exist.
pub fn read_key_dir(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("listing trusted keys in {}", dir.display()))
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("reading trusted key {}", p.display()))
        })
        .collect()
}

/// The tiers when the configuration lists none, lowest first.
const DEFAULT_TIERS: [&str; 3] = ["free", "pro", "enterprise"];

/// ` (line N)` of the first line of `text` that starts with `start`, or nothing.
fn at_line(text: &str, start: &str) -> String {
    text.lines()
        .position(|line| line.trim_start().starts_with(start))
        .map(|index| format!(" (line {})", index + 1))
        .unwrap_or_default()
}

/// `path` without `.` components and with each `..` taking away the
/// component before it (lexically; no file system access).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `text` is written as a `${scheme:locator}` reference.
fn is_reference(text: &str) -> bool {
    text.starts_with("${") && text.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_configuration_parses_and_names_three_tiers_of_tenants() {
        let config = Config::parse(EMBEDDED, Path::new("/base")).expect("embedded config");
        let tiers: Vec<(&str, &str)> = config
            .tenants
            .iter()
            .map(|(id, t)| (id.as_str(), t.tier.as_str()))
            .collect();
        assert_eq!(
            tiers,
            [
                ("acme-fiber", "enterprise"),
                ("bluesky-net", "pro"),
                ("corner-wifi", "free")
            ]
        );
        assert_eq!(config.plugin_dirs(), [PathBuf::from("/base/var/plugins")]);
        assert!(!config.demo.steps.is_empty());
        let settings = config
            .settings("acme-fiber", "stripe")
            .expect("stripe settings");
        assert_eq!(settings["max_amount_minor"], 100000);
        assert_eq!(settings["secret_key"], "${env:STRIPE_SECRET_KEY}");
    }

    fn check(text: &str, expected: &str) {
        let full = format!("[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"${{env:T}}\"\n{text}");
        let outcome = match Config::parse(&full, Path::new("/")) {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            outcome.contains(expected),
            "{text:?}: expected {expected:?} in {outcome:?}"
        );
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        check("", "ok");
        check("[tenants.a]\ntier = \"pro\"", "ok");
        check("[plugins]\ndirz = []", "unknown field `dirz`");
        check("[trust]\npolicy = \"maybe\"", "unknown variant `maybe`");
        check(
            "[standins]\ntwilio = \"sometimes\"",
            "unknown variant `sometimes`",
        );
        check(
            "[[demo.steps]]\nflow = \"tier-change\"\ntenant = \"ghost\"\ntier = \"pro\"",
            "tenant `ghost` is not configured",
        );
        check(
            "[[demo.steps]]\nflow = \"dance\"\ntenant = \"a\"",
            "unknown variant `dance`",
        );
        // Regression (new-user trial): an unknown tier failed at start
        // without the file or the line.
        check(
            "\n[tenants.acme]\ntier = \"gold\"",
            "[tenants.acme] (line 5): tier = \"gold\" is not a configured tier; use one of \
             `free` < `pro` < `enterprise`",
        );
        check(
            "[provisioning]\nregistry = \"http://127.0.0.1:5000\"\ntier = \"pro\"\n\
             refresh_interval = \"often\"",
            "[provisioning] refresh_interval = \"often\" (line 7) is not a duration",
        );
        check(
            "[tenants.a]\ntier = \"gold\"",
            "absent, it is free < pro < enterprise",
        );
        let with_tiers = |tiers: &str| {
            let text = format!(
                "tiers = {tiers}\n[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"${{env:T}}\"\n\
                 [tenants.a]\ntier = \"b\"\n"
            );
            match Config::parse(&text, Path::new("/")) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{e:#}"),
            }
        };
        assert_eq!(with_tiers("[\"a\", \"b\"]"), "ok");
        assert!(with_tiers("[\"b\", \"b\"]")
            .starts_with("tiers = [\"b\", \"b\"] (line 1): tier `b` appears twice"));
    }

    #[test]
    fn relative_paths_resolve_against_the_configuration_folder() {
        let text = "[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"${env:T}\"\n\
                    [plugins]\ndirs = [\"plugins\", \"./more/../other\", \"/abs/p\"]\n";
        let config = Config::parse(text, Path::new("/etc/isp")).expect("parses");
        assert_eq!(
            config.plugin_dirs(),
            [
                PathBuf::from("/etc/isp/plugins"),
                PathBuf::from("/etc/isp/other"),
                PathBuf::from("/abs/p")
            ]
        );
        assert_eq!(
            config.resolve(Path::new("../state")),
            PathBuf::from("/etc/state")
        );
    }

    #[test]
    fn the_admin_section_is_checked() {
        let parse = |admin: &str| match Config::parse(&format!("[admin]\n{admin}"), Path::new("/"))
        {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        assert_eq!(
            parse("listen = \"127.0.0.1:0\"\ntoken = \"${file:/t}\""),
            "ok"
        );
        assert!(
            parse("listen = \"localhost\"\ntoken = \"${env:T}\"").contains("not an address:port")
        );
        assert!(parse("listen = \"127.0.0.1:0\"\ntoken = \"hunter2\"")
            .contains("never the token itself"));
        assert!(parse("listen = \"127.0.0.1:0\"").contains("missing field `token`"));
    }
}
