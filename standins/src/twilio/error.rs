//! Twilio's error answers: the JSON error body, its status and headers, and
//! the errors more than one check gives.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Twilio's error answer.
pub(super) struct TwilioError {
    pub(super) status: u16,
    pub(super) code: u32,
    pub(super) message: String,
    /// Extra response headers (an injected failure's `Retry-After`).
    pub(super) headers: Vec<(String, String)>,
}

impl TwilioError {
    pub(super) fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub(super) fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub(super) fn authentication(message: &str) -> Self {
        Self::new(401, 20003, format!("Authentication Error - {message}"))
    }

    pub(super) fn into_response(self) -> Response {
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

pub(super) fn json_headers() -> [(header::HeaderName, HeaderValue); 1] {
    [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    )]
}

pub(super) fn method_not_allowed(method: &Method) -> TwilioError {
    TwilioError::new(405, 20004, format!("Method not allowed: {method}"))
}

pub(super) fn injected_failure(status: u16) -> TwilioError {
    match status {
        429 => TwilioError::new(429, 20429, "Too Many Requests"),
        503 => TwilioError::new(503, 20503, "Service Unavailable"),
        s if s >= 500 => TwilioError::new(s, 20500, "An internal server error has occurred"),
        s => TwilioError::new(s, 20001, "Unknown problem"),
    }
}

pub(super) fn invalid_from(code: u32, from: &str) -> TwilioError {
    TwilioError::bad_request(
        code,
        format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."),
    )
}

pub(super) fn not_capable(from: &str) -> TwilioError {
    TwilioError::bad_request(
        21606,
        format!("The 'From' phone number provided ({from}) is not a valid message-capable Twilio phone number for this destination."),
    )
}
