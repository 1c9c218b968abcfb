//! The delivery worker: one thread per daemon that turns new audit lines
//! and plugin failures into events and hands the outbox's due deliveries
//! to one sender thread per endpoint (so a slow endpoint delays only its
//! own deliveries, which keep their order of creation, across restarts
//! too: a delivery waiting for its retry holds back the newer ones of its
//! endpoint), which sends each with its
//! Standard Webhooks signature, then removes it (2xx),
//! reschedules it (back-off with jitter, `Retry-After`), or moves it to
//! the dead-letter list (schedule spent; 410 Gone, which also disables the
//! endpoint). It holds the daemon weakly and ends when the daemon stops.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use plugin_host::status::PluginState;
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::webhook_state::clock::{now_millis, rfc3339};
use crate::webhook_state::events::{audit_data, audit_message_id, event_of_audit};
use crate::webhook_state::installs::InstalledVersions;
use crate::webhook_state::outbox::{Delivery, Outbox};
use crate::webhook_state::schedule::{next_delay_ms, retry_after_ms};
use crate::webhook_state::sign::signature_header;

/// The running worker; stops and joins on drop.
#[derive(Debug)]
pub struct DeliveryWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DeliveryWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts delivering the daemon's events.
pub fn start_delivery(daemon: &Arc<Daemon>) -> std::io::Result<DeliveryWorker> {
    let stop = Arc::new(AtomicBool::new(false));
    let weak = Arc::downgrade(daemon);
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("webhook-delivery".to_owned())
        .spawn(move || run(&weak, flag))?;
    Ok(DeliveryWorker {
        stop,
        thread: Some(thread),
    })
}

/// Endpoints whose sender thread is running.
type Busy = Arc<Mutex<BTreeSet<String>>>;

fn run(weak: &Weak<Daemon>, stop: Arc<AtomicBool>) {
    let mut failed = BTreeSet::new();
    let mut agent = None;
    let busy: Busy = Arc::default();
    loop {
        let poll = {
            let Some(daemon) = weak.upgrade() else { return };
            if stop.load(Ordering::SeqCst) || daemon.is_stopping() {
                return;
            }
            let outbox = Arc::clone(daemon.webhooks().outbox());
            pump_audit(&daemon, &outbox);
            watch_failures(&daemon, &outbox, &mut failed);
            drop(daemon);
            let agent = agent.get_or_insert_with(|| make_agent(&outbox));
            deliver_due(&outbox, agent, &stop, &busy);
            outbox.config().poll_ms
        };
        let until = Instant::now() + Duration::from_millis(poll.max(10));
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
        }
    }
}

fn make_agent(outbox: &Outbox) -> ureq::Agent {
    let config = outbox.config();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_millis(config.connect_timeout_ms)))
        .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
        .user_agent("isp-daemon-webhooks/1")
        .build()
        .into()
}

/// Queues the audit lines written since the cursor, then saves the cursor.
fn pump_audit(daemon: &Daemon, outbox: &Outbox) {
    let audit_path = daemon.platform().audit().path().to_owned();
    let cursor_path = outbox.dir().join("audit-cursor.json");
    let mut offset: u64 = std::fs::read(&cursor_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["offset"].as_u64())
        .unwrap_or(0);
    let Ok(mut file) = std::fs::File::open(&audit_path) else {
        return;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    if len < offset {
        // The log was replaced: start over with it.
        offset = 0;
    }
    if len == offset {
        return;
    }
    let mut text = String::new();
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_string(&mut text).is_err() {
        return;
    }
    let versions_path = outbox.dir().join("installed-versions.json");
    let mut versions =
        InstalledVersions::from_json(&std::fs::read(&versions_path).unwrap_or_default());
    let mut consumed = 0usize;
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break; // being written; next round
        }
        let at = offset + consumed as u64;
        consumed += line.len();
        let Ok(entry) = serde_json::from_str::<Value>(line.trim_end()) else {
            continue;
        };
        if let Some(event_type) = event_of_audit(&entry).filter(|t| versions.admit(t, &entry)) {
            outbox.emit_as(&audit_message_id(at, line), event_type, audit_data(&entry));
        }
    }
    // Before the cursor: a line read again after a crash is judged the same.
    if let Err(e) = plugkit_durable::write_atomic(&versions_path, &versions.to_json(), 0o600) {
        tracing::error!("cannot save {}: {e}", versions_path.display());
    }
    let cursor = json!({"offset": offset + consumed as u64}).to_string();
    if let Err(e) = plugkit_durable::write_atomic(&cursor_path, cursor.as_bytes(), 0o600) {
        tracing::error!(
            "cannot save the webhook audit cursor {}: {e}",
            cursor_path.display()
        );
    }
}

/// Queues `plugin.failed` when a plugin enters the failed state.
fn watch_failures(daemon: &Daemon, outbox: &Outbox, failed: &mut BTreeSet<String>) {
    let mut now_failed = BTreeSet::new();
    for status in daemon.host().statuses() {
        if status.state != PluginState::Failed {
            continue;
        }
        let id = status.identity.id.to_string();
        if !failed.contains(&id) {
            outbox.emit(
                "plugin.failed",
                json!({"plugin": id, "version": status.identity.version.to_string(),
                       "error": status.failure, "time": rfc3339(now_millis())}),
            );
        }
        now_failed.insert(id);
    }
    *failed = now_failed;
}

fn deliver_due(outbox: &Arc<Outbox>, agent: &ureq::Agent, stop: &Arc<AtomicBool>, busy: &Busy) {
    let now = now_millis();
    // Per endpoint, the due deliveries in order of creation up to the first
    // that waits for its retry: a newer delivery never overtakes an older
    // one of its endpoint, in one run or across restarts.
    let mut due: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    let mut held: BTreeSet<String> = BTreeSet::new();
    for delivery in outbox.pending() {
        if held.contains(&delivery.endpoint) {
            continue;
        }
        if delivery.next_attempt_ms <= now {
            due.entry(delivery.endpoint.clone())
                .or_default()
                .push(delivery);
        } else {
            held.insert(delivery.endpoint.clone());
        }
    }
    for (endpoint, deliveries) in due {
        {
            let mut running = busy.lock().unwrap_or_else(PoisonError::into_inner);
            if !running.insert(endpoint.clone()) {
                continue;
            }
        }
        let (outbox, agent, stop, done) = (
            Arc::clone(outbox),
            agent.clone(),
            Arc::clone(stop),
            Arc::clone(busy),
        );
        let name = endpoint.clone();
        let spawned = std::thread::Builder::new()
            .name("webhook-send".to_owned())
            .spawn(move || {
                for delivery in deliveries {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if !attempt(&outbox, &agent, delivery) {
                        // It waits for its retry; the newer ones wait behind it.
                        break;
                    }
                }
                done.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&name);
            });
        if let Err(e) = spawned {
            tracing::error!(endpoint, "cannot start a webhook sender thread: {e}");
            busy.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&endpoint);
        }
    }
}

/// What one attempt got.
struct Attempt {
    status: Option<u16>,
    retry_after: Option<String>,
    error: Option<String>,
}

fn send(agent: &ureq::Agent, url: &str, keys: &[Vec<u8>], delivery: &Delivery) -> Attempt {
    let timestamp = now_millis() / 1000;
    let signature = signature_header(
        keys,
        &delivery.message_id,
        timestamp,
        delivery.body.as_bytes(),
    );
    let result = agent
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.message_id)
        .header("webhook-timestamp", &timestamp.to_string())
        .header("webhook-signature", &signature)
        .send(delivery.body.as_bytes());
    match result {
        Ok(response) => Attempt {
            status: Some(response.status().as_u16()),
            retry_after: response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            error: None,
        },
        Err(e) => Attempt {
            status: None,
            retry_after: None,
            error: Some(e.to_string()),
        },
    }
}

/// Sends one delivery and files the outcome; false when it stays in the
/// outbox for a retry (so the newer deliveries of its endpoint wait).
fn attempt(outbox: &Outbox, agent: &ureq::Agent, mut delivery: Delivery) -> bool {
    let Some(endpoint) = outbox.endpoint(&delivery.endpoint) else {
        let _ = outbox.bury(&delivery, "its endpoint was deleted");
        return true;
    };
    if let Some(reason) = &endpoint.disabled {
        let _ = outbox.bury(&delivery, &format!("endpoint disabled: {reason}"));
        return true;
    }
    let mut moved_on = true;
    let keys = endpoint.keys(now_millis());
    let started = Instant::now();
    let got = send(agent, &endpoint.url, &keys, &delivery);
    delivery.attempts += 1;
    let config = outbox.config();
    let mut line = json!({
        "message_id": delivery.message_id, "event_type": delivery.event_type,
        "attempt": delivery.attempts, "at": rfc3339(now_millis()), "status": got.status,
        "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "error": got.error,
    });
    let result = match got.status {
        Some(status) if (200..300).contains(&status) => {
            line["outcome"] = "delivered".into();
            outbox.delivered(&delivery)
        }
        Some(410) => {
            line["outcome"] = "endpoint_disabled".into();
            let reason = format!("it answered 410 Gone at {}", rfc3339(now_millis()));
            let _ = outbox.set_disabled(&endpoint.id, Some(reason.clone()));
            // Its other pending deliveries follow on their next turn.
            outbox.bury(&delivery, &format!("endpoint disabled: {reason}"))
        }
        status => {
            let asked = got
                .retry_after
                .as_deref()
                .and_then(|v| retry_after_ms(v, SystemTime::now()))
                .map(|ms| ms.min(config.max_retry_after_ms));
            delivery.last_error = Some(match (status, &got.error) {
                (Some(s), _) => format!("HTTP {s}"),
                (None, Some(e)) => e.clone(),
                (None, None) => "no answer".to_owned(),
            });
            match next_delay_ms(
                &config.retry_schedule_ms,
                config.jitter_percent,
                delivery.attempts,
                fastrand::f64(),
                asked,
            ) {
                Some(delay) => {
                    moved_on = false;
                    delivery.next_attempt_ms = now_millis().saturating_add(delay);
                    line["outcome"] = "retry".into();
                    line["next_attempt_at"] = rfc3339(delivery.next_attempt_ms).into();
                    outbox.reschedule(&delivery)
                }
                None => {
                    line["outcome"] = "dead_letter".into();
                    let reason = format!(
                        "no 2xx after {} attempts (last: {})",
                        delivery.attempts,
                        delivery.last_error.clone().unwrap_or_default()
                    );
                    outbox.bury(&delivery, &reason)
                }
            }
        }
    };
    outbox.log_attempt(&endpoint.id, &line);
    if let Err(p) = result {
        tracing::error!(endpoint = endpoint.id, "{}", p.error);
        // Not filed as sent: it is still in the outbox, first of its endpoint.
        return false;
    }
    moved_on
}
