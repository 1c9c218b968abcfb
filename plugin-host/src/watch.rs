//! The only module that touches `notify`: watches plugin directories and
//! sends one closed event per plugin folder once its files stop changing.
//!
//! Events are debounced per folder, then the folder's files must keep the
//! same size and hash across one more debounce window and its library must
//! pass the ELF check: a library still being copied in (a 4 KiB drip, a
//! truncated `cp`) never gets through.
//!
//! The watched directories themselves may go away: deleted (`rm -rf P`),
//! renamed over, or a symlink swapped to another directory. The watch on
//! the old directory is then dead or watches the wrong thing, so every tick
//! compares each directory's identity (device and inode, through symlinks)
//! with the one watched, and re-arms the watch when it differs. While a
//! directory is gone, [`WatchHealth`] says so (and the host's health
//! reports live reload degraded); when it comes back, its folders are
//! rescanned as if each had changed.
//! A folder that is a link switched to a complete package (how xtask
//! installs) settles at once (see [`is_link`]).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use notify::{RecursiveMode, Watcher as _};
use sha2::{Digest, Sha256};

use crate::error::HostError;
use plugin_package::identity as elf;

/// A settled change to one installed plugin folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FolderEvent {
    /// The folder holds a manifest and a complete library, changed since last reported.
    Settled(PathBuf),
    /// The folder, or its manifest, is gone.
    Removed(PathBuf),
    /// A watched directory is gone (deleted, or moved away); nothing in it
    /// is noticed until it comes back.
    DirectoryGone(PathBuf),
    /// A watched directory exists again (recreated, renamed in, or a
    /// symlink swapped), and the watch is armed on it.
    DirectoryBack(PathBuf),
}

/// Which watched directories are missing right now; shared with the host's
/// health report.
#[derive(Debug, Default)]
pub(crate) struct WatchHealth {
    missing: Mutex<BTreeMap<PathBuf, String>>,
}

impl WatchHealth {
    /// Each missing directory with why it is not watched.
    pub(crate) fn problems(&self) -> Vec<(PathBuf, String)> {
        self.missing
            .lock()
            .iter()
            .map(|(d, why)| (d.clone(), why.clone()))
            .collect()
    }

    fn set(&self, dir: &Path, problem: Option<String>) {
        let mut missing = self.missing.lock();
        match problem {
            Some(why) => {
                missing.insert(dir.to_owned(), why);
            }
            None => {
                missing.remove(dir);
            }
        }
    }
}

/// Keeps the watch thread (which owns the OS watcher) running; dropping it stops it.
pub(crate) struct FolderWatcher {
    stop: Sender<()>,
    health: Arc<WatchHealth>,
}

impl FolderWatcher {
    /// The watched directories' state, for health reports.
    pub(crate) fn health(&self) -> Arc<WatchHealth> {
        self.health.clone()
    }
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
    let mut roots = Vec::new();
    for dir in dirs {
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|e| watch_error(Some(dir), e))?;
        roots.push(Root {
            path: dir.clone(),
            watched: identity(dir),
            suspect: false,
        });
    }
    let (stop_tx, stop_rx) = mpsc::channel();
    let paths = dirs.to_vec();
    let health = Arc::new(WatchHealth::default());
    // Taken before returning, so a change made right after `watch` returns
    // is a change, not the starting point.
    let known = fingerprints(&paths);
    let mut settle = Settle {
        watcher,
        roots,
        paths,
        debounce,
        reported: known,
        pending: BTreeMap::new(),
        health: health.clone(),
    };
    std::thread::Builder::new()
        .name("plugkit-watch".to_owned())
        .spawn(move || settle.run(&raw_rx, &stop_rx, &out))
        .map_err(|source| HostError::Io {
            plugin: "<host>".to_owned(),
            action: "starting the watch thread",
            path: PathBuf::new(),
            source,
        })?;
    Ok(FolderWatcher {
        stop: stop_tx,
        health,
    })
}

/// A directory's identity: device and inode, through symlinks.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

/// One watched directory and the identity of the directory the OS watch is on.
struct Root {
    path: PathBuf,
    /// `None` while the directory is gone and nothing is watched.
    watched: Option<(u64, u64)>,
    /// An event concerned the directory itself (deleted, moved): its watch
    /// may be dead even if a new directory got the same inode number.
    suspect: bool,
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

/// The watch thread's state.
struct Settle {
    watcher: notify::RecommendedWatcher,
    roots: Vec<Root>,
    paths: Vec<PathBuf>,
    debounce: Duration,
    reported: BTreeMap<PathBuf, Fingerprint>,
    pending: BTreeMap<PathBuf, Pending>,
    health: Arc<WatchHealth>,
}

impl Settle {
    fn run(&mut self, raw: &Receiver<PathBuf>, stop: &Receiver<()>, out: &Sender<FolderEvent>) {
        loop {
            if stop.try_recv().is_ok() {
                return;
            }
            match raw.recv_timeout(self.debounce / 2) {
                Ok(path) => {
                    if let Some(root) = self.roots.iter_mut().find(|r| r.path == path) {
                        root.suspect = true;
                    }
                    if let Some(folder) =
                        folder_of(&self.paths, &path).or_else(|| removed_folder(&self.paths, &path))
                    {
                        if is_link(&folder) {
                            // A switched link: its target was complete before
                            // the switch, so there is nothing to wait for.
                            let seen = fingerprint(&folder);
                            if matches!(seen, Fingerprint::Present { complete: true, .. }) {
                                self.pending.remove(&folder);
                                if self.reported.get(&folder) != Some(&seen) {
                                    self.reported.insert(folder.clone(), seen);
                                    let _ = out.send(FolderEvent::Settled(folder));
                                }
                                continue;
                            }
                        }
                        self.touch(folder);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.check_roots(out);
            self.settle(out);
        }
    }

    /// Marks `folder` as changed now.
    fn touch(&mut self, folder: PathBuf) {
        let entry = self.pending.entry(folder).or_insert(Pending {
            last_event: Instant::now(),
            candidate: None,
        });
        entry.last_event = Instant::now();
        entry.candidate = None;
    }

    /// Re-arms the watch of every directory that is not the one watched any
    /// more; a directory that is gone is reported once, and so is its return.
    fn check_roots(&mut self, out: &Sender<FolderEvent>) {
        for i in 0..self.roots.len() {
            let now = identity(&self.roots[i].path);
            let suspect = std::mem::take(&mut self.roots[i].suspect);
            if now == self.roots[i].watched && !suspect {
                continue;
            }
            let path = self.roots[i].path.clone();
            let was_watched = self.roots[i].watched.is_some();
            // The old watch is dead (deleted) or on a directory that is no
            // longer this path (renamed away, symlink swapped): drop it.
            if was_watched {
                let _ = self.watcher.unwatch(&path);
            }
            self.roots[i].watched = None;
            // Everything known in it is looked at again: gone folders are
            // reported removed, present ones settle as usual.
            let known: Vec<PathBuf> = self
                .reported
                .keys()
                .filter(|f| f.starts_with(&path))
                .cloned()
                .collect();
            for folder in known {
                self.touch(folder);
            }
            if now.is_none() {
                if was_watched {
                    tracing::warn!(
                        dir = %path.display(),
                        "the watched plugin directory is gone; live reload resumes when it is created again"
                    );
                    self.health.set(
                        &path,
                        Some(format!(
                            "plugin directory {} is gone; live reload resumes when it is created again",
                            path.display()
                        )),
                    );
                    let _ = out.send(FolderEvent::DirectoryGone(path));
                }
                continue;
            }
            match self.watcher.watch(&path, RecursiveMode::Recursive) {
                Ok(()) => {
                    self.roots[i].watched = now;
                    self.health.set(&path, None);
                    if let Ok(entries) = std::fs::read_dir(&path) {
                        for entry in entries.flatten() {
                            if let Some(folder) = folder_of(&self.paths, &entry.path()) {
                                self.touch(folder);
                            }
                        }
                    }
                    tracing::info!(dir = %path.display(), "watching the plugin directory again");
                    let _ = out.send(FolderEvent::DirectoryBack(path));
                }
                Err(e) => {
                    // Tried again on the next tick; said once per failure kind.
                    let why = format!(
                        "plugin directory {} is back but cannot be watched: {e}; live reload \
                         resumes once it can",
                        path.display()
                    );
                    if self.health.problems().iter().all(|(_, w)| *w != why) {
                        tracing::warn!("{why}");
                    }
                    self.health.set(&path, Some(why));
                }
            }
        }
    }

    /// Reports every folder that has been quiet for a debounce window and
    /// looked the same across one more.
    fn settle(&mut self, out: &Sender<FolderEvent>) {
        let now = Instant::now();
        let debounce = self.debounce;
        let quiet: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_event) >= debounce)
            .map(|(f, _)| f.clone())
            .collect();
        for folder in quiet {
            let seen = fingerprint(&folder);
            let Some(entry) = self.pending.get_mut(&folder) else {
                continue;
            };
            match (&seen, &entry.candidate) {
                (Fingerprint::Gone, _) => {
                    self.pending.remove(&folder);
                    if self.reported.remove(&folder).is_some() {
                        let _ = out.send(FolderEvent::Removed(folder));
                    }
                }
                (Fingerprint::Present { complete: true, .. }, Some(candidate))
                    if *candidate == seen =>
                {
                    self.pending.remove(&folder);
                    if self.reported.get(&folder) != Some(&seen) {
                        self.reported.insert(folder.clone(), seen);
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

/// Live reload's state in [`crate::status::HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LiveReloadHealth {
    /// Healthy while every watched directory is watched; degraded otherwise.
    pub status: plugin_api::HealthStatus,
    /// What is wrong and when it resumes; empty when healthy.
    pub message: String,
}

/// Live reload's health from the running watchers; `None` when none runs.
pub(crate) fn live_reload_health(
    live: &parking_lot::Mutex<Vec<std::sync::Weak<WatchHealth>>>,
) -> Option<LiveReloadHealth> {
    let mut live = live.lock();
    live.retain(|w| w.strong_count() > 0);
    if live.is_empty() {
        return None;
    }
    let problems: Vec<String> = live
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .flat_map(|h| h.problems())
        .map(|(_, why)| why)
        .collect();
    Some(if problems.is_empty() {
        LiveReloadHealth {
            status: plugin_api::HealthStatus::Healthy,
            message: String::new(),
        }
    } else {
        LiveReloadHealth {
            status: plugin_api::HealthStatus::Degraded,
            message: format!("live reload is degraded: {}", problems.join("; ")),
        }
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
