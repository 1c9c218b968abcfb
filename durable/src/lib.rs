//! The one atomic file writer behind every piece of persisted state: the
//! platform's state files, the daemon's waiting requests and everything
//! `xtask` writes into a plugin store or key directory.
//!
//! A write goes to a hidden temp file in the target's directory, is synced,
//! renamed over the target and the directory is synced, so a crash at any
//! point leaves the previous file or the new one, never a mix: the target
//! is only ever replaced by `rename`, which is atomic on POSIX file systems.
//! Leftover temp files of a killed writer (`.<name>.tmp.<pid>.<n>`) are
//! ignored by readers.
//!
//! [`install`] is the one commit point of a plugin install (a complete
//! package folder, then a symlink renamed over `<plugin dir>/<id>`), which
//! xtask, the daemon's upload and OCI provisioning share.
//!
//! It is its own crate because both `plugin-host` (which does the IO of the
//! platform) and `xtask` (which must not reach into the host) need it, and
//! the pure crate they share does no IO.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.json");
//! plugkit_durable::write_atomic(&path, b"{}\n", 0o600).unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod install;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A step of an atomic write failed; the target is unchanged unless the
/// step was the final directory sync.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
#[non_exhaustive]
pub struct WriteError {
    /// What was being done: `create`, `write`, `sync`, `rename into place`
    /// or `sync directory`.
    pub action: &'static str,
    /// The file or directory the step worked on.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// The points of an atomic write, in order; a crash test stops a writer at each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteStep {
    /// The temp file exists and is empty.
    TempCreated,
    /// Half of the bytes are in the temp file.
    TempHalfWritten,
    /// All bytes are in the temp file, not yet synced.
    TempWritten,
    /// The temp file is synced to disk.
    TempSynced,
    /// The temp file replaced the target; the directory is not yet synced.
    Renamed,
}

impl WriteStep {
    /// Every step, in the order a write passes them.
    pub const ALL: [WriteStep; 5] = [
        WriteStep::TempCreated,
        WriteStep::TempHalfWritten,
        WriteStep::TempWritten,
        WriteStep::TempSynced,
        WriteStep::Renamed,
    ];
}

/// Replaces `path` with `bytes` atomically and durably. A new file gets
/// permission bits `mode` (less the umask); the directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    write_atomic_observed(path, bytes, mode, &mut |_| {})
}

/// [`write_atomic`], calling `observe` after each [`WriteStep`] (crash tests
/// abort the process there).
pub fn write_atomic_observed(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    observe: &mut dyn FnMut(WriteStep),
) -> Result<(), WriteError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)
            .map_err(failed("create", &temp))?;
        observe(WriteStep::TempCreated);
        let half = bytes.len() / 2;
        file.write_all(&bytes[..half])
            .map_err(failed("write", &temp))?;
        observe(WriteStep::TempHalfWritten);
        file.write_all(&bytes[half..])
            .map_err(failed("write", &temp))?;
        observe(WriteStep::TempWritten);
        file.sync_all().map_err(failed("sync", &temp))?;
        observe(WriteStep::TempSynced);
        drop(file);
        fs::rename(&temp, path).map_err(failed("rename into place", path))?;
        observe(WriteStep::Renamed);
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the target is intact either way.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Syncs a directory, so renames and new entries in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed("sync directory", dir))
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.to_owned();
    move |source| WriteError {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old", 0o600).unwrap();
        write_atomic(&path, b"new contents", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_new_file_gets_the_requested_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomic(&path, b"x", 0o600).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn steps_are_observed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        write_atomic_observed(&dir.path().join("f"), b"abcd", 0o600, &mut |s| seen.push(s))
            .unwrap();
        assert_eq!(seen, WriteStep::ALL);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_temp_file_and_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("f");
        let err = write_atomic(&path, b"x", 0o600).unwrap_err();
        assert_eq!(err.action, "create");
        assert!(err.path.starts_with(dir.path().join("missing")), "{err}");
        assert!(err.to_string().starts_with("cannot create "), "{err}");
    }
}
