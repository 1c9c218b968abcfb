//! The plugin directory and how it changes atomically.
//!
//! ```text
//! <plugin dir>/
//!   <id> -> .store/<id>-<version>-<sha256 prefix>   symlink: what the host discovers
//!   .store/<id>-<version>-<sha>[.<n>]/                 package folders, never rewritten
//!       plugin.toml  lib<name>.so  lib<name>.so.minisig  SHA256SUMS
//!   .staging/                                          packages being assembled
//!   registry.json                                      what is installed, for tools
//!   .lock                                              one xtask at a time
//! ```
//!
//! Discovery skips dot-folders, so only the `<id>` links are plugins. A
//! package is assembled and verified in `.staging`, renamed into `.store`
//! (complete or absent), and installed by renaming a new symlink over
//! `<id>`: that rename is the commit point (`plugkit_durable::install`, the
//! one implementation the daemon's upload and OCI provisioning use too). `registry.json` is written right
//! after (temp, fsync, rename, fsync dir); if a crash falls between the two,
//! the next xtask command rebuilds the registry from the links
//! ([`PluginDir::open`] reconciles), and removes leftovers in `.staging` and
//! unreferenced `.store` folders.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use plugkit_durable::install::{self, IfExists, IfFolder, InstallError};
use serde::{Deserialize, Serialize};

use crate::files;
use crate::package::Package;

const STORE: &str = ".store";
const STAGING: &str = ".staging";
const REGISTRY: &str = "registry.json";

/// `registry.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Registry {
    /// Format version of this file.
    pub(crate) format: u32,
    /// Installed plugins by id.
    pub(crate) plugins: BTreeMap<String, RegistryEntry>,
}

/// One installed plugin in `registry.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RegistryEntry {
    pub(crate) id: String,
    pub(crate) version: String,
    /// SHA-256 of the library.
    pub(crate) sha256: String,
    /// The key that signed it, when the signature verified at install.
    pub(crate) key_id: Option<String>,
    pub(crate) installed_at: String,
    /// The package folder in `.store`.
    pub(crate) path: PathBuf,
}

/// An installed plugin, as the links say.
pub(crate) struct Installed {
    pub(crate) id: String,
    /// `<plugin dir>/<id>`.
    pub(crate) link: PathBuf,
    /// The package folder it points to.
    pub(crate) target: PathBuf,
}

/// An open, locked plugin directory.
pub(crate) struct PluginDir {
    pub(crate) root: PathBuf,
    _lock: File,
}

impl PluginDir {
    /// Creates (if needed), locks and reconciles the plugin directory.
    pub(crate) fn open(root: &Path) -> Result<PluginDir> {
        for dir in [root.to_owned(), root.join(STORE), root.join(STAGING)] {
            fs::create_dir_all(&dir).with_context(|| {
                format!(
                    "creating plugin directory {}; pass --plugin-dir or set PLUGKIT_PLUGIN_DIR",
                    dir.display()
                )
            })?;
        }
        let lock_path = root.join(".lock");
        let lock = File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            eprintln!("xtask: waiting for another xtask using {}", root.display());
            lock.lock()
                .with_context(|| format!("locking {}", lock_path.display()))?;
        }
        let dir = PluginDir {
            root: fs::canonicalize(root).unwrap_or_else(|_| root.to_owned()),
            _lock: lock,
        };
        dir.reconcile()?;
        Ok(dir)
    }

    pub(crate) fn link(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn registry_path(&self) -> PathBuf {
        self.root.join(REGISTRY)
    }

    /// Reads `registry.json` (empty when absent).
    pub(crate) fn registry(&self) -> Result<Registry> {
        let path = self.registry_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a valid registry; it is rebuilt from the installed plugins if you delete it",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry {
                format: 1,
                ..Registry::default()
            }),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes `registry.json` atomically.
    pub(crate) fn save_registry(&self, registry: &Registry) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(registry)?;
        bytes.push(b'\n');
        files::write_atomic(&self.registry_path(), &bytes)
    }

    /// Installed plugins: the `<id>` symlinks into `.store`, sorted by id.
    pub(crate) fn installed(&self) -> Result<Vec<Installed>> {
        let mut found = Vec::new();
        let entries =
            fs::read_dir(&self.root).with_context(|| format!("listing {}", self.root.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type()?.is_symlink() {
                continue;
            }
            let link = entry.path();
            let Ok(target) = fs::read_link(&link) else {
                continue;
            };
            let target = self.root.join(target);
            if target.starts_with(self.root.join(STORE)) {
                found.push(Installed {
                    id: name,
                    link,
                    target,
                });
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// The installed plugin `id`, if any.
    pub(crate) fn get(&self, id: &str) -> Result<Option<Installed>> {
        Ok(self.installed()?.into_iter().find(|i| i.id == id))
    }

    /// A fresh, empty folder in `.staging` for assembling a package.
    pub(crate) fn staging(&self, id: &str) -> Result<PathBuf> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = self
            .root
            .join(STAGING)
            .join(format!("{id}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Moves a verified package from `.staging` into `.store` (one rename, so
    /// the store folder is complete or absent) and returns its store path.
    pub(crate) fn store(&self, staged: &Path, package: &Package) -> Result<PathBuf> {
        files::sync_dir(staged)?;
        let name = format!(
            "{}-{}-{}",
            package.manifest.id,
            package.manifest.version,
            &files::sha256_hex(&package.library)[..12]
        );
        // A new folder per install: the linked one may be damaged (that is
        // why it is being reinstalled), and a folder in use is never rewritten.
        install::commit_folder(staged, &self.root.join(STORE), &name, IfExists::NewName)
            .with_context(|| format!("moving {} into {STORE}", staged.display()))
    }

    /// Points `<id>` at `target` by renaming a new symlink over it: the
    /// commit point of an install ([`plugkit_durable::install`], shared with
    /// the daemon's upload and OCI provisioning).
    pub(crate) fn switch(&self, id: &str, target: &Path) -> Result<()> {
        let tmp = self.root.join(STAGING);
        match install::switch_link(&self.root, id, target, &tmp, IfFolder::Refuse) {
            Ok(_) => Ok(()),
            Err(InstallError::NotALink { link }) => bail!(
                "{} exists and is not managed by xtask (not a symlink into {STORE}); \
                 move it out of the plugin directory and run the command again",
                link.display()
            ),
            Err(e) => Err(e).with_context(|| format!("installing `{id}`")),
        }
    }

    /// Removes `<id>`: the commit point of a removal.
    pub(crate) fn unlink(&self, id: &str) -> Result<()> {
        if !install::unlink(&self.root, id)? {
            bail!("{} is not installed", self.link(id).display());
        }
        Ok(())
    }

    /// Brings the registry in line with the links and removes leftovers of
    /// interrupted commands.
    pub(crate) fn reconcile(&self) -> Result<()> {
        let installed = self.installed()?;
        let mut registry = self.registry().unwrap_or_else(|e| {
            eprintln!("xtask: {e:#}; rebuilding it");
            Registry::default()
        });
        registry.format = 1;
        let before = serde_json::to_value(&registry.plugins)?;
        registry.plugins.retain(|id, entry| {
            installed
                .iter()
                .any(|i| &i.id == id && i.target == entry.path)
        });
        for plugin in &installed {
            if registry.plugins.contains_key(&plugin.id) {
                continue;
            }
            // Installed but not recorded: a crash fell between link and registry.
            if let Ok(package) = Package::open(&plugin.target) {
                let key_id = crate::keys::trusted_keys(&[])
                    .ok()
                    .and_then(|keys| package.verify(&keys).ok())
                    .map(|v| v.key_id);
                registry.plugins.insert(
                    plugin.id.clone(),
                    RegistryEntry {
                        id: plugin.id.clone(),
                        version: package.manifest.version.to_string(),
                        sha256: files::sha256_hex(&package.library),
                        key_id,
                        installed_at: files::now_rfc3339(),
                        path: plugin.target.clone(),
                    },
                );
            }
        }
        if serde_json::to_value(&registry.plugins)? != before || !self.registry_path().exists() {
            self.save_registry(&registry)?;
        }
        self.collect_garbage(&installed)
    }

    /// Deletes staging leftovers and store folders no link points to.
    fn collect_garbage(&self, installed: &[Installed]) -> Result<()> {
        for dir in [STAGING, STORE] {
            let dir = self.root.join(dir);
            for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
                let path = entry?.path();
                if installed.iter().any(|i| i.target == path) {
                    continue;
                }
                let removed = if path.is_dir() && !path.is_symlink() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.with_context(|| format!("removing leftover {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Re-runs the cleanup after a command changed the links.
    pub(crate) fn tidy(&self) -> Result<()> {
        let installed = self.installed()?;
        self.collect_garbage(&installed)
    }
}
