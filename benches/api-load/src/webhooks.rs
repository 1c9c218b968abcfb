//! Outbound webhooks during the load: a receiver on 127.0.0.1 that checks
//! every delivery's Standard Webhooks signature (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">` keyed with the base64-decoded `whsec_` secret),
//! and a driver that makes the daemon send events while the load runs, by
//! deactivating and activating a plugin for a tenant through the API.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::load;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How far a delivery's timestamp may be from now (the specification's
/// suggested tolerance).
const TOLERANCE_SECS: u64 = 300;

/// A fresh `whsec_` secret: 24 random bytes from the kernel.
pub(crate) fn new_secret() -> Result<String> {
    let mut key = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("reading /dev/urandom for a webhook secret")?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// What the receiver saw.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Deliveries (retries included).
    pub(crate) deliveries: usize,
    /// Deliveries whose signature and timestamp checked out.
    pub(crate) verified: usize,
    /// Deliveries refused: a signature that does not match, a stale or
    /// missing timestamp, a missing header.
    pub(crate) bad: usize,
    pub(crate) first_bad: Option<String>,
    /// Distinct `webhook-id`s among the verified ones.
    pub(crate) ids: HashSet<String>,
    /// Verified events by type.
    pub(crate) types: BTreeMap<String, usize>,
}

/// The receiver: its address and what it saw so far.
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Received>>,
}

impl Receiver {
    /// Starts it on 127.0.0.1 (any port), verifying with `secret`.
    pub(crate) async fn start(secret: &str) -> Result<Self> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .context("the webhook secret is not base64 after whsec_")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Received::default()));
        let key: Arc<[u8]> = key.into();
        let state = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (key, state) = (Arc::clone(&key), Arc::clone(&state));
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (key, state) = (Arc::clone(&key), Arc::clone(&state));
                        async move { Ok::<_, Infallible>(receive(request, &key, &state).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, seen })
    }

    /// A copy of the counts (without the id set).
    pub(crate) fn counts(&self) -> (usize, usize, usize, usize, Option<String>) {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        (
            seen.deliveries,
            seen.verified,
            seen.bad,
            seen.ids.len(),
            seen.first_bad.clone(),
        )
    }
}

async fn receive(
    request: Request<Incoming>,
    key: &[u8],
    state: &Mutex<Received>,
) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return answer(StatusCode::BAD_REQUEST),
    };
    let verdict = verify(
        key,
        id.as_deref(),
        timestamp.as_deref(),
        signatures.as_deref(),
        &body,
    );
    let mut seen = state.lock().unwrap_or_else(PoisonError::into_inner);
    seen.deliveries += 1;
    match verdict {
        Ok(()) => {
            seen.verified += 1;
            seen.ids.insert(id.unwrap_or_default());
            let kind = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "(no type)".to_owned());
            *seen.types.entry(kind).or_default() += 1;
            answer(StatusCode::NO_CONTENT)
        }
        Err(why) => {
            seen.bad += 1;
            seen.first_bad.get_or_insert(why);
            answer(StatusCode::UNAUTHORIZED)
        }
    }
}

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Checks one delivery as the Standard Webhooks specification says.
fn verify(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let id = id.ok_or("no webhook-id header")?;
    let timestamp = timestamp.ok_or("no webhook-timestamp header")?;
    let signatures = signatures.ok_or("no webhook-signature header")?;
    let sent: u64 = timestamp
        .parse()
        .map_err(|_| format!("webhook-timestamp {timestamp:?} is not Unix seconds"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if sent.abs_diff(now) > TOLERANCE_SECS {
        return Err(format!(
            "webhook-timestamp {sent} is {}s from now",
            sent.abs_diff(now)
        ));
    }
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|e| e.to_string())?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matches = signatures.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|sig| sig.as_slice() == expected.as_slice())
    });
    if matches {
        Ok(())
    } else {
        Err(format!("no signature of {id} matches: {signatures:?}"))
    }
}

/// The events the driver asked for, and its failed requests.
#[derive(Debug, Default)]
pub(crate) struct Driven {
    pub(crate) events: AtomicUsize,
    pub(crate) failed: AtomicUsize,
    pub(crate) first_failure: Mutex<Option<String>>,
}

/// Deactivates and activates `plugin` for `tenant` every `period` (each an
/// event: `plugin.deactivated`, `plugin.activated`) until `stop`.
pub(crate) fn drive(
    addr: SocketAddr,
    token: String,
    tenant: String,
    plugin: String,
    period: Duration,
    stop: Arc<AtomicBool>,
    driven: Arc<Driven>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut steps = ["deactivate", "activate"].into_iter().cycle();
        let mut tick = tokio::time::interval(period);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let Some(step) = steps.next() else { break };
            let path = format!("/api/tenants/{tenant}/plugins/{plugin}/{step}");
            match load::request(addr, Method::POST, &path, &token, None).await {
                Ok((status, _)) if status.is_success() => {
                    driven.events.fetch_add(1, Ordering::Relaxed);
                }
                Ok((status, body)) => {
                    driven.failed.fetch_add(1, Ordering::Relaxed);
                    let why = format!("{path}: {status} {}", String::from_utf8_lossy(&body));
                    driven
                        .first_failure
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(why);
                }
                Err(e) => {
                    driven.failed.fetch_add(1, Ordering::Relaxed);
                    driven
                        .first_failure
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(format!("{path}: {e:#}"));
                }
            }
        }
        // Leave the plugin active, as it was.
        if steps.next() == Some("activate") {
            let path = format!("/api/tenants/{tenant}/plugins/{plugin}/activate");
            if let Ok((status, _)) = load::request(addr, Method::POST, &path, &token, None).await {
                if status.is_success() {
                    driven.events.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("key");
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn deliveries_verify_only_with_the_right_key_body_and_a_fresh_timestamp() {
        let key = b"0123456789abcdef0123";
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            .to_string();
        let body = br#"{"type":"plugin.activated"}"#;
        let good = sign(key, "msg_1", &now, body);
        let check = |signatures: &str, ts: &str, body: &[u8]| {
            verify(key, Some("msg_1"), Some(ts), Some(signatures), body)
        };
        assert_eq!(check(&good, &now, body), Ok(()));
        // One of several (secret rotation) is enough.
        let rotated = format!("{} {good}", sign(b"old key", "msg_1", &now, body));
        assert_eq!(check(&rotated, &now, body), Ok(()));
        assert!(check(&good, &now, b"{}").is_err(), "another body");
        assert!(check(&sign(b"wrong", "msg_1", &now, body), &now, body).is_err());
        assert!(
            check(&sign(key, "msg_1", "1000", body), "1000", body).is_err(),
            "stale"
        );
        assert!(verify(key, None, Some(&now), Some(&good), body).is_err());
    }
}
