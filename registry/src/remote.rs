//! The registry connection: pushes and pulls plugkit artifacts (layout in
//! [`plugin_package::oci`]) through `oci-client`, on a small tokio runtime
//! of its own so callers stay blocking (xtask, the daemon's worker threads).
//!
//! Every blob pulled is checked against its descriptor's digest (by
//! `oci-client`, and again here on the whole bytes), and a manifest pulled
//! by digest against that digest, so a registry cannot serve other bytes.
//!
//! Round trips are what a pull from loopback costs, so: a catalog's two
//! blobs, a plugin's three blobs and the plugins of one refresh
//! ([`Remote::pull_plugins`]) are pulled concurrently; and blobs from an
//! anonymous registry go through a second client that never stored auth,
//! because `oci-client` caches no token for a registry that asks for none
//! and so probes `GET /v2/` before every request of a client that has
//! (its manifest pulls always store it). A registry that hands anonymous
//! clients a token (a bearer challenge) refuses that client: the blob is
//! asked again through the first, which then takes every later blob.

use std::collections::BTreeMap;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use plugin_package::oci as layout;
use sha2::{Digest, Sha256};

use crate::Error;

/// Where a registry is and how to log in to it.
#[derive(Clone)]
pub struct RegistryConfig {
    /// `http://host:port` or `https://host[:port]` (a bare `host:port` is HTTPS).
    pub url: String,
    /// HTTP basic credentials, already resolved from secret references.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log line.
        f.debug_struct("RegistryConfig")
            .field("url", &self.url)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// A plugin version as pulled: the three layers' bytes.
#[derive(Debug, Clone)]
pub struct PulledPlugin {
    /// The manifest digest it was pulled by.
    pub digest: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// `plugin.toml`.
    pub manifest: Vec<u8>,
    /// The library file name (layer title).
    pub library_name: String,
    /// The library.
    pub library: Vec<u8>,
    /// The `.minisig` text.
    pub signature: String,
}

/// An open registry.
pub struct Remote {
    client: Client,
    /// Blob pulls: `client` with credentials, else a client without stored
    /// auth (no `GET /v2/` probe per blob; see the module docs).
    blobs: Client,
    /// Set when `blobs` was refused (see the module docs): use `client`.
    blobs_need_token: std::sync::atomic::AtomicBool,
    auth: RegistryAuth,
    host: String,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// Connects lazily (nothing is sent until the first call).
    pub fn new(config: &RegistryConfig) -> Result<Self, Error> {
        let (protocol, host) = if let Some(host) = config.url.strip_prefix("http://") {
            (ClientProtocol::Http, host)
        } else {
            let host = config.url.strip_prefix("https://").unwrap_or(&config.url);
            (ClientProtocol::Https, host)
        };
        let host = host.trim_end_matches('/').to_owned();
        if host.is_empty() || host.contains('/') {
            return Err(Error::BadRegistryUrl {
                url: config.url.clone(),
            });
        }
        let client_config = || ClientConfig {
            protocol: protocol.clone(),
            // distribution v2 takes monolithic uploads in one request.
            use_monolithic_push: true,
            connect_timeout: Some(std::time::Duration::from_secs(5)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let client = Client::new(client_config());
        let blobs = match &config.credentials {
            Some(_) => client.clone(),
            None => Client::new(client_config()),
        };
        let auth = match &config.credentials {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io {
                what: "starting the registry client's runtime".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            blobs_need_token: std::sync::atomic::AtomicBool::new(config.credentials.is_some()),
            client,
            blobs,
            auth,
            host,
            url: config.url.clone(),
            runtime,
        })
    }

    /// The registry URL as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn reference(&self, repository: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), repository.to_owned(), tag.to_owned())
    }

    fn by_digest(&self, repository: &str, digest: &str) -> Reference {
        Reference::with_digest(self.host.clone(), repository.to_owned(), digest.to_owned())
    }

    fn failed(
        &self,
        what: String,
    ) -> impl FnOnce(oci_client::errors::OciDistributionError) -> Error + '_ {
        move |e| Error::Registry {
            url: self.url.clone(),
            what,
            reason: with_causes(&e),
        }
    }

    /// Pushes an artifact: `layers` (media type, title, bytes), the empty
    /// config, `artifact_type` and `annotations`, tagged with each of `tags`.
    /// Returns the manifest digest.
    pub fn push_artifact(
        &self,
        repository: &str,
        tags: &[String],
        artifact_type: &str,
        layers: Vec<(&str, String, Vec<u8>)>,
        annotations: BTreeMap<String, String>,
    ) -> Result<String, Error> {
        let layers: Vec<ImageLayer> = layers
            .into_iter()
            .map(|(media_type, title, data)| {
                ImageLayer::new(
                    data,
                    media_type.to_owned(),
                    Some(BTreeMap::from([(
                        layout::ANNOTATION_OCI_TITLE.to_owned(),
                        title,
                    )])),
                )
            })
            .collect();
        let config = Config::new(
            layout::EMPTY_CONFIG.to_vec(),
            layout::EMPTY_CONFIG_MEDIA_TYPE.to_owned(),
            None,
        );
        let mut manifest = OciImageManifest::build(&layers, &config, Some(annotations));
        manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_owned());
        manifest.artifact_type = Some(artifact_type.to_owned());
        let first = tags.first().cloned().unwrap_or_else(|| "latest".to_owned());
        let image = self.reference(repository, &first);
        self.runtime
            .block_on(
                self.client
                    .push(&image, &layers, config, &self.auth, Some(manifest.clone())),
            )
            .map_err(self.failed(format!("pushing {repository}:{first}")))?;
        for tag in tags.iter().skip(1) {
            let image = self.reference(repository, tag);
            self.runtime
                .block_on(
                    self.client
                        .push_manifest(&image, &OciManifest::Image(manifest.clone())),
                )
                .map_err(self.failed(format!("tagging {repository}:{tag}")))?;
        }
        self.resolve(repository, &first)
    }

    /// Whether `repository:tag` exists: `false` when the registry answers
    /// that the manifest or the repository is unknown.
    ///
    /// # Errors
    /// The registry cannot be reached or fails otherwise.
    pub fn tag_exists(&self, repository: &str, tag: &str) -> Result<bool, Error> {
        let image = self.reference(repository, tag);
        let pulled = self.runtime.block_on(self.client.pull_manifest_raw(
            &image,
            &self.auth,
            &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE],
        ));
        match pulled {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(self.failed(format!("looking up {repository}:{tag}"))(e)),
        }
    }

    /// The manifest digest `repository:tag` points to.
    pub fn resolve(&self, repository: &str, tag: &str) -> Result<String, Error> {
        let image = self.reference(repository, tag);
        let (_, digest) = self
            .runtime
            .block_on(self.client.pull_manifest_raw(
                &image,
                &self.auth,
                &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE],
            ))
            .map_err(self.failed(format!("resolving {repository}:{tag}")))?;
        Ok(digest)
    }

    /// Pulls the artifact manifest `repository@digest` (or `:tag`) and
    /// checks its artifact type; returns it with its digest.
    pub fn pull_manifest(
        &self,
        repository: &str,
        reference: &str,
        artifact_type: &str,
    ) -> Result<(OciImageManifest, String), Error> {
        self.runtime
            .block_on(self.fetch_manifest(repository, reference, artifact_type))
    }

    async fn fetch_manifest(
        &self,
        repository: &str,
        reference: &str,
        artifact_type: &str,
    ) -> Result<(OciImageManifest, String), Error> {
        let image = if reference.starts_with("sha256:") {
            self.by_digest(repository, reference)
        } else {
            self.reference(repository, reference)
        };
        let (raw, _) = self
            .client
            .pull_manifest_raw(
                &image,
                &self.auth,
                &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .map_err(self.failed(format!("pulling the manifest {repository}@{reference}")))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
        if reference.starts_with("sha256:") && actual != reference {
            return Err(Error::DigestMismatch {
                what: format!("the manifest {repository}@{reference}"),
                expected: reference.to_owned(),
                actual,
            });
        }
        let manifest: OciImageManifest =
            serde_json::from_slice(&raw).map_err(|e| Error::NotAnArtifact {
                what: format!("{repository}@{reference}"),
                reason: format!("not an OCI image manifest: {e}"),
            })?;
        if manifest.artifact_type.as_deref() != Some(artifact_type) {
            return Err(Error::NotAnArtifact {
                what: format!("{repository}@{reference}"),
                reason: format!(
                    "its artifactType is {:?}, expected `{artifact_type}`",
                    manifest.artifact_type
                ),
            });
        }
        Ok((manifest, actual))
    }

    /// Pulls the blob `layer` describes and checks its digest and size.
    pub fn pull_blob(&self, repository: &str, layer: &OciDescriptor) -> Result<Vec<u8>, Error> {
        self.runtime.block_on(self.fetch_blob(repository, layer))
    }

    async fn fetch_blob(&self, repository: &str, layer: &OciDescriptor) -> Result<Vec<u8>, Error> {
        let image = self.by_digest(repository, &layer.digest);
        let mut out = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        use std::sync::atomic::Ordering::Relaxed;
        let mut pulled = if self.blobs_need_token.load(Relaxed) {
            self.client.pull_blob(&image, layer, &mut out).await
        } else {
            self.blobs.pull_blob(&image, layer, &mut out).await
        };
        if pulled.is_err() && !self.blobs_need_token.load(Relaxed) {
            // Perhaps a registry that wants its anonymous token: once more
            // through the client holding it (a real failure fails again).
            out.clear();
            pulled = self.client.pull_blob(&image, layer, &mut out).await;
            if pulled.is_ok() {
                self.blobs_need_token.store(true, Relaxed);
            }
        }
        if let Err(e) = pulled {
            if let oci_client::errors::OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { actual, .. },
            ) = &e
            {
                return Err(Error::DigestMismatch {
                    what: format!("the blob {} ({})", layer.digest, layer.media_type),
                    expected: layer.digest.clone(),
                    actual: actual.clone(),
                });
            }
            return Err(self.failed(format!("pulling the blob {}", layer.digest))(e));
        }
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&out)));
        if actual != layer.digest {
            return Err(Error::DigestMismatch {
                what: format!("the blob {} ({})", layer.digest, layer.media_type),
                expected: layer.digest.clone(),
                actual,
            });
        }
        Ok(out)
    }

    /// Pulls plugin `id` at manifest `digest` from `repository`: the three layers.
    pub fn pull_plugin(&self, repository: &str, digest: &str) -> Result<PulledPlugin, Error> {
        self.runtime.block_on(self.fetch_plugin(repository, digest))
    }

    /// Pulls several plugins (repository, manifest digest) at once: one
    /// refresh's round trips overlap. Each result comes with how long that
    /// pull took (they overlap, so they do not add up).
    pub fn pull_plugins(
        &self,
        wanted: &[(String, String)],
    ) -> Vec<(Result<PulledPlugin, Error>, std::time::Duration)> {
        self.runtime
            .block_on(futures_util::future::join_all(wanted.iter().map(
                |(repository, digest)| async move {
                    let started = std::time::Instant::now();
                    let pulled = self.fetch_plugin(repository, digest).await;
                    (pulled, started.elapsed())
                },
            )))
    }

    async fn fetch_plugin(&self, repository: &str, digest: &str) -> Result<PulledPlugin, Error> {
        let (manifest, digest) = self
            .fetch_manifest(repository, digest, layout::PLUGIN_ARTIFACT_TYPE)
            .await?;
        let layer = |media_type: &str| {
            manifest
                .layers
                .iter()
                .find(|l| l.media_type == media_type)
                .ok_or_else(|| Error::NotAnArtifact {
                    what: format!("{repository}@{digest}"),
                    reason: format!("it has no `{media_type}` layer"),
                })
        };
        let manifest_layer = layer(layout::MANIFEST_MEDIA_TYPE)?;
        let library_layer = layer(layout::LIBRARY_MEDIA_TYPE)?;
        let signature_layer = layer(layout::SIGNATURE_MEDIA_TYPE)?;
        let library_name = library_layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(layout::ANNOTATION_OCI_TITLE))
            .cloned()
            .filter(|n| !n.is_empty() && !n.contains('/') && !n.starts_with('.'))
            .ok_or_else(|| Error::NotAnArtifact {
                what: format!("{repository}@{digest}"),
                reason: "its library layer has no plain file name (org.opencontainers.image.title)"
                    .to_owned(),
            })?;
        // The three blobs at once: one round trip's latency, not three.
        let (plugin_toml, library, signature) = tokio::join!(
            self.fetch_blob(repository, manifest_layer),
            self.fetch_blob(repository, library_layer),
            self.fetch_blob(repository, signature_layer),
        );
        let (plugin_toml, library) = (plugin_toml?, library?);
        let signature = String::from_utf8(signature?).map_err(|_| Error::NotAnArtifact {
            what: format!("{repository}@{digest}"),
            reason: "its signature layer is not text".to_owned(),
        })?;
        Ok(PulledPlugin {
            digest,
            annotations: manifest.annotations.clone().unwrap_or_default(),
            manifest: plugin_toml,
            library_name,
            library,
            signature,
        })
    }

    /// Pulls the catalog tagged `latest` (or `reference`): document and signature (if any).
    pub fn pull_catalog(
        &self,
        reference: &str,
    ) -> Result<(Vec<u8>, Option<String>, String), Error> {
        let repository = layout::CATALOG_REPOSITORY;
        let (manifest, digest) =
            self.pull_manifest(repository, reference, layout::CATALOG_ARTIFACT_TYPE)?;
        let document = manifest
            .layers
            .iter()
            .find(|l| l.media_type == layout::CATALOG_MEDIA_TYPE)
            .ok_or_else(|| Error::NotAnArtifact {
                what: format!("{repository}:{reference}"),
                reason: format!("it has no `{}` layer", layout::CATALOG_MEDIA_TYPE),
            })?;
        let signature = manifest
            .layers
            .iter()
            .find(|l| l.media_type == layout::CATALOG_SIGNATURE_MEDIA_TYPE);
        // Document and signature at once: one round trip, not two.
        let (document, signature) = self.runtime.block_on(async {
            tokio::join!(self.fetch_blob(repository, document), async {
                match signature {
                    Some(layer) => self.fetch_blob(repository, layer).await.map(Some),
                    None => Ok(None),
                }
            })
        });
        let signature = signature?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        Ok((document?, signature, digest))
    }
}

/// Whether the registry said the manifest (or its repository) is unknown.
fn is_not_found(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    match e {
        E::ImageManifestNotFoundError(_) => true,
        E::ServerError { code, .. } => *code == 404,
        E::RegistryError { envelope, .. } => envelope.errors.iter().any(|error| {
            matches!(
                error.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        _ => false,
    }
}

/// `error` and its causes, each once (`error sending request …: client
/// error (Connect): tcp connect error: Connection refused (os error 111)`):
/// the HTTP client's own message leaves out why it failed.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let line = inner.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = inner.source();
    }
    text
}
