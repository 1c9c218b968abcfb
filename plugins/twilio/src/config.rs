//! A tenant's Twilio settings, read from its configuration and checked once,
//! at activation. Pure: no IO. Credentials stay in [`Secret`]s, so neither
//! `Debug` nor an error message can show them.

use std::time::Duration;

use plugin_api::{PluginError, Result, Secret, TenantConfig};

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 3;
const MAX_TIMEOUT_MS: u64 = 120_000;
const MAX_RETRIES_LIMIT: u32 = 10;

/// How messages name their sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sender {
    /// A phone number, short code or alphanumeric sender ID of the account.
    From(String),
    /// A messaging service, which picks the number itself.
    MessagingService(String),
}

/// The credentials sent with every request.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    /// The HTTP Basic user: the account SID, or an API key SID.
    pub(crate) user: String,
    /// The auth token, or the API key's secret.
    pub(crate) password: Secret,
}

/// One tenant's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) account_sid: String,
    /// Signs webhooks even when requests use an API key.
    pub(crate) auth_token: Secret,
    pub(crate) credentials: Credentials,
    pub(crate) sender: Sender,
    pub(crate) base_url: String,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) on_call_number: Option<String>,
}

impl Settings {
    /// Reads and checks a tenant's configuration.
    pub(crate) fn from_config(config: &TenantConfig) -> Result<Self> {
        let account_sid = config.require_str("account_sid")?.trim().to_owned();
        if !is_sid(&account_sid, "AC") {
            return Err(PluginError::invalid_config(
                "account_sid",
                "must be `AC` followed by 32 hex digits, as shown in the Twilio console",
            ));
        }
        let auth_token = config.require_secret("auth_token")?;
        if auth_token.expose().trim().is_empty() {
            return Err(PluginError::invalid_config(
                "auth_token",
                "must not be empty",
            ));
        }

        let api_key_sid: Option<String> = config.get("api_key_sid")?;
        let api_key_secret: Option<String> = config.get("api_key_secret")?;
        let credentials = match (api_key_sid, api_key_secret) {
            (None, None) => Credentials {
                user: account_sid.clone(),
                password: auth_token.clone(),
            },
            (Some(sid), Some(secret)) => {
                let sid = sid.trim().to_owned();
                if !is_sid(&sid, "SK") {
                    return Err(PluginError::invalid_config(
                        "api_key_sid",
                        "must be `SK` followed by 32 hex digits",
                    ));
                }
                if secret.is_empty() {
                    return Err(PluginError::invalid_config(
                        "api_key_secret",
                        "must not be empty",
                    ));
                }
                Credentials {
                    user: sid,
                    password: Secret::new(secret),
                }
            }
            (Some(_), None) => {
                return Err(PluginError::invalid_config(
                    "api_key_secret",
                    "is required when `api_key_sid` is set",
                ))
            }
            (None, Some(_)) => {
                return Err(PluginError::invalid_config(
                    "api_key_sid",
                    "is required when `api_key_secret` is set",
                ))
            }
        };

        let from_number = non_empty(config.get::<String>("from_number")?);
        let service = non_empty(config.get::<String>("messaging_service_sid")?);
        let sender = match (from_number, service) {
            (_, Some(sid)) if !is_sid(&sid, "MG") => {
                return Err(PluginError::invalid_config(
                    "messaging_service_sid",
                    "must be `MG` followed by 32 hex digits",
                ))
            }
            // A number chosen by the operator wins over the service's pool.
            (Some(number), _) => Sender::From(number),
            (None, Some(sid)) => Sender::MessagingService(sid),
            (None, None) => {
                return Err(PluginError::invalid_config(
                    "from_number",
                    "set `from_number` or `messaging_service_sid` so messages have a sender",
                ))
            }
        };

        let base_url = config
            .get::<String>("base_url")?
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(PluginError::invalid_config(
                "base_url",
                format!("must be an http(s) URL such as {DEFAULT_BASE_URL}"),
            ));
        }

        let timeout_ms = config
            .get::<u64>("timeout_ms")?
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(PluginError::invalid_config(
                "timeout_ms",
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        let max_retries = config
            .get::<u32>("max_retries")?
            .unwrap_or(DEFAULT_MAX_RETRIES);
        if max_retries > MAX_RETRIES_LIMIT {
            return Err(PluginError::invalid_config(
                "max_retries",
                format!("must be at most {MAX_RETRIES_LIMIT}"),
            ));
        }

        let on_call_number = non_empty(config.get::<String>("on_call_number")?);
        if let Some(number) = &on_call_number {
            if !is_e164(number) {
                return Err(PluginError::invalid_config(
                    "on_call_number",
                    "must be an E.164 number such as +14155550100",
                ));
            }
        }

        Ok(Self {
            account_sid,
            auth_token,
            credentials,
            sender,
            base_url,
            timeout: Duration::from_millis(timeout_ms),
            max_retries,
            on_call_number,
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Whether `sid` is `prefix` followed by 32 hex digits, Twilio's SID shape.
pub(crate) fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.len() == 34
        && sid.starts_with(prefix)
        && sid[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `number` is E.164: `+`, a non-zero digit, at most 15 digits.
pub(crate) fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    fn base() -> Value {
        json!({"account_sid": SID, "auth_token": "tok", "from_number": "+15005550006"})
    }

    fn with(changes: Value) -> Value {
        let mut value = base();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                value.as_object_mut().unwrap().remove(k);
            } else {
                value[k] = v.clone();
            }
        }
        value
    }

    fn parse(values: Value) -> Result<Settings> {
        Settings::from_config(&TenantConfig::new("t1", values))
    }

    /// Checks that `values` is refused, naming `key`.
    fn check_refused(values: Value, key: &str) {
        match parse(values.clone()) {
            Err(PluginError::InvalidConfig { key: got, .. }) => {
                assert_eq!(got.as_str(), key, "{values}")
            }
            other => panic!("{values}: expected invalid `{key}`, got {other:?}"),
        }
    }

    #[test]
    fn minimal_configuration_takes_the_defaults() {
        let s = parse(base()).unwrap();
        assert_eq!(s.account_sid, SID);
        assert_eq!(s.credentials.user, SID);
        assert_eq!(s.credentials.password.expose(), "tok");
        assert_eq!(s.sender, Sender::From("+15005550006".to_owned()));
        assert_eq!(s.base_url, DEFAULT_BASE_URL);
        assert_eq!(s.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(s.max_retries, DEFAULT_MAX_RETRIES);
        assert_eq!(s.on_call_number, None);
    }

    #[test]
    fn every_key_is_read() {
        let s = parse(with(json!({
            "api_key_sid": "SK0123456789abcdef0123456789abcdef",
            "api_key_secret": "keysecret",
            "from_number": null,
            "messaging_service_sid": "MG0123456789abcdef0123456789abcdef",
            "base_url": "http://127.0.0.1:4010/",
            "timeout_ms": 2500,
            "max_retries": 0,
            "on_call_number": "+14155550100",
        })))
        .unwrap();
        assert_eq!(s.credentials.user, "SK0123456789abcdef0123456789abcdef");
        assert_eq!(s.credentials.password.expose(), "keysecret");
        assert_eq!(s.auth_token.expose(), "tok");
        assert_eq!(
            s.sender,
            Sender::MessagingService("MG0123456789abcdef0123456789abcdef".to_owned())
        );
        assert_eq!(s.base_url, "http://127.0.0.1:4010");
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(s.max_retries, 0);
        assert_eq!(s.on_call_number.as_deref(), Some("+14155550100"));
    }

    #[test]
    fn from_number_wins_over_a_messaging_service() {
        let s = parse(with(
            json!({"messaging_service_sid": "MG0123456789abcdef0123456789abcdef"}),
        ))
        .unwrap();
        assert_eq!(s.sender, Sender::From("+15005550006".to_owned()));
    }

    #[test]
    fn bad_values_are_refused_by_key() {
        check_refused(with(json!({"account_sid": null})), "account_sid");
        check_refused(with(json!({"account_sid": "AC123"})), "account_sid");
        check_refused(
            with(json!({"account_sid": "SK0123456789abcdef0123456789abcdef"})),
            "account_sid",
        );
        check_refused(with(json!({"auth_token": null})), "auth_token");
        check_refused(with(json!({"auth_token": " "})), "auth_token");
        check_refused(
            with(json!({"api_key_sid": "SK0123456789abcdef0123456789abcdef"})),
            "api_key_secret",
        );
        check_refused(with(json!({"api_key_secret": "s"})), "api_key_sid");
        check_refused(
            with(
                json!({"api_key_sid": "AC0123456789abcdef0123456789abcdef", "api_key_secret": "s"}),
            ),
            "api_key_sid",
        );
        check_refused(with(json!({"from_number": null})), "from_number");
        check_refused(with(json!({"from_number": ""})), "from_number");
        check_refused(
            with(json!({"messaging_service_sid": "MG1"})),
            "messaging_service_sid",
        );
        check_refused(with(json!({"base_url": "ftp://x"})), "base_url");
        check_refused(with(json!({"timeout_ms": 0})), "timeout_ms");
        check_refused(with(json!({"timeout_ms": "fast"})), "timeout_ms");
        check_refused(with(json!({"max_retries": 11})), "max_retries");
        check_refused(with(json!({"max_retries": -1})), "max_retries");
        check_refused(
            with(json!({"on_call_number": "555-0100"})),
            "on_call_number",
        );
    }

    #[test]
    fn debug_never_shows_a_credential() {
        let s = parse(with(json!({
            "auth_token": "token-value-1",
            "api_key_sid": "SK0123456789abcdef0123456789abcdef",
            "api_key_secret": "key-secret-2",
        })))
        .unwrap();
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("token-value-1") && !debug.contains("key-secret-2"),
            "{debug}"
        );
    }

    #[test]
    fn sid_and_e164_shapes() {
        assert!(is_sid(SID, "AC"));
        assert!(!is_sid(&SID.replace('a', "g"), "AC"));
        assert!(!is_sid(&SID[..33], "AC"));
        assert!(is_e164("+14155550100") && is_e164("+44"));
        for bad in [
            "14155550100",
            "+0123",
            "+1",
            "+1415555010012345",
            "+1 415",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
