//! Hot reload: load the new version beside the old one, hand state over,
//! swap, and roll back on any failure with the old version untouched.
//!
//! The sequence (see ARCHITECTURE.md):
//! 1. prepare the new version: verify, stage a new private copy, load it,
//!    check its ABI, its identity and its dependencies, `initialize` it, and
//!    probe its health;
//! 2. deactivate the plugin's loaded dependents, in reverse start order;
//! 3. close the gate (new calls wait), let calls on the old version drain,
//!    move the old version's saved state into the new one, and activate the
//!    new one for every tenant the old one served;
//! 4. swap: new calls go to the new version; open the gate;
//! 5. deactivate and clean up the old version (its library unloads once the
//!    last object from it is gone), and reactivate the dependents.
//!
//! A failure in 1 or 3 cleans up the new version and leaves the old one
//! serving; nothing of the old one has been touched by then.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::std_types::{ROption, RResult};
use plugin_api::abi::{PluginError, TenantActivation};
use plugin_api::HealthStatus;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Call, HostError};
use crate::host::{Host, LoadOptions, Prepared, ServicesTemplate, Slot};
use crate::loader::{self, LoadedPlugin};

/// How long a swap waits for calls on the old version to finish before it
/// swaps anyway (the old version then stays alive until those calls end).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The step of a reload that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadStep {
    /// Reading, verifying, staging or loading the new library (ABI checks included).
    Load,
    /// The new version's dependencies are not met by the loaded plugins.
    Dependencies,
    /// `initialize` on the new version.
    Initialize,
    /// The new version reported itself unhealthy.
    Health,
    /// Handing the old version's state to the new one.
    RestoreState,
    /// Activating the new version for a tenant.
    Activate,
}

impl std::fmt::Display for ReloadStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Load => "load",
            Self::Dependencies => "dependency check",
            Self::Initialize => "initialize",
            Self::Health => "health probe",
            Self::RestoreState => "state hand-over",
            Self::Activate => "activate",
        })
    }
}

/// How a reload ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The new version serves.
    Swapped,
    /// The library's bytes are the ones already loaded; nothing to do.
    Unchanged,
    /// A step failed; the old version keeps serving untouched.
    RolledBack {
        /// The step that failed.
        step: ReloadStep,
        /// The error, naming the plugin and file.
        error: String,
    },
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// The plugin.
    pub plugin: String,
    /// The version that served before.
    pub from_version: String,
    /// The version offered.
    pub to_version: Option<String>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: ReloadOutcome,
    /// From the start of the reload to its end.
    pub total: Duration,
    /// From the gate closing to the new version serving (callers wait this long at most).
    pub swap: Duration,
    /// Dependents deactivated and reactivated around the swap, in reactivation order.
    pub dependents_cycled: Vec<String>,
}

impl ReloadReport {
    /// Whether the new version serves now.
    pub fn swapped(&self) -> bool {
        self.outcome == ReloadOutcome::Swapped
    }
}

struct Failure {
    step: ReloadStep,
    error: String,
}

impl Host {
    /// Replaces a loaded plugin with the library at `path`, without dropping
    /// a call. On any failure the old version keeps serving and the report
    /// says which step failed and why; an error is returned only when the
    /// plugin is not loaded.
    pub fn reload(
        &self,
        id: &str,
        path: &Path,
        options: LoadOptions,
    ) -> Result<ReloadReport, HostError> {
        let slot = self.slot(id)?;
        let _one_at_a_time = slot.reload_lock.lock();
        let started = Instant::now();
        let old = slot.current.read().clone();
        let from_version = old.identity.version.clone();
        let mut report = ReloadReport {
            plugin: id.to_owned(),
            from_version: from_version.clone(),
            to_version: None,
            outcome: ReloadOutcome::Unchanged,
            total: Duration::ZERO,
            swap: Duration::ZERO,
            dependents_cycled: Vec::new(),
        };

        let unchanged = std::fs::read(path)
            .map(|bytes| Sha256::digest(&bytes).as_slice() == old.library.sha256)
            .unwrap_or(false);
        if unchanged {
            report.to_version = Some(from_version);
            report.total = started.elapsed();
            return Ok(report);
        }

        let options = LoadOptions {
            expected_id: Some(id.to_owned()),
            ..options
        };
        let result = self.reload_steps(&slot, &old, path, &options, &mut report);
        drop(old);
        report.total = started.elapsed();
        match result {
            Ok(()) => {
                report.outcome = ReloadOutcome::Swapped;
                tracing::info!(
                    plugin = id,
                    from = %report.from_version,
                    to = report.to_version.as_deref().unwrap_or("?"),
                    total_us = report.total.as_micros() as u64,
                    swap_us = report.swap.as_micros() as u64,
                    "reloaded"
                );
                slot.metrics.record_reload(true);
            }
            Err(Failure { step, error }) => {
                tracing::error!(
                    plugin = id,
                    from = %report.from_version,
                    to = report.to_version.as_deref().unwrap_or("?"),
                    step = %step,
                    "reload rolled back: {error}"
                );
                slot.metrics.record_reload(false);
                report.outcome = ReloadOutcome::RolledBack { step, error };
            }
        }
        Ok(report)
    }

    fn reload_steps(
        &self,
        slot: &Arc<Slot>,
        old: &Arc<LoadedPlugin>,
        path: &Path,
        options: &LoadOptions,
        report: &mut ReloadReport,
    ) -> Result<(), Failure> {
        let fail = |step: ReloadStep| {
            move |e: HostError| Failure {
                step,
                error: e.to_string(),
            }
        };
        // 1. Prepare the new version beside the old one.
        let Prepared { loaded, signature } = self
            .prepare(path, options, |_| Ok(()))
            .map_err(fail(ReloadStep::Load))?;
        report.to_version = Some(loaded.identity.version.clone());
        self.check_dependencies(&slot.id, options)
            .map_err(|error| Failure {
                step: ReloadStep::Dependencies,
                error,
            })?;
        let new = Arc::new(loaded);
        let template = ServicesTemplate::from_options(options, slot.services.read().store.clone());
        let services = self.services_with(&slot.id, &template);
        if let RResult::RErr(e) = new.instance.base.initialize(services) {
            cleanup_quietly(&new);
            return Err(plugin_failure(
                slot,
                path,
                Call::Initialize,
                ReloadStep::Initialize,
                &e,
            ));
        }
        let health = new.instance.base.health();
        if health.status == HealthStatus::Unhealthy {
            cleanup_quietly(&new);
            return Err(Failure {
                step: ReloadStep::Health,
                error: format!(
                    "plugin `{}` ({}): the new version reports itself unhealthy: {}",
                    slot.id,
                    path.display(),
                    health.message
                ),
            });
        }

        // 2. Deactivate dependents, last started first.
        let dependents = self.loaded_dependents(&slot.id);
        let mut cycled: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for dependent in dependents.iter().rev() {
            let tenants = self.tenant_configs(dependent);
            for (tenant, _) in &tenants {
                if let Err(e) = self.deactivate(dependent, tenant) {
                    tracing::warn!(plugin = %dependent, "deactivating a dependent for a reload: {e}");
                }
            }
            cycled.push((dependent.clone(), tenants));
        }
        cycled.reverse();
        report.dependents_cycled = cycled.iter().map(|(d, _)| d.clone()).collect();

        // 3. Close the gate; drain; hand state over; activate the new version.
        let gate_closed = Instant::now();
        let mut current = slot.current.write();
        // Cached hook targets hold the old version; drop them before draining.
        self.invalidate_dispatch();
        drain(old);
        let tenants: Vec<(String, String)> = slot
            .tenant_configs
            .lock()
            .iter()
            .map(|(t, c)| (t.clone(), c.clone()))
            .collect();
        let prepared = (|| {
            if let (ROption::RSome(from), ROption::RSome(to)) =
                (old.instance.state.as_ref(), new.instance.state.as_ref())
            {
                match from.save_state() {
                    RResult::ROk(ROption::RSome(state)) => {
                        if let RResult::RErr(e) = to.restore_state(state) {
                            return Err(plugin_failure(
                                slot,
                                path,
                                Call::RestoreState,
                                ReloadStep::RestoreState,
                                &e,
                            ));
                        }
                    }
                    RResult::ROk(ROption::RNone) => {}
                    RResult::RErr(e) => {
                        return Err(plugin_failure(
                            slot,
                            path,
                            Call::SaveState,
                            ReloadStep::RestoreState,
                            &e,
                        ));
                    }
                }
            }
            let mut activated: Vec<&str> = Vec::new();
            for (tenant, config) in &tenants {
                let activation = TenantActivation {
                    tenant: tenant.as_str().into(),
                    config_json: config.as_str().into(),
                };
                if let RResult::RErr(e) = new.instance.base.activate(activation) {
                    for done in activated.iter().rev() {
                        let _ = new
                            .instance
                            .base
                            .deactivate(abi_stable::std_types::RStr::from_str(done));
                    }
                    return Err(plugin_failure(
                        slot,
                        path,
                        Call::Activate,
                        ReloadStep::Activate,
                        &e,
                    ));
                }
                activated.push(tenant);
            }
            Ok(())
        })();
        if let Err(failure) = prepared {
            drop(current);
            cleanup_quietly(&new);
            self.reactivate(&cycled);
            return Err(failure);
        }

        // 4. Swap.
        *current = new.clone();
        self.invalidate_dispatch();
        drop(current);
        report.swap = gate_closed.elapsed();
        *slot.services.write() = template;
        *slot.signature.write() = signature;
        *slot.source.write() = path.to_owned();
        *slot.dependencies.write() = options.dependencies.clone();
        self.replace_subscriptions(&slot.id, options.hooks.clone());

        // 5. Retire the old version; reactivate dependents.
        for (tenant, _) in tenants.iter().rev() {
            if let RResult::RErr(e) = old.instance.base.deactivate(tenant.as_str().into()) {
                tracing::warn!(plugin = %slot.id, version = %old.identity.version, "old version failed to deactivate: {e}");
            }
        }
        if let RResult::RErr(e) = old.instance.base.cleanup() {
            tracing::warn!(plugin = %slot.id, version = %old.identity.version, "old version failed to clean up: {e}");
        }
        self.reactivate(&cycled);
        Ok(())
    }

    fn reactivate(&self, cycled: &[(String, Vec<(String, String)>)]) {
        for (dependent, tenants) in cycled {
            for (tenant, config) in tenants {
                if let Err(e) = self.activate(dependent, tenant, config) {
                    tracing::error!(plugin = %dependent, tenant = %tenant, "reactivating a dependent after a reload: {e}");
                }
            }
        }
    }

    /// Checks the new version's declared dependencies against loaded plugins.
    fn check_dependencies(&self, id: &str, options: &LoadOptions) -> Result<(), String> {
        let missing: Vec<&String> = options
            .dependencies
            .iter()
            .filter(|dep| self.state(dep).is_none())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "plugin `{id}`: the new version depends on {} which {} not loaded; \
                 install {} first",
                missing
                    .iter()
                    .map(|d| format!("`{d}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if missing.len() == 1 { "is" } else { "are" },
                if missing.len() == 1 { "it" } else { "them" },
            ))
        }
    }
}

/// Waits until no call holds the old version, or the drain limit passes.
fn drain(old: &Arc<LoadedPlugin>) {
    // Two references are ours: the slot's (being replaced) and the caller's.
    let started = Instant::now();
    while Arc::strong_count(old) > 2 {
        if started.elapsed() > DRAIN_LIMIT {
            tracing::warn!(
                plugin = %old.identity.id,
                "calls on the old version did not finish within {DRAIN_LIMIT:?}; swapping anyway, \
                 they finish on the old version"
            );
            return;
        }
        std::thread::yield_now();
    }
}

fn cleanup_quietly(new: &Arc<LoadedPlugin>) {
    if let RResult::RErr(e) = new.instance.base.cleanup() {
        tracing::warn!(plugin = %new.identity.id, "cleaning up a rejected new version: {e}");
    }
}

fn plugin_failure(
    slot: &Slot,
    path: &Path,
    call: Call,
    step: ReloadStep,
    error: &PluginError,
) -> Failure {
    Failure {
        step,
        error: loader::call_error(&slot.id, path, call, error).to_string(),
    }
}
