//! The HTTP side of the plugin: one synchronous `ureq` agent per tenant,
//! Stripe's headers, retries, and Stripe's error object as a typed error.
//!
//! Invariants: this is the only module that does network IO; it starts no
//! thread (ureq is synchronous, so the library stays unloadable); the
//! secret key goes into the `Authorization` header and nowhere else.
//!
//! Retries follow stripe-python (`_http_client.py`): 429, 409 (another
//! request with the same idempotency key is in flight) and 5xx are retried,
//! as are connection failures, always with the *same* `Idempotency-Key` so
//! Stripe can never act twice; a `Stripe-Should-Retry` header overrides the
//! status. Backoff is 0.5 s doubling up to 5 s, scaled by a random factor in
//! [0.5, 1] and never under 0.5 s. Other 4xx are final. A `Retry-After` (in
//! seconds or as an HTTP-date) of up to 60 s, stripe-python's limit, is a
//! floor on the wait; a longer one ends the retries with the retryable error,
//! where stripe-python would retry sooner than asked.

use std::time::{Duration, SystemTime};

use plugin_api::{Error, Secret};
use serde::Deserialize;

use crate::config::Settings;
use crate::form::{self, Value};
use crate::retry_after;
use crate::Environment;

const INITIAL_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// The longest `Retry-After` waited for (stripe-python's `MAX_RETRY_AFTER`).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Stripe's own limit.
pub(crate) const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// What Stripe answered, as a typed error. Messages are Stripe's own, with
/// anything that looks like a key redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StripeError {
    /// 402: the card was declined (`card_error`).
    #[error(
        "card declined ({code}{}): {message}{}",
        suffix("decline_code", decline_code),
        request_suffix(request_id)
    )]
    CardDeclined {
        code: String,
        decline_code: Option<String>,
        message: String,
        param: Option<String>,
        request_id: Option<String>,
    },
    /// 400 or 404: the request was wrong (`invalid_request_error`).
    #[error(
        "Stripe refused the request (HTTP {status}{}{}): {message}{}",
        suffix("code", code),
        suffix("param", param),
        request_suffix(request_id)
    )]
    InvalidRequest {
        status: u16,
        code: Option<String>,
        message: String,
        param: Option<String>,
        request_id: Option<String>,
    },
    /// 401: the secret key was refused. Stripe's message is dropped: it echoes part of the key.
    #[error(
        "Stripe refused the secret key (HTTP 401); check `secret_key` for this tenant{}",
        request_suffix(request_id)
    )]
    Authentication { request_id: Option<String> },
    /// 403: the (restricted) key may not do this.
    #[error("the secret key may not do this (HTTP 403): {message}; grant the permission to the restricted key{}", request_suffix(request_id))]
    PermissionDenied {
        message: String,
        request_id: Option<String>,
    },
    /// `idempotency_error` (same key, other parameters: HTTP 400), or a
    /// request with the same key still in flight (HTTP 409) after retries.
    #[error(
        "idempotency conflict (HTTP {status}): {message}{}",
        request_suffix(request_id)
    )]
    IdempotencyConflict {
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    /// 429 after every retry.
    #[error(
        "rate limited by Stripe after {attempts} attempt(s): {message}{}",
        request_suffix(request_id)
    )]
    RateLimited {
        attempts: u32,
        message: String,
        request_id: Option<String>,
    },
    /// 5xx (`api_error`) after every retry.
    #[error(
        "Stripe API error (HTTP {status}) after {attempts} attempt(s): {message}{}",
        request_suffix(request_id)
    )]
    Api {
        status: u16,
        attempts: u32,
        message: String,
        request_id: Option<String>,
    },
    /// No HTTP answer at all after every retry.
    #[error("could not reach Stripe after {attempts} attempt(s): {message}")]
    Transport { attempts: u32, message: String },
    /// A 2xx whose body is not what the endpoint returns, or an unparseable error.
    #[error(
        "unexpected answer from Stripe (HTTP {status}): {message}{}",
        request_suffix(request_id)
    )]
    InvalidResponse {
        status: u16,
        message: String,
        request_id: Option<String>,
    },
}

fn suffix(name: &str, value: &Option<String>) -> String {
    value
        .as_ref()
        .map(|v| format!(", {name} {v}"))
        .unwrap_or_default()
}

fn request_suffix(request_id: &Option<String>) -> String {
    request_id
        .as_ref()
        .map(|id| format!(" [request {id}]"))
        .unwrap_or_default()
}

impl From<StripeError> for Error {
    fn from(error: StripeError) -> Self {
        let message = error.to_string();
        match error {
            StripeError::CardDeclined { code, .. } => Error::provider(code, message, false),
            StripeError::InvalidRequest {
                status: 404, code, ..
            } if code.as_deref() == Some("resource_missing") => Error::not_found(message),
            StripeError::InvalidRequest { code, .. } => Error::provider(
                code.unwrap_or_else(|| "invalid_request_error".to_owned()),
                message,
                false,
            ),
            StripeError::Authentication { .. } => Error::invalid_config("secret_key", message),
            StripeError::PermissionDenied { .. } => {
                Error::provider("permission_error", message, false)
            }
            StripeError::IdempotencyConflict { status, .. } => {
                Error::provider("idempotency_error", message, status == 409)
            }
            StripeError::RateLimited { .. } => Error::provider("rate_limit", message, true),
            StripeError::Api { .. } => Error::provider("api_error", message, true),
            StripeError::Transport { .. } => Error::provider("api_connection_error", message, true),
            StripeError::InvalidResponse { .. } => {
                Error::provider("invalid_response", message, false)
            }
        }
    }
}

/// Stripe's `{"error": {...}}` body.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

/// One HTTP answer, before interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) request_id: Option<String>,
    /// The `Stripe-Should-Retry` header.
    pub(crate) should_retry: Option<bool>,
    /// The wait the `Retry-After` header asks for.
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: String,
}

/// Turns a non-2xx answer into the error it means, the way stripe-python
/// does (`_api_requestor.py::specific_v1_api_error`): by status first.
pub(crate) fn classify(reply: &Reply, attempts: u32) -> StripeError {
    let request_id = reply.request_id.clone();
    let status = reply.status;
    let Ok(ErrorBody { error }) = serde_json::from_str::<ErrorBody>(&reply.body) else {
        let message = format!(
            "the body is not a Stripe error object: {}",
            snippet(&reply.body)
        );
        return match status {
            429 => StripeError::RateLimited {
                attempts,
                message,
                request_id,
            },
            500..=599 => StripeError::Api {
                status,
                attempts,
                message,
                request_id,
            },
            _ => StripeError::InvalidResponse {
                status,
                message,
                request_id,
            },
        };
    };
    let message = redact(error.message.as_deref().unwrap_or("no message"));
    let is_idempotency = error.kind.as_deref() == Some("idempotency_error");
    match status {
        429 => StripeError::RateLimited {
            attempts,
            message,
            request_id,
        },
        400 if error.code.as_deref() == Some("rate_limit") => StripeError::RateLimited {
            attempts,
            message,
            request_id,
        },
        409 => StripeError::IdempotencyConflict {
            status,
            message,
            request_id,
        },
        400 | 404 if is_idempotency => StripeError::IdempotencyConflict {
            status,
            message,
            request_id,
        },
        400 | 404 => StripeError::InvalidRequest {
            status,
            code: error.code,
            message,
            param: error.param,
            request_id,
        },
        401 => StripeError::Authentication { request_id },
        402 => StripeError::CardDeclined {
            code: error.code.unwrap_or_else(|| "card_declined".to_owned()),
            decline_code: error.decline_code,
            message,
            param: error.param,
            request_id,
        },
        403 => StripeError::PermissionDenied {
            message,
            request_id,
        },
        _ => StripeError::Api {
            status,
            attempts,
            message,
            request_id,
        },
    }
}

/// Whether an answer may be retried with the same idempotency key.
pub(crate) fn is_retryable(reply: &Reply) -> bool {
    match reply.should_retry {
        Some(advice) => advice,
        None => matches!(reply.status, 409 | 429 | 500..=599),
    }
}

/// The wait before retry number `retry` (1-based); `jitter` is in [0, 1).
pub(crate) fn backoff(retry: u32, jitter: f64) -> Duration {
    let doubling = 2u32.saturating_pow(retry.saturating_sub(1));
    let base = INITIAL_DELAY.saturating_mul(doubling).min(MAX_DELAY);
    base.mul_f64(0.5 * (1.0 + jitter.clamp(0.0, 1.0)))
        .max(INITIAL_DELAY)
}

/// Replaces anything shaped like a Stripe secret with `[redacted]`.
pub(crate) fn redact(text: &str) -> String {
    const SECRET_PREFIXES: [&str; 5] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = SECRET_PREFIXES
        .iter()
        .filter_map(|p| rest.find(p).map(|at| (at, *p)))
        .min_by_key(|(at, _)| *at)
    {
        out.push_str(&rest[..at]);
        out.push_str("[redacted]");
        let after = &rest[at + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '*'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The start of a body that is not what Stripe sends, on one line: a
/// proxy's page keeps its words, not its colour codes or line ends.
fn snippet(body: &str) -> String {
    let plain = anstream::adapter::strip_str(body).to_string();
    let words: Vec<&str> = plain
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let short: String = words.join(" ").chars().take(200).collect();
    redact(if short.is_empty() { "<empty>" } else { &short })
}

/// A new random idempotency key, shaped like a UUID v4 as stripe-python's.
pub(crate) fn new_idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A tenant's connection to Stripe.
pub(crate) struct Client {
    agent: ureq::Agent,
    base_url: String,
    secret_key: Secret,
    api_version: String,
    max_retries: u32,
    env: Environment,
}

impl Client {
    pub(crate) fn new(settings: &Settings, env: Environment) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Error bodies carry Stripe's error object; read them rather than fail.
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            // Stripe never redirects its API; a redirect is not worth following with a POST.
            .max_redirects(0)
            .user_agent(format!("plugkit-stripe/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            agent,
            base_url: settings.base_url.clone(),
            secret_key: settings.secret_key.clone(),
            api_version: settings.api_version.clone(),
            max_retries: settings.max_retries,
            env,
        }
    }

    /// POSTs `params` to `path`, retrying with the same `idempotency_key`,
    /// and returns the parsed JSON of the 2xx answer.
    pub(crate) fn post(
        &self,
        path: &str,
        params: &[(String, Value)],
        idempotency_key: &str,
    ) -> Result<serde_json::Value, StripeError> {
        let url = format!("{}{path}", self.base_url);
        let body = form::encode(params);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let may_retry = attempts <= self.max_retries;
            let mut asked_wait = None;
            match self.send_once(&url, &body, idempotency_key) {
                Ok(reply) if (200..300).contains(&reply.status) => {
                    return serde_json::from_str(&reply.body).map_err(|e| {
                        StripeError::InvalidResponse {
                            status: reply.status,
                            message: format!(
                                "the body is not JSON ({e}): {}",
                                snippet(&reply.body)
                            ),
                            request_id: reply.request_id,
                        }
                    });
                }
                Ok(reply) => {
                    let waits_too_long = reply
                        .retry_after
                        .is_some_and(|after| after > MAX_RETRY_AFTER);
                    if !(may_retry && is_retryable(&reply)) || waits_too_long {
                        return Err(classify(&reply, attempts));
                    }
                    asked_wait = reply.retry_after;
                }
                Err(error) => {
                    if !may_retry {
                        return Err(StripeError::Transport {
                            attempts,
                            message: redact(&error.to_string()),
                        });
                    }
                }
            }
            let wait = backoff(attempts, (self.env.jitter)());
            (self.env.sleeper)(asked_wait.map_or(wait, |asked| wait.max(asked)));
        }
    }

    fn send_once(
        &self,
        url: &str,
        body: &str,
        idempotency_key: &str,
    ) -> Result<Reply, ureq::Error> {
        let mut response = self
            .agent
            .post(url)
            .header(
                "Authorization",
                &format!("Bearer {}", self.secret_key.expose()),
            )
            .header("Stripe-Version", &self.api_version)
            .header("Idempotency-Key", idempotency_key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body)?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("request-id");
        let should_retry = header("stripe-should-retry").and_then(|v| match v.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
        let retry_after = header("retry-after").and_then(|value| {
            retry_after::parse(&value, header("date").as_deref(), SystemTime::now())
        });
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        Ok(Reply {
            status,
            request_id,
            should_retry,
            retry_after,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            request_id: Some("req_1".into()),
            should_retry: None,
            retry_after: None,
            body: body.into(),
        }
    }

    fn check(status: u16, body: &str, expected: StripeError) {
        assert_eq!(
            classify(&reply(status, body), 1),
            expected,
            "{status} {body}"
        );
    }

    #[test]
    fn classifies_stripe_errors_by_status() {
        check(
            402,
            r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds.","param":""}}"#,
            StripeError::CardDeclined {
                code: "card_declined".into(),
                decline_code: Some("insufficient_funds".into()),
                message: "Your card has insufficient funds.".into(),
                param: Some(String::new()),
                request_id: Some("req_1".into()),
            },
        );
        check(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"parameter_missing","message":"Missing required param: amount.","param":"amount"}}"#,
            StripeError::InvalidRequest {
                status: 400,
                code: Some("parameter_missing".into()),
                message: "Missing required param: amount.".into(),
                param: Some("amount".into()),
                request_id: Some("req_1".into()),
            },
        );
        check(
            401,
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****1234"}}"#,
            StripeError::Authentication {
                request_id: Some("req_1".into()),
            },
        );
        check(
            400,
            r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}"#,
            StripeError::IdempotencyConflict {
                status: 400,
                message: "Keys for idempotent requests can only be used with the same parameters they were first used with.".into(),
                request_id: Some("req_1".into()),
            },
        );
        check(
            409,
            r#"{"error":{"type":"invalid_request_error","code":"idempotency_key_in_use","message":"in flight"}}"#,
            StripeError::IdempotencyConflict {
                status: 409,
                message: "in flight".into(),
                request_id: Some("req_1".into()),
            },
        );
        check(
            429,
            r#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}"#,
            StripeError::RateLimited {
                attempts: 1,
                message: "Too many requests".into(),
                request_id: Some("req_1".into()),
            },
        );
        check(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"old style"}}"#,
            StripeError::RateLimited {
                attempts: 1,
                message: "old style".into(),
                request_id: Some("req_1".into()),
            },
        );
        check(
            403,
            r#"{"error":{"type":"invalid_request_error","message":"The provided key does not have the required permissions"}}"#,
            StripeError::PermissionDenied {
                message: "The provided key does not have the required permissions".into(),
                request_id: Some("req_1".into()),
            },
        );
        check(
            500,
            r#"{"error":{"type":"api_error","message":"An unknown error occurred"}}"#,
            StripeError::Api {
                status: 500,
                attempts: 1,
                message: "An unknown error occurred".into(),
                request_id: Some("req_1".into()),
            },
        );
    }

    #[test]
    fn classifies_bodies_that_are_not_error_objects() {
        check(
            502,
            "<html>Bad Gateway</html>",
            StripeError::Api {
                status: 502,
                attempts: 1,
                message: "the body is not a Stripe error object: <html>Bad Gateway</html>".into(),
                request_id: Some("req_1".into()),
            },
        );
        // Issue 14, item 5: what a proxy's page drags in stays out.
        check(
            503,
            "\u{1b}[1m503 Service Unavailable\u{1b}[0m\r\n\r\nupstream\tdown\r\n",
            StripeError::Api {
                status: 503,
                attempts: 1,
                message:
                    "the body is not a Stripe error object: 503 Service Unavailable upstream down"
                        .into(),
                request_id: Some("req_1".into()),
            },
        );
        check(
            418,
            "\r\n",
            StripeError::InvalidResponse {
                status: 418,
                message: "the body is not a Stripe error object: <empty>".into(),
                request_id: Some("req_1".into()),
            },
        );
        check(
            418,
            "",
            StripeError::InvalidResponse {
                status: 418,
                message: "the body is not a Stripe error object: <empty>".into(),
                request_id: Some("req_1".into()),
            },
        );
    }

    #[test]
    fn retries_only_what_may_succeed_later() {
        for (status, retry) in [
            (400, false),
            (401, false),
            (402, false),
            (404, false),
            (409, true),
            (429, true),
            (500, true),
            (503, true),
        ] {
            assert_eq!(is_retryable(&reply(status, "")), retry, "{status}");
        }
        let mut advised = reply(500, "");
        advised.should_retry = Some(false);
        assert!(!is_retryable(&advised));
        advised.status = 400;
        advised.should_retry = Some(true);
        assert!(is_retryable(&advised));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let ms = |retry, jitter| backoff(retry, jitter).as_millis();
        assert_eq!((ms(1, 0.0), ms(1, 0.999)), (500, 500));
        assert_eq!((ms(2, 0.0), ms(2, 1.0)), (500, 1000));
        assert_eq!((ms(3, 0.0), ms(3, 1.0)), (1000, 2000));
        assert_eq!((ms(5, 0.0), ms(5, 1.0)), (2500, 5000));
        assert_eq!((ms(40, 0.0), ms(40, 1.0)), (2500, 5000));
    }

    #[test]
    fn redacts_anything_shaped_like_a_key() {
        let check = |input: &str, expected: &str| assert_eq!(redact(input), expected);
        check(
            "Invalid API Key provided: sk_test_********1234",
            "Invalid API Key provided: [redacted]",
        );
        check(
            "keys sk_live_abc, rk_test_x and whsec_yyy.",
            "keys [redacted], [redacted] and [redacted].",
        );
        check("no secrets here", "no secrets here");
        check("pk_test_123 is public", "pk_test_123 is public");
    }

    #[test]
    fn error_text_never_contains_a_key() {
        let error = classify(
            &reply(
                401,
                r#"{"error":{"message":"Invalid API Key provided: sk_test_abcd"}}"#,
            ),
            1,
        );
        assert!(!format!("{error} {error:?}").contains("sk_test"));
        let error = classify(
            &reply(400, r#"{"error":{"message":"bad key sk_live_abcd"}}"#),
            1,
        );
        assert!(!format!("{error} {error:?}").contains("sk_live"));
    }

    #[test]
    fn converts_to_plugin_errors_keeping_retryability() {
        let check = |error: StripeError, expected: &str| {
            assert_eq!(Error::from(error).to_string(), expected)
        };
        check(
            StripeError::CardDeclined {
                code: "card_declined".into(),
                decline_code: Some("generic_decline".into()),
                message: "Your card was declined.".into(),
                param: None,
                request_id: None,
            },
            "provider error card_declined: card declined (card_declined, decline_code generic_decline): Your card was declined.",
        );
        check(
            StripeError::InvalidRequest {
                status: 404,
                code: Some("resource_missing".into()),
                message: "No such payment_intent: 'pi_x'".into(),
                param: Some("intent".into()),
                request_id: Some("req_9".into()),
            },
            "not found: Stripe refused the request (HTTP 404, code resource_missing, param intent): No such payment_intent: 'pi_x' [request req_9]",
        );
        check(
            StripeError::Authentication { request_id: None },
            "invalid configuration `secret_key`: Stripe refused the secret key (HTTP 401); check `secret_key` for this tenant",
        );
        check(
            StripeError::RateLimited { attempts: 3, message: "slow down".into(), request_id: None },
            "provider error rate_limit: rate limited by Stripe after 3 attempt(s): slow down (retryable)",
        );
        check(
            StripeError::IdempotencyConflict {
                status: 400,
                message: "other params".into(),
                request_id: None,
            },
            "provider error idempotency_error: idempotency conflict (HTTP 400): other params",
        );
        check(
            StripeError::Transport { attempts: 1, message: "connection refused".into() },
            "provider error api_connection_error: could not reach Stripe after 1 attempt(s): connection refused (retryable)",
        );
    }

    #[test]
    fn idempotency_keys_are_uuid_shaped_and_differ() {
        let a = new_idempotency_key();
        let b = new_idempotency_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert_eq!(a.matches('-').count(), 4);
    }
}
