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
