//! Publishing: a signed plugin package as one OCI artifact tagged by its
//! version, and a signed catalog tagged `latest` and by serial (layout:
//! [`plugin_package::oci`]). Signing is the caller's (xtask holds the key).

use plugin_package::catalog::Catalog;
use plugin_package::manifest::Manifest;
use plugin_package::oci as layout;

use crate::{Error, Remote};

/// A signed package to publish.
#[derive(Debug, Clone)]
pub struct SignedPackage<'a> {
    /// Its parsed manifest.
    pub manifest: &'a Manifest,
    /// The `plugin.toml` bytes.
    pub manifest_bytes: &'a [u8],
    /// The library bytes.
    pub library: &'a [u8],
    /// The `.minisig` text.
    pub signature: &'a str,
}

/// Pushes `package` to `repository` (default [`layout::plugin_repository`]),
/// tagged with its version; returns the manifest digest.
pub fn publish_plugin(
    remote: &Remote,
    package: &SignedPackage<'_>,
    repository: Option<&str>,
) -> Result<String, Error> {
    let manifest = package.manifest;
    let repository = repository
        .map(str::to_owned)
        .unwrap_or_else(|| layout::plugin_repository(&manifest.id));
    remote.push_artifact(
        &repository,
        &[manifest.version.to_string()],
        layout::PLUGIN_ARTIFACT_TYPE,
        vec![
            (
                layout::MANIFEST_MEDIA_TYPE,
                "plugin.toml".to_owned(),
                package.manifest_bytes.to_vec(),
            ),
            (
                layout::LIBRARY_MEDIA_TYPE,
                manifest.library.clone(),
                package.library.to_vec(),
            ),
            (
                layout::SIGNATURE_MEDIA_TYPE,
                format!("{}.minisig", manifest.library),
                package.signature.as_bytes().to_vec(),
            ),
        ],
        layout::plugin_annotations(manifest),
    )
}

/// Pushes a catalog `document` with its `signature` (none only to test
/// refusals) to [`layout::CATALOG_REPOSITORY`], tagged `latest` and with its
/// serial; returns the manifest digest.
pub fn publish_catalog(
    remote: &Remote,
    document: &[u8],
    signature: Option<&str>,
) -> Result<String, Error> {
    let text = std::str::from_utf8(document).map_err(|e| {
        Error::Catalog(plugin_package::catalog::CatalogError::Malformed {
            reason: format!("not UTF-8: {e}"),
        })
    })?;
    let catalog = Catalog::parse(text)?;
    let mut layers = vec![(
        layout::CATALOG_MEDIA_TYPE,
        "catalog.toml".to_owned(),
        document.to_vec(),
    )];
    if let Some(signature) = signature {
        layers.push((
            layout::CATALOG_SIGNATURE_MEDIA_TYPE,
            "catalog.toml.minisig".to_owned(),
            signature.as_bytes().to_vec(),
        ));
    }
    let annotations = [
        (
            layout::ANNOTATION_CATALOG_SERIAL.to_owned(),
            catalog.serial.to_string(),
        ),
        (
            layout::ANNOTATION_CATALOG_EXPIRES.to_owned(),
            catalog.expires.clone(),
        ),
    ]
    .into();
    remote.push_artifact(
        layout::CATALOG_REPOSITORY,
        &[
            layout::CATALOG_LATEST_TAG.to_owned(),
            format!("serial-{}", catalog.serial),
        ],
        layout::CATALOG_ARTIFACT_TYPE,
        layers,
        annotations,
    )
}

/// The catalog tagged `latest` in the registry, parsed, with its manifest
/// digest; `None` when none was published yet. Its signature is not
/// checked: this is for the publisher's comparison, not for trust.
///
/// # Errors
/// The registry cannot be reached, or `latest` is not a catalog.
pub fn latest_catalog(remote: &Remote) -> Result<Option<(Catalog, String)>, Error> {
    if !remote.tag_exists(layout::CATALOG_REPOSITORY, layout::CATALOG_LATEST_TAG)? {
        return Ok(None);
    }
    let (document, _, digest) = remote.pull_catalog(layout::CATALOG_LATEST_TAG)?;
    let text = String::from_utf8_lossy(&document);
    Ok(Some((Catalog::parse(&text)?, digest)))
}

/// Why `catalog` must not become `latest` at `now`: it expired (daemons
/// refuse it as a freeze), or its serial is not above the serial of the
/// registry's `latest` (daemons that accepted that one refuse a lower
/// serial as a rollback, and an equal serial with other content makes two
/// catalogs with one name). `None` when it may be published.
///
/// # Errors
/// The catalog's `expires` is not an RFC 3339 time.
pub fn stale_reason(
    catalog: &Catalog,
    latest: Option<&Catalog>,
    now: std::time::SystemTime,
) -> Result<Option<String>, Error> {
    if catalog.expiry()? <= now {
        return Ok(Some(format!(
            "it expired at {} (serial {}), so every daemon would refuse it (freeze); set a later \
             `expires`",
            catalog.expires, catalog.serial
        )));
    }
    Ok(latest
        .filter(|latest| catalog.serial <= latest.serial)
        .map(|latest| {
            format!(
                "its serial {} is not above the serial {} of the registry's `latest` (expires \
                 {}), so daemons that accepted {} would refuse it (rollback); set serial = {}",
                catalog.serial,
                latest.serial,
                latest.expires,
                latest.serial,
                latest.serial + 1
            )
        }))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn catalog(serial: u64, expires: &str) -> Catalog {
        Catalog::parse(&format!("serial = {serial}\nexpires = \"{expires}\"\n")).expect("parses")
    }

    fn check(new: Catalog, latest: Option<Catalog>, expected: &str) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000); // 2027-01-15
        let reason = stale_reason(&new, latest.as_ref(), now)
            .expect("valid expiry")
            .unwrap_or_else(|| "ok".to_owned());
        assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
    }

    #[test]
    fn an_expired_or_not_newer_catalog_is_stale_with_the_serial_to_set() {
        check(catalog(2, "2030-01-01T00:00:00Z"), None, "ok");
        check(
            catalog(3, "2030-01-01T00:00:00Z"),
            Some(catalog(2, "2029-01-01T00:00:00Z")),
            "ok",
        );
        check(
            catalog(2, "2026-01-01T00:00:00Z"),
            None,
            "it expired at 2026-01-01T00:00:00Z (serial 2)",
        );
        check(
            catalog(2, "2030-01-01T00:00:00Z"),
            Some(catalog(2, "2029-01-01T00:00:00Z")),
            "its serial 2 is not above the serial 2 of the registry's `latest` (expires \
             2029-01-01T00:00:00Z)",
        );
        check(
            catalog(1, "2030-01-01T00:00:00Z"),
            Some(catalog(4, "2029-01-01T00:00:00Z")),
            "set serial = 5",
        );
    }
}
