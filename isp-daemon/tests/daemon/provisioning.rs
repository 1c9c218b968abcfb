//! Provisioning from a real OCI registry (docker-registry on 127.0.0.1):
//! `POST /api/provisioning/refresh` delivers the reference plugins into a
//! running daemon, a tier drop stops them, a version that fails its start
//! is rolled back and reported, and the registry going away keeps the
//! daemon serving; then three daemons converge on one lock file.

use isp_daemon::provisioning::ProvisioningConfig;
use isp_daemon::Config;
use plugkit_registry::{RegistryConfig, Remote};
use plugkit_testkit::process::workspace_root;
use plugkit_testkit::registry::Registry;
use plugkit_tests::oci::{catalog, reloadable_manifest, Operator};

use crate::support::{library, TestDaemon, PLUGINS};

/// What every provisioning test starts from: a real registry on
/// 127.0.0.1, a remote on it, and the operator whose key signs what is
/// published (and whom the daemons under test trust).
pub(crate) struct Fixture {
    pub(crate) registry: Registry,
    pub(crate) remote: Remote,
    pub(crate) operator: Operator,
}

impl Fixture {
    /// An open registry.
    pub(crate) fn start() -> Self {
        Self::on(Registry::start().expect("registry"), None)
    }

    /// A registry that requires `user`/`password` (htpasswd); the fixture's
    /// remote logs in with them.
    pub(crate) fn with_login(user: &str, password: &str) -> Self {
        Self::on(
            Registry::start_with_login(user, password).expect("registry"),
            Some((user.to_owned(), password.to_owned())),
        )
    }

    fn on(registry: Registry, credentials: Option<(String, String)>) -> Self {
        let remote = Remote::new(&RegistryConfig {
            url: registry.url(),
            credentials,
        })
        .expect("remote");
        Self {
            registry,
            remote,
            operator: Operator::new(),
        }
    }

    /// Fixture plugin `reloadable` at `version`, its library from fixture
    /// package `package`, signed and published; returns its digest.
    pub(crate) fn publish_reloadable(&self, version: &str, package: &str) -> String {
        self.publish_library(&reloadable_manifest(version), package)
    }

    /// Like [`Fixture::publish_reloadable`], with a manifest whose
    /// `fail_in` default makes the plugin fail in `initialize`: signed, it
    /// verifies, and fails only when started.
    pub(crate) fn publish_failing_reloadable(&self, version: &str, package: &str) -> String {
        let broken = format!(
            "{}[config.fail_in]\ntype = \"string\"\ndefault = \"initialize\"\ndescription = \"test knob\"\n",
            reloadable_manifest(version)
        );
        self.publish_library(&broken, package)
    }

    fn publish_library(&self, manifest: &str, package: &str) -> String {
        let bytes = std::fs::read(library(package)).expect(package);
        self.operator.publish(&self.remote, manifest, &bytes)
    }

    /// Publishes catalog `serial` whose one tier `pro` holds `reloadable`
    /// at `version` (`digest`).
    pub(crate) fn publish_pro_catalog(&self, serial: u64, version: &str, digest: &str) {
        self.operator.publish_catalog(
            &self.remote,
            &catalog(serial, &[("pro", &[("reloadable", version, digest)])]),
        );
    }

    /// Publishes the three reference plugins; returns (id, version, digest).
    pub(crate) fn publish_reference(&self) -> Vec<(String, String, String)> {
        PLUGINS
            .iter()
            .map(|(id, package, folder)| {
                let manifest =
                    std::fs::read_to_string(workspace_root().join(folder).join("plugin.toml"))
                        .expect("manifest");
                let digest = self.publish_library(&manifest, package);
                let version = manifest
                    .lines()
                    .find_map(|l| l.strip_prefix("version = \""))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .expect("version");
                ((*id).to_owned(), version, digest)
            })
            .collect()
    }

    /// The test configuration provisioning `tier` from this registry; see
    /// [`provisioned`].
    pub(crate) fn provisioned(&self, tier: &str) -> impl FnOnce(&mut Config) {
        provisioned(&self.registry, tier, &self.operator)
    }
}

/// `(id, version, digest)` triples as the borrowed entries `catalog` takes.
pub(crate) fn entries(published: &[(String, String, String)]) -> Vec<(&str, &str, &str)> {
    published
        .iter()
        .map(|(i, v, d)| (i.as_str(), v.as_str(), d.as_str()))
        .collect()
}

/// The test configuration provisioning tier `tier` from `registry` into
/// `<dir>/provisioned` (its only plugin directory), trusting `operator`.
pub(crate) fn provisioned(
    registry: &Registry,
    tier: &str,
    operator: &Operator,
) -> impl FnOnce(&mut Config) {
    let url = registry.url();
    let key = operator.public_line();
    let tier = tier.to_owned();
    move |config: &mut Config| {
        let dir = config
            .state
            .dir
            .clone()
            .expect("state dir")
            .with_file_name("provisioned");
        std::fs::create_dir_all(&dir).expect("provisioned dir");
        config.plugins.dirs = vec![dir];
        config.trust.keys.push(key);
        config.provisioning = Some(ProvisioningConfig {
            registry: url,
            tier,
            refresh_interval: None,
            username: None,
            password: None,
            plugin_dir: None,
        });
    }
}

pub(crate) fn version_of(daemon: &TestDaemon, plugin: &str) -> Option<String> {
    daemon
        .daemon
        .host()
        .status(plugin)
        .ok()
        .map(|s| s.identity.version.to_string())
}

fn lock_text(daemon: &TestDaemon) -> String {
    std::fs::read_to_string(daemon.dir.path().join("provisioned/plugkit.lock")).expect("lock")
}

#[test]
fn refresh_delivers_the_reference_plugins_a_tier_drop_stops_them_and_a_down_registry_keeps_serving()
{
    let mut fixture = Fixture::start();
    let (remote, operator) = (&fixture.remote, &fixture.operator);
    let published = fixture.publish_reference();
    let all = entries(&published);
    operator.publish_catalog(remote, &catalog(1, &[("pro", &all), ("free", &all[..1])]));
    let daemon = TestDaemon::start_with(fixture.provisioned("pro"), None);

    let answer = daemon.post_empty("/api/provisioning/refresh").expect(200);
    assert_eq!(answer["ok"], true, "{answer}");
    for (id, version, _) in &published {
        assert_eq!(
            version_of(&daemon, id).as_deref(),
            Some(version.as_str()),
            "{id}: {answer}"
        );
    }
    let status = daemon.get("/api/provisioning").expect(200);
    assert_eq!(status["tier"], "pro");
    assert_eq!(status["lock"]["catalog_serial"], 1);
    for (id, _, digest) in &published {
        assert_eq!(
            status["lock"]["plugins"][id]["digest"],
            digest.as_str(),
            "{status}"
        );
    }

    // The operator moves this site to `free`: stripe and network-automation stop, files kept.
    operator.publish_catalog(
        remote,
        &catalog(2, &[("pro", &all[..1]), ("free", &all[..1])]),
    );
    let answer = daemon.post_empty("/api/provisioning/refresh").expect(200);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(version_of(&daemon, "stripe"), None, "{answer}");
    assert_eq!(version_of(&daemon, "network-automation"), None);
    assert!(version_of(&daemon, "twilio").is_some());
    let audit = daemon.get("/api/audit").expect(200).to_string();
    assert!(
        audit.contains("does not include it: stopped, files kept"),
        "{audit}"
    );

    // The registry goes away: the refresh fails, saying so, and twilio serves on.
    fixture.registry.stop();
    // Regression (new-user trial): a 500 without the cause. Now a 502
    // naming the registry, the cause and what to do.
    let problem = daemon
        .post_empty("/api/provisioning/refresh")
        .expect_error(502, "the installed plugins keep serving");
    let error = problem["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&fixture.registry.url())
            && error.contains("Connection refused")
            && error.contains("check that the registry"),
        "{problem}"
    );
    assert!(version_of(&daemon, "twilio").is_some());
    let status = daemon.get("/api/provisioning").expect(200);
    assert_eq!(status["last_refresh"]["ok"], false, "{status}");
    assert_eq!(status["lock"]["catalog_serial"], 2);
}

#[test]
fn a_plugin_that_fails_its_start_is_rolled_back_and_reported() {
    let fixture = Fixture::start();
    let v1 = fixture.publish_reloadable("1.0.0", "fixture-reload-v1");
    fixture.publish_pro_catalog(1, "1.0.0", &v1);
    let daemon = TestDaemon::start_with(fixture.provisioned("pro"), None);
    daemon.post_empty("/api/provisioning/refresh").expect(200);
    assert_eq!(version_of(&daemon, "reloadable").as_deref(), Some("1.0.0"));

    // 2.0.0 is signed and verifies, but fails in initialize.
    let v2 = fixture.publish_failing_reloadable("2.0.0", "fixture-reload-v2");
    fixture.publish_pro_catalog(2, "2.0.0", &v2);
    let answer = daemon.post_empty("/api/provisioning/refresh").expect(200);
    assert_eq!(answer["ok"], false, "{answer}");
    let why = answer["failures"][0]["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("plugin `reloadable` 2.0.0 failed its start") && why.contains("initialize"),
        "{why}"
    );
    assert_eq!(version_of(&daemon, "reloadable").as_deref(), Some("1.0.0"));
    let lock = daemon.get("/api/provisioning").expect(200)["lock"].clone();
    assert_eq!(
        lock["plugins"]["reloadable"]["digest"],
        v1.as_str(),
        "the lock still pins 1.0.0: {lock}"
    );
    let linked =
        std::fs::read_link(daemon.dir.path().join("provisioned/reloadable")).expect("link");
    assert!(
        linked.to_string_lossy().contains("reloadable-1.0.0-"),
        "{}",
        linked.display()
    );
    let status = daemon.get("/api/provisioning").expect(200);
    assert_eq!(
        status["last_refresh"]["failures"][0]["plugin"], "reloadable",
        "{status}"
    );
    let audit = daemon.get("/api/audit").expect(200).to_string();
    assert!(audit.contains("failed its start"), "{audit}");
}

#[test]
fn three_daemons_converge_on_one_lock_and_swap_together() {
    let fixture = Fixture::start();
    let v1 = fixture.publish_reloadable("1.0.0", "fixture-reload-v1");
    fixture.publish_pro_catalog(1, "1.0.0", &v1);
    let fleet: Vec<TestDaemon> = (0..3)
        .map(|_| TestDaemon::start_with(fixture.provisioned("pro"), None))
        .collect();
    for daemon in &fleet {
        daemon.post_empty("/api/provisioning/refresh").expect(200);
        daemon
            .daemon
            .host()
            .activate("reloadable", "fleet", "{}")
            .expect("activate");
    }
    let first = lock_text(&fleet[0]);
    assert!(
        fleet.iter().all(|d| lock_text(d) == first),
        "the fleet's lock files differ"
    );

    let v2 = fixture.publish_reloadable("2.0.0", "fixture-reload-v2");
    fixture.publish_pro_catalog(2, "2.0.0", &v2);
    // Concurrent traffic on every daemon while each refreshes: no call fails.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let callers: Vec<_> = fleet
            .iter()
            .map(|d| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut calls = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let answer = d
                            .daemon
                            .host()
                            .plugin("reloadable")
                            .and_then(|p| p.invoke("fleet", "version", b""));
                        if let Err(e) = answer {
                            panic!("a call failed during the swap: {e}");
                        }
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        for daemon in &fleet {
            let answer = daemon.post_empty("/api/provisioning/refresh").expect(200);
            assert_eq!(answer["ok"], true, "{answer}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for caller in callers {
            assert!(caller.join().expect("caller") > 0);
        }
    });
    for daemon in &fleet {
        assert_eq!(version_of(daemon, "reloadable").as_deref(), Some("2.0.0"));
    }
    let first = lock_text(&fleet[0]);
    assert!(first.contains("\"2.0.0\""), "{first}");
    assert!(
        fleet.iter().all(|d| lock_text(d) == first),
        "the fleet's lock files differ"
    );

    // A broken version (signed, verifies, fails in initialize): all three roll back and say so.
    let v3 = fixture.publish_failing_reloadable("1.0.0", "fixture-reload-v1");
    fixture.publish_pro_catalog(3, "1.0.0", &v3);
    for daemon in &fleet {
        let answer = daemon.post_empty("/api/provisioning/refresh").expect(200);
        assert_eq!(answer["failures"][0]["plugin"], "reloadable", "{answer}");
        assert_eq!(version_of(daemon, "reloadable").as_deref(), Some("2.0.0"));
        let lock = daemon.get("/api/provisioning").expect(200)["lock"].clone();
        assert_eq!(
            lock["plugins"]["reloadable"]["digest"],
            v2.as_str(),
            "{lock}"
        );
        assert_eq!(lock["catalog_serial"], 3);
    }
    let first = lock_text(&fleet[0]);
    assert!(
        fleet.iter().all(|d| lock_text(d) == first),
        "the fleet's lock files differ"
    );

    // The registry stops: every refresh fails, every daemon serves 2.0.0 on.
    let mut fixture = fixture;
    fixture.registry.stop();
    for daemon in &fleet {
        daemon
            .post_empty("/api/provisioning/refresh")
            .expect_error(502, "keep serving");
        let answer = daemon
            .daemon
            .host()
            .plugin("reloadable")
            .and_then(|p| p.invoke("fleet", "version", b""))
            .expect("still serving");
        assert_eq!(String::from_utf8_lossy(&answer), "2.0.0");
    }
}

#[test]
fn a_tampered_blob_is_reported_by_plugin_in_the_api_and_audit_and_the_last_set_serves() {
    let fixture = Fixture::start();
    let v1 = fixture.publish_reloadable("1.0.0", "fixture-reload-v1");
    fixture.publish_pro_catalog(1, "1.0.0", &v1);
    let daemon = TestDaemon::start_with(fixture.provisioned("pro"), None);
    daemon.post_empty("/api/provisioning/refresh").expect(200);
    let v2 = fixture.publish_reloadable("2.0.0", "fixture-reload-v2");
    let (manifest, _) = fixture
        .remote
        .pull_manifest(
            &plugin_host::package::oci::plugin_repository("reloadable"),
            &v2,
            plugin_host::package::oci::PLUGIN_ARTIFACT_TYPE,
        )
        .expect("manifest");
    let blob = fixture.registry.blob_path(&manifest.layers[1].digest);
    let mut bytes = std::fs::read(&blob).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&blob, bytes).expect("tamper");
    fixture.publish_pro_catalog(2, "2.0.0", &v2);
    let answer = daemon.post_empty("/api/provisioning/refresh").expect(200);
    let why = answer["failures"][0]["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("plugin `reloadable` 2.0.0") && why.contains("digest mismatch"),
        "{why}"
    );
    assert_eq!(version_of(&daemon, "reloadable").as_deref(), Some("1.0.0"));
    let status = daemon.get("/api/provisioning").expect(200);
    assert_eq!(
        status["lock"]["plugins"]["reloadable"]["digest"],
        v1.as_str(),
        "{status}"
    );
    let audit = daemon.get("/api/audit").expect(200).to_string();
    assert!(audit.contains("digest mismatch"), "{audit}");
}

#[test]
fn the_periodic_refresh_picks_up_a_new_catalog_on_its_own() {
    let fixture = Fixture::start();
    let v1 = fixture.publish_reloadable("1.0.0", "fixture-reload-v1");
    let v2 = fixture.publish_reloadable("2.0.0", "fixture-reload-v2");
    fixture.publish_pro_catalog(1, "1.0.0", &v1);
    let periodic = fixture.provisioned("pro");
    let daemon = TestDaemon::start_with(
        |config: &mut Config| {
            periodic(config);
            if let Some(p) = config.provisioning.as_mut() {
                p.refresh_interval = Some("200ms".to_owned());
            }
        },
        None,
    );
    isp_daemon::provisioning::spawn_periodic(std::sync::Arc::clone(&daemon.daemon));
    let serving = |version: &str| {
        plugkit_testkit::process::wait_until(
            &format!("reloadable {version} serving"),
            std::time::Duration::from_secs(30),
            None,
            || version_of(&daemon, "reloadable").as_deref() == Some(version),
        )
    };
    serving("1.0.0").expect("the first refresh runs at start");
    fixture.publish_pro_catalog(2, "2.0.0", &v2);
    serving("2.0.0").expect("the next interval picks up serial 2");
    // The status is recorded when the refresh that swapped ends.
    plugkit_testkit::process::wait_until(
        "the refresh of serial 2 recorded",
        std::time::Duration::from_secs(30),
        None,
        || daemon.get("/api/provisioning").json()["last_refresh"]["report"]["catalog_serial"] == 2,
    )
    .expect("recorded");
    let status = daemon.get("/api/provisioning").expect(200);
    assert_eq!(status["refresh_interval"], "200ms");
    assert_eq!(status["last_refresh"]["ok"], true, "{status}");
}

#[test]
fn provisioning_routes_say_when_it_is_not_configured_and_need_the_token() {
    let daemon = TestDaemon::start();
    daemon
        .get("/api/provisioning")
        .expect_error(409, "add a [provisioning] section");
    daemon
        .post_empty("/api/provisioning/refresh")
        .expect_error(409, "add a [provisioning] section");
    let answer = daemon.request("POST", "/api/provisioning/refresh", None, None);
    assert_eq!(answer.status, 401, "{}", answer.text);
}
