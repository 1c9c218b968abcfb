//! The `isp-daemon` binary as an operator runs it: the main job (`--demo`)
//! exits 0 having printed what each plugin did; SIGTERM stops the plugins in
//! reverse dependency order, leaves the audit log complete and exits 0; a
//! second signal forces the exit; and the command line's own errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugkit_testkit::process::wait_until;

use crate::support::{artifact_map, ADMIN_TOKEN};

const BINARY: &str = env!("CARGO_BIN_EXE_isp-daemon");

/// The daemon binary running; killed on drop. Its stdout and stderr are
/// collected line by line.
pub(crate) struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<String>>>,
}

/// Collects the lines of `stream` on a thread of its own.
fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

impl Running {
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in(None, args, env)
    }

    /// [`Running::start`] with `cwd` as the current directory.
    pub(crate) fn start_in(cwd: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BINARY);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        command
            .args(args)
            .env_remove("TWILIO_ACCOUNT_SID")
            .env_remove("TWILIO_AUTH_TOKEN")
            .env_remove("STRIPE_SECRET_KEY")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("starting isp-daemon");
        let lines = collect(child.stdout.take().expect("stdout"));
        let log = collect(child.stderr.take().expect("stderr"));
        Self { child, lines, log }
    }

    /// Everything printed so far, for failure messages.
    pub(crate) fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.lines().join("\n"),
            self.log.lock().expect("log").join("\n")
        )
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    pub(crate) fn line_with(&self, needle: &str) -> Option<String> {
        self.lines().into_iter().find(|l| l.contains(needle))
    }

    /// Waits for a line containing `needle`; fails if the process ends first.
    pub(crate) fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let mut found = None;
        let outcome = wait_until(needle, limit, None, || {
            found = self.line_with(needle);
            found.is_some() || matches!(self.child.try_wait(), Ok(Some(_)))
        });
        match (found, outcome) {
            (Some(line), _) => line,
            (None, outcome) => panic!("no line with {needle:?} ({outcome:?}); {}", self.output()),
        }
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub(crate) fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut status = None;
        let outcome = wait_until("isp-daemon exits", limit, None, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        match status {
            Some(status) => {
                // Let the reader thread take the last lines.
                let _ = wait_until("stdout drained", Duration::from_secs(10), None, || {
                    self.line_with("[isp-daemon] stopped").is_some()
                        || self.line_with("forcing the exit").is_some()
                });
                status
            }
            None => panic!("isp-daemon did not exit ({outcome:?}); {}", self.output()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_args<'a>(map: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "--serve",
        "--allow-unsigned",
        "--plugins-from-build",
        map,
        "--state-dir",
        state,
        "--listen",
        "127.0.0.1:0",
    ]
}

fn audit_lines(state: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

#[test]
fn the_main_job_runs_the_demo_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let map = artifact_map(dir.path());
    let map = map.to_str().expect("utf-8 path");
    let mut daemon = Running::start(
        &[
            "--demo",
            "--allow-unsigned",
            "--plugins-from-build",
            map,
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let status = daemon.wait_for_exit(Duration::from_secs(300));
    let lines = daemon.lines();
    assert!(status.success(), "exit {status:?}; {}", daemon.output());
    for needle in [
        "[stand-in] Twilio API stand-in at http://127.0.0.1:",
        "it is NOT Twilio",
        "[stand-in] Stripe API stand-in at http://127.0.0.1:",
        "[host] started twilio 0.1.0 (UNSIGNED",
        "[device] demo:snmpd is a real snmpd at 127.0.0.1:",
        "[stripe] acme-fiber: charged 49.99 USD (pi_",
        "[twilio] acme-fiber: welcome SMS to +14155550123",
        "[network-automation] acme-fiber: SNMP GET 127.0.0.1:",
        "[network-automation] acme-fiber: SSH 127.0.0.1:",
        "[payment] corner-wifi: skipped: tier free has no payment provider",
        "[stripe] bluesky-net: vetoed:",
        "[twilio] acme-fiber: paged on-call +14155550100",
        "[stripe] corner-wifi: charged 19.99 USD (pi_",
        "── demo done: 7 flows ran, 6 reached their goal",
        "[host] stopping plugins in reverse dependency order:",
        "[host] stopped twilio",
        "[isp-daemon] stopped",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "no line with {needle:?}; {}",
            daemon.output()
        );
    }
}

/// Plugins that are installed but refused (here: unsigned, while the daemon
/// requires signatures) make the demo fail instead of running empty flows.
#[test]
fn the_demo_fails_when_installed_plugins_do_not_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let map = artifact_map(dir.path());
    let map = map.to_str().expect("utf-8 path");
    // Lay the plugins out unsigned, then run the demo on that folder with signatures required.
    let state = dir.path().join("state");
    let state = state.to_str().expect("utf-8 path");
    let mut layout = Running::start(
        &[
            "--allow-unsigned",
            "--plugins-from-build",
            map,
            "--state-dir",
            state,
            "--listen",
            "127.0.0.1:0",
            "--no-devices",
        ],
        &[],
    );
    layout.wait_for_line("[isp-daemon] serving", Duration::from_secs(120));
    layout.signal("TERM");
    assert!(
        layout.wait_for_exit(Duration::from_secs(60)).success(),
        "{}",
        layout.output()
    );
    let plugins = dir.path().join("state").join("plugins-from-build");
    let plugins = plugins.to_str().expect("utf-8 path");
    let random_key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    let mut daemon = Running::start(
        &[
            "--demo",
            "--plugin-dir",
            plugins,
            "--trusted-key",
            random_key,
            "--listen",
            "127.0.0.1:0",
            "--no-devices",
        ],
        &[],
    );
    let status = daemon.wait_for_exit(Duration::from_secs(300));
    assert_eq!(status.code(), Some(1), "{}", daemon.output());
    let lines = daemon.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[host] problem: plugin `twilio`")),
        "{}",
        daemon.output()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[demo] FAILED: 3 installed plugins did not start")),
        "{}",
        daemon.output()
    );
}

#[test]
fn sigterm_stops_plugins_in_reverse_dependency_order_keeps_the_audit_log_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let map = artifact_map(dir.path());
    let state = dir.path().join("state");
    let (map_arg, state_arg) = (map.to_str().expect("utf-8"), state.to_str().expect("utf-8"));
    let mut daemon = Running::start(
        &serve_args(map_arg, state_arg),
        &[("ISP_DAEMON_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let listening =
        daemon.wait_for_line("[admin] API listening on http://", Duration::from_secs(120));
    let base = listening
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/api"))
        .expect("an address");
    // The API answers the token from the environment (which manages keys).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let answer = agent
        .get(&format!("http://{base}/api/keys"))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .expect("GET /api/keys");
    assert_eq!(answer.status().as_u16(), 200);

    daemon.signal("TERM");
    let status = daemon.wait_for_exit(Duration::from_secs(60));
    let lines = daemon.lines();
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    assert!(lines
        .iter()
        .any(|l| l.starts_with("[isp-daemon] SIGTERM: stopping gracefully")));
    let announced = lines
        .iter()
        .find_map(|l| l.strip_prefix("[host] stopping plugins in reverse dependency order: "))
        .unwrap_or_else(|| panic!("no stop order; {}", daemon.output()));
    let announced: Vec<&str> = announced.split(", ").collect();
    let stopped: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("[host] stopped "))
        .collect();
    assert_eq!(stopped, announced);
    let mut sorted = stopped.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["network-automation", "stripe", "twilio"]);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("[isp-daemon] stopped")
    );

    // Every tenant's plugin that stopped is in the audit log, in stop order.
    let audit = audit_lines(&state);
    let stops: Vec<(String, String)> = audit
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("daemon stopping"))
        })
        .map(|e| {
            (
                e["plugin"].as_str().unwrap_or_default().to_owned(),
                e["tenant"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(stops.len(), 6, "{stops:?}");
    let plugin_order: Vec<&str> =
        stops
            .iter()
            .map(|(p, _)| p.as_str())
            .fold(Vec::new(), |mut v, p| {
                if v.last() != Some(&p) {
                    v.push(p);
                }
                v
            });
    assert_eq!(plugin_order, announced);
}

#[test]
fn a_second_signal_forces_the_exit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let map = artifact_map(dir.path());
    let state = dir.path().join("state");
    let (map_arg, state_arg) = (map.to_str().expect("utf-8"), state.to_str().expect("utf-8"));
    let mut daemon = Running::start(
        &serve_args(map_arg, state_arg),
        &[
            ("ISP_DAEMON_ADMIN_TOKEN", ADMIN_TOKEN),
            ("ISP_DAEMON_TEST_STALL_SHUTDOWN", "1"),
        ],
    );
    daemon.wait_for_line("[admin] API listening on http://", Duration::from_secs(120));
    daemon.signal("INT");
    daemon.wait_for_line("the shutdown is stalled", Duration::from_secs(60));
    daemon.signal("TERM");
    let status = daemon.wait_for_exit(Duration::from_secs(60));
    let lines = daemon.lines();
    assert_eq!(status.code(), Some(143), "{}", daemon.output());
    assert!(lines
        .iter()
        .any(|l| l == "[isp-daemon] SIGTERM again: forcing the exit"));
    assert!(!lines.iter().any(|l| l == "[isp-daemon] stopped"));
}

#[test]
fn the_command_line_prints_the_embedded_configuration_and_explains_its_errors() {
    let printed = Command::new(BINARY)
        .arg("--print-config")
        .output()
        .expect("isp-daemon --print-config");
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        isp_daemon::config::EMBEDDED
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let check = |args: &[&str], expected: &str| {
        let output = Command::new(BINARY)
            .args(args)
            .env_remove("ISP_DAEMON_ADMIN_TOKEN")
            .current_dir(dir.path())
            .output()
            .expect("isp-daemon");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    check(
        &["--config", "missing.toml"],
        "reading the configuration missing.toml",
    );
    // The embedded configuration requires signatures, and there is no key here.
    check(
        &["--demo", "--no-devices"],
        "trust policy `require` has no trusted key",
    );
    check(
        &["--plugins-from-build", "map.json"],
        "--plugins-from-build installs unsigned libraries",
    );
    check(&["--listen", "nowhere"], "is not an address:port");
    check(
        &["--demo", "--trusted-key", "/no/such/keys"],
        "--trusted-key /no/such/keys: no such file or directory",
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"plain-text\"\n",
    )
    .expect("write");
    check(
        &["--config", bad.to_str().expect("utf-8")],
        "never the token itself",
    );
}
