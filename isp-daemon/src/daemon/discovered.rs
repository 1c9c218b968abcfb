//! What discovery learned about the plugin directories, kept between
//! requests: the read endpoints (`GET /api/plugins`, `/api/graph`) list the
//! installed plugins from here instead of walking the directories and
//! reading every library in full on each request.
//!
//! Invariants:
//! - An answer is never older than the directories: each use compares a
//!   stamp of the directories (every plugin folder and every file in it:
//!   length, modification time, inode) with the stamp taken before the
//!   cached scan, and scans again when they differ. The stamp costs a few
//!   `readdir`/`stat` calls and reads no file. Test:
//!   `discovered::tests::a_changed_folder_is_scanned_again`.
//! - A library's embedded identity is read once per file version, keyed by
//!   (path, length, modification time, inode), never once per request.
//!   Test: `discovered::tests::an_unchanged_library_is_read_once`.
//! - One scan at a time: concurrent requests that find the cache stale
//!   wait for the one scan instead of each reading every library (which is
//!   how 64 concurrent `GET /api/plugins` grew the daemon to 1.8 GB).
//!   Test: `discovered::tests::concurrent_readers_of_a_stale_cache_share_one_scan`.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use plugin_host::discovery::{discover, DiscoveredPlugin, Discovery};
use plugin_host::package::identity::EmbeddedIdentity;

/// One file's version as far as `stat` tells: length, modification time
/// (ns), inode. An atomic replace changes the inode; a write in place the
/// time and usually the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

impl FileVersion {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// The stamp of the plugin directories: every entry discovery may read.
type Stamp = Vec<(PathBuf, Option<FileVersion>)>;

/// Stamps `dirs`: each directory, each non-hidden folder in it and each
/// file in those folders (following symlinks, as discovery does).
fn stamp(dirs: &[PathBuf]) -> Stamp {
    let mut out = Vec::new();
    let version = |path: &Path| std::fs::metadata(path).ok().map(|m| FileVersion::of(&m));
    for dir in dirs {
        out.push((dir.clone(), version(dir)));
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut folders: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        folders.sort();
        for folder in folders {
            out.push((folder.clone(), version(&folder)));
            let Ok(files) = std::fs::read_dir(&folder) else {
                continue;
            };
            let mut files: Vec<PathBuf> = files.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for file in files {
                let v = version(&file);
                out.push((file, v));
            }
        }
    }
    out
}

/// A scan's result, shared by the requests that read it.
#[derive(Debug)]
pub(crate) struct Found {
    /// The usable plugins, in scan order.
    pub(crate) plugins: Vec<DiscoveredPlugin>,
    /// Every problem, as its message.
    pub(crate) problems: Vec<String>,
}

impl From<Discovery> for Found {
    fn from(discovery: Discovery) -> Self {
        Self {
            plugins: discovery.plugins,
            problems: discovery.problems.iter().map(ToString::to_string).collect(),
        }
    }
}

type IdentityResult = Result<EmbeddedIdentity, String>;

/// The cache: the last scan with its stamp, and the identities read.
#[derive(Debug, Default)]
pub(crate) struct DiscoveryCache {
    last: Mutex<Option<(Stamp, Arc<Found>)>>,
    /// Held while scanning, so concurrent callers wait for one scan.
    scanning: Mutex<()>,
    identities: Mutex<HashMap<PathBuf, (FileVersion, IdentityResult)>>,
    /// Libraries read in full so far (for the tests).
    #[cfg(test)]
    reads: std::sync::atomic::AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DiscoveryCache {
    /// What discovery finds in `dirs` now, scanning only when a folder changed.
    pub(crate) fn current(&self, dirs: &[PathBuf]) -> Arc<Found> {
        let now = stamp(dirs);
        if let Some(found) = self.fresh(&now) {
            return found;
        }
        let _one_scan = lock(&self.scanning);
        // Another caller may have scanned while this one waited.
        let now = stamp(dirs);
        if let Some(found) = self.fresh(&now) {
            return found;
        }
        let found = Arc::new(Found::from(self.scan(dirs)));
        *lock(&self.last) = Some((now, Arc::clone(&found)));
        found
    }

    fn fresh(&self, now: &Stamp) -> Option<Arc<Found>> {
        match &*lock(&self.last) {
            Some((stamp, found)) if stamp == now => Some(Arc::clone(found)),
            _ => None,
        }
    }

    /// A full [`discover`] of `dirs` whose identities come from this cache.
    pub(crate) fn scan(&self, dirs: &[PathBuf]) -> Discovery {
        discover(dirs, &|path| self.identity(path))
    }

    /// The identity `path` embeds, read from the file only when this
    /// version of it was not read before.
    pub(crate) fn identity(&self, path: &Path) -> IdentityResult {
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        let version = FileVersion::of(&meta);
        if let Some((seen, identity)) = lock(&self.identities).get(path) {
            if *seen == version {
                return identity.clone();
            }
        }
        #[cfg(test)]
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let identity = super::identity_of(path);
        let mut identities = lock(&self.identities);
        // Forget files that are gone, so the map holds installed libraries only.
        identities.retain(|p, _| p.exists());
        identities.insert(path.to_owned(), (version, identity.clone()));
        identity
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    /// A plugin folder with a manifest and a library that is not a plugin
    /// (discovery reports it as unreadable, which is enough to count reads).
    fn install(dir: &Path, id: &str, library: &[u8]) {
        let folder = dir.join(id);
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(
            folder.join("plugin.toml"),
            format!(
                "id = \"{id}\"\nname = \"{id}\"\nversion = \"1.0.0\"\ndescription = \"t\"\n\
                 category = \"payment\"\nlibrary = \"lib{id}.so\"\napi = \"^0.2\"\n"
            ),
        )
        .expect("manifest");
        std::fs::write(folder.join(format!("lib{id}.so")), library).expect("library");
    }

    #[test]
    fn an_unchanged_library_is_read_once() {
        let dir = tempfile::tempdir().expect("dir");
        install(dir.path(), "alpha", b"not an ELF file");
        let cache = DiscoveryCache::default();
        let dirs = vec![dir.path().to_owned()];
        let first = cache.current(&dirs);
        for _ in 0..10 {
            let again = cache.current(&dirs);
            assert!(
                Arc::ptr_eq(&first, &again),
                "an unchanged folder is not scanned again"
            );
        }
        assert_eq!(cache.reads.load(Ordering::Relaxed), 1);
        assert_eq!(first.problems.len(), 1, "{:?}", first.problems);
        assert!(first.problems[0].contains("alpha"), "{:?}", first.problems);
    }

    #[test]
    fn concurrent_readers_of_a_stale_cache_share_one_scan() {
        let dir = tempfile::tempdir().expect("dir");
        for id in ["alpha", "beta", "gamma"] {
            install(dir.path(), id, b"not an ELF file");
        }
        let cache = DiscoveryCache::default();
        let dirs = vec![dir.path().to_owned()];
        let barrier = std::sync::Barrier::new(16);
        std::thread::scope(|scope| {
            for _ in 0..16 {
                scope.spawn(|| {
                    barrier.wait();
                    cache.current(&dirs)
                });
            }
        });
        // One scan read each library once, however many asked at once.
        assert_eq!(cache.reads.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_changed_folder_is_scanned_again() {
        let dir = tempfile::tempdir().expect("dir");
        install(dir.path(), "alpha", b"not an ELF file");
        let cache = DiscoveryCache::default();
        let dirs = vec![dir.path().to_owned()];
        let first = cache.current(&dirs);
        assert_eq!(first.problems.len(), 1);

        // A new folder: scanned, and only its library is read.
        install(dir.path(), "beta", b"not an ELF file either");
        let second = cache.current(&dirs);
        assert_eq!(second.problems.len(), 2, "{:?}", second.problems);
        assert_eq!(cache.reads.load(Ordering::Relaxed), 2);

        // A library replaced with another of the same length: read again.
        let library = dir.path().join("alpha").join("libalpha.so");
        let replacement = dir.path().join("alpha").join(".new");
        std::fs::write(&replacement, b"not an ELF file").expect("write");
        std::fs::rename(&replacement, &library).expect("rename");
        let third = cache.current(&dirs);
        assert!(!Arc::ptr_eq(&second, &third));
        assert_eq!(cache.reads.load(Ordering::Relaxed), 3);

        // A removed folder disappears from the answer.
        std::fs::remove_dir_all(dir.path().join("beta")).expect("remove");
        let fourth = cache.current(&dirs);
        assert_eq!(fourth.problems.len(), 1, "{:?}", fourth.problems);
    }
}
