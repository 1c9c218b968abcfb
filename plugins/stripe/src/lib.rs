//! The stripe reference plugin: takes payments through Stripe's
//! PaymentIntents and Refunds API, verifies and parses Stripe webhooks, and
//! guards payments through the ISP hook catalogue.
//!
//! Each tenant brings its own Stripe account (`secret_key`, `webhook_secret`
//! and the rest of `[config]` in `plugin.toml`) and gets its own HTTP client;
//! `deactivate` drops it, and with it the client's idle pooled connections.
//! The plugin starts no thread (HTTP is synchronous `ureq`) and `cleanup`
//! drops every client, so the library can be unloaded.
//!
//! Hooks (see `plugin.toml`): `invoice.paid` is recorded per tenant and
//! logged; the filter `before_payment_process` vetoes amounts that are not
//! positive or exceed the tenant's `max_amount_minor`.
//!
//! ```
//! use plugin_api::payment::{CreatePayment, Money, Payment};
//! use plugin_api::{Plugin, TenantConfig};
//! use plugkit_stripe::StripePlugin;
//!
//! let stripe = StripePlugin::new()?;
//! stripe.activate(&TenantConfig::new(
//!     "acme",
//!     serde_json::json!({ "secret_key": "sk_test_123", "max_amount_minor": 50_000 }),
//! ))?;
//! // Refused before any request is sent: the tenant's limit is 500.00.
//! let too_much = CreatePayment {
//!     amount: Money { amount_minor: 90_000, currency: "usd".into() },
//!     customer: None.into(),
//!     payment_method: Some("pm_card_visa".into()).into(),
//!     confirm: true,
//!     manual_capture: false,
//!     description: None.into(),
//!     metadata: Default::default(),
//!     idempotency_key: "order-42".into(),
//! };
//! assert!(stripe.create_payment("acme", too_much).is_err());
//! # Ok::<(), plugin_api::Error>(())
//! ```

#![deny(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use plugin_api::hooks::{self, InvoicePaid};
use plugin_api::payment::{
    CapturePayment, ConfirmPayment, CreatePayment, Payment, PaymentEvent, PaymentRecord, Refund,
    RefundRequest,
};
use plugin_api::{
    Error, HookAction, HookEvent, Hooks, Host, LogLevel, Plugin, Result, TenantConfig,
    WebhookRequest,
};

mod client;
mod config;
pub mod form;
mod resources;
mod retry_after;
pub mod webhook;

use client::{Client, MAX_IDEMPOTENCY_KEY_LEN};
use config::Settings;

/// How many `invoice.paid` events are kept per tenant.
const PAID_INVOICES_KEPT: usize = 256;

/// What the plugin takes from the world besides the network: the time and
/// the waiting between retries. Tests swap both so they never sleep and can
/// put the clock anywhere.
#[derive(Clone)]
pub struct Environment {
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    sleeper: Arc<dyn Fn(Duration) + Send + Sync>,
    jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
}

impl Environment {
    /// The system clock, `thread::sleep`, and random jitter.
    pub fn system() -> Self {
        Self {
            clock: Arc::new(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            }),
            sleeper: Arc::new(std::thread::sleep),
            jitter: Arc::new(fastrand::f64),
        }
    }

    /// Replaces the clock (Unix seconds), used to check webhook timestamps.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces the wait between retries.
    pub fn with_sleeper(mut self, sleeper: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.sleeper = Arc::new(sleeper);
        self
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Environment")
    }
}

/// One active tenant.
struct Tenant {
    settings: Settings,
    client: Client,
    paid_invoices: Mutex<VecDeque<InvoicePaid>>,
}

/// The Stripe payment plugin.
pub struct StripePlugin {
    env: Environment,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    host: RwLock<Option<Host>>,
}

impl StripePlugin {
    /// A plugin that reads time and waits through `env`.
    pub fn with_environment(env: Environment) -> Self {
        Self {
            env,
            tenants: RwLock::new(HashMap::new()),
            host: RwLock::new(None),
        }
    }

    /// The `invoice.paid` events seen for `tenant` while it was active,
    /// oldest first (at most the last 256).
    pub fn paid_invoices(&self, tenant: &str) -> Vec<InvoicePaid> {
        self.tenants
            .read()
            .get(tenant)
            .map(|t| t.paid_invoices.lock().iter().cloned().collect())
            .unwrap_or_default()
    }

    fn tenant(&self, tenant: &str) -> Result<Arc<Tenant>> {
        self.tenants.read().get(tenant).cloned().ok_or_else(|| {
            Error::unsupported(format!(
                "the stripe plugin is not active for tenant `{tenant}`; activate it with the tenant's Stripe configuration first"
            ))
        })
    }

    fn log(&self, level: LogLevel, message: &str) {
        if let Some(host) = self.host.read().as_ref() {
            host.log(level, message);
        }
    }

    fn check_amount(&self, tenant: &Tenant, amount: i64, what: &str) -> Result<()> {
        if amount <= 0 {
            return Err(Error::invalid_request(format!(
                "{what} must be a positive amount in minor units, got {amount}"
            )));
        }
        if let Some(max) = tenant.settings.max_amount_minor {
            if amount > max {
                return Err(Error::invalid_request(format!(
                    "{what} {amount} exceeds this tenant's limit of {max} (`max_amount_minor`)"
                )));
            }
        }
        Ok(())
    }

    fn on_invoice_paid(&self, event: &HookEvent<'_>) -> Result<HookAction> {
        let invoice: InvoicePaid = event.json()?;
        let Ok(tenant) = self.tenant(event.tenant) else {
            return Ok(HookAction::Continue);
        };
        self.log(
            LogLevel::Info,
            &format!(
                "tenant {}: invoice {} paid, {} {} by customer {} (payment {})",
                event.tenant,
                invoice.invoice_id,
                invoice.amount_minor,
                invoice.currency,
                invoice.customer_id,
                invoice
                    .payment_id
                    .as_deref()
                    .unwrap_or("not through Stripe"),
            ),
        );
        let mut kept = tenant.paid_invoices.lock();
        if kept.len() == PAID_INVOICES_KEPT {
            kept.pop_front();
        }
        kept.push_back(invoice);
        Ok(HookAction::Continue)
    }

    fn before_payment_process(&self, event: &HookEvent<'_>) -> Result<HookAction> {
        let intent: hooks::PaymentIntent = event.json()?;
        if intent.amount_minor <= 0 {
            return Ok(HookAction::Veto(format!(
                "stripe: payment amount must be positive, got {} {} for customer {}",
                intent.amount_minor, intent.currency, intent.customer_id
            )));
        }
        // A tenant that does not use Stripe has no Stripe limit.
        let Ok(tenant) = self.tenant(event.tenant) else {
            return Ok(HookAction::Continue);
        };
        match tenant.settings.max_amount_minor {
            Some(max) if intent.amount_minor > max => Ok(HookAction::Veto(format!(
                "stripe: payment of {} {} for customer {} exceeds tenant {}'s limit of {max} \
                 (`max_amount_minor`); raise the limit or split the payment",
                intent.amount_minor, intent.currency, intent.customer_id, event.tenant
            ))),
            _ => Ok(HookAction::Continue),
        }
    }
}

fn check_idempotency_key(key: &str) -> Result<String> {
    let key = key.trim();
    if key.is_empty() {
        // Every POST carries a key, as stripe-python does; a caller that
        // wants safe retries across calls passes its own.
        return Ok(client::new_idempotency_key());
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(Error::invalid_request(format!(
            "idempotency_key is {} bytes long; Stripe accepts at most {MAX_IDEMPOTENCY_KEY_LEN}",
            key.len()
        )));
    }
    Ok(key.to_owned())
}

impl Plugin for StripePlugin {
    const ID: &'static str = plugin_api::manifest_id!();
    const NAME: &'static str = "Stripe";
    const CATEGORY: &'static str = "payment";

    fn new() -> Result<Self> {
        Ok(Self::with_environment(Environment::system()))
    }

    fn initialize(&self, host: &Host) -> Result<()> {
        *self.host.write() = Some(host.clone());
        Ok(())
    }

    fn activate(&self, tenant: &TenantConfig) -> Result<()> {
        let settings = Settings::from_config(tenant)?;
        let client = Client::new(&settings, self.env.clone());
        self.log(
            LogLevel::Info,
            &format!(
                "tenant {}: activated against {} with Stripe-Version {}, {} retries{}",
                tenant.tenant(),
                settings.base_url,
                settings.api_version,
                settings.max_retries,
                if settings.webhook_secret.is_some() {
                    ""
                } else {
                    "; no webhook_secret, webhooks will be refused"
                },
            ),
        );
        let mut tenants = self.tenants.write();
        // Re-activation replaces the settings but keeps what was recorded.
        let recorded = tenants
            .get(tenant.tenant())
            .map(|previous| std::mem::take(&mut *previous.paid_invoices.lock()))
            .unwrap_or_default();
        tenants.insert(
            tenant.tenant().to_owned(),
            Arc::new(Tenant {
                settings,
                client,
                paid_invoices: Mutex::new(recorded),
            }),
        );
        Ok(())
    }

    fn deactivate(&self, tenant: &str) -> Result<()> {
        if self.tenants.write().remove(tenant).is_some() {
            self.log(LogLevel::Info, &format!("tenant {tenant}: deactivated"));
        }
        Ok(())
    }

    fn cleanup(&self) -> Result<()> {
        self.tenants.write().clear();
        *self.host.write() = None;
        Ok(())
    }
}

impl Payment for StripePlugin {
    fn create_payment(&self, tenant: &str, request: CreatePayment) -> Result<PaymentRecord> {
        let t = self.tenant(tenant)?;
        self.check_amount(&t, request.amount.amount_minor, "amount")?;
        let currency = request.amount.currency.as_str();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::invalid_request(format!(
                "`{currency}` is not an ISO 4217 currency code such as `usd`"
            )));
        }
        let key = check_idempotency_key(&request.idempotency_key)?;
        let params = resources::create_params(&request, &t.settings.payment_method_types);
        let json = t.client.post("/v1/payment_intents", &params, &key)?;
        resources::payment_from_json(json)
    }

    fn confirm_payment(&self, tenant: &str, request: ConfirmPayment) -> Result<PaymentRecord> {
        let t = self.tenant(tenant)?;
        let path = resources::payment_intent_path(&request.payment_id, "confirm")?;
        let key = check_idempotency_key(&request.idempotency_key)?;
        let json = t
            .client
            .post(&path, &resources::confirm_params(&request), &key)?;
        resources::payment_from_json(json)
    }

    fn capture_payment(&self, tenant: &str, request: CapturePayment) -> Result<PaymentRecord> {
        let t = self.tenant(tenant)?;
        if let Some(amount) = request.amount_minor.into_option() {
            self.check_amount(&t, amount, "amount_to_capture")?;
        }
        let path = resources::payment_intent_path(&request.payment_id, "capture")?;
        let key = check_idempotency_key(&request.idempotency_key)?;
        let json = t
            .client
            .post(&path, &resources::capture_params(&request), &key)?;
        resources::payment_from_json(json)
    }

    fn refund(&self, tenant: &str, request: RefundRequest) -> Result<Refund> {
        let t = self.tenant(tenant)?;
        if let Some(amount) = request.amount_minor.into_option() {
            if amount <= 0 {
                return Err(Error::invalid_request(format!(
                    "refund amount must be positive, got {amount}; leave it out to refund everything left"
                )));
            }
        }
        // Checked for its shape only; the refund itself goes to /v1/refunds.
        resources::payment_intent_path(&request.payment_id, "")?;
        let key = check_idempotency_key(&request.idempotency_key)?;
        let json = t
            .client
            .post("/v1/refunds", &resources::refund_params(&request), &key)?;
        resources::refund_from_json(json, &request.payment_id)
    }

    fn parse_webhook(&self, tenant: &str, request: WebhookRequest) -> Result<PaymentEvent> {
        let t = self.tenant(tenant)?;
        let Some(secret) = &t.settings.webhook_secret else {
            return Err(Error::invalid_config(
                "webhook_secret",
                format!("tenant `{tenant}` has no webhook signing secret, so no webhook can be trusted; set `webhook_secret`"),
            ));
        };
        let verified = webhook::verify(
            &request.body,
            &request.signature,
            secret.expose(),
            t.settings.webhook_tolerance_secs,
            (self.env.clock)(),
        );
        if let Err(error) = verified {
            self.log(
                LogLevel::Warn,
                &format!("tenant {tenant}: webhook refused: {error}"),
            );
            return Err(Error::invalid_request(error.to_string()));
        }
        webhook::parse_event(&request.body).map_err(|e| Error::invalid_request(e.to_string()))
    }
}

impl Hooks for StripePlugin {
    fn on_hook(&self, event: HookEvent<'_>) -> Result<HookAction> {
        match event.hook {
            hooks::INVOICE_PAID => self.on_invoice_paid(&event),
            hooks::BEFORE_PAYMENT_PROCESS => self.before_payment_process(&event),
            other => Err(Error::unsupported(format!(
                "the stripe plugin does not handle hook `{other}`; check [[hooks]] in its plugin.toml"
            ))),
        }
    }
}

plugin_api::export_plugin!(StripePlugin, extensions: [payment, hooks]);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(config: serde_json::Value) -> StripePlugin {
        let plugin = StripePlugin::with_environment(Environment::system());
        let activated = plugin.activate(&TenantConfig::new("acme", config));
        assert_eq!(activated, Ok(()));
        plugin
    }

    fn hook(
        plugin: &StripePlugin,
        tenant: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<HookAction> {
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        plugin.on_hook(HookEvent {
            tenant,
            hook: name,
            content_type: "application/json",
            payload: &bytes,
        })
    }

    fn intent(amount: i64) -> serde_json::Value {
        serde_json::json!({"customer_id": "c1", "amount_minor": amount, "currency": "usd"})
    }

    #[test]
    fn before_payment_process_vetoes_non_positive_and_too_large_amounts() {
        let p = plugin(serde_json::json!({"secret_key": "sk_test_1", "max_amount_minor": 10_000}));
        let check = |tenant: &str, amount: i64, expected: Result<HookAction>| {
            assert_eq!(
                hook(&p, tenant, hooks::BEFORE_PAYMENT_PROCESS, intent(amount)),
                expected,
                "{tenant} {amount}"
            );
        };
        check("acme", 1, Ok(HookAction::Continue));
        check("acme", 10_000, Ok(HookAction::Continue));
        check(
            "acme",
            10_001,
            Ok(HookAction::Veto(
                "stripe: payment of 10001 usd for customer c1 exceeds tenant acme's limit of 10000 \
                 (`max_amount_minor`); raise the limit or split the payment"
                    .into(),
            )),
        );
        check(
            "acme",
            0,
            Ok(HookAction::Veto(
                "stripe: payment amount must be positive, got 0 usd for customer c1".into(),
            )),
        );
        check(
            "acme",
            -5,
            Ok(HookAction::Veto(
                "stripe: payment amount must be positive, got -5 usd for customer c1".into(),
            )),
        );
        check("other", 1_000_000, Ok(HookAction::Continue));
        check(
            "other",
            0,
            Ok(HookAction::Veto(
                "stripe: payment amount must be positive, got 0 usd for customer c1".into(),
            )),
        );
    }

    #[test]
    fn before_payment_process_without_a_limit_lets_large_amounts_through() {
        let p = plugin(serde_json::json!({"secret_key": "sk_test_1"}));
        assert_eq!(
            hook(&p, "acme", hooks::BEFORE_PAYMENT_PROCESS, intent(i64::MAX)),
            Ok(HookAction::Continue)
        );
    }

    #[test]
    fn invoice_paid_is_recorded_per_tenant_and_dropped_on_deactivate() {
        let p = plugin(serde_json::json!({"secret_key": "sk_test_1"}));
        let paid = serde_json::json!({"invoice_id": "in_1", "customer_id": "c1", "amount_minor": 4999, "currency": "usd", "payment_id": "pi_1"});
        assert_eq!(
            hook(&p, "acme", hooks::INVOICE_PAID, paid.clone()),
            Ok(HookAction::Continue)
        );
        assert_eq!(
            hook(&p, "other", hooks::INVOICE_PAID, paid),
            Ok(HookAction::Continue)
        );
        let recorded = p.paid_invoices("acme");
        assert_eq!(
            recorded
                .iter()
                .map(|i| i.invoice_id.as_str())
                .collect::<Vec<_>>(),
            ["in_1"]
        );
        assert!(p.paid_invoices("other").is_empty());
        assert_eq!(p.deactivate("acme"), Ok(()));
        assert!(p.paid_invoices("acme").is_empty());
    }

    #[test]
    fn invoice_paid_keeps_only_the_latest() {
        let p = plugin(serde_json::json!({"secret_key": "sk_test_1"}));
        for i in 0..(PAID_INVOICES_KEPT + 3) {
            let paid = serde_json::json!({"invoice_id": format!("in_{i}"), "customer_id": "c", "amount_minor": 1, "currency": "usd", "payment_id": null});
            assert_eq!(
                hook(&p, "acme", hooks::INVOICE_PAID, paid),
                Ok(HookAction::Continue)
            );
        }
        let recorded = p.paid_invoices("acme");
        assert_eq!(recorded.len(), PAID_INVOICES_KEPT);
        assert_eq!(
            recorded.first().map(|i| i.invoice_id.as_str()),
            Some("in_3")
        );
    }

    #[test]
    fn hooks_refuse_bad_payloads_and_unknown_hooks() {
        let p = plugin(serde_json::json!({"secret_key": "sk_test_1"}));
        assert!(hook(
            &p,
            "acme",
            hooks::INVOICE_PAID,
            serde_json::json!({"invoice": 1})
        )
        .is_err());
        assert!(hook(&p, "acme", hooks::DEVICE_ALERT, serde_json::json!({})).is_err());
    }

    #[test]
    fn calls_for_inactive_tenants_say_what_to_do() {
        let p = StripePlugin::with_environment(Environment::system());
        let refund = RefundRequest {
            payment_id: "pi_1".into(),
            amount_minor: None.into(),
            reason: None.into(),
            idempotency_key: "k".into(),
        };
        assert_eq!(
            p.refund("nobody", refund).map(|r| r.id),
            Err(Error::unsupported(
                "the stripe plugin is not active for tenant `nobody`; activate it with the tenant's Stripe configuration first"
            ))
        );
    }

    #[test]
    fn idempotency_keys_are_generated_when_missing_and_bounded() {
        assert_eq!(check_idempotency_key(" order-1 "), Ok("order-1".to_owned()));
        assert_eq!(check_idempotency_key("").map(|k| k.len()), Ok(36));
        assert!(check_idempotency_key(&"k".repeat(256)).is_err());
        assert!(check_idempotency_key(&"k".repeat(255)).is_ok());
    }
}
