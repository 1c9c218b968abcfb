//! Installing, upgrading and removing plugins through the admin API, in
//! the plugin directory layout `cargo xtask install-plugin` uses:
//! `<dir>/<id>` is a symlink to `<dir>/.store/<id>-<version>-<sha>`, and a
//! package is assembled in `<dir>/.staging` (same filesystem) first.
//!
//! Invariants:
//! - Nothing is written before the package passed every check
//!   ([`crate::upload::verify`], the daemon's tiers, the dependencies).
//! - The commit point is one `rename` of a new symlink over `<dir>/<id>`;
//!   a failed start or a rolled-back reload puts the previous link back.
//! - A removal is refused (409, naming them) while installed plugins need
//!   the plugin; every step, refused or done, is in the audit log.

use std::fs;

use plugin_host::package::signature::sha256_hex;
use plugkit_durable::install::{self, IfExists, IfFolder, Previous};

use super::*;
use crate::upload::{self, VerifiedPackage};

/// One upload or removal at a time (checks, then writes, then starts).
static CHANGING: Mutex<()> = Mutex::new(());

const STORE: &str = ".store";
const STAGING: &str = ".staging";

impl Daemon {
    fn refuse_install(&self, actor: &str, problem: Problem, to: Option<String>) -> Problem {
        let mut entry = AuditEntry::new(actor, AuditAction::Install, AuditOutcome::Refused)
            .versions(None, to)
            .detail(problem.error.clone());
        if let Some(plugin) = &problem.plugin {
            entry = entry.plugin(plugin);
        }
        self.audit_entry(entry);
        problem
    }

    /// Installs or upgrades the plugin in the uploaded package `bytes` (a tar
    /// of one package folder; `name` is how errors call it): verified in
    /// memory, written to the first plugin directory atomically, started or
    /// hot-reloaded. A new version that fails to start is rolled back to the
    /// previous one.
    ///
    /// # Errors
    /// 422 for a package that fails a check (nothing written); 409 for the
    /// version already installed, a downgrade without `allow_downgrade`, or
    /// an upgrade that installed dependents do not accept; 500 when writing
    /// or starting fails (the previous state is restored).
    pub fn install_package(
        &self,
        actor: &str,
        name: &str,
        bytes: &[u8],
        allow_downgrade: bool,
    ) -> Result<Value, Problem> {
        let _changing = lock(&CHANGING);
        let api = semver_of(plugin_api::API_VERSION);
        let package = upload::read_tar(bytes, name)
            .and_then(|files| upload::verify(files, name, &self.trust, &api))
            .map_err(|p| self.refuse_install(actor, p, None))?;
        let to = Some(package.manifest.version.to_string());
        let previous_version = self
            .check_fits(name, &package.manifest, allow_downgrade)
            .map_err(|p| self.refuse_install(actor, p, to.clone()))?;
        let root = self.dirs.first().cloned().ok_or_else(|| {
            Problem::internal(
                "the daemon has no plugin directory to install into; set [plugins] dirs",
            )
        })?;
        let id = package.manifest.id.clone();
        let stored = write_package(&root, name, &package)
            .map_err(|p| self.refuse_install(actor, p.plugin(&id), to.clone()))?;
        let previous = match swap_link(&root, &id, &stored) {
            Ok(previous) => previous,
            Err(problem) => {
                let _ = fs::remove_dir_all(&stored);
                return Err(self.refuse_install(actor, problem.plugin(&id), to));
            }
        };
        let signed = match &package.signature {
            Ok(key) => format!("signed by key {key}"),
            Err(why) => why.clone(),
        };
        let started = self.reload(actor, &id);
        let running_version = self
            .host
            .status(&id)
            .ok()
            .map(|s| s.identity.version.to_string());
        let failure = match &started {
            Err(problem) => Some(problem.error.clone()),
            Ok(_) if running_version != to => Some(format!(
                "the new version did not start ({}); the previous one keeps running",
                started
                    .as_ref()
                    .ok()
                    .and_then(|r| r.get("outcome"))
                    .map(Value::to_string)
                    .unwrap_or_default()
            )),
            Ok(_) => None,
        };
        if let Some(why) = failure {
            restore_link(&root, &id, previous);
            let _ = fs::remove_dir_all(&stored);
            if previous_version.is_none() {
                let _ = self.host.remove(&id);
            }
            self.audit_entry(
                AuditEntry::new(actor, AuditAction::Rollback, AuditOutcome::Failed)
                    .plugin(&id)
                    .versions(previous_version.clone(), to)
                    .detail(format!("package {name}: {why}; the install was undone")),
            );
            return Err(Problem::internal(format!(
                "package {name}: plugin `{id}` was verified and written but did not start: {why}; \
                 the install was undone{}. Fix the plugin and upload it again",
                if previous_version.is_some() {
                    " and the previous version keeps running"
                } else {
                    ""
                }
            ))
            .plugin(&id));
        }
        discard_previous(previous);
        self.audit_entry(
            AuditEntry::new(actor, AuditAction::Install, AuditOutcome::Ok)
                .plugin(&id)
                .versions(previous_version.clone(), to.clone())
                .detail(format!(
                    "package {name} ({signed}, library sha256 {}) installed into {}",
                    &package.library_sha256[..16],
                    stored.display()
                )),
        );
        Ok(json!({
            "plugin": id,
            "from_version": previous_version,
            "to_version": to,
            "outcome": if previous_version.is_some() { "upgraded" } else { "installed" },
            "signature": signed,
            "folder": root.join(&id),
            "started": started.unwrap_or(Value::Null),
        }))
    }

    /// Checks that `manifest` fits what is installed; returns the version it replaces.
    fn check_fits(
        &self,
        name: &str,
        manifest: &Manifest,
        allow_downgrade: bool,
    ) -> Result<Option<String>, Problem> {
        let id = &manifest.id;
        let conflict = |why: String| {
            Problem::new(ProblemKind::Conflict, format!("package {name}: {why}")).plugin(id)
        };
        if self.platform.tiers().rank(&manifest.required_tier).is_err() {
            return Err(Problem::unprocessable(format!(
                "package {name}: plugin `{id}` requires tier `{}`, which this daemon does not \
                 have (tiers: {}); set `required_tier` to one of them",
                manifest.required_tier,
                self.platform.tiers().names().join(", ")
            ))
            .plugin(id));
        }
        let manifests = self
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let previous = manifests.get(id).map(|m| m.version.clone());
        if let Some(old) = &previous {
            if *old == manifest.version {
                return Err(conflict(format!(
                    "plugin `{id}` {old} is already installed; bump the version to upgrade, or \
                     remove it first (DELETE /api/plugins/{id})"
                )));
            }
            if manifest.version < *old && !allow_downgrade {
                return Err(conflict(format!(
                    "plugin `{id}` {old} is installed and the package holds the older {}; add \
                     `allow_downgrade=true` to the query to downgrade",
                    manifest.version
                )));
            }
        }
        let refusing: Vec<String> = manifests
            .values()
            .filter(|m| &m.id != id)
            .filter(|m| {
                m.dependencies
                    .get(id)
                    .is_some_and(|d| !d.version.matches(&manifest.version))
            })
            .map(|m| format!("`{}` needs {}", m.id, m.dependencies[id].version))
            .collect();
        if !refusing.is_empty() {
            return Err(conflict(format!(
                "installed plugins do not accept `{id}` {}: {}; upgrade them first",
                manifest.version,
                refusing.join(", ")
            )));
        }
        let missing: Vec<String> = manifest
            .dependencies
            .iter()
            .filter(|(_, d)| !d.optional)
            .filter(|(dep, d)| {
                !manifests
                    .get(*dep)
                    .is_some_and(|m| d.version.matches(&m.version))
            })
            .map(|(dep, d)| match manifests.get(dep) {
                Some(m) => format!("`{dep}` {} (installed: {})", d.version, m.version),
                None => format!("`{dep}` {} (not installed)", d.version),
            })
            .collect();
        if !missing.is_empty() {
            return Err(Problem::unprocessable(format!(
                "package {name}: plugin `{id}` needs {}; install that first",
                missing.join(", ")
            ))
            .plugin(id));
        }
        Ok(previous.map(|v| v.to_string()))
    }

    /// Removes `plugin`: refused (409, listing them) while installed plugins
    /// depend on it; otherwise its link or folder leaves the plugin
    /// directory, it is deactivated for every tenant (their requests are
    /// kept for a reinstall) and stopped.
    pub fn remove_plugin(&self, actor: &str, plugin: &str) -> Result<Value, Problem> {
        let _changing = lock(&CHANGING);
        self.known_plugin(plugin)?;
        let manifests = self
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let version = manifests.get(plugin).map(|m| m.version.to_string());
        let dependents: Vec<String> = manifests
            .values()
            .filter(|m| m.dependencies.get(plugin).is_some_and(|d| !d.optional))
            .map(|m| m.id.clone())
            .collect();
        if !dependents.is_empty() {
            let problem = Problem::new(
                ProblemKind::Conflict,
                format!(
                    "plugin `{plugin}` cannot be removed: installed plugins depend on it: {}; \
                     remove them first",
                    dependents
                        .iter()
                        .map(|d| format!("`{d}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .plugin(plugin)
            .dependents(dependents);
            self.audit_entry(
                AuditEntry::new(actor, AuditAction::Remove, AuditOutcome::Refused)
                    .plugin(plugin)
                    .versions(version, None)
                    .detail(problem.error.clone()),
            );
            return Err(problem);
        }
        let found = self.discovered.scan(&self.dirs);
        let folder = found
            .plugins
            .iter()
            .find(|p| p.manifest.id == plugin)
            .map(|p| p.folder.clone());
        if let Some(folder) = &folder {
            remove_installed(folder).map_err(|e| {
                let problem = Problem::internal(format!(
                    "plugin `{plugin}`: cannot remove {}: {e}; check the plugin directory's \
                     permissions and try again (the plugin keeps running)",
                    folder.display()
                ))
                .plugin(plugin);
                self.audit_entry(
                    AuditEntry::new(actor, AuditAction::Remove, AuditOutcome::Failed)
                        .plugin(plugin)
                        .detail(problem.error.clone()),
                );
                problem
            })?;
        }
        let active_for = |tenant: &str| {
            self.host
                .plugin(plugin)
                .is_ok_and(|h| h.is_active_for(tenant))
        };
        let tenants: Vec<(String, bool)> = self
            .platform
            .tenants()
            .into_iter()
            .map(|(tenant, _)| {
                let active = active_for(&tenant);
                (tenant, active)
            })
            .collect();
        let deactivated = self.platform.as_actor(actor).remove_plugin(plugin);
        let failed = deactivated.err().map(|e| {
            let problem = Problem::from(e);
            (problem.tenant.clone(), problem.error)
        });
        // What happened per tenant, read before the plugin stops.
        let deactivation: serde_json::Map<String, Value> = tenants
            .into_iter()
            .map(|(tenant, was_active)| {
                let what = if !was_active {
                    "was not active".to_owned()
                } else if !active_for(&tenant) {
                    "deactivated".to_owned()
                } else {
                    let why = failed
                        .as_ref()
                        .filter(|(t, _)| t.as_deref().is_none_or(|t| t == tenant))
                        .map_or("the platform did not say why", |(_, why)| why.as_str());
                    format!("its deactivation failed ({why}); the plugin was stopped with it")
                };
                (tenant, Value::from(what))
            })
            .collect();
        let stopped = match self.host.remove(plugin) {
            Ok(()) => "stopped and unloaded".to_owned(),
            Err(plugin_host::HostError::UnknownPlugin { .. }) => "was not loaded".to_owned(),
            Err(e) => format!(
                "stopping it failed: {}; the daemon's next restart does not load it",
                Problem::from(e).error
            ),
        };
        self.manifests
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(plugin);
        Ok(json!({
            "plugin": plugin,
            "removed_version": version,
            "folder": folder,
            "deactivation": deactivation,
            "stop": stopped,
        }))
    }
}

/// Writes the verified package into `<root>/.store/<id>-<version>-<sha>`
/// through `.staging`, and checks the written folder as start-up would.
fn write_package(root: &Path, name: &str, package: &VerifiedPackage) -> Result<PathBuf, Problem> {
    let io = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Problem::internal(format!(
            "package {name}: {what} {}: {e}; check the plugin directory's space and permissions",
            path.display()
        ))
    };
    let staging_root = root.join(STAGING);
    fs::create_dir_all(&staging_root).map_err(|e| io("cannot create", &staging_root, &e))?;
    let manifest = &package.manifest;
    let staging = tempfile::Builder::new()
        .prefix(&format!("{}-upload-", manifest.id))
        .tempdir_in(&staging_root)
        .map_err(|e| io("cannot create a folder in", &staging_root, &e))?;
    let files: Vec<(&str, &[u8], u32)> = package
        .files
        .iter()
        .map(|(file, bytes)| {
            let mode = if *file == manifest.library {
                0o755
            } else {
                0o644
            };
            (file.as_str(), bytes.as_slice(), mode)
        })
        .collect();
    install::stage_files(staging.path(), &files)
        .map_err(|e| io("cannot write the package into", staging.path(), &e))?;
    plugin_host::discovery::check_installed(staging.path()).map_err(|e| {
        Problem::unprocessable(format!(
            "package {name}: the written package fails the host's checks: {e}"
        ))
    })?;
    let base = format!(
        "{}-{}-{}",
        manifest.id,
        manifest.version,
        &sha256_hex(&package.files[&manifest.library])[..12]
    );
    let store = root.join(STORE);
    install::commit_folder(&staging.keep(), &store, &base, IfExists::NewName)
        .map_err(|e| io("cannot move the package into", &store, &e))
}

/// Points `<root>/<id>` at `stored` with one rename; returns what was there
/// (a folder laid out by hand is moved aside into `.staging`).
fn swap_link(root: &Path, id: &str, stored: &Path) -> Result<Previous, Problem> {
    install::switch_link(
        root,
        id,
        stored,
        &root.join(STAGING),
        IfFolder::MoveAside(root.join(STAGING)),
    )
    .map_err(|e| Problem::internal(format!("{e}; check the plugin directory's permissions")))
}

/// Puts back what `<root>/<id>` was before [`swap_link`].
fn restore_link(root: &Path, id: &str, previous: Previous) {
    if let Err(e) = install::restore_link(root, id, previous, &root.join(STAGING)) {
        tracing::error!(plugin = id, "restoring {}: {e}", root.join(id).display());
    }
}

/// Deletes what an install replaced (the host runs from private copies).
fn discard_previous(previous: Previous) {
    let _ = match previous {
        Previous::Nothing => Ok(()),
        Previous::Link(_) => Ok(()),
        Previous::Folder(aside) => fs::remove_dir_all(aside),
    };
}

/// Removes an installed plugin's folder: the link first (the commit
/// point), then the package folder it pointed to.
fn remove_installed(folder: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(folder)?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(folder)?;
        let target = folder.parent().unwrap_or(Path::new("/")).join(target);
        fs::remove_file(folder)?;
        if let Some(parent) = folder.parent() {
            sync_dir(parent);
        }
        let _ = fs::remove_dir_all(target);
        Ok(())
    } else {
        let parent = folder.parent().unwrap_or(Path::new("/"));
        let aside = parent.join(STAGING).join(format!(
            "{}-removed-{}",
            folder.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        fs::create_dir_all(parent.join(STAGING))?;
        let _ = fs::remove_dir_all(&aside);
        fs::rename(folder, &aside)?;
        sync_dir(parent);
        let _ = fs::remove_dir_all(aside);
        Ok(())
    }
}

/// Makes a directory's entries durable (best effort: a failure only
/// weakens crash safety, which the next install or removal re-checks).
fn sync_dir(dir: &Path) {
    if let Ok(file) = fs::File::open(dir) {
        let _ = file.sync_all();
    }
}
