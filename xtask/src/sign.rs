//! `cargo xtask sign <package>` and `cargo xtask verify <package>`.

use std::path::Path;

use anyhow::{bail, Result};

use crate::keys;
use crate::package::Package;

/// Signs the package folder with the development key.
pub(crate) fn sign(dir: &Path) -> Result<()> {
    let package = Package::open(dir)?;
    package.check_identity()?;
    let key = keys::load_or_create()?;
    let claims = package.sign(&key)?;
    println!(
        "signed {} with key {}: {}\n  wrote {}",
        package.library_path.display(),
        key.key_id,
        claims,
        package.signature_path().display()
    );
    Ok(())
}

/// Verifies the package folder as the host would, against the trusted keys.
pub(crate) fn verify(dir: &Path, trusted_keys: &[String]) -> Result<()> {
    let package = Package::open(dir)?;
    let trusted = keys::trusted_keys(trusted_keys)?;
    let verified = package.verify(&trusted)?;
    let checksums = package.checksum_problems();
    if !checksums.is_empty() {
        bail!(
            "plugin `{}`: {}; re-sign the package with `cargo xtask sign {}`",
            package.manifest.id,
            checksums.join("; "),
            dir.display()
        );
    }
    println!(
        "ok: {} {} in {} is signed by trusted key {} (sha256 {})",
        package.manifest.id,
        package.manifest.version,
        dir.display(),
        verified.key_id,
        verified.claims.sha256
    );
    Ok(())
}
