//! The four Stripe endpoints the plugin calls: their request parameters,
//! built from the payment category's requests, and their answers, parsed
//! into the category's types. Pure: no IO.

use plugin_api::payment::{
    CapturePayment, ConfirmPayment, CreatePayment, Money, PaymentRecord, PaymentStatus, Refund,
    RefundRequest, RefundStatus,
};
use plugin_api::{Error, Result};
use serde::Deserialize;

use crate::form::{Params, Value};

/// `POST /v1/payment_intents`.
pub(crate) fn create_params(request: &CreatePayment, payment_method_types: &[String]) -> Params {
    let metadata = request
        .metadata
        .iter()
        .map(|kv| (kv.name.to_string(), Value::str(kv.value.as_str())))
        .collect();
    vec![
        ("amount".into(), Value::Int(request.amount.amount_minor)),
        (
            "currency".into(),
            Value::str(request.amount.currency.to_lowercase()),
        ),
        (
            "customer".into(),
            Value::opt_str(request.customer.as_ref().into_option().map(|c| c.as_str())),
        ),
        (
            "payment_method".into(),
            Value::opt_str(
                request
                    .payment_method
                    .as_ref()
                    .into_option()
                    .map(|p| p.as_str()),
            ),
        ),
        (
            "description".into(),
            Value::opt_str(
                request
                    .description
                    .as_ref()
                    .into_option()
                    .map(|d| d.as_str()),
            ),
        ),
        // Stripe's default (`automatic`) is left implicit, as the SDKs do.
        (
            "capture_method".into(),
            if request.manual_capture {
                Value::str("manual")
            } else {
                Value::Absent
            },
        ),
        (
            "confirm".into(),
            if request.confirm {
                Value::Bool(true)
            } else {
                Value::Absent
            },
        ),
        ("metadata".into(), Value::Map(metadata)),
        // Explicit types: since API 2023-08-16 a PaymentIntent without them
        // takes the Dashboard's methods, and confirming then needs a return_url.
        (
            "payment_method_types".into(),
            Value::List(payment_method_types.iter().map(Value::str).collect()),
        ),
    ]
}

/// `POST /v1/payment_intents/{id}/confirm`.
pub(crate) fn confirm_params(request: &ConfirmPayment) -> Params {
    vec![(
        "payment_method".into(),
        Value::opt_str(
            request
                .payment_method
                .as_ref()
                .into_option()
                .map(|p| p.as_str()),
        ),
    )]
}

/// `POST /v1/payment_intents/{id}/capture`.
pub(crate) fn capture_params(request: &CapturePayment) -> Params {
    vec![(
        "amount_to_capture".into(),
        request
            .amount_minor
            .into_option()
            .map_or(Value::Absent, Value::Int),
    )]
}

/// `POST /v1/refunds`.
pub(crate) fn refund_params(request: &RefundRequest) -> Params {
    vec![
        (
            "payment_intent".into(),
            Value::str(request.payment_id.as_str()),
        ),
        (
            "amount".into(),
            request
                .amount_minor
                .into_option()
                .map_or(Value::Absent, Value::Int),
        ),
        (
            "reason".into(),
            Value::opt_str(request.reason.as_ref().into_option().map(|r| r.as_str())),
        ),
    ]
}

/// The path of an endpoint on one PaymentIntent, refusing ids that could
/// leave the path segment.
pub(crate) fn payment_intent_path(id: &str, action: &str) -> Result<String> {
    let well_formed = id.starts_with("pi_")
        && id.len() > 3
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err(Error::invalid_request(format!(
            "`{id}` is not a Stripe PaymentIntent id (`pi_` followed by letters and digits)"
        )));
    }
    Ok(format!("/v1/payment_intents/{id}/{action}"))
}

#[derive(Deserialize)]
struct PaymentIntentJson {
    id: String,
    object: String,
    status: String,
    amount: i64,
    currency: String,
    #[serde(default)]
    amount_received: i64,
    #[serde(default)]
    amount_capturable: i64,
    #[serde(default)]
    latest_charge: Option<serde_json::Value>,
}

/// A PaymentIntent object.
pub(crate) fn payment_from_json(value: serde_json::Value) -> Result<PaymentRecord> {
    let pi: PaymentIntentJson = serde_json::from_value(value).map_err(|e| {
        Error::provider(
            "invalid_response",
            format!("not a PaymentIntent: {e}"),
            false,
        )
    })?;
    if pi.object != "payment_intent" {
        return Err(Error::provider(
            "invalid_response",
            format!("expected a payment_intent object, got `{}`", pi.object),
            false,
        ));
    }
    // `latest_charge` is an id, or the charge itself when expanded.
    let latest_charge = match pi.latest_charge {
        Some(serde_json::Value::String(id)) => Some(id),
        Some(serde_json::Value::Object(charge)) => charge
            .get("id")
            .and_then(|id| id.as_str())
            .map(str::to_owned),
        _ => None,
    };
    Ok(PaymentRecord {
        id: pi.id.into(),
        status: PaymentStatus::from_word(&pi.status),
        amount: Money {
            amount_minor: pi.amount,
            currency: pi.currency.into(),
        },
        amount_received: pi.amount_received,
        amount_capturable: pi.amount_capturable,
        latest_charge: latest_charge.map(Into::into).into(),
    })
}

#[derive(Deserialize)]
struct RefundJson {
    id: String,
    object: String,
    amount: i64,
    currency: String,
    #[serde(default)]
    payment_intent: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// A Refund object; `payment_id` fills in when Stripe leaves `payment_intent` out.
pub(crate) fn refund_from_json(value: serde_json::Value, payment_id: &str) -> Result<Refund> {
    let refund: RefundJson = serde_json::from_value(value)
        .map_err(|e| Error::provider("invalid_response", format!("not a Refund: {e}"), false))?;
    if refund.object != "refund" {
        return Err(Error::provider(
            "invalid_response",
            format!("expected a refund object, got `{}`", refund.object),
            false,
        ));
    }
    let status = match refund.status.as_deref() {
        Some("pending") => RefundStatus::Pending,
        Some("succeeded") => RefundStatus::Succeeded,
        Some("failed") => RefundStatus::Failed,
        Some("canceled") => RefundStatus::Canceled,
        Some("requires_action") => RefundStatus::RequiresAction,
        _ => RefundStatus::Unknown,
    };
    Ok(Refund {
        id: refund.id.into(),
        payment_id: refund
            .payment_intent
            .unwrap_or_else(|| payment_id.to_owned())
            .into(),
        amount: Money {
            amount_minor: refund.amount,
            currency: refund.currency.into(),
        },
        status,
    })
}

#[cfg(test)]
mod tests {
    use plugin_api::KeyValue;

    use super::*;
    use crate::form::encode;

    fn create(confirm: bool, manual: bool) -> CreatePayment {
        CreatePayment {
            amount: Money {
                amount_minor: 1999,
                currency: "USD".into(),
            },
            customer: None.into(),
            payment_method: Some("pm_card_visa".into()).into(),
            confirm,
            manual_capture: manual,
            description: Some("Fibre 1 Gbit, May".into()).into(),
            metadata: vec![
                KeyValue::new("invoice", "inv_42"),
                KeyValue::new("tenant", "acme"),
            ]
            .into(),
            idempotency_key: "k1".into(),
        }
    }

    #[test]
    fn create_params_on_the_wire() {
        let check = |request: CreatePayment, expected: &str| {
            assert_eq!(encode(&create_params(&request, &["card".into()])), expected);
        };
        check(
            create(true, true),
            "amount=1999&currency=usd&payment_method=pm_card_visa&description=Fibre+1+Gbit%2C+May\
             &capture_method=manual&confirm=true&metadata[invoice]=inv_42&metadata[tenant]=acme\
             &payment_method_types[0]=card",
        );
        check(
            create(false, false),
            "amount=1999&currency=usd&payment_method=pm_card_visa&description=Fibre+1+Gbit%2C+May\
             &metadata[invoice]=inv_42&metadata[tenant]=acme&payment_method_types[0]=card",
        );
    }

    #[test]
    fn other_params_on_the_wire() {
        let confirm = ConfirmPayment {
            payment_id: "pi_1".into(),
            payment_method: Some("pm_card_visa".into()).into(),
            idempotency_key: "k".into(),
        };
        assert_eq!(
            encode(&confirm_params(&confirm)),
            "payment_method=pm_card_visa"
        );
        let capture = CapturePayment {
            payment_id: "pi_1".into(),
            amount_minor: Some(500).into(),
            idempotency_key: "k".into(),
        };
        assert_eq!(encode(&capture_params(&capture)), "amount_to_capture=500");
        let capture_all = CapturePayment {
            amount_minor: None.into(),
            ..capture
        };
        assert_eq!(encode(&capture_params(&capture_all)), "");
        let refund = RefundRequest {
            payment_id: "pi_1".into(),
            amount_minor: Some(300).into(),
            reason: Some("requested_by_customer".into()).into(),
            idempotency_key: "k".into(),
        };
        assert_eq!(
            encode(&refund_params(&refund)),
            "payment_intent=pi_1&amount=300&reason=requested_by_customer"
        );
    }

    #[test]
    fn payment_intent_paths_refuse_odd_ids() {
        assert_eq!(
            payment_intent_path("pi_3Abc", "capture").ok(),
            Some("/v1/payment_intents/pi_3Abc/capture".into())
        );
        for bad in [
            "",
            "pi_",
            "ch_1",
            "pi_1/../../v1/refunds",
            "pi_1?x=1",
            "pi_1 2",
        ] {
            assert!(payment_intent_path(bad, "confirm").is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_payment_intents() {
        let payment = payment_from_json(serde_json::json!({
            "id": "pi_1", "object": "payment_intent", "status": "requires_capture", "amount": 2000,
            "currency": "usd", "amount_received": 0, "amount_capturable": 2000, "latest_charge": "ch_1",
        }));
        assert_eq!(
            payment.ok(),
            Some(PaymentRecord {
                id: "pi_1".into(),
                status: PaymentStatus::RequiresCapture,
                amount: Money {
                    amount_minor: 2000,
                    currency: "usd".into()
                },
                amount_received: 0,
                amount_capturable: 2000,
                latest_charge: Some("ch_1".into()).into(),
            })
        );
        let expanded = payment_from_json(serde_json::json!({
            "id": "pi_1", "object": "payment_intent", "status": "brand_new", "amount": 1, "currency": "eur",
            "latest_charge": {"id": "ch_9", "object": "charge"},
        }));
        let expanded = expanded.ok();
        assert_eq!(
            expanded.as_ref().map(|p| p.status),
            Some(PaymentStatus::Unknown)
        );
        assert_eq!(
            expanded.map(|p| p.latest_charge),
            Some(Some("ch_9".into()).into())
        );
        assert!(payment_from_json(serde_json::json!({"id": "re_1", "object": "refund", "status": "x", "amount": 1, "currency": "usd"})).is_err());
        assert!(payment_from_json(serde_json::json!({"id": "pi_1"})).is_err());
    }

    #[test]
    fn parses_refunds() {
        let refund = refund_from_json(
            serde_json::json!({"id": "re_1", "object": "refund", "amount": 500, "currency": "usd", "payment_intent": "pi_1", "status": "succeeded"}),
            "pi_other",
        );
        assert_eq!(
            refund.ok(),
            Some(Refund {
                id: "re_1".into(),
                payment_id: "pi_1".into(),
                amount: Money {
                    amount_minor: 500,
                    currency: "usd".into()
                },
                status: RefundStatus::Succeeded,
            })
        );
        let pending = refund_from_json(
            serde_json::json!({"id": "re_2", "object": "refund", "amount": 1, "currency": "usd", "status": "pending"}),
            "pi_7",
        )
        .ok();
        assert_eq!(
            pending.as_ref().map(|r| (r.payment_id.as_str(), r.status)),
            Some(("pi_7", RefundStatus::Pending))
        );
    }
}
