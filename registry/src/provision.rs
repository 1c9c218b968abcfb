//! Provisioning a plugin directory for a tier: pull the catalog, check it
//! ([`plugin_package::catalog::verify_catalog`]: signature, rollback,
//! freeze), pull each plugin the tier includes by digest, verify digest and
//! signature with the host's check, write it as a package folder and switch
//! its link; unlink what the tier no longer includes (files kept).
//!
//! [`fetch`] does all that and returns the new [`Lock`] without writing it,
//! so a daemon can first start what changed and [`revert`] what fails its
//! start; [`Lock::write`] then pins the set that serves. A plugin that
//! fails keeps its previous entry: the last verified set stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use plugin_package::catalog::{verify_catalog, Entitlement};
use plugin_package::manifest::Manifest;
use plugin_package::oci as layout;
use plugin_package::signature::{sha256_hex, verify_signature, Expected};
use serde::{Deserialize, Serialize};

use crate::lockfile::{Lock, LockEntry};
use crate::remote::{PulledPlugin, RegistryConfig, Remote};
use crate::{store, Error};

/// What to provision.
#[derive(Debug, Clone)]
pub struct Options {
    /// The registry.
    pub registry: RegistryConfig,
    /// The tier whose plugins to install.
    pub tier: String,
    /// The plugin directory (the lock file goes in it).
    pub plugin_dir: PathBuf,
    /// Where the last accepted catalog serial is kept (anti-rollback).
    pub accepted_file: PathBuf,
    /// Trusted minisign public keys (plugins and catalog).
    pub trusted_keys: Vec<String>,
}

/// What happened to one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Pulled, verified and linked.
    Installed,
    /// Already at this digest.
    Unchanged,
    /// Its package folder was kept from before; linked again without a pull.
    Relinked,
    /// The tier no longer includes it: unlinked, files kept.
    Dropped,
    /// Not installed; the previous version (if any) stays.
    Failed,
}

/// One plugin's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginOutcome {
    /// The plugin id.
    pub id: String,
    /// The version the catalog names (or the dropped one).
    pub version: String,
    /// The digest the catalog names.
    pub digest: String,
    /// What happened.
    pub action: Action,
    /// Why it failed, naming the plugin and the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The version it replaced, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// Milliseconds: registry pulls (manifest and blobs).
    pub pull_ms: f64,
    /// Milliseconds: digest and signature checks.
    pub verify_ms: f64,
    /// Milliseconds: writing the package folder and switching the link.
    pub install_ms: f64,
}

/// A fetch's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The tier.
    pub tier: String,
    /// The accepted catalog serial.
    pub catalog_serial: u64,
    /// Its manifest digest.
    pub catalog_digest: String,
    /// The key that signed it.
    pub catalog_key: String,
    /// Per plugin.
    pub plugins: Vec<PluginOutcome>,
    /// Milliseconds pulling and checking the catalog.
    pub catalog_ms: f64,
    /// Milliseconds pulling the plugins, wall time: they are pulled at
    /// once, so each plugin's `pull_ms` overlaps the others'.
    #[serde(default)]
    pub pulls_ms: f64,
}

impl Report {
    /// The failed plugins.
    pub fn failures(&self) -> impl Iterator<Item = &PluginOutcome> {
        self.plugins.iter().filter(|p| p.action == Action::Failed)
    }
}

/// The last accepted catalog, persisted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Accepted {
    /// Its serial.
    pub serial: u64,
    /// Its digest.
    pub digest: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The lock file path of a plugin directory.
pub fn lock_path(plugin_dir: &Path) -> PathBuf {
    plugin_dir.join(crate::lockfile::LOCK_FILE)
}

/// Reads the last accepted catalog (none when the file is missing).
pub fn read_accepted(path: &Path) -> Result<Option<Accepted>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Io {
                what: format!("reading {}", path.display()),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()))(e)),
    }
}

/// Pulls and checks the catalog, then every plugin `options.tier`
/// includes; installs what changed and unlinks what the tier dropped.
/// Returns the report and the lock to write (`previous` updated). `progress`
/// gets one line per step.
///
/// # Errors
/// Catalog-level failures (registry down, catalog refused, unknown tier):
/// nothing in the plugin directory changed.
pub fn fetch(
    options: &Options,
    previous: &Lock,
    progress: &mut dyn FnMut(&str),
) -> Result<(Report, Lock), Error> {
    let started = Instant::now();
    let remote = Remote::new(&options.registry)?;
    progress(&format!("pulling the catalog from {}", remote.url()));
    let (document, signature, catalog_digest) = remote.pull_catalog(layout::CATALOG_LATEST_TAG)?;
    let accepted = read_accepted(&options.accepted_file)?;
    let verified = verify_catalog(
        &document,
        signature.as_deref(),
        &options.trusted_keys,
        accepted.as_ref().map(|a| a.serial),
        SystemTime::now(),
    )?;
    let catalog = verified.catalog;
    let entitled = catalog.tier(&options.tier)?.to_vec();
    if let Some(parent) = options.accepted_file.parent() {
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("creating {}", parent.display())))?;
    }
    let record = Accepted {
        serial: catalog.serial,
        digest: catalog_digest.clone(),
    };
    plugkit_durable::write_atomic(
        &options.accepted_file,
        &serde_json::to_vec_pretty(&record).unwrap_or_default(),
        0o644,
    )
    .map_err(|e| Error::Io {
        what: format!("writing {}", options.accepted_file.display()),
        reason: e.to_string(),
    })?;
    progress(&format!(
        "catalog serial {} (signed by {}, expires {}): tier `{}` includes {}",
        catalog.serial,
        verified.key_id,
        catalog.expires,
        options.tier,
        entitled
            .iter()
            .map(|e| format!("{} {}", e.id, e.version))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let catalog_ms = ms(started.elapsed());
    std::fs::create_dir_all(&options.plugin_dir).map_err(Error::io(format!(
        "creating {}",
        options.plugin_dir.display()
    )))?;

    let mut lock = Lock {
        format: 1,
        tier: options.tier.clone(),
        catalog_serial: catalog.serial,
        catalog_digest: catalog_digest.clone(),
        plugins: Default::default(),
    };
    // Every plugin that needs a pull is pulled at once, before any is
    // checked and installed: the round trips overlap.
    let wanted: Vec<&Entitlement> = entitled
        .iter()
        .filter(|e| needs_pull(options, e, previous.plugins.get(&e.id)))
        .collect();
    for entitlement in &wanted {
        progress(&format!(
            "{}: pulling {} ({}@{})",
            entitlement.id,
            entitlement.version,
            layout::plugin_repository(&entitlement.id),
            entitlement.digest.as_deref().unwrap_or_default()
        ));
    }
    let pulls_started = Instant::now();
    let references: Vec<(String, String)> = wanted
        .iter()
        .map(|e| {
            (
                layout::plugin_repository(&e.id),
                e.digest.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut pulled: BTreeMap<String, Pull> = if references.is_empty() {
        BTreeMap::new()
    } else {
        wanted
            .iter()
            .map(|e| e.id.clone())
            .zip(remote.pull_plugins(&references))
            .collect()
    };
    let pulls_ms = ms(pulls_started.elapsed());
    let mut outcomes = Vec::new();
    for entitlement in &entitled {
        let before = previous.plugins.get(&entitlement.id);
        let prefetched = pulled.remove(&entitlement.id);
        let outcome = provide(&remote, options, entitlement, before, prefetched, progress);
        match (&outcome, before) {
            (Ok((o, entry)), _) => {
                progress(&format!(
                    "{}: {} {}",
                    o.id,
                    action_word(o.action),
                    o.version
                ));
                lock.plugins.insert(entitlement.id.clone(), entry.clone());
                outcomes.push(o.clone());
            }
            (Err(o), previous_entry) => {
                progress(&format!(
                    "{}: FAILED: {}",
                    o.id,
                    o.error.as_deref().unwrap_or_default()
                ));
                if let Some(entry) = previous_entry {
                    lock.plugins.insert(entitlement.id.clone(), entry.clone());
                }
                outcomes.push(o.as_ref().clone());
            }
        }
    }
    for (id, entry) in &previous.plugins {
        if entitled.iter().any(|e| &e.id == id) {
            continue;
        }
        let started = Instant::now();
        let result = store::unlink(&options.plugin_dir, id);
        progress(&format!(
            "{id}: dropped {} (tier `{}` does not include it; files kept in {})",
            entry.version, options.tier, entry.folder
        ));
        outcomes.push(PluginOutcome {
            id: id.clone(),
            version: entry.version.clone(),
            digest: entry.digest.clone(),
            action: if result.is_ok() {
                Action::Dropped
            } else {
                Action::Failed
            },
            error: result.err().map(|e| format!("plugin `{id}`: {e}")),
            previous_version: Some(entry.version.clone()),
            pull_ms: 0.0,
            verify_ms: 0.0,
            install_ms: ms(started.elapsed()),
        });
    }
    Ok((
        Report {
            tier: options.tier.clone(),
            catalog_serial: catalog.serial,
            catalog_digest,
            catalog_key: verified.key_id,
            plugins: outcomes,
            catalog_ms,
            pulls_ms,
        },
        lock,
    ))
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Installed => "installed",
        Action::Unchanged => "unchanged",
        Action::Relinked => "linked again (kept from before, no pull)",
        Action::Dropped => "dropped",
        Action::Failed => "failed",
    }
}

/// Puts the previous entry's link back (or removes the link when there
/// was none): after a plugin pulled fine but failed its start.
pub fn revert(plugin_dir: &Path, id: &str, previous: Option<&LockEntry>) -> Result<(), Error> {
    match previous {
        Some(entry) => store::switch(plugin_dir, id, &entry.folder),
        None => store::unlink(plugin_dir, id),
    }
}

/// A plugin pulled ahead, and how long its pull took.
type Pull = (Result<PulledPlugin, Error>, Duration);

/// Whether `entitlement` must be pulled: it names a digest, is not linked
/// at that digest already, and no package folder of it was kept.
fn needs_pull(options: &Options, entitlement: &Entitlement, before: Option<&LockEntry>) -> bool {
    let Some(digest) = &entitlement.digest else {
        return false;
    };
    let folder = store::folder_name(&entitlement.id, &entitlement.version, digest);
    let linked = before.is_some_and(|b| {
        &b.digest == digest
            && store::current(&options.plugin_dir, &entitlement.id).as_deref()
                == Some(b.folder.as_str())
    });
    !linked && !options.plugin_dir.join(folder).is_dir()
}

/// Installs one entitled plugin, from `prefetched` when it was pulled
/// ahead; `Err` carries the failed outcome.
fn provide(
    remote: &Remote,
    options: &Options,
    entitlement: &Entitlement,
    before: Option<&LockEntry>,
    prefetched: Option<Pull>,
    progress: &mut dyn FnMut(&str),
) -> Result<(PluginOutcome, LockEntry), Box<PluginOutcome>> {
    let id = &entitlement.id;
    let mut outcome = PluginOutcome {
        id: id.clone(),
        version: entitlement.version.clone(),
        digest: entitlement.digest.clone().unwrap_or_default(),
        action: Action::Failed,
        error: None,
        previous_version: before.map(|b| b.version.clone()),
        pull_ms: 0.0,
        verify_ms: 0.0,
        install_ms: 0.0,
    };
    let fail = |mut outcome: PluginOutcome, why: String| {
        outcome.error = Some(format!("plugin `{id}` {}: {why}", entitlement.version));
        Box::new(outcome)
    };
    let Some(digest) = entitlement.digest.clone() else {
        return Err(fail(
            outcome,
            "the catalog names no digest; publish the catalog with `cargo xtask publish-catalog`, which pins each digest".to_owned(),
        ));
    };
    let folder = store::folder_name(id, &entitlement.version, &digest);
    let dir = &options.plugin_dir;
    if let Some(entry) = before.filter(|b| b.digest == digest) {
        if store::current(dir, id).as_deref() == Some(entry.folder.as_str()) {
            outcome.action = Action::Unchanged;
            return Ok((outcome, entry.clone()));
        }
    }
    // A package folder kept from an earlier provisioning: verify it from
    // disk (no pull) and link it again.
    let kept = dir.join(&folder);
    if kept.is_dir() {
        let started = Instant::now();
        match verify_folder(&kept, entitlement, &options.trusted_keys) {
            Ok(entry_sha) => {
                outcome.verify_ms = ms(started.elapsed());
                let started = Instant::now();
                if let Err(e) = store::switch(dir, id, &folder) {
                    return Err(fail(outcome, e.to_string()));
                }
                outcome.install_ms = ms(started.elapsed());
                outcome.action = Action::Relinked;
                let entry = LockEntry {
                    version: entitlement.version.clone(),
                    digest,
                    library_sha256: entry_sha,
                    folder,
                };
                return Ok((outcome, entry));
            }
            Err(why) => progress(&format!(
                "{id}: the kept copy in {folder} fails ({why}); pulling again"
            )),
        }
    }
    let (pulled, took) = match prefetched {
        Some(pull) => pull,
        None => {
            // A kept folder that failed its check: pulled on its own.
            let repository = layout::plugin_repository(id);
            progress(&format!(
                "{id}: pulling {} ({repository}@{digest})",
                entitlement.version
            ));
            let started = Instant::now();
            (remote.pull_plugin(&repository, &digest), started.elapsed())
        }
    };
    outcome.pull_ms = ms(took);
    let pulled = match pulled {
        Ok(p) => p,
        Err(e) => return Err(fail(outcome, e.to_string())),
    };
    progress(&format!(
        "{id}: pulled {} KiB in {:.0} ms; verifying",
        (pulled.library.len() + pulled.manifest.len() + pulled.signature.len()) / 1024,
        outcome.pull_ms
    ));
    let started = Instant::now();
    let checked = check_package(
        &pulled.manifest,
        &pulled.library,
        &pulled.signature,
        entitlement,
        &options.trusted_keys,
    );
    outcome.verify_ms = ms(started.elapsed());
    let library_sha256 = match checked {
        Ok(sha) => sha,
        Err(why) => return Err(fail(outcome, why)),
    };
    let started = Instant::now();
    let written = store::write_package(
        dir,
        &folder,
        &pulled.manifest,
        &pulled.library_name,
        &pulled.library,
        &pulled.signature,
    )
    .and_then(|_| store::switch(dir, id, &folder));
    outcome.install_ms = ms(started.elapsed());
    if let Err(e) = written {
        return Err(fail(outcome, e.to_string()));
    }
    outcome.action = Action::Installed;
    Ok((
        outcome,
        LockEntry {
            version: entitlement.version.clone(),
            digest,
            library_sha256,
            folder,
        },
    ))
}

/// The host's checks on a pulled package: the manifest names this plugin
/// and version and its library file, and the signature verifies against
/// the trusted keys binding library, id, version and manifest. Returns the
/// library's SHA-256.
fn check_package(
    manifest_bytes: &[u8],
    library: &[u8],
    signature: &str,
    entitlement: &Entitlement,
    trusted_keys: &[String],
) -> Result<String, String> {
    let text = std::str::from_utf8(manifest_bytes)
        .map_err(|e| format!("plugin.toml is not UTF-8: {e}"))?;
    let manifest = Manifest::parse(text, Path::new("plugin.toml")).map_err(|e| e.to_string())?;
    if manifest.id != entitlement.id || manifest.version.to_string() != entitlement.version {
        return Err(format!(
            "the artifact holds `{}` {}, not what the catalog names",
            manifest.id, manifest.version
        ));
    }
    let expected = Expected::plugin(&entitlement.id, &entitlement.version).manifest(manifest_bytes);
    verify_signature(library, signature, trusted_keys, &expected)
        .map_err(|e| format!("signature check failed: {e}"))?;
    Ok(sha256_hex(library))
}

/// [`check_package`] on a package folder on disk.
fn verify_folder(
    folder: &Path,
    entitlement: &Entitlement,
    trusted_keys: &[String],
) -> Result<String, String> {
    let manifest_bytes = std::fs::read(folder.join("plugin.toml")).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&manifest_bytes).into_owned();
    let manifest = Manifest::parse(&text, Path::new("plugin.toml")).map_err(|e| e.to_string())?;
    let library = std::fs::read(folder.join(&manifest.library)).map_err(|e| e.to_string())?;
    let signature = std::fs::read_to_string(folder.join(format!("{}.minisig", manifest.library)))
        .map_err(|e| e.to_string())?;
    check_package(
        &manifest_bytes,
        &library,
        &signature,
        entitlement,
        trusted_keys,
    )
}
