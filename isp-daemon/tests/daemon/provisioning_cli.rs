//! `isp-daemon --provision` as an operator or a script runs it, against a
//! real registry (docker-registry on 127.0.0.1): one refresh at start, the
//! JSON answer on stdout, exit 0 when the whole tier installed; exit 1 with
//! the reason when it did not, the last verified set left in place.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use plugkit_tests::oci::{catalog, Operator};
use serde_json::Value;

use crate::provisioning::{entries, Fixture};

const BINARY: &str = env!("CARGO_BIN_EXE_isp-daemon");

/// Runs the daemon binary in `dir` (its plugin directory `dir/plugins`,
/// state `dir/state`) trusting `operator`, with `args`, to its end.
fn run_daemon(dir: &Path, operator: &Operator, args: &[&str]) -> Output {
    let key = operator.public_line();
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .args(["--plugin-dir", "plugins", "--state-dir", "state"])
        .args(["--trusted-key", &key, "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .env("ISP_DAEMON_ADMIN_TOKEN", "provision-flag-test-token")
        .stdin(Stdio::null());
    command.output().expect("running isp-daemon")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// stdout's one line, as JSON.
fn answer(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout: {}", text(output));
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

#[test]
fn provision_flag_installs_the_tier_prints_json_and_exits_zero_then_exits_one_naming_the_failure() {
    let mut fixture = Fixture::start();
    let v1 = fixture.publish_reloadable("1.0.0", "fixture-reload-v1");
    fixture.publish_pro_catalog(1, "1.0.0", &v1);
    let operator = &fixture.operator;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = fixture.registry.url();

    let first = run_daemon(
        dir.path(),
        operator,
        &["--provision", "--json", "--registry", &url, "--tier", "pro"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let body = answer(&first);
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["lock"]["plugins"]["reloadable"]["digest"], v1.as_str());
    assert_eq!(
        body["report"]["plugins"][0]["action"], "installed",
        "{body}"
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("[provisioning] reloadable: pulling 1.0.0"),
        "progress lines go to stderr with --json: {}",
        text(&first)
    );
    let lock = std::fs::read_to_string(dir.path().join("plugins/plugkit.lock")).expect("lock");
    assert!(lock.contains(&v1), "{lock}");

    // Without --json: progress and a summary on stdout; the tier is unchanged.
    let again = run_daemon(
        dir.path(),
        operator,
        &["--provision", "--registry", &url, "--tier", "pro"],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("[provisioning] reloadable: unchanged 1.0.0")
            && stdout.contains("tier `pro` from")
            && stdout.contains("lock reloadable 1.0.0"),
        "{}",
        text(&again)
    );

    // A tier the catalog does not have: exit 1, naming it; the lock stays.
    let unknown = run_daemon(
        dir.path(),
        operator,
        &[
            "--provision",
            "--json",
            "--registry",
            &url,
            "--tier",
            "gold",
        ],
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    let body = answer(&unknown);
    assert_eq!(body["ok"], false, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("gold"),
        "{body}"
    );
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("isp-daemon: error:") && stderr.contains("keep serving"),
        "{}",
        text(&unknown)
    );

    // The registry down: exit 1, naming the registry; what was installed stays.
    fixture.registry.stop();
    let down = run_daemon(
        dir.path(),
        &fixture.operator,
        &["--provision", "--registry", &url, "--tier", "pro"],
    );
    assert_eq!(down.status.code(), Some(1), "{}", text(&down));
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.contains("isp-daemon: error: provisioning refresh of tier `pro`")
            && stderr.contains(&url)
            && stderr.contains("Connection refused")
            && stderr.contains("check that the registry"),
        "{}",
        text(&down)
    );
    assert!(
        String::from_utf8_lossy(&down.stdout).contains("[host] started reloadable 1.0.0"),
        "the last verified set still starts: {}",
        text(&down)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("plugins/plugkit.lock")).expect("lock"),
        lock
    );
}

#[test]
fn provision_flags_without_a_registry_or_tier_are_refused_before_starting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let operator = Operator::new();
    let output = run_daemon(dir.path(), &operator, &["--tier", "pro"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--tier needs --registry"),
        "{}",
        text(&output)
    );
    let output = run_daemon(dir.path(), &operator, &["--provision"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--provision needs a registry and a tier"),
        "{}",
        text(&output)
    );
    let output = run_daemon(dir.path(), &operator, &["--json"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap refuses --json alone: {}",
        text(&output)
    );
}

#[test]
fn the_demo_runs_on_plugins_provisioned_from_the_registry_at_start() {
    // The three reference plugins signed and published; the catalog's
    // `enterprise` tier includes all three.
    let fixture = Fixture::start();
    let published = fixture.publish_reference();
    fixture.operator.publish_catalog(
        &fixture.remote,
        &catalog(1, &[("enterprise", &entries(&published))]),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let url = fixture.registry.url();
    let output = run_daemon(
        dir.path(),
        &fixture.operator,
        &[
            "--demo",
            "--provision",
            "--registry",
            &url,
            "--tier",
            "enterprise",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "[provisioning] tier `enterprise` from",
        "lock network-automation 0.1.0, stripe 0.1.0, twilio 0.1.0",
        "[stripe] acme-fiber: charged 49.99 USD (pi_",
        "[twilio] acme-fiber: welcome SMS to +14155550123",
        "[network-automation] acme-fiber: SNMP GET 127.0.0.1:",
        "── demo done:",
    ] {
        assert!(stdout.contains(needle), "{needle}: {}", text(&output));
    }
}
