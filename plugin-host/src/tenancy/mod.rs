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

mod audit;
mod config;
mod persist;
mod secrets;
mod tiers;

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
use crate::manifest::{ConfigType, Manifest};

pub use audit::{AuditAction, AuditEntry, AuditLog, AuditOutcome};
#[doc(hidden)]
pub use config::layered_config_report;
pub use config::{
    env_var_name, example_toml, ConfigError, ConfigProblem, ConfigSource, Environment, REDACTED,
};
pub use persist::PersistError;
pub use secrets::{SecretError, VaultConfig};
pub use tiers::{plan_tier_change, TierError, TierPlan, Tiers};

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

/// Everything the platform can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// No tenant with this id.
    #[error("no tenant `{tenant}`; add it with `Platform::add_tenant`")]
    UnknownTenant {
        /// The tenant asked for.
        tenant: String,
    },
    /// The tenant exists already.
    #[error(
        "tenant `{tenant}` already exists with tier `{tier}`; change its tier with \
         `Platform::change_tier`"
    )]
    TenantExists {
        /// The tenant.
        tenant: String,
        /// Its tier.
        tier: String,
    },
    /// A tenant id that is empty, too long or has other characters than `a-z A-Z 0-9 . _ -`.
    #[error(
        "invalid tenant id {tenant:?}: use 1 to 64 characters of letters, digits, `.`, `_` \
         and `-`"
    )]
    InvalidTenantId {
        /// The refused id.
        tenant: String,
    },
    /// The plugin was never registered with the platform.
    #[error(
        "plugin `{plugin}` is not installed on the platform; register its manifest with \
         `Platform::register_plugin` first"
    )]
    UnknownPlugin {
        /// The plugin asked for.
        plugin: String,
    },
    /// The tenant's tier is below the plugin's `required_tier`.
    #[error(
        "tenant `{tenant}` holds tier `{held}`, but plugin `{plugin}` needs tier `{required}` \
         or higher; upgrade the tenant to `{required}` first"
    )]
    TierTooLow {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
        /// The plugin's required tier.
        required: String,
        /// The tenant's tier.
        held: String,
    },
    /// A tier name that is not configured.
    #[error(transparent)]
    Tier(#[from] TierError),
    /// A manifest's `required_tier` is not a configured tier.
    #[error(
        "plugin `{plugin}` ({}) requires tier `{tier}`, which this platform does not have \
         (tiers: {known}); fix `required_tier` or configure the tier",
        manifest.display()
    )]
    ManifestTier {
        /// The plugin.
        plugin: String,
        /// Its manifest.
        manifest: PathBuf,
        /// The unknown tier.
        tier: String,
        /// The configured tiers.
        known: Tiers,
    },
    /// A manifest's schema that the platform cannot use.
    #[error("plugin `{plugin}` ({}): {message}; fix the manifest", manifest.display())]
    Schema {
        /// The plugin.
        plugin: String,
        /// Its manifest.
        manifest: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tenant in the state file holds a tier that is not configured.
    #[error(
        "{}: tenant `{tenant}` holds tier `{tier}`, which is not configured (tiers: {known}); \
         add the tier to `PlatformConfig::tiers` or edit the file",
        path.display()
    )]
    StateTier {
        /// The state file.
        path: PathBuf,
        /// The tenant.
        tenant: String,
        /// Its tier.
        tier: String,
        /// The configured tiers.
        known: Tiers,
    },
    /// The overrides are not a JSON object.
    #[error(
        "tenant `{tenant}`: plugin `{plugin}`: overrides must be a JSON object of key → value \
         (or null for none)"
    )]
    OverridesNotAnObject {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
    },
    /// The configuration does not fit the schema, or the operator's file is broken.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A secret reference could not be resolved: the activation fails closed.
    #[error(
        "tenant `{tenant}`: plugin `{plugin}`: key `{key}`: {source}; the plugin was not \
         activated for this tenant"
    )]
    Secret {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
        /// The key whose value is the reference.
        key: String,
        /// Why (boxed to keep every `Result` of the platform small).
        source: Box<SecretError>,
    },
    /// A secret resolved to text that is not of the key's type.
    #[error(
        "tenant `{tenant}`: plugin `{plugin}`: key `{key}` must be {expected}, and the value \
         stored at `{reference}` does not parse as one; store a valid value there. The plugin \
         was not activated for this tenant"
    )]
    SecretType {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
        /// The key.
        key: String,
        /// The reference.
        reference: String,
        /// The declared type.
        expected: ConfigType,
    },
    /// The host refused or the plugin failed a lifecycle step.
    #[error("tenant `{tenant}`: {source}")]
    Host {
        /// The tenant.
        tenant: String,
        /// The host's error (it names the plugin).
        source: HostError,
    },
    /// The tenant never asked for the plugin.
    #[error("tenant `{tenant}` has not requested plugin `{plugin}`; nothing to deactivate")]
    NotRequested {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
    },
    /// A state file or the audit log cannot be read or written.
    #[error(transparent)]
    Persist(#[from] PersistError),
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

/// What [`Platform::change_tier`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct TierChange {
    /// The tier before.
    pub from: String,
    /// The tier after.
    pub to: String,
    /// Plugins activated because the new tier entitles them.
    pub activated: Vec<String>,
    /// Plugins deactivated because the new tier does not; their requests are kept.
    pub deactivated: Vec<String>,
    /// Plugins that should have moved and failed to, with the error.
    pub failed: Vec<(String, String)>,
    /// Who received `customer.tier_changed`.
    pub hook: EventReport,
}

/// What [`Platform::restore`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// `(tenant, plugin)` activated.
    pub activated: Vec<(String, String)>,
    /// `(tenant, plugin)` that were active already.
    pub already_active: Vec<(String, String)>,
    /// `(tenant, plugin, why)` left inactive on purpose (tier, not installed).
    pub skipped: Vec<(String, String, String)>,
    /// `(tenant, plugin, error)` whose activation failed.
    pub failed: Vec<(String, String, String)>,
}

/// One tenant as an operator may see it: no secret, no sensitive value.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TenantView {
    /// The tenant.
    pub tenant: String,
    /// Its tier.
    pub tier: String,
    /// The plugins it requested.
    pub plugins: Vec<TenantPluginView>,
}

/// One requested plugin of a [`TenantView`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TenantPluginView {
    /// The plugin.
    pub plugin: String,
    /// Its installed version, when installed.
    pub version: Option<String>,
    /// Its required tier, when installed.
    pub required_tier: Option<String>,
    /// Whether the tenant's tier allows it.
    pub entitled: bool,
    /// Whether it is active for the tenant right now.
    pub active: bool,
    /// The effective configuration; sensitive and secret values are [`REDACTED`].
    pub config: Map<String, Value>,
    /// Where each value comes from (file and line, override, variable, reference).
    pub sources: BTreeMap<String, String>,
    /// Why the configuration cannot be built now, if it cannot.
    pub problem: Option<String>,
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

    /// Installs a plugin on the platform: records its version, required tier
    /// and configuration schema in the registry. Registering another version
    /// of an installed plugin replaces the record. Loading the library into
    /// the host is the caller's job.
    pub fn register_plugin(&self, manifest: &Manifest) -> Result<(), PlatformError> {
        let plugin = manifest.id.clone();
        let result = (|| {
            if self.inner.tiers.rank(&manifest.required_tier).is_err() {
                return Err(PlatformError::ManifestTier {
                    plugin: plugin.clone(),
                    manifest: manifest.path.clone(),
                    tier: manifest.required_tier.clone(),
                    known: self.inner.tiers.clone(),
                });
            }
            let schema = Schema::from_manifest(&manifest.config).map_err(|message| {
                PlatformError::Schema {
                    plugin: plugin.clone(),
                    manifest: manifest.path.clone(),
                    message,
                }
            })?;
            Ok(Installed {
                version: manifest.version.to_string(),
                required_tier: manifest.required_tier.clone(),
                manifest: manifest.path.clone(),
                schema,
            })
        })();
        let mut state = self.inner.state.lock();
        let previous = state.plugins.get(&plugin).map(|p| p.version.clone());
        let to = Some(manifest.version.to_string());
        let installed = match result {
            Ok(installed) => installed,
            Err(e) => {
                self.record(
                    self.entry(AuditAction::Install, AuditOutcome::Refused)
                        .plugin(&plugin)
                        .versions(previous, to)
                        .detail(e.to_string()),
                )?;
                return Err(e);
            }
        };
        let detail = format!(
            "manifest {}, required tier `{}`",
            installed.manifest.display(),
            installed.required_tier
        );
        let replaced = state.plugins.insert(plugin.clone(), installed);
        if let Err(e) = self.save_registry(&state) {
            match replaced {
                Some(old) => state.plugins.insert(plugin.clone(), old),
                None => state.plugins.remove(&plugin),
            };
            return Err(e.into());
        }
        self.record(
            self.entry(AuditAction::Install, AuditOutcome::Ok)
                .plugin(&plugin)
                .versions(previous, to)
                .detail(detail),
        )
    }

    /// Removes a plugin from the platform: deactivates it for every tenant
    /// and drops it from the registry. Tenants' requests are kept, so a
    /// reinstall followed by [`Platform::restore`] brings them back.
    pub fn remove_plugin(&self, plugin: &str) -> Result<(), PlatformError> {
        let mut state = self.inner.state.lock();
        let Some(installed) = state.plugins.get(plugin).cloned() else {
            return Err(PlatformError::UnknownPlugin {
                plugin: plugin.to_owned(),
            });
        };
        let mut first_error = None;
        let tenants: Vec<String> = state.tenants.keys().cloned().collect();
        for tenant in tenants {
            if self.is_active(plugin, &tenant) {
                if let Err(e) =
                    self.deactivate_in_host(&installed, plugin, &tenant, "plugin removed")
                {
                    first_error.get_or_insert(e);
                }
            }
        }
        let removed = state.plugins.remove(plugin);
        if let Err(e) = self.save_registry(&state) {
            if let Some(old) = removed {
                state.plugins.insert(plugin.to_owned(), old);
            }
            return Err(e.into());
        }
        self.record(
            self.entry(AuditAction::Remove, AuditOutcome::Ok)
                .plugin(plugin)
                .versions(Some(installed.version), None),
        )?;
        first_error.map_or(Ok(()), Err)
    }

    /// Adds a tenant holding `tier`.
    pub fn add_tenant(&self, tenant: &str, tier: &str) -> Result<(), PlatformError> {
        if !valid_tenant_id(tenant) {
            return Err(PlatformError::InvalidTenantId {
                tenant: tenant.to_owned(),
            });
        }
        self.inner.tiers.rank(tier)?;
        let mut state = self.inner.state.lock();
        if let Some(existing) = state.tenants.get(tenant) {
            return Err(PlatformError::TenantExists {
                tenant: tenant.to_owned(),
                tier: existing.tier.clone(),
            });
        }
        state.tenants.insert(
            tenant.to_owned(),
            TenantRecord {
                tier: tier.to_owned(),
                plugins: BTreeMap::new(),
            },
        );
        if let Err(e) = self.save_tenants(&state) {
            state.tenants.remove(tenant);
            return Err(e.into());
        }
        self.record(
            self.entry(AuditAction::AddTenant, AuditOutcome::Ok)
                .tenant(tenant)
                .detail(format!("tier `{tier}`")),
        )
    }

    /// Asks for `plugin` for `tenant` with `overrides` (a JSON object, or
    /// null): checks the tier, builds and checks the configuration, resolves
    /// its secrets, stores the request and activates the plugin for this
    /// tenant only. When the plugin is already active for the tenant, this
    /// is a configuration change: it is re-activated with the new
    /// configuration, and rolled back to the old one if that fails.
    ///
    /// A refused request (tier, configuration, secret) changes nothing; in
    /// particular a running configuration stays as it is. Every outcome is
    /// audited.
    pub fn request(
        &self,
        tenant: &str,
        plugin: &str,
        overrides: Value,
    ) -> Result<(), PlatformError> {
        let mut state = self.inner.state.lock();
        let action = if self.is_active(plugin, tenant) {
            AuditAction::ConfigChange
        } else {
            AuditAction::Activate
        };
        let outcome = self.request_locked(&mut state, tenant, plugin, overrides);
        if let Err(error) = &outcome {
            let result = match error {
                PlatformError::TierTooLow { .. }
                | PlatformError::Config(_)
                | PlatformError::OverridesNotAnObject { .. } => AuditOutcome::Refused,
                // Nothing to attribute the entry to.
                PlatformError::UnknownTenant { .. } | PlatformError::UnknownPlugin { .. } => {
                    return outcome;
                }
                _ => AuditOutcome::Failed,
            };
            let version = state.plugins.get(plugin).map(|p| p.version.clone());
            self.record(
                self.entry(action, result)
                    .tenant(tenant)
                    .plugin(plugin)
                    .versions(None, version)
                    .detail(error.to_string()),
            )?;
        }
        outcome
    }

    fn request_locked(
        &self,
        state: &mut State,
        tenant: &str,
        plugin: &str,
        overrides: Value,
    ) -> Result<(), PlatformError> {
        let overrides = match overrides {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            _ => {
                return Err(PlatformError::OverridesNotAnObject {
                    tenant: tenant.to_owned(),
                    plugin: plugin.to_owned(),
                })
            }
        };
        let record = state
            .tenants
            .get(tenant)
            .ok_or_else(|| PlatformError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        let installed =
            state
                .plugins
                .get(plugin)
                .cloned()
                .ok_or_else(|| PlatformError::UnknownPlugin {
                    plugin: plugin.to_owned(),
                })?;
        if !self
            .inner
            .tiers
            .allows(&record.tier, &installed.required_tier)?
        {
            return Err(PlatformError::TierTooLow {
                tenant: tenant.to_owned(),
                plugin: plugin.to_owned(),
                required: installed.required_tier.clone(),
                held: record.tier.clone(),
            });
        }
        let previous = record.plugins.get(plugin).cloned();
        let request = PluginRequest { overrides };
        let config = self.resolve(&installed, tenant, plugin, &request)?;

        let was_active = self.is_active(plugin, tenant);
        set_request(state, tenant, plugin, Some(request.clone()));
        if let Err(e) = self.save_tenants(state) {
            set_request(state, tenant, plugin, previous);
            return Err(e.into());
        }
        let host = &self.inner.host;
        let version = Some(installed.version.clone());
        if was_active {
            let switched = host
                .deactivate(plugin, tenant)
                .and_then(|()| host.activate(plugin, tenant, config.expose_secret()));
            if let Err(source) = switched {
                let error = PlatformError::Host {
                    tenant: tenant.to_owned(),
                    source,
                };
                self.undo_request(state, tenant, plugin, previous.clone());
                self.roll_back_config(&installed, tenant, plugin, previous.as_ref(), &error)?;
                return Err(error);
            }
            tracing::info!(tenant, plugin, "configuration changed");
            self.record(
                self.entry(AuditAction::ConfigChange, AuditOutcome::Ok)
                    .tenant(tenant)
                    .plugin(plugin)
                    .versions(version.clone(), version)
                    .detail(format!("overridden keys: {}", keys_of(&request.overrides))),
            )
        } else {
            if let Err(source) = host.activate(plugin, tenant, config.expose_secret()) {
                self.undo_request(state, tenant, plugin, previous);
                return Err(PlatformError::Host {
                    tenant: tenant.to_owned(),
                    source,
                });
            }
            tracing::info!(tenant, plugin, "activated");
            self.record(
                self.entry(AuditAction::Activate, AuditOutcome::Ok)
                    .tenant(tenant)
                    .plugin(plugin)
                    .versions(None, version)
                    .detail(format!("overridden keys: {}", keys_of(&request.overrides))),
            )
        }
    }

    /// Puts the stored request back as it was; a failure to write is logged,
    /// since the caller is already reporting the original error.
    fn undo_request(
        &self,
        state: &mut State,
        tenant: &str,
        plugin: &str,
        previous: Option<PluginRequest>,
    ) {
        set_request(state, tenant, plugin, previous);
        if let Err(e) = self.save_tenants(state) {
            tracing::error!(tenant, plugin, "cannot restore the stored request: {e}");
        }
    }

    /// After a failed configuration change, re-activates the plugin with its
    /// previous configuration and records the rollback.
    fn roll_back_config(
        &self,
        installed: &Installed,
        tenant: &str,
        plugin: &str,
        previous: Option<&PluginRequest>,
        cause: &PlatformError,
    ) -> Result<(), PlatformError> {
        let restored = previous
            .ok_or_else(|| "no previous request".to_owned())
            .and_then(|prev| {
                self.resolve(installed, tenant, plugin, prev)
                    .map_err(|e| e.to_string())
            })
            .and_then(|config| {
                self.inner
                    .host
                    .activate(plugin, tenant, config.expose_secret())
                    .map_err(|e| e.to_string())
            });
        let version = Some(installed.version.clone());
        let (outcome, detail) = match restored {
            Ok(()) => (
                AuditOutcome::Ok,
                format!("new configuration failed ({cause}); previous configuration restored"),
            ),
            Err(e) => (
                AuditOutcome::Failed,
                format!(
                    "new configuration failed ({cause}); restoring the previous one failed too \
                     ({e}); the plugin is inactive for this tenant"
                ),
            ),
        };
        self.record(
            self.entry(AuditAction::Rollback, outcome)
                .tenant(tenant)
                .plugin(plugin)
                .versions(version.clone(), version)
                .detail(detail),
        )
    }

    /// Deactivates `plugin` for `tenant` and forgets the request.
    pub fn deactivate(&self, tenant: &str, plugin: &str) -> Result<(), PlatformError> {
        let mut state = self.inner.state.lock();
        let record = state
            .tenants
            .get(tenant)
            .ok_or_else(|| PlatformError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        let requested = record.plugins.get(plugin).cloned();
        let active = self.is_active(plugin, tenant);
        if requested.is_none() && !active {
            return Err(PlatformError::NotRequested {
                tenant: tenant.to_owned(),
                plugin: plugin.to_owned(),
            });
        }
        set_request(&mut state, tenant, plugin, None);
        if let Err(e) = self.save_tenants(&state) {
            set_request(&mut state, tenant, plugin, requested);
            return Err(e.into());
        }
        match state.plugins.get(plugin).cloned() {
            Some(installed) if active => {
                self.deactivate_in_host(&installed, plugin, tenant, "requested")
            }
            _ => self.record(
                self.entry(AuditAction::Deactivate, AuditOutcome::Ok)
                    .tenant(tenant)
                    .plugin(plugin)
                    .detail("request withdrawn; it was not active"),
            ),
        }
    }

    fn deactivate_in_host(
        &self,
        installed: &Installed,
        plugin: &str,
        tenant: &str,
        why: &str,
    ) -> Result<(), PlatformError> {
        let result = self.inner.host.deactivate(plugin, tenant);
        let version = Some(installed.version.clone());
        let entry = self
            .entry(AuditAction::Deactivate, AuditOutcome::Ok)
            .tenant(tenant)
            .plugin(plugin)
            .versions(version, None);
        match result {
            Ok(()) => {
                tracing::info!(tenant, plugin, "deactivated: {why}");
                self.record(entry.detail(why))
            }
            Err(source) => {
                let error = PlatformError::Host {
                    tenant: tenant.to_owned(),
                    source,
                };
                let mut entry = entry.detail(format!("{why}: {error}"));
                entry.outcome = AuditOutcome::Failed;
                self.record(entry)?;
                Err(error)
            }
        }
    }

    /// Moves `tenant` to `new_tier`: requested plugins the new tier entitles
    /// are activated, those it does not are deactivated (their requests and
    /// overrides kept, so a later upgrade brings them back), and
    /// `customer.tier_changed` fires for the tenant once the plugins have
    /// moved. One plugin failing to move does not stop the others; see
    /// [`TierChange::failed`].
    pub fn change_tier(&self, tenant: &str, new_tier: &str) -> Result<TierChange, PlatformError> {
        self.inner.tiers.rank(new_tier)?;
        let mut state = self.inner.state.lock();
        let record =
            state
                .tenants
                .get(tenant)
                .cloned()
                .ok_or_else(|| PlatformError::UnknownTenant {
                    tenant: tenant.to_owned(),
                })?;
        let old_tier = record.tier.clone();
        let mut report = TierChange {
            from: old_tier.clone(),
            to: new_tier.to_owned(),
            ..TierChange::default()
        };
        if old_tier == new_tier {
            return Ok(report);
        }
        let plan = plan_tier_change(
            &self.inner.tiers,
            &old_tier,
            new_tier,
            record.plugins.keys().map(String::as_str),
            |p| state.plugins.get(p).map(|i| i.required_tier.clone()),
        )?;
        if let Some(r) = state.tenants.get_mut(tenant) {
            r.tier = new_tier.to_owned();
        }
        if let Err(e) = self.save_tenants(&state) {
            if let Some(r) = state.tenants.get_mut(tenant) {
                r.tier = old_tier;
            }
            return Err(e.into());
        }
        self.record(
            self.entry(AuditAction::TierChange, AuditOutcome::Ok)
                .tenant(tenant)
                .detail(format!(
                    "`{old_tier}` -> `{new_tier}`; activate [{}]; deactivate [{}]",
                    plan.activate.join(", "),
                    plan.deactivate.join(", ")
                )),
        )?;

        for plugin in &plan.deactivate {
            let Some(installed) = state.plugins.get(plugin).cloned() else {
                continue;
            };
            if !self.is_active(plugin, tenant) {
                continue;
            }
            let why = format!("tier `{new_tier}` does not include it; request kept");
            match self.deactivate_in_host(&installed, plugin, tenant, &why) {
                Ok(()) => report.deactivated.push(plugin.clone()),
                Err(e) => report.failed.push((plugin.clone(), e.to_string())),
            }
        }
        for plugin in &plan.activate {
            let why = format!("entitled by tier `{new_tier}`");
            match self.activate_requested(&state, tenant, plugin, &why) {
                Ok(()) => report.activated.push(plugin.clone()),
                Err(e) => report.failed.push((plugin.clone(), e.to_string())),
            }
        }
        let payload = TierChanged {
            tenant: tenant.to_owned(),
            from: report.from.clone(),
            to: report.to.clone(),
        };
        match self
            .inner
            .host
            .fire_json(tenant, CUSTOMER_TIER_CHANGED, &payload)
        {
            Ok(delivered) => report.hook = delivered,
            Err(cycle) => report
                .failed
                .push((CUSTOMER_TIER_CHANGED.to_owned(), cycle.to_string())),
        }
        Ok(report)
    }

    /// Activates a stored request (restore, upgrade), auditing the outcome.
    fn activate_requested(
        &self,
        state: &State,
        tenant: &str,
        plugin: &str,
        why: &str,
    ) -> Result<(), PlatformError> {
        let result = (|| {
            let installed =
                state
                    .plugins
                    .get(plugin)
                    .ok_or_else(|| PlatformError::UnknownPlugin {
                        plugin: plugin.to_owned(),
                    })?;
            let request = state
                .tenants
                .get(tenant)
                .and_then(|r| r.plugins.get(plugin))
                .cloned()
                .unwrap_or_default();
            let config = self.resolve(installed, tenant, plugin, &request)?;
            self.inner
                .host
                .activate(plugin, tenant, config.expose_secret())
                .map_err(|source| PlatformError::Host {
                    tenant: tenant.to_owned(),
                    source,
                })?;
            Ok(installed.version.clone())
        })();
        let entry = self
            .entry(AuditAction::Activate, AuditOutcome::Ok)
            .tenant(tenant)
            .plugin(plugin);
        match result {
            Ok(version) => {
                tracing::info!(tenant, plugin, "activated: {why}");
                self.record(entry.versions(None, Some(version)).detail(why))
            }
            Err(error) => {
                let mut entry = entry.detail(format!("{why}: {error}"));
                entry.outcome = AuditOutcome::Failed;
                self.record(entry)?;
                Err(error)
            }
        }
    }

    /// After a restart, with the plugins loaded and initialized in the host:
    /// activates every requested plugin the tenant's tier entitles. A failure
    /// concerns one tenant and one plugin; the others go on.
    pub fn restore(&self) -> Result<RestoreReport, PlatformError> {
        let state = self.inner.state.lock();
        let mut report = RestoreReport::default();
        for (tenant, record) in &state.tenants {
            for plugin in record.plugins.keys() {
                let pair = (tenant.clone(), plugin.clone());
                let Some(installed) = state.plugins.get(plugin) else {
                    report
                        .skipped
                        .push((pair.0, pair.1, "not installed".to_owned()));
                    continue;
                };
                if !self
                    .inner
                    .tiers
                    .allows(&record.tier, &installed.required_tier)?
                {
                    report.skipped.push((
                        pair.0,
                        pair.1,
                        format!(
                            "tier `{}` does not include it (needs `{}`)",
                            record.tier, installed.required_tier
                        ),
                    ));
                    continue;
                }
                if self.is_active(plugin, tenant) {
                    report.already_active.push(pair);
                    continue;
                }
                match self.activate_requested(&state, tenant, plugin, "restored after a restart") {
                    Ok(()) => report.activated.push(pair),
                    Err(PlatformError::Persist(e)) => return Err(e.into()),
                    Err(e) => report.failed.push((pair.0, pair.1, e.to_string())),
                }
            }
        }
        Ok(report)
    }

    /// What an operator may see of a tenant: tier, requested plugins, and
    /// their effective configuration with sensitive and secret values
    /// redacted. Resolves no secret.
    pub fn tenant_view(&self, tenant: &str) -> Result<TenantView, PlatformError> {
        let state = self.inner.state.lock();
        let record = state
            .tenants
            .get(tenant)
            .ok_or_else(|| PlatformError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        let mut plugins = Vec::new();
        for (plugin, request) in &record.plugins {
            let installed = state.plugins.get(plugin);
            let entitled = installed.is_some_and(|i| {
                self.inner
                    .tiers
                    .allows(&record.tier, &i.required_tier)
                    .unwrap_or(false)
            });
            let layered = installed
                .ok_or_else(|| PlatformError::UnknownPlugin {
                    plugin: plugin.clone(),
                })
                .and_then(|i| self.layered(i, tenant, plugin, request));
            let (config, sources, problem) = match layered {
                Ok(l) => (l.redacted(), l.sources(), None),
                Err(e) => (Map::new(), BTreeMap::new(), Some(e.to_string())),
            };
            plugins.push(TenantPluginView {
                plugin: plugin.clone(),
                version: installed.map(|i| i.version.clone()),
                required_tier: installed.map(|i| i.required_tier.clone()),
                entitled,
                active: self.is_active(plugin, tenant),
                config,
                sources,
                problem,
            });
        }
        Ok(TenantView {
            tenant: tenant.to_owned(),
            tier: record.tier.clone(),
            plugins,
        })
    }

    fn layered(
        &self,
        installed: &Installed,
        tenant: &str,
        plugin: &str,
        request: &PluginRequest,
    ) -> Result<Layered, PlatformError> {
        let file = ConfigFile::read(&self.inner.config_dir, plugin, tenant)?;
        Ok(config::layer(&Layers {
            plugin,
            tenant,
            schema: &installed.schema,
            config_dir: &self.inner.config_dir,
            file: file.as_ref(),
            overrides: &request.overrides,
            env: &self.inner.env,
        })?)
    }

    /// Builds the JSON configuration handed to the plugin, secrets resolved.
    fn resolve(
        &self,
        installed: &Installed,
        tenant: &str,
        plugin: &str,
        request: &PluginRequest,
    ) -> Result<SecretString, PlatformError> {
        let layered = self.layered(installed, tenant, plugin, request)?;
        let mut values = Map::new();
        for (key, entry) in layered.entries {
            let value = match &entry.reference {
                None => entry.value,
                Some(reference) => {
                    let secret = self.inner.secrets.resolve(reference).map_err(|source| {
                        PlatformError::Secret {
                            tenant: tenant.to_owned(),
                            plugin: plugin.to_owned(),
                            key: key.clone(),
                            source: Box::new(source),
                        }
                    })?;
                    parse_typed(secret.expose_secret(), entry.value_type).ok_or_else(|| {
                        PlatformError::SecretType {
                            tenant: tenant.to_owned(),
                            plugin: plugin.to_owned(),
                            key: key.clone(),
                            reference: reference.to_string(),
                            expected: entry.value_type,
                        }
                    })?
                }
            };
            values.insert(key, value);
        }
        let json = Value::Object(values).to_string();
        Ok(SecretString::from(json))
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
