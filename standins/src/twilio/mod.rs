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
//!
//! One job per file: `request` (checking credentials, the form and each
//! number), `error` (Twilio's error answers), `api` (routing, creating and
//! fetching messages, Twilio's message resource), which uses the other two;
//! this file holds the server, its public handle, its state and [`sign`].

mod api;
mod error;
mod request;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context};
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use api::handle;

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
