//! Test support for OCI provisioning: an operator key made up for the run,
//! plugins signed with it and published to a real registry
//! (`plugkit_testkit::registry::Registry`) with `plugkit-registry`'s own
//! publish code, and signed entitlement catalogs.

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, SystemTime};

use plugin_host::package::catalog::{expires_in, Catalog};
use plugin_host::package::manifest::Manifest;
use plugin_host::package::signature::SignedClaims;
use plugkit_registry::publish::{publish_catalog, publish_plugin, SignedPackage};
use plugkit_registry::Remote;

/// A minisign key pair standing for the operator (signs plugins and catalogs).
pub struct Operator {
    public: minisign::PublicKey,
    secret: minisign::SecretKey,
}

impl Default for Operator {
    fn default() -> Self {
        Self::new()
    }
}

impl Operator {
    /// A new key pair.
    pub fn new() -> Self {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().expect("key pair");
        Self {
            public: pair.pk,
            secret: pair.sk,
        }
    }

    /// The public key's base64 line (what a trust config lists).
    pub fn public_line(&self) -> String {
        self.public.to_base64()
    }

    fn sign(&self, bytes: &[u8], comment: &str) -> String {
        minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(bytes),
            Some(comment),
            Some("plugkit test operator"),
        )
        .expect("sign")
        .into_string()
    }

    /// A plugkit signature of `library` bound to `manifest_bytes`.
    pub fn sign_plugin(&self, manifest_bytes: &[u8], library: &[u8]) -> String {
        let manifest = Manifest::parse(
            std::str::from_utf8(manifest_bytes).expect("utf-8"),
            Path::new("plugin.toml"),
        )
        .expect("manifest");
        let claims = SignedClaims::new(&manifest.id, &manifest.version.to_string(), library)
            .with_manifest(manifest_bytes);
        self.sign(library, &claims.trusted_comment())
    }

    /// A catalog signature.
    pub fn sign_catalog(&self, document: &str) -> String {
        let catalog = Catalog::parse(document).expect("catalog");
        self.sign(
            document.as_bytes(),
            &Catalog::trusted_comment(catalog.serial, document.as_bytes()),
        )
    }

    /// Signs and publishes `library` with `manifest_text`; returns the digest.
    pub fn publish(&self, remote: &Remote, manifest_text: &str, library: &[u8]) -> String {
        let manifest = Manifest::parse(manifest_text, Path::new("plugin.toml")).expect("manifest");
        let signature = self.sign_plugin(manifest_text.as_bytes(), library);
        publish_plugin(
            remote,
            &SignedPackage {
                manifest: &manifest,
                manifest_bytes: manifest_text.as_bytes(),
                library,
                signature: &signature,
            },
            None,
        )
        .expect("publish plugin")
    }

    /// Signs and publishes a catalog; returns its digest.
    pub fn publish_catalog(&self, remote: &Remote, document: &str) -> String {
        let signature = self.sign_catalog(document);
        publish_catalog(remote, document.as_bytes(), Some(&signature)).expect("publish catalog")
    }
}

/// The manifest of fixture plugin `reloadable` at `version`.
pub fn reloadable_manifest(version: &str) -> String {
    format!(
        "id = \"reloadable\"\nname = \"reloadable\"\nversion = \"{version}\"\n\
         description = \"reload fixture\"\nauthors = [\"plugkit tests\"]\nlicense = \"MIT\"\n\
         category = \"custom\"\napi = \"^0.2\"\nlibrary = \"libreloadable.so\"\n"
    )
}

/// One tier of a catalog: its name and its plugins as (id, version, digest).
pub type Tier<'a> = (&'a str, &'a [(&'a str, &'a str, &'a str)]);

/// A catalog document: `serial`, expiring in a day, with `tiers` (tier →
/// [(id, version, digest)]).
pub fn catalog(serial: u64, tiers: &[Tier<'_>]) -> String {
    catalog_expiring(
        serial,
        expires_in(SystemTime::now(), Duration::from_secs(86_400)),
        tiers,
    )
}

/// A catalog document with an explicit expiry.
pub fn catalog_expiring(serial: u64, expires: String, tiers: &[Tier<'_>]) -> String {
    let mut text = format!("serial = {serial}\nexpires = \"{expires}\"\n");
    for (tier, plugins) in tiers {
        if plugins.is_empty() {
            text.push_str(&format!("\n[tiers]\n{tier} = []\n"));
        }
        for (id, version, digest) in plugins.iter() {
            text.push_str(&format!(
                "\n[[tiers.{tier}]]\nid = \"{id}\"\nversion = \"{version}\"\ndigest = \"{digest}\"\n"
            ));
        }
    }
    text
}
