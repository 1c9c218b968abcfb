//! Installing, upgrading and removing plugins through the admin API
//! (`POST /api/packages`, `DELETE /api/plugins/{id}`): real packages made
//! from the fixture libraries, signed with the test key, and the bad ones an
//! operator may upload, each refused by name with nothing written.

use std::path::Path;
use std::time::Duration;

use plugin_host::package::signature::SignedClaims;
use plugkit_testkit::process::workspace_root;
use serde_json::{json, Value};

use crate::support::{library, signer, Answer, TestDaemon, TOKEN};

/// tenant-echo's manifest, as the fixture ships it.
pub(crate) fn tenant_echo_manifest() -> String {
    std::fs::read_to_string(workspace_root().join("tests/fixtures/tenant-echo/plugin.toml"))
        .expect("tenant-echo manifest")
}

/// tenant-echo's manifest with `max_calls` bounded to 1..=60.
pub(crate) fn bounded_tenant_echo_manifest() -> String {
    let manifest = tenant_echo_manifest();
    let bounded = manifest.replace("default = 10\n", "default = 10\nmin = 1\nmax = 60\n");
    assert_ne!(
        manifest, bounded,
        "tenant-echo's manifest changed; update this test"
    );
    bounded
}

/// dep-b's manifest, declaring that it needs tenant-echo.
pub(crate) fn dependent_manifest() -> String {
    "id = \"dep-b\"\nname = \"Dep B\"\nversion = \"0.1.0\"\napi = \"^0.2\"\n\
     library = \"libfixture_dep_b.so\"\nrequired_tier = \"free\"\n\n\
     [dependencies]\ntenant-echo = \"^0.1\"\n"
        .to_owned()
}

fn reloadable_manifest(version: &str) -> String {
    format!(
        "id = \"reloadable\"\nname = \"Reloadable\"\nversion = \"{version}\"\napi = \"^0.2\"\n\
         library = \"libreloadable.so\"\nrequired_tier = \"free\"\n"
    )
}

/// How a test package is made.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Signing {
    TestKey,
    OtherKey,
    Unsigned,
}

/// A package as `cargo xtask install-plugin` makes it, as a tar: the
/// manifest, `package`'s library under the manifest's `library` name, its
/// signature binding both, and `SHA256SUMS`.
pub(crate) fn package_tar(manifest: &str, package: &str, signing: Signing) -> Vec<u8> {
    let parsed =
        plugin_host::package::manifest::Manifest::parse(manifest, Path::new("plugin.toml"))
            .expect("test manifest");
    let bytes = std::fs::read(library(package)).expect("fixture library");
    let claims = SignedClaims::new(&parsed.id, &parsed.version.to_string(), &bytes)
        .with_manifest(manifest.as_bytes());
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("plugin.toml".to_owned(), manifest.as_bytes().to_vec()),
        (parsed.library.clone(), bytes.clone()),
    ];
    let signature = match signing {
        Signing::TestKey => Some(signer().sign_claims(&bytes, &claims)),
        Signing::OtherKey => Some(crate::support::other_signer().sign_claims(&bytes, &claims)),
        Signing::Unsigned => None,
    };
    if let Some(signature) = signature {
        files.push((
            format!("{}.minisig", parsed.library),
            signature.into_bytes(),
        ));
    }
    let sums = format!(
        "{}  plugin.toml\n{}  {}\n",
        plugin_host::package::signature::sha256_hex(manifest.as_bytes()),
        plugin_host::package::signature::sha256_hex(&bytes),
        parsed.library
    );
    files.push(("SHA256SUMS".to_owned(), sums.into_bytes()));
    tar_of(&files)
}

pub(crate) fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, data.as_slice())
            .expect("append");
    }
    builder.into_inner().expect("tar")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> Answer {
    let mut response = result.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        content_type,
        text,
    }
}

/// `POST /api/packages?<query>` with `tar` as the body.
pub(crate) fn upload(d: &TestDaemon, query: &str, tar: &[u8]) -> Answer {
    let url = format!("{}/api/packages?{query}", d.base);
    answer(
        agent()
            .post(&url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/x-tar")
            .send(tar),
        "uploading",
    )
}

/// `DELETE /api/plugins/{plugin}`.
pub(crate) fn remove(d: &TestDaemon, plugin: &str) -> Answer {
    let url = format!("{}/api/plugins/{plugin}", d.base);
    answer(
        agent()
            .delete(&url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call(),
        "removing",
    )
}

/// The names in the plugin directory (dot entries included).
fn listing(d: &TestDaemon) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(d.dir.path().join("plugins"))
        .expect("plugin dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn installed_ids(d: &TestDaemon) -> Vec<String> {
    d.get("/api/plugins").expect(200)["installed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect()
}

fn audit_lines(d: &TestDaemon) -> Vec<(String, String, String)> {
    d.get("/api/audit").expect(200)["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["plugin"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn has_audit(d: &TestDaemon, action: &str, plugin: &str, outcome: &str) -> bool {
    audit_lines(d)
        .iter()
        .any(|(a, p, o)| a == action && p == plugin && o == outcome)
}

#[test]
fn an_uploaded_signed_package_is_verified_installed_started_and_removed() {
    let d = TestDaemon::start();
    let tar = package_tar(
        &tenant_echo_manifest(),
        "fixture-tenant-echo",
        Signing::TestKey,
    );
    let body = upload(&d, "name=tenant-echo.tar", &tar).expect(200);
    assert_eq!(body["outcome"], "installed", "{body}");
    assert!(
        body["signature"]
            .as_str()
            .unwrap_or_default()
            .starts_with("signed by key"),
        "{body}"
    );
    assert!(installed_ids(&d).contains(&"tenant-echo".to_owned()));
    // The layout xtask uses: a link into .store.
    let link = d.dir.path().join("plugins/tenant-echo");
    let target = std::fs::read_link(&link).expect("tenant-echo is a link");
    assert!(target.starts_with(".store"), "{}", target.display());
    assert!(has_audit(&d, "install", "tenant-echo", "ok"));
    // The same version again is a conflict that changes nothing.
    upload(&d, "name=tenant-echo.tar", &tar).expect_error(409, "already installed");

    // Configure and activate it for a tenant with a secret reference.
    let overrides = json!({"api_key": "${env:ISP_TEST_ADMIN_TOKEN}", "max_calls": 3});
    d.post(
        "/api/tenants/corner-wifi/plugins/tenant-echo/activate",
        &overrides,
    )
    .expect(200);
    assert_eq!(d.state_of("corner-wifi", "tenant-echo"), "active");

    let removed = remove(&d, "tenant-echo").expect(200);
    assert_eq!(removed["removed_version"], "0.1.0", "{removed}");
    // New-user trial: the answer said `"deactivation": null`; it says what
    // happened for each tenant.
    assert_eq!(
        removed["deactivation"],
        json!({"acme-fiber": "was not active", "bluesky-net": "was not active",
               "corner-wifi": "deactivated"}),
        "{removed}"
    );
    assert_eq!(removed["stop"], "stopped and unloaded", "{removed}");
    // The kept request's problem names what the operator does, not a Rust
    // function (it named `Platform::register_plugin`).
    let tenant = d.get("/api/tenants/corner-wifi").expect(200);
    let request = tenant["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["plugin"] == "tenant-echo")
        .unwrap_or_else(|| panic!("the request is kept: {tenant:#}"));
    let problem = request["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("POST /api/packages") && !problem.contains("::"),
        "{problem}"
    );
    assert!(!installed_ids(&d).contains(&"tenant-echo".to_owned()));
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is gone"
    );
    assert!(has_audit(&d, "remove", "tenant-echo", "ok"));
    remove(&d, "tenant-echo").expect_error(404, "no plugin `tenant-echo` is installed");
}

#[test]
fn a_removal_is_refused_while_an_installed_plugin_depends_on_it() {
    let d = TestDaemon::start();
    // The dependent first: refused, since what it needs is not installed.
    let dependent = package_tar(&dependent_manifest(), "fixture-dep-b", Signing::TestKey);
    upload(&d, "name=dep-b.tar", &dependent).expect_error(
        422,
        "needs `tenant-echo` ^0.1 (not installed); install that first",
    );
    let tar = package_tar(
        &tenant_echo_manifest(),
        "fixture-tenant-echo",
        Signing::TestKey,
    );
    upload(&d, "name=tenant-echo.tar", &tar).expect(200);
    upload(&d, "name=dep-b.tar", &dependent).expect(200);

    let refused = remove(&d, "tenant-echo").expect_error(
        409,
        "plugin `tenant-echo` cannot be removed: installed plugins depend on it: `dep-b`",
    );
    assert_eq!(refused["dependents"], json!(["dep-b"]));
    assert_eq!(refused["plugin"], "tenant-echo");
    assert!(installed_ids(&d).contains(&"tenant-echo".to_owned()));
    assert!(has_audit(&d, "remove", "tenant-echo", "refused"));

    remove(&d, "dep-b").expect(200);
    remove(&d, "tenant-echo").expect(200);
}

#[test]
fn an_upgrade_swaps_the_running_version_and_a_downgrade_needs_consent() {
    let d = TestDaemon::start();
    let v1 = package_tar(
        &reloadable_manifest("1.0.0"),
        "fixture-reload-v1",
        Signing::TestKey,
    );
    let v2 = package_tar(
        &reloadable_manifest("2.0.0"),
        "fixture-reload-v2",
        Signing::TestKey,
    );
    upload(&d, "name=v1.tar", &v1).expect(200);
    let upgraded = upload(&d, "name=v2.tar", &v2).expect(200);
    assert_eq!(upgraded["outcome"], "upgraded", "{upgraded}");
    assert_eq!(upgraded["from_version"], "1.0.0");
    let version = |d: &TestDaemon| {
        d.daemon
            .host()
            .status("reloadable")
            .map(|s| s.identity.version.to_string())
            .unwrap_or_default()
    };
    assert_eq!(version(&d), "2.0.0");
    upload(&d, "name=v1.tar", &v1).expect_error(409, "add `allow_downgrade=true`");
    assert_eq!(version(&d), "2.0.0");
    upload(&d, "name=v1.tar&allow_downgrade=true", &v1).expect(200);
    assert_eq!(version(&d), "1.0.0");
    let history = d.get("/api/history").expect(200);
    let reloads = history["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["plugin"] == "reloadable" && e["action"] == "reload")
        .count();
    assert_eq!(reloads, 2, "{history}");
}

#[test]
fn bad_packages_are_refused_by_name_and_nothing_is_written() {
    let d = TestDaemon::start();
    let before = listing(&d);
    let manifest = tenant_echo_manifest();
    let good = package_tar(&manifest, "fixture-tenant-echo", Signing::TestKey);
    let check = |what: &str, tar: &[u8], status: u16, part: &str| {
        let answer = upload(&d, "name=bad.tar", tar);
        let body = answer.expect_error(status, part);
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("`bad.tar`"), "{what}: {error}");
        assert_eq!(
            listing(&d),
            before,
            "{what} wrote into the plugin directory"
        );
    };
    check(
        "unsigned",
        &package_tar(&manifest, "fixture-tenant-echo", Signing::Unsigned),
        422,
        "it is unsigned (no `libfixture_tenant_echo.so.minisig`)",
    );
    check(
        "wrong key",
        &package_tar(&manifest, "fixture-tenant-echo", Signing::OtherKey),
        422,
        "its signature does not verify",
    );
    // A library changed after signing (one byte in the middle).
    let mut files = read_files(&good);
    let library = files
        .iter_mut()
        .find(|(n, _)| n == "libfixture_tenant_echo.so")
        .expect("library");
    let middle = library.1.len() / 2;
    library.1[middle] ^= 0xff;
    let tampered = tar_of(&files);
    check(
        "tampered",
        &tampered,
        422,
        "changed after the package was made",
    );
    // The same without SHA256SUMS: the signature catches it.
    files.retain(|(n, _)| n != "SHA256SUMS");
    check(
        "tampered, no sums",
        &tar_of(&files),
        422,
        "its signature does not verify",
    );
    let broken = manifest.replace("version = \"0.1.0\"", "version = \"one\"");
    let mut files = read_files(&good);
    files[0].1 = broken.into_bytes();
    check(
        "broken manifest",
        &tar_of(&files),
        422,
        "its manifest is broken",
    );
    // New-user trial: garbage gave the tar reader's words; the refusal
    // names the upload, what it looks like and how to make a package.
    check(
        "not a tar",
        b"hello, world",
        422,
        "package `bad.tar`: the upload is not a tar archive: its 12 bytes look like text; upload a plain tar of \
         one package folder: make the folder with `cargo xtask install-plugin",
    );
    check("gzip", &[0x1f, 0x8b, 8, 0, 0, 0], 422, "gzip-compressed");
    let huge = vec![0u8; isp_daemon::upload::MAX_PACKAGE_BYTES + 1];
    check("too large", &huge, 413, "over the limit of 64 MiB");
    assert!(has_audit(&d, "install", "tenant-echo", "refused"));
    assert!(!installed_ids(&d).contains(&"tenant-echo".to_owned()));
}

fn read_files(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = e.path().expect("path").to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("read");
            (name, data)
        })
        .collect()
}

#[test]
fn a_refused_configuration_names_each_field_with_the_api_s_words() {
    let d = TestDaemon::start();
    let tar = package_tar(
        &bounded_tenant_echo_manifest(),
        "fixture-tenant-echo",
        Signing::TestKey,
    );
    upload(&d, "name=tenant-echo.tar", &tar).expect(200);
    let schema = d.get("/api/plugins/tenant-echo/schema").expect(200);
    let api_key = schema["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["key"] == "api_key")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(api_key["sensitive"], true, "{schema}");
    assert_eq!(api_key["required"], true, "{schema}");
    let max_calls = schema["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["key"] == "max_calls")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(max_calls["default"], 10, "{schema}");
    assert_eq!(
        (max_calls["min"].as_f64(), max_calls["max"].as_f64()),
        (Some(1.0), Some(60.0))
    );

    let refused = d
        .post(
            "/api/tenants/corner-wifi/plugins/tenant-echo/activate",
            &json!({"api_key": "plain-text-secret", "max_calls": "ten", "ratio": 0.5}),
        )
        .expect_error(422, "has 2 problems");
    let fields = refused["fields"].as_array().cloned().unwrap_or_default();
    let error_of = |field: &str| {
        fields
            .iter()
            .find(|f| f["field"] == field)
            .and_then(|f| f["error"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let whole = refused["error"].as_str().unwrap_or_default();
    for field in ["api_key", "max_calls"] {
        let error = error_of(field);
        assert!(!error.is_empty(), "no error for {field}: {refused}");
        assert!(whole.contains(&error), "{error:?} is not in {whole:?}");
    }
    assert!(error_of("api_key").contains("must be a secret reference"));
    assert!(error_of("max_calls").contains("must be of type integer"));
    assert_eq!(d.state_of("corner-wifi", "tenant-echo"), "inactive");
    let refused = d
        .post(
            "/api/tenants/corner-wifi/plugins/tenant-echo/activate",
            &json!({"api_key": "${env:ISP_TEST_ADMIN_TOKEN}", "max_calls": 500}),
        )
        .expect_error(422, "has 1 problem");
    assert_eq!(refused["fields"][0]["field"], "max_calls", "{refused}");
    assert!(
        refused["fields"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("must be between 1 and 60"),
        "{refused}"
    );

    // Accepted as a reference, shown as one, never resolved in a view.
    d.post(
        "/api/tenants/corner-wifi/plugins/tenant-echo/activate",
        &json!({"api_key": "${env:ISP_TEST_ADMIN_TOKEN}"}),
    )
    .expect(200);
    let view = d
        .get("/api/tenants/corner-wifi/plugins/tenant-echo/config")
        .expect(200);
    assert_eq!(view["config"]["api_key"], "<redacted>", "{view}");
    assert!(
        view["sources"]["api_key"]
            .as_str()
            .unwrap_or_default()
            .ends_with("via ${env:ISP_TEST_ADMIN_TOKEN}"),
        "{view}"
    );
    assert!(!view.to_string().contains(TOKEN), "{view}");
}

#[test]
fn the_catalog_lists_each_plugin_directory_and_the_tiers_what_they_include() {
    let d = TestDaemon::start();
    let catalog = d.get("/api/catalog").expect(200);
    let source = &catalog["sources"][0];
    assert_eq!(source["kind"], "plugin-directory", "{catalog}");
    assert_eq!(source["installable"], true);
    let ids: Vec<&str> = source["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "{catalog}");
    for id in ["twilio", "stripe", "network-automation"] {
        assert!(ids.contains(&id), "{catalog}");
    }
    let tiers = d.get("/api/tiers").expect(200);
    let includes = |tier: &str| -> Vec<String> {
        tiers["tiers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["tier"] == tier)
            .map(|t| {
                t["includes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(includes("free"), ["twilio"], "{tiers}");
    assert_eq!(includes("pro"), ["stripe", "twilio"], "{tiers}");
    assert_eq!(
        includes("enterprise"),
        ["network-automation", "stripe", "twilio"],
        "{tiers}"
    );
    let series = d.get("/api/metrics/series").expect(200);
    assert_eq!(series["interval_ms"], 5000);
    assert!(
        series["plugins"]["twilio"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{series}"
    );
}

#[test]
fn an_upgrade_that_fails_to_start_is_undone_and_the_previous_version_keeps_serving() {
    let d = TestDaemon::start();
    let v1 = package_tar(
        &reloadable_manifest("1.0.0"),
        "fixture-reload-v1",
        Signing::TestKey,
    );
    upload(&d, "name=v1.tar", &v1).expect(200);
    let link = d.dir.path().join("plugins/reloadable");
    let before = std::fs::read_link(&link).expect("a link");
    // Version 2 configured (by its manifest's defaults) to fail in initialize.
    let failing = format!(
        "{}\n[config.fail_in]\ntype = \"string\"\ndefault = \"initialize\"\n",
        reloadable_manifest("2.0.0")
    );
    let v2 = package_tar(&failing, "fixture-reload-v2", Signing::TestKey);
    let refused = upload(&d, "name=v2-broken.tar", &v2).expect_error(
        500,
        "package `v2-broken.tar`: plugin `reloadable` was verified and written but did not start",
    );
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("the previous version keeps running"),
        "{refused}"
    );
    assert_eq!(std::fs::read_link(&link).expect("a link"), before);
    let version = d
        .daemon
        .host()
        .status("reloadable")
        .map(|s| s.identity.version.to_string())
        .unwrap_or_default();
    assert_eq!(version, "1.0.0");
    let store: Vec<String> = std::fs::read_dir(d.dir.path().join("plugins/.store"))
        .expect("store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        store
            .iter()
            .all(|name| !name.starts_with("reloadable-2.0.0")),
        "{store:?}"
    );
    assert!(has_audit(&d, "rollback", "reloadable", "failed"));
}
