//! Twilio's failures as typed errors, and how each crosses the plugin
//! boundary as a [`PluginError`]. Pure: no IO.
//!
//! Twilio answers errors as `{"code","message","more_info","status"}`. The
//! common codes get their own variant so callers (and the messages operators
//! read) can tell a bad number from a bad credential; whether a failure may
//! be retried depends on the HTTP status alone: 429 and 5xx, never other 4xx.

use plugin_api::PluginError;
use serde::Deserialize;

/// Twilio's error body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ApiError {
    /// The HTTP status Twilio answered with.
    #[serde(skip)]
    pub(crate) http_status: u16,
    /// Twilio's error code, e.g. 21211.
    pub(crate) code: u32,
    /// Twilio's explanation.
    pub(crate) message: String,
    /// Twilio's documentation page for the code.
    #[serde(default)]
    pub(crate) more_info: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}", self.message, self.http_status)?;
        if let Some(more_info) = &self.more_info {
            write!(f, ", see {more_info}")?;
        }
        f.write_str(")")
    }
}

/// Everything that can go wrong talking to Twilio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TwilioError {
    /// 21211.
    #[error("the `To` number is not a valid phone number: {0}")]
    InvalidTo(ApiError),
    /// 21212.
    #[error("the `From` number is not valid for this account: {0}; check `from_number` in the tenant configuration")]
    InvalidFrom(ApiError),
    /// 21606.
    #[error("the `From` number cannot send SMS to this destination: {0}; use an SMS-capable number of the account or a messaging service")]
    FromNotCapable(ApiError),
    /// 21408.
    #[error("SMS to the `To` number's region is not enabled: {0}; enable the region in the account's geo permissions")]
    RegionNotEnabled(ApiError),
    /// 21610.
    #[error("the recipient has unsubscribed (replied STOP): {0}")]
    Unsubscribed(ApiError),
    /// 21612.
    #[error("the `To` number cannot be reached by SMS from this sender: {0}")]
    Unreachable(ApiError),
    /// 21614.
    #[error("the `To` number is not a mobile number: {0}")]
    NotMobile(ApiError),
    /// 20003.
    #[error("Twilio refused the credentials: {0}; check `account_sid` and `auth_token` (or `api_key_sid`/`api_key_secret`)")]
    Authentication(ApiError),
    /// 20429, or any HTTP 429.
    #[error("Twilio is rate limiting this account: {0}")]
    RateLimited(ApiError),
    /// 20404.
    #[error("Twilio has no such resource: {0}")]
    NotFound(ApiError),
    /// Any other code Twilio answered with.
    #[error("Twilio error {code}: {0}", code = .0.code)]
    Api(ApiError),
    /// An error status without Twilio's error body (e.g. from a proxy).
    #[error("Twilio answered HTTP {status} without an error body")]
    Http {
        /// The HTTP status.
        status: u16,
    },
    /// The request did not get an answer.
    #[error("could not reach Twilio: {message}")]
    Transport {
        /// What the HTTP client said; never contains a credential.
        message: String,
        /// Whether the request certainly did not reach Twilio, or is safe to repeat.
        retryable: bool,
    },
    /// A success answer that is not a message resource.
    #[error("Twilio's answer could not be read: {0}")]
    InvalidResponse(String),
}

impl TwilioError {
    /// Types an error answer from its status and body.
    pub(crate) fn from_response(http_status: u16, body: &str) -> Self {
        let Ok(mut error) = serde_json::from_str::<ApiError>(body) else {
            return Self::Http {
                status: http_status,
            };
        };
        error.http_status = http_status;
        if http_status == 429 {
            return Self::RateLimited(error);
        }
        match error.code {
            21211 => Self::InvalidTo(error),
            21212 => Self::InvalidFrom(error),
            21606 => Self::FromNotCapable(error),
            21408 => Self::RegionNotEnabled(error),
            21610 => Self::Unsubscribed(error),
            21612 => Self::Unreachable(error),
            21614 => Self::NotMobile(error),
            20003 => Self::Authentication(error),
            20429 => Self::RateLimited(error),
            20404 => Self::NotFound(error),
            _ => Self::Api(error),
        }
    }

    /// The HTTP status, when Twilio answered.
    pub(crate) fn http_status(&self) -> Option<u16> {
        match self {
            Self::InvalidTo(e)
            | Self::InvalidFrom(e)
            | Self::FromNotCapable(e)
            | Self::RegionNotEnabled(e)
            | Self::Unsubscribed(e)
            | Self::Unreachable(e)
            | Self::NotMobile(e)
            | Self::Authentication(e)
            | Self::RateLimited(e)
            | Self::NotFound(e)
            | Self::Api(e) => Some(e.http_status),
            Self::Http { status } => Some(*status),
            Self::Transport { .. } | Self::InvalidResponse(_) => None,
        }
    }

    /// Whether repeating the same request may succeed: 429 and 5xx, and
    /// transport failures that are safe to repeat. Never another 4xx.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { retryable, .. } => *retryable,
            Self::InvalidResponse(_) => false,
            other => other
                .http_status()
                .is_some_and(|status| status == 429 || status >= 500),
        }
    }

    /// The code reported across the boundary: Twilio's number, or a word.
    fn code(&self) -> String {
        match self {
            Self::InvalidTo(e)
            | Self::InvalidFrom(e)
            | Self::FromNotCapable(e)
            | Self::RegionNotEnabled(e)
            | Self::Unsubscribed(e)
            | Self::Unreachable(e)
            | Self::NotMobile(e)
            | Self::Authentication(e)
            | Self::RateLimited(e)
            | Self::NotFound(e)
            | Self::Api(e) => e.code.to_string(),
            Self::Http { status } => format!("http_{status}"),
            Self::Transport { .. } => "transport".to_owned(),
            Self::InvalidResponse(_) => "invalid_response".to_owned(),
        }
    }
}

impl From<TwilioError> for PluginError {
    fn from(error: TwilioError) -> Self {
        match error {
            TwilioError::NotFound(e) => PluginError::not_found(e.message),
            other => PluginError::provider(other.code(), other.to_string(), other.is_retryable()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: u32, status: u16) -> String {
        format!(
            r#"{{"code": {code}, "message": "m{code}", "more_info": "https://www.twilio.com/docs/errors/{code}", "status": {status}}}"#
        )
    }

    /// Maps a Twilio answer and checks the variant, the boundary code and retryability.
    fn check(status: u16, body: &str, variant: &str, code: &str, retryable: bool) {
        let error = TwilioError::from_response(status, body);
        let debug = format!("{error:?}");
        assert!(debug.starts_with(variant), "{status} {body}: got {debug}");
        assert_eq!(error.is_retryable(), retryable, "{status} {body}");
        match PluginError::from(error) {
            PluginError::Provider {
                code: got,
                retryable: got_retryable,
                ..
            } => {
                assert_eq!(got.as_str(), code, "{status} {body}");
                assert_eq!(got_retryable, retryable, "{status} {body}");
            }
            other => panic!("{status} {body}: expected a provider error, got {other:?}"),
        }
    }

    #[test]
    fn common_codes_have_their_own_variants() {
        check(400, &body(21211, 400), "InvalidTo", "21211", false);
        check(400, &body(21212, 400), "InvalidFrom", "21212", false);
        check(400, &body(21606, 400), "FromNotCapable", "21606", false);
        check(400, &body(21408, 400), "RegionNotEnabled", "21408", false);
        check(400, &body(21610, 400), "Unsubscribed", "21610", false);
        check(400, &body(21612, 400), "Unreachable", "21612", false);
        check(400, &body(21614, 400), "NotMobile", "21614", false);
        check(401, &body(20003, 401), "Authentication", "20003", false);
        check(429, &body(20429, 429), "RateLimited", "20429", true);
    }

    #[test]
    fn other_codes_keep_their_number() {
        check(400, &body(21602, 400), "Api", "21602", false);
        check(500, &body(20500, 500), "Api", "20500", true);
        check(503, &body(20503, 503), "Api", "20503", true);
    }

    #[test]
    fn retryability_follows_the_http_status_not_the_code() {
        check(429, &body(14107, 429), "RateLimited", "14107", true);
        check(400, &body(20429, 400), "RateLimited", "20429", false);
    }

    #[test]
    fn bodies_that_are_not_twilio_errors_keep_the_status() {
        check(502, "<html>Bad gateway</html>", "Http", "http_502", true);
        check(400, "", "Http", "http_400", false);
        check(404, r#"{"status": 404}"#, "Http", "http_404", false);
    }

    #[test]
    fn not_found_crosses_as_not_found() {
        let error = TwilioError::from_response(404, &body(20404, 404));
        assert_eq!(PluginError::from(error), PluginError::not_found("m20404"));
    }

    #[test]
    fn message_names_the_code_the_status_and_the_docs() {
        let error = TwilioError::from_response(400, &body(21211, 400));
        assert_eq!(
            error.to_string(),
            "the `To` number is not a valid phone number: m21211 (HTTP 400, see https://www.twilio.com/docs/errors/21211)"
        );
    }

    #[test]
    fn transport_errors_carry_their_own_retryability() {
        for retryable in [true, false] {
            let error = TwilioError::Transport {
                message: "connection refused".to_owned(),
                retryable,
            };
            assert_eq!(error.is_retryable(), retryable);
        }
        assert!(!TwilioError::InvalidResponse("x".to_owned()).is_retryable());
    }
}
