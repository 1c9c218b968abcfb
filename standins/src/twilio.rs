//! Stand-in for the Twilio Messages API (2010-04-01), for tests and the
//! offline demo. It is not Twilio: it checks requests the way Twilio does
//! and answers in Twilio's JSON shapes, so a client that works against it
//! speaks Twilio's wire protocol.
//!
//! What it checks, in Twilio's order: HTTP Basic auth with the account SID
//! and auth token or an API key (20003); the account in the path (20003);
//! form encoding with a required `To` (21604), `From` or
//! `MessagingServiceSid` (21603) and `Body` or `MediaUrl` (21602); body
//! length (21617); E.164 `To` (21211); a well-formed `From` (21212) the
//! account owns (21606); a known messaging service (21701); then the
//! recipient rules of Twilio's magic test numbers (21408, 21610, 21612,
//! 21614). A created message is answered with `201` and Twilio's message
//! resource and can be fetched by SID (or `20404`).
//!
//! For tests it records every request, can answer the next N requests with
//! 429 or 5xx ([`TwilioStandIn::fail_next`]), and posts signed status
//! callbacks ([`TwilioStandIn::send_status_callback`]).
//!
//! ```
//! use plugkit_standins::twilio::{TwilioStandIn, TwilioStandInConfig};
//!
//! let standin = TwilioStandIn::start(TwilioStandInConfig::default())?;
//! let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", standin.base_url(), standin.account_sid());
//! assert!(url.starts_with("http://127.0.0.1:"));
//! assert!(standin.sent_messages().is_empty());
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

const API_VERSION: &str = "2010-04-01";

/// What the stand-in accepts. [`Default`] is a test account that knows
/// Twilio's magic test numbers.
#[derive(Debug, Clone)]
pub struct TwilioStandInConfig {
    /// The account SID (`AC` + 32 hex digits).
    pub account_sid: String,
    /// The account's auth token: Basic-auth password and webhook signing key.
    pub auth_token: String,
    /// API keys `(SK..., secret)` accepted in place of the account credentials.
    pub api_keys: Vec<(String, String)>,
    /// SMS-capable sender numbers the account owns.
    pub from_numbers: Vec<String>,
    /// Messaging services (`MG...`) the account has.
    pub messaging_service_sids: Vec<String>,
    /// Senders answered with a fixed error code (21212, 21606).
    pub from_errors: Vec<(String, u32)>,
    /// Recipients answered with a fixed error code (21211, 21408, 21610, 21612, 21614).
    pub to_errors: Vec<(String, u32)>,
}

impl Default for TwilioStandInConfig {
    fn default() -> Self {
        Self::new("AC00000000000000000000000000000001", "standin-auth-token")
    }
}

impl TwilioStandInConfig {
    /// An account with Twilio's magic test numbers: sender `+15005550006`
    /// works, `+15005550001` is invalid (21212), `+15005550007` cannot send
    /// (21606); recipients `+15005550001` (21211), `+15005550002` (21612),
    /// `+15005550003` (21408), `+15005550004` (21610), `+15005550009` (21614).
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        let pairs =
            |list: &[(&str, u32)]| list.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect();
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            api_keys: Vec::new(),
            from_numbers: vec!["+15005550006".to_owned()],
            messaging_service_sids: Vec::new(),
            from_errors: pairs(&[("+15005550001", 21212), ("+15005550007", 21606)]),
            to_errors: pairs(&[
                ("+15005550001", 21211),
                ("+15005550002", 21612),
                ("+15005550003", 21408),
                ("+15005550004", 21610),
                ("+15005550009", 21614),
            ]),
        }
    }
}

/// A message the stand-in accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// `SM` + 32 hex digits.
    pub sid: String,
    /// The recipient.
    pub to: String,
    /// The sender, when given as `From`.
    pub from: Option<String>,
    /// The messaging service, when given.
    pub messaging_service_sid: Option<String>,
    /// The text.
    pub body: String,
    /// `MediaUrl` values, in order.
    pub media_urls: Vec<String>,
    /// `StatusCallback`, when given.
    pub status_callback: Option<String>,
    /// Current status (`queued`, `accepted`, then what tests set).
    pub status: String,
    /// Error code of a failed or undelivered message.
    pub error_code: Option<u32>,
    /// Number of segments the body needs.
    pub num_segments: u32,
    /// The Basic-auth user that sent it (account SID or API key SID).
    pub auth_user: String,
}

/// One request the stand-in answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
    /// Twilio's error code, when the answer was an error.
    pub error_code: Option<u32>,
}

/// A status callback as Twilio would post it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCallback {
    /// The message's `StatusCallback` URL.
    pub url: String,
    /// The form parameters, in the order they are sent.
    pub params: Vec<(String, String)>,
    /// The `X-Twilio-Signature` header value.
    pub signature: String,
}

impl SignedCallback {
    /// The urlencoded form body.
    pub fn body(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.params.iter())
            .finish()
    }
}

/// The running stand-in. Stops (and frees its port) on drop.
pub struct TwilioStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TwilioStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioStandIn")
            .field("addr", &self.addr)
            .field("account_sid", &self.shared.config.account_sid)
            .finish_non_exhaustive()
    }
}

impl TwilioStandIn {
    /// Starts on 127.0.0.1 on a free port, on its own thread and runtime.
    pub fn start(config: TwilioStandInConfig) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding the Twilio stand-in to 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("building the Twilio stand-in's runtime")?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(StandInState::default()),
        });
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let thread = std::thread::Builder::new()
            .name("twilio-standin".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    // Ending the runtime drops every open connection at once:
                    // keep-alive clients cannot hold the stand-in open.
                    tokio::select! {
                        _ = axum::serve(listener, app).into_future() => {}
                        _ = stop => {}
                    }
                });
            })
            .context("starting the Twilio stand-in's thread")?;
        Ok(Self {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`, to use as the API base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The account SID it serves.
    pub fn account_sid(&self) -> &str {
        &self.shared.config.account_sid
    }

    /// The auth token it accepts and signs callbacks with.
    pub fn auth_token(&self) -> &str {
        &self.shared.config.auth_token
    }

    /// Every message accepted so far, oldest first.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.state().messages.clone()
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Answers the next `n` requests, whatever they are, with `status`
    /// (429 → Twilio's 20429 body; 5xx → Twilio's 20500-style body).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.fail_next_with_headers(n, status, &[]);
    }

    /// [`Self::fail_next`], with extra response headers on each failure
    /// (`Retry-After`, and `Date` to pin the clock an HTTP-date is read
    /// against).
    pub fn fail_next_with_headers(&self, n: usize, status: u16, headers: &[(&str, &str)]) {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let mut state = self.shared.state();
        state
            .failures
            .extend(std::iter::repeat_n((status, headers), n));
    }

    /// Moves a message to `status` (e.g. `delivered`, or `undelivered` with an error code).
    pub fn set_status(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<u32>,
    ) -> anyhow::Result<()> {
        let mut state = self.shared.state();
        let message = state
            .messages
            .iter_mut()
            .find(|m| m.sid == sid)
            .ok_or_else(|| anyhow!("the Twilio stand-in has no message {sid}"))?;
        message.status = status.to_owned();
        message.error_code = error_code;
        Ok(())
    }

    /// Moves a message to `status` and builds the signed callback Twilio
    /// would post to its `StatusCallback`.
    pub fn status_callback(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<u32>,
    ) -> anyhow::Result<SignedCallback> {
        self.set_status(sid, status, error_code)?;
        let message = self
            .sent_messages()
            .into_iter()
            .find(|m| m.sid == sid)
            .ok_or_else(|| anyhow!("the Twilio stand-in has no message {sid}"))?;
        let url = message
            .status_callback
            .clone()
            .ok_or_else(|| anyhow!("message {sid} was sent without a StatusCallback"))?;
        let config = &self.shared.config;
        let mut params = vec![
            ("AccountSid".to_owned(), config.account_sid.clone()),
            ("ApiVersion".to_owned(), API_VERSION.to_owned()),
        ];
        if let Some(code) = error_code {
            params.push(("ErrorCode".to_owned(), code.to_string()));
        }
        if let Some(from) = &message.from {
            params.push(("From".to_owned(), from.clone()));
        }
        params.push(("MessageSid".to_owned(), sid.to_owned()));
        params.push(("MessageStatus".to_owned(), status.to_owned()));
        if let Some(service) = &message.messaging_service_sid {
            params.push(("MessagingServiceSid".to_owned(), service.clone()));
        }
        params.push(("SmsSid".to_owned(), sid.to_owned()));
        params.push(("SmsStatus".to_owned(), status.to_owned()));
        params.push(("To".to_owned(), message.to.clone()));
        let signature = sign(&config.auth_token, &url, &params)?;
        Ok(SignedCallback {
            url,
            params,
            signature,
        })
    }

    /// Moves a message to `status` and posts the signed callback to its
    /// `StatusCallback` URL (http only), as Twilio does. Returns the
    /// receiver's HTTP status.
    pub fn send_status_callback(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<u32>,
    ) -> anyhow::Result<u16> {
        let callback = self.status_callback(sid, status, error_code)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .post(&callback.url)
            .header("X-Twilio-Signature", &callback.signature)
            .header("User-Agent", "TwilioProxy/1.1")
            .content_type("application/x-www-form-urlencoded")
            .send(callback.body())
            .with_context(|| format!("posting the status callback to {}", callback.url))?;
        Ok(response.status().as_u16())
    }
}

impl Drop for TwilioStandIn {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `X-Twilio-Signature`: base64 HMAC-SHA1 (key: auth token) of the URL
/// followed by each parameter's name and value, sorted by name then value.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> anyhow::Result<String> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes())
        .map_err(|e| anyhow!("HMAC key: {e}"))?;
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

struct Shared {
    config: TwilioStandInConfig,
    state: Mutex<StandInState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, StandInState> {
        // A panicking test thread must not take the stand-in down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct StandInState {
    messages: Vec<SentMessage>,
    requests: Vec<RecordedRequest>,
    failures: VecDeque<(u16, Vec<(String, String)>)>,
    next_sid: u64,
}

/// Twilio's error answer.
struct TwilioError {
    status: u16,
    code: u32,
    message: String,
    /// Extra response headers (an injected failure's `Retry-After`).
    headers: Vec<(String, String)>,
}

impl TwilioError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    fn authentication(message: &str) -> Self {
        Self::new(401, 20003, format!("Authentication Error - {message}"))
    }

    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        });
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, json_headers(), body.to_string()).into_response();
        if self.status == 401 {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::try_from(name),
                HeaderValue::try_from(value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

fn json_headers() -> [(header::HeaderName, HeaderValue); 1] {
    [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    )]
}

/// The one handler: Twilio's paths end in `.json`, which path patterns do
/// not express well, so routing is done here.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let outcome = route(&shared, &method, &path, &headers, &body);
    let (status, error_code, response) = match outcome {
        Ok((status, resource)) => (
            status,
            None,
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                json_headers(),
                resource.to_string(),
            )
                .into_response(),
        ),
        Err(error) => (error.status, Some(error.code), error.into_response()),
    };
    shared.state().requests.push(RecordedRequest {
        method: method.to_string(),
        path,
        status,
        error_code,
    });
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u16, Value), TwilioError> {
    if let Some((status, headers)) = shared.state().failures.pop_front() {
        return Err(TwilioError {
            headers,
            ..injected_failure(status)
        });
    }
    let not_found = || {
        TwilioError::new(
            404,
            20404,
            format!("The requested resource {path} was not found"),
        )
    };
    let rest = path
        .strip_prefix("/2010-04-01/Accounts/")
        .ok_or_else(not_found)?;
    let (account, resource) = rest.split_once('/').ok_or_else(not_found)?;
    let user = authenticate(&shared.config, headers)?;
    if account != shared.config.account_sid {
        return Err(TwilioError::authentication("invalid username"));
    }
    match (resource, method) {
        ("Messages.json", &Method::POST) => {
            let params = form_params(headers, body);
            create_message(shared, &user, &params).map(|v| (201, v))
        }
        ("Messages.json", _) => Err(method_not_allowed(method)),
        (other, &Method::GET) => {
            let sid = other
                .strip_prefix("Messages/")
                .and_then(|s| s.strip_suffix(".json"))
                .ok_or_else(not_found)?;
            let state = shared.state();
            let message = state
                .messages
                .iter()
                .find(|m| m.sid == sid)
                .ok_or_else(not_found)?;
            Ok((200, resource_json(&shared.config, message)))
        }
        (other, _) if other.starts_with("Messages/") => Err(method_not_allowed(method)),
        _ => Err(not_found()),
    }
}

fn method_not_allowed(method: &Method) -> TwilioError {
    TwilioError::new(405, 20004, format!("Method not allowed: {method}"))
}

fn injected_failure(status: u16) -> TwilioError {
    match status {
        429 => TwilioError::new(429, 20429, "Too Many Requests"),
        503 => TwilioError::new(503, 20503, "Service Unavailable"),
        s if s >= 500 => TwilioError::new(s, 20500, "An internal server error has occurred"),
        s => TwilioError::new(s, 20001, "Unknown problem"),
    }
}

/// Checks HTTP Basic auth; returns the user (account or API key SID).
fn authenticate(config: &TwilioStandInConfig, headers: &HeaderMap) -> Result<String, TwilioError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| TwilioError::authentication("No credentials provided"))?;
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or_else(|| TwilioError::authentication("No credentials provided"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| TwilioError::authentication("invalid username"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| TwilioError::authentication("invalid username"))?;
    let account = user == config.account_sid && password == config.auth_token;
    let api_key = config
        .api_keys
        .iter()
        .any(|(sid, secret)| sid == user && secret == password);
    if account || api_key {
        Ok(user.to_owned())
    } else if user == config.account_sid || config.api_keys.iter().any(|(sid, _)| sid == user) {
        Err(TwilioError::authentication("invalid password"))
    } else {
        Err(TwilioError::authentication("invalid username"))
    }
}

/// The form parameters; a body that is not urlencoded carries none, as at Twilio.
fn form_params(headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Vec::new();
    }
    form_urlencoded::parse(body).into_owned().collect()
}

fn create_message(
    shared: &Shared,
    user: &str,
    params: &[(String, String)],
) -> Result<Value, TwilioError> {
    let config = &shared.config;
    let first = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let to = first("To")
        .ok_or_else(|| TwilioError::bad_request(21604, "A 'To' phone number is required."))?;
    let from = first("From");
    let service = first("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return Err(TwilioError::bad_request(
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        ));
    }
    let body = first("Body").unwrap_or("");
    let media_urls: Vec<String> = params
        .iter()
        .filter(|(n, v)| n == "MediaUrl" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    if body.is_empty() && media_urls.is_empty() {
        return Err(TwilioError::bad_request(21602, "Message body is required."));
    }
    if body.chars().count() > 1600 {
        return Err(TwilioError::bad_request(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if let Some(bad) = media_urls.iter().find(|u| !is_http_url(u)) {
        return Err(TwilioError::bad_request(
            21620,
            format!("Invalid media URL(s): {bad}"),
        ));
    }
    let status_callback = first("StatusCallback");
    if let Some(url) = status_callback.filter(|u| !is_http_url(u)) {
        return Err(TwilioError::bad_request(
            21609,
            format!("Invalid StatusCallback url: {url}"),
        ));
    }
    if !is_e164(to) || code_for(&config.to_errors, to) == Some(21211) {
        return Err(TwilioError::bad_request(
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    if let Some(from) = from {
        match code_for(&config.from_errors, from) {
            Some(21606) => return Err(not_capable(from)),
            Some(code) => return Err(invalid_from(code, from)),
            None if !is_sender_id(from) => return Err(invalid_from(21212, from)),
            None if !config.from_numbers.iter().any(|n| n == from) => {
                return Err(not_capable(from))
            }
            None => {}
        }
    }
    if let Some(service) = service {
        if !config.messaging_service_sids.iter().any(|s| s == service) {
            return Err(TwilioError::bad_request(
                21701,
                format!("The Messaging Service Sid {service} is invalid."),
            ));
        }
    }
    if let Some(code) = code_for(&config.to_errors, to) {
        let sender = from.unwrap_or("the messaging service");
        let message = match code {
            21408 => format!("Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
            21610 => "Attempt to send to unsubscribed recipient".to_owned(),
            21612 => format!("The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {sender} via SMS."),
            21614 => format!("'To' number {to} is not a valid mobile number"),
            other => format!("Twilio error {other} for 'To' number {to}"),
        };
        return Err(TwilioError::bad_request(code, message));
    }

    let mut state = shared.state();
    state.next_sid += 1;
    let message = SentMessage {
        sid: format!("SM{:032x}", 0x5a5a_0000_0000_u64 + state.next_sid),
        to: to.to_owned(),
        from: from.map(str::to_owned),
        messaging_service_sid: service.map(str::to_owned),
        body: body.to_owned(),
        media_urls,
        status_callback: status_callback.map(str::to_owned),
        // Twilio queues a message sent from a number and "accepts" one
        // handed to a messaging service, which picks the sender later.
        status: if from.is_some() { "queued" } else { "accepted" }.to_owned(),
        error_code: None,
        num_segments: segments(body),
        auth_user: user.to_owned(),
    };
    let resource = resource_json(config, &message);
    state.messages.push(message);
    Ok(resource)
}

fn invalid_from(code: u32, from: &str) -> TwilioError {
    TwilioError::bad_request(
        code,
        format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."),
    )
}

fn not_capable(from: &str) -> TwilioError {
    TwilioError::bad_request(
        21606,
        format!("The 'From' phone number provided ({from}) is not a valid message-capable Twilio phone number for this destination."),
    )
}

fn code_for(list: &[(String, u32)], number: &str) -> Option<u32> {
    list.iter().find(|(n, _)| n == number).map(|(_, c)| *c)
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A phone number, a short code (5-6 digits) or an alphanumeric sender ID
/// (up to 11 letters, digits and spaces, at least one letter).
fn is_sender_id(from: &str) -> bool {
    let short_code = (5..=6).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit());
    let alphanumeric = (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    is_e164(from) || short_code || alphanumeric
}

/// Segments as Twilio bills them: GSM-7 160 (153 when split), else UCS-2 70 (67).
fn segments(body: &str) -> u32 {
    const GSM: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                       ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    let gsm = body.chars().all(|c| GSM.contains(c));
    let length = body.chars().count();
    let (single, multi) = if gsm { (160, 153) } else { (70, 67) };
    let count = if length <= single {
        1
    } else {
        length.div_ceil(multi)
    };
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Twilio's message resource.
fn resource_json(config: &TwilioStandInConfig, message: &SentMessage) -> Value {
    let now = rfc2822_now();
    let uri = format!(
        "/{API_VERSION}/Accounts/{}/Messages/{}.json",
        config.account_sid, message.sid
    );
    let sent = !matches!(message.status.as_str(), "queued" | "accepted" | "scheduled");
    json!({
        "account_sid": config.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": now,
        "date_sent": if sent { Value::from(now.clone()) } else { Value::Null },
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": message.error_code,
        "error_message": Value::Null,
        "from": message.from,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": message.media_urls.len().to_string(),
        "num_segments": message.num_segments.to_string(),
        "price": Value::Null,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status,
        "subresource_uris": {
            "media": format!("/{API_VERSION}/Accounts/{}/Messages/{}/Media.json", config.account_sid, message.sid),
        },
        "to": message.to,
        "uri": uri,
    })
}

/// The current time as Twilio writes dates: `Thu, 24 Aug 2023 05:01:45 +0000`.
fn rfc2822_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc2822(seconds)
}

fn rfc2822(unix_seconds: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(unix_seconds);
    // An HTTP date is RFC 2822 with `GMT` for the zone; Twilio writes `+0000`.
    let http = httpdate::fmt_http_date(t);
    match http.strip_suffix("GMT") {
        Some(stem) => format!("{stem}+0000"),
        None => http,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};

    use super::*;

    /// A raw answer: status and parsed JSON body.
    struct Answer {
        status: u16,
        json: Value,
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn basic(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    fn messages_url(standin: &TwilioStandIn) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            standin.base_url(),
            standin.account_sid()
        )
    }

    fn read(mut response: ureq::http::Response<ureq::Body>) -> Answer {
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        Answer {
            status,
            json: serde_json::from_str(&body).unwrap_or(Value::Null),
        }
    }

    fn post_as(standin: &TwilioStandIn, auth: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut request = agent().post(messages_url(standin));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        read(
            request
                .content_type("application/x-www-form-urlencoded")
                .send(body)
                .unwrap(),
        )
    }

    fn post(standin: &TwilioStandIn, pairs: &[(&str, &str)]) -> Answer {
        let auth = basic(standin.account_sid(), standin.auth_token());
        post_as(standin, Some(&auth), pairs)
    }

    fn get(standin: &TwilioStandIn, path: &str) -> Answer {
        let auth = basic(standin.account_sid(), standin.auth_token());
        read(
            agent()
                .get(format!("{}{path}", standin.base_url()))
                .header("Authorization", auth)
                .call()
                .unwrap(),
        )
    }

    fn standin() -> TwilioStandIn {
        TwilioStandIn::start(TwilioStandInConfig::default()).unwrap()
    }

    /// Checks a Twilio error answer: status, code and the documented shape.
    fn check_error(answer: &Answer, status: u16, code: u32) {
        assert_eq!(answer.status, status, "{}", answer.json);
        assert_eq!(answer.json["code"], code, "{}", answer.json);
        assert_eq!(answer.json["status"], status, "{}", answer.json);
        assert_eq!(
            answer.json["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
        assert!(answer.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    fn is_sid(value: &Value, prefix: &str) -> bool {
        value.as_str().is_some_and(|s| {
            s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
        })
    }

    #[test]
    fn a_valid_message_is_created_and_can_be_fetched() {
        let standin = standin();
        let created = post(
            &standin,
            &[
                ("To", "+14155550100"),
                ("From", "+15005550006"),
                ("Body", "Link down"),
                ("StatusCallback", "http://127.0.0.1:9/cb"),
                ("MediaUrl", "https://a.example/1.png"),
                ("MediaUrl", "https://a.example/2.png"),
            ],
        );
        assert_eq!(created.status, 201, "{}", created.json);
        let json = &created.json;
        assert!(is_sid(&json["sid"], "SM"), "{json}");
        assert_eq!(json["status"], "queued");
        assert_eq!(json["num_segments"], "1");
        assert_eq!(json["num_media"], "2");
        assert_eq!(json["error_code"], Value::Null);
        assert_eq!(json["account_sid"], standin.account_sid());
        assert_eq!(json["direction"], "outbound-api");
        let date = json["date_created"].as_str().unwrap();
        assert!(date.ends_with(" +0000") && date.len() == 31, "{date}");

        let sid = json["sid"].as_str().unwrap();
        let fetched = get(&standin, json["uri"].as_str().unwrap());
        assert_eq!(fetched.status, 200);
        assert_eq!(fetched.json["sid"], sid);

        let sent = standin.sent_messages();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].media_urls,
            ["https://a.example/1.png", "https://a.example/2.png"]
        );
        assert_eq!(
            sent[0].status_callback.as_deref(),
            Some("http://127.0.0.1:9/cb")
        );
        assert_eq!(sent[0].auth_user, standin.account_sid());

        standin.set_status(sid, "undelivered", Some(30003)).unwrap();
        let fetched = get(&standin, json["uri"].as_str().unwrap());
        assert_eq!(fetched.json["status"], "undelivered");
        assert_eq!(fetched.json["error_code"], 30003);
    }

    #[test]
    fn a_messaging_service_message_is_accepted_without_a_from() {
        let standin = TwilioStandIn::start(TwilioStandInConfig {
            messaging_service_sids: vec!["MG0123456789abcdef0123456789abcdef".to_owned()],
            ..TwilioStandInConfig::default()
        })
        .unwrap();
        let created = post(
            &standin,
            &[
                ("To", "+14155550100"),
                ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
                ("Body", "hi"),
            ],
        );
        assert_eq!(created.status, 201, "{}", created.json);
        assert_eq!(created.json["status"], "accepted");
        assert_eq!(created.json["from"], Value::Null);
        let unknown = post(
            &standin,
            &[
                ("To", "+14155550100"),
                ("MessagingServiceSid", "MGffffffffffffffffffffffffffffffff"),
                ("Body", "hi"),
            ],
        );
        check_error(&unknown, 400, 21701);
    }

    #[test]
    fn credentials_are_checked_like_twilio() {
        let standin = TwilioStandIn::start(TwilioStandInConfig {
            api_keys: vec![(
                "SK0123456789abcdef0123456789abcdef".to_owned(),
                "keysecret".to_owned(),
            )],
            ..TwilioStandInConfig::default()
        })
        .unwrap();
        let message = [
            ("To", "+14155550100"),
            ("From", "+15005550006"),
            ("Body", "hi"),
        ];
        check_error(&post_as(&standin, None, &message), 401, 20003);
        let wrong = basic(standin.account_sid(), "nope");
        check_error(&post_as(&standin, Some(&wrong), &message), 401, 20003);
        let stranger = basic("AC99999999999999999999999999999999", standin.auth_token());
        check_error(&post_as(&standin, Some(&stranger), &message), 401, 20003);
        check_error(&post_as(&standin, Some("Bearer x"), &message), 401, 20003);

        let key = basic("SK0123456789abcdef0123456789abcdef", "keysecret");
        let created = post_as(&standin, Some(&key), &message);
        assert_eq!(created.status, 201, "{}", created.json);
        assert_eq!(
            standin.sent_messages()[0].auth_user,
            "SK0123456789abcdef0123456789abcdef"
        );

        // Good credentials, another account's path.
        let other = agent()
            .post(format!(
                "{}/2010-04-01/Accounts/AC99999999999999999999999999999999/Messages.json",
                standin.base_url()
            ))
            .header("Authorization", &key)
            .content_type("application/x-www-form-urlencoded")
            .send("To=%2B14155550100&From=%2B15005550006&Body=hi")
            .unwrap();
        check_error(&read(other), 401, 20003);
    }

    #[test]
    fn required_parameters_and_encoding_are_enforced() {
        let standin = standin();
        check_error(
            &post(&standin, &[("From", "+15005550006"), ("Body", "x")]),
            400,
            21604,
        );
        check_error(
            &post(&standin, &[("To", "+14155550100"), ("Body", "x")]),
            400,
            21603,
        );
        check_error(
            &post(
                &standin,
                &[("To", "+14155550100"), ("From", "+15005550006")],
            ),
            400,
            21602,
        );
        let long = "x".repeat(1601);
        check_error(
            &post(
                &standin,
                &[
                    ("To", "+14155550100"),
                    ("From", "+15005550006"),
                    ("Body", &long),
                ],
            ),
            400,
            21617,
        );
        check_error(
            &post(
                &standin,
                &[
                    ("To", "+14155550100"),
                    ("From", "+15005550006"),
                    ("Body", "x"),
                    ("StatusCallback", "ftp://x"),
                ],
            ),
            400,
            21609,
        );
        // A JSON body is not a form: Twilio sees no parameters at all.
        let json = agent()
            .post(messages_url(&standin))
            .header(
                "Authorization",
                basic(standin.account_sid(), standin.auth_token()),
            )
            .content_type("application/json")
            .send(r#"{"To": "+14155550100", "From": "+15005550006", "Body": "x"}"#)
            .unwrap();
        check_error(&read(json), 400, 21604);
        // A literal `+` in a form decodes to a space, so an unescaped number is invalid.
        let raw = agent()
            .post(messages_url(&standin))
            .header(
                "Authorization",
                basic(standin.account_sid(), standin.auth_token()),
            )
            .content_type("application/x-www-form-urlencoded")
            .send("To=+14155550100&From=%2B15005550006&Body=x")
            .unwrap();
        check_error(&read(raw), 400, 21211);
        assert!(standin.sent_messages().is_empty());
    }

    #[test]
    fn magic_numbers_answer_their_error_codes() {
        let standin = standin();
        let cases = [
            ("+15005550006", "not-a-number", 21211),
            ("+15005550006", "+15005550001", 21211),
            ("+15005550001", "+14155550100", 21212),
            ("not a sender!", "+14155550100", 21212),
            ("+15005550007", "+14155550100", 21606),
            ("+14155550199", "+14155550100", 21606),
            ("+15005550006", "+15005550002", 21612),
            ("+15005550006", "+15005550003", 21408),
            ("+15005550006", "+15005550004", 21610),
            ("+15005550006", "+15005550009", 21614),
        ];
        for (from, to, code) in cases {
            let answer = post(&standin, &[("To", to), ("From", from), ("Body", "x")]);
            check_error(&answer, 400, code);
        }
        let codes: Vec<Option<u32>> = standin.requests().iter().map(|r| r.error_code).collect();
        let expected: Vec<Option<u32>> = cases.iter().map(|(_, _, c)| Some(*c)).collect();
        assert_eq!(codes, expected);
    }

    #[test]
    fn unknown_messages_and_paths_are_twilio_404s() {
        let standin = standin();
        let account = standin.account_sid().to_owned();
        let missing = get(
            &standin,
            &format!(
                "/2010-04-01/Accounts/{account}/Messages/SM00000000000000000000000000000000.json"
            ),
        );
        check_error(&missing, 404, 20404);
        check_error(&get(&standin, "/v1/Services"), 404, 20404);
        check_error(
            &get(
                &standin,
                &format!("/2010-04-01/Accounts/{account}/Messages.json"),
            ),
            405,
            20004,
        );
    }

    #[test]
    fn injected_failures_come_first_then_normal_service_resumes() {
        let standin = standin();
        standin.fail_next(1, 429);
        standin.fail_next(2, 500);
        let message = [
            ("To", "+14155550100"),
            ("From", "+15005550006"),
            ("Body", "x"),
        ];
        check_error(&post(&standin, &message), 429, 20429);
        check_error(&post(&standin, &message), 500, 20500);
        check_error(&post(&standin, &message), 500, 20500);
        assert_eq!(post(&standin, &message).status, 201);
        let statuses: Vec<u16> = standin.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 500, 500, 201]);
        assert_eq!(standin.sent_messages().len(), 1);
    }

    #[test]
    fn signatures_match_twilios_sdk_vector() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        let signature = sign(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
        )
        .unwrap();
        assert_eq!(signature, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    /// The headers (lower-case names) and body of a received request.
    type Received = (HashMap<String, String>, String);

    /// Accepts one HTTP request on a free port; returns its URL and a handle
    /// yielding the request.
    fn one_shot_receiver() -> (String, std::thread::JoinHandle<Received>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hooks/twilio/status?tenant=t1",
            listener.local_addr().unwrap()
        );
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut headers = HashMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let Some((name, value)) = line.trim_end().split_once(':') else {
                    break;
                };
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
            let length: usize = headers["content-length"].parse().unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .unwrap();
            (headers, String::from_utf8(body).unwrap())
        });
        (url, handle)
    }

    #[test]
    fn status_callbacks_are_posted_signed() {
        let standin = standin();
        let (url, receiver) = one_shot_receiver();
        let created = post(
            &standin,
            &[
                ("To", "+14155550100"),
                ("From", "+15005550006"),
                ("Body", "x"),
                ("StatusCallback", &url),
            ],
        );
        let sid = created.json["sid"].as_str().unwrap().to_owned();
        assert_eq!(
            standin
                .send_status_callback(&sid, "undelivered", Some(30003))
                .unwrap(),
            204
        );
        let (headers, body) = receiver.join().unwrap();
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("MessageSid"), Some(sid.as_str()));
        assert_eq!(get("MessageStatus"), Some("undelivered"));
        assert_eq!(get("ErrorCode"), Some("30003"));
        assert_eq!(get("AccountSid"), Some(standin.account_sid()));
        assert_eq!(
            headers["x-twilio-signature"],
            sign(standin.auth_token(), &url, &params).unwrap()
        );
        assert_eq!(standin.sent_messages()[0].status, "undelivered");
    }

    #[test]
    fn a_callback_needs_a_known_message_with_a_callback_url() {
        let standin = standin();
        assert!(standin
            .status_callback("SM00000000000000000000000000000000", "sent", None)
            .is_err());
        let created = post(
            &standin,
            &[
                ("To", "+14155550100"),
                ("From", "+15005550006"),
                ("Body", "x"),
            ],
        );
        let sid = created.json["sid"].as_str().unwrap();
        let error = standin.status_callback(sid, "sent", None).unwrap_err();
        assert!(
            error.to_string().contains("without a StatusCallback"),
            "{error}"
        );
    }

    #[test]
    fn segments_follow_gsm7_and_ucs2_limits() {
        let check = |body: &str, expected| {
            assert_eq!(segments(body), expected, "{} chars", body.chars().count())
        };
        check("", 1);
        check(&"a".repeat(160), 1);
        check(&"a".repeat(161), 2);
        check(&"a".repeat(306), 2);
        check(&"a".repeat(307), 3);
        check(&"é".repeat(160), 1); // é is in the GSM alphabet
        check(&"ł".repeat(70), 1);
        check(&"ł".repeat(71), 2);
        check("👍", 1);
    }

    #[test]
    fn dates_are_rfc2822_in_utc() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_692_853_305), "Thu, 24 Aug 2023 05:01:45 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn drop_frees_the_port() {
        let standin = standin();
        let addr = standin.addr;
        drop(standin);
        std::net::TcpListener::bind(addr).unwrap();
    }
}
