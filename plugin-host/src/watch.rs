//! The only module that touches `notify`: watches plugin directories and
//! sends one closed event per plugin folder once its files stop changing.
//!
//! Events are debounced per folder, then the folder's files must keep the
//! same size and hash across one more debounce window and its library must
//! pass the ELF check: a library still being copied in (a 4 KiB drip, a
//! truncated `cp`) never gets through. A folder that is a link switched to a
//! complete package (how xtask installs) settles at once (see [`is_link`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};
use sha2::{Digest, Sha256};

use crate::elf;
use crate::error::HostError;

/// A settled change to one installed plugin folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FolderEvent {
    /// The folder holds a manifest and a complete library, changed since last reported.
    Settled(PathBuf),
    /// The folder, or its manifest, is gone.
    Removed(PathBuf),
}

/// Keeps the OS watcher alive; dropping it stops the watch thread.
pub(crate) struct FolderWatcher {
    _watcher: notify::RecommendedWatcher,
    stop: Sender<()>,
}

impl Drop for FolderWatcher {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

/// Watches `dirs` and sends settled folder events to `out`.
pub(crate) fn watch(
    dirs: &[PathBuf],
    debounce: Duration,
    out: Sender<FolderEvent>,
) -> Result<FolderWatcher, HostError> {
    let (raw_tx, raw_rx) = mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            // Reads (ours included: fingerprints, loads) are not changes.
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            for path in event.paths {
                let _ = raw_tx.send(path);
            }
        }
    })
    .map_err(|e| watch_error(dirs.first(), e))?;
    for dir in dirs {
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|e| watch_error(Some(dir), e))?;
    }
    let (stop_tx, stop_rx) = mpsc::channel();
    let roots = dirs.to_vec();
    // Taken before returning, so a change made right after `watch` returns
    // is a change, not the starting point.
    let known = fingerprints(&roots);
    std::thread::Builder::new()
        .name("plugkit-watch".to_owned())
        .spawn(move || settle_loop(&roots, debounce, known, &raw_rx, &stop_rx, &out))
        .map_err(|source| HostError::Io {
            plugin: "<host>".to_owned(),
            action: "starting the watch thread",
            path: PathBuf::new(),
            source,
        })?;
    Ok(FolderWatcher {
        _watcher: watcher,
        stop: stop_tx,
    })
}

fn watch_error(dir: Option<&PathBuf>, e: notify::Error) -> HostError {
    HostError::Io {
        plugin: "<host>".to_owned(),
        action: "watching the plugin directory",
        path: dir.cloned().unwrap_or_default(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// What a folder looked like at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    Gone,
    /// Manifest and library present; hashes of both; whether the library is a complete ELF.
    Present {
        manifest: [u8; 32],
        library: [u8; 32],
        complete: bool,
    },
    /// A manifest that names no readable library yet.
    Incomplete,
}

fn fingerprint(folder: &Path) -> Fingerprint {
    let manifest_path = folder.join("plugin.toml");
    let Ok(manifest) = std::fs::read(&manifest_path) else {
        return if folder.exists() {
            Fingerprint::Incomplete
        } else {
            Fingerprint::Gone
        };
    };
    let library_name = std::str::from_utf8(&manifest)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("library")?.as_str().map(str::to_owned));
    let Some(library_name) = library_name else {
        return Fingerprint::Incomplete;
    };
    let Ok(library) = std::fs::read(folder.join(library_name)) else {
        return Fingerprint::Incomplete;
    };
    Fingerprint::Present {
        manifest: Sha256::digest(&manifest).into(),
        library: Sha256::digest(&library).into(),
        complete: elf::Elf::parse(&library).is_ok(),
    }
}

/// The plugin folder a path belongs to: the first component below a root,
/// skipping hidden entries (stores, staging areas) and plain files.
fn folder_of(roots: &[PathBuf], path: &Path) -> Option<PathBuf> {
    roots.iter().find_map(|root| {
        let rest = path.strip_prefix(root).ok()?;
        let first = rest.components().next()?;
        let name = first.as_os_str().to_string_lossy();
        if name.starts_with('.') {
            return None;
        }
        let folder = root.join(first);
        // A file directly in the root (a registry, a lock) is not a plugin.
        if folder.is_file() {
            return None;
        }
        Some(folder)
    })
}

struct Pending {
    last_event: Instant,
    /// The fingerprint seen at the end of the last quiet window.
    candidate: Option<Fingerprint>,
}

/// The fingerprint of every plugin folder present now.
fn fingerprints(roots: &[PathBuf]) -> BTreeMap<PathBuf, Fingerprint> {
    let mut known = BTreeMap::new();
    for root in roots {
        if let Ok(entries) = std::fs::read_dir(root) {
            for entry in entries.flatten() {
                if let Some(folder) = folder_of(roots, &entry.path()) {
                    let print = fingerprint(&folder);
                    known.insert(folder, print);
                }
            }
        }
    }
    known
}

fn settle_loop(
    roots: &[PathBuf],
    debounce: Duration,
    mut reported: BTreeMap<PathBuf, Fingerprint>,
    raw: &Receiver<PathBuf>,
    stop: &Receiver<()>,
    out: &Sender<FolderEvent>,
) {
    let mut pending: BTreeMap<PathBuf, Pending> = BTreeMap::new();
    loop {
        if stop.try_recv().is_ok() {
            return;
        }
        match raw.recv_timeout(debounce / 2) {
            Ok(path) => {
                if let Some(folder) =
                    folder_of(roots, &path).or_else(|| removed_folder(roots, &path))
                {
                    if is_link(&folder) {
                        // A switched link: its target was complete before
                        // the switch, so there is nothing to wait for.
                        let seen = fingerprint(&folder);
                        if matches!(seen, Fingerprint::Present { complete: true, .. }) {
                            pending.remove(&folder);
                            if reported.get(&folder) != Some(&seen) {
                                reported.insert(folder.clone(), seen);
                                let _ = out.send(FolderEvent::Settled(folder));
                            }
                            continue;
                        }
                    }
                    let entry = pending.entry(folder).or_insert(Pending {
                        last_event: Instant::now(),
                        candidate: None,
                    });
                    entry.last_event = Instant::now();
                    entry.candidate = None;
                }
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let quiet: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_event) >= debounce)
            .map(|(f, _)| f.clone())
            .collect();
        for folder in quiet {
            let seen = fingerprint(&folder);
            let Some(entry) = pending.get_mut(&folder) else {
                continue;
            };
            match (&seen, &entry.candidate) {
                (Fingerprint::Gone, _) => {
                    pending.remove(&folder);
                    if reported.remove(&folder).is_some() {
                        let _ = out.send(FolderEvent::Removed(folder));
                    }
                }
                (Fingerprint::Present { complete: true, .. }, Some(candidate))
                    if *candidate == seen =>
                {
                    pending.remove(&folder);
                    if reported.get(&folder) != Some(&seen) {
                        reported.insert(folder.clone(), seen);
                        let _ = out.send(FolderEvent::Settled(folder));
                    }
                }
                _ => {
                    // Not stable yet (or incomplete): look again one window later.
                    entry.candidate = Some(seen);
                    entry.last_event = now;
                }
            }
        }
    }
}

/// Whether `folder` is a symbolic link. A link is switched by one rename
/// (how `cargo xtask install-plugin` installs: the package folder is complete
/// in `.store` before it is linked, and never rewritten), so a link to a
/// complete package settles at its event, without the quiet and confirming
/// windows a folder whose files are written in place needs (~0.3 s of every
/// `cargo xtask dev` cycle). A link to a folder that is not complete yet
/// (a hand-made link to a copy in progress) takes the windows like any folder.
fn is_link(folder: &Path) -> bool {
    std::fs::symlink_metadata(folder).is_ok_and(|m| m.file_type().is_symlink())
}

/// A deleted folder no longer exists, so `folder_of`'s file check cannot
/// run; map the path by name alone.
fn removed_folder(roots: &[PathBuf], path: &Path) -> Option<PathBuf> {
    roots.iter().find_map(|root| {
        let rest = path.strip_prefix(root).ok()?;
        let first = rest.components().next()?;
        let name = first.as_os_str().to_string_lossy();
        (!name.starts_with('.') && !root.join(first).exists()).then(|| root.join(first))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_plugin_folder() {
        let dir = tempfile::tempdir().expect("temp");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("twilio")).expect("mkdir");
        std::fs::create_dir_all(root.join(".store/twilio-1")).expect("mkdir");
        std::fs::write(root.join("registry.json"), "{}").expect("write");
        let roots = [root.clone()];
        let check = |p: &str, expected: Option<&str>| {
            assert_eq!(
                folder_of(&roots, &root.join(p)),
                expected.map(|e| root.join(e)),
                "{p}"
            );
        };
        check("twilio/libplugkit_twilio.so", Some("twilio"));
        check("twilio", Some("twilio"));
        check(".store/twilio-1/lib.so", None);
        check("registry.json", None);
        assert_eq!(folder_of(&roots, Path::new("/elsewhere/x")), None);
    }

    #[test]
    fn fingerprints_see_incomplete_and_truncated_libraries() {
        let dir = tempfile::tempdir().expect("temp");
        let folder = dir.path().join("p");
        assert_eq!(fingerprint(&folder), Fingerprint::Gone);
        std::fs::create_dir_all(&folder).expect("mkdir");
        assert_eq!(fingerprint(&folder), Fingerprint::Incomplete);
        std::fs::write(folder.join("plugin.toml"), "library = \"lib.so\"\n").expect("write");
        assert_eq!(fingerprint(&folder), Fingerprint::Incomplete);
        std::fs::write(folder.join("lib.so"), b"\x7fELF partial").expect("write");
        assert!(matches!(
            fingerprint(&folder),
            Fingerprint::Present {
                complete: false,
                ..
            }
        ));
    }

    /// How `cargo xtask install-plugin` installs: a complete package folder
    /// in `.store`, then one rename of the `<id>` link. The swap is reported
    /// once, as the link's folder, with the new target's content.
    #[test]
    fn a_link_switched_to_a_complete_package_settles_once() {
        let dir = tempfile::tempdir().expect("temp");
        let root = dir.path().canonicalize().expect("canonical");
        let library = std::fs::read("/bin/true").expect("an ELF file to stand in for a library");
        for (name, version) in [("a", "1.0.0"), ("b", "1.0.1")] {
            let package = root.join(".store").join(name);
            std::fs::create_dir_all(&package).expect("mkdir");
            let manifest = format!("version = \"{version}\"\nlibrary = \"lib.so\"\n");
            std::fs::write(package.join("plugin.toml"), manifest).expect("write");
            std::fs::write(package.join("lib.so"), &library).expect("write");
        }
        let link = root.join("p");
        std::os::unix::fs::symlink(".store/a", &link).expect("link");
        assert!(is_link(&link) && !is_link(&root.join(".store/a")));

        let (tx, rx) = mpsc::channel();
        let _watcher =
            watch(std::slice::from_ref(&root), Duration::from_millis(50), tx).expect("watch");
        let swap = root.join(".link-p");
        std::os::unix::fs::symlink(".store/b", &swap).expect("link");
        std::fs::rename(&swap, &link).expect("rename");
        let event = rx.recv_timeout(Duration::from_secs(10)).expect("an event");
        assert_eq!(event, FolderEvent::Settled(link));
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "reported once"
        );
    }
}
