//! Stripe webhook signatures and events. Pure: no IO, the clock is a parameter.
//!
//! `Stripe-Signature: t=1700000000,v1=<hex>[,v1=<hex>...][,v0=<hex>]`: each
//! `v1` is the lowercase hex HMAC-SHA256 of `"{t}.{raw body}"` keyed with the
//! whole `whsec_...` string (not a decoded form of it). Stripe sends several
//! `v1`s while a secret is being rolled, so any one matching is enough; `v0`
//! is a legacy test scheme and is ignored. Compared in constant time.
//!
//! The tolerance is checked in both directions: stripe-python only rejects
//! old timestamps, but a timestamp far in the future is just as much a sign
//! of a replayed or forged request (or of a broken clock worth hearing about).

use hmac::{KeyInit, Mac};
use plugin_api::payment::{Money, PaymentEvent, PaymentEventKind};
use serde::Deserialize;
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a webhook was refused. No variant carries the secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The request had no `Stripe-Signature` header.
    #[error("the request has no Stripe-Signature header; is this really from Stripe?")]
    MissingSignature,
    /// The header could not be read.
    #[error("malformed Stripe-Signature header: {0}")]
    MalformedHeader(&'static str),
    /// The header has no `v1` signature.
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1Signature,
    /// No `v1` signature matches the body and the configured secret.
    #[error(
        "no v1 signature matches the body: the webhook secret is wrong \
         (check `webhook_secret`, it is per endpoint) or the body was altered"
    )]
    SignatureMismatch,
    /// The signature is valid but its timestamp is too far from now.
    #[error(
        "the signature timestamp {timestamp} is {skew} s away from now ({now}), \
         more than the tolerance of {tolerance} s: a replay, or a clock to fix"
    )]
    OutsideTolerance {
        /// The header's `t`.
        timestamp: i64,
        /// The clock's time.
        now: i64,
        /// `|now - timestamp|`.
        skew: i64,
        /// The configured tolerance.
        tolerance: i64,
    },
    /// The signed body is not a Stripe event.
    #[error("the webhook body is not a Stripe event: {0}")]
    InvalidEvent(String),
}

/// Signs `payload` as Stripe does at `timestamp`; returns the header value.
/// For tests and the offline demo.
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    format!(
        "t={timestamp},v1={}",
        signature_hex(payload, secret, timestamp)
    )
}

/// Checks `header` against `payload` and `secret`, with `now` and
/// `tolerance` in seconds.
pub fn verify(
    payload: &[u8],
    header: &str,
    secret: &str,
    tolerance: i64,
    now: i64,
) -> Result<(), WebhookError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(WebhookError::MissingSignature);
    }
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let (name, value) = item
            .trim()
            .split_once('=')
            .ok_or(WebhookError::MalformedHeader("an item is not `name=value`"))?;
        match name {
            "t" if timestamp.is_none() => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| WebhookError::MalformedHeader("`t` is not a Unix timestamp"))?;
                timestamp = Some(t);
            }
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedHeader("no `t=` timestamp"))?;
    if candidates.is_empty() {
        return Err(WebhookError::NoV1Signature);
    }
    let expected = signature_hex(payload, secret, timestamp);
    let matched = candidates
        .iter()
        .fold(subtle::Choice::from(0), |found, candidate| {
            found | expected.as_bytes().ct_eq(candidate.as_bytes())
        });
    if !bool::from(matched) {
        return Err(WebhookError::SignatureMismatch);
    }
    let skew = now.saturating_sub(timestamp).saturating_abs();
    if skew > tolerance {
        return Err(WebhookError::OutsideTolerance {
            timestamp,
            now,
            skew,
            tolerance,
        });
    }
    Ok(())
}

fn signature_hex(payload: &[u8], secret: &str, timestamp: i64) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty MAC would
    // only ever fail to match.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest.iter() {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
    }
    hex
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// Parses a verified event body into the payment category's event.
/// Event types other than the three below become [`PaymentEventKind::Other`].
pub fn parse_event(payload: &[u8]) -> Result<PaymentEvent, WebhookError> {
    let event: Event =
        serde_json::from_slice(payload).map_err(|e| WebhookError::InvalidEvent(e.to_string()))?;
    let object = &event.data.object;
    let text = |key: &str| {
        object
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let money = |key: &str| {
        let amount = object.get(key).and_then(serde_json::Value::as_i64)?;
        Some(Money {
            amount_minor: amount,
            currency: text("currency")?.into(),
        })
    };
    let (kind, payment_id, amount, failure_message) = match event.event_type.as_str() {
        "payment_intent.succeeded" => (
            PaymentEventKind::PaymentSucceeded,
            text("id"),
            // Stripe's PaymentIntent always carries `amount_received`; a
            // hand-written or trimmed test event may not, and then the
            // intent's `amount` is what succeeded (recording 0 would mark
            // a paid invoice as paid for nothing).
            money("amount_received").or_else(|| money("amount")),
            None,
        ),
        "payment_intent.payment_failed" => (
            PaymentEventKind::PaymentFailed,
            text("id"),
            money("amount"),
            object
                .pointer("/last_payment_error/message")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
        ),
        "charge.refunded" => (
            PaymentEventKind::ChargeRefunded,
            text("payment_intent"),
            money("amount_refunded"),
            None,
        ),
        _ => (PaymentEventKind::Other, None, None, None),
    };
    let expected_object = match kind {
        PaymentEventKind::PaymentSucceeded | PaymentEventKind::PaymentFailed => {
            Some("payment_intent")
        }
        PaymentEventKind::ChargeRefunded => Some("charge"),
        PaymentEventKind::Other => None,
    };
    if let Some(expected) = expected_object {
        let found = text("object");
        if found.as_deref() != Some(expected) {
            return Err(WebhookError::InvalidEvent(format!(
                "`{}` carries a `{}` object, expected `{expected}`",
                event.event_type,
                found.as_deref().unwrap_or("missing"),
            )));
        }
    }
    Ok(PaymentEvent {
        id: event.id.into(),
        kind,
        event_type: event.event_type.into(),
        payment_id: payment_id.map(Into::into).into(),
        amount: amount.into(),
        failure_message: failure_message.map(Into::into).into(),
        created: event.created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    const T: i64 = 1_700_000_000;

    fn check(header: &str, now: i64, expected: Result<(), WebhookError>) {
        assert_eq!(
            verify(BODY, header, SECRET, 300, now),
            expected,
            "header: {header}"
        );
    }

    fn good() -> String {
        sign(BODY, SECRET, T)
    }

    fn v1_of(header: &str) -> String {
        header
            .split_once("v1=")
            .map(|(_, s)| s.to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // printf '1700000000.{"id":"evt_1","object":"event"}' | openssl dgst -sha256 -hmac whsec_test_secret
        assert_eq!(
            good(),
            "t=1700000000,v1=0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"
        );
    }

    #[test]
    fn accepts_a_fresh_valid_signature() {
        check(&good(), T, Ok(()));
        check(&good(), T + 300, Ok(()));
        check(&good(), T - 300, Ok(()));
        check(&format!(" {} ", good()), T, Ok(()));
    }

    #[test]
    fn accepts_any_matching_v1_and_ignores_v0() {
        let sig = v1_of(&good());
        check(&format!("t={T},v1={},v1={sig}", "0".repeat(64)), T, Ok(()));
        check(&format!("t={T},v0={},v1={sig}", "f".repeat(64)), T, Ok(()));
        check(&format!("t={T},v1={sig},v0=bad"), T, Ok(()));
        check(&format!("v1={sig},t={T}"), T, Ok(()));
    }

    #[test]
    fn rejects_timestamps_outside_the_tolerance_both_ways() {
        check(
            &good(),
            T + 301,
            Err(WebhookError::OutsideTolerance {
                timestamp: T,
                now: T + 301,
                skew: 301,
                tolerance: 300,
            }),
        );
        check(
            &good(),
            T - 301,
            Err(WebhookError::OutsideTolerance {
                timestamp: T,
                now: T - 301,
                skew: 301,
                tolerance: 300,
            }),
        );
    }

    #[test]
    fn rejects_wrong_secret_altered_body_or_altered_timestamp() {
        assert_eq!(
            verify(BODY, &good(), "whsec_other", 300, T),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            verify(b"{\"id\":\"evt_2\"}", &good(), SECRET, 300, T),
            Err(WebhookError::SignatureMismatch)
        );
        let sig = v1_of(&good());
        check(
            &format!("t={},v1={sig}", T + 1),
            T,
            Err(WebhookError::SignatureMismatch),
        );
        check(
            &format!("t={T},v1={}", sig.to_uppercase()),
            T,
            Err(WebhookError::SignatureMismatch),
        );
        check(
            &format!("t={T},v1={}", &sig[..63]),
            T,
            Err(WebhookError::SignatureMismatch),
        );
        // The secret is the whole `whsec_` string, not the part after the prefix.
        assert_eq!(
            verify(BODY, &sign(BODY, "test_secret", T), SECRET, 300, T),
            Err(WebhookError::SignatureMismatch)
        );
    }

    #[test]
    fn rejects_malformed_headers() {
        check("", T, Err(WebhookError::MissingSignature));
        check("   ", T, Err(WebhookError::MissingSignature));
        check(
            "garbage",
            T,
            Err(WebhookError::MalformedHeader("an item is not `name=value`")),
        );
        check(
            &format!("v1={}", v1_of(&good())),
            T,
            Err(WebhookError::MalformedHeader("no `t=` timestamp")),
        );
        check(
            "t=abc,v1=00",
            T,
            Err(WebhookError::MalformedHeader("`t` is not a Unix timestamp")),
        );
        check(&format!("t={T}"), T, Err(WebhookError::NoV1Signature));
        check(
            &format!("t={T},v0={}", v1_of(&good())),
            T,
            Err(WebhookError::NoV1Signature),
        );
    }

    #[test]
    fn errors_never_show_the_secret_or_a_signature() {
        let sig = v1_of(&good());
        for now in [T, T + 1000] {
            for secret in [SECRET, "whsec_other"] {
                if let Err(e) = verify(BODY, &good(), secret, 300, now) {
                    let text = format!("{e} {e:?}");
                    assert!(!text.contains("whsec_"), "{text}");
                    assert!(!text.contains(&sig), "{text}");
                }
            }
        }
    }

    fn event(event_type: &str, object: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "evt_123",
            "object": "event",
            "type": event_type,
            "created": 1_700_000_123,
            "livemode": false,
            "data": { "object": object },
        }))
        .unwrap_or_default()
    }

    fn check_event(body: &[u8], expected: Result<PaymentEvent, WebhookError>) {
        assert_eq!(parse_event(body), expected);
    }

    fn expected(
        kind: PaymentEventKind,
        event_type: &str,
        payment_id: Option<&str>,
        amount: Option<(i64, &str)>,
        failure: Option<&str>,
    ) -> Result<PaymentEvent, WebhookError> {
        Ok(PaymentEvent {
            id: "evt_123".into(),
            kind,
            event_type: event_type.into(),
            payment_id: payment_id.map(Into::into).into(),
            amount: amount
                .map(|(amount_minor, currency)| Money {
                    amount_minor,
                    currency: currency.into(),
                })
                .into(),
            failure_message: failure.map(Into::into).into(),
            created: 1_700_000_123,
        })
    }

    #[test]
    fn parses_the_three_payment_events() {
        check_event(
            &event(
                "payment_intent.succeeded",
                serde_json::json!({"id": "pi_1", "object": "payment_intent", "amount": 2000, "amount_received": 1500, "currency": "usd"}),
            ),
            expected(
                PaymentEventKind::PaymentSucceeded,
                "payment_intent.succeeded",
                Some("pi_1"),
                Some((1500, "usd")),
                None,
            ),
        );
        check_event(
            &event(
                "payment_intent.payment_failed",
                serde_json::json!({"id": "pi_2", "object": "payment_intent", "amount": 2000, "currency": "eur",
                    "last_payment_error": {"code": "card_declined", "message": "Your card was declined."}}),
            ),
            expected(
                PaymentEventKind::PaymentFailed,
                "payment_intent.payment_failed",
                Some("pi_2"),
                Some((2000, "eur")),
                Some("Your card was declined."),
            ),
        );
        check_event(
            &event(
                "charge.refunded",
                serde_json::json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_3", "amount": 2000, "amount_refunded": 500, "currency": "usd"}),
            ),
            expected(
                PaymentEventKind::ChargeRefunded,
                "charge.refunded",
                Some("pi_3"),
                Some((500, "usd")),
                None,
            ),
        );
    }

    /// New-user trial: a `payment_intent.succeeded` without
    /// `amount_received` recorded amount 0; the intent's `amount` is used.
    #[test]
    fn a_succeeded_intent_without_amount_received_falls_back_to_its_amount() {
        check_event(
            &event(
                "payment_intent.succeeded",
                serde_json::json!({"id": "pi_4", "object": "payment_intent", "amount": 4999, "currency": "usd"}),
            ),
            expected(
                PaymentEventKind::PaymentSucceeded,
                "payment_intent.succeeded",
                Some("pi_4"),
                Some((4999, "usd")),
                None,
            ),
        );
    }

    #[test]
    fn other_event_types_are_kept_as_other() {
        check_event(
            &event(
                "customer.created",
                serde_json::json!({"id": "cus_1", "object": "customer"}),
            ),
            expected(
                PaymentEventKind::Other,
                "customer.created",
                None,
                None,
                None,
            ),
        );
    }

    #[test]
    fn rejects_bodies_that_are_not_events() {
        assert!(matches!(
            parse_event(b"not json"),
            Err(WebhookError::InvalidEvent(_))
        ));
        assert!(matches!(
            parse_event(br#"{"id":"evt_1"}"#),
            Err(WebhookError::InvalidEvent(_))
        ));
        check_event(
            &event(
                "charge.refunded",
                serde_json::json!({"id": "pi_1", "object": "payment_intent"}),
            ),
            Err(WebhookError::InvalidEvent(
                "`charge.refunded` carries a `payment_intent` object, expected `charge`".into(),
            )),
        );
    }
}
