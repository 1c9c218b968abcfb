//! A tenant's Stripe settings, read and checked from its configuration. Pure.
//!
//! The defaults here are the ones declared in `plugin.toml`; a unit test
//! keeps the two in step. Error messages name the key and never its value,
//! since most values here are credentials.

use std::time::Duration;

use plugin_api::{Error, Result, Secret, TenantConfig};

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
pub(crate) const DEFAULT_API_VERSION: &str = "2024-06-20";
pub(crate) const DEFAULT_TIMEOUT_MS: i64 = 30_000;
pub(crate) const DEFAULT_MAX_RETRIES: i64 = 2;
pub(crate) const DEFAULT_WEBHOOK_TOLERANCE_SECS: i64 = 300;
pub(crate) const DEFAULT_PAYMENT_METHOD_TYPES: &[&str] = &["card"];

/// Everything a tenant's client needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) secret_key: Secret,
    pub(crate) webhook_secret: Option<Secret>,
    /// Without a trailing slash.
    pub(crate) base_url: String,
    pub(crate) api_version: String,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) webhook_tolerance_secs: i64,
    pub(crate) max_amount_minor: Option<i64>,
    pub(crate) payment_method_types: Vec<String>,
}

impl Settings {
    pub(crate) fn from_config(config: &TenantConfig) -> Result<Self> {
        let secret_key = config.require_secret("secret_key")?;
        check_secret_key(secret_key.expose())?;

        let webhook_secret = config.get::<String>("webhook_secret")?.map(Secret::new);
        if let Some(secret) = &webhook_secret {
            if !secret.expose().starts_with("whsec_") || secret.expose().len() <= "whsec_".len() {
                return Err(Error::invalid_config(
                    "webhook_secret",
                    "expected the endpoint's signing secret, which starts with `whsec_` \
                     (Dashboard → Developers → Webhooks → the endpoint → Signing secret)",
                ));
            }
        }

        let base_url = config
            .get::<String>("base_url")?
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = check_base_url(&base_url)?;

        let api_version = config
            .get::<String>("api_version")?
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        if !is_api_version(&api_version) {
            return Err(Error::invalid_config(
                "api_version",
                format!("`{api_version}` is not a Stripe API version; expected a date such as `2024-06-20` or `2024-09-30.acacia`"),
            ));
        }

        let timeout_ms = integer(config, "timeout_ms", DEFAULT_TIMEOUT_MS, 1, 600_000)?;
        let max_retries = integer(config, "max_retries", DEFAULT_MAX_RETRIES, 0, 10)?;
        let webhook_tolerance_secs = integer(
            config,
            "webhook_tolerance_secs",
            DEFAULT_WEBHOOK_TOLERANCE_SECS,
            1,
            86_400,
        )?;
        let max_amount_minor = match config.get::<i64>("max_amount_minor")? {
            Some(max) if max <= 0 => {
                return Err(Error::invalid_config(
                    "max_amount_minor",
                    format!("must be a positive amount in minor units, got {max}; leave it unset for no limit"),
                ))
            }
            other => other,
        };
        let payment_method_types = config
            .get::<Vec<String>>("payment_method_types")?
            .unwrap_or_else(|| {
                DEFAULT_PAYMENT_METHOD_TYPES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            });
        if payment_method_types.is_empty()
            || payment_method_types.iter().any(|t| t.trim().is_empty())
        {
            return Err(Error::invalid_config(
                "payment_method_types",
                "list at least one payment method type, e.g. [\"card\"]",
            ));
        }

        Ok(Self {
            secret_key,
            webhook_secret,
            base_url,
            api_version,
            timeout: Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(u64::MAX)),
            max_retries: u32::try_from(max_retries).unwrap_or(0),
            webhook_tolerance_secs,
            max_amount_minor,
            payment_method_types,
        })
    }
}

fn check_secret_key(key: &str) -> Result<()> {
    let known_prefix = ["sk_test_", "sk_live_", "rk_test_", "rk_live_"]
        .iter()
        .any(|prefix| key.starts_with(prefix) && key.len() > prefix.len());
    if !known_prefix || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid_config(
            "secret_key",
            "expected a Stripe secret or restricted key (`sk_test_...`, `sk_live_...`, `rk_...`) \
             without spaces; a publishable key (`pk_...`) cannot create payments",
        ));
    }
    Ok(())
}

fn check_base_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Err(Error::invalid_config(
            "base_url",
            format!("`{url}` must start with https:// (or http:// for a local stand-in)"),
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || rest.contains(['?', '#']) {
        // No `@`: user info in the URL would be a credential in every log line.
        return Err(Error::invalid_config(
            "base_url",
            "expected a plain origin such as https://api.stripe.com, without credentials, query or fragment",
        ));
    }
    Ok(url.to_owned())
}

/// `YYYY-MM-DD` with an optional `.release` suffix, as Stripe names its versions.
pub(crate) fn is_api_version(version: &str) -> bool {
    let (date, release) = match version.split_once('.') {
        Some((date, release)) => (date, Some(release)),
        None => (version, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let date_ok = matches!(parts.as_slice(), [y, m, d]
        if y.len() == 4 && m.len() == 2 && d.len() == 2
            && [y, m, d].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && (1..=12).contains(&m.parse::<u8>().unwrap_or(0))
            && (1..=31).contains(&d.parse::<u8>().unwrap_or(0)));
    let release_ok =
        release.is_none_or(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase()));
    date_ok && release_ok
}

fn integer(config: &TenantConfig, key: &str, default: i64, min: i64, max: i64) -> Result<i64> {
    let value = config.get::<i64>(key)?.unwrap_or(default);
    if !(min..=max).contains(&value) {
        return Err(Error::invalid_config(
            key,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `values` and renders the outcome as one line, or the error.
    fn check(values: serde_json::Value, expected: &str) {
        let actual = match Settings::from_config(&TenantConfig::new("t1", values)) {
            Ok(s) => format!(
                "{} {} timeout={:?} retries={} tolerance={} max={:?} types={:?} whsec={}",
                s.base_url,
                s.api_version,
                s.timeout,
                s.max_retries,
                s.webhook_tolerance_secs,
                s.max_amount_minor,
                s.payment_method_types,
                s.webhook_secret.is_some(),
            ),
            Err(e) => e.to_string(),
        };
        assert_eq!(actual, expected);
    }

    #[test]
    fn defaults_fill_everything_but_the_key() {
        check(
            serde_json::json!({"secret_key": "sk_test_123"}),
            "https://api.stripe.com 2024-06-20 timeout=30s retries=2 tolerance=300 max=None types=[\"card\"] whsec=false",
        );
    }

    #[test]
    fn every_key_can_be_set() {
        check(
            serde_json::json!({
                "secret_key": "rk_live_abc", "webhook_secret": "whsec_x", "base_url": "http://127.0.0.1:1234/",
                "api_version": "2024-09-30.acacia", "timeout_ms": 500, "max_retries": 0,
                "webhook_tolerance_secs": 60, "max_amount_minor": 100000, "payment_method_types": ["card", "link"],
            }),
            "http://127.0.0.1:1234 2024-09-30.acacia timeout=500ms retries=0 tolerance=60 max=Some(100000) types=[\"card\", \"link\"] whsec=true",
        );
    }

    #[test]
    fn bad_keys_are_named_without_their_value() {
        let pk = "invalid configuration `secret_key`: expected a Stripe secret or restricted key \
                  (`sk_test_...`, `sk_live_...`, `rk_...`) without spaces; a publishable key (`pk_...`) cannot create payments";
        check(
            serde_json::json!({}),
            "invalid configuration `secret_key`: required string value is missing",
        );
        check(serde_json::json!({"secret_key": "pk_test_123"}), pk);
        check(serde_json::json!({"secret_key": "sk_test_"}), pk);
        check(serde_json::json!({"secret_key": "sk_test_1 2"}), pk);
        check(
            serde_json::json!({"secret_key": "sk_test_1", "webhook_secret": "secret"}),
            "invalid configuration `webhook_secret`: expected the endpoint's signing secret, which starts with `whsec_` \
             (Dashboard → Developers → Webhooks → the endpoint → Signing secret)",
        );
    }

    #[test]
    fn bad_values_are_explained() {
        check(
            serde_json::json!({"secret_key": "sk_test_1", "base_url": "api.stripe.com"}),
            "invalid configuration `base_url`: `api.stripe.com` must start with https:// (or http:// for a local stand-in)",
        );
        check(
            serde_json::json!({"secret_key": "sk_test_1", "base_url": "https://user:pw@api.stripe.com"}),
            "invalid configuration `base_url`: expected a plain origin such as https://api.stripe.com, without credentials, query or fragment",
        );
        check(
            serde_json::json!({"secret_key": "sk_test_1", "api_version": "2024-6-20"}),
            "invalid configuration `api_version`: `2024-6-20` is not a Stripe API version; expected a date such as `2024-06-20` or `2024-09-30.acacia`",
        );
        check(
            serde_json::json!({"secret_key": "sk_test_1", "timeout_ms": 0}),
            "invalid configuration `timeout_ms`: must be between 1 and 600000, got 0",
        );
        check(
            serde_json::json!({"secret_key": "sk_test_1", "max_retries": "3"}),
            "invalid configuration `max_retries`: invalid type: string \"3\", expected i64",
        );
        check(
            serde_json::json!({"secret_key": "sk_test_1", "webhook_tolerance_secs": 0}),
            "invalid configuration `webhook_tolerance_secs`: must be between 1 and 86400, got 0",
        );
        check(
            serde_json::json!({"secret_key": "sk_test_1", "max_amount_minor": 0}),
            "invalid configuration `max_amount_minor`: must be a positive amount in minor units, got 0; leave it unset for no limit",
        );
        check(
            serde_json::json!({"secret_key": "sk_test_1", "payment_method_types": []}),
            "invalid configuration `payment_method_types`: list at least one payment method type, e.g. [\"card\"]",
        );
    }

    #[test]
    fn api_versions() {
        for ok in [
            "2024-06-20",
            "2020-08-27",
            "2024-09-30.acacia",
            "2025-03-31.basil",
        ] {
            assert!(is_api_version(ok), "{ok}");
        }
        for bad in [
            "",
            "2024-06",
            "2024-13-01",
            "2024-06-32",
            "24-06-20",
            "2024-06-20.",
            "2024-06-20.Acacia",
            "latest",
            "2024_06_20",
        ] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_match_the_manifest() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let manifest: toml::Table = include_str!("../plugin.toml").parse()?;
        let default = |key: &str| manifest["config"][key].get("default").cloned();
        assert_eq!(
            default("base_url"),
            Some(toml::Value::from(DEFAULT_BASE_URL))
        );
        assert_eq!(
            default("api_version"),
            Some(toml::Value::from(DEFAULT_API_VERSION))
        );
        assert_eq!(
            default("timeout_ms"),
            Some(toml::Value::from(DEFAULT_TIMEOUT_MS))
        );
        assert_eq!(
            default("max_retries"),
            Some(toml::Value::from(DEFAULT_MAX_RETRIES))
        );
        assert_eq!(
            default("webhook_tolerance_secs"),
            Some(toml::Value::from(DEFAULT_WEBHOOK_TOLERANCE_SECS))
        );
        assert_eq!(
            default("payment_method_types"),
            Some(toml::Value::from(DEFAULT_PAYMENT_METHOD_TYPES.to_vec()))
        );
        assert_eq!(
            manifest["version"].as_str(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        for sensitive in ["secret_key", "webhook_secret"] {
            assert_eq!(
                manifest["config"][sensitive]["sensitive"].as_bool(),
                Some(true),
                "{sensitive}"
            );
        }
        Ok(())
    }
}
