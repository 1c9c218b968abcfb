//! How plugkit plugins and entitlement catalogs are laid out as OCI
//! artifacts (OCI image-spec v1.1 artifact manifests): media types,
//! artifact types, annotation keys and repository names, in one place for
//! the publisher (`cargo xtask publish`) and the puller (`plugkit-registry`,
//! used by `cargo xtask provision` and the daemon). Pure: no IO.
//!
//! A plugin version is one manifest with `artifactType`
//! [`PLUGIN_ARTIFACT_TYPE`], the empty config ([`EMPTY_CONFIG_MEDIA_TYPE`],
//! `{}`), and three layers in this order: the `plugin.toml`
//! ([`MANIFEST_MEDIA_TYPE`]), the library ([`LIBRARY_MEDIA_TYPE`]) and its
//! minisign signature ([`SIGNATURE_MEDIA_TYPE`]), each annotated with its
//! file name (`org.opencontainers.image.title`). It is tagged with its
//! version in the repository [`plugin_repository`] and carries the
//! annotations [`plugin_annotations`] lists.

use std::collections::BTreeMap;

use crate::manifest::Manifest;

/// `artifactType` of a plugin version.
pub const PLUGIN_ARTIFACT_TYPE: &str = "application/vnd.plugkit.plugin.v1+json";
/// Layer: the `plugin.toml` packaged with the library.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.plugkit.plugin.manifest.v1+toml";
/// Layer: the plugin's shared library.
pub const LIBRARY_MEDIA_TYPE: &str = "application/vnd.plugkit.plugin.library.v1";
/// Layer: the library's minisign signature (`.minisig` text).
pub const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.plugkit.plugin.signature.v1+minisign";
/// `artifactType` of an entitlement catalog.
pub const CATALOG_ARTIFACT_TYPE: &str = "application/vnd.plugkit.catalog.v1+json";
/// Layer: the catalog document (TOML, see [`crate::catalog`]).
pub const CATALOG_MEDIA_TYPE: &str = "application/vnd.plugkit.catalog.v1+toml";
/// Layer: the catalog's minisign signature.
pub const CATALOG_SIGNATURE_MEDIA_TYPE: &str =
    "application/vnd.plugkit.catalog.signature.v1+minisign";
/// The OCI empty descriptor's media type (image-spec v1.1); its blob is `{}`.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The OCI empty descriptor's content.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// Annotation: the plugin id.
pub const ANNOTATION_ID: &str = "dev.plugkit.plugin.id";
/// Annotation: the plugin version (semver).
pub const ANNOTATION_VERSION: &str = "dev.plugkit.plugin.version";
/// Annotation: the plugin category.
pub const ANNOTATION_CATEGORY: &str = "dev.plugkit.plugin.category";
/// Annotation: the licence tier the plugin needs (`required_tier`).
pub const ANNOTATION_REQUIRED_TIER: &str = "dev.plugkit.plugin.required-tier";
/// Annotation: the plugin-api range the plugin needs.
pub const ANNOTATION_API: &str = "dev.plugkit.plugin.api";
/// Annotation: the catalog serial.
pub const ANNOTATION_CATALOG_SERIAL: &str = "dev.plugkit.catalog.serial";
/// Annotation: the catalog expiry (RFC 3339).
pub const ANNOTATION_CATALOG_EXPIRES: &str = "dev.plugkit.catalog.expires";
/// Standard annotation: the version of the packaged software.
pub const ANNOTATION_OCI_VERSION: &str = "org.opencontainers.image.version";
/// Standard annotation: a layer's file name.
pub const ANNOTATION_OCI_TITLE: &str = "org.opencontainers.image.title";

/// The repository holding the catalog, tagged `latest` and by serial.
pub const CATALOG_REPOSITORY: &str = "plugkit/catalog";
/// The tag a publisher moves to the newest catalog.
pub const CATALOG_LATEST_TAG: &str = "latest";

/// The repository of plugin `id`: `plugkit/plugins/<id>`.
pub fn plugin_repository(id: &str) -> String {
    format!("plugkit/plugins/{id}")
}

/// The manifest annotations of a plugin version: id, version (plugkit's
/// and the standard `org.opencontainers.image.version`), category,
/// required tier and API range.
pub fn plugin_annotations(manifest: &Manifest) -> BTreeMap<String, String> {
    let version = manifest.version.to_string();
    BTreeMap::from([
        (ANNOTATION_ID.to_owned(), manifest.id.clone()),
        (ANNOTATION_VERSION.to_owned(), version.clone()),
        (ANNOTATION_OCI_VERSION.to_owned(), version),
        (
            ANNOTATION_CATEGORY.to_owned(),
            manifest.category.as_str().to_owned(),
        ),
        (
            ANNOTATION_REQUIRED_TIER.to_owned(),
            manifest.required_tier.clone(),
        ),
        (ANNOTATION_API.to_owned(), manifest.api.to_string()),
    ])
}

/// The media types of a plugin artifact's layers, in order.
pub const PLUGIN_LAYERS: [&str; 3] = [
    MANIFEST_MEDIA_TYPE,
    LIBRARY_MEDIA_TYPE,
    SIGNATURE_MEDIA_TYPE,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_plugin_is_annotated_with_id_version_category_tier_and_api() {
        let manifest = Manifest::parse(
            "id = \"sms\"\nname = \"SMS\"\nversion = \"1.2.0\"\napi = \"^0.2\"\n\
             library = \"libsms.so\"\ncategory = \"communication\"\nrequired_tier = \"pro\"\n",
            Path::new("plugin.toml"),
        )
        .expect("manifest");
        let annotations = plugin_annotations(&manifest);
        assert_eq!(annotations[ANNOTATION_ID], "sms");
        assert_eq!(annotations[ANNOTATION_VERSION], "1.2.0");
        assert_eq!(annotations[ANNOTATION_OCI_VERSION], "1.2.0");
        assert_eq!(annotations[ANNOTATION_CATEGORY], "communication");
        assert_eq!(annotations[ANNOTATION_REQUIRED_TIER], "pro");
        assert_eq!(annotations[ANNOTATION_API], "^0.2");
        assert_eq!(plugin_repository("sms"), "plugkit/plugins/sms");
    }
}
