//! A plugin package: one folder holding `plugin.toml`, the library named by
//! its `library` field, `<library>.minisig` (the signature the host checks)
//! and `SHA256SUMS` (`<hex>  <file>` for the manifest and the library).
//!
//! Verification goes through `plugin_package::signature::verify_signature`, the function
//! the host runs before it loads a library.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use plugin_package::manifest::Manifest;
use plugin_package::signature::{Expected, SignedClaims, VerifiedSignature};

use crate::files;
use crate::keys::SigningKey;

/// The checksum file of a package.
pub(crate) const CHECKSUMS: &str = "SHA256SUMS";
/// The manifest's file name.
pub(crate) const MANIFEST: &str = "plugin.toml";

/// A package read from disk.
pub(crate) struct Package {
    pub(crate) dir: PathBuf,
    pub(crate) manifest: Manifest,
    pub(crate) manifest_bytes: Vec<u8>,
    pub(crate) library_path: PathBuf,
    pub(crate) library: Vec<u8>,
}

impl Package {
    /// Reads the manifest and the library of the package in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Package> {
        let manifest_path = dir.join(MANIFEST);
        let manifest_bytes = fs::read(&manifest_path).with_context(|| {
            format!(
                "{} is not a plugin package: cannot read {MANIFEST}",
                dir.display()
            )
        })?;
        let text = String::from_utf8_lossy(&manifest_bytes);
        let manifest = Manifest::parse(&text, &manifest_path).map_err(|e| anyhow!("{e}"))?;
        let library_path = dir.join(&manifest.library);
        let library = fs::read(&library_path).with_context(|| {
            format!(
                "plugin `{}`: cannot read its library {}; rebuild and reinstall the plugin",
                manifest.id,
                library_path.display()
            )
        })?;
        Ok(Package {
            dir: dir.to_owned(),
            manifest,
            manifest_bytes,
            library_path,
            library,
        })
    }

    /// Where the library's signature is.
    pub(crate) fn signature_path(&self) -> PathBuf {
        signature_path(&self.library_path)
    }

    /// The claims a signature of this package must carry.
    pub(crate) fn claims(&self) -> SignedClaims {
        SignedClaims::new(
            &self.manifest.id,
            &self.manifest.version.to_string(),
            &self.library,
        )
        .with_manifest(&self.manifest_bytes)
    }

    /// Refuses to sign a library that was built as another plugin or version
    /// than the manifest says (the library embeds its id and version).
    pub(crate) fn check_identity(&self) -> Result<()> {
        let embedded =
            plugin_package::signature::embedded_identity(&self.library).map_err(|reason| {
                anyhow!(
                    "plugin `{}`: {} is not a loadable plugkit library ({reason}); rebuild it",
                    self.manifest.id,
                    self.library_path.display()
                )
            })?;
        if embedded.id != self.manifest.id || embedded.version != self.manifest.version {
            bail!(
                "plugin `{}`: {} says `{}` {} but the library was built as `{}` {}; \
                 make `id`/`version` in plugin.toml agree with the plugin's ID and Cargo.toml version \
                 (if they already agree, cargo reused a stale build of another version: \
                 run `cargo clean -p <package>` and try again)",
                self.manifest.id,
                self.manifest.path.display(),
                self.manifest.id,
                self.manifest.version,
                embedded.id,
                embedded.version
            );
        }
        Ok(())
    }

    /// Signs the package with `key`: writes `<library>.minisig` and `SHA256SUMS`.
    pub(crate) fn sign(&self, key: &SigningKey) -> Result<SignedClaims> {
        let claims = self.claims();
        let signature = key.sign(&self.library, &claims)?;
        files::write_atomic(&self.signature_path(), signature.as_bytes())?;
        files::write_atomic(&self.dir.join(CHECKSUMS), self.checksums().as_bytes())?;
        Ok(claims)
    }

    fn checksums(&self) -> String {
        format!(
            "{}  {MANIFEST}\n{}  {}\n",
            files::sha256_hex(&self.manifest_bytes),
            files::sha256_hex(&self.library),
            self.manifest.library
        )
    }

    /// Problems with `SHA256SUMS`: missing, or a file whose hash differs.
    pub(crate) fn checksum_problems(&self) -> Vec<String> {
        let path = self.dir.join(CHECKSUMS);
        let Ok(text) = fs::read_to_string(&path) else {
            return vec![format!(
                "{} is missing; sign the package with `cargo xtask sign {}`",
                path.display(),
                self.dir.display()
            )];
        };
        let mut problems = Vec::new();
        for (name, bytes) in [
            (MANIFEST, &self.manifest_bytes),
            (self.manifest.library.as_str(), &self.library),
        ] {
            let listed = text.lines().find_map(|line| {
                let (hash, file) = line.split_once("  ")?;
                (file == name).then_some(hash)
            });
            match listed {
                None => problems.push(format!("{} does not list {name}", path.display())),
                Some(hash) if hash != files::sha256_hex(bytes) => problems.push(format!(
                    "{} changed since the package was made: its sha256 is not the one in {}",
                    self.dir.join(name).display(),
                    path.display()
                )),
                Some(_) => {}
            }
        }
        problems
    }

    /// Verifies the package's signature against `trusted_keys` with the host's code.
    pub(crate) fn verify(&self, trusted_keys: &[String]) -> Result<VerifiedSignature> {
        let signature_path = self.signature_path();
        let signature = match fs::read_to_string(&signature_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "plugin `{}`: {} is not signed (no {}); sign it with `cargo xtask sign {}`",
                    self.manifest.id,
                    self.library_path.display(),
                    signature_path.display(),
                    self.dir.display()
                )
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", signature_path.display()))
            }
        };
        let version = self.manifest.version.to_string();
        let expected = Expected::plugin(&self.manifest.id, &version).manifest(&self.manifest_bytes);
        plugin_package::signature::verify_signature(
            &self.library,
            &signature,
            trusted_keys,
            &expected,
        )
        .map_err(|e| {
            anyhow!(
                "plugin `{}`: {} fails verification: {e}; rebuild and reinstall it with \
                     `cargo xtask install-plugin`, or trust its signer with --trusted-key",
                self.manifest.id,
                self.library_path.display()
            )
        })
    }

    /// The signed claims of the package, read without checking who signed them.
    pub(crate) fn signed_version(&self) -> Option<semver::Version> {
        let text = fs::read_to_string(self.signature_path()).ok()?;
        let comment = text
            .lines()
            .find_map(|l| l.strip_prefix("trusted comment: "))?;
        let claims = SignedClaims::parse(comment).ok()?;
        semver::Version::parse(&claims.version).ok()
    }
}

/// `<library>.minisig`.
pub(crate) fn signature_path(library: &Path) -> PathBuf {
    let mut path = library.as_os_str().to_owned();
    path.push(".minisig");
    PathBuf::from(path)
}

/// Copies `manifest` and `library` into the new package folder `dir` (fsynced).
pub(crate) fn assemble(
    dir: &Path,
    manifest: &Path,
    library: &Path,
    library_name: &str,
) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    files::copy_synced(manifest, &dir.join(MANIFEST))?;
    files::copy_synced(library, &dir.join(library_name))?;
    Ok(())
}
