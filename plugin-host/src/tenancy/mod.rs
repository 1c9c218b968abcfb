//! The multi-tenant platform above [`Host`]: tenants and their tiers, per
//! tenant activation with layered, schema-checked configuration, secrets
//! resolved at activation, an audit log, and state that survives a restart.
//!
//! A plugin is loaded and initialized once in the host (by the caller), then
//! activated per tenant through the [`Platform`], which uses only the host's
//! public API.
//!
//! Invariants:
//! - Desired state (tiers, requested plugins, overrides) is persisted; what
//!   is active is read from the host, never stored twice.
//! - A sensitive value never lands in a file this module writes: tenant
//!   overrides of sensitive keys must be secret references, and the audit
//!   log and views carry no values.
//! - Platform operations are serialized by one lock; they are rare admin
//!   actions, and serializing them keeps "persist, then act, else undo" simple.
//! - A tenant's failure (bad configuration, unresolvable secret, plugin
//!   error) changes nothing for any other tenant.
//!
//! This file holds the platform's state and the helpers every operation
//! shares; the operations live by job: `registry` (installed plugins),
//! `activation` (tenants, requests, tier changes, restore), `resolve` (a
//! tenant's configuration with its secrets resolved) and `views` (what an
//! operator sees), with `platform_error` for their errors. `registry` uses
//! `activation`, which uses `resolve` and `views`; nothing points back.

mod activation;
mod audit;
mod config;
mod persist;
mod platform_error;
mod registry;
mod resolve;
mod secrets;
mod tiers;
mod vault;
mod views;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use plugin_api::hooks::{TierChanged, CUSTOMER_TIER_CHANGED};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::HostError;
use crate::host::{EventReport, Host};
use plugin_package::manifest::{ConfigType, Manifest};

pub use audit::{AuditAction, AuditEntry, AuditLog, AuditOutcome};
#[doc(hidden)]
pub use config::layered_config_report;
pub use config::{
    env_var_name, example_toml, ConfigError, ConfigProblem, ConfigSource, Environment, REDACTED,
};
pub use persist::PersistError;
pub use platform_error::PlatformError;
pub use secrets::{resolve_secret_reference, SecretError, VaultConfig};
pub use tiers::{plan_tier_change, TierError, TierPlan, Tiers};
pub use views::{RestoreReport, TenantPluginView, TenantView, TierChange};

use config::{parse_typed, ConfigFile, Layered, Layers, Schema};
use secrets::SecretResolver;

/// The state file holding each tenant's tier, requests and overrides.
pub const TENANTS_FILE: &str = "tenants.json";
/// The state file holding the installed plugins.
pub const REGISTRY_FILE: &str = "plugins.json";
/// The audit log, one JSON object per line.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// How a [`Platform`] is set up.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Where the state files and the audit log live (created, mode 0700).
    pub state_dir: PathBuf,
    /// The operator's configuration; plugin files are `plugins/<id>.toml` in it.
    pub config_dir: PathBuf,
    /// The tiers, lowest first.
    pub tiers: Tiers,
    /// The Vault or OpenBao server for `${vault:...}` references, if any.
    pub vault: Option<VaultConfig>,
    /// Where `PLUGKIT_<ID>_<KEY>` and `${env:...}` are read.
    pub env: Environment,
    /// Who is recorded in the audit log when no other actor is given.
    pub actor: String,
}

impl PlatformConfig {
    /// Default tiers, no Vault, the process environment, actor `system`.
    pub fn new(state_dir: impl Into<PathBuf>, config_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            config_dir: config_dir.into(),
            tiers: Tiers::default(),
            vault: None,
            env: Environment::process(),
            actor: "system".to_owned(),
        }
    }
}

/// An installed plugin as the registry file records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Installed {
    version: String,
    required_tier: String,
    manifest: PathBuf,
    schema: Schema,
}

/// What a tenant asked for of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PluginRequest {
    /// Only references for sensitive keys (checked before storing).
    #[serde(default)]
    overrides: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TenantRecord {
    tier: String,
    #[serde(default)]
    plugins: BTreeMap<String, PluginRequest>,
}

#[derive(Serialize, Deserialize)]
struct TenantsFile {
    format: u32,
    tenants: BTreeMap<String, TenantRecord>,
}

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    format: u32,
    plugins: BTreeMap<String, Installed>,
}

#[derive(Debug, Default)]
struct State {
    plugins: BTreeMap<String, Installed>,
    tenants: BTreeMap<String, TenantRecord>,
}

struct Inner {
    host: Host,
    state_dir: PathBuf,
    config_dir: PathBuf,
    tiers: Tiers,
    env: Environment,
    secrets: SecretResolver,
    audit: AuditLog,
    state: Mutex<State>,
}

/// The multi-tenant platform. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
    actor: Arc<str>,
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids, tiers and versions only: never configuration values.
        let state = self.inner.state.lock();
        let tenants: BTreeMap<&str, (&str, Vec<&str>)> = state
            .tenants
            .iter()
            .map(|(id, r)| {
                (
                    id.as_str(),
                    (
                        r.tier.as_str(),
                        r.plugins.keys().map(String::as_str).collect(),
                    ),
                )
            })
            .collect();
        let plugins: BTreeMap<&str, &str> = state
            .plugins
            .iter()
            .map(|(id, p)| (id.as_str(), p.version.as_str()))
            .collect();
        f.debug_struct("Platform")
            .field("state_dir", &self.inner.state_dir)
            .field("actor", &self.actor)
            .field("tiers", &self.inner.tiers.names())
            .field("plugins", &plugins)
            .field("tenants", &tenants)
            .field("secrets", &self.inner.secrets)
            .finish()
    }
}

fn valid_tenant_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Platform {
    /// Opens the platform's state in `config.state_dir` (creating it) on top
    /// of `host`. Corrupt state files are errors naming the file; they are
    /// never reset. Call [`Platform::restore`] once the host has loaded and
    /// initialized the plugins, to re-activate what the state says.
    pub fn open(config: PlatformConfig, host: Host) -> Result<Self, PlatformError> {
        persist::create_private_dir(&config.state_dir)?;
        let registry_path = config.state_dir.join(REGISTRY_FILE);
        let tenants_path = config.state_dir.join(TENANTS_FILE);
        let mut state = State::default();
        if let Some(file) = persist::read_json::<RegistryFile>(&registry_path)? {
            persist::check_format(&registry_path, file.format)?;
            state.plugins = file.plugins;
        }
        if let Some(file) = persist::read_json::<TenantsFile>(&tenants_path)? {
            persist::check_format(&tenants_path, file.format)?;
            for (tenant, record) in &file.tenants {
                if config.tiers.rank(&record.tier).is_err() {
                    return Err(PlatformError::StateTier {
                        path: tenants_path,
                        tenant: tenant.clone(),
                        tier: record.tier.clone(),
                        known: config.tiers.clone(),
                    });
                }
            }
            state.tenants = file.tenants;
        }
        let audit = AuditLog::open(&config.state_dir.join(AUDIT_FILE))?;
        Ok(Self {
            inner: Arc::new(Inner {
                host,
                secrets: SecretResolver::new(config.env.clone(), config.vault),
                state_dir: config.state_dir,
                config_dir: config.config_dir,
                tiers: config.tiers,
                env: config.env,
                audit,
                state: Mutex::new(state),
            }),
            actor: config.actor.into(),
        })
    }

    /// The same platform, recording `actor` in the audit log.
    pub fn as_actor(&self, actor: &str) -> Platform {
        Platform {
            inner: self.inner.clone(),
            actor: actor.into(),
        }
    }

    /// The host underneath.
    pub fn host(&self) -> &Host {
        &self.inner.host
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The tiers, lowest first.
    pub fn tiers(&self) -> &Tiers {
        &self.inner.tiers
    }

    /// Tenant ids with their tiers.
    pub fn tenants(&self) -> Vec<(String, String)> {
        let state = self.inner.state.lock();
        state
            .tenants
            .iter()
            .map(|(id, r)| (id.clone(), r.tier.clone()))
            .collect()
    }

    fn entry(&self, action: AuditAction, outcome: AuditOutcome) -> AuditEntry {
        AuditEntry::new(&*self.actor, action, outcome)
    }

    fn record(&self, entry: AuditEntry) -> Result<(), PlatformError> {
        self.inner.audit.append(&entry).map_err(PlatformError::from)
    }

    fn save_tenants(&self, state: &State) -> Result<(), PersistError> {
        persist::write_json(
            &self.inner.state_dir.join(TENANTS_FILE),
            &TenantsFile {
                format: persist::FORMAT,
                tenants: state.tenants.clone(),
            },
        )
    }

    fn save_registry(&self, state: &State) -> Result<(), PersistError> {
        persist::write_json(
            &self.inner.state_dir.join(REGISTRY_FILE),
            &RegistryFile {
                format: persist::FORMAT,
                plugins: state.plugins.clone(),
            },
        )
    }

    fn is_active(&self, plugin: &str, tenant: &str) -> bool {
        self.inner
            .host
            .plugin(plugin)
            .is_ok_and(|handle| handle.is_active_for(tenant))
    }
}

fn set_request(state: &mut State, tenant: &str, plugin: &str, request: Option<PluginRequest>) {
    if let Some(record) = state.tenants.get_mut(tenant) {
        match request {
            Some(r) => record.plugins.insert(plugin.to_owned(), r),
            None => record.plugins.remove(plugin),
        };
    }
}

fn keys_of(overrides: &Map<String, Value>) -> String {
    if overrides.is_empty() {
        "none".to_owned()
    } else {
        overrides
            .keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
