//! Provisioned packages in a plugin directory, through the commit point
//! `cargo xtask install-plugin` and the daemon's upload use too
//! ([`plugkit_durable::install`]): a package folder is written complete
//! under a temp name and renamed into place (synced), then a new `<id>`
//! symlink is renamed over the old one.
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
use std::path::{Path, PathBuf};

use plugkit_durable::install::{self, IfExists, IfFolder, InstallError};

use crate::Error;

/// Provisioned package folders, under the plugin directory.
pub const OCI_STORE: &str = ".oci";

/// The package folder name of plugin `id` at `version` pulled by `digest`.
pub fn folder_name(id: &str, version: &str, digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("{OCI_STORE}/{id}-{version}-{}", &hex[..12.min(hex.len())])
}

fn failed(what: String) -> impl FnOnce(InstallError) -> Error {
    move |e| Error::Io {
        what,
        reason: e.to_string(),
    }
}

/// Writes a package folder `dir/<folder>` (complete or absent): manifest,
/// library and signature, synced, renamed into place
/// ([`plugkit_durable::install`], the commit point xtask and the daemon's
/// upload share). A folder already there holds the same digest and is kept.
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
    let name = folder.trim_start_matches(&format!("{OCI_STORE}/"));
    let staging = store.join(format!(".staging-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(Error::io(format!("creating {}", staging.display())))?;
    let signature_name = format!("{library_name}.minisig");
    let staged = install::stage_files(
        &staging,
        &[
            ("plugin.toml", manifest, 0o644),
            (library_name, library, 0o755),
            (&signature_name, signature.as_bytes(), 0o644),
        ],
    );
    if let Err(e) = staged {
        let _ = fs::remove_dir_all(&staging);
        return Err(failed(format!("writing {}", staging.display()))(e));
    }
    install::commit_folder(&staging, &store, name, IfExists::Keep)
        .map_err(failed(format!("installing into {}", target.display())))
}

/// Points `<dir>/<id>` at `folder` (relative to `dir`): the commit point.
pub fn switch(dir: &Path, id: &str, folder: &str) -> Result<(), Error> {
    install::switch_link(
        dir,
        id,
        &dir.join(folder),
        &dir.join(OCI_STORE),
        IfFolder::Refuse,
    )
    .map(drop)
    .map_err(failed(format!("installing `{id}`")))
}

/// Removes the `<dir>/<id>` link (the package folder stays).
pub fn unlink(dir: &Path, id: &str) -> Result<(), Error> {
    install::unlink(dir, id).map(drop).map_err(failed(format!(
        "removing the link {}",
        dir.join(id).display()
    )))
}

/// Where `<dir>/<id>` points, relative to `dir`, when it is a link.
pub fn current(dir: &Path, id: &str) -> Option<String> {
    fs::read_link(dir.join(id))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}
