//! The twilio reference plugin: sends SMS through Twilio's Messages API,
//! looks up delivery status, verifies Twilio's webhooks (`X-Twilio-Signature`)
//! and pages a tenant's on-call number when a device raises an alert.
//!
//! Built as a `cdylib` for the host and as an `rlib` so its logic is tested
//! in-process. Per-tenant configuration arrives in [`Plugin::activate`]; the
//! keys are declared in `plugin.toml`.
//!
//! ```
//! use plugin_api::{Plugin, TenantConfig};
//! use plugkit_twilio::TwilioPlugin;
//!
//! let plugin = TwilioPlugin::new()?;
//! plugin.activate(&TenantConfig::new(
//!     "acme",
//!     serde_json::json!({
//!         "account_sid": "AC0123456789abcdef0123456789abcdef",
//!         "auth_token": "your-auth-token",
//!         "from_number": "+15005550006",
//!     }),
//! ))?;
//! // `Communication::send_message(&plugin, "acme", ..)` now talks to Twilio.
//! # Ok::<(), plugin_api::PluginError>(())
//! ```
//!
//! Invariants: the plugin starts no thread (requests run on the caller's
//! thread, back-off sleeps on it), so the library can be unloaded after
//! `cleanup`; no credential reaches a log line, an error or `Debug`.

#![deny(unsafe_code)]

mod callback;
mod client;
mod config;
mod error;
mod form;
mod retry;
mod signature;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use plugin_api::communication::{Communication, MessageReceipt, OutboundMessage, StatusUpdate};
use plugin_api::hooks::{DeviceAlert, DEVICE_ALERT};
use plugin_api::{
    Health, HookAction, HookEvent, Hooks, Host, LogLevel, Plugin, PluginError, RString, Result,
    TenantConfig, WebhookRequest,
};

#[doc(hidden)]
pub use crate::callback::{webhook_report, webhook_signature};
use crate::client::Client;
use crate::config::Settings;
use crate::retry::Sleeper;

/// Twilio's limit on a message body, in characters.
const MAX_BODY_CHARS: usize = 1600;

/// The Twilio plugin. One instance serves every tenant.
pub struct TwilioPlugin {
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    host: RwLock<Option<Host>>,
    sleeper: Sleeper,
}

/// One active tenant.
#[derive(Debug)]
struct Tenant {
    settings: Settings,
    client: Client,
}

impl TwilioPlugin {
    /// A plugin whose retry back-off waits through `sleeper` instead of
    /// sleeping the thread: tests record the waits and return at once.
    pub fn with_sleeper(sleeper: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        Self::with_shared_sleeper(Arc::new(sleeper))
    }

    fn with_shared_sleeper(sleeper: Sleeper) -> Self {
        Self {
            tenants: RwLock::new(HashMap::new()),
            host: RwLock::new(None),
            sleeper,
        }
    }

    fn tenant(&self, tenant: &str) -> Result<Arc<Tenant>> {
        self.tenants.read().get(tenant).cloned().ok_or_else(|| {
            PluginError::unsupported(format!(
                "tenant `{tenant}` is not active for the twilio plugin; activate it with its Twilio configuration first"
            ))
        })
    }

    fn log(&self, level: LogLevel, message: &str) {
        if let Some(host) = self.host.read().as_ref() {
            host.log(level, message);
        }
    }

    fn send(&self, tenant: &Tenant, message: &OutboundMessage) -> Result<MessageReceipt> {
        if message.to.trim().is_empty() {
            return Err(PluginError::invalid_request(
                "a message needs a `to` number",
            ));
        }
        if message.body.is_empty() && message.media_urls.is_empty() {
            return Err(PluginError::invalid_request(
                "a message needs a body or media",
            ));
        }
        let form = client::message_form(message, &tenant.settings.sender);
        let resource = tenant.client.create_message(&form, &*self.sleeper)?;
        Ok(resource.receipt())
    }
}

impl Plugin for TwilioPlugin {
    const ID: &'static str = plugin_api::manifest_id!();
    const NAME: &'static str = "Twilio SMS";
    const CATEGORY: &'static str = "communication";

    fn new() -> Result<Self> {
        Ok(Self::with_shared_sleeper(retry::thread_sleeper()))
    }

    fn initialize(&self, host: &Host) -> Result<()> {
        *self.host.write() = Some(host.clone());
        Ok(())
    }

    fn activate(&self, config: &TenantConfig) -> Result<()> {
        let settings = Settings::from_config(config)?;
        let client = Client::new(&settings);
        self.log(
            LogLevel::Info,
            &format!(
                "tenant `{}` activated: account {}, API at {}",
                config.tenant(),
                settings.account_sid,
                settings.base_url
            ),
        );
        self.tenants.write().insert(
            config.tenant().to_owned(),
            Arc::new(Tenant { settings, client }),
        );
        Ok(())
    }

    fn deactivate(&self, tenant: &str) -> Result<()> {
        self.tenants.write().remove(tenant);
        Ok(())
    }

    fn cleanup(&self) -> Result<()> {
        // Dropping the clients closes their pooled connections.
        self.tenants.write().clear();
        *self.host.write() = None;
        Ok(())
    }

    fn health(&self) -> Health {
        Health::healthy()
    }
}

impl Communication for TwilioPlugin {
    fn send_message(&self, tenant: &str, message: OutboundMessage) -> Result<MessageReceipt> {
        let active = self.tenant(tenant)?;
        let receipt = self.send(&active, &message)?;
        self.log(
            LogLevel::Info,
            &format!(
                "tenant `{tenant}`: message {} {:?}",
                receipt.provider_message_id, receipt.status
            ),
        );
        Ok(receipt)
    }

    fn message_status(&self, tenant: &str, provider_message_id: RString) -> Result<MessageReceipt> {
        let provider_message_id = provider_message_id.as_str();
        let active = self.tenant(tenant)?;
        if !client::is_message_sid(provider_message_id) {
            return Err(PluginError::invalid_request(format!(
                "`{provider_message_id}` is not a Twilio message SID (SM or MM followed by 32 hex digits)"
            )));
        }
        let resource = active
            .client
            .fetch_message(provider_message_id, &*self.sleeper)?;
        Ok(resource.receipt())
    }

    fn verify_webhook(&self, tenant: &str, request: WebhookRequest) -> Result<bool> {
        let active = self.tenant(tenant)?;
        Ok(callback::verify(
            active.settings.auth_token.expose(),
            &request,
        ))
    }

    fn parse_status_callback(&self, tenant: &str, request: WebhookRequest) -> Result<StatusUpdate> {
        let active = self.tenant(tenant)?;
        callback::parse_status(active.settings.auth_token.expose(), &request)
    }
}

impl Hooks for TwilioPlugin {
    fn on_hook(&self, event: HookEvent<'_>) -> Result<HookAction> {
        if event.hook != DEVICE_ALERT {
            return Ok(HookAction::Continue);
        }
        let alert: DeviceAlert = event.json()?;
        let active = self.tenant(event.tenant)?;
        let Some(on_call) = active.settings.on_call_number.as_deref() else {
            self.log(
                LogLevel::Warn,
                &format!(
                    "tenant `{}`: device.alert for {} not paged: set `on_call_number` to page someone",
                    event.tenant, alert.device
                ),
            );
            return Ok(HookAction::Continue);
        };
        let message = OutboundMessage {
            to: on_call.into(),
            body: alert_text(&alert).into(),
            ..OutboundMessage::default()
        };
        let receipt = self.send(&active, &message)?;
        self.log(
            LogLevel::Info,
            &format!(
                "tenant `{}`: paged on-call for {} alert on {}: message {}",
                event.tenant, alert.severity, alert.device, receipt.provider_message_id
            ),
        );
        Ok(HookAction::Continue)
    }
}

/// The SMS text for an alert, cut to Twilio's body limit.
fn alert_text(alert: &DeviceAlert) -> String {
    let text = format!(
        "[{}] {}: {}",
        alert.severity.to_uppercase(),
        alert.device,
        alert.message
    );
    match text.char_indices().nth(MAX_BODY_CHARS) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text,
    }
}

plugin_api::export_plugin!(TwilioPlugin, extensions: [communication, hooks]);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn alert(severity: &str, message: &str) -> DeviceAlert {
        DeviceAlert {
            device: "olt-3.pop1".to_owned(),
            severity: severity.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn alert_text_names_severity_and_device() {
        assert_eq!(
            alert_text(&alert("critical", "PON port 4 down")),
            "[CRITICAL] olt-3.pop1: PON port 4 down"
        );
    }

    #[test]
    fn alert_text_is_cut_to_twilios_limit_on_a_char_boundary() {
        let text = alert_text(&alert("warning", &"é".repeat(2000)));
        assert_eq!(text.chars().count(), MAX_BODY_CHARS);
    }

    fn plugin_with(values: serde_json::Value) -> TwilioPlugin {
        let plugin = TwilioPlugin::with_sleeper(|_| {});
        plugin.activate(&TenantConfig::new("t1", values)).unwrap();
        plugin
    }

    fn base() -> serde_json::Value {
        json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "tok",
               "from_number": "+15005550006", "base_url": "http://127.0.0.1:1"})
    }

    #[test]
    fn calls_for_an_inactive_tenant_are_refused() {
        let plugin = plugin_with(base());
        plugin.deactivate("t1").unwrap();
        let result = plugin.message_status("t1", "SM0123456789abcdef0123456789abcdef".into());
        assert!(
            matches!(result, Err(PluginError::Unsupported { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn invalid_messages_never_reach_twilio() {
        let plugin = plugin_with(base());
        for message in [
            OutboundMessage {
                to: " ".into(),
                body: "x".into(),
                ..OutboundMessage::default()
            },
            OutboundMessage {
                to: "+15005550006".into(),
                ..OutboundMessage::default()
            },
        ] {
            let result = plugin.send_message("t1", message);
            assert!(
                matches!(result, Err(PluginError::InvalidRequest { .. })),
                "{result:?}"
            );
        }
        let result = plugin.message_status("t1", "../Calls/CA1".into());
        assert!(
            matches!(result, Err(PluginError::InvalidRequest { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn other_hooks_and_unpaged_tenants_pass_through() {
        let plugin = plugin_with(base());
        let payload = serde_json::to_vec(&alert("critical", "down")).unwrap();
        for hook in ["invoice.paid", DEVICE_ALERT] {
            let event = HookEvent {
                tenant: "t1",
                hook,
                content_type: "application/json",
                payload: &payload,
            };
            assert_eq!(
                plugin.on_hook(event).unwrap(),
                HookAction::Continue,
                "{hook}"
            );
        }
    }

    #[test]
    fn a_malformed_alert_is_an_invalid_request() {
        let mut values = base();
        values["on_call_number"] = json!("+14155550100");
        let plugin = plugin_with(values);
        let event = HookEvent {
            tenant: "t1",
            hook: DEVICE_ALERT,
            content_type: "application/json",
            payload: b"{\"device\": 1}",
        };
        assert!(matches!(
            plugin.on_hook(event),
            Err(PluginError::InvalidRequest { .. })
        ));
    }

    /// `plugin.toml`, which the host reads before loading the library.
    fn manifest() -> toml::Table {
        toml::from_str(include_str!("../plugin.toml")).unwrap()
    }

    #[test]
    fn manifest_identity_matches_the_crate() {
        let m = manifest();
        assert_eq!(m["id"].as_str(), Some(TwilioPlugin::ID));
        assert_eq!(m["category"].as_str(), Some(TwilioPlugin::CATEGORY));
        assert_eq!(m["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
        let library = format!("lib{}.so", env!("CARGO_PKG_NAME").replace('-', "_"));
        assert_eq!(m["library"].as_str(), Some(library.as_str()));
        let hooks = m["hooks"].as_array().unwrap();
        assert!(hooks.iter().any(
            |h| h["name"].as_str() == Some(DEVICE_ALERT) && h["kind"].as_str() == Some("event")
        ));
    }

    #[test]
    fn manifest_declares_every_config_key_with_its_type_and_sensitivity() {
        let m = manifest();
        let config = m["config"].as_table().unwrap();
        let expected = [
            ("account_sid", "string", true, false),
            ("auth_token", "string", true, true),
            ("api_key_sid", "string", false, false),
            ("api_key_secret", "string", false, true),
            ("from_number", "string", false, false),
            ("messaging_service_sid", "string", false, false),
            ("base_url", "string", false, false),
            ("timeout_ms", "integer", false, false),
            ("max_retries", "integer", false, false),
            ("on_call_number", "string", false, false),
        ];
        for (key, value_type, required, sensitive) in expected {
            let entry = &config[key];
            assert_eq!(entry["type"].as_str(), Some(value_type), "{key}");
            assert_eq!(entry["required"].as_bool(), Some(required), "{key}");
            let flagged = entry.get("sensitive").and_then(toml::Value::as_bool);
            assert_eq!(flagged.unwrap_or(false), sensitive, "{key}");
            assert!(
                !(required && entry.get("default").is_some()),
                "{key}: required keys have no default"
            );
            let description = entry.get("description").and_then(toml::Value::as_str);
            assert!(description.is_some_and(|d| !d.is_empty()), "{key}");
        }
        assert_eq!(config.len(), expected.len(), "no undeclared or stale keys");
        let defaults = |key: &str| config[key].get("default").cloned();
        assert_eq!(
            defaults("base_url")
                .and_then(|v| v.as_str().map(str::to_owned))
                .as_deref(),
            Some(config::DEFAULT_BASE_URL)
        );
        assert_eq!(
            defaults("timeout_ms").and_then(|v| v.as_integer()),
            Some(config::DEFAULT_TIMEOUT_MS as i64)
        );
        assert_eq!(
            defaults("max_retries").and_then(|v| v.as_integer()),
            Some(i64::from(config::DEFAULT_MAX_RETRIES))
        );
    }
}
