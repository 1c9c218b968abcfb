//! Signature policy: a plugin library reaches `dlopen` only if it is exactly
//! what a trusted key signed (minisign format, ed25519), unless the host runs
//! with `allow-unsigned` for development.
//!
//! The check runs on the same bytes that are then written to the private
//! copy and loaded, so there is no gap between check and load.
//!
//! A plugkit signature is an ordinary minisign signature of the library whose
//! *trusted comment* (signed too) carries what the library is:
//! `plugkit id=<id> version=<version> sha256=<library hex> [manifest-sha256=<hex>]`.
//! So a validly signed library cannot be relabelled as another plugin or
//! version, and a signed older release is recognisable as a downgrade.
//!
//! [`verify_signature`] is the one implementation of the check; the host's
//! load path and `cargo xtask` (install, verify, validate) both call it.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::identity as elf;
use crate::identity::EmbeddedIdentity;
pub use crate::minisig::SignatureError;
use crate::minisig::{public_key_id, public_key_line, signature_layout};

/// Whether unsigned plugins may load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustPolicy {
    /// Only libraries signed by one of these minisign public keys load.
    Require {
        /// Trusted public keys: the base64 line of a minisign public key, or
        /// the whole text of a `.pub` file.
        trusted_keys: Vec<String>,
    },
    /// Development: unsigned or badly signed libraries load with a loud warning.
    AllowUnsigned,
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// Signed by a trusted key.
    Verified {
        /// The signing key's id (hex).
        key_id: String,
    },
    /// Not verified; allowed only under [`TrustPolicy::AllowUnsigned`].
    Unverified {
        /// Why it is not verified.
        reason: String,
    },
}

/// What a plugkit signature's trusted comment says about the library.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedClaims {
    /// The plugin id.
    pub id: String,
    /// The plugin version.
    pub version: String,
    /// SHA-256 of the library, lowercase hex.
    pub sha256: String,
    /// SHA-256 of the `plugin.toml` packaged with it, lowercase hex, when signed.
    pub manifest_sha256: Option<String>,
}

const COMMENT_TAG: &str = "plugkit";

impl SignedClaims {
    /// The claims for `library`, built as plugin `id` at `version`.
    pub fn new(id: &str, version: &str, library: &[u8]) -> Self {
        Self {
            id: id.to_owned(),
            version: version.to_owned(),
            sha256: sha256_hex(library),
            manifest_sha256: None,
        }
    }

    /// The same claims, also binding the package's `plugin.toml` bytes.
    pub fn with_manifest(mut self, manifest: &[u8]) -> Self {
        self.manifest_sha256 = Some(sha256_hex(manifest));
        self
    }

    /// The trusted comment to sign.
    pub fn trusted_comment(&self) -> String {
        let mut comment = format!(
            "{COMMENT_TAG} id={} version={} sha256={}",
            self.id, self.version, self.sha256
        );
        if let Some(manifest) = &self.manifest_sha256 {
            comment.push_str(&format!(" manifest-sha256={manifest}"));
        }
        comment
    }

    /// Parses a trusted comment written by [`SignedClaims::trusted_comment`].
    /// Unknown `key=value` fields are ignored so the format can grow.
    pub fn parse(comment: &str) -> Result<Self, SignatureError> {
        let not_plugkit = || SignatureError::NotPlugkit {
            comment: comment.chars().take(120).collect(),
        };
        let mut words = comment.split_whitespace();
        if words.next() != Some(COMMENT_TAG) {
            return Err(not_plugkit());
        }
        let (mut id, mut version, mut sha256, mut manifest_sha256) = (None, None, None, None);
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(not_plugkit());
            };
            let slot = match key {
                "id" => &mut id,
                "version" => &mut version,
                "sha256" => &mut sha256,
                "manifest-sha256" => &mut manifest_sha256,
                _ => continue,
            };
            *slot = Some(value.to_owned());
        }
        match (id, version, sha256) {
            (Some(id), Some(version), Some(sha256)) => Ok(Self {
                id,
                version,
                sha256,
                manifest_sha256,
            }),
            _ => Err(not_plugkit()),
        }
    }
}

/// What a signed library is expected to be, from its manifest or the caller.
/// Fields left `None` are not checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// The plugin id.
    pub id: Option<&'a str>,
    /// The plugin version.
    pub version: Option<&'a str>,
    /// The `plugin.toml` bytes packaged with the library.
    pub manifest: Option<&'a [u8]>,
}

impl<'a> Expected<'a> {
    /// Expects plugin `id` at `version`.
    pub fn plugin(id: &'a str, version: &'a str) -> Self {
        Self {
            id: Some(id),
            version: Some(version),
            manifest: None,
        }
    }

    /// Also expects the signature to bind these manifest bytes.
    pub fn manifest(mut self, manifest: &'a [u8]) -> Self {
        self.manifest = Some(manifest);
        self
    }
}

/// A signature that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSignature {
    /// The id of the trusted key that signed, as minisign prints it (16 hex digits).
    pub key_id: String,
    /// What the signature says the library is.
    pub claims: SignedClaims,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Verifies `library` against the minisign `signature` text, requiring one
/// of `trusted_keys` to have signed it, and checks the signed claims against
/// the bytes, against `expected`, and against the identity the library embeds.
///
/// This is the whole check the host runs before staging a library under
/// [`TrustPolicy::Require`]; tools call it to verify a package the same way.
pub fn verify_signature(
    library: &[u8],
    signature: &str,
    trusted_keys: &[String],
    expected: &Expected<'_>,
) -> Result<VerifiedSignature, SignatureError> {
    let layout = signature_layout(signature)?;
    let decoded = minisign_verify::Signature::decode(signature.trim_start_matches('\u{feff}'))
        .map_err(|e| SignatureError::Malformed {
            reason: e.to_string(),
        })?;
    let key_id = layout.key_id;
    if trusted_keys.is_empty() {
        return Err(SignatureError::NoTrustedKeys);
    }
    let mut signer = None;
    for key in trusted_keys {
        let line = public_key_line(key);
        let public = minisign_verify::PublicKey::from_base64(line).map_err(|e| {
            SignatureError::InvalidTrustedKey {
                key: line.chars().take(16).collect(),
                reason: e.to_string(),
            }
        })?;
        if public_key_id(line)? == key_id {
            signer = Some(public);
        }
    }
    let signer = signer.ok_or_else(|| SignatureError::UntrustedKey {
        key_id: key_id.clone(),
    })?;
    if layout.legacy {
        // Refused whether or not it verifies: a legacy signature hashes the
        // whole library with ed25519's own SHA-512 pass, a mode minisign
        // keeps only for old files.
        return Err(SignatureError::LegacyFormat { key_id });
    }
    let actual = sha256_hex(library);
    if signer.verify(library, &decoded, false).is_err() {
        // Which part changed: the library, if it is not the one the (not yet
        // verified) comment names; else the signature file itself.
        let names_this_library = SignedClaims::parse(decoded.trusted_comment())
            .is_ok_and(|claims| claims.sha256.eq_ignore_ascii_case(&actual));
        return Err(if names_this_library {
            SignatureError::SignatureAltered {
                key_id,
                sha256: actual,
            }
        } else {
            SignatureError::Tampered { key_id }
        });
    }
    let claims = SignedClaims::parse(decoded.trusted_comment())?;
    if !claims.sha256.eq_ignore_ascii_case(&actual) {
        return Err(SignatureError::HashMismatch {
            signed: claims.sha256,
            actual,
        });
    }
    let relabelled = |field, signed: &str, origin, found: &str| SignatureError::Relabelled {
        field,
        signed: signed.to_owned(),
        origin,
        found: found.to_owned(),
    };
    if let Some(id) = expected.id.filter(|id| *id != claims.id) {
        return Err(relabelled("id", &claims.id, "manifest", id));
    }
    if let Some(version) = expected.version.filter(|v| *v != claims.version) {
        return Err(relabelled("version", &claims.version, "manifest", version));
    }
    if let Ok(embedded) = embedded_identity(library) {
        if embedded.id != claims.id {
            return Err(relabelled("id", &claims.id, "library", &embedded.id));
        }
        if embedded.version.to_string() != claims.version {
            let found = embedded.version.to_string();
            return Err(relabelled("version", &claims.version, "library", &found));
        }
    }
    if let (Some(manifest), Some(signed)) = (expected.manifest, &claims.manifest_sha256) {
        let actual = sha256_hex(manifest);
        if !signed.eq_ignore_ascii_case(&actual) {
            return Err(SignatureError::ManifestChanged {
                signed: signed.clone(),
                actual,
            });
        }
    }
    Ok(VerifiedSignature { key_id, claims })
}

/// Checks that `library` is a complete shared object for this machine and
/// reads the identity it embeds, without loading it: the checks the host
/// runs on the bytes before `dlopen`.
pub fn embedded_identity(library: &[u8]) -> Result<EmbeddedIdentity, String> {
    let plugin_api::sdk::Identity { id, version, .. } =
        elf::embedded_identity(library).map_err(|e| e.to_string())?;
    let version = semver::Version::parse(&version)
        .map_err(|e| format!("embedded version `{version}` is not semver: {e}"))?;
    Ok(EmbeddedIdentity { id, version })
}

impl fmt::Display for SignedClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.trusted_comment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_claims(comment: &str, expected: Result<(&str, &str, &str, Option<&str>), ()>) {
        let parsed = SignedClaims::parse(comment);
        match (parsed, expected) {
            (Ok(c), Ok((id, version, sha, manifest))) => {
                assert_eq!(
                    (
                        c.id.as_str(),
                        c.version.as_str(),
                        c.sha256.as_str(),
                        c.manifest_sha256.as_deref()
                    ),
                    (id, version, sha, manifest),
                    "{comment}"
                );
            }
            (Err(SignatureError::NotPlugkit { .. }), Err(())) => {}
            (other, expected) => panic!("{comment}: got {other:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn trusted_comments_parse_or_are_refused() {
        check_claims(
            "plugkit id=sms version=1.2.3 sha256=ab",
            Ok(("sms", "1.2.3", "ab", None)),
        );
        check_claims(
            "plugkit id=sms version=1.2.3 sha256=ab manifest-sha256=cd future=x",
            Ok(("sms", "1.2.3", "ab", Some("cd"))),
        );
        check_claims("timestamp:1555779966\tfile:test", Err(()));
        check_claims("plugkit id=sms version=1.2.3", Err(()));
        check_claims("plugkit id=sms junk version=1 sha256=ab", Err(()));
        check_claims("", Err(()));
    }

    #[test]
    fn claims_round_trip_through_the_comment() {
        let claims = SignedClaims::new("pay", "0.3.0", b"library").with_manifest(b"manifest");
        assert_eq!(
            SignedClaims::parse(&claims.trusted_comment()).ok(),
            Some(claims)
        );
    }
}
