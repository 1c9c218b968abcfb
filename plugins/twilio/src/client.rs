//! The HTTP client for Twilio's Messages API (2010-04-01): create a message,
//! fetch one. The only module that does network IO.
//!
//! Invariants: requests run on the caller's thread (ureq is synchronous and
//! name resolution is kept inline, see [`InlineResolver`]), so the plugin
//! never has a thread of its own; the credentials live in one [`Secret`]
//! header value and never reach a log line, an error or `Debug`.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use plugin_api::communication::{DeliveryStatus, MessageReceipt, OutboundMessage};
use plugin_api::Secret;
use serde::Deserialize;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::config::{self, Sender, Settings};
use crate::error::TwilioError;
use crate::form;
use crate::retry::{self, Failure, RetryPolicy};

const API_VERSION: &str = "2010-04-01";
const USER_AGENT: &str = concat!("plugkit-twilio/", env!("CARGO_PKG_VERSION"));

/// One tenant's connection to Twilio.
pub(crate) struct Client {
    agent: ureq::Agent,
    /// `{base}/2010-04-01/Accounts/{AccountSid}/Messages`.
    messages_url: String,
    /// `Basic base64(user:password)`.
    authorization: Secret,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("messages_url", &self.messages_url)
            .field("authorization", &self.authorization)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for a tenant's settings. Opens no connection yet.
    pub(crate) fn new(settings: &Settings) -> Self {
        let config = ureq::Agent::config_builder()
            // Error answers carry Twilio's JSON; read them instead of failing.
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            // Twilio does not redirect; never carry credentials elsewhere.
            .max_redirects(0)
            .user_agent(USER_AGENT)
            .build();
        let agent =
            ureq::Agent::with_parts(config, DefaultConnector::new(), InlineResolver::default());
        let credentials = format!(
            "{}:{}",
            settings.credentials.user,
            settings.credentials.password.expose()
        );
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        );
        Self {
            agent,
            messages_url: format!(
                "{}/{API_VERSION}/Accounts/{}/Messages",
                settings.base_url, settings.account_sid
            ),
            authorization: Secret::new(authorization),
            retry: RetryPolicy::new(settings.max_retries),
        }
    }

    /// `POST .../Messages.json`: creates (sends) a message.
    pub(crate) fn create_message(
        &self,
        form_body: &str,
        sleeper: &dyn Fn(Duration),
    ) -> Result<MessageResource, TwilioError> {
        let url = format!("{}.json", self.messages_url);
        let body = self.retry.run(sleeper, &mut retry::random_unit, || {
            self.attempt(&url, Some(form_body))
        })?;
        MessageResource::parse(&body)
    }

    /// `GET .../Messages/{Sid}.json`: a message's current state.
    pub(crate) fn fetch_message(
        &self,
        sid: &str,
        sleeper: &dyn Fn(Duration),
    ) -> Result<MessageResource, TwilioError> {
        let url = format!("{}/{sid}.json", self.messages_url);
        let body = self.retry.run(sleeper, &mut retry::random_unit, || {
            self.attempt(&url, None)
        })?;
        MessageResource::parse(&body)
    }

    /// One request: a POST when `form_body` is given, else a GET.
    fn attempt(&self, url: &str, form_body: Option<&str>) -> Result<String, Failure> {
        // A POST that may have reached Twilio must not be repeated blindly:
        // the message could go out twice. A GET can always be repeated.
        let idempotent = form_body.is_none();
        let authorization = self.authorization.expose();
        let response = match form_body {
            Some(body) => self
                .agent
                .post(url)
                .header("Authorization", authorization)
                .header("Accept", "application/json")
                .content_type("application/x-www-form-urlencoded")
                .send(body),
            None => self
                .agent
                .get(url)
                .header("Authorization", authorization)
                .header("Accept", "application/json")
                .call(),
        };
        let mut response = response.map_err(|e| Failure::from(transport_error(&e, idempotent)))?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let retry_after = header("retry-after")
            .and_then(|value| retry::retry_after(value, header("date"), SystemTime::now()));
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::from(transport_error(&e, idempotent)))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(Failure {
                error: TwilioError::from_response(status, &body),
                retry_after,
            })
        }
    }
}

/// Types a ureq failure. Only failures that certainly happened before the
/// request left (no connection) are retryable for a POST.
fn transport_error(error: &ureq::Error, idempotent: bool) -> TwilioError {
    use std::io::ErrorKind;
    let not_sent = match error {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => io.kind() == ErrorKind::ConnectionRefused,
        _ => false,
    };
    let permanent = matches!(
        error,
        ureq::Error::BadUri(_)
            | ureq::Error::Tls(_)
            | ureq::Error::Rustls(_)
            | ureq::Error::Pem(_)
            | ureq::Error::RequireHttpsOnly(_)
            | ureq::Error::InvalidProxyUrl
            | ureq::Error::TlsRequired
    );
    TwilioError::Transport {
        message: error.to_string(),
        retryable: !permanent && (not_sent || idempotent),
    }
}

/// Resolves host names on the calling thread. ureq's default resolver
/// spawns a thread to time out a slow lookup when a timeout is set, and a
/// thread still running plugin code would keep the library from unloading.
/// The system resolver's own timeouts (resolv.conf) still apply.
#[derive(Debug, Default)]
struct InlineResolver(DefaultResolver);

impl Resolver for InlineResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        // The default `NextTimeout` never expires: the resolver stays inline.
        self.0.resolve(uri, config, NextTimeout::default())
    }
}

/// The form of a `Create Message` request: `To`, the sender, `Body`,
/// `StatusCallback` and one `MediaUrl` per attachment.
pub(crate) fn message_form(message: &OutboundMessage, default_sender: &Sender) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![("To", message.to.as_str())];
    match (message.from.as_ref().into_option(), default_sender) {
        (Some(from), _) => pairs.push(("From", from.as_str())),
        (None, Sender::From(from)) => pairs.push(("From", from)),
        (None, Sender::MessagingService(sid)) => pairs.push(("MessagingServiceSid", sid)),
    }
    if !message.body.is_empty() {
        pairs.push(("Body", message.body.as_str()));
    }
    if let Some(callback) = message.status_callback.as_ref().into_option() {
        pairs.push(("StatusCallback", callback.as_str()));
    }
    for url in message.media_urls.iter() {
        pairs.push(("MediaUrl", url.as_str()));
    }
    form::encode(&pairs)
}

/// Whether `sid` can name a message (`SM...` or `MM...`); anything else
/// never reaches a URL path.
pub(crate) fn is_message_sid(sid: &str) -> bool {
    config::is_sid(sid, "SM") || config::is_sid(sid, "MM")
}

/// The parts of Twilio's message resource the plugin uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct MessageResource {
    pub(crate) sid: String,
    pub(crate) status: String,
    /// A string in Twilio's JSON (`"1"`); a number is accepted too.
    #[serde(default)]
    num_segments: Option<serde_json::Value>,
    #[serde(default)]
    error_code: Option<serde_json::Value>,
    #[serde(default)]
    error_message: Option<String>,
}

impl MessageResource {
    fn parse(body: &str) -> Result<Self, TwilioError> {
        serde_json::from_str(body).map_err(|e| {
            TwilioError::InvalidResponse(format!(
                "expected a message resource with `sid` and `status`: {e}"
            ))
        })
    }

    /// The receipt handed across the boundary.
    pub(crate) fn receipt(&self) -> MessageReceipt {
        MessageReceipt {
            provider_message_id: self.sid.as_str().into(),
            status: DeliveryStatus::from_word(&self.status),
            segments: self.num_segments.as_ref().and_then(as_u32).unwrap_or(0),
            error_code: self.error_code.as_ref().and_then(as_u32).into(),
            error_message: self
                .error_message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(Into::into)
                .into(),
        }
    }
}

fn as_u32(value: &serde_json::Value) -> Option<u32> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{ROption, RString};
    use plugin_api::TenantConfig;
    use serde_json::json;

    use super::*;

    fn message(to: &str, body: &str) -> OutboundMessage {
        OutboundMessage {
            to: to.into(),
            body: body.into(),
            ..OutboundMessage::default()
        }
    }

    fn check_form(message: &OutboundMessage, sender: &Sender, expected: &str) {
        assert_eq!(message_form(message, sender), expected, "{message:?}");
    }

    #[test]
    fn form_uses_the_configured_number_or_service() {
        let m = message("+15005550006", "Link down on olt-3");
        check_form(
            &m,
            &Sender::From("+15005550001".into()),
            "To=%2B15005550006&From=%2B15005550001&Body=Link+down+on+olt-3",
        );
        check_form(
            &m,
            &Sender::MessagingService("MG0123456789abcdef0123456789abcdef".into()),
            "To=%2B15005550006&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&Body=Link+down+on+olt-3",
        );
    }

    #[test]
    fn form_prefers_the_message_sender_and_adds_callback_and_media() {
        let m = OutboundMessage {
            from: ROption::RSome("+15017122661".into()),
            status_callback: ROption::RSome("https://isp.example/hooks/twilio?t=1".into()),
            media_urls: vec![
                RString::from("https://a.example/1.png"),
                "https://a.example/2.png".into(),
            ]
            .into(),
            ..message("+15005550006", "")
        };
        check_form(
            &m,
            &Sender::MessagingService("MG0123456789abcdef0123456789abcdef".into()),
            "To=%2B15005550006&From=%2B15017122661\
             &StatusCallback=https%3A%2F%2Fisp.example%2Fhooks%2Ftwilio%3Ft%3D1\
             &MediaUrl=https%3A%2F%2Fa.example%2F1.png&MediaUrl=https%3A%2F%2Fa.example%2F2.png",
        );
    }

    fn check_receipt(json: serde_json::Value, expected: MessageReceipt) {
        let resource = MessageResource::parse(&json.to_string()).unwrap();
        assert_eq!(resource.receipt(), expected, "{json}");
    }

    #[test]
    fn receipts_read_twilios_message_resource() {
        check_receipt(
            json!({"sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "queued", "num_segments": "2",
                   "error_code": null, "error_message": null, "price": null}),
            MessageReceipt {
                provider_message_id: "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
                status: DeliveryStatus::Queued,
                segments: 2,
                error_code: ROption::RNone,
                error_message: ROption::RNone,
            },
        );
        check_receipt(
            json!({"sid": "SMb", "status": "undelivered", "num_segments": 1,
                   "error_code": 30007, "error_message": "Carrier violation"}),
            MessageReceipt {
                provider_message_id: "SMb".into(),
                status: DeliveryStatus::Undelivered,
                segments: 1,
                error_code: ROption::RSome(30007),
                error_message: ROption::RSome("Carrier violation".into()),
            },
        );
        check_receipt(
            json!({"sid": "SMc", "status": "something_new"}),
            MessageReceipt {
                provider_message_id: "SMc".into(),
                status: DeliveryStatus::Unknown,
                segments: 0,
                error_code: ROption::RNone,
                error_message: ROption::RNone,
            },
        );
    }

    #[test]
    fn a_success_body_without_a_sid_is_an_invalid_response() {
        let error = MessageResource::parse(r#"{"status": "queued"}"#).unwrap_err();
        assert!(
            matches!(error, TwilioError::InvalidResponse(_)),
            "{error:?}"
        );
    }

    #[test]
    fn message_sids_are_checked_before_reaching_a_path() {
        assert!(is_message_sid("SM0123456789abcdef0123456789abcdef"));
        assert!(is_message_sid("MM0123456789abcdef0123456789abcdef"));
        assert!(!is_message_sid("SM0123456789abcdef0123456789abcde/"));
        assert!(!is_message_sid("../../Calls"));
    }

    #[test]
    fn client_debug_hides_the_authorization() {
        let settings = Settings::from_config(&TenantConfig::new(
            "t",
            json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "hunter2",
                   "from_number": "+15005550006", "base_url": "http://127.0.0.1:1"}),
        ))
        .unwrap();
        let client = Client::new(&settings);
        let debug = format!("{client:?}");
        assert!(debug.contains(
            "http://127.0.0.1:1/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages"
        ));
        let encoded = base64::engine::general_purpose::STANDARD
            .encode("AC0123456789abcdef0123456789abcdef:hunter2");
        assert!(
            !debug.contains("hunter2") && !debug.contains(&encoded),
            "{debug}"
        );
    }

    #[test]
    fn refused_connections_are_transport_errors_safe_to_retry() {
        // A port nothing listens on: bind, learn the port, close. A host
        // name, so the inline resolver runs too.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = Settings::from_config(&TenantConfig::new(
            "t",
            json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "hunter2",
                   "from_number": "+15005550006", "base_url": format!("http://localhost:{port}"),
                   "max_retries": 2}),
        ))
        .unwrap();
        let waits = std::sync::Mutex::new(Vec::new());
        let error = Client::new(&settings)
            .create_message("To=%2B1", &|d| waits.lock().unwrap().push(d))
            .unwrap_err();
        assert!(
            matches!(
                error,
                TwilioError::Transport {
                    retryable: true,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            waits.lock().unwrap().len(),
            2,
            "two retries after the first refusal"
        );
        assert!(!error.to_string().contains("hunter2"));
    }
}
