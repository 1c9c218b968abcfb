//! PaymentIntents and saved answers as the stand-in keeps them, the test
//! payment methods, and small formatting helpers.

use super::*;

/// A saved idempotent answer.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    pub(super) endpoint: String,
    pub(super) params: Value,
    pub(super) status: u16,
    pub(super) body: String,
    pub(super) request_id: String,
}

#[derive(Debug, Clone)]
pub(super) struct Intent {
    pub(super) id: String,
    pub(super) amount: i64,
    pub(super) currency: String,
    pub(super) status: &'static str,
    pub(super) capture_method: String,
    pub(super) payment_method: Option<String>,
    pub(super) payment_method_types: Vec<String>,
    pub(super) automatic_payment_methods: bool,
    pub(super) customer: Option<String>,
    pub(super) description: Option<String>,
    pub(super) metadata: Map<String, Value>,
    pub(super) amount_capturable: i64,
    pub(super) amount_received: i64,
    pub(super) amount_refunded: i64,
    pub(super) latest_charge: Option<String>,
    pub(super) last_payment_error: Option<Value>,
    pub(super) created: i64,
}

impl Intent {
    pub(super) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_received": self.amount_received,
            "automatic_payment_methods": if self.automatic_payment_methods {
                json!({"allow_redirects": "always", "enabled": true})
            } else {
                Value::Null
            },
            "canceled_at": null,
            "capture_method": self.capture_method,
            "client_secret": format!("{}_secret_standin", self.id),
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "description": self.description,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "payment_method": self.payment_method,
            "payment_method_types": self.payment_method_types,
            "status": self.status,
        })
    }

    pub(super) fn charge_json(&self) -> Value {
        let captured = self.amount_received;
        json!({
            "id": self.latest_charge,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": captured,
            "amount_refunded": self.amount_refunded,
            "captured": captured > 0,
            "created": self.created,
            "currency": self.currency,
            "livemode": false,
            "paid": true,
            "payment_intent": self.id,
            "payment_method": self.payment_method,
            "refunded": captured > 0 && self.amount_refunded == captured,
            "status": "succeeded",
        })
    }
}

/// The test payment methods the stand-in knows: `None` succeeds, `Some` is
/// the `(code, decline_code, message)` of the decline.
pub(super) fn test_payment_method(
    pm: &str,
) -> Option<Option<(&'static str, &'static str, &'static str)>> {
    match pm {
        "pm_card_visa" | "pm_card_mastercard" | "pm_card_amex" => Some(None),
        "pm_card_chargeDeclined" => Some(Some((
            "card_declined",
            "generic_decline",
            "Your card was declined.",
        ))),
        "pm_card_chargeDeclinedInsufficientFunds" => Some(Some((
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ))),
        _ => None,
    }
}

pub(super) const CURRENCIES: &[&str] = &[
    "usd", "eur", "gbp", "chf", "cad", "aud", "sek", "nok", "dkk", "pln", "jpy",
];

/// `sk_test_****************1234`, as Stripe shows a refused key.
pub(super) fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let prefix: String = chars[..8].iter().collect();
    let suffix: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}{}{suffix}", "*".repeat(chars.len() - 12))
}

/// `$12.34` for dollars, `12.34 EUR` otherwise (`1234 JPY` for zero-decimal currencies).
pub(super) fn format_amount(minor: i64, currency: &str) -> String {
    if currency == "jpy" {
        return format!("{minor} JPY");
    }
    let major = format!("{}.{:02}", minor / 100, minor % 100);
    if currency == "usd" {
        format!("${major}")
    } else {
        format!("{major} {}", currency.to_ascii_uppercase())
    }
}

pub(super) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
