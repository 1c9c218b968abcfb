//! The host's trust policy applied to one library before it is staged:
//! verification itself is plugin-package's (`plugin_package::signature`).

use std::path::Path;

use plugin_package::signature::{verify_signature, Expected, SignatureError};
pub(crate) use plugin_package::signature::{SignatureStatus, TrustPolicy};

use crate::error::HostError;

/// The inputs of one check.
pub(crate) struct SignatureCheck<'a> {
    /// The library bytes about to be staged and loaded.
    pub(crate) library: &'a [u8],
    /// The `.minisig` file's text, when there is one.
    pub(crate) signature: Option<&'a str>,
    /// The plugin id the manifest names (or the file label), for messages.
    pub(crate) plugin: &'a str,
    /// The id the caller expects (from the manifest), when there is one.
    pub(crate) expected_id: Option<&'a str>,
    /// The installed `plugin.toml` bytes, which the signature must bind.
    pub(crate) manifest: Option<&'a [u8]>,
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
    let outcome: Result<String, SignatureError> = match (policy, check.signature) {
        (_, None) => Err(SignatureError::Unsigned),
        (TrustPolicy::AllowUnsigned, Some(_)) => Err(SignatureError::NoTrustedKeys),
        (TrustPolicy::Require { trusted_keys }, Some(signature)) => {
            let expected = Expected {
                id: check.expected_id,
                version: check.version,
                manifest: check.manifest,
            };
            verify_signature(check.library, signature, trusted_keys, &expected).map(|v| v.key_id)
        }
    };
    match (outcome, policy) {
        (Ok(key_id), _) => Ok(SignatureStatus::Verified { key_id }),
        (Err(reason), TrustPolicy::AllowUnsigned) => {
            let reason = reason.to_string();
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
            reason: reason.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_outcomes() {
        let path = Path::new("/plugins/sms/libsms.so");
        let check = |signature| SignatureCheck {
            library: b"bytes",
            signature,
            plugin: "sms",
            expected_id: Some("sms"),
            manifest: None,
            version: Some("1.0.0"),
            path,
        };
        let require = TrustPolicy::Require {
            trusted_keys: vec!["RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3".into()],
        };
        let refused = verify(&require, &check(None)).map_err(|e| e.to_string());
        assert!(
            matches!(&refused, Err(m) if m.contains("not signed") && m.contains("sms")),
            "{refused:?}"
        );
        let garbage = verify(&require, &check(Some("nonsense"))).map_err(|e| e.to_string());
        assert!(
            matches!(&garbage, Err(m) if m.contains("not a valid minisign") && m.contains("cargo xtask sign")),
            "{garbage:?}"
        );
        assert!(matches!(
            verify(&TrustPolicy::AllowUnsigned, &check(None)),
            Ok(SignatureStatus::Unverified { .. })
        ));
    }
}
