//! Discovery: finds installed plugins (`<dir>/<folder>/plugin.toml` + library) and checks each folder.
//!
//! This is the one place of the host that walks plugin directories. It reads
//! manifests and asks the caller for the identity a library embeds, but never
//! loads a library: that is the loader's job, and only for plugins that pass here.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use semver::Version;

use plugin_package::manifest::{Manifest, ManifestError, MANIFEST_FILE_NAME};

pub use plugin_package::identity::EmbeddedIdentity;

/// An installed plugin whose folder is complete and consistent.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DiscoveredPlugin {
    /// The plugin's folder.
    pub folder: PathBuf,
    /// Its parsed manifest.
    pub manifest: Manifest,
    /// Full path of its library file, which exists and matches the manifest.
    pub library: PathBuf,
}

/// The outcome of a scan: usable plugins and everything wrong on the way.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Discovery {
    /// Plugins that may be resolved and loaded, in scan order.
    pub plugins: Vec<DiscoveredPlugin>,
    /// Every problem found, in scan order; none of them stopped the scan.
    pub problems: Vec<DiscoveryProblem>,
}

/// Something wrong with one plugin directory or folder. The plugin concerned is
/// left out of [`Discovery::plugins`]; the others are not affected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryProblem {
    /// A plugin directory or a plugin folder cannot be listed or read.
    #[error(
        "cannot read {}: {source}; {}. Plugins in it are not started.",
        path.display(),
        plugin_package::read::read_hint(source)
    )]
    UnreadableDirectory {
        /// The directory.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: io::Error,
    },
    /// A folder in a plugin directory has no `plugin.toml`.
    #[error(
        "{} has no plugin.toml, so it is not an installed plugin; add its manifest or remove \
         the folder.",
        folder.display()
    )]
    MissingManifest {
        /// The folder.
        folder: PathBuf,
    },
    /// A manifest cannot be read, parsed or accepted.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest names a library file that is not in the folder.
    #[error(
        "plugin `{id}` ({}) names its library `{}`, but that file does not exist; reinstall \
         the plugin or correct `library` in its manifest. It is not started.",
        manifest.display(),
        library.display()
    )]
    MissingLibrary {
        /// Plugin id from the manifest.
        id: String,
        /// The manifest file.
        manifest: PathBuf,
        /// The expected library path.
        library: PathBuf,
    },
    /// The library exists but its embedded identity cannot be read.
    #[error(
        "cannot read the identity embedded in {}, the library of plugin `{id}`: {reason}; the \
         file may be damaged or not a plugkit plugin, so rebuild or reinstall it. It is not started.",
        library.display()
    )]
    UnreadableLibrary {
        /// Plugin id from the manifest.
        id: String,
        /// The library file.
        library: PathBuf,
        /// What the identity reader said.
        reason: String,
    },
    /// The library was built as a different plugin or version than the manifest describes.
    #[error(
        "library {} was built as `{}` {}, but its manifest {} describes `{}` {}; the folder \
         mixes files from different plugins or releases, so reinstall the plugin. It is not started.",
        library.display(),
        embedded.id,
        embedded.version,
        manifest.display(),
        manifest_id,
        manifest_version
    )]
    IdentityMismatch {
        /// The manifest file.
        manifest: PathBuf,
        /// Plugin id in the manifest.
        manifest_id: String,
        /// Plugin version in the manifest.
        manifest_version: Version,
        /// The library file.
        library: PathBuf,
        /// What the library says it is.
        embedded: EmbeddedIdentity,
    },
    /// Two folders hold manifests with the same plugin id.
    #[error(
        "two installed plugins claim the id `{id}`: {} and {}; the first one found is used \
         (directories in the order given, then folders by path) and the second is ignored. \
         Remove one of them or give it another id.",
        kept.display(),
        ignored.display()
    )]
    DuplicateId {
        /// The shared id.
        id: String,
        /// Manifest of the copy that is used.
        kept: PathBuf,
        /// Manifest of the copy that is ignored.
        ignored: PathBuf,
    },
}

/// Scans `dirs` in order for plugin folders, reporting every problem without stopping.
///
/// `read_identity` returns what a library file says about itself; it is only
/// called for libraries that exist. Folders whose name starts with `.` and
/// plain files in `dirs` are skipped. When two folders claim the same id the
/// first found wins, so earlier directories take precedence, like `PATH`.
pub fn discover(
    dirs: &[PathBuf],
    read_identity: &dyn Fn(&Path) -> Result<EmbeddedIdentity, String>,
) -> Discovery {
    let mut discovery = Discovery::default();
    // Maps each id to the manifest path that claimed it first.
    let mut claimed: HashMap<String, PathBuf> = HashMap::new();
    for dir in dirs {
        let folders = match plugin_folders(dir) {
            Ok(folders) => folders,
            Err(source) => {
                discovery
                    .problems
                    .push(DiscoveryProblem::UnreadableDirectory {
                        path: dir.clone(),
                        source,
                    });
                continue;
            }
        };
        for folder in folders {
            match inspect_folder(&folder, &mut claimed, read_identity) {
                Ok(plugin) => discovery.plugins.push(plugin),
                Err(problem) => discovery.problems.push(*problem),
            }
        }
    }
    discovery
}

/// Sub-folders of `dir` that may hold a plugin, sorted by path.
fn plugin_folders(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        // `Path::is_dir` follows symlinks, so a linked-in plugin folder counts.
        if !hidden && entry.path().is_dir() {
            folders.push(entry.path());
        }
    }
    folders.sort();
    Ok(folders)
}

/// Boxed because a problem is much larger than a plugin, and rare.
fn fail<T>(problem: DiscoveryProblem) -> Result<T, Box<DiscoveryProblem>> {
    Err(Box::new(problem))
}

fn inspect_folder(
    folder: &Path,
    claimed: &mut HashMap<String, PathBuf>,
    read_identity: &dyn Fn(&Path) -> Result<EmbeddedIdentity, String>,
) -> Result<DiscoveredPlugin, Box<DiscoveryProblem>> {
    let manifest = read_manifest(folder)?;
    let manifest_path = manifest.path.clone();

    // Claim the id before checking the library, so precedence does not depend
    // on whether the first copy happens to be healthy.
    match claimed.entry(manifest.id.clone()) {
        Entry::Occupied(first) => {
            return fail(DiscoveryProblem::DuplicateId {
                id: manifest.id,
                kept: first.get().clone(),
                ignored: manifest_path,
            });
        }
        Entry::Vacant(slot) => {
            slot.insert(manifest_path.clone());
        }
    }
    check_library(folder, manifest, read_identity)
}

/// Checks one installed plugin folder as start-up does: a valid manifest, its
/// library present, and the library built as the plugin and version the
/// manifest describes. Every path that brings a version into service goes
/// through this: start-up ([`discover`]), the watcher and the admin reload
/// ([`crate::Host::reload_installed`]).
pub fn check_installed(folder: &Path) -> Result<DiscoveredPlugin, Box<DiscoveryProblem>> {
    let manifest = read_manifest(folder)?;
    check_library(folder, manifest, &read_identity)
}

impl DiscoveryProblem {
    /// The plugin a problem is about and its folder, when the manifest could be read.
    pub fn plugin(&self) -> Option<(&str, PathBuf)> {
        let folder_of = |manifest: &Path| manifest.parent().map(Path::to_owned).unwrap_or_default();
        match self {
            Self::MissingLibrary { id, manifest, .. } => Some((id, folder_of(manifest))),
            Self::UnreadableLibrary { id, library, .. } => Some((id, folder_of(library))),
            Self::IdentityMismatch {
                manifest_id,
                manifest,
                ..
            } => Some((manifest_id, folder_of(manifest))),
            _ => None,
        }
    }
}

fn read_manifest(folder: &Path) -> Result<Manifest, Box<DiscoveryProblem>> {
    let manifest_path = folder.join(MANIFEST_FILE_NAME);
    match fs::symlink_metadata(&manifest_path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return fail(DiscoveryProblem::MissingManifest {
                folder: folder.to_owned(),
            });
        }
        Err(source) => {
            return fail(DiscoveryProblem::UnreadableDirectory {
                path: folder.to_owned(),
                source,
            });
        }
        Ok(_) => {}
    }
    Ok(Manifest::load(&manifest_path).map_err(DiscoveryProblem::from)?)
}

/// The library half of [`check_installed`].
fn check_library(
    folder: &Path,
    manifest: Manifest,
    read_identity: &dyn Fn(&Path) -> Result<EmbeddedIdentity, String>,
) -> Result<DiscoveredPlugin, Box<DiscoveryProblem>> {
    let manifest_path = manifest.path.clone();
    let library = folder.join(&manifest.library);
    if !library.is_file() {
        return fail(DiscoveryProblem::MissingLibrary {
            id: manifest.id,
            manifest: manifest_path,
            library,
        });
    }
    let embedded =
        read_identity(&library).map_err(|reason| DiscoveryProblem::UnreadableLibrary {
            id: manifest.id.clone(),
            library: library.clone(),
            reason,
        })?;
    if embedded.id != manifest.id || embedded.version != manifest.version {
        return fail(DiscoveryProblem::IdentityMismatch {
            manifest: manifest_path,
            manifest_id: manifest.id,
            manifest_version: manifest.version,
            library,
            embedded,
        });
    }
    Ok(DiscoveredPlugin {
        folder: folder.to_owned(),
        manifest,
        library,
    })
}

/// Reads a library's embedded identity without loading it.
pub(crate) fn read_identity(path: &Path) -> Result<EmbeddedIdentity, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let plugin_api::sdk::Identity { id, version, .. } =
        plugin_package::identity::embedded_identity(&bytes).map_err(|e| e.to_string())?;
    let version = semver::Version::parse(&version)
        .map_err(|e| format!("embedded version `{version}` is not semver: {e}"))?;
    Ok(EmbeddedIdentity { id, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin folder to create: `(dir index, folder name, files)`.
    type Layout<'a> = &'a [(usize, &'a str, &'a [(&'a str, &'a str)])];

    fn manifest(id: &str, version: &str) -> String {
        format!(
            "id = \"{id}\"\nname = \"{id}\"\nversion = \"{version}\"\napi = \"^0.2\"\n\
             library = \"lib{id}.so\"\n"
        )
    }

    /// Fake identity reader: a library file's content is `id version`, or `broken`.
    fn read_identity(path: &Path) -> Result<EmbeddedIdentity, String> {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        let (id, version) = text
            .split_once(' ')
            .ok_or_else(|| "no plugkit identity section".to_owned())?;
        Ok(EmbeddedIdentity {
            id: id.to_owned(),
            version: Version::parse(version).map_err(|e| e.to_string())?,
        })
    }

    /// Lays out `dir_count` plugin directories, scans them, and compares the
    /// plugins found and the problems (with the temp root shown as `$ROOT`) with `expected`.
    fn check(dir_count: usize, layout: Layout<'_>, expected: &str) {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..dir_count)
            .map(|i| root.path().join(format!("dir{i}")))
            .collect();
        for &(dir, folder, files) in layout {
            let folder = dirs[dir].join(folder);
            fs::create_dir_all(&folder).unwrap();
            for &(name, content) in files {
                if content == "<dir>" {
                    fs::create_dir_all(folder.join(name)).unwrap();
                } else {
                    fs::write(folder.join(name), content).unwrap();
                }
            }
        }
        let discovery = discover(&dirs, &read_identity);
        let mut actual = String::new();
        for plugin in &discovery.plugins {
            actual.push_str(&format!(
                "plugin {} {} at {}\n",
                plugin.manifest.id,
                plugin.manifest.version,
                plugin.library.display()
            ));
        }
        for problem in &discovery.problems {
            actual.push_str(&format!("problem: {problem}\n"));
        }
        let actual = actual.replace(&root.path().display().to_string(), "$ROOT");
        assert_eq!(actual.trim_end(), expected.trim_end());
    }

    #[test]
    fn healthy_plugins_are_found_in_path_order() {
        check(
            1,
            &[
                (
                    0,
                    "zeta",
                    &[
                        ("plugin.toml", &manifest("zeta", "1.0.0")),
                        ("libzeta.so", "zeta 1.0.0"),
                    ],
                ),
                (
                    0,
                    "alpha",
                    &[
                        ("plugin.toml", &manifest("alpha", "2.1.0")),
                        ("libalpha.so", "alpha 2.1.0"),
                    ],
                ),
            ],
            "plugin alpha 2.1.0 at $ROOT/dir0/alpha/libalpha.so\n\
             plugin zeta 1.0.0 at $ROOT/dir0/zeta/libzeta.so",
        );
    }

    #[test]
    fn hidden_folders_and_plain_files_are_skipped() {
        check(
            1,
            &[
                (0, ".cache", &[("junk", "x")]),
                (
                    0,
                    "sms",
                    &[
                        ("plugin.toml", &manifest("sms", "1.0.0")),
                        ("libsms.so", "sms 1.0.0"),
                    ],
                ),
            ],
            "plugin sms 1.0.0 at $ROOT/dir0/sms/libsms.so",
        );
    }

    #[test]
    fn duplicate_id_names_both_paths_and_keeps_the_first_directory() {
        check(
            2,
            &[
                (
                    1,
                    "aaa",
                    &[
                        ("plugin.toml", &manifest("sms", "2.0.0")),
                        ("libsms.so", "sms 2.0.0"),
                    ],
                ),
                (
                    0,
                    "zzz",
                    &[
                        ("plugin.toml", &manifest("sms", "1.0.0")),
                        ("libsms.so", "sms 1.0.0"),
                    ],
                ),
            ],
            "plugin sms 1.0.0 at $ROOT/dir0/zzz/libsms.so\n\
             problem: two installed plugins claim the id `sms`: $ROOT/dir0/zzz/plugin.toml and \
             $ROOT/dir1/aaa/plugin.toml; the first one found is used (directories in the order \
             given, then folders by path) and the second is ignored. Remove one of them or give \
             it another id.",
        );
    }

    #[test]
    fn missing_library_is_reported_and_the_scan_goes_on() {
        check(
            1,
            &[
                (0, "a-sms", &[("plugin.toml", &manifest("sms", "1.0.0"))]),
                (
                    0,
                    "b-pay",
                    &[
                        ("plugin.toml", &manifest("pay", "1.0.0")),
                        ("libpay.so", "pay 1.0.0"),
                    ],
                ),
            ],
            "plugin pay 1.0.0 at $ROOT/dir0/b-pay/libpay.so\n\
             problem: plugin `sms` ($ROOT/dir0/a-sms/plugin.toml) names its library \
             `$ROOT/dir0/a-sms/libsms.so`, but that file does not exist; reinstall the plugin or \
             correct `library` in its manifest. It is not started.",
        );
    }

    #[test]
    fn library_identity_disagreeing_with_manifest_shows_both() {
        check(
            1,
            &[
                (
                    0,
                    "sms",
                    &[
                        ("plugin.toml", &manifest("sms", "1.0.0")),
                        ("libsms.so", "sms 0.9.0"),
                    ],
                ),
                (
                    0,
                    "pay",
                    &[
                        ("plugin.toml", &manifest("pay", "1.0.0")),
                        ("libpay.so", "stripe 1.0.0"),
                    ],
                ),
            ],
            "problem: library $ROOT/dir0/pay/libpay.so was built as `stripe` 1.0.0, but its \
             manifest $ROOT/dir0/pay/plugin.toml describes `pay` 1.0.0; the folder mixes files \
             from different plugins or releases, so reinstall the plugin. It is not started.\n\
             problem: library $ROOT/dir0/sms/libsms.so was built as `sms` 0.9.0, but its \
             manifest $ROOT/dir0/sms/plugin.toml describes `sms` 1.0.0; the folder mixes files \
             from different plugins or releases, so reinstall the plugin. It is not started.",
        );
    }

    #[test]
    fn unreadable_library_identity_is_reported() {
        check(
            1,
            &[(
                0,
                "sms",
                &[
                    ("plugin.toml", &manifest("sms", "1.0.0")),
                    ("libsms.so", "broken"),
                ],
            )],
            "problem: cannot read the identity embedded in $ROOT/dir0/sms/libsms.so, the library \
             of plugin `sms`: no plugkit identity section; the file may be damaged or not a \
             plugkit plugin, so rebuild or reinstall it. It is not started.",
        );
    }

    #[test]
    fn bad_and_unreadable_manifests_are_reported_with_their_errors() {
        check(
            1,
            &[
                (0, "bad", &[("plugin.toml", "id = \"bad\"\ncolour = 1\n")]),
                (0, "dir-manifest", &[("plugin.toml", "<dir>")]),
                (0, "empty", &[]),
            ],
            "problem: $ROOT/dir0/bad/plugin.toml:2:1: unknown field `colour`, expected one of \
             `id`, `name`, `version`, `description`, `authors`, `license`, `category`, `api`, \
             `library`, `dependencies`, `conflicts`, `provides`, `requires`, `permissions`, \
             `hooks`, `config`, `required_tier`, `isolation`; fix this entry of the plugin manifest.\n\
             problem: cannot read plugin manifest $ROOT/dir0/dir-manifest/plugin.toml: it is a \
             directory, not a file; point at the file, not its folder.\n\
             problem: $ROOT/dir0/empty has no plugin.toml, so it is not an installed plugin; add \
             its manifest or remove the folder.",
        );
    }

    #[test]
    fn unreadable_plugin_directory_does_not_stop_the_others() {
        // dir0 is never created; dir1 is.
        check(
            2,
            &[(
                1,
                "sms",
                &[
                    ("plugin.toml", &manifest("sms", "1.0.0")),
                    ("libsms.so", "sms 1.0.0"),
                ],
            )],
            "plugin sms 1.0.0 at $ROOT/dir1/sms/libsms.so\n\
             problem: cannot read $ROOT/dir0: No such file or directory (os error 2); create it \
             or fix the path. Plugins in it are not started.",
        );
    }
}
