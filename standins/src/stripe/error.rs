//! Stripe's error shapes, and the failures the stand-in can be told to inject.

use super::*;

/// A Stripe error, before it becomes a reply.
#[derive(Debug, Clone)]
pub(super) struct ApiError {
    pub(super) status: u16,
    pub(super) body: Value,
    /// Whether the idempotency layer saves it (only once execution began).
    pub(super) saved: bool,
}

impl ApiError {
    pub(super) fn new(
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

    pub(super) fn invalid(
        code: Option<&str>,
        message: impl Into<String>,
        param: Option<&str>,
    ) -> Self {
        Self::new(400, "invalid_request_error", code, message, param)
    }

    /// An error raised while executing the endpoint: saved for idempotent replay.
    pub(super) fn executed(mut self) -> Self {
        self.saved = true;
        self
    }

    pub(super) fn with(mut self, key: &str, value: Value) -> Self {
        if let Some(error) = self.body.get_mut("error").and_then(Value::as_object_mut) {
            error.insert(key.to_owned(), value);
        }
        self
    }
}

pub(super) type Outcome = Result<(u16, Value), ApiError>;

pub(super) fn injected_failure(status: u16) -> ApiError {
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
