//! Provisioning against a real registry (Debian's docker-registry on
//! 127.0.0.1, storage in a temp dir): publish, catalog refusals, tier
//! upgrade/downgrade, tamper, bad signature, registry down. The plugin is
//! the `reloadable` fixture at 1.0.0 and 2.0.0, signed by a test operator.

use std::path::Path;
use std::time::{Duration, SystemTime};

use plugin_package::catalog::{expires_in, Catalog, CatalogError};
use plugin_package::oci as layout;
use plugkit_registry::lockfile::Lock;
use plugkit_registry::provision::{self, fetch, Action, Options};
use plugkit_registry::publish::{latest_catalog, publish_catalog, stale_reason};
use plugkit_registry::{Error, RegistryConfig, Remote};
use plugkit_testkit::registry::Registry;
use plugkit_tests::artifacts;
use plugkit_tests::oci::{catalog, catalog_expiring, reloadable_manifest, Operator};

fn library(version: &str) -> Vec<u8> {
    let package = if version.starts_with('1') {
        "fixture-reload-v1"
    } else {
        "fixture-reload-v2"
    };
    std::fs::read(artifacts().library(package)).expect("library")
}

fn remote(registry: &Registry) -> Remote {
    Remote::new(&config(registry)).expect("remote")
}

fn config(registry: &Registry) -> RegistryConfig {
    RegistryConfig {
        url: registry.url(),
        credentials: None,
    }
}

fn options(registry: &Registry, dir: &Path, tier: &str, operator: &Operator) -> Options {
    Options {
        registry: config(registry),
        tier: tier.to_owned(),
        plugin_dir: dir.join("plugins"),
        accepted_file: dir.join("state/accepted-catalog.json"),
        trusted_keys: vec![operator.public_line()],
    }
}

/// Fetches and writes the lock, as `cargo xtask provision` does.
fn provision(options: &Options) -> Result<provision::Report, Error> {
    let lock_path = provision::lock_path(&options.plugin_dir);
    let previous = Lock::read(&lock_path)?;
    let (report, lock) = fetch(options, &previous, &mut |_| {})?;
    lock.write(&lock_path)?;
    Ok(report)
}

fn linked_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("plugins/reloadable/plugin.toml")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_owned())
}

#[test]
fn a_published_plugin_is_one_artifact_with_layers_annotations_and_a_version_tag() {
    let registry = Registry::start().expect("registry");
    let remote = remote(&registry);
    let operator = Operator::new();
    let digest = operator.publish(&remote, &reloadable_manifest("1.0.0"), &library("1.0.0"));
    assert!(digest.starts_with("sha256:"), "{digest}");
    let repository = layout::plugin_repository("reloadable");
    assert_eq!(remote.resolve(&repository, "1.0.0").expect("tag"), digest);
    let (manifest, pulled) = remote
        .pull_manifest(&repository, &digest, layout::PLUGIN_ARTIFACT_TYPE)
        .expect("manifest");
    assert_eq!(pulled, digest);
    assert_eq!(manifest.config.media_type, layout::EMPTY_CONFIG_MEDIA_TYPE);
    let media: Vec<&str> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    assert_eq!(media, layout::PLUGIN_LAYERS);
    let annotations = manifest.annotations.expect("annotations");
    assert_eq!(annotations[layout::ANNOTATION_ID], "reloadable");
    assert_eq!(annotations[layout::ANNOTATION_OCI_VERSION], "1.0.0");
    assert_eq!(annotations[layout::ANNOTATION_CATEGORY], "custom");
    assert_eq!(annotations[layout::ANNOTATION_REQUIRED_TIER], "free");
    assert_eq!(annotations[layout::ANNOTATION_API], "^0.2");
    // The wrong artifact type is refused by name.
    let error = remote
        .pull_manifest(&repository, &digest, layout::CATALOG_ARTIFACT_TYPE)
        .expect_err("not a catalog");
    assert!(error.to_string().contains("artifactType"), "{error}");
}

#[test]
fn catalog_refusals_name_unsigned_unknown_key_rollback_and_freeze() {
    let registry = Registry::start().expect("registry");
    let remote = remote(&registry);
    let operator = Operator::new();
    let dir = tempfile::tempdir().expect("dir");
    let options = options(&registry, dir.path(), "free", &operator);
    let digest = operator.publish(&remote, &reloadable_manifest("1.0.0"), &library("1.0.0"));
    let entry = [("reloadable", "1.0.0", digest.as_str())];

    let unsigned = catalog(5, &[("free", &entry)]);
    publish_catalog(&remote, unsigned.as_bytes(), None).expect("push unsigned");
    let error = provision(&options).expect_err("unsigned");
    assert_eq!(error, Error::Catalog(CatalogError::Unsigned));
    assert!(error.to_string().contains("unsigned"), "{error}");

    let stranger = Operator::new();
    stranger.publish_catalog(&remote, &unsigned);
    let error = provision(&options).expect_err("unknown key");
    assert!(
        matches!(error, Error::Catalog(CatalogError::UnknownKey { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("unknown key"), "{error}");

    operator.publish_catalog(&remote, &unsigned);
    let report = provision(&options).expect("serial 5 accepted");
    assert_eq!(report.catalog_serial, 5);

    operator.publish_catalog(&remote, &catalog(4, &[("free", &entry)]));
    let error = provision(&options).expect_err("rollback");
    assert_eq!(
        error,
        Error::Catalog(CatalogError::Rollback {
            serial: 4,
            accepted: 5
        })
    );
    assert!(error.to_string().contains("rollback refused"), "{error}");
    // The refusal names the next step: publish again above the accepted serial.
    assert!(
        error
            .to_string()
            .contains("`cargo xtask publish-catalog` with serial = 6"),
        "{error}"
    );

    let past = expires_in(
        SystemTime::now() - Duration::from_secs(7200),
        Duration::from_secs(3600),
    );
    operator.publish_catalog(&remote, &catalog_expiring(6, past, &[("free", &entry)]));
    let error = provision(&options).expect_err("expired");
    assert!(
        matches!(
            error,
            Error::Catalog(CatalogError::Expired { serial: 6, .. })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("freeze refused"), "{error}");

    // A refusal changed nothing: the plugin from serial 5 is still linked and pinned.
    assert_eq!(linked_version(dir.path()).as_deref(), Some("1.0.0"));
    let lock = Lock::read(&provision::lock_path(&options.plugin_dir)).expect("lock");
    assert_eq!(lock.catalog_serial, 5);
    assert_eq!(lock.plugins["reloadable"].digest, digest);
}

#[test]
fn a_tier_upgrade_installs_a_downgrade_unlinks_and_an_upgrade_back_relinks_without_pulling() {
    let mut registry = Registry::start().expect("registry");
    let remote = remote(&registry);
    let operator = Operator::new();
    let dir = tempfile::tempdir().expect("dir");
    let v1 = operator.publish(&remote, &reloadable_manifest("1.0.0"), &library("1.0.0"));
    let v2 = operator.publish(&remote, &reloadable_manifest("2.0.0"), &library("2.0.0"));
    let free: [(&str, &str, &str); 0] = [];
    let pro = [("reloadable", "2.0.0", v2.as_str())];
    let ent = [("reloadable", "1.0.0", v1.as_str())];
    operator.publish_catalog(
        &remote,
        &catalog(1, &[("free", &free), ("pro", &pro), ("legacy", &ent)]),
    );

    let report = provision(&options(&registry, dir.path(), "free", &operator)).expect("free");
    assert!(report.plugins.is_empty(), "{report:?}");
    assert_eq!(linked_version(dir.path()), None);

    let report = provision(&options(&registry, dir.path(), "pro", &operator)).expect("pro");
    assert_eq!(report.plugins[0].action, Action::Installed, "{report:?}");
    assert_eq!(linked_version(dir.path()).as_deref(), Some("2.0.0"));
    let lock = Lock::read(&provision::lock_path(&dir.path().join("plugins"))).expect("lock");
    let entry = &lock.plugins["reloadable"];
    assert_eq!(
        (entry.version.as_str(), entry.digest.as_str()),
        ("2.0.0", v2.as_str())
    );
    assert_eq!(
        entry.library_sha256,
        plugin_package::signature::sha256_hex(&library("2.0.0"))
    );

    let report = provision(&options(&registry, dir.path(), "pro", &operator)).expect("again");
    assert_eq!(report.plugins[0].action, Action::Unchanged);

    let report = provision(&options(&registry, dir.path(), "free", &operator)).expect("down");
    assert_eq!(report.plugins[0].action, Action::Dropped, "{report:?}");
    assert_eq!(linked_version(dir.path()), None);
    assert!(
        dir.path().join("plugins").join(&entry.folder).is_dir(),
        "files kept"
    );

    // Upgrade back with the registry stopped: relinked from the kept files.
    registry.stop();
    let error = provision(&options(&registry, dir.path(), "pro", &operator)).expect_err("down");
    assert!(matches!(error, Error::Registry { .. }), "{error}");
    registry.restart().expect("restart");
    let report = provision(&options(&registry, dir.path(), "pro", &operator)).expect("back up");
    assert_eq!(report.plugins[0].action, Action::Relinked, "{report:?}");
    assert_eq!(report.plugins[0].pull_ms, 0.0);
    assert_eq!(linked_version(dir.path()).as_deref(), Some("2.0.0"));
}

#[test]
fn a_tampered_blob_and_a_bad_signature_are_refused_and_the_last_verified_set_stays() {
    let registry = Registry::start().expect("registry");
    let remote = remote(&registry);
    let operator = Operator::new();
    let dir = tempfile::tempdir().expect("dir");
    let options = options(&registry, dir.path(), "pro", &operator);
    let v1 = operator.publish(&remote, &reloadable_manifest("1.0.0"), &library("1.0.0"));
    operator.publish_catalog(
        &remote,
        &catalog(1, &[("pro", &[("reloadable", "1.0.0", &v1)])]),
    );
    provision(&options).expect("v1");

    // A 2.0.0 signed by a key the daemon does not trust: a signature failure.
    let stranger = Operator::new();
    let v2b = {
        let manifest = reloadable_manifest("2.0.0").replace("reload fixture", "reload fixture b");
        stranger.publish(&remote, &manifest, &library("2.0.0"))
    };
    operator.publish_catalog(
        &remote,
        &catalog(2, &[("pro", &[("reloadable", "2.0.0", &v2b)])]),
    );
    let report = provision(&options).expect("catalog fine");
    let why = report.plugins[0].error.as_deref().unwrap_or_default();
    assert!(
        why.contains("plugin `reloadable` 2.0.0") && why.contains("signature check failed"),
        "{why}"
    );
    assert_eq!(linked_version(dir.path()).as_deref(), Some("1.0.0"));

    // 2.0.0 published, then its library blob altered in the registry's storage.
    let v2 = operator.publish(&remote, &reloadable_manifest("2.0.0"), &library("2.0.0"));
    let (manifest, _) = remote
        .pull_manifest(
            &layout::plugin_repository("reloadable"),
            &v2,
            layout::PLUGIN_ARTIFACT_TYPE,
        )
        .expect("manifest");
    let blob = registry.blob_path(&manifest.layers[1].digest);
    let mut bytes = std::fs::read(&blob).expect("blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).expect("tamper");
    operator.publish_catalog(
        &remote,
        &catalog(3, &[("pro", &[("reloadable", "2.0.0", &v2)])]),
    );
    let report = provision(&options).expect("catalog fine");
    let failed = &report.plugins[0];
    assert_eq!(failed.action, Action::Failed);
    let why = failed.error.as_deref().unwrap_or_default();
    assert!(
        why.contains("plugin `reloadable` 2.0.0") && why.contains("digest mismatch"),
        "{why}"
    );
    assert_eq!(linked_version(dir.path()).as_deref(), Some("1.0.0"));
    let lock = Lock::read(&provision::lock_path(&options.plugin_dir)).expect("lock");
    assert_eq!(
        lock.plugins["reloadable"].digest, v1,
        "the lock keeps the verified version"
    );
}

/// Issue 18: pulls from loopback were 40–50 % of a one-plugin refresh, half
/// of the requests `GET /v2/` probes that oci-client sends before every
/// request of a client holding anonymous auth. A refresh of one plugin is
/// now one probe per manifest, the two manifests and the five blobs.
#[test]
fn a_one_plugin_refresh_makes_one_probe_per_manifest_and_no_probe_per_blob() {
    let registry = Registry::start().expect("registry");
    let remote = remote(&registry);
    let operator = Operator::new();
    let dir = tempfile::tempdir().expect("dir");
    let v1 = operator.publish(&remote, &reloadable_manifest("1.0.0"), &library("1.0.0"));
    operator.publish_catalog(
        &remote,
        &catalog(1, &[("pro", &[("reloadable", "1.0.0", &v1)])]),
    );
    let before = registry.requests().len();
    let report = provision(&options(&registry, dir.path(), "pro", &operator)).expect("pro");
    assert_eq!(report.plugins[0].action, Action::Installed, "{report:?}");
    // The access log is written as requests end; the last may lag a moment:
    // wait for the blob pulls to show (each request is logged once).
    let logged = plugkit_testkit::process::wait_until(
        "the registry logs the pulls",
        Duration::from_secs(30),
        None,
        || {
            registry.requests()[before..]
                .iter()
                .filter(|r| r.contains("/blobs/"))
                .count()
                >= 5
        },
    );
    assert!(logged.is_ok(), "{:#?}", &registry.requests()[before..]);
    let requests: Vec<String> = registry.requests().split_off(before);
    let count = |part: &str| requests.iter().filter(|r| r.contains(part)).count();
    let probes = requests.iter().filter(|r| r.as_str() == "GET /v2/").count();
    assert_eq!(count("/manifests/"), 2, "{requests:#?}");
    assert_eq!(count("/blobs/"), 5, "{requests:#?}");
    assert!(probes <= 2, "{probes} probes: {requests:#?}");
    assert_eq!(requests.len(), 7 + probes, "{requests:#?}");
}

/// Regression (new-user trial): `cargo xtask publish-catalog` pushed an
/// expired catalog, or one whose serial was not above the registry's
/// `latest`, without a word. The publisher now reads `latest` (none yet is
/// not an error) and names why a catalog is stale before pushing it.
#[test]
fn a_catalog_not_newer_than_the_registrys_latest_is_stale_before_it_is_pushed() {
    let registry = Registry::start().expect("registry");
    let remote = remote(&registry);
    let operator = Operator::new();
    assert!(
        latest_catalog(&remote).expect("no catalog yet").is_none(),
        "a registry without a catalog has no `latest`"
    );
    let digest = operator.publish(&remote, &reloadable_manifest("1.0.0"), &library("1.0.0"));
    let entry = [("reloadable", "1.0.0", digest.as_str())];
    let five = catalog(5, &[("free", &entry)]);
    operator.publish_catalog(&remote, &five);
    let (latest, latest_digest) = latest_catalog(&remote)
        .expect("read latest")
        .expect("serial 5 is latest");
    assert_eq!(latest.serial, 5);
    assert!(latest_digest.starts_with("sha256:"), "{latest_digest}");

    let now = SystemTime::now();
    let stale = |document: &str| {
        let offered = Catalog::parse(document).expect("parses");
        stale_reason(&offered, Some(&latest), now).expect("valid expiry")
    };
    let same = stale(&five).expect("an equal serial is stale");
    assert!(
        same.contains("its serial 5 is not above the serial 5 of the registry's `latest`")
            && same.contains("set serial = 6"),
        "{same}"
    );
    let older = stale(&catalog(3, &[("free", &entry)])).expect("a lower serial is stale");
    assert!(older.contains("(rollback)"), "{older}");
    let past = expires_in(now - Duration::from_secs(7200), Duration::from_secs(3600));
    let expired = stale(&catalog_expiring(9, past.clone(), &[("free", &entry)])).expect("expired");
    assert!(
        expired.contains(&format!("it expired at {past} (serial 9)")),
        "{expired}"
    );
    assert_eq!(stale(&catalog(6, &[("free", &entry)])), None);
}
