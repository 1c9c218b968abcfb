//! Outbound webhooks to integrators: each delivery is verified by the
//! Standard Webhooks reference library (PyPI `standardwebhooks`, installed
//! by `tests/peers/install-standardwebhooks.sh`) in a Python receiver on
//! 127.0.0.1, also while a secret is being rotated; failed deliveries back
//! off, honour `Retry-After` and end in the dead-letter list, from which
//! they are replayed; 410 disables the endpoint; and a daemon binary killed
//! with SIGKILL mid-delivery delivers after its restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use plugkit_testkit::process::wait_until;
use serde_json::{json, Value};

use crate::support::{artifact_map, TestDaemon, TOKEN, TOKEN_ID};

/// The Python receiver, killed on drop.
pub(crate) struct Receiver {
    child: Child,
    pub(crate) url: String,
    log: PathBuf,
    secrets: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts a receiver verifying with `secrets` and answering by `script`
    /// (see `receiver.py`).
    pub(crate) fn start(secrets: &[&str], script: &str) -> Self {
        let check = Command::new("python3")
            .args(["-c", "from standardwebhooks.webhooks import Webhook"])
            .status();
        assert!(
            check.is_ok_and(|s| s.success()),
            "python3 with the `standardwebhooks` package is missing; run \
             `sudo bash tests/peers/install-standardwebhooks.sh`"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port_file = dir.path().join("port");
        let log = dir.path().join("log.jsonl");
        let secrets_file = dir.path().join("secrets");
        std::fs::write(&secrets_file, secrets.join("\n")).expect("secrets");
        let script_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/daemon/receiver.py");
        let child = Command::new("python3")
            .arg(script_path)
            .arg(&port_file)
            .arg(&log)
            .arg(&secrets_file)
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting the receiver");
        wait_until(
            "the receiver listens",
            Duration::from_secs(20),
            None,
            || port_file.exists(),
        )
        .expect("receiver port");
        let port = std::fs::read_to_string(&port_file).expect("port");
        Self {
            child,
            url: format!("http://127.0.0.1:{}/hooks", port.trim()),
            log,
            secrets: secrets_file,
            _dir: dir,
        }
    }

    /// The secrets it verifies with from now on.
    fn set_secrets(&self, secrets: &[&str]) {
        std::fs::write(&self.secrets, secrets.join("\n")).expect("secrets");
    }

    /// Every request received, in order.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a log line is JSON"))
            .collect()
    }

    /// Waits until `check` holds for the records; returns them.
    pub(crate) fn wait(&self, what: &str, mut check: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let mut records = Vec::new();
        let reached = wait_until(what, Duration::from_secs(60), None, || {
            records = self.records();
            check(&records)
        });
        assert!(reached.is_ok(), "{what}: {records:#?}");
        records
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn of_type<'a>(records: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| {
            serde_json::from_str::<Value>(r["body"].as_str().unwrap_or_default())
                .is_ok_and(|b| b["type"] == event_type)
        })
        .collect()
}

/// A daemon delivering every 20 ms with a short retry schedule, no jitter
/// and a 10-minute attempt timeout.
fn daemon(schedule_ms: &[u64]) -> (TestDaemon, isp_daemon::webhooks::DeliveryWorker) {
    let schedule = schedule_ms.to_vec();
    let d = TestDaemon::start_with(
        move |c| {
            c.webhooks.delivery.poll_ms = 20;
            c.webhooks.delivery.retry_schedule_ms = schedule;
            c.webhooks.delivery.jitter_percent = 0;
            // Longer than any wait here: a hanging endpoint stays hanging.
            c.webhooks.delivery.timeout_ms = 600_000;
        },
        None,
    );
    let worker = isp_daemon::webhooks::start_delivery(&d.daemon).expect("delivery worker");
    // The start-up's audit lines are turned into events before any endpoint
    // exists, so a test's endpoints see only what the test does.
    let state = d.daemon.state_dir().to_owned();
    worker_caught_up(&state);
    (d, worker)
}

/// The body of a received request, parsed.
pub(crate) fn body_of(record: &Value) -> Value {
    serde_json::from_str(record["body"].as_str().unwrap_or_default()).unwrap_or(Value::Null)
}

#[test]
fn outbound_events_verify_with_the_reference_library_also_while_a_secret_rotates() {
    let (d, _worker) = daemon(&[100]);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let unrelated = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let receiver = Receiver::start(&[secret], "200");
    let created = d
        .post(
            "/api/webhooks/endpoints",
            &json!({"id": "crm", "url": receiver.url, "secret": secret,
                    "events": ["plugin.*", "flow.completed"]}),
        )
        .expect(201);
    assert_eq!(created["secret"], secret, "shown once, at creation");
    let listed = d.get("/api/webhooks/endpoints").expect(200);
    assert!(
        !listed.to_string().contains(secret),
        "the listing masks it: {listed:#}"
    );

    d.post_empty("/api/tenants/acme-fiber/plugins/twilio/deactivate")
        .expect(200);
    let records = receiver.wait("plugin.deactivated arrives", |r| {
        !of_type(r, "plugin.deactivated").is_empty()
    });
    let event = of_type(&records, "plugin.deactivated")[0];
    assert_eq!(event["verified"], json!([true]), "{event:#}");
    let body = body_of(event);
    assert_eq!(body["data"]["plugin"], "twilio", "{body:#}");
    assert_eq!(body["data"]["tenant"], "acme-fiber", "{body:#}");
    assert!(
        event["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_")),
        "{event:#}"
    );

    // Regression (new-user trial): a grace period of u64::MAX seconds was
    // taken, so the old secret signed for ever. Refused, nothing rotated.
    for huge in [2_592_001u64, u64::MAX] {
        d.post(
            "/api/webhooks/endpoints/crm/rotate",
            &json!({"grace_secs": huge}),
        )
        .expect_error(422, "at most 2592000 (30 days)");
    }
    let unchanged = d.get("/api/webhooks/endpoints/crm").expect(200);
    let secrets = unchanged["secrets"].as_array().cloned().unwrap_or_default();
    assert!(
        secrets.len() == 1 && secrets[0]["expires_at"].is_null(),
        "{unchanged}"
    );

    // Rotation: the new secret is shown once; during the grace period every
    // delivery carries a signature for each, and each secret verifies it.
    let rotated = d
        .post(
            "/api/webhooks/endpoints/crm/rotate",
            &json!({"grace_secs": 3600}),
        )
        .expect(200);
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    receiver.set_secrets(&[secret, &new_secret, unrelated]);
    d.post_empty("/api/tenants/acme-fiber/plugins/twilio/activate")
        .expect(200);
    d.post(
        "/api/flows/device-alert",
        &json!({"tenant": "acme-fiber", "device": "192.0.2.1", "severity": "critical", "message": "link down"}),
    )
    .expect(200);
    let records = receiver.wait("plugin.activated and flow.completed arrive", |r| {
        !of_type(r, "plugin.activated").is_empty() && !of_type(r, "flow.completed").is_empty()
    });
    for event_type in ["plugin.activated", "flow.completed"] {
        let event = of_type(&records, event_type)[0];
        assert_eq!(event["verified"], json!([true, true, false]), "{event:#}");
        assert_eq!(
            event["signature"].as_str().map(|s| s.split(' ').count()),
            Some(2),
            "{event:#}"
        );
    }
    let flow = body_of(of_type(&records, "flow.completed")[0]);
    assert_eq!(flow["data"]["flow"], "device-alert", "{flow:#}");

    // Nothing is left to send, and the delivery log shows every attempt.
    let deliveries = d.get("/api/webhooks/endpoints/crm/deliveries").expect(200);
    let delivered = deliveries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["outcome"] == "delivered" && l["status"] == 200)
        .count();
    assert!(delivered >= 3, "{deliveries:#}");
    assert_eq!(d.get("/api/webhooks/outbox").expect(200), json!([]));
}

#[test]
fn failed_deliveries_back_off_honour_retry_after_die_and_are_replayed_and_410_disables() {
    // Two retries 50 ms apart; the first failure asks for 1 s more.
    let (d, _worker) = daemon(&[50, 50]);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let flaky = Receiver::start(&[secret], "503+ra1,500,500,200");
    d.post(
        "/api/webhooks/endpoints",
        &json!({"id": "flaky", "url": flaky.url, "secret": secret, "events": ["plugin.deactivated"]}),
    )
    .expect(201);
    let gone = Receiver::start(&[secret], "410");
    d.post(
        "/api/webhooks/endpoints",
        &json!({"id": "gone", "url": gone.url, "secret": secret, "events": ["plugin.deactivated"]}),
    )
    .expect(201);
    d.post_empty("/api/tenants/acme-fiber/plugins/twilio/deactivate")
        .expect(200);

    let records = flaky.wait("three attempts", |r| r.len() >= 3);
    let ids: Vec<&Value> = records.iter().map(|r| &r["id"]).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id on every attempt: {ids:?}"
    );
    let at = |i: usize| records[i]["at"].as_f64().unwrap_or_default();
    assert!(
        at(1) - at(0) >= 1.0,
        "Retry-After: 1 was honoured: {records:#?}"
    );
    let dead = {
        let mut dead = Value::Null;
        let reached = wait_until("two dead letters", Duration::from_secs(30), None, || {
            dead = d.get("/api/webhooks/dead-letters").expect(200);
            dead.as_array().map(Vec::len) == Some(2)
        });
        assert!(reached.is_ok(), "{dead:#}");
        dead
    };
    let reasons: Vec<(String, String)> = dead
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["endpoint"].as_str().unwrap_or_default().to_owned(),
                l["dead_reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(e, r)| e == "flaky" && r.contains("no 2xx after 3 attempts")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(e, r)| e == "gone" && r.contains("410 Gone")),
        "{reasons:?}"
    );
    let endpoint = d.get("/api/webhooks/endpoints/gone").expect(200);
    assert!(
        endpoint["disabled"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{endpoint:#}"
    );
    assert_eq!(gone.records().len(), 1, "a 410 is not retried");

    // The log shows each attempt with its outcome.
    let log = d
        .get("/api/webhooks/endpoints/flaky/deliveries")
        .expect(200);
    let outcomes: Vec<&str> = log
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .filter_map(|l| l["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "dead_letter"], "{log:#}");

    // Replay: the same message is delivered, and the list empties.
    let flaky_letter = dead
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["endpoint"] == "flaky")
        .and_then(|l| l["id"].as_str())
        .expect("flaky's dead letter")
        .to_owned();
    d.post_empty(&format!("/api/webhooks/dead-letters/{flaky_letter}/replay"))
        .expect(200);
    let records = flaky.wait("the replay arrives", |r| r.len() >= 4);
    assert_eq!(records[3]["id"], records[0]["id"], "{records:#?}");
    assert_eq!(records[3]["verified"], json!([true]));
    // A disabled endpoint's letter waits for the endpoint to be enabled.
    let gone_letter = d.get("/api/webhooks/dead-letters").expect(200)[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    d.post_empty(&format!("/api/webhooks/dead-letters/{gone_letter}/replay"))
        .expect_error(409, "enable it");
}

/// The `isp-daemon` binary, killed on drop.
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(config: &Path, state: &Path, map: &Path) -> Binary {
    let child = Command::new(env!("CARGO_BIN_EXE_isp-daemon"))
        .args(["--serve", "--allow-unsigned", "--plugins-from-build"])
        .arg(map)
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("STRIPE_SECRET_KEY")
        .env("ISP_DAEMON_ADMIN_TOKEN", TOKEN)
        .env("KILL_TEST_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting isp-daemon");
    Binary(child)
}

fn pending(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("webhooks/outbox"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_daemon_killed_with_sigkill_mid_delivery_delivers_after_restart() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    // The first request is never answered: the daemon is killed while it waits.
    let receiver = Receiver::start(&[secret], "hang,200");
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let map = artifact_map(dir.path());
    let state = dir.path().join("state");
    let config = dir.path().join("isp-daemon.toml");
    let text = format!(
        "{}\n[webhooks.delivery]\npoll_ms = 20\nretry_schedule_ms = [100]\ntimeout_ms = 600000\n\n\
         [[webhooks.endpoints]]\nid = \"integrator\"\nurl = \"{}\"\nevents = [\"plugin.activated\"]\n\
         secret = \"${{env:KILL_TEST_WHSEC}}\"\n",
        isp_daemon::config::EMBEDDED,
        receiver.url
    );
    std::fs::write(&config, text).expect("config");

    let mut first = start_binary(&config, &state, &map);
    let records = receiver.wait("the first delivery is in flight", |r| !r.is_empty());
    let in_flight = records[0]["id"].as_str().expect("webhook-id").to_owned();
    assert_eq!(records[0]["verified"], json!([true]));
    let file = pending(&state)
        .into_iter()
        .find(|n| n.starts_with(&format!("{in_flight}.")))
        .unwrap_or_else(|| panic!("{in_flight} is not in the outbox: {:?}", pending(&state)));
    first.0.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
    let _ = first.0.wait();
    assert!(pending(&state).contains(&file), "the outbox kept {file}");

    let _second = start_binary(&config, &state, &map);
    let records = receiver.wait("the in-flight delivery arrives again", |r| {
        r.iter().skip(1).any(|x| x["id"] == in_flight.as_str())
    });
    let again = records
        .iter()
        .skip(1)
        .find(|x| x["id"] == in_flight.as_str())
        .expect("redelivery");
    assert_eq!(again["verified"], json!([true]), "{again:#}");
    assert_eq!(again["body"], records[0]["body"], "the same message");
    let emptied = wait_until("the outbox empties", Duration::from_secs(60), None, || {
        !pending(&state).contains(&file)
    });
    assert!(emptied.is_ok(), "{:?}", pending(&state));
}

#[test]
fn every_webhook_admin_route_needs_the_admin_token_and_bad_endpoints_are_refused() {
    let (d, _worker) = daemon(&[100]);
    for (method, path) in [
        ("GET", "/api/webhooks/inbound"),
        ("GET", "/api/webhooks/event-types"),
        ("GET", "/api/webhooks/endpoints"),
        ("POST", "/api/webhooks/endpoints"),
        ("GET", "/api/webhooks/endpoints/x"),
        ("POST", "/api/webhooks/endpoints/x/rotate"),
        ("POST", "/api/webhooks/endpoints/x/enable"),
        ("POST", "/api/webhooks/endpoints/x/disable"),
        ("GET", "/api/webhooks/endpoints/x/deliveries"),
        ("GET", "/api/webhooks/outbox"),
        ("GET", "/api/webhooks/dead-letters"),
        ("POST", "/api/webhooks/dead-letters/x/replay"),
    ] {
        let answer = d.request(method, path, None, None);
        assert_eq!(answer.status, 401, "{method} {path}: {}", answer.text);
    }
    for (body, status, part) in [
        (
            json!({"id": "a", "url": "ftp://h/"}),
            422,
            "must start with https:// or http://",
        ),
        (
            json!({"id": "a", "url": "https://u:p@h/"}),
            422,
            "credentials",
        ),
        (
            json!({"id": "a b", "url": "https://h/"}),
            422,
            "letters, digits",
        ),
        (
            json!({"id": "a", "url": "https://h/", "secret": "hunter2"}),
            422,
            "whsec_",
        ),
        (
            json!({"id": "a", "url": "https://h/", "events": []}),
            422,
            "at least one event type",
        ),
        (json!({"id": "a"}), 400, "missing field `url`"),
        // New-user trial: a misspelt event type was accepted and never delivered.
        (
            json!({"id": "a", "url": "https://h/", "events": ["plugin.instaled", "plugin.*"]}),
            422,
            "endpoint `a` subscribes to an event type the daemon never sends: \"plugin.instaled\"",
        ),
        (
            json!({"id": "a", "url": "https://h/", "events": ["invoice.*"]}),
            422,
            "plugin.installed, plugin.removed",
        ),
    ] {
        d.post("/api/webhooks/endpoints", &body)
            .expect_error(status, part);
    }
    d.post(
        "/api/webhooks/endpoints",
        &json!({"id": "a", "url": "https://h/"}),
    )
    .expect(201);
    d.post(
        "/api/webhooks/endpoints",
        &json!({"id": "a", "url": "https://h/"}),
    )
    .expect_error(409, "exists");
    d.get("/api/webhooks/endpoints/nope/deliveries")
        .expect_error(404, "no webhook endpoint `nope`");
    d.post_empty("/api/webhooks/dead-letters/nope/replay")
        .expect_error(404, "no dead letter");
    let types = d.get("/api/webhooks/event-types").expect(200);
    assert!(types.to_string().contains("reload.rolled_back"), "{types}");
}

#[test]
fn an_endpoint_that_never_answers_delays_only_its_own_deliveries() {
    let (d, _worker) = daemon(&[100]);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let stuck = Receiver::start(&[secret], "hang");
    let healthy = Receiver::start(&[secret], "200");
    for (id, receiver) in [("a-stuck", &stuck), ("b-healthy", &healthy)] {
        d.post(
            "/api/webhooks/endpoints",
            &json!({"id": id, "url": receiver.url, "secret": secret, "events": ["plugin.*"]}),
        )
        .expect(201);
    }
    d.post_empty("/api/tenants/acme-fiber/plugins/twilio/deactivate")
        .expect(200);
    stuck.wait("the stuck endpoint holds the first delivery", |r| {
        r.len() == 1
    });
    d.post_empty("/api/tenants/acme-fiber/plugins/twilio/activate")
        .expect(200);
    let records = healthy.wait("the healthy endpoint gets both events", |r| {
        !of_type(r, "plugin.deactivated").is_empty() && !of_type(r, "plugin.activated").is_empty()
    });
    assert!(
        records.iter().all(|r| r["verified"] == json!([true])),
        "{records:#?}"
    );
    assert_eq!(
        stuck.records().len(),
        1,
        "the stuck endpoint's next delivery waits its turn"
    );
}

/// The (tenant, plugin) of each `plugin.deactivated` the test's key caused,
/// in the order the receiver accepted them (2xx).
fn accepted_deactivations(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|r| r["action"] == "200")
        .map(body_of)
        .filter(|b| b["type"] == "plugin.deactivated" && b["data"]["actor"] == TOKEN_ID)
        .map(|b| {
            (
                b["data"]["tenant"].as_str().unwrap_or_default().to_owned(),
                b["data"]["plugin"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// New-user trial: after a restart, older pending deliveries arrived after
/// newer ones. Three events are queued while the endpoint refuses the
/// first; three more are written to the audit log while the worker is down
/// (one batch, queued in the same millisecond after the restart). Every
/// delivery of the endpoint arrives in the order the events happened.
#[test]
fn pending_deliveries_keep_their_order_per_endpoint_across_a_restart() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    // The first request fails (a retry 1.5 s later), every later one is taken.
    let receiver = Receiver::start(&[secret], "503,200");
    let order = [
        ("acme-fiber", "twilio"),
        ("bluesky-net", "twilio"),
        ("corner-wifi", "twilio"),
        ("acme-fiber", "stripe"),
        ("bluesky-net", "stripe"),
        ("acme-fiber", "network-automation"),
    ];
    let deactivate = |d: &TestDaemon, (tenant, plugin): (&str, &str)| {
        d.post_empty(&format!(
            "/api/tenants/{tenant}/plugins/{plugin}/deactivate"
        ))
        .expect(200);
    };
    let (d, worker) = daemon(&[1500]);
    d.post(
        "/api/webhooks/endpoints",
        &json!({"id": "crm", "url": receiver.url, "secret": secret,
                "events": ["plugin.deactivated"]}),
    )
    .expect(201);
    for event in &order[..3] {
        deactivate(&d, *event);
    }
    receiver.wait("the first delivery is refused", |r| !r.is_empty());
    drop(worker);
    for event in &order[3..] {
        deactivate(&d, *event);
    }
    let dir = Arc::clone(&d.dir);
    d.stop();

    let d = TestDaemon::start_in(
        dir,
        |c| {
            c.webhooks.delivery.poll_ms = 20;
            c.webhooks.delivery.retry_schedule_ms = vec![1500];
            c.webhooks.delivery.jitter_percent = 0;
        },
        None,
    );
    let _worker = isp_daemon::webhooks::start_delivery(&d.daemon).expect("delivery worker");
    let records = receiver.wait("all six are delivered", |r| {
        accepted_deactivations(r).len() >= order.len()
    });
    let want: Vec<(String, String)> = order
        .iter()
        .map(|(t, p)| ((*t).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(accepted_deactivations(&records), want, "{records:#?}");
    assert!(
        records.iter().all(|r| r["verified"] == json!([true])),
        "{records:#?}"
    );
}

/// New-user trial: every restart sends `plugin.deactivated` and
/// `plugin.activated` for every tenant. Their `data.cause` is `"restart"`,
/// an operator's deactivation's is `"operator"`, so a receiver can tell
/// them apart without parsing `detail`.
#[test]
fn restart_events_carry_cause_restart_and_an_operators_carry_cause_operator() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = Receiver::start(&[secret], "200");
    let (d, worker) = daemon(&[100]);
    d.post(
        "/api/webhooks/endpoints",
        &json!({"id": "crm", "url": receiver.url, "secret": secret,
                "events": ["plugin.deactivated", "plugin.activated"]}),
    )
    .expect(201);
    d.post_empty("/api/tenants/corner-wifi/plugins/twilio/deactivate")
        .expect(200);
    receiver.wait("the operator's deactivation is delivered", |r| {
        !accepted_deactivations(r).is_empty()
    });
    drop(worker);
    let dir = Arc::clone(&d.dir);
    d.stop();
    let d = TestDaemon::start_in(
        dir,
        |c| {
            c.webhooks.delivery.poll_ms = 20;
            c.webhooks.delivery.retry_schedule_ms = vec![100];
            c.webhooks.delivery.jitter_percent = 0;
        },
        None,
    );
    let _worker = isp_daemon::webhooks::start_delivery(&d.daemon).expect("delivery worker");
    let restored = |records: &[Value]| {
        records
            .iter()
            .map(body_of)
            .filter(|b| b["type"] == "plugin.activated" && b["data"]["tenant"] == "acme-fiber")
            .count()
    };
    let records = receiver.wait("the restart's events are delivered", |r| restored(r) >= 3);
    let events: Vec<Value> = records.iter().map(body_of).collect();
    let of = |kind: &str, tenant: &str, plugin: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|b| {
                b["type"] == kind && b["data"]["tenant"] == tenant && b["data"]["plugin"] == plugin
            })
            .map(|b| b["data"]["cause"].clone())
            .collect()
    };
    assert_eq!(
        of("plugin.deactivated", "corner-wifi", "twilio"),
        [json!("operator")],
        "{events:#?}"
    );
    assert_eq!(
        of("plugin.deactivated", "acme-fiber", "stripe"),
        [json!("restart")],
        "{events:#?}"
    );
    assert_eq!(
        of("plugin.activated", "acme-fiber", "stripe"),
        [json!("restart")],
        "{events:#?}"
    );
    // The operator's deactivation is not undone by the restart.
    assert!(
        of("plugin.activated", "corner-wifi", "twilio").is_empty(),
        "{events:#?}"
    );
}

/// Waits until the delivery worker has turned every audit line in `state`
/// into events.
pub(crate) fn worker_caught_up(state: &std::path::Path) {
    let caught_up = wait_until(
        "the worker reads the audit log",
        Duration::from_secs(30),
        None,
        || {
            let audit = std::fs::metadata(state.join("audit.jsonl")).map_or(0, |m| m.len());
            let cursor = std::fs::read(state.join("webhooks/audit-cursor.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["offset"].as_u64());
            cursor == Some(audit)
        },
    );
    assert!(
        caught_up.is_ok(),
        "the delivery worker does not read the audit log"
    );
}
