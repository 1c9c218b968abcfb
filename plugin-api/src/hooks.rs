//! The ISP hook catalogue: hook names and their JSON payload schemas.
//!
//! Payloads cross the boundary as bytes with a content type
//! (`application/json`); these structs are the schemas both sides use with
//! serde. Filters (`before_*`) may modify or veto; events are fire-and-forget.

use serde::{Deserialize, Serialize};

/// A customer was created. Payload: [`CustomerCreated`].
pub const CUSTOMER_CREATED: &str = "customer.created";
/// A customer's subscription tier changed. Payload: [`TierChanged`].
pub const CUSTOMER_TIER_CHANGED: &str = "customer.tier_changed";
/// An invoice was paid. Payload: [`InvoicePaid`].
pub const INVOICE_PAID: &str = "invoice.paid";
/// A payment failed. Payload: [`PaymentFailed`].
pub const PAYMENT_FAILED: &str = "payment.failed";
/// A device raised an alert. Payload: [`DeviceAlert`].
pub const DEVICE_ALERT: &str = "device.alert";
/// A customer's service was activated. Payload: [`ServiceChanged`].
pub const SERVICE_ACTIVATED: &str = "service.activated";
/// A customer's service was suspended. Payload: [`ServiceChanged`].
pub const SERVICE_SUSPENDED: &str = "service.suspended";
/// Filter run before a payment is taken; may change or veto it. Payload: [`PaymentIntent`].
pub const BEFORE_PAYMENT_PROCESS: &str = "before_payment_process";
/// A plugin was installed. Payload: [`PluginEvent`].
pub const PLUGIN_INSTALLED: &str = "plugin.installed";
/// A plugin was activated for a tenant. Payload: [`PluginEvent`].
pub const PLUGIN_ACTIVATED: &str = "plugin.activated";
/// A plugin was deactivated for a tenant. Payload: [`PluginEvent`].
pub const PLUGIN_DEACTIVATED: &str = "plugin.deactivated";
/// A plugin failed. Payload: [`PluginEvent`] with `error` set.
pub const PLUGIN_ERROR: &str = "plugin.error";

/// Every hook in the catalogue.
pub const CATALOGUE: &[&str] = &[
    CUSTOMER_CREATED,
    CUSTOMER_TIER_CHANGED,
    INVOICE_PAID,
    PAYMENT_FAILED,
    DEVICE_ALERT,
    SERVICE_ACTIVATED,
    SERVICE_SUSPENDED,
    BEFORE_PAYMENT_PROCESS,
    PLUGIN_INSTALLED,
    PLUGIN_ACTIVATED,
    PLUGIN_DEACTIVATED,
    PLUGIN_ERROR,
];

/// `customer.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCreated {
    /// The customer's id.
    pub customer_id: String,
    /// Display name.
    pub name: String,
    /// Mobile number, E.164.
    pub phone: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// The service plan ordered.
    pub plan: String,
    /// The monthly price in minor units.
    pub monthly_price_minor: i64,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// The customer premises device, `host:port`, when there is one.
    pub device_address: Option<String>,
}

/// `customer.tier_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierChanged {
    /// The tenant whose tier changed.
    pub tenant: String,
    /// The old tier.
    pub from: String,
    /// The new tier.
    pub to: String,
}

/// `invoice.paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaid {
    /// The invoice.
    pub invoice_id: String,
    /// The customer.
    pub customer_id: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// The provider's payment id.
    pub payment_id: Option<String>,
}

/// `payment.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// The customer.
    pub customer_id: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// Why it failed.
    pub reason: String,
}

/// `device.alert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAlert {
    /// The device, `host:port` or a name.
    pub device: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What happened.
    pub message: String,
}

/// `service.activated` and `service.suspended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceChanged {
    /// The customer.
    pub customer_id: String,
    /// The service plan.
    pub plan: String,
    /// The device it runs on, when known.
    pub device_address: Option<String>,
}

/// `before_payment_process`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    /// The customer.
    pub customer_id: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// Free-form notes filters may add.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// `plugin.*` system hooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginEvent {
    /// The plugin.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The tenant, for activation events.
    pub tenant: Option<String>,
    /// The error, for `plugin.error`.
    pub error: Option<String>,
}
