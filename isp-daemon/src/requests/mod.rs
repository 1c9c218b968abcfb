//! The ISP flows' requests as the API and the demo script receive them:
//! plain data with their validation, shared by `config` and `flows`.
//! The JSON shape check that names every missing or mistyped field at once
//! is in `shape`.

mod shape;

pub use shape::{parse_request, FieldShape, RequestShape};

use serde::{Deserialize, Serialize};

/// A customer signing up with a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// The tenant (the ISP).
    pub tenant: String,
    /// The customer's id at the tenant.
    pub customer_id: String,
    /// Display name.
    pub name: String,
    /// Mobile number, E.164, for the welcome SMS.
    #[serde(default)]
    pub phone: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// The service plan.
    pub plan: String,
    /// The monthly price in minor units; the first charge.
    pub monthly_price_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// The customer premises device for SNMP, `host:port` (or `demo:snmpd`).
    #[serde(default)]
    pub device_address: Option<String>,
    /// The device's SSH endpoint, `host:port` (or `demo:sshd`).
    #[serde(default)]
    pub device_ssh: Option<String>,
    /// The payment method to charge; the Stripe test card `pm_card_visa` when absent.
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// A device alert for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAlertRequest {
    /// The tenant.
    pub tenant: String,
    /// The device, `host:port` or a name.
    pub device: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What happened.
    pub message: String,
}

/// A tier change for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierChangeRequest {
    /// The tenant.
    pub tenant: String,
    /// The new tier.
    pub tier: String,
}

impl NewCustomer {
    /// Checks the request; the error names the field and what it must be.
    pub fn validate(&self) -> Result<(), String> {
        if !is_id(&self.customer_id) {
            return Err(
                "`customer_id` must be 1 to 64 letters, digits, `.`, `_` or `-`".to_owned(),
            );
        }
        if self.name.trim().is_empty() {
            return Err("`name` must not be empty".to_owned());
        }
        if self.plan.trim().is_empty() {
            return Err("`plan` must not be empty".to_owned());
        }
        if self.monthly_price_minor < 0 {
            return Err(
                "`monthly_price_minor` must be zero or more (minor units, e.g. 4999 for 49.99)"
                    .to_owned(),
            );
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err("`currency` must be an ISO 4217 code such as \"usd\"".to_owned());
        }
        if let Some(phone) = &self.phone {
            if !is_e164(phone) {
                return Err(format!(
                    "`phone` must be an E.164 number such as \"+14155550123\", not {phone:?}"
                ));
            }
        }
        for (field, value) in [
            ("device_address", &self.device_address),
            ("device_ssh", &self.device_ssh),
            ("payment_method", &self.payment_method),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(format!("`{field}` must not be empty when given"));
            }
        }
        Ok(())
    }
}

impl DeviceAlertRequest {
    /// Checks the request; the error names every field that is wrong and
    /// what it must be, joined by `; `.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.device.trim().is_empty() {
            problems.push("`device` must not be empty".to_owned());
        }
        if !matches!(self.severity.as_str(), "info" | "warning" | "critical") {
            problems.push(format!(
                "`severity` must be \"info\", \"warning\" or \"critical\", not {:?}",
                self.severity
            ));
        }
        if self.message.trim().is_empty() {
            problems.push("`message` must not be empty".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

fn is_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
