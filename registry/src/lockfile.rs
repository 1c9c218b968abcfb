//! `plugkit.lock`: what provisioning installed into a plugin directory, as
//! pretty JSON: id → version, OCI manifest digest, library SHA-256 and the
//! package folder. It holds no times, so daemons that provisioned the same
//! catalog for the same tier hold byte-identical lock files. Written
//! atomically (temp, fsync, rename, fsync dir: `plugkit-durable`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The lock file's name in the plugin directory.
pub const LOCK_FILE: &str = "plugkit.lock";

/// `plugkit.lock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Format version (1).
    pub format: u32,
    /// The tier provisioned.
    pub tier: String,
    /// The catalog serial provisioned from.
    pub catalog_serial: u64,
    /// The catalog manifest digest.
    pub catalog_digest: String,
    /// Installed plugins by id.
    pub plugins: BTreeMap<String, LockEntry>,
}

/// One pinned plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// Its version.
    pub version: String,
    /// The OCI manifest digest it was pulled by.
    pub digest: String,
    /// SHA-256 of the library (lowercase hex).
    pub library_sha256: String,
    /// Its package folder, relative to the plugin directory (`.oci/…`).
    pub folder: String,
}

impl Lock {
    /// Reads `path`; a missing file is an empty lock.
    pub fn read(path: &Path) -> Result<Lock, Error> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Io {
                what: format!("reading {}", path.display()),
                reason: format!(
                    "not a plugkit.lock ({e}); delete it and provision again to rebuild it"
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()))(e)),
        }
    }

    /// The bytes written: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Writes `path` atomically and durably.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        plugkit_durable::write_atomic(path, &self.to_bytes(), 0o644).map_err(|e| Error::Io {
            what: format!("writing {}", path.display()),
            reason: e.to_string(),
        })
    }
}
