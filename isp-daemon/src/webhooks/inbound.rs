//! The providers' callbacks: `POST /webhooks/{plugin}/{tenant}`, public (no
//! admin token: the provider's signature is the credential).
//!
//! The raw request (exact body bytes, the URL as the provider called it —
//! `[webhooks] public_url` + path and query — and the signature header) goes
//! to the tenant's plugin: a payment plugin's `parse_webhook` (Stripe:
//! `Stripe-Signature`, `t=..,v1=..` HMAC-SHA256 over `t.body`, tolerance
//! 300 s by default) or a communication plugin's `parse_status_callback`
//! (Twilio: `X-Twilio-Signature`, HMAC-SHA1 over the URL and the sorted
//! form parameters). A verified event is claimed in the ledger by its id
//! (Stripe's `evt_...`; Twilio's `MessageSid:MessageStatus`), answered at
//! once as the provider expects (Stripe: 200 JSON; Twilio: 200 with empty
//! TwiML), and handed to the flows on a thread of its own.
//!
//! Invariants: a request reaches a flow only after its plugin verified it,
//! and at most once per event id (the id is on disk before the answer);
//! every refusal is a 4xx JSON problem and is counted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use plugin_api::categories::*;
use plugin_api::{communication, payment, WebhookRequest};
use serde_json::json;

use super::reactions;
use crate::daemon::Daemon;
use crate::error::{Problem, ProblemKind};
use crate::webhook_state::ledger::{Count, Received};

/// Twilio's signature header.
pub const TWILIO_SIGNATURE: &str = "x-twilio-signature";
/// Stripe's signature header.
pub const STRIPE_SIGNATURE: &str = "stripe-signature";
/// The answer Twilio expects from a status callback: empty TwiML.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// The public webhook routes, to merge into the daemon's router.
pub fn routes(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/webhooks/{plugin}/{tenant}", post(receive))
        .with_state(daemon)
}

/// What the provider's plugin is for.
enum Kind {
    Payment,
    Communication,
}

/// A refusal: its status, what it counts as, the words the caller gets,
/// and the cause the daemon's log gets (a daemon-side failure's cause can
/// name files and internal errors, which a public caller never sees).
struct Refusal {
    status: StatusCode,
    count: Count,
    problem: Problem,
    cause: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, count: Count, problem: Problem) -> Self {
        Self {
            status,
            count,
            problem,
            cause: None,
        }
    }

    /// A 503 the provider retries: the daemon cannot take the webhook now,
    /// for a `cause` that only the log names.
    fn unavailable(plugin: &str, tenant: &str, count: Count, cause: String) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            count,
            problem: Problem::internal(format!(
                "the daemon cannot take webhooks for plugin `{plugin}` and tenant `{tenant}` \
                 right now; the provider should retry later (the daemon's log names the cause \
                 for its operator)"
            ))
            .plugin(plugin)
            .tenant(tenant),
            cause: Some(cause),
        }
    }
}

/// An accepted request's answer.
enum Answer {
    Json(serde_json::Value),
    Twiml,
}

async fn receive(
    State(daemon): State<Arc<Daemon>>,
    Path((plugin, tenant)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let worker = Arc::clone(&daemon);
    let handled = tokio::task::spawn_blocking(move || {
        handle(&worker, &plugin, &tenant, &path_and_query, &headers, &body)
    })
    .await;
    match handled {
        Ok(Ok(Answer::Json(value))) => (StatusCode::OK, Json(value)).into_response(),
        Ok(Ok(Answer::Twiml)) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/xml; charset=utf-8"),
            )],
            EMPTY_TWIML,
        )
            .into_response(),
        Ok(Err(refusal)) => (refusal.status, Json(refusal.problem)).into_response(),
        Err(e) => {
            tracing::error!("a webhook's worker failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(Problem::internal(
                    "the daemon failed while taking this webhook; the provider should retry \
                     later (the daemon's log names the cause for its operator)",
                )),
            )
                .into_response()
        }
    }
}

/// The URL the provider called: the configured public base, else the Host
/// header over plain HTTP, followed by the path and query as received.
fn provider_url(daemon: &Daemon, headers: &HeaderMap, path_and_query: &str) -> String {
    match daemon.webhooks().public_url() {
        Some(base) => format!("{base}{path_and_query}"),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}{path_and_query}")
        }
    }
}

fn handle(
    daemon: &Arc<Daemon>,
    plugin: &str,
    tenant: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Answer, Refusal> {
    let ledger = daemon.webhooks().ledger();
    let result = verify_and_claim(daemon, plugin, tenant, path_and_query, headers, body);
    if let Err(refusal) = &result {
        ledger.count(plugin, refusal.count);
        tracing::warn!(
            plugin,
            tenant,
            "webhook refused ({}): {}",
            refusal.count.name(),
            refusal.cause.as_deref().unwrap_or(&refusal.problem.error)
        );
    }
    result
}

fn verify_and_claim(
    daemon: &Arc<Daemon>,
    plugin: &str,
    tenant: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Answer, Refusal> {
    let not_found = |message: String| {
        Refusal::new(
            StatusCode::NOT_FOUND,
            Count::NotFound,
            Problem::not_found(message).plugin(plugin).tenant(tenant),
        )
    };
    let host = daemon.host();
    let handle = host.plugin(plugin).map_err(|_| {
        not_found(format!(
            "no plugin `{plugin}` is installed; the webhook URL is /webhooks/<plugin id>/<tenant id>"
        ))
    })?;
    if !handle.is_active_for(tenant) {
        return Err(not_found(format!(
            "plugin `{plugin}` is not active for tenant `{tenant}`; activate it before pointing \
             the provider's webhooks here"
        )));
    }
    let kind = if host
        .providers::<payment::Contract>()
        .iter()
        .any(|p| p == plugin)
    {
        Kind::Payment
    } else if host
        .providers::<communication::Contract>()
        .iter()
        .any(|p| p == plugin)
    {
        Kind::Communication
    } else {
        return Err(not_found(format!(
            "plugin `{plugin}` is neither a payment nor a communication plugin, so it takes no \
             provider webhooks"
        )));
    };
    let header_name = match kind {
        Kind::Payment => STRIPE_SIGNATURE,
        Kind::Communication => TWILIO_SIGNATURE,
    };
    let signature = headers
        .get(header_name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if signature.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            Count::Unsigned,
            Problem::bad_request(format!(
                "the webhook has no `{header_name}` header; only signed provider callbacks are taken"
            ))
            .plugin(plugin)
            .tenant(tenant),
        ));
    }
    let request = WebhookRequest {
        url: provider_url(daemon, headers, path_and_query).into(),
        params: Default::default(),
        body: body.to_vec().into(),
        signature: signature.into(),
    };
    let received_at = crate::webhook_state::clock::now_rfc3339();
    match kind {
        Kind::Payment => {
            let event = handle
                .payment()
                .and_then(|p| p.parse_webhook(tenant, request))
                .map_err(|e| classify(plugin, tenant, &e))?;
            let id = event.id.to_string();
            let received = Received {
                plugin: plugin.to_owned(),
                tenant: tenant.to_owned(),
                id: id.clone(),
                kind: event.event_type.to_string(),
                received_at,
                outcome: None,
            };
            if !claim(daemon, received)? {
                return Ok(Answer::Json(
                    json!({"received": true, "duplicate": true, "id": id}),
                ));
            }
            let body = body.to_vec();
            reactions::spawn(daemon, plugin, tenant, move |daemon, plugin, tenant| {
                reactions::payment_event(daemon, plugin, tenant, &event, &body)
            });
            Ok(Answer::Json(json!({"received": true, "id": id})))
        }
        Kind::Communication => {
            let update = handle
                .communication()
                .and_then(|c| c.parse_status_callback(tenant, request))
                .map_err(|e| classify(plugin, tenant, &e))?;
            let status = serde_json::to_value(update.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".to_owned());
            let id = format!("{}:{status}", update.provider_message_id);
            let received = Received {
                plugin: plugin.to_owned(),
                tenant: tenant.to_owned(),
                id: id.clone(),
                kind: format!("message.{status}"),
                received_at,
                outcome: None,
            };
            if !claim(daemon, received)? {
                return Ok(Answer::Twiml);
            }
            reactions::spawn(daemon, plugin, tenant, move |daemon, plugin, tenant| {
                reactions::message_status(daemon, plugin, tenant, &id, &update)
            });
            Ok(Answer::Twiml)
        }
    }
}

fn claim(daemon: &Daemon, received: Received) -> Result<bool, Refusal> {
    let (plugin, tenant) = (received.plugin.clone(), received.tenant.clone());
    daemon
        .webhooks()
        .ledger()
        .claim(received)
        // Not counted as a refusal of the provider: the provider retries.
        .map_err(|problem| {
            Refusal::unavailable(&plugin, &tenant, Count::Unavailable, problem.error)
        })
}

/// Sorts a failed verification into what it counts as. Only the plugin's
/// `InvalidRequest` is the request's fault, told apart by the plugin's
/// words (the Stripe plugin's `WebhookError`, the Twilio plugin's callback
/// errors; both crates are this workspace's); the caller gets the plugin's
/// own words, never the host's (which name the library's path). Anything
/// else (no webhook secret configured, a plugin that panicked or is not
/// serving) is the daemon's: 503, so the provider retries once it is fixed,
/// with the cause in the log only.
fn classify(plugin: &str, tenant: &str, error: &plugin_host::HostError) -> Refusal {
    let plugin_words = match error {
        plugin_host::HostError::CallFailed { error, message, .. }
            if matches!(**error, plugin_api::PluginError::InvalidRequest { .. }) =>
        {
            message.as_str()
        }
        _ => {
            return Refusal::unavailable(plugin, tenant, Count::Unavailable, error.to_string());
        }
    };
    let lower = plugin_words.to_lowercase();
    let (status, count) = if lower.contains("tolerance") {
        (StatusCode::BAD_REQUEST, Count::Stale)
    } else if lower.contains("signature") {
        (StatusCode::FORBIDDEN, Count::BadSignature)
    } else {
        (StatusCode::BAD_REQUEST, Count::Malformed)
    };
    let fix = match count {
        Count::Stale => "send it again with a fresh timestamp (the provider's retry does)",
        Count::BadSignature => {
            "check that the provider signs with the webhook secret configured for this tenant \
             and calls the URL the daemon is configured with (`[webhooks] public_url`)"
        }
        _ => "send the provider's callback unchanged",
    };
    let mut refusal = Refusal::new(
        status,
        count,
        Problem::new(
            if status == StatusCode::FORBIDDEN {
                ProblemKind::Forbidden
            } else {
                ProblemKind::BadRequest
            },
            format!(
                "webhook refused by plugin `{plugin}` for tenant `{tenant}`: {plugin_words}; {fix}"
            ),
        )
        .plugin(plugin)
        .tenant(tenant),
    );
    refusal.cause = Some(error.to_string());
    refusal
}
