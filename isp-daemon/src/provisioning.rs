//! Provisioning by subscription tier from an OCI registry (issue 18): the
//! `[provisioning]` section, the refresh (pull the signed catalog, pull and
//! verify what the tier includes, install it, start or hot-reload it, drop
//! what the tier no longer includes) and the admin routes
//! `GET /api/provisioning` and `POST /api/provisioning/refresh`.
//!
//! Invariants (tests in `tests/daemon/provisioning.rs`):
//! - A failure keeps serving: the registry down, a refused catalog, a
//!   tampered blob, a bad signature or a plugin that fails its start leave
//!   the last verified set installed and running; the failure names the
//!   plugin and why, in `GET /api/provisioning` and the audit log
//!   (`a_plugin_that_fails_its_start_is_rolled_back_and_reported`,
//!   `the_registry_down_keeps_the_daemon_serving`).
//! - `plugkit.lock` names exactly what serves: a plugin that fails its start
//!   is linked back to its previous version before the lock is written.
//! - A tier drop removes the plugin from the host (tenants' requests kept,
//!   files kept), so an upgrade back reactivates it for the same tenants.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, State};
use axum::Extension;
use plugin_host::package::signature::TrustPolicy;
use plugin_host::tenancy::{AuditAction, AuditEntry, AuditOutcome, SecretError};
use plugkit_registry::lockfile::Lock;
use plugkit_registry::provision::{self, Action, Options};
use plugkit_registry::RegistryConfig;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{ApiRoute, Need};
use crate::error::{in_operator_words, Problem, ProblemKind};
use crate::keys::{Caller, Scope};
use crate::Daemon;

/// `[provisioning]`: where plugins come from and which tier this daemon holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// The registry, `http://127.0.0.1:5000` or `https://registry.example`.
    pub registry: String,
    /// The subscription tier whose plugins this daemon installs.
    pub tier: String,
    /// How often to refresh (humantime: `5m`, `1h`); none: only at start and on request.
    #[serde(default)]
    pub refresh_interval: Option<String>,
    /// Registry user, as a secret reference (`${env:…}`, `${file:…}`,
    /// `${vault:path#key}` with a `[vault]` section).
    #[serde(default)]
    pub username: Option<String>,
    /// Registry password, as a secret reference.
    #[serde(default)]
    pub password: Option<String>,
    /// The plugin directory to provision [default: the first of `[plugins] dirs`].
    #[serde(default)]
    pub plugin_dir: Option<PathBuf>,
}

/// The last refresh, for `GET /api/provisioning`.
#[derive(Debug, Default)]
pub struct Provisioning {
    last: Mutex<Option<Value>>,
    refreshing: Mutex<()>,
}

const ACTOR: &str = "provisioning";

/// Why `[provisioning] {name}` did not resolve, as the operator's problem:
/// a secret store that is down or sealed is a 502 (try again once it
/// serves), anything else is the configuration to fix (409).
fn secret_problem(name: &str, error: &SecretError) -> Problem {
    let kind = match error {
        SecretError::Unavailable { .. } | SecretError::Sealed { .. } => ProblemKind::BadGateway,
        _ => ProblemKind::Conflict,
    };
    Problem::new(
        kind,
        in_operator_words(format!(
            "[provisioning] {name}: {error}; fix it, then refresh again \
             (POST /api/provisioning/refresh)"
        )),
    )
}

impl Daemon {
    fn provisioning_options(&self) -> Result<(ProvisioningConfig, Options), Problem> {
        let config = self.config();
        let Some(section) = config.provisioning.clone() else {
            return Err(Problem::new(
                ProblemKind::Conflict,
                "provisioning is not configured: add a [provisioning] section with registry and tier",
            ));
        };
        // The platform's resolver, the one tenants' settings go through:
        // `${env:…}`, `${file:…}`, and `${vault:…}` against `[vault]`.
        let secret = |name: &str, value: &Option<String>| -> Result<Option<String>, Problem> {
            value
                .as_deref()
                .map(|v| {
                    self.platform()
                        .resolve_secret(v)
                        .map(|s| s.expose_secret().to_owned())
                        .map_err(|e| secret_problem(name, &e))
                })
                .transpose()
        };
        let credentials =
            match (
                secret("username", &section.username)?,
                secret("password", &section.password)?,
            ) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => return Err(Problem::new(
                    ProblemKind::Conflict,
                    "[provisioning] sets only one of username and password; set both (as secret \
                     references) for a registry that needs a login, or neither",
                )),
            };
        let trusted_keys = match config.trust.policy(config) {
            Ok(TrustPolicy::Require { trusted_keys }) => trusted_keys,
            Ok(TrustPolicy::AllowUnsigned) => {
                return Err(Problem::new(
                    ProblemKind::Conflict,
                    "provisioning verifies signatures and the catalog against [trust] keys, and the \
                     trust policy is allow-unsigned; set policy = \"require\" with the operator's key",
                ))
            }
            Err(e) => return Err(Problem::internal(format!("{e:#}"))),
        };
        let plugin_dir = match &section.plugin_dir {
            Some(dir) => config.resolve(dir),
            None => self.plugin_dirs().first().cloned().ok_or_else(|| {
                Problem::internal("[provisioning] has no plugin_dir and [plugins] dirs is empty")
            })?,
        };
        // The daemon starts and reloads only what its plugin directories hold.
        if !self.plugin_dirs().iter().any(|d| d == &plugin_dir) {
            return Err(Problem::new(
                ProblemKind::Conflict,
                format!(
                    "[provisioning] plugin_dir {} is not one of [plugins] dirs ({}), so the daemon \
                     would never load what it installs; add it to [plugins] dirs or drop plugin_dir",
                    plugin_dir.display(),
                    self.plugin_dirs()
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let options = Options {
            registry: RegistryConfig {
                url: section.registry.clone(),
                credentials,
            },
            tier: section.tier.clone(),
            plugin_dir,
            accepted_file: self
                .state_dir()
                .join("provisioning")
                .join("accepted-catalog.json"),
            trusted_keys,
        };
        Ok((section, options))
    }

    /// `GET /api/provisioning`: configuration, the lock, the last refresh.
    pub fn provisioning_status(&self) -> Result<Value, Problem> {
        let (section, options) = self.provisioning_options()?;
        let lock = Lock::read(&provision::lock_path(&options.plugin_dir))
            .map_err(|e| Problem::internal(e.to_string()))?;
        let last = self
            .provisioning
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(json!({
            "registry": section.registry,
            "tier": section.tier,
            "refresh_interval": section.refresh_interval,
            "plugin_dir": options.plugin_dir,
            "lock": lock,
            "last_refresh": last,
        }))
    }

    /// `POST /api/provisioning/refresh`: one refresh; see the module docs.
    ///
    /// # Errors
    /// 409 when not configured; 502 when the registry cannot be reached
    /// or answers wrongly (its address, the cause, what to do); 422 when
    /// the catalog is refused (unsigned, unknown key, rollback, freeze). Per-plugin failures are in the 200 answer.
    pub fn refresh_provisioning(&self, actor: &str) -> Result<Value, Problem> {
        self.refresh_provisioning_with(actor, &mut |line| {
            tracing::info!(target: "provisioning", "{line}");
        })
    }

    /// [`Daemon::refresh_provisioning`], giving each progress line (catalog,
    /// each pull with its size and time, each outcome) to `progress`.
    ///
    /// # Errors
    /// As [`Daemon::refresh_provisioning`].
    pub fn refresh_provisioning_with(
        &self,
        actor: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Value, Problem> {
        let _one = self
            .provisioning
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (_, options) = self.provisioning_options()?;
        let started = Instant::now();
        let lock_path = provision::lock_path(&options.plugin_dir);
        let previous = Lock::read(&lock_path).map_err(|e| Problem::internal(e.to_string()))?;
        let fetched = provision::fetch(&options, &previous, progress);
        let (mut report, mut lock) = match fetched {
            Ok(r) => r,
            Err(e) => {
                let registry = &options.registry.url;
                let (kind, next) = match e {
                    plugkit_registry::Error::Catalog(_) => (
                        ProblemKind::Unprocessable,
                        "publish a catalog this daemon accepts (`cargo xtask publish-catalog`), \
                         then refresh again"
                            .to_owned(),
                    ),
                    plugkit_registry::Error::Registry { .. }
                    | plugkit_registry::Error::DigestMismatch { .. }
                    | plugkit_registry::Error::NotAnArtifact { .. } => (
                        ProblemKind::BadGateway,
                        format!(
                            "check that the registry {registry} runs and is reachable from this \
                             host (`[provisioning] registry` or --registry), then refresh again \
                             (POST /api/provisioning/refresh)"
                        ),
                    ),
                    _ => (
                        ProblemKind::Internal,
                        "fix the cause above, then refresh again".to_owned(),
                    ),
                };
                let message = format!(
                    "provisioning refresh of tier `{}` from {registry} failed, the installed \
                     plugins keep serving: {e}; {next}",
                    options.tier
                );
                self.audit_entry(
                    AuditEntry::new(actor, AuditAction::Install, AuditOutcome::Failed)
                        .detail(message.clone()),
                );
                *self
                    .provisioning
                    .last
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(json!({
                    "at": now(),
                    "ok": false,
                    "error": message,
                }));
                return Err(Problem::new(kind, message));
            }
        };
        let mut swap_ms = 0.0;
        for outcome in &mut report.plugins {
            match outcome.action {
                Action::Installed | Action::Relinked => {
                    let swap = Instant::now();
                    let result = self.reload(actor, &outcome.id);
                    swap_ms += swap.elapsed().as_secs_f64() * 1000.0;
                    let failure = match &result {
                        Ok(value) if value["outcome"] == "rolled_back" => Some(format!(
                            "rolled back at the {}: {}",
                            value["step"].as_str().unwrap_or("?"),
                            value["error"].as_str().unwrap_or("?")
                        )),
                        Ok(_) => None,
                        Err(problem) => Some(problem.error.clone()),
                    };
                    if let Some(why) = failure {
                        let before = previous.plugins.get(&outcome.id);
                        if let Err(e) = provision::revert(&options.plugin_dir, &outcome.id, before)
                        {
                            tracing::error!(plugin = %outcome.id, "relinking the previous version: {e}");
                        }
                        match before {
                            Some(entry) => lock.plugins.insert(outcome.id.clone(), entry.clone()),
                            None => lock.plugins.remove(&outcome.id),
                        };
                        outcome.action = Action::Failed;
                        outcome.error = Some(format!(
                            "plugin `{}` {} failed its start, the previous version keeps serving: {why}",
                            outcome.id, outcome.version
                        ));
                    }
                }
                Action::Dropped => {
                    if self.host().state(&outcome.id).is_some() {
                        if let Err(e) = self.host().remove(&outcome.id) {
                            tracing::warn!(plugin = %outcome.id, "stopping the dropped plugin: {e}");
                        }
                    }
                }
                Action::Unchanged | Action::Failed => {}
            }
        }
        lock.write(&lock_path)
            .map_err(|e| Problem::internal(e.to_string()))?;
        for outcome in &report.plugins {
            let (result, detail) = match outcome.action {
                Action::Unchanged => continue,
                Action::Failed => (
                    AuditOutcome::Failed,
                    outcome.error.clone().unwrap_or_default(),
                ),
                // Stopped and unlinked: integrators hear `plugin.removed`.
                Action::Dropped => (
                    AuditOutcome::Ok,
                    format!(
                        "tier `{}` (catalog serial {}) does not include it: stopped, files kept",
                        report.tier, report.catalog_serial
                    ),
                ),
                action => (
                    AuditOutcome::Ok,
                    format!(
                        "{} {} ({}) from catalog serial {} for tier `{}`",
                        if action == Action::Relinked {
                            "relinked"
                        } else {
                            "provisioned"
                        },
                        outcome.version,
                        outcome.digest,
                        report.catalog_serial,
                        report.tier
                    ),
                ),
            };
            let action = match outcome.action {
                Action::Dropped => AuditAction::Remove,
                _ => AuditAction::Install,
            };
            let from = previous.plugins.get(&outcome.id).map(|e| e.version.clone());
            self.audit_entry(
                AuditEntry::new(actor, action, result)
                    .plugin(&outcome.id)
                    .versions(
                        from,
                        (outcome.action != Action::Dropped).then(|| outcome.version.clone()),
                    )
                    .detail(detail),
            );
        }
        let failures: Vec<Value> = report
            .failures()
            .map(|f| json!({"plugin": f.id, "error": f.error}))
            .collect();
        let answer = json!({
            "at": now(),
            "ok": failures.is_empty(),
            "failures": failures,
            "report": report,
            "swap_ms": swap_ms,
            "total_ms": started.elapsed().as_secs_f64() * 1000.0,
            "lock": lock,
        });
        *self
            .provisioning
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(answer.clone());
        Ok(answer)
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Refreshes now and then every `refresh_interval` on a thread of its own,
/// until the daemon stops. Does nothing when `[provisioning]` is absent.
pub fn spawn_periodic(daemon: Arc<Daemon>) {
    spawn_periodic_after(daemon, false);
}

/// [`spawn_periodic`]; with `refreshed` (`isp-daemon --provision` just did
/// the first refresh) the thread waits one interval before its first.
pub fn spawn_periodic_after(daemon: Arc<Daemon>, refreshed: bool) {
    let Some(section) = daemon.config().provisioning.clone() else {
        return;
    };
    let interval = match section
        .refresh_interval
        .as_deref()
        .map(humantime::parse_duration)
    {
        None => None,
        Some(Ok(every)) => Some(every),
        Some(Err(e)) => {
            tracing::error!(
                target: "provisioning",
                "[provisioning] refresh_interval {:?} is not a duration such as \"5m\" ({e}); \
                 refreshing only at start and on POST /api/provisioning/refresh",
                section.refresh_interval
            );
            None
        }
    };
    let spawned = std::thread::Builder::new()
        .name("provisioning".to_owned())
        .spawn(move || {
            let mut skip = refreshed;
            loop {
                if daemon.is_stopping() {
                    return;
                }
                if !std::mem::take(&mut skip) {
                    if let Err(problem) = daemon.refresh_provisioning(ACTOR) {
                        tracing::warn!(target: "provisioning", "{}", problem.error);
                    }
                }
                let Some(every) = interval else { return };
                let until = Instant::now() + every;
                while Instant::now() < until {
                    if daemon.is_stopping() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200).min(every));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the provisioning thread: {e}");
    }
}

/// The routes, merged into the admin API behind its token check.
/// `GET /api/provisioning` (scope `plugins:read`) and
/// `POST /api/provisioning/refresh` (scope `plugins:write`), for the API's
/// route table.
pub(crate) fn route_table<S>() -> Vec<ApiRoute<S>>
where
    S: Clone + Send + Sync + 'static,
    Arc<Daemon>: FromRef<S>,
{
    vec![
        ApiRoute::get(
            "/provisioning",
            Need::Scope(Scope::PluginsRead),
            |State(d): State<Arc<Daemon>>| async move {
                crate::answer::blocking_json(move || d.provisioning_status()).await
            },
        ),
        ApiRoute::post(
            "/provisioning/refresh",
            Need::Scope(Scope::PluginsWrite),
            |State(d): State<Arc<Daemon>>, Extension(caller): Extension<Caller>| async move {
                crate::answer::blocking_json(move || d.refresh_provisioning(&caller.id)).await
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::path::Path;

    #[test]
    fn the_provisioning_section_parses_and_refuses_unknown_keys() {
        let base = crate::config::EMBEDDED;
        let config = Config::parse(
            &format!(
                "{base}\n[provisioning]\nregistry = \"http://127.0.0.1:5000\"\ntier = \"pro\"\n\
                 refresh_interval = \"5m\"\npassword = \"${{env:REGISTRY_PASSWORD}}\"\n"
            ),
            Path::new("."),
        )
        .expect("parses");
        let section = config.provisioning.expect("section");
        assert_eq!(section.tier, "pro");
        assert_eq!(section.refresh_interval.as_deref(), Some("5m"));
        let error = Config::parse(
            &format!("{base}\n[provisioning]\nregistry = \"x\"\ntier = \"pro\"\nurl = \"y\"\n"),
            Path::new("."),
        )
        .expect_err("unknown key");
        assert!(
            format!("{error:#}").contains("unknown field `url`"),
            "{error:#}"
        );
    }
}
