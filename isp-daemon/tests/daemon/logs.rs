//! Structured logs: the daemon binary with `--log-format json` writes one
//! JSON object per line, and both a request line and a plugin's own log
//! line (through the host's log service) carry the plugin and the tenant.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugkit_testkit::process::wait_until;
use serde_json::{json, Value};

use crate::support::{artifact_map, seed_all_scope_key, TOKEN, TOKEN_ID};

const BINARY: &str = env!("CARGO_BIN_EXE_isp-daemon");
/// The admin token, which only manages keys; requests use the harness key.
const ADMIN_TOKEN: &str = "logs-test-token-7c1e";

/// Kills the daemon when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

/// A field of a JSON log line: in its own fields or in any of its spans.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    line["fields"][name].as_str().or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .rev()
            .find_map(|span| span[name].as_str().filter(|v| !v.is_empty()))
    })
}

#[test]
fn json_logs_carry_plugin_and_tenant() {
    let dir = tempfile::tempdir().expect("temp dir");
    let map = artifact_map(dir.path());
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    seed_all_scope_key(&state);
    let mut command = Command::new(BINARY);
    command
        .args([
            "--serve",
            "--allow-unsigned",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--plugins-from-build")
        .arg(&map)
        .arg("--state-dir")
        .arg(&state)
        .env("ISP_DAEMON_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("STRIPE_SECRET_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("starting isp-daemon");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));
    let _daemon = Killed(child);
    let output = || {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            stdout.lock().expect("lines").join("\n"),
            stderr.lock().expect("lines").join("\n")
        )
    };

    let mut base = None;
    let started = wait_until("the API address", Duration::from_secs(120), None, || {
        base = stdout
            .lock()
            .expect("lines")
            .iter()
            .find_map(|l| l.split("API listening on ").nth(1))
            .map(|rest| rest.trim_end_matches("/api").to_owned());
        base.is_some()
    });
    assert!(started.is_ok(), "{started:?}; {}", output());
    let base = base.unwrap_or_default();

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    // A payment through Stripe, whose plugin logs the payment it made.
    let body = json!({
        "tenant": "acme-fiber", "customer_id": "c-logs", "name": "Ada",
        "phone": "+14155550123", "plan": "fiber", "monthly_price_minor": 4999,
        "currency": "usd"
    });
    let answer = agent
        .post(&format!("{base}/api/flows/new-customer"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("new-customer");
    assert_eq!(answer.status().as_u16(), 200, "{}", output());
    let answer = agent
        .get(&format!(
            "{base}/api/tenants/acme-fiber/plugins/twilio/config"
        ))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("config");
    assert_eq!(answer.status().as_u16(), 200, "{}", output());
    let answer = agent
        .get(&format!("{base}/api/keys"))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .expect("keys");
    assert_eq!(answer.status().as_u16(), 200, "{}", output());

    let json_lines = || -> Vec<Value> {
        stderr
            .lock()
            .expect("lines")
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
            })
            .collect()
    };
    let mut found = (None, None);
    let seen = wait_until(
        "the request and plugin lines",
        Duration::from_secs(30),
        None,
        || {
            let lines = json_lines();
            let request = lines.iter().find(|l| {
                l["fields"]["message"] == "request"
                    && field(l, "path") == Some("/api/tenants/acme-fiber/plugins/twilio/config")
            });
            // Stripe's line about the invoice the flow paid.
            let plugin = lines.iter().find(|l| {
                l["target"] == "plugin"
                    && field(l, "plugin") == Some("stripe")
                    && l["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("invoice in-c-logs-1 paid"))
            });
            found = (request.cloned(), plugin.cloned());
            found.0.is_some() && found.1.is_some()
        },
    );
    assert!(seen.is_ok(), "{seen:?}; {}", output());
    let (Some(request), Some(plugin)) = found else {
        unreachable!("checked above")
    };

    assert_eq!(field(&request, "plugin"), Some("twilio"), "{request}");
    assert_eq!(field(&request, "tenant"), Some("acme-fiber"), "{request}");
    assert_eq!(field(&request, "method"), Some("GET"), "{request}");
    // The key that made the request, by its id; never its secret.
    assert_eq!(field(&request, "key_id"), Some(TOKEN_ID), "{request}");
    assert!(!request.to_string().contains(TOKEN), "{request}");
    assert_eq!(request["fields"]["status"], 200, "{request}");
    assert!(
        request["fields"]["latency_ms"].as_f64().is_some(),
        "{request}"
    );

    // The admin token's requests are named as the audit log names them.
    let mut keys = None;
    let seen = wait_until(
        "the request line of GET /api/keys",
        Duration::from_secs(30),
        None,
        || {
            keys = json_lines().into_iter().find(|l| {
                l["fields"]["message"] == "request" && field(l, "path") == Some("/api/keys")
            });
            keys.is_some()
        },
    );
    assert!(seen.is_ok(), "{seen:?}; {}", output());
    let keys = keys.unwrap_or_default();
    assert_eq!(field(&keys, "key_id"), Some("admin-token"), "{keys}");
    assert!(!keys.to_string().contains(ADMIN_TOKEN), "{keys}");

    assert_eq!(field(&plugin, "plugin"), Some("stripe"), "{plugin}");
    assert_eq!(field(&plugin, "tenant"), Some("acme-fiber"), "{plugin}");

    // Every plugin line names its plugin, and those about a tenant (its
    // activation at start-up, the flows) name the tenant too.
    for line in json_lines().iter().filter(|l| l["target"] == "plugin") {
        assert!(field(line, "plugin").is_some(), "{line}");
        let message = line["fields"]["message"].as_str().unwrap_or_default();
        if let Some(rest) = message.strip_prefix("tenant ") {
            let tenant = rest
                .split([':', ' '])
                .next()
                .unwrap_or_default()
                .trim_matches('`');
            assert_eq!(field(line, "tenant"), Some(tenant), "{line}");
        }
    }
}
