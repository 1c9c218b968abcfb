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

/// A request as the state machine sees it.
#[derive(Debug, Clone)]
struct Incoming {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A failure a test asked for, answered before anything else.
#[derive(Debug, Clone)]
struct Injected {
    status: u16,
    headers: Vec<(String, String)>,
}

/// An answer.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A Stripe error, before it becomes a reply.
#[derive(Debug, Clone)]
struct ApiError {
    status: u16,
    body: Value,
    /// Whether the idempotency layer saves it (only once execution began).
    saved: bool,
}

impl ApiError {
    fn new(
        status: u16,
        kind: &str,
        code: Option<&str>,
        message: impl Into<String>,
        param: Option<&str>,
    ) -> Self {
        let mut error = Map::new();
        if let Some(code) = code {
            error.insert("code".into(), json!(code));
            error.insert(
                "doc_url".into(),
                json!(format!(
                    "https://stripe.com/docs/error-codes/{}",
                    code.replace('_', "-")
                )),
            );
        }
        error.insert("message".into(), json!(message.into()));
        if let Some(param) = param {
            error.insert("param".into(), json!(param));
        }
        error.insert("type".into(), json!(kind));
        Self {
            status,
            body: json!({ "error": error }),
            saved: false,
        }
    }

    fn invalid(code: Option<&str>, message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(400, "invalid_request_error", code, message, param)
    }

    /// An error raised while executing the endpoint: saved for idempotent replay.
    fn executed(mut self) -> Self {
        self.saved = true;
        self
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        if let Some(error) = self.body.get_mut("error").and_then(Value::as_object_mut) {
            error.insert(key.to_owned(), value);
        }
        self
    }
}

type Outcome = Result<(u16, Value), ApiError>;

/// A saved idempotent answer.
#[derive(Debug, Clone)]
struct Saved {
    endpoint: String,
    params: Value,
    status: u16,
    body: String,
    request_id: String,
}

#[derive(Debug, Clone)]
struct Intent {
    id: String,
    amount: i64,
    currency: String,
    status: &'static str,
    capture_method: String,
    payment_method: Option<String>,
    payment_method_types: Vec<String>,
    automatic_payment_methods: bool,
    customer: Option<String>,
    description: Option<String>,
    metadata: Map<String, Value>,
    amount_capturable: i64,
    amount_received: i64,
    amount_refunded: i64,
    latest_charge: Option<String>,
    last_payment_error: Option<Value>,
    created: i64,
}

impl Intent {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_received": self.amount_received,
            "automatic_payment_methods": if self.automatic_payment_methods {
                json!({"allow_redirects": "always", "enabled": true})
            } else {
                Value::Null
            },
            "canceled_at": null,
            "capture_method": self.capture_method,
            "client_secret": format!("{}_secret_standin", self.id),
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "description": self.description,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "payment_method": self.payment_method,
            "payment_method_types": self.payment_method_types,
            "status": self.status,
        })
    }

    fn charge_json(&self) -> Value {
        let captured = self.amount_received;
        json!({
            "id": self.latest_charge,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": captured,
            "amount_refunded": self.amount_refunded,
            "captured": captured > 0,
            "created": self.created,
            "currency": self.currency,
            "livemode": false,
            "paid": true,
            "payment_intent": self.id,
            "payment_method": self.payment_method,
            "refunded": captured > 0 && self.amount_refunded == captured,
            "status": "succeeded",
        })
    }
}

/// The test payment methods the stand-in knows: `None` succeeds, `Some` is
/// the `(code, decline_code, message)` of the decline.
fn test_payment_method(pm: &str) -> Option<Option<(&'static str, &'static str, &'static str)>> {
    match pm {
        "pm_card_visa" | "pm_card_mastercard" | "pm_card_amex" => Some(None),
        "pm_card_chargeDeclined" => Some(Some((
            "card_declined",
            "generic_decline",
            "Your card was declined.",
        ))),
        "pm_card_chargeDeclinedInsufficientFunds" => Some(Some((
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ))),
        _ => None,
    }
}

const CURRENCIES: &[&str] = &[
    "usd", "eur", "gbp", "chf", "cad", "aud", "sek", "nok", "dkk", "pln", "jpy",
];

/// The state machine behind the HTTP server. Pure: no IO.
struct Stripe {
    secret_key: String,
    seed: u64,
    counter: u64,
    failures: VecDeque<Injected>,
    requests: Vec<RecordedRequest>,
    intents: HashMap<String, Intent>,
    charges: HashMap<String, String>,
    idempotency: HashMap<String, Saved>,
    events: Vec<StandInEvent>,
}

impl Stripe {
    fn new(secret_key: String, seed: u64) -> Self {
        Self {
            secret_key,
            seed,
            counter: 0,
            failures: VecDeque::new(),
            requests: Vec::new(),
            intents: HashMap::new(),
            charges: HashMap::new(),
            idempotency: HashMap::new(),
            events: Vec::new(),
        }
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
    }

    /// A fresh id with Stripe's prefix and 24 base-62 characters.
    fn id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        self.counter += 1;
        let mut x = self.seed ^ self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut out = format!("{prefix}_");
        for _ in 0..24 {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            out.push(char::from(ALPHABET[(z % 62) as usize]));
        }
        out
    }

    fn handle(&mut self, request: &Incoming) -> Reply {
        let request_id = self.id("req");
        let injected = self.failures.pop_front();
        let answer = match injected {
            Some(Injected { status, headers }) => Err((injected_failure(status), headers)),
            None => self
                .process(request, &request_id)
                .map_err(|error| (error, Vec::new())),
        };
        let (mut reply, replayed) = match answer {
            Ok(answer) => answer,
            Err((error, headers)) => (
                Reply {
                    status: error.status,
                    headers,
                    body: pretty(&error.body),
                },
                false,
            ),
        };
        reply.headers.push(("request-id".into(), request_id));
        reply
            .headers
            .push(("content-type".into(), "application/json".into()));
        if reply.status == 401 {
            reply
                .headers
                .push(("www-authenticate".into(), "Basic realm=\"Stripe\"".into()));
        }
        self.requests.push(RecordedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status: reply.status,
            replayed,
        });
        reply
    }

    fn process(&mut self, request: &Incoming, request_id: &str) -> Result<(Reply, bool), ApiError> {
        let endpoint = Endpoint::route(&request.method, &request.path).ok_or_else(|| {
            ApiError::new(
                404,
                "invalid_request_error",
                None,
                format!(
                    "Unrecognized request URL ({}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
                    request.method, request.path
                ),
                None,
            )
        })?;
        self.authenticate(request)?;
        let version = check_version(request)?;
        let key = request
            .header("idempotency-key")
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::invalid(
                    None,
                    "Stripe stand-in: every POST must carry an Idempotency-Key header (a plugkit rule; Stripe itself only recommends it).",
                    None,
                )
            })?;
        if key.is_empty() || key.len() > 255 {
            return Err(ApiError::invalid(
                None,
                "Idempotency-Key must be between 1 and 255 characters long.",
                None,
            ));
        }
        let params = parse_form(request)?;

        let endpoint_text = format!("{} {}", request.method, request.path);
        if let Some(saved) = self.idempotency.get(&key) {
            if saved.endpoint != endpoint_text {
                return Err(ApiError::new(
                    400,
                    "idempotency_error",
                    None,
                    format!(
                        "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{}' vs '{}'). \
                         Try using a key other than '{key}' if you meant to execute a different request.",
                        saved.endpoint, endpoint_text
                    ),
                    None,
                ));
            }
            if saved.params != params {
                return Err(ApiError::new(
                    400,
                    "idempotency_error",
                    None,
                    format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                         Try using a key other than '{key}' if you meant to execute a different request."
                    ),
                    None,
                ));
            }
            let reply = Reply {
                status: saved.status,
                headers: vec![
                    ("idempotent-replayed".into(), "true".into()),
                    ("original-request".into(), saved.request_id.clone()),
                ],
                body: saved.body.clone(),
            };
            return Ok((reply, true));
        }

        let context = CallContext {
            version: &version,
            request_id,
            idempotency_key: &key,
        };
        let outcome = match &endpoint {
            Endpoint::CreateIntent => self.create_intent(&params, &context),
            Endpoint::ConfirmIntent(id) => self.confirm_intent(id, &params, &context),
            Endpoint::CaptureIntent(id) => self.capture_intent(id, &params, &context),
            Endpoint::CreateRefund => self.create_refund(&params, &context),
        };
        let (status, body, saved) = match outcome {
            Ok((status, body)) => (status, pretty(&body), true),
            Err(error) => (error.status, pretty(&error.body), error.saved),
        };
        if saved {
            self.idempotency.insert(
                key,
                Saved {
                    endpoint: endpoint_text,
                    params,
                    status,
                    body: body.clone(),
                    request_id: request_id.to_owned(),
                },
            );
        }
        Ok((
            Reply {
                status,
                headers: Vec::new(),
                body,
            },
            false,
        ))
    }

    fn authenticate(&self, request: &Incoming) -> Result<(), ApiError> {
        let missing = || {
            ApiError::new(
                401,
                "invalid_request_error",
                None,
                "You did not provide an API key. You need to provide your API key in the Authorization header, \
                 using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication \
                 for details, or we can help at https://support.stripe.com/.",
                None,
            )
        };
        let header = request.header("authorization").ok_or_else(missing)?;
        let key = if let Some(token) = header.strip_prefix("Bearer ") {
            token.trim().to_owned()
        } else if let Some(basic) = header.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default();
            decoded.split(':').next().unwrap_or_default().to_owned()
        } else {
            return Err(ApiError::new(
                401,
                "invalid_request_error",
                None,
                "Invalid Authorization header: use Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                None,
            ));
        };
        if key.is_empty() {
            return Err(missing());
        }
        if key != self.secret_key {
            return Err(ApiError::new(
                401,
                "invalid_request_error",
                None,
                format!("Invalid API Key provided: {}", mask_key(&key)),
                None,
            ));
        }
        Ok(())
    }

    fn event(&mut self, event_type: &str, object: Value, context: &CallContext<'_>) {
        let id = self.id("evt");
        let body = json!({
            "id": id,
            "object": "event",
            "api_version": context.version,
            "created": Self::now(),
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": context.request_id, "idempotency_key": context.idempotency_key },
            "type": event_type,
        });
        self.events.push(StandInEvent {
            id,
            event_type: event_type.to_owned(),
            body: pretty(&body),
        });
    }

    fn create_intent(&mut self, params: &Value, context: &CallContext<'_>) -> Outcome {
        check_known(
            params,
            &[
                "amount",
                "automatic_payment_methods",
                "capture_method",
                "confirm",
                "currency",
                "customer",
                "description",
                "expand",
                "metadata",
                "payment_method",
                "payment_method_types",
                "receipt_email",
                "return_url",
                "statement_descriptor",
            ],
        )?;
        let amount = required_integer(params, "amount")?;
        let currency = required_string(params, "currency")?.to_ascii_lowercase();
        if !CURRENCIES.contains(&currency.as_str()) {
            return Err(ApiError::invalid(
                None,
                format!(
                    "Invalid currency: {currency}. Stripe currently supports these currencies: {}",
                    CURRENCIES.join(", ")
                ),
                Some("currency"),
            ));
        }
        if amount < 1 {
            return Err(ApiError::invalid(
                Some("parameter_invalid_integer"),
                "This value must be greater than or equal to 1.",
                Some("amount"),
            ));
        }
        if amount < 50 {
            return Err(ApiError::invalid(
                Some("amount_too_small"),
                format!("Amount must be at least {}", format_amount(50, &currency)),
                Some("amount"),
            ));
        }
        if amount > 99_999_999 {
            return Err(ApiError::invalid(
                Some("amount_too_large"),
                format!(
                    "Amount must be no more than {}",
                    format_amount(99_999_999, &currency)
                ),
                Some("amount"),
            ));
        }
        let capture_method = optional_string(params, "capture_method")?.unwrap_or("automatic");
        if !["automatic", "automatic_async", "manual"].contains(&capture_method) {
            return Err(ApiError::invalid(
                None,
                "Invalid capture_method: must be one of automatic, automatic_async, or manual",
                Some("capture_method"),
            ));
        }
        let confirm = optional_bool(params, "confirm")?.unwrap_or(false);
        let metadata = metadata(params)?;
        let payment_method = optional_string(params, "payment_method")?.map(str::to_owned);
        if let Some(pm) = &payment_method {
            check_payment_method(pm)?;
        }
        let customer = optional_string(params, "customer")?.map(str::to_owned);
        if let Some(customer) = &customer {
            if !customer.starts_with("cus_") {
                return Err(ApiError::new(
                    400,
                    "invalid_request_error",
                    Some("resource_missing"),
                    format!("No such customer: '{customer}'"),
                    Some("customer"),
                ));
            }
        }
        let types = optional_list(params, "payment_method_types")?;
        let automatic = params.get("automatic_payment_methods");
        if types.is_some() && automatic.is_some() {
            return Err(ApiError::invalid(
                None,
                "You may only specify one of these parameters: automatic_payment_methods, payment_method_types.",
                Some("payment_method_types"),
            ));
        }
        if let Some(types) = &types {
            if types.is_empty() {
                return Err(ApiError::invalid(
                    None,
                    "Invalid array",
                    Some("payment_method_types"),
                ));
            }
            if let Some(unknown) = types.iter().find(|t| t.as_str() != "card") {
                return Err(ApiError::invalid(
                    None,
                    format!(
                        "The payment method type \"{unknown}\" is invalid. Please ensure the provided type is activated in your \
                         dashboard (https://dashboard.stripe.com/account/payments/settings) and your account is enabled for \
                         any preview features that you are trying to use."
                    ),
                    Some("payment_method_types"),
                ));
            }
        }
        // Since 2023-08-16, an intent without explicit types takes the
        // Dashboard's payment methods, redirect-based ones included.
        let automatic_payment_methods = types.is_none() && context.version.as_str() >= "2023-08-16";
        let id = self.id("pi");
        let intent = Intent {
            id: id.clone(),
            amount,
            currency,
            status: if payment_method.is_some() {
                "requires_confirmation"
            } else {
                "requires_payment_method"
            },
            capture_method: capture_method.to_owned(),
            payment_method,
            payment_method_types: types.unwrap_or_else(|| vec!["card".to_owned()]),
            automatic_payment_methods,
            customer,
            description: optional_string(params, "description")?.map(str::to_owned),
            metadata,
            amount_capturable: 0,
            amount_received: 0,
            amount_refunded: 0,
            latest_charge: None,
            last_payment_error: None,
            created: Self::now(),
        };
        self.intents.insert(id.clone(), intent);
        let created = self
            .intents
            .get(&id)
            .map(Intent::to_json)
            .unwrap_or(Value::Null);
        self.event("payment_intent.created", created, context);
        if confirm {
            let return_url = optional_string(params, "return_url")?;
            return self.confirm(&id, None, return_url, context);
        }
        self.intent_reply(&id)
    }

    fn confirm_intent(&mut self, id: &str, params: &Value, context: &CallContext<'_>) -> Outcome {
        check_known(
            params,
            &["expand", "payment_method", "return_url", "capture_method"],
        )?;
        let payment_method = optional_string(params, "payment_method")?.map(str::to_owned);
        if let Some(pm) = &payment_method {
            check_payment_method(pm)?;
        }
        self.find_intent(id, "intent")?;
        let return_url = optional_string(params, "return_url")?;
        self.confirm(id, payment_method, return_url, context)
    }

    fn confirm(
        &mut self,
        id: &str,
        payment_method: Option<String>,
        return_url: Option<&str>,
        context: &CallContext<'_>,
    ) -> Outcome {
        let charge_id = self.id("ch");
        let intent = self.find_intent(id, "intent")?;
        match intent.status {
            "requires_payment_method" | "requires_confirmation" | "requires_action" => {}
            "succeeded" => {
                return Err(ApiError::invalid(
                    Some("payment_intent_unexpected_state"),
                    "You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.",
                    None,
                )
                .with("payment_intent", intent.to_json())
                .executed())
            }
            status => {
                return Err(ApiError::invalid(
                    Some("payment_intent_unexpected_state"),
                    format!("You cannot confirm this PaymentIntent because it has a status of {status}."),
                    None,
                )
                .with("payment_intent", intent.to_json())
                .executed())
            }
        }
        if let Some(pm) = payment_method {
            intent.payment_method = Some(pm);
        }
        let Some(pm) = intent.payment_method.clone() else {
            return Err(ApiError::invalid(
                Some("payment_intent_unexpected_state"),
                "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the \
                 PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method.",
                None,
            )
            .with("payment_intent", intent.to_json())
            .executed());
        };
        if intent.automatic_payment_methods && return_url.is_none() {
            return Err(ApiError::invalid(
                None,
                "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these \
                 payment methods might redirect your customer off of your website, you must provide a `return_url`. If you \
                 don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and \
                 `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.",
                None,
            )
            .executed());
        }
        intent.latest_charge = Some(charge_id.clone());
        let decline = test_payment_method(&pm).flatten();
        if let Some((code, decline_code, message)) = decline {
            intent.status = "requires_payment_method";
            intent.last_payment_error = Some(json!({
                "charge": charge_id,
                "code": code,
                "decline_code": decline_code,
                "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
                "message": message,
                "payment_method": { "id": pm, "object": "payment_method", "type": "card" },
                "type": "card_error",
            }));
            let snapshot = intent.to_json();
            self.charges.insert(charge_id.clone(), id.to_owned());
            self.event("payment_intent.payment_failed", snapshot.clone(), context);
            return Err(ApiError::new(402, "card_error", Some(code), message, None)
                .with("decline_code", json!(decline_code))
                .with("charge", json!(charge_id))
                .with("payment_intent", snapshot)
                .executed());
        }
        intent.last_payment_error = None;
        if intent.capture_method == "manual" {
            intent.status = "requires_capture";
            intent.amount_capturable = intent.amount;
        } else {
            intent.status = "succeeded";
            intent.amount_received = intent.amount;
        }
        let snapshot = intent.to_json();
        let succeeded = intent.status == "succeeded";
        self.charges.insert(charge_id, id.to_owned());
        if succeeded {
            self.event("payment_intent.succeeded", snapshot.clone(), context);
        }
        Ok((200, snapshot))
    }

    fn capture_intent(&mut self, id: &str, params: &Value, context: &CallContext<'_>) -> Outcome {
        check_known(params, &["amount_to_capture", "expand", "metadata"])?;
        let requested = optional_integer(params, "amount_to_capture")?;
        if requested.is_some_and(|a| a < 1) {
            return Err(ApiError::invalid(
                Some("parameter_invalid_integer"),
                "This value must be greater than or equal to 1.",
                Some("amount_to_capture"),
            ));
        }
        let intent = self.find_intent(id, "intent")?;
        if intent.status != "requires_capture" {
            return Err(ApiError::invalid(
                Some("payment_intent_unexpected_state"),
                format!(
                    "This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with one of \
                     the following statuses may be captured: requires_capture.",
                    intent.status
                ),
                None,
            )
            .with("payment_intent", intent.to_json())
            .executed());
        }
        let amount = requested.unwrap_or(intent.amount_capturable);
        if amount > intent.amount_capturable {
            return Err(ApiError::invalid(
                Some("amount_too_large"),
                format!(
                    "The amount to capture ({}) is greater than the amount capturable on this PaymentIntent ({}).",
                    format_amount(amount, &intent.currency),
                    format_amount(intent.amount_capturable, &intent.currency)
                ),
                Some("amount_to_capture"),
            )
            .executed());
        }
        intent.amount_received = amount;
        intent.amount_capturable = 0;
        intent.status = "succeeded";
        let snapshot = intent.to_json();
        self.event("payment_intent.succeeded", snapshot.clone(), context);
        Ok((200, snapshot))
    }

    fn create_refund(&mut self, params: &Value, context: &CallContext<'_>) -> Outcome {
        check_known(
            params,
            &[
                "amount",
                "charge",
                "expand",
                "instructions_email",
                "metadata",
                "payment_intent",
                "reason",
            ],
        )?;
        let amount = optional_integer(params, "amount")?;
        if amount.is_some_and(|a| a < 1) {
            return Err(ApiError::invalid(
                Some("parameter_invalid_integer"),
                "This value must be greater than or equal to 1.",
                Some("amount"),
            ));
        }
        let reason = optional_string(params, "reason")?.map(str::to_owned);
        if let Some(reason) = &reason {
            if !["duplicate", "fraudulent", "requested_by_customer"].contains(&reason.as_str()) {
                return Err(ApiError::invalid(
                    None,
                    "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                    Some("reason"),
                ));
            }
        }
        let metadata = metadata(params)?;
        let id = match (optional_string(params, "payment_intent")?, optional_string(params, "charge")?) {
            (Some(pi), _) => {
                self.find_intent(pi, "payment_intent")?;
                pi.to_owned()
            }
            (None, Some(charge)) => self.charges.get(charge).cloned().ok_or_else(|| {
                ApiError::new(
                    404,
                    "invalid_request_error",
                    Some("resource_missing"),
                    format!("No such charge: '{charge}'"),
                    Some("charge"),
                )
            })?,
            (None, None) => {
                return Err(ApiError::invalid(
                    Some("parameter_missing"),
                    "One of the following params should be provided for this request: payment_intent or charge.",
                    None,
                ))
            }
        };
        let refund_id = self.id("re");
        let intent = self.find_intent(&id, "payment_intent")?;
        if intent.status != "succeeded" {
            return Err(ApiError::invalid(
                None,
                format!("This PaymentIntent ({id}) does not have a successful charge to refund."),
                Some("payment_intent"),
            )
            .executed());
        }
        let charge = intent.latest_charge.clone().unwrap_or_default();
        let remaining = intent.amount_received - intent.amount_refunded;
        if remaining == 0 {
            return Err(ApiError::invalid(
                Some("charge_already_refunded"),
                format!("Charge {charge} has already been refunded."),
                None,
            )
            .with("charge", json!(charge))
            .executed());
        }
        let amount = amount.unwrap_or(remaining);
        if amount > remaining {
            return Err(ApiError::invalid(
                Some("amount_too_large"),
                format!(
                    "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                    format_amount(amount, &intent.currency),
                    format_amount(remaining, &intent.currency)
                ),
                Some("amount"),
            )
            .executed());
        }
        intent.amount_refunded += amount;
        let charge_json = intent.charge_json();
        let refund = json!({
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": charge,
            "created": Self::now(),
            "currency": intent.currency,
            "metadata": metadata,
            "payment_intent": id,
            "reason": reason,
            "status": "succeeded",
        });
        self.event("charge.refunded", charge_json, context);
        Ok((200, refund))
    }

    fn find_intent(&mut self, id: &str, param: &str) -> Result<&mut Intent, ApiError> {
        self.intents.get_mut(id).ok_or_else(|| {
            ApiError::new(
                404,
                "invalid_request_error",
                Some("resource_missing"),
                format!("No such payment_intent: '{id}'"),
                Some(param),
            )
        })
    }

    fn intent_reply(&mut self, id: &str) -> Outcome {
        let intent = self.find_intent(id, "intent")?;
        Ok((200, intent.to_json()))
    }
}

struct CallContext<'a> {
    version: &'a String,
    request_id: &'a str,
    idempotency_key: &'a str,
}

enum Endpoint {
    CreateIntent,
    ConfirmIntent(String),
    CaptureIntent(String),
    CreateRefund,
}

impl Endpoint {
    fn route(method: &str, path: &str) -> Option<Self> {
        if method != "POST" {
            return None;
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match segments.as_slice() {
            ["", "v1", "payment_intents"] => Some(Self::CreateIntent),
            ["", "v1", "payment_intents", id, "confirm"] => {
                Some(Self::ConfirmIntent((*id).to_owned()))
            }
            ["", "v1", "payment_intents", id, "capture"] => {
                Some(Self::CaptureIntent((*id).to_owned()))
            }
            ["", "v1", "refunds"] => Some(Self::CreateRefund),
            _ => None,
        }
    }
}

fn injected_failure(status: u16) -> ApiError {
    match status {
        429 => ApiError::new(
            429,
            "invalid_request_error",
            Some("rate_limit"),
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            None,
        ),
        409 => ApiError::new(
            409,
            "invalid_request_error",
            Some("idempotency_key_in_use"),
            "There is currently another in-progress request using this Idempotency Key (that probably means you submitted \
             twice, and the other request is still going through). Please retry your request after a moment.",
            None,
        ),
        500..=599 => ApiError::new(status, "api_error", None, "An unknown error occurred", None),
        other => ApiError::new(other, "api_error", None, "Stripe stand-in: injected failure", None),
    }
}

fn check_version(request: &Incoming) -> Result<String, ApiError> {
    let Some(version) = request.header("stripe-version") else {
        return Err(ApiError::invalid(
            None,
            "Stripe stand-in: every request must pin a Stripe-Version header (a plugkit rule; Stripe itself falls back to the \
             account's default version).",
            None,
        ));
    };
    if !is_api_version(version) {
        return Err(ApiError::invalid(
            None,
            format!("Invalid Stripe API version: {version}"),
            None,
        ));
    }
    Ok(version.to_owned())
}

/// `YYYY-MM-DD` with an optional lower-case `.release` suffix.
fn is_api_version(version: &str) -> bool {
    let (date, release) = match version.split_once('.') {
        Some((date, release)) => (date, Some(release)),
        None => (version, None),
    };
    let bytes = date.as_bytes();
    let shape = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    let month = date
        .get(5..7)
        .and_then(|m| m.parse::<u8>().ok())
        .unwrap_or(0);
    let day = date
        .get(8..10)
        .and_then(|d| d.parse::<u8>().ok())
        .unwrap_or(0);
    let release_ok =
        release.is_none_or(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase()));
    shape && (1..=12).contains(&month) && (1..=31).contains(&day) && release_ok
}

/// Decodes the form body into a JSON tree: `a[b]=1` → `{"a":{"b":"1"}}`,
/// `a[]=x` appends to a list; `a[0]=x` is a map with key `0` until a
/// parameter that is a list reads it.
fn parse_form(request: &Incoming) -> Result<Value, ApiError> {
    let content_type = request.header("content-type").unwrap_or_default();
    if !request.body.is_empty() && !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::invalid(
            None,
            "Invalid request (check that your POST content type is application/x-www-form-urlencoded). If you have any \
             questions, we can help at https://support.stripe.com/.",
            None,
        ));
    }
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(&request.body) {
        let segments = key_segments(&key).ok_or_else(|| {
            ApiError::invalid(None, format!("Invalid parameter name: {key}"), None)
        })?;
        insert(&mut root, &segments, value.into_owned()).map_err(|problem| {
            ApiError::invalid(
                None,
                format!("Invalid parameter {key}: {problem}"),
                Some(segments[0]),
            )
        })?;
    }
    Ok(root)
}

/// `a[b][]` → `["a", "b", ""]`.
fn key_segments(key: &str) -> Option<Vec<&str>> {
    let (root, mut rest) = match key.find('[') {
        Some(at) => (&key[..at], &key[at..]),
        None => (key, ""),
    };
    if root.is_empty() || root.contains(']') {
        return None;
    }
    let mut segments = vec![root];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let segment = &inner[..end];
        if segment.contains('[') {
            return None;
        }
        segments.push(segment);
        rest = &inner[end + 1..];
    }
    Some(segments)
}

fn insert(target: &mut Value, segments: &[&str], value: String) -> Result<(), &'static str> {
    let Some((first, rest)) = segments.split_first() else {
        if !target.is_null() {
            return Err("given more than once");
        }
        *target = Value::String(value);
        return Ok(());
    };
    if first.is_empty() {
        if target.is_null() {
            *target = Value::Array(Vec::new());
        }
        let Value::Array(items) = target else {
            return Err("mixes list and map forms");
        };
        items.push(Value::Null);
        let Some(last) = items.last_mut() else {
            return Err("mixes list and map forms");
        };
        return insert(last, rest, value);
    }
    if target.is_null() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return Err("is both a value and a map");
    };
    let slot = map.entry((*first).to_owned()).or_insert(Value::Null);
    insert(slot, rest, value)
}

fn check_known(params: &Value, known: &[&str]) -> Result<(), ApiError> {
    let Some(map) = params.as_object() else {
        return Ok(());
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            Some("parameter_unknown"),
            format!("Received unknown parameter: {unknown}"),
            Some(unknown),
        ));
    }
    Ok(())
}

fn scalar<'a>(params: &'a Value, name: &str) -> Result<Option<&'a str>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid(
            Some("parameter_invalid_string"),
            format!("Invalid string: {name} must be a single value, not a list or a hash"),
            Some(name),
        )),
    }
}

fn required_string<'a>(params: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    match scalar(params, name)? {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ApiError::invalid(
            Some("parameter_missing"),
            format!("Missing required param: {name}."),
            Some(name),
        )),
    }
}

fn optional_string<'a>(params: &'a Value, name: &str) -> Result<Option<&'a str>, ApiError> {
    Ok(scalar(params, name)?.filter(|s| !s.is_empty()))
}

fn required_integer(params: &Value, name: &str) -> Result<i64, ApiError> {
    let text = required_string(params, name)?;
    parse_integer(text, name)
}

fn optional_integer(params: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    optional_string(params, name)?
        .map(|text| parse_integer(text, name))
        .transpose()
}

fn parse_integer(text: &str, name: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().map_err(|_| {
        ApiError::invalid(
            Some("parameter_invalid_integer"),
            format!("Invalid integer: {text}"),
            Some(name),
        )
    })
}

fn optional_bool(params: &Value, name: &str) -> Result<Option<bool>, ApiError> {
    match optional_string(params, name)? {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::invalid(
            Some("parameter_invalid_boolean"),
            format!("Invalid boolean: {other}"),
            Some(name),
        )),
    }
}

/// A list parameter, sent as `name[]=a` or `name[0]=a`.
fn optional_list(params: &Value, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    let invalid = || ApiError::invalid(None, "Invalid array", Some(name));
    let items: Vec<&Value> = match params.get(name) {
        None => return Ok(None),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(map)) => {
            let mut indexed: BTreeMap<usize, &Value> = BTreeMap::new();
            for (index, value) in map {
                indexed.insert(index.parse().map_err(|_| invalid())?, value);
            }
            indexed.into_values().collect()
        }
        Some(_) => return Err(invalid()),
    };
    items
        .into_iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn metadata(params: &Value) -> Result<Map<String, Value>, ApiError> {
    let map = match params.get("metadata") {
        None => return Ok(Map::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Map::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::invalid(
            None,
            "Invalid hash: metadata must be a hash of keys to values, e.g. metadata[order_id]=6735",
            Some("metadata"),
        )),
    };
    if map.len() > 50 {
        return Err(ApiError::invalid(
            None,
            "Metadata can have up to 50 keys, but you passed in more.",
            Some("metadata"),
        ));
    }
    for (key, value) in map {
        let Some(value) = value.as_str() else {
            return Err(ApiError::invalid(
                None,
                format!("Invalid value for metadata[{key}]: metadata values must be strings."),
                Some(&format!("metadata[{key}]")),
            ));
        };
        if key.chars().count() > 40 {
            return Err(ApiError::invalid(
                None,
                format!(
                    "Metadata keys can have up to 40 characters, but you passed in a key that is {} characters long.",
                    key.chars().count()
                ),
                Some("metadata"),
            ));
        }
        if value.chars().count() > 500 {
            return Err(ApiError::invalid(
                None,
                format!(
                    "Metadata values can have up to 500 characters, but you passed in a value that is {} characters long.",
                    value.chars().count()
                ),
                Some(&format!("metadata[{key}]")),
            ));
        }
    }
    Ok(map.clone())
}

fn check_payment_method(pm: &str) -> Result<(), ApiError> {
    if test_payment_method(pm).is_none() {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            format!("No such PaymentMethod: '{pm}'"),
            Some("payment_method"),
        ));
    }
    Ok(())
}

/// `sk_test_****************1234`, as Stripe shows a refused key.
fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let prefix: String = chars[..8].iter().collect();
    let suffix: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}{}{suffix}", "*".repeat(chars.len() - 12))
}

/// `$12.34` for dollars, `12.34 EUR` otherwise (`1234 JPY` for zero-decimal currencies).
fn format_amount(minor: i64, currency: &str) -> String {
    if currency == "jpy" {
        return format!("{minor} JPY");
    }
    let major = format!("{}.{:02}", minor / 100, minor % 100);
    if currency == "usd" {
        format!("${major}")
    } else {
        format!("{major} {}", currency.to_ascii_uppercase())
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk_test_standin_key_0000";

    fn stripe() -> Stripe {
        Stripe::new(KEY.to_owned(), 7)
    }

    fn post(path: &str, key: &str, body: &str) -> Incoming {
        Incoming {
            method: "POST".into(),
            path: path.into(),
            headers: vec![
                ("authorization".into(), format!("Bearer {KEY}")),
                ("stripe-version".into(), "2024-06-20".into()),
                ("idempotency-key".into(), key.into()),
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    fn without(mut request: Incoming, header: &str) -> Incoming {
        request.headers.retain(|(n, _)| n != header);
        request
    }

    fn with(mut request: Incoming, header: &str, value: &str) -> Incoming {
        request.headers.retain(|(n, _)| n != header);
        request.headers.push((header.into(), value.into()));
        request
    }

    /// Sends `request` and renders `status type/code: message` or `status status-of-object`.
    fn check(stripe: &mut Stripe, request: Incoming, expected: &str) -> Value {
        let reply = stripe.handle(&request);
        let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        let actual = match body.get("error") {
            Some(error) => format!(
                "{} {}/{}: {}",
                reply.status,
                error["type"].as_str().unwrap_or("-"),
                error["code"].as_str().unwrap_or("-"),
                error["message"].as_str().unwrap_or("-"),
            ),
            None => format!(
                "{} {}",
                reply.status,
                body["status"].as_str().unwrap_or("-")
            ),
        };
        assert_eq!(
            actual,
            expected,
            "{} {}",
            request.path,
            String::from_utf8_lossy(&request.body)
        );
        body
    }

    const CREATE: &str =
        "amount=2000&currency=usd&payment_method=pm_card_visa&payment_method_types[0]=card";

    #[test]
    fn authentication_is_checked_with_stripes_messages() {
        let mut s = stripe();
        let request = post("/v1/payment_intents", "k1", CREATE);
        check(
            &mut s,
            with(
                request.clone(),
                "authorization",
                "Bearer sk_test_wrong_key_1234",
            ),
            "401 invalid_request_error/-: Invalid API Key provided: sk_test_**********1234",
        );
        let missing = check(&mut s, without(request.clone(), "authorization"), "401 invalid_request_error/-: You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.");
        assert!(missing.get("error").is_some());
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"));
        check(
            &mut s,
            with(request, "authorization", &format!("Basic {basic}")),
            "200 requires_confirmation",
        );
    }

    #[test]
    fn versions_keys_and_form_encoding_are_enforced() {
        let mut s = stripe();
        let request = post("/v1/payment_intents", "k1", CREATE);
        check(
            &mut s,
            with(request.clone(), "stripe-version", "2024-6-20"),
            "400 invalid_request_error/-: Invalid Stripe API version: 2024-6-20",
        );
        check(
            &mut s,
            with(request.clone(), "stripe-version", "2024-09-30.acacia"),
            "200 requires_confirmation",
        );
        let no_key = check(&mut s, without(request.clone(), "idempotency-key"), "400 invalid_request_error/-: Stripe stand-in: every POST must carry an Idempotency-Key header (a plugkit rule; Stripe itself only recommends it).");
        assert!(no_key.get("error").is_some());
        let mut json_body = with(request, "content-type", "application/json");
        json_body.body = br#"{"amount":2000}"#.to_vec();
        check(&mut s, json_body, "400 invalid_request_error/-: Invalid request (check that your POST content type is application/x-www-form-urlencoded). If you have any questions, we can help at https://support.stripe.com/.");
    }

    #[test]
    fn parameters_are_checked_like_stripe() {
        let mut s = stripe();
        let mut n = 0;
        let mut go = |s: &mut Stripe, body: &str, expected: &str| {
            n += 1;
            check(
                s,
                post("/v1/payment_intents", &format!("k{n}"), body),
                expected,
            );
        };
        go(
            &mut s,
            "currency=usd",
            "400 invalid_request_error/parameter_missing: Missing required param: amount.",
        );
        go(
            &mut s,
            "amount=x&currency=usd",
            "400 invalid_request_error/parameter_invalid_integer: Invalid integer: x",
        );
        go(
            &mut s,
            "amount=10&currency=usd",
            "400 invalid_request_error/amount_too_small: Amount must be at least $0.50",
        );
        go(
            &mut s,
            "amount=100&currency=usd&colour=red",
            "400 invalid_request_error/parameter_unknown: Received unknown parameter: colour",
        );
        go(
            &mut s,
            "amount=100&currency=usd&payment_method=pm_nope",
            "400 invalid_request_error/resource_missing: No such PaymentMethod: 'pm_nope'",
        );
        go(
            &mut s,
            "amount=100&currency=usd&confirm=yes",
            "400 invalid_request_error/parameter_invalid_boolean: Invalid boolean: yes",
        );
        go(
            &mut s,
            "amount=100&currency=usd&payment_method_types[]=card&payment_method_types[]=card",
            "200 requires_payment_method",
        );
        go(
            &mut s,
            "amount=100&currency=usd&amount=200",
            "400 invalid_request_error/-: Invalid parameter amount: given more than once",
        );
    }

    #[test]
    fn key_segments_parse_brackets() {
        assert_eq!(key_segments("a"), Some(vec!["a"]));
        assert_eq!(key_segments("a[b][0][]"), Some(vec!["a", "b", "0", ""]));
        assert_eq!(key_segments("a[b"), None);
        assert_eq!(key_segments("[b]"), None);
        assert_eq!(key_segments("a[b]c"), None);
    }

    #[test]
    fn idempotency_replays_and_conflicts() {
        let mut s = stripe();
        let first = check(
            &mut s,
            post("/v1/payment_intents", "same", CREATE),
            "200 requires_confirmation",
        );
        let replay = s.handle(&post("/v1/payment_intents", "same", CREATE));
        assert_eq!(
            serde_json::from_str::<Value>(&replay.body).ok(),
            Some(first)
        );
        assert!(replay
            .headers
            .contains(&("idempotent-replayed".into(), "true".into())));
        check(&mut s, post("/v1/payment_intents", "same", "amount=3000&currency=usd"), "400 idempotency_error/-: Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'same' if you meant to execute a different request.");
        check(&mut s, post("/v1/refunds", "same", "payment_intent=pi_x"), "400 idempotency_error/-: Keys for idempotent requests can only be used for the same endpoint they were first used for ('POST /v1/payment_intents' vs 'POST /v1/refunds'). Try using a key other than 'same' if you meant to execute a different request.");
        assert_eq!(s.intents.len(), 1);
    }

    #[test]
    fn the_state_machine_allows_only_stripes_transitions() {
        let mut s = stripe();
        let pi = check(
            &mut s,
            post(
                "/v1/payment_intents",
                "c",
                &format!("{CREATE}&capture_method=manual"),
            ),
            "200 requires_confirmation",
        );
        let id = pi["id"].as_str().unwrap_or_default().to_owned();
        check(&mut s, post(&format!("/v1/payment_intents/{id}/capture"), "cap0", ""), "400 invalid_request_error/payment_intent_unexpected_state: This PaymentIntent could not be captured because it has a status of requires_confirmation. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.");
        check(
            &mut s,
            post(&format!("/v1/payment_intents/{id}/confirm"), "conf", ""),
            "200 requires_capture",
        );
        check(&mut s, post(&format!("/v1/payment_intents/{id}/confirm"), "conf2", ""), "400 invalid_request_error/payment_intent_unexpected_state: You cannot confirm this PaymentIntent because it has a status of requires_capture.");
        check(&mut s, post(&format!("/v1/payment_intents/{id}/capture"), "cap1", "amount_to_capture=2001"), "400 invalid_request_error/amount_too_large: The amount to capture ($20.01) is greater than the amount capturable on this PaymentIntent ($20.00).");
        check(
            &mut s,
            post(
                &format!("/v1/payment_intents/{id}/capture"),
                "cap2",
                "amount_to_capture=1500",
            ),
            "200 succeeded",
        );
        check(
            &mut s,
            post(
                "/v1/refunds",
                "r1",
                &format!("payment_intent={id}&amount=1000"),
            ),
            "200 succeeded",
        );
        check(&mut s, post("/v1/refunds", "r2", &format!("payment_intent={id}&amount=501")), "400 invalid_request_error/amount_too_large: Refund amount ($5.01) is greater than unrefunded amount on charge ($5.00)");
        check(
            &mut s,
            post("/v1/refunds", "r3", &format!("payment_intent={id}")),
            "200 succeeded",
        );
        let charge = s.intents[&id].latest_charge.clone().unwrap_or_default();
        check(&mut s, post("/v1/refunds", "r4", &format!("payment_intent={id}")), &format!("400 invalid_request_error/charge_already_refunded: Charge {charge} has already been refunded."));
        check(
            &mut s,
            post("/v1/payment_intents/pi_missing/confirm", "m", ""),
            "404 invalid_request_error/resource_missing: No such payment_intent: 'pi_missing'",
        );
        let types: Vec<_> = s.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "payment_intent.created",
                "payment_intent.succeeded",
                "charge.refunded",
                "charge.refunded"
            ]
        );
    }

    #[test]
    fn intents_without_explicit_types_need_a_return_url_to_confirm() {
        let mut s = stripe();
        check(&mut s, post("/v1/payment_intents", "a", "amount=100&currency=usd&payment_method=pm_card_visa&confirm=true"), "400 invalid_request_error/-: This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your website, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.");
        check(&mut s, post("/v1/payment_intents", "b", "amount=100&currency=usd&payment_method=pm_card_visa&confirm=true&return_url=https://example.com/r"), "200 succeeded");
    }

    #[test]
    fn declines_are_card_errors_and_leave_the_intent_retryable() {
        let mut s = stripe();
        let body = check(&mut s, post("/v1/payment_intents", "d", "amount=100&currency=usd&payment_method=pm_card_chargeDeclined&payment_method_types[0]=card&confirm=true"), "402 card_error/card_declined: Your card was declined.");
        assert_eq!(body["error"]["decline_code"], "generic_decline");
        assert_eq!(
            body["error"]["payment_intent"]["status"],
            "requires_payment_method"
        );
        let id = body["error"]["payment_intent"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        check(
            &mut s,
            post(
                &format!("/v1/payment_intents/{id}/confirm"),
                "d2",
                "payment_method=pm_card_visa",
            ),
            "200 succeeded",
        );
    }

    #[test]
    fn injected_failures_come_before_everything_and_are_not_saved() {
        let mut s = stripe();
        s.failures.extend([429, 500].map(|status| Injected {
            status,
            headers: Vec::new(),
        }));
        check(&mut s, post("/v1/payment_intents", "k", CREATE), "429 invalid_request_error/rate_limit: Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.");
        check(
            &mut s,
            post("/v1/payment_intents", "k", CREATE),
            "500 api_error/-: An unknown error occurred",
        );
        check(
            &mut s,
            post("/v1/payment_intents", "k", CREATE),
            "200 requires_confirmation",
        );
        assert!(s.requests.iter().all(|r| !r.replayed));
    }

    #[test]
    fn amounts_are_shown_like_stripe() {
        assert_eq!(format_amount(1999, "usd"), "$19.99");
        assert_eq!(format_amount(5, "eur"), "0.05 EUR");
        assert_eq!(format_amount(500, "jpy"), "500 JPY");
        assert_eq!(mask_key("sk_test_abcdefgh1234"), "sk_test_********1234");
    }
}
