//! Stand-in for the Stripe PaymentIntents and Refunds API.
//!
//! Serves `POST /v1/payment_intents`, `/v1/payment_intents/{id}/confirm`,
//! `/v1/payment_intents/{id}/capture` and `/v1/refunds` on 127.0.0.1 and
//! enforces what Stripe enforces on them, with Stripe's error shapes:
//! - authentication: `Authorization: Bearer sk_...` or Basic `sk_...:`,
//!   else 401;
//! - form encoding (a JSON body is refused), required and unknown
//!   parameters, value checks (`parameter_missing`, `parameter_unknown`, ...);
//! - the PaymentIntent state machine: `requires_payment_method` →
//!   `requires_confirmation` → `requires_capture` (manual capture) or
//!   `succeeded`; capture only from `requires_capture` and at most
//!   `amount_capturable`; a declined card leaves `requires_payment_method`;
//! - refunds: the sum of refunds never exceeds the amount received;
//! - idempotency: a repeated key with the same endpoint and parameters
//!   replays the saved answer with `Idempotent-Replayed: true`; with other
//!   parameters it is a 400 `idempotency_error` (stripe-python raises
//!   `IdempotencyError` only for 400/404 with that type). As at Stripe,
//!   answers to requests that failed authentication or parameter validation
//!   are not saved;
//! - test payment methods: `pm_card_visa` and `pm_card_mastercard` succeed,
//!   `pm_card_chargeDeclined` is declined (402 `card_declined`,
//!   `generic_decline`), `pm_card_chargeDeclinedInsufficientFunds` too
//!   (`insufficient_funds`).
//!
//! Two rules are the stand-in's own, stricter than Stripe, because plugkit
//! requires them of its clients: every POST carries an `Idempotency-Key`,
//! and every request a well-formed `Stripe-Version`. Their errors say so.
//!
//! It also records every request, can be told to fail the next requests
//! (429, 409, 5xx: in front of the idempotency layer, like an overloaded
//! edge, so they are never replayed), records the events Stripe would send,
//! and delivers them signed to a URL as Stripe's webhooks do.
//!
//! It is not Stripe: no customers, no other payment methods, no 3-D Secure,
//! no asynchronous states, no GET endpoints.

//!
//! One job per file: `request` (decoding and checking a request), `error`
//! (Stripe's error shapes), `model` (intents and saved answers) and `api`
//! (routing, idempotency, the state machine), which uses the other three.

mod api;
mod error;
mod model;
mod request;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{json, Map, Value};

use api::*;
use error::*;
use model::*;
use request::*;

/// How the stand-in is set up.
#[derive(Debug, Clone)]
pub struct StripeStandInConfig {
    /// The only secret key it accepts.
    pub secret_key: String,
    /// The secret its webhook deliveries are signed with.
    pub webhook_secret: String,
}

impl Default for StripeStandInConfig {
    fn default() -> Self {
        Self {
            secret_key: "sk_test_standin_4eC39HqLyjWDarjtT1zdp7dc".to_owned(),
            webhook_secret: "whsec_standin_5a1f0c9e2b7d4e8f".to_owned(),
        }
    }
}

/// One request the stand-in received, with the status it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path, e.g. `/v1/payment_intents`.
    pub path: String,
    /// Headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
    /// The status answered.
    pub status: u16,
    /// Whether the answer was an idempotent replay.
    pub replayed: bool,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An event the stand-in generated, as Stripe would have sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInEvent {
    /// `evt_...`.
    pub id: String,
    /// E.g. `payment_intent.succeeded`.
    pub event_type: String,
    /// The JSON body a webhook delivery carries.
    pub body: String,
}

/// The Stripe stand-in: an HTTP server on 127.0.0.1 on its own thread and
/// tokio runtime, stopped on drop.
pub struct StripeStandIn {
    base_url: String,
    config: StripeStandInConfig,
    state: Arc<Mutex<Stripe>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StripeStandIn {
    /// Starts the stand-in on a free port.
    pub fn start(config: StripeStandInConfig) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .context("binding the Stripe stand-in to 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("building the Stripe stand-in's runtime")?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let seed = u64::from(addr.port())
            ^ SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        let state = Arc::new(Mutex::new(Stripe::new(config.secret_key.clone(), seed)));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stripe-standin".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here cancels open connections.
            })
            .context("starting the Stripe stand-in's thread")?;
        Ok(Self {
            base_url: format!("http://{addr}"),
            config,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`, to use as the plugin's `base_url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The secret key it accepts.
    pub fn secret_key(&self) -> &str {
        &self.config.secret_key
    }

    /// The secret its webhooks are signed with.
    pub fn webhook_secret(&self) -> &str {
        &self.config.webhook_secret
    }

    /// Answers the next `n` requests with `status` (429, 409 or 5xx; others
    /// become a generic error) and Stripe's error body for it.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.fail_next_with_headers(n, status, &[]);
    }

    /// [`Self::fail_next`], with extra response headers on each failure
    /// (`Retry-After`, and `Date` to pin the clock an HTTP-date is read
    /// against).
    pub fn fail_next_with_headers(&self, n: usize, status: u16, headers: &[(&str, &str)]) {
        let injected = Injected {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        };
        let mut state = self.lock();
        state.failures.extend(std::iter::repeat_n(injected, n));
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// A PaymentIntent as the stand-in holds it now.
    pub fn payment_intent(&self, id: &str) -> Option<Value> {
        let state = self.lock();
        state.intents.get(id).map(|pi| pi.to_json())
    }

    /// Every event generated so far, oldest first.
    pub fn events(&self) -> Vec<StandInEvent> {
        self.lock().events.clone()
    }

    /// The `Stripe-Signature` header Stripe would send with `body` at `timestamp`.
    pub fn signature_header(&self, body: &str, timestamp: i64) -> String {
        sign(body.as_bytes(), &self.config.webhook_secret, timestamp)
    }

    /// POSTs event `event_id` to `url` as a signed webhook at `timestamp`;
    /// returns the receiver's status.
    pub fn deliver_event(&self, event_id: &str, url: &str, timestamp: i64) -> anyhow::Result<u16> {
        let event = self
            .events()
            .into_iter()
            .find(|e| e.id == event_id)
            .ok_or_else(|| anyhow!("the stand-in has no event {event_id}"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header(
                "User-Agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .header(
                "Stripe-Signature",
                &self.signature_header(&event.body, timestamp),
            )
            .send(event.body.as_str())
            .with_context(|| format!("delivering {event_id} to {url}"))?;
        Ok(response.status().as_u16())
    }

    fn lock(&self) -> MutexGuard<'_, Stripe> {
        lock(&self.state)
    }
}

impl Drop for StripeStandIn {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<Stripe>) -> MutexGuard<'_, Stripe> {
    // A panic in one handler must not take every later request down with it.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn handle(
    State(state): State<Arc<Mutex<Stripe>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = Incoming {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let reply = lock(&state).handle(&incoming);
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Signs like Stripe: hex HMAC-SHA256 of `"{t}.{body}"` keyed with the whole secret.
fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}
