//! The development signing key (`cargo xtask keygen`), signing, and the set
//! of public keys xtask trusts when it verifies.
//!
//! The key pair lives outside the repository (see [`crate::locations`]):
//! `plugkit-dev.key` (minisign secret key, unencrypted, mode 0600) and
//! `plugkit-dev.pub`. It is generated on first use. Its public key is also
//! written to `<config dir>/trusted-keys/<KEY ID>.pub`, where a daemon's
//! configuration can point its `require` policy.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use plugin_package::signature::SignedClaims;

use crate::files;
use crate::locations;

const SECRET_FILE: &str = "plugkit-dev.key";
const PUBLIC_FILE: &str = "plugkit-dev.pub";

/// A loaded signing key.
pub(crate) struct SigningKey {
    public: minisign::PublicKey,
    secret: minisign::SecretKey,
    /// The base64 line of the public key.
    pub(crate) public_line: String,
    /// As minisign prints it.
    pub(crate) key_id: String,
}

impl SigningKey {
    /// Signs `library` with `claims` as the trusted comment; returns the `.minisig` text.
    pub(crate) fn sign(&self, library: &[u8], claims: &SignedClaims) -> Result<String> {
        let signature = minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(library),
            Some(&claims.trusted_comment()),
            Some(&format!("plugkit signature by key {}", self.key_id)),
        )
        .map_err(|e| anyhow!("signing failed: {e}"))?;
        Ok(signature.into_string())
    }
}

impl SigningKey {
    /// Signs `bytes` with `comment` as the trusted comment (a catalog); returns the `.minisig` text.
    pub(crate) fn sign_text(&self, bytes: &[u8], comment: &str) -> Result<String> {
        let signature = minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(bytes),
            Some(comment),
            Some(&format!("plugkit catalog signature by key {}", self.key_id)),
        )
        .map_err(|e| anyhow!("signing failed: {e}"))?;
        Ok(signature.into_string())
    }
}

/// `cargo xtask keygen`.
pub(crate) fn keygen(force: bool) -> Result<()> {
    let dir = locations::key_dir()?;
    if dir.join(SECRET_FILE).exists() && !force {
        let key = load(&dir)?;
        println!(
            "a signing key already exists in {}: key {}\npublic key: {}\n\
             (pass --force to replace it; packages signed with the old key then stop verifying)",
            dir.display(),
            key.key_id,
            key.public_line
        );
        return Ok(());
    }
    let key = generate(&dir)?;
    announce(&dir, &key)?;
    Ok(())
}

/// The development key, generated (and announced) on first use.
pub(crate) fn load_or_create() -> Result<SigningKey> {
    let dir = locations::key_dir()?;
    if dir.join(SECRET_FILE).exists() {
        let key = load(&dir)?;
        // A fresh checkout has no trusted-keys folder yet, although the key
        // (kept outside the repository) already exists: trust it here too.
        let trusted = trusted_key_file(&key.key_id);
        if !trusted.exists() {
            write_trusted(&trusted, &key)?;
            eprintln!(
                "xtask: trusting development key {} for this checkout's daemon: {}",
                key.key_id,
                trusted.display()
            );
        }
        return Ok(key);
    }
    eprintln!(
        "xtask: no signing key in {}; generating a development key",
        dir.display()
    );
    let key = generate(&dir)?;
    announce(&dir, &key)?;
    Ok(key)
}

fn generate(dir: &Path) -> Result<SigningKey> {
    fs::create_dir_all(dir).with_context(|| format!("creating key directory {}", dir.display()))?;
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| anyhow!("generating a key pair: {e}"))?;
    let secret_box = pair
        .sk
        .to_box(Some("plugkit development signing key (keep private)"))
        .map_err(|e| anyhow!("encoding the secret key: {e}"))?;
    let public_box = pair
        .pk
        .to_box()
        .map_err(|e| anyhow!("encoding the public key: {e}"))?;
    let secret_path = dir.join(SECRET_FILE);
    // Written beside and renamed, with 0600 from the start.
    files::write_atomic_private(&secret_path, secret_box.to_string().as_bytes())?;
    files::write_atomic(&dir.join(PUBLIC_FILE), public_box.to_string().as_bytes())?;
    load(dir)
}

fn load(dir: &Path) -> Result<SigningKey> {
    let secret_path = dir.join(SECRET_FILE);
    let text = fs::read_to_string(&secret_path)
        .with_context(|| format!("reading signing key {}", secret_path.display()))?;
    let secret = minisign::SecretKeyBox::from_string(&text)
        .and_then(|b| b.into_unencrypted_secret_key())
        .map_err(|e| {
            anyhow!(
                "{} is not an unencrypted minisign secret key ({e}); \
                 move it away and run `cargo xtask keygen`",
                secret_path.display()
            )
        })?;
    let public = minisign::PublicKey::from_secret_key(&secret).map_err(|e| {
        anyhow!(
            "deriving the public key from {}: {e}",
            secret_path.display()
        )
    })?;
    let public_line = public.to_base64();
    let key_id = plugin_package::minisig::public_key_id(&public_line)?;
    Ok(SigningKey {
        public,
        secret,
        public_line,
        key_id,
    })
}

/// Prints the new public key and writes it where the daemon's configuration finds it.
fn announce(dir: &Path, key: &SigningKey) -> Result<()> {
    let trusted = trusted_key_file(&key.key_id);
    write_trusted(&trusted, key)?;
    eprintln!(
        "xtask: new signing key {id}\n  secret key: {secret} (keep it private)\n  public key: {public}\n  \
         trusted by the daemon through {trusted}\n  \
         (a host trusts it with TrustPolicy::Require {{ trusted_keys: vec![\"{public}\".into()] }})",
        id = key.key_id,
        secret = dir.join(SECRET_FILE).display(),
        public = key.public_line,
        trusted = trusted.display(),
    );
    Ok(())
}

fn write_trusted(path: &Path, key: &SigningKey) -> Result<()> {
    files::write_atomic(
        path,
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            key.key_id, key.public_line
        )
        .as_bytes(),
    )
}

fn trusted_key_file(key_id: &str) -> PathBuf {
    locations::config_dir()
        .join("trusted-keys")
        .join(format!("{key_id}.pub"))
}

/// The public keys xtask verifies against: `extra` (a `.pub` file or a
/// base64 key each) when given; otherwise the development key and every
/// `<config dir>/trusted-keys/*.pub`.
pub(crate) fn trusted_keys(extra: &[String]) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for key in extra {
        let path = Path::new(key);
        if path.exists() {
            keys.push(
                fs::read_to_string(path)
                    .with_context(|| format!("reading trusted key {}", path.display()))?,
            );
        } else {
            keys.push(key.clone());
        }
    }
    if !keys.is_empty() {
        return Ok(keys);
    }
    let dir = locations::key_dir()?;
    if dir.join(SECRET_FILE).exists() {
        keys.push(load(&dir)?.public_line);
    }
    let trusted_dir = locations::config_dir().join("trusted-keys");
    if let Ok(entries) = fs::read_dir(&trusted_dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        paths.sort();
        for path in paths {
            keys.push(
                fs::read_to_string(&path)
                    .with_context(|| format!("reading trusted key {}", path.display()))?,
            );
        }
    }
    if keys.is_empty() {
        bail!(
            "no trusted public keys: there is no development key in {} and no key in {}; \
             run `cargo xtask keygen` or pass --trusted-key",
            dir.display(),
            trusted_dir.display()
        );
    }
    Ok(keys)
}
