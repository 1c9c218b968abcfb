//! Plugin provisioning from an OCI registry (issue 18): publishing signed
//! plugins and signed entitlement catalogs as OCI artifacts, pulling the
//! plugins a tier includes by digest, verifying them with the host's own
//! signature check, installing them atomically into a plugin directory and
//! pinning them in `plugkit.lock`. Used by `cargo xtask publish`,
//! `publish-catalog`, `provision` and by the daemon's provisioning module.
//!
//! The artifact layout (media types, annotations) is
//! [`plugin_package::oci`]; the catalog format and its checks are
//! [`plugin_package::catalog`]. Modules: [`remote`] (the registry
//! connection, `oci-client`), [`publish`], [`store`] (the plugin directory),
//! [`lockfile`] and [`provision`].
//!
//! Invariants (tests in `registry/tests/`):
//! - Nothing is written to the plugin directory before the library passed
//!   the digest check and the host's signature check
//!   (`a_tampered_blob_is_refused_and_the_last_verified_set_stays`).
//! - A catalog is accepted only if signed by a trusted key, not older than
//!   the last accepted serial, and not expired; the accepted serial is
//!   persisted (`catalog_refusals_name_unsigned_unknown_key_rollback_and_freeze`).
//! - A plugin the tier drops is unlinked, its files kept, so an upgrade
//!   back relinks without a pull (`a_downgrade_unlinks_and_an_upgrade_back_relinks_without_pulling`).

#![deny(unsafe_code)]

pub mod lockfile;
pub mod provision;
pub mod publish;
pub mod remote;
pub mod store;

pub use remote::{RegistryConfig, Remote};

/// What went wrong talking to the registry or installing from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry URL cannot be used.
    #[error(
        "registry URL `{url}` is not usable: write http://HOST:PORT (plain HTTP, loopback) or https://HOST[:PORT]"
    )]
    BadRegistryUrl {
        /// As given.
        url: String,
    },
    /// The registry failed or cannot be reached.
    #[error("registry {url}: {what} failed: {reason}")]
    Registry {
        /// The registry.
        url: String,
        /// What was asked.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Bytes whose digest is not the one asked for.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}; the registry's copy is corrupt or was tampered with")]
    DigestMismatch {
        /// What was pulled.
        what: String,
        /// The digest asked for.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A manifest that is not a plugkit artifact.
    #[error("{what} is not a plugkit artifact: {reason}")]
    NotAnArtifact {
        /// Which reference.
        what: String,
        /// Why not.
        reason: String,
    },
    /// The catalog is refused.
    #[error("catalog refused: {0}")]
    Catalog(#[from] plugin_package::catalog::CatalogError),
    /// A file operation failed.
    #[error("{what}: {reason}")]
    Io {
        /// What was done.
        what: String,
        /// The OS error.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |e| Error::Io {
            what,
            reason: e.to_string(),
        }
    }
}
