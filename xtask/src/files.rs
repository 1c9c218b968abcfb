//! File operations that survive a crash: write beside then rename, fsync the
//! file and its directory; and the test-only crash hook.

use std::fs::{self, File};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Writes `bytes` to `path` so that a crash leaves either the old file or
/// the new one (the one writer, `plugkit_durable`), creating the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o666)
}

/// [`write_atomic`] for a file only its owner may read (a secret key).
pub(crate) fn write_atomic_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent(path)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    plugkit_durable::write_atomic(path, bytes, mode)
        .with_context(|| format!("writing {}", path.display()))
}

/// Copies `from` to `to` and fsyncs the copy.
pub(crate) fn copy_synced(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    File::open(to)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", to.display()))
}

/// Fsyncs a directory, so renames and new entries in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    plugkit_durable::sync_dir(dir).map_err(anyhow::Error::from)
}

fn parent(path: &Path) -> Result<&Path> {
    path.parent()
        .with_context(|| format!("{} has no parent directory", path.display()))
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Test hook: `PLUGKIT_XTASK_CRASH_AT=<step>` aborts the process at that
/// step, as a power cut or `kill -9` would, so tests can check that every
/// step leaves a consistent plugin directory.
pub(crate) fn crash_point(step: &str) {
    if std::env::var("PLUGKIT_XTASK_CRASH_AT").is_ok_and(|s| s == step) {
        eprintln!("xtask: PLUGKIT_XTASK_CRASH_AT={step}: aborting here");
        std::process::abort();
    }
}

/// Now as RFC 3339 UTC, e.g. `2026-04-30T12:00:00Z`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `t` as RFC 3339 UTC, whole seconds.
fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        for (secs, expected) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_210_096, "2024-02-29T12:34:56Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            assert_eq!(rfc3339(t), expected, "{secs}");
        }
    }
}
