//! The daemon as a new operator first runs it (findings of a new-user
//! trial): relative paths in a configuration read from another folder, a
//! plugin directory that does not exist yet under `--watch`, and the
//! directory `[provisioning]` fills created at start, and the outbound
//! events of a provisioning install and of a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use isp_daemon::Config;
use plugkit_registry::publish::publish_catalog;
use plugkit_tests::oci::catalog;
use serde_json::json;

use crate::lifecycle::Running;
use crate::provisioning::{entries, Fixture};
use crate::support::{install_signed, TestDaemon, ADMIN_TOKEN};
use crate::webhooks_out::{body_of, of_type, worker_caught_up, Receiver};

const LIMIT: Duration = Duration::from_secs(60);

/// A configuration whose paths are all relative: plugins in `plugins`,
/// state in `state`, unsigned plugins allowed; `extra` is appended.
fn write_config(folder: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(folder).expect("config folder");
    let path = folder.join("isp.toml");
    std::fs::write(
        &path,
        format!(
            "[plugins]\ndirs = [\"plugins\"]\n\n[trust]\npolicy = \"allow-unsigned\"\n\n\
             [state]\ndir = \"state\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             token = \"${{env:ISP_TEST_ADMIN_TOKEN}}\"\n\n\
             [standins]\ntwilio = \"on\"\nstripe = \"on\"\n{extra}"
        ),
    )
    .expect("write config");
    path
}

/// The reference plugins installed complete in `root/staged`, to be
/// renamed into a watched directory in one step.
fn staged(root: &Path) -> PathBuf {
    let dir = root.join("staged");
    install_signed(&dir);
    dir
}

/// Starts `isp-daemon --config etc/isp.toml --watch --serve` in `cwd`.
fn start_watching(cwd: &Path) -> Running {
    Running::start_in(
        Some(cwd),
        &["--config", "etc/isp.toml", "--watch", "--serve"],
        &[("ISP_TEST_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
}

/// Regression (new-user trial): with a relative `--config` and relative
/// `dirs`, the daemon said "watching" but started nothing dropped in until
/// a reload request (the watched path was relative, the OS's events absolute).
#[test]
fn a_relative_config_read_from_another_folder_watches_its_relative_plugin_dir() {
    let root = tempfile::tempdir().expect("temp dir");
    let etc = root.path().join("etc");
    write_config(&etc, "");
    std::fs::create_dir_all(etc.join("plugins")).expect("plugin dir");
    let stage = staged(root.path());
    let mut daemon = start_watching(root.path());

    let folder = std::fs::canonicalize(&etc).expect("canonical");
    let watching = daemon.wait_for_line("[reload] watching", LIMIT);
    assert!(
        watching.contains(&folder.join("plugins").display().to_string()),
        "{watching}"
    );
    daemon.wait_for_line("serving; stop with", LIMIT);
    std::fs::rename(stage.join("twilio"), etc.join("plugins/twilio")).expect("drop twilio in");
    daemon.wait_for_line("[reload] twilio 0.1.0 started", LIMIT);
    // The state directory follows the same rule: next to the configuration.
    assert!(
        etc.join("state/audit.jsonl").exists(),
        "{}",
        daemon.output()
    );
    assert!(!root.path().join("state").exists(), "{}", daemon.output());
}

/// Regression (new-user trial): `--watch` exited when a plugin directory
/// did not exist yet. Now it warns, naming the directory, and once the
/// directory is created starts what is in it and watches it.
#[test]
fn watch_waits_for_a_missing_plugin_dir_and_starts_its_plugins_once_created() {
    let root = tempfile::tempdir().expect("temp dir");
    let etc = root.path().join("etc");
    write_config(&etc, "");
    let stage = staged(root.path());
    let mut daemon = start_watching(root.path());

    let plugins = std::fs::canonicalize(&etc)
        .expect("canonical")
        .join("plugins");
    let warning = daemon.wait_for_line("does not exist (yet)", LIMIT);
    assert!(
        warning.contains(&plugins.display().to_string()) && warning.contains("[plugins] dirs"),
        "{warning}"
    );
    daemon.wait_for_line("live reload starts when one is created", LIMIT);
    daemon.wait_for_line("serving; stop with", LIMIT);

    // The directory appears with one plugin in it (renamed in, as a deploy does).
    let first = root.path().join("first");
    std::fs::create_dir_all(&first).expect("folder");
    std::fs::rename(stage.join("twilio"), first.join("twilio")).expect("stage twilio");
    std::fs::rename(&first, &plugins).expect("create the plugin directory");
    daemon.wait_for_line("exists now: watching it", LIMIT);
    daemon.wait_for_line("[reload] twilio 0.1.0 started", LIMIT);
    // And the watch is on it: a plugin dropped in later starts too.
    std::fs::rename(stage.join("stripe"), plugins.join("stripe")).expect("drop stripe in");
    daemon.wait_for_line("[reload] stripe 0.1.0 started", LIMIT);
}

/// Regression (new-user trial): the directory `[provisioning]` fills was
/// created only by `--provision`; now the daemon creates it at start, so
/// `--watch` watches it from the first moment.
#[test]
fn the_plugin_dir_provisioning_fills_is_created_at_start_and_watched() {
    let root = tempfile::tempdir().expect("temp dir");
    let etc = root.path().join("etc");
    // Port 9 (discard) on loopback: nothing listens; the refresh fails in
    // the background and the daemon keeps serving.
    write_config(
        &etc,
        "\n[provisioning]\nregistry = \"http://127.0.0.1:9\"\ntier = \"pro\"\n",
    );
    let stage = staged(root.path());
    let mut daemon = start_watching(root.path());

    let plugins = std::fs::canonicalize(&etc)
        .expect("canonical")
        .join("plugins");
    let created = daemon.wait_for_line("created the plugin directory", LIMIT);
    assert!(
        created.contains(&plugins.display().to_string()),
        "{created}"
    );
    daemon.wait_for_line("[reload] watching", LIMIT);
    daemon.wait_for_line("serving; stop with", LIMIT);
    assert!(
        daemon.line_with("does not exist (yet)").is_none(),
        "{}",
        daemon.output()
    );
    std::fs::rename(stage.join("twilio"), plugins.join("twilio")).expect("drop twilio in");
    daemon.wait_for_line("[reload] twilio 0.1.0 started", LIMIT);
}

/// Regression (new-user trial): one provisioning install sent two
/// `plugin.installed` events (the manifest's registration and
/// provisioning's own audit line), every restart sent `0.1.0 → 0.1.0` for
/// every plugin, and a refused catalog was `plugin.failed` with a null
/// plugin. Through the real outbound path: a receiver verifying with the
/// Standard Webhooks reference library.
#[test]
fn one_provisioning_install_is_one_event_and_a_restart_sends_none() {
    let fixture = Fixture::start();
    let (remote, operator) = (&fixture.remote, &fixture.operator);
    let published = fixture.publish_reference();
    let all = entries(&published);
    operator.publish_catalog(remote, &catalog(1, &[("pro", &all)]));
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = Receiver::start(&[secret], "200");
    let configure = || {
        let provision = fixture.provisioned("pro");
        move |c: &mut Config| {
            provision(c);
            c.webhooks.delivery.poll_ms = 20;
            c.webhooks.delivery.jitter_percent = 0;
        }
    };
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let state = dir.path().join("state");

    let first = TestDaemon::start_in(Arc::clone(&dir), configure(), None);
    let worker = isp_daemon::webhooks::start_delivery(&first.daemon).expect("worker");
    worker_caught_up(&state);
    first
        .post(
            "/api/webhooks/endpoints",
            &json!({"id": "crm", "url": receiver.url, "secret": secret, "events": ["*"]}),
        )
        .expect(201);
    let answer = first.post_empty("/api/provisioning/refresh").expect(200);
    assert_eq!(answer["ok"], true, "{answer}");
    // A refused catalog marks the end of the install's events.
    publish_catalog(remote, catalog(2, &[("pro", &all)]).as_bytes(), None).expect("unsigned");
    first
        .post_empty("/api/provisioning/refresh")
        .expect_error(422, "unsigned");
    let records = receiver.wait("provisioning.failed arrives", |r| {
        !of_type(r, "provisioning.failed").is_empty()
    });
    let mut installed: Vec<String> = of_type(&records, "plugin.installed")
        .into_iter()
        .map(|r| {
            body_of(r)["data"]["plugin"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    installed.sort();
    assert_eq!(
        installed,
        ["network-automation", "stripe", "twilio"],
        "one plugin.installed per plugin: {records:#?}"
    );
    assert!(
        of_type(&records, "plugin.failed").is_empty(),
        "{records:#?}"
    );
    let failed = body_of(of_type(&records, "provisioning.failed")[0]);
    let detail = failed["data"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&fixture.registry.url()) && detail.contains("unsigned"),
        "{failed:#}"
    );
    drop(worker);
    first.stop();

    // A restart with nothing changed: no plugin.installed.
    let second = TestDaemon::start_in(Arc::clone(&dir), configure(), None);
    let _worker = isp_daemon::webhooks::start_delivery(&second.daemon).expect("worker");
    second
        .post_empty("/api/provisioning/refresh")
        .expect_error(422, "unsigned");
    let records = receiver.wait("the second provisioning.failed arrives", |r| {
        of_type(r, "provisioning.failed").len() == 2
    });
    assert_eq!(
        of_type(&records, "plugin.installed").len(),
        3,
        "the restart sent plugin.installed again: {records:#?}"
    );
}

/// Runs the binary to its exit in `cwd`; returns its exit code and stderr.
fn run_to_exit(cwd: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_isp-daemon"))
        .current_dir(cwd)
        .args(args)
        .env("ISP_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running isp-daemon");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Regression (new-user trial): an unknown tier said neither the file nor
/// the tenant's line, and an address in use did not say which setting to
/// change.
#[test]
fn config_errors_name_the_file_the_line_and_the_setting_to_change() {
    let root = tempfile::tempdir().expect("temp dir");
    let etc = root.path().join("etc");
    let config = write_config(&etc, "\n[tenants.acme]\ntier = \"gold\"\n");
    let (code, stderr) = run_to_exit(root.path(), &["--config", "etc/isp.toml"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("in etc/isp.toml")
            && stderr
                .contains("[tenants.acme] (line 18): tier = \"gold\" is not a configured tier")
            && stderr.contains("`free` < `pro` < `enterprise`"),
        "{stderr}"
    );

    // The admin API's address is taken: the setting to change is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("tier = \"gold\"", "tier = \"pro\"")
        .replace("127.0.0.1:0", &addr);
    std::fs::write(&config, text).expect("write config");
    let (code, stderr) = run_to_exit(root.path(), &["--config", "etc/isp.toml"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("the admin API cannot listen on {addr}"))
            && stderr.contains("change [admin] listen in etc/isp.toml or pass --listen"),
        "{stderr}"
    );
    let (code, stderr) = run_to_exit(
        root.path(),
        &["--config", "etc/isp.toml", "--listen", &addr],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pass another --listen"), "{stderr}");
}
