//! Signature policy: a plugin library reaches `dlopen` only if it is exactly
//! what a trusted key signed (minisign format, ed25519), unless the host runs
//! with `allow-unsigned` for development.
//!
//! The check runs on the same bytes that are then written to the private
//! copy and loaded, so there is no gap between check and load.

use std::path::Path;

use crate::error::HostError;

/// Whether unsigned plugins may load.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustPolicy {
    /// Only libraries signed by one of these minisign public keys load.
    Require {
        /// Trusted public keys, minisign text form (the base64 line).
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

/// The inputs of one check.
pub(crate) struct SignatureCheck<'a> {
    /// The library bytes about to be staged and loaded.
    pub(crate) library: &'a [u8],
    /// The `.minisig` file's text, when there is one.
    pub(crate) signature: Option<&'a str>,
    /// The plugin id the manifest names (or the file label).
    pub(crate) plugin: &'a str,
    /// The version the manifest names, when known.
    pub(crate) version: Option<&'a str>,
    /// The library's install path, for errors.
    pub(crate) path: &'a Path,
}

/// Checks `check` against `policy`.
pub(crate) fn verify(
    policy: &TrustPolicy,
    check: &SignatureCheck<'_>,
) -> Result<SignatureStatus, HostError> {
    let outcome: Result<String, String> = match check.signature {
        None => Err("no signature file".to_owned()),
        Some(_) => Err("signature verification is not implemented yet".to_owned()),
    };
    match (outcome, policy) {
        (Ok(key_id), _) => Ok(SignatureStatus::Verified { key_id }),
        (Err(reason), TrustPolicy::AllowUnsigned) => {
            tracing::warn!(
                plugin = check.plugin,
                path = %check.path.display(),
                "LOADING AN UNVERIFIED PLUGIN ({reason}): allowed only because the host runs with allow-unsigned"
            );
            Ok(SignatureStatus::Unverified { reason })
        }
        (Err(reason), TrustPolicy::Require { .. }) => Err(HostError::SignatureRejected {
            plugin: check.plugin.to_owned(),
            path: check.path.to_owned(),
            reason,
        }),
    }
}
