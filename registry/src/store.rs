//! Provisioned packages in a plugin directory, with the same commit point
//! as `cargo xtask install-plugin` (see `xtask/src/store.rs`): a package
//! folder is written complete under a temp name and renamed into place
//! (fsynced), then a new `<id>` symlink is renamed over the old one.
//!
//! ```text
//! <plugin dir>/
//!   <id> -> .oci/<id>-<version>-<digest hex, 12>      what the host discovers
//!   .oci/<id>-<version>-<digest 12>/                   never rewritten, kept when a tier drops it
//!       plugin.toml  lib<name>.so  lib<name>.so.minisig
//!   .oci/.staging-*                                    packages being written
//!   plugkit.lock
//! ```
//!
//! Discovery skips dot-folders, so only the links are plugins; xtask's
//! garbage collection only touches `.store` and `.staging`, so packages a
//! tier dropped stay for an instant upgrade back.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::Error;

/// Provisioned package folders, under the plugin directory.
pub const OCI_STORE: &str = ".oci";

/// The package folder name of plugin `id` at `version` pulled by `digest`.
pub fn folder_name(id: &str, version: &str, digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("{OCI_STORE}/{id}-{version}-{}", &hex[..12.min(hex.len())])
}

/// Writes a package folder `dir/<folder>` (complete or absent): manifest,
/// library and signature, fsynced, renamed into place.
pub fn write_package(
    dir: &Path,
    folder: &str,
    manifest: &[u8],
    library_name: &str,
    library: &[u8],
    signature: &str,
) -> Result<PathBuf, Error> {
    let target = dir.join(folder);
    if target.is_dir() {
        return Ok(target);
    }
    let store = dir.join(OCI_STORE);
    fs::create_dir_all(&store).map_err(Error::io(format!("creating {}", store.display())))?;
    let staging = store.join(format!(
        ".staging-{}-{}",
        std::process::id(),
        folder.trim_start_matches(&format!("{OCI_STORE}/"))
    ));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(Error::io(format!("creating {}", staging.display())))?;
    let write = |name: &str, bytes: &[u8], mode: u32| {
        plugkit_durable::write_atomic(&staging.join(name), bytes, mode).map_err(|e| Error::Io {
            what: format!("writing {}/{name}", staging.display()),
            reason: e.to_string(),
        })
    };
    write("plugin.toml", manifest, 0o644)?;
    write(library_name, library, 0o755)?;
    write(
        &format!("{library_name}.minisig"),
        signature.as_bytes(),
        0o644,
    )?;
    fs::rename(&staging, &target)
        .map_err(Error::io(format!("renaming into {}", target.display())))?;
    plugkit_durable::sync_dir(&store).map_err(|e| Error::Io {
        what: format!("syncing {}", store.display()),
        reason: e.to_string(),
    })?;
    Ok(target)
}

/// Points `<dir>/<id>` at `folder` (relative to `dir`): the commit point.
pub fn switch(dir: &Path, id: &str, folder: &str) -> Result<(), Error> {
    let link = dir.join(id);
    if let Ok(meta) = fs::symlink_metadata(&link) {
        if !meta.file_type().is_symlink() {
            return Err(Error::Io {
                what: format!("installing `{id}`"),
                reason: format!(
                    "{} exists and is not a symlink (installed by hand?); move it out of the plugin directory",
                    link.display()
                ),
            });
        }
    }
    let tmp = dir
        .join(OCI_STORE)
        .join(format!(".link-{id}-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(folder, &tmp).map_err(Error::io(format!("creating symlink {}", tmp.display())))?;
    fs::rename(&tmp, &link).map_err(Error::io(format!("replacing {}", link.display())))?;
    plugkit_durable::sync_dir(dir).map_err(|e| Error::Io {
        what: format!("syncing {}", dir.display()),
        reason: e.to_string(),
    })
}

/// Removes the `<dir>/<id>` link (the package folder stays).
pub fn unlink(dir: &Path, id: &str) -> Result<(), Error> {
    let link = dir.join(id);
    match fs::remove_file(&link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("removing {}", link.display()))(e)),
    }
    plugkit_durable::sync_dir(dir).map_err(|e| Error::Io {
        what: format!("syncing {}", dir.display()),
        reason: e.to_string(),
    })
}

/// Where `<dir>/<id>` points, relative to `dir`, when it is a link.
pub fn current(dir: &Path, id: &str) -> Option<String> {
    fs::read_link(dir.join(id))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}
