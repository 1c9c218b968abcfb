//! The entitlement catalog: which plugins (id, version, OCI digest) each
//! subscription tier includes, with a monotonic serial and an expiry, signed
//! by the operator with a minisign key (the same key type as plugins). Pure:
//! values in, values out; the caller passes the time and the last serial it
//! accepted.
//!
//! ```toml
//! serial = 7
//! expires = "2027-01-31T00:00:00Z"   # RFC 3339, UTC
//!
//! [[tiers.free]]
//! id = "twilio"
//! version = "1.2.0"
//! digest = "sha256:…"                # filled in by `cargo xtask publish-catalog` when absent
//! ```
//!
//! The signature is a minisign signature of the document's exact bytes
//! whose trusted comment is `plugkit-catalog serial=<n> sha256=<hex>`, so a
//! signature cannot be moved to another catalog. [`verify_catalog`] refuses,
//! each with its own [`CatalogError`]: no signature, a key not trusted, a
//! bad signature, a serial lower than the last accepted (rollback), and an
//! expired catalog (freeze).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::minisig::{public_key_id, public_key_line, signature_layout};
use crate::signature::sha256_hex;

/// A parsed catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Monotonic: a daemon never accepts a lower serial than it has accepted.
    pub serial: u64,
    /// RFC 3339 time after which the catalog is refused (freeze).
    pub expires: String,
    /// Per tier, the plugins it includes.
    #[serde(default)]
    pub tiers: BTreeMap<String, Vec<Entitlement>>,
}

/// One plugin a tier includes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    /// The plugin id.
    pub id: String,
    /// Its version (semver).
    pub version: String,
    /// The OCI manifest digest (`sha256:<hex>`) of that version; required
    /// in a published catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Why a catalog is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The document is not a catalog.
    #[error("the catalog is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// There is no signature.
    #[error("the catalog is unsigned; sign it with `cargo xtask publish-catalog`")]
    Unsigned,
    /// Signed by a key the daemon does not trust.
    #[error(
        "the catalog is signed by an unknown key {key_id}; trust the operator's key under [trust] keys"
    )]
    UnknownKey {
        /// The signing key's id.
        key_id: String,
    },
    /// The signature does not verify.
    #[error("the catalog's signature does not verify ({reason}): it was altered after signing")]
    BadSignature {
        /// Why.
        reason: String,
    },
    /// Older than the catalog already accepted.
    #[error(
        "rollback refused: the catalog's serial {serial} is lower than the last accepted serial {accepted}; the registry's `latest` is an older catalog: publish the current one again with a serial above {accepted} (`cargo xtask publish-catalog` with serial = {next})", next = .accepted + 1
    )]
    Rollback {
        /// The offered serial.
        serial: u64,
        /// The last accepted one.
        accepted: u64,
    },
    /// Past its expiry.
    #[error(
        "freeze refused: the catalog (serial {serial}) expired at {expires}; publish a fresh catalog with a later `expires`"
    )]
    Expired {
        /// Its serial.
        serial: u64,
        /// Its expiry.
        expires: String,
    },
    /// The tier is not in the catalog.
    #[error("the catalog (serial {serial}) has no tier `{tier}` (it has: {known})")]
    UnknownTier {
        /// The catalog serial.
        serial: u64,
        /// The tier asked for.
        tier: String,
        /// The tiers it has.
        known: String,
    },
}

/// A catalog that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCatalog {
    /// The catalog.
    pub catalog: Catalog,
    /// The trusted key that signed it.
    pub key_id: String,
}

const COMMENT_TAG: &str = "plugkit-catalog";

impl Catalog {
    /// Parses a catalog document and checks its fields (an expiry that is
    /// RFC 3339, versions that are semver, digests that are `sha256:<64 hex>`).
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let catalog: Catalog = toml::from_str(text).map_err(|e| CatalogError::Malformed {
            reason: e.to_string(),
        })?;
        catalog.expiry()?;
        for (tier, plugins) in &catalog.tiers {
            for p in plugins {
                semver::Version::parse(&p.version).map_err(|e| CatalogError::Malformed {
                    reason: format!("tier `{tier}`: `{}` version `{}`: {e}", p.id, p.version),
                })?;
                if let Some(digest) = &p.digest {
                    if !is_sha256_digest(digest) {
                        return Err(CatalogError::Malformed {
                            reason: format!(
                                "tier `{tier}`: `{}` digest `{digest}` is not sha256:<64 hex digits>",
                                p.id
                            ),
                        });
                    }
                }
            }
        }
        Ok(catalog)
    }

    /// The expiry as a time.
    pub fn expiry(&self) -> Result<SystemTime, CatalogError> {
        humantime::parse_rfc3339_weak(&self.expires).map_err(|e| CatalogError::Malformed {
            reason: format!("expires `{}` is not an RFC 3339 time: {e}", self.expires),
        })
    }

    /// The plugins `tier` includes.
    pub fn tier(&self, tier: &str) -> Result<&[Entitlement], CatalogError> {
        self.tiers
            .get(tier)
            .map(Vec::as_slice)
            .ok_or_else(|| CatalogError::UnknownTier {
                serial: self.serial,
                tier: tier.to_owned(),
                known: self.tiers.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// The trusted comment a signature of `document` carries.
    pub fn trusted_comment(serial: u64, document: &[u8]) -> String {
        format!(
            "{COMMENT_TAG} serial={serial} sha256={}",
            sha256_hex(document)
        )
    }
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Verifies a catalog `document` against its minisign `signature` and
/// `trusted_keys`, then refuses it if its serial is below `accepted_serial`
/// (rollback) or it expired before `now` (freeze). Checks run in that
/// order, so an unsigned catalog is called unsigned whatever it says.
pub fn verify_catalog(
    document: &[u8],
    signature: Option<&str>,
    trusted_keys: &[String],
    accepted_serial: Option<u64>,
    now: SystemTime,
) -> Result<VerifiedCatalog, CatalogError> {
    let signature = signature
        .filter(|s| !s.trim().is_empty())
        .ok_or(CatalogError::Unsigned)?;
    let bad = |reason: String| CatalogError::BadSignature { reason };
    let layout = signature_layout(signature).map_err(|e| bad(e.to_string()))?;
    let mut signer = None;
    for key in trusted_keys {
        let line = public_key_line(key);
        if public_key_id(line).ok().as_deref() == Some(layout.key_id.as_str()) {
            signer = minisign_verify::PublicKey::from_base64(line).ok();
        }
    }
    let signer = signer.ok_or_else(|| CatalogError::UnknownKey {
        key_id: layout.key_id.clone(),
    })?;
    let decoded = minisign_verify::Signature::decode(signature.trim_start_matches('\u{feff}'))
        .map_err(|e| bad(e.to_string()))?;
    signer
        .verify(document, &decoded, false)
        .map_err(|e| bad(e.to_string()))?;
    let text = std::str::from_utf8(document).map_err(|e| CatalogError::Malformed {
        reason: format!("not UTF-8: {e}"),
    })?;
    let catalog = Catalog::parse(text)?;
    if decoded.trusted_comment() != Catalog::trusted_comment(catalog.serial, document) {
        return Err(bad(format!(
            "its trusted comment `{}` does not name this catalog (serial {})",
            decoded.trusted_comment(),
            catalog.serial
        )));
    }
    if let Some(accepted) = accepted_serial.filter(|a| catalog.serial < *a) {
        return Err(CatalogError::Rollback {
            serial: catalog.serial,
            accepted,
        });
    }
    if catalog.expiry()? <= now {
        return Err(CatalogError::Expired {
            serial: catalog.serial,
            expires: catalog.expires.clone(),
        });
    }
    Ok(VerifiedCatalog {
        catalog,
        key_id: layout.key_id,
    })
}

/// `now + ttl` as RFC 3339 (seconds, UTC), for catalogs made by tools and tests.
pub fn expires_in(now: SystemTime, ttl: Duration) -> String {
    let at = now.checked_add(ttl).unwrap_or(now);
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "serial = 3\nexpires = \"2030-01-01T00:00:00Z\"\n\n[[tiers.free]]\n\
                       id = \"twilio\"\nversion = \"1.0.0\"\n";

    #[test]
    fn a_catalog_parses_with_tiers_and_refuses_bad_fields() {
        let catalog = Catalog::parse(DOC).expect("parses");
        assert_eq!(catalog.serial, 3);
        assert_eq!(catalog.tier("free").expect("tier")[0].id, "twilio");
        let error = catalog.tier("gold").expect_err("no such tier");
        assert!(
            error.to_string().contains("no tier `gold` (it has: free)"),
            "{error}"
        );
        let error = Catalog::parse(&DOC.replace("2030-01-01T00:00:00Z", "soon")).expect_err("bad");
        assert!(
            error.to_string().contains("not an RFC 3339 time"),
            "{error}"
        );
        let error = Catalog::parse(&format!("{DOC}digest = \"md5:1\"\n")).expect_err("bad");
        assert!(error.to_string().contains("not sha256:"), "{error}");
    }

    #[test]
    fn an_unsigned_catalog_is_refused_as_unsigned() {
        let error = verify_catalog(DOC.as_bytes(), None, &[], None, SystemTime::now())
            .expect_err("unsigned");
        assert_eq!(error, CatalogError::Unsigned);
    }
}
