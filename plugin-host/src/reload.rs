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
//!
//! A reload happens when the library's bytes or what the manifest implies
//! (permissions, hooks, configuration defaults, provided services,
//! dependencies, the manifest's bytes a signature binds) differ from the
//! serving version's. A manifest-only change runs the same steps with a
//! fresh instance of the same library, so it takes effect exactly as a new
//! version would, or is refused with the failing step.
//!
//! [`Host::reload_installed`] is how an installed folder is reloaded (the
//! watcher and the daemon's admin reload): it first makes the checks
//! start-up makes ([`crate::discovery::check_installed`]), then checks the
//! running tenants' configuration against the manifest's schema.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::std_types::{ROption, RResult};
use plugin_api::abi::{PluginError, TenantActivation};
use plugin_api::HealthStatus;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::discovery;
use crate::error::{Call, HostError};
use crate::hooks::Subscription;
use crate::host::{Host, LoadOptions, Prepared, ServicesTemplate, Slot};
use crate::loader::{self, LoadedPlugin};
use plugin_package::manifest::Manifest;
use plugin_package::manifest::Permission;

/// How long a swap waits for calls on the old version to finish before it
/// swaps anyway (the old version then stays alive until those calls end).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The step of a reload that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadStep {
    /// The installed folder fails the checks start-up makes (its library
    /// was built as another plugin or version than its manifest says, the
    /// manifest is invalid, the library is missing).
    Validate,
    /// A running tenant's configuration does not fit the new manifest's
    /// configuration schema.
    Configuration,
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
            Self::Validate => "folder check",
            Self::Configuration => "tenant configuration check",
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
    /// Neither the library's bytes nor anything the manifest implies differ
    /// from the serving version's; nothing to do.
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
    /// Whether the offered library's bytes differ from the serving version's.
    pub library_changed: bool,
    /// What the offered manifest changes besides the library, one phrase
    /// each (`permissions: … → …`, `hooks`, …); empty when nothing.
    pub manifest_changes: Vec<String>,
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
            library_changed: true,
            manifest_changes: Vec::new(),
        };

        report.library_changed = std::fs::read(path)
            .map(|bytes| Sha256::digest(&bytes).as_slice() != old.library.sha256)
            .unwrap_or(true);
        report.manifest_changes = self.manifest_changes(&slot, &options);
        if !report.library_changed && report.manifest_changes.is_empty() {
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
        let Prepared {
            loaded,
            signature,
            manifest_sha256,
        } = self
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
        slot.bump_epoch();
        self.invalidate_dispatch();
        drop(current);
        report.swap = gate_closed.elapsed();
        *slot.services.write() = template;
        *slot.signature.write() = signature;
        *slot.manifest_sha256.write() = manifest_sha256;
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

    /// Reloads `id` from its installed `folder`: the folder must pass the
    /// checks start-up makes (the one function both use), the running
    /// tenants' configuration must fit the manifest's schema, and then the
    /// library is reloaded with what the manifest says ([`Host::reload`]). A
    /// refusal is a rolled-back report naming the step and the reason; the
    /// serving version is untouched. An error only when `id` is not loaded.
    pub fn reload_installed(&self, id: &str, folder: &Path) -> Result<ReloadReport, HostError> {
        let slot = self.slot(id)?;
        let from_version = slot.current.read().identity.version.clone();
        let started = Instant::now();
        let refuse = |step: ReloadStep, error: String, to_version: Option<String>| {
            tracing::error!(plugin = id, from = %from_version, step = %step, "reload refused: {error}");
            slot.metrics.record_reload(false);
            ReloadReport {
                plugin: id.to_owned(),
                from_version: from_version.clone(),
                to_version,
                outcome: ReloadOutcome::RolledBack { step, error },
                total: started.elapsed(),
                swap: Duration::ZERO,
                dependents_cycled: Vec::new(),
                library_changed: false,
                manifest_changes: Vec::new(),
            }
        };
        let installed = match discovery::check_installed(folder) {
            Ok(installed) => installed,
            Err(problem) => {
                return Ok(refuse(
                    ReloadStep::Validate,
                    // Start-up's words, less its "not started": this one serves on.
                    problem
                        .to_string()
                        .trim_end_matches(" It is not started.")
                        .to_owned(),
                    None,
                ));
            }
        };
        let manifest = &installed.manifest;
        let to_version = Some(manifest.version.to_string());
        if manifest.id != id {
            return Ok(refuse(
                ReloadStep::Validate,
                format!(
                    "{} now describes plugin `{}`, not `{id}`; put each plugin in a folder of \
                     its own",
                    manifest.path.display(),
                    manifest.id
                ),
                to_version,
            ));
        }
        if let Err(error) = check_tenant_configs(manifest, &self.tenant_configs(id)) {
            return Ok(refuse(ReloadStep::Configuration, error, to_version));
        }
        self.reload(id, &installed.library, LoadOptions::from_manifest(manifest))
    }

    /// What `options` would change besides the library, one phrase each.
    fn manifest_changes(&self, slot: &Slot, options: &LoadOptions) -> Vec<String> {
        let mut changes = Vec::new();
        {
            let services = slot.services.read();
            if services.permissions != options.permissions {
                changes.push(format!(
                    "permissions: {} → {}",
                    permission_list(&services.permissions),
                    permission_list(&options.permissions)
                ));
            }
            if services.config_json != options.config_json.as_deref().unwrap_or("{}") {
                changes.push("configuration defaults".to_owned());
            }
            if services.provides != options.provides {
                changes.push(format!(
                    "provided services: [{}] → [{}]",
                    services.provides.join(", "),
                    options.provides.join(", ")
                ));
            }
        }
        if *slot.dependencies.read() != options.dependencies {
            changes.push(format!(
                "dependencies: [{}] → [{}]",
                slot.dependencies.read().join(", "),
                options.dependencies.join(", ")
            ));
        }
        let normalize = |subs: Vec<Subscription>| {
            let mut subs: Vec<Subscription> = subs
                .into_iter()
                .map(|mut s| {
                    s.plugin = slot.id.clone();
                    s
                })
                .collect();
            subs.sort_by(|a, b| (&a.hook, a.priority).cmp(&(&b.hook, b.priority)));
            subs
        };
        if normalize(self.subscriptions_of(&slot.id)) != normalize(options.hooks.clone()) {
            changes.push("hooks (names, kinds, priorities or order)".to_owned());
        }
        if let Some(path) = &options.manifest_path {
            let offered: Option<[u8; 32]> = std::fs::read(path)
                .ok()
                .map(|bytes| Sha256::digest(&bytes).into());
            if offered != *slot.manifest_sha256.read() && changes.is_empty() {
                changes.push(format!("{} (its text)", path.display()));
            }
        }
        changes
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
    // Parked fast-path handles hold a reference too, but they look at the
    // slot's epoch before every call and move to the new version.
    while Arc::strong_count(old) > 2 + old.fast_bound.load(std::sync::atomic::Ordering::Acquire) {
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

fn permission_list(set: &BTreeSet<Permission>) -> String {
    if set.is_empty() {
        return "none".to_owned();
    }
    set.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

/// Checks every running tenant's configuration (the JSON it was activated
/// with) against `manifest`'s configuration schema: required keys present,
/// every value of its declared type.
pub(crate) fn check_tenant_configs(
    manifest: &Manifest,
    tenants: &[(String, String)],
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (tenant, json) in tenants {
        let value: serde_json::Value = match serde_json::from_str(json) {
            Ok(value) => value,
            Err(e) => {
                problems.push(format!(
                    "tenant `{tenant}`: its configuration is not JSON: {e}"
                ));
                continue;
            }
        };
        for (key, spec) in manifest.config.iter() {
            match value.get(key).filter(|v| !v.is_null()) {
                None if spec.required && spec.default.is_none() => problems.push(format!(
                    "tenant `{tenant}` has no value for `{key}`, which the manifest now requires"
                )),
                None => {}
                Some(v) => {
                    if let Err(e) = spec.check_json(v) {
                        problems.push(format!("tenant `{tenant}`: `{key}`: {e}"));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "plugin `{}`: the configuration schema in {} does not accept the running tenants' \
         configuration: {}. Set those values for the tenants first (or give the keys defaults), \
         then install the manifest again; the serving version keeps its old manifest.",
        manifest.id,
        manifest.path.display(),
        problems.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(schema: &str, tenants: &[(&str, &str)], expected: Result<(), &str>) {
        let text = format!(
            "id = \"pp\"\nname = \"pp\"\nversion = \"1.0.0\"\napi = \"^0.2\"\n\
             library = \"libp.so\"\n{schema}"
        );
        let manifest = Manifest::parse(&text, Path::new("/x/plugin.toml")).expect("manifest");
        let tenants: Vec<(String, String)> = tenants
            .iter()
            .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
            .collect();
        let actual = check_tenant_configs(&manifest, &tenants);
        match (actual, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(needle)) => assert!(e.contains(needle), "{e}"),
            (actual, expected) => panic!("{schema}: {actual:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn tenant_configuration_is_checked_against_the_new_schema() {
        let region_required = "[config.region]\ntype = \"string\"\nrequired = true\n";
        check(region_required, &[("acme", r#"{"region":"eu"}"#)], Ok(()));
        check(
            region_required,
            &[("acme", r#"{"region":"eu"}"#), ("beta", "{}")],
            Err("tenant `beta` has no value for `region`, which the manifest now requires"),
        );
        check(
            "[config.retries]\ntype = \"integer\"\ndefault = 3\n",
            &[("acme", r#"{"retries":"three"}"#)],
            Err("tenant `acme`: `retries`"),
        );
        check(
            "[config.retries]\ntype = \"integer\"\ndefault = 3\n",
            &[("acme", "{}")],
            Ok(()),
        );
        check("", &[("acme", r#"{"anything":1}"#)], Ok(()));
        check(region_required, &[], Ok(()));
    }
}
