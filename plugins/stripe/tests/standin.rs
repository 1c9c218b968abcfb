//! The stripe plugin driven in-process through `Plugin`, `Payment` and
//! `Hooks` against the Stripe stand-in (`plugkit_standins::stripe`): payment
//! flows, typed errors, idempotency, retries and webhooks. No test sleeps:
//! the plugin's sleeper records the backoff instead, and its clock is fixed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use parking_lot::Mutex;
use plugin_api::payment::{
    CapturePayment, ConfirmPayment, CreatePayment, Money, Payment, PaymentEvent, PaymentEventKind,
    PaymentStatus, RefundRequest, RefundStatus,
};
use plugin_api::{Error, KeyValue, Plugin, TenantConfig, WebhookRequest};
use plugkit_standins::stripe::{StripeStandIn, StripeStandInConfig};
use plugkit_stripe::{Environment, StripePlugin};

const TENANT: &str = "acme";
/// The fixed time the plugin's clock shows, and webhooks are signed at.
const NOW: i64 = 1_750_000_000;

struct Fixture {
    standin: StripeStandIn,
    plugin: StripePlugin,
    sleeps: Arc<Mutex<Vec<Duration>>>,
    clock: Arc<AtomicI64>,
}

/// A stand-in and a plugin with tenant `acme` pointed at it; `overrides`
/// replace keys of the tenant's configuration.
fn fixture(overrides: serde_json::Value) -> Result<Fixture> {
    let standin = StripeStandIn::start(StripeStandInConfig::default())?;
    let sleeps = Arc::new(Mutex::new(Vec::new()));
    let clock = Arc::new(AtomicI64::new(NOW));
    let env = Environment::system()
        .with_sleeper({
            let sleeps = Arc::clone(&sleeps);
            move |d| sleeps.lock().push(d)
        })
        .with_clock({
            let clock = Arc::clone(&clock);
            move || clock.load(Ordering::SeqCst)
        });
    let plugin = StripePlugin::with_environment(env);
    let mut config = serde_json::json!({
        "secret_key": standin.secret_key(),
        "webhook_secret": standin.webhook_secret(),
        "base_url": standin.base_url(),
        "api_version": "2024-06-20",
        "timeout_ms": 10_000,
        "max_retries": 3,
        "max_amount_minor": 1_000_000,
    });
    if let (Some(config), Some(overrides)) = (config.as_object_mut(), overrides.as_object()) {
        for (key, value) in overrides {
            config.insert(key.clone(), value.clone());
        }
    }
    plugin.activate(&TenantConfig::new(TENANT, config))?;
    Ok(Fixture {
        standin,
        plugin,
        sleeps,
        clock,
    })
}

fn create(
    amount: i64,
    payment_method: &str,
    confirm: bool,
    manual: bool,
    key: &str,
) -> CreatePayment {
    CreatePayment {
        amount: Money {
            amount_minor: amount,
            currency: "usd".into(),
        },
        customer: None.into(),
        payment_method: Some(payment_method.into()).into(),
        confirm,
        manual_capture: manual,
        description: None.into(),
        metadata: vec![KeyValue::new("invoice", "inv_1")].into(),
        idempotency_key: key.into(),
    }
}

fn capture(id: &str, amount: Option<i64>, key: &str) -> CapturePayment {
    CapturePayment {
        payment_id: id.into(),
        amount_minor: amount.into(),
        idempotency_key: key.into(),
    }
}

fn refund(id: &str, amount: Option<i64>, key: &str) -> RefundRequest {
    RefundRequest {
        payment_id: id.into(),
        amount_minor: amount.into(),
        reason: Some("requested_by_customer".into()).into(),
        idempotency_key: key.into(),
    }
}

/// The Stripe error code of a provider error, or a description of what came instead.
fn provider_code(error: &Error) -> String {
    match error {
        Error::Provider { code, .. } => code.to_string(),
        other => format!("not a provider error: {other}"),
    }
}

#[test]
fn create_confirm_and_capture_take_a_manual_payment() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let created = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", false, true, "create-1"),
    )?;
    assert_eq!(created.status, PaymentStatus::RequiresConfirmation);

    let confirmed = f.plugin.confirm_payment(
        TENANT,
        ConfirmPayment {
            payment_id: created.id.clone(),
            payment_method: None.into(),
            idempotency_key: "confirm-1".into(),
        },
    )?;
    assert_eq!(confirmed.status, PaymentStatus::RequiresCapture);
    assert_eq!(confirmed.amount_capturable, 2000);
    assert!(confirmed.latest_charge.is_some());

    let captured = f
        .plugin
        .capture_payment(TENANT, capture(&created.id, None, "capture-1"))?;
    assert_eq!(captured.status, PaymentStatus::Succeeded);
    assert_eq!(
        (captured.amount_received, captured.amount_capturable),
        (2000, 0)
    );
    assert_eq!(
        captured.amount,
        Money {
            amount_minor: 2000,
            currency: "usd".into()
        }
    );

    let requests = f.standin.requests();
    let sent: Vec<_> = requests
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.path.clone(),
                r.header("idempotency-key"),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            (
                "POST",
                "/v1/payment_intents".to_owned(),
                Some("create-1"),
                200
            ),
            (
                "POST",
                format!("/v1/payment_intents/{}/confirm", created.id),
                Some("confirm-1"),
                200
            ),
            (
                "POST",
                format!("/v1/payment_intents/{}/capture", created.id),
                Some("capture-1"),
                200
            ),
        ]
    );
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {}", f.standin.secret_key()).as_str())
        );
        assert_eq!(request.header("stripe-version"), Some("2024-06-20"));
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }
    assert_eq!(
        requests[0].body,
        "amount=2000&currency=usd&payment_method=pm_card_visa&capture_method=manual\
         &metadata[invoice]=inv_1&payment_method_types[0]=card"
    );
    Ok(())
}

#[test]
fn create_with_confirm_takes_an_automatic_payment_at_once() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let paid = f
        .plugin
        .create_payment(TENANT, create(4999, "pm_card_visa", true, false, "pay-1"))?;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(paid.amount_received, 4999);
    let held = f
        .standin
        .payment_intent(&paid.id)
        .context("the stand-in has the intent")?;
    assert_eq!(held["metadata"]["invoice"], "inv_1");
    assert_eq!(held["payment_method_types"], serde_json::json!(["card"]));
    Ok(())
}

#[test]
fn manual_capture_of_part_releases_the_rest() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let authorized = f
        .plugin
        .create_payment(TENANT, create(2000, "pm_card_visa", true, true, "auth-1"))?;
    assert_eq!(authorized.status, PaymentStatus::RequiresCapture);

    let too_much = f
        .plugin
        .capture_payment(TENANT, capture(&authorized.id, Some(2001), "cap-too-much"));
    assert_eq!(
        too_much.as_ref().map_err(provider_code).err().as_deref(),
        Some("amount_too_large")
    );

    let captured = f
        .plugin
        .capture_payment(TENANT, capture(&authorized.id, Some(1200), "cap-part"))?;
    assert_eq!(captured.status, PaymentStatus::Succeeded);
    assert_eq!(
        (captured.amount_received, captured.amount_capturable),
        (1200, 0)
    );

    let again = f
        .plugin
        .capture_payment(TENANT, capture(&authorized.id, Some(100), "cap-again"));
    assert_eq!(
        again.as_ref().map_err(provider_code).err().as_deref(),
        Some("payment_intent_unexpected_state")
    );
    Ok(())
}

#[test]
fn refunds_in_part_and_in_full_never_exceed_what_was_received() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let paid = f
        .plugin
        .create_payment(TENANT, create(2000, "pm_card_visa", true, false, "pay-1"))?;

    let part = f
        .plugin
        .refund(TENANT, refund(&paid.id, Some(500), "refund-1"))?;
    assert_eq!(part.payment_id, paid.id);
    assert_eq!(
        part.amount,
        Money {
            amount_minor: 500,
            currency: "usd".into()
        }
    );
    assert_eq!(part.status, RefundStatus::Succeeded);
    assert!(part.id.starts_with("re_"));

    let over = f
        .plugin
        .refund(TENANT, refund(&paid.id, Some(1501), "refund-2"));
    let over = over
        .err()
        .context("refunding more than is left must fail")?;
    assert_eq!(provider_code(&over), "amount_too_large");
    assert!(
        over.to_string().contains(
            "Refund amount ($15.01) is greater than unrefunded amount on charge ($15.00)"
        ),
        "{over}"
    );

    let rest = f
        .plugin
        .refund(TENANT, refund(&paid.id, None, "refund-3"))?;
    assert_eq!(rest.amount.amount_minor, 1500);

    let nothing_left = f.plugin.refund(TENANT, refund(&paid.id, None, "refund-4"));
    assert_eq!(
        nothing_left
            .as_ref()
            .map_err(provider_code)
            .err()
            .as_deref(),
        Some("charge_already_refunded")
    );
    Ok(())
}

#[test]
fn a_declined_card_is_a_typed_error_and_is_not_retried() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let declined = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_chargeDeclined", true, false, "pay-declined"),
    );
    match declined {
        Err(Error::Provider {
            code,
            message,
            retryable,
        }) => {
            assert_eq!(code.as_str(), "card_declined");
            assert!(!retryable);
            assert!(
                message.contains("decline_code generic_decline"),
                "{message}"
            );
            assert!(message.contains("Your card was declined."), "{message}");
        }
        other => bail!("expected a card_declined provider error, got {other:?}"),
    }
    assert_eq!(f.standin.requests().len(), 1);
    assert!(f.sleeps.lock().is_empty());
    Ok(())
}

#[test]
fn a_wrong_secret_key_is_a_config_error_that_never_shows_the_key() -> Result<()> {
    let wrong_key = "sk_test_this_is_not_the_key_9876";
    let f = fixture(serde_json::json!({ "secret_key": wrong_key }))?;
    let refused = f
        .plugin
        .create_payment(TENANT, create(2000, "pm_card_visa", true, false, "pay-1"));
    let error = refused.err().context("a wrong key must be refused")?;
    assert!(
        matches!(&error, Error::InvalidConfig { key, .. } if key.as_str() == "secret_key"),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("sk_test"), "{shown}");
    assert!(!shown.contains("9876"), "{shown}");
    // Stripe's own 401 body echoes part of the key; the plugin dropped it.
    let requests = f.standin.requests();
    assert_eq!(requests.iter().map(|r| r.status).collect::<Vec<_>>(), [401]);
    Ok(())
}

#[test]
fn replaying_an_idempotency_key_returns_the_same_payment_intent() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let first = f
        .plugin
        .create_payment(TENANT, create(2000, "pm_card_visa", true, false, "order-7"))?;
    let second = f
        .plugin
        .create_payment(TENANT, create(2000, "pm_card_visa", true, false, "order-7"))?;
    assert_eq!(second, first);
    let replayed: Vec<_> = f.standin.requests().iter().map(|r| r.replayed).collect();
    assert_eq!(replayed, [false, true]);

    let conflict = f
        .plugin
        .create_payment(TENANT, create(2500, "pm_card_visa", true, false, "order-7"));
    match conflict {
        Err(Error::Provider {
            code,
            message,
            retryable,
        }) => {
            assert_eq!(code.as_str(), "idempotency_error");
            assert!(!retryable);
            assert!(message.contains("same parameters"), "{message}");
        }
        other => bail!("expected an idempotency conflict, got {other:?}"),
    }
    assert_eq!(
        f.standin.requests().len(),
        3,
        "a 400 idempotency_error is not retried"
    );
    Ok(())
}

#[test]
fn rate_limits_and_server_errors_are_retried_with_the_same_key_and_body() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    f.standin.fail_next(1, 429);
    f.standin.fail_next(1, 500);
    f.standin.fail_next(1, 503);
    let paid = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", true, false, "order-retry"),
    )?;
    assert_eq!(paid.status, PaymentStatus::Succeeded);

    let requests = f.standin.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 500, 503, 200]
    );
    for request in &requests {
        assert_eq!(request.header("idempotency-key"), Some("order-retry"));
        assert_eq!(request.body, requests[0].body);
    }
    // Backoff: 0.5 s doubling, scaled by a jitter factor in [0.5, 1], never under 0.5 s.
    let sleeps = f.sleeps.lock().clone();
    assert_eq!(sleeps.len(), 3);
    let bounds = [(500, 500), (500, 1000), (1000, 2000)];
    for (slept, (low, high)) in sleeps.iter().zip(bounds) {
        let ms = slept.as_millis();
        assert!(
            (low..=high).contains(&ms),
            "slept {ms} ms, expected {low}..={high}"
        );
    }
    Ok(())
}

// Issue 14, item 6: a `Retry-After` given as an HTTP-date was ignored and
// the request retried after the bare backoff.
#[test]
fn a_retry_after_in_seconds_or_as_an_http_date_is_a_floor_on_the_wait() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    f.standin
        .fail_next_with_headers(1, 429, &[("Retry-After", "3")]);
    f.standin.fail_next_with_headers(
        1,
        503,
        &[
            ("Date", "Mon, 30 Nov 2026 17:00:00 GMT"),
            ("Retry-After", "Mon, 30 Nov 2026 17:00:04 GMT"),
        ],
    );
    // A date already past asks for no more than the backoff.
    f.standin.fail_next_with_headers(
        1,
        500,
        &[
            ("Date", "Mon, 30 Nov 2026 17:00:00 GMT"),
            ("Retry-After", "Mon, 30 Nov 2026 16:00:00 GMT"),
        ],
    );
    let paid = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", true, false, "order-retry-after"),
    )?;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    let sleeps = f.sleeps.lock().clone();
    assert_eq!(sleeps.len(), 3, "{sleeps:?}");
    assert_eq!(
        sleeps[..2],
        [Duration::from_secs(3), Duration::from_secs(4)]
    );
    assert!(
        (1000..=2000).contains(&sleeps[2].as_millis()),
        "third wait is the backoff alone: {sleeps:?}"
    );
    Ok(())
}

#[test]
fn a_retry_after_longer_than_a_minute_ends_the_retries_with_a_retryable_error() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    f.standin.fail_next_with_headers(
        1,
        429,
        &[
            ("Date", "Mon, 30 Nov 2026 17:00:00 GMT"),
            ("Retry-After", "Mon, 30 Nov 2026 17:05:00 GMT"),
        ],
    );
    let failed = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", true, false, "order-later"),
    );
    match failed {
        Err(Error::Provider { retryable, .. }) => assert!(retryable),
        other => bail!("expected a retryable provider error, got {other:?}"),
    }
    assert_eq!(f.standin.requests().len(), 1);
    assert!(f.sleeps.lock().is_empty());
    Ok(())
}

#[test]
fn a_request_in_flight_conflict_409_is_retried() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    f.standin.fail_next(1, 409);
    let paid = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", true, false, "order-409"),
    )?;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(
        f.standin
            .requests()
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [409, 200]
    );
    Ok(())
}

#[test]
fn retries_stop_after_max_retries_with_a_retryable_error() -> Result<()> {
    let f = fixture(serde_json::json!({ "max_retries": 2 }))?;
    f.standin.fail_next(3, 500);
    let failed = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", true, false, "order-down"),
    );
    match failed {
        Err(Error::Provider {
            code,
            message,
            retryable,
        }) => {
            assert_eq!(code.as_str(), "api_error");
            assert!(retryable);
            assert!(message.contains("after 3 attempt(s)"), "{message}");
        }
        other => bail!("expected an api_error, got {other:?}"),
    }
    assert_eq!(f.standin.requests().len(), 3);
    assert_eq!(f.sleeps.lock().len(), 2);
    Ok(())
}

#[test]
fn bad_requests_are_not_retried() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let mut request = create(2000, "pm_card_visa", true, false, "order-xyz");
    request.amount.currency = "xyz".into();
    let refused = f.plugin.create_payment(TENANT, request);
    match refused {
        Err(Error::Provider {
            code,
            message,
            retryable,
        }) => {
            assert_eq!(code.as_str(), "invalid_request_error");
            assert!(!retryable);
            assert!(
                message.contains("HTTP 400") && message.contains("param currency"),
                "{message}"
            );
        }
        other => bail!("expected an invalid request, got {other:?}"),
    }
    let unknown = f.plugin.confirm_payment(
        TENANT,
        ConfirmPayment {
            payment_id: "pi_doesnotexist".into(),
            payment_method: None.into(),
            idempotency_key: "confirm-missing".into(),
        },
    );
    assert!(
        matches!(unknown, Err(Error::NotFound { .. })),
        "{unknown:?}"
    );
    assert_eq!(
        f.standin
            .requests()
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [400, 404]
    );
    assert!(f.sleeps.lock().is_empty());
    Ok(())
}

#[test]
fn amounts_over_the_tenant_limit_never_reach_stripe() -> Result<()> {
    let f = fixture(serde_json::json!({ "max_amount_minor": 10_000 }))?;
    let refused = f
        .plugin
        .create_payment(TENANT, create(10_001, "pm_card_visa", true, false, "big"));
    assert!(
        matches!(refused, Err(Error::InvalidRequest { .. })),
        "{refused:?}"
    );
    let refused = f
        .plugin
        .create_payment(TENANT, create(0, "pm_card_visa", true, false, "zero"));
    assert!(
        matches!(refused, Err(Error::InvalidRequest { .. })),
        "{refused:?}"
    );
    assert!(f.standin.requests().is_empty());
    Ok(())
}

/// The body and signature of the stand-in's event `event_type` about `payment_id`.
fn webhook(
    f: &Fixture,
    event_type: &str,
    payment_id: &str,
    timestamp: i64,
) -> Result<WebhookRequest> {
    let event = f
        .standin
        .events()
        .into_iter()
        .find(|e| e.event_type == event_type && e.body.contains(payment_id))
        .with_context(|| format!("the stand-in sent no {event_type} for {payment_id}"))?;
    Ok(WebhookRequest {
        url: "https://isp.example/webhooks/stripe".into(),
        params: Default::default(),
        signature: f.standin.signature_header(&event.body, timestamp).into(),
        body: event.body.into_bytes().into(),
    })
}

fn check_event(event: &PaymentEvent, kind: PaymentEventKind, payment_id: &str, amount: i64) {
    assert_eq!(event.kind, kind);
    assert!(event.id.starts_with("evt_"));
    assert_eq!(
        event.payment_id.as_ref().map(|p| p.as_str()).into_option(),
        Some(payment_id)
    );
    assert_eq!(
        event.amount.as_ref().map(|m| m.amount_minor).into_option(),
        Some(amount)
    );
}

#[test]
fn webhooks_for_the_three_event_types_verify_and_parse() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let paid = f
        .plugin
        .create_payment(TENANT, create(2000, "pm_card_visa", true, false, "pay-ok"))?;
    f.plugin
        .refund(TENANT, refund(&paid.id, Some(700), "refund-part"))?;
    let declined = f.plugin.create_payment(
        TENANT,
        create(3000, "pm_card_chargeDeclined", true, false, "pay-ko"),
    );
    assert!(declined.is_err());
    let failed_id = f
        .standin
        .events()
        .into_iter()
        .find(|e| e.event_type == "payment_intent.payment_failed")
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.body).ok())
        .and_then(|body| body["data"]["object"]["id"].as_str().map(str::to_owned))
        .context("the stand-in sent payment_intent.payment_failed")?;

    let succeeded = f.plugin.parse_webhook(
        TENANT,
        webhook(&f, "payment_intent.succeeded", &paid.id, NOW)?,
    )?;
    check_event(
        &succeeded,
        PaymentEventKind::PaymentSucceeded,
        &paid.id,
        2000,
    );

    let refunded = f
        .plugin
        .parse_webhook(TENANT, webhook(&f, "charge.refunded", &paid.id, NOW)?)?;
    check_event(&refunded, PaymentEventKind::ChargeRefunded, &paid.id, 700);

    let failed = f.plugin.parse_webhook(
        TENANT,
        webhook(&f, "payment_intent.payment_failed", &failed_id, NOW)?,
    )?;
    check_event(&failed, PaymentEventKind::PaymentFailed, &failed_id, 3000);
    assert_eq!(
        failed
            .failure_message
            .as_ref()
            .map(|m| m.as_str())
            .into_option(),
        Some("Your card was declined.")
    );

    let created = f.plugin.parse_webhook(
        TENANT,
        webhook(&f, "payment_intent.created", &paid.id, NOW)?,
    )?;
    assert_eq!(created.kind, PaymentEventKind::Other);
    Ok(())
}

/// Accepts one HTTP request on `listener`, answers 200, and returns the
/// `Stripe-Signature` header and the body.
fn receive_one(listener: &TcpListener) -> Result<(String, Vec<u8>)> {
    let (mut stream, _) = listener.accept()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("POST ") {
        bail!("expected a POST, got {line:?}");
    }
    let (mut signature, mut length) = (String::new(), 0usize);
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "stripe-signature" => signature = value.trim().to_owned(),
                "content-length" => length = value.trim().parse()?,
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")?;
    Ok((signature, body))
}

#[test]
fn a_webhook_delivered_over_http_by_the_stand_in_verifies() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    let paid = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", true, false, "pay-http"),
    )?;
    let event = f
        .standin
        .events()
        .into_iter()
        .find(|e| e.event_type == "payment_intent.succeeded")
        .context("the stand-in sent payment_intent.succeeded")?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/webhooks/stripe", listener.local_addr()?);
    let (status, (signature, body)) = std::thread::scope(|scope| -> Result<_> {
        let receiver = scope.spawn(|| receive_one(&listener));
        let status = f.standin.deliver_event(&event.id, &url, NOW)?;
        let received = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
        Ok((status, received))
    })?;
    assert_eq!(status, 200);
    let request = WebhookRequest {
        url: url.as_str().into(),
        params: Default::default(),
        body: body.into(),
        signature: signature.into(),
    };
    let parsed = f.plugin.parse_webhook(TENANT, request.clone())?;
    check_event(&parsed, PaymentEventKind::PaymentSucceeded, &paid.id, 2000);
    Ok(())
}

#[test]
fn an_expired_webhook_timestamp_is_refused() -> Result<()> {
    let f = fixture(serde_json::json!({ "webhook_tolerance_secs": 300 }))?;
    let paid = f
        .plugin
        .create_payment(TENANT, create(2000, "pm_card_visa", true, false, "pay-old"))?;
    let request = webhook(&f, "payment_intent.succeeded", &paid.id, NOW - 301)?;
    let refused = f.plugin.parse_webhook(TENANT, request.clone());
    let error = refused.err().context("a stale signature must be refused")?;
    assert!(
        matches!(&error, Error::InvalidRequest { message } if message.contains("more than the tolerance of 300 s")),
        "{error}"
    );
    // The same delivery is fine while it is fresh.
    f.clock.store(NOW - 301, Ordering::SeqCst);
    assert!(f.plugin.parse_webhook(TENANT, request.clone()).is_ok());
    Ok(())
}

#[test]
fn a_webhook_signed_with_another_secret_is_refused() -> Result<()> {
    let f = fixture(serde_json::json!({ "webhook_secret": "whsec_some_other_endpoint" }))?;
    let paid = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", true, false, "pay-other"),
    )?;
    let refused = f.plugin.parse_webhook(
        TENANT,
        webhook(&f, "payment_intent.succeeded", &paid.id, NOW)?,
    );
    let error = refused
        .err()
        .context("a foreign signature must be refused")?;
    assert!(
        matches!(&error, Error::InvalidRequest { message } if message.contains("no v1 signature matches")),
        "{error}"
    );
    assert!(!format!("{error:?}").contains("whsec_"));
    Ok(())
}

#[test]
fn a_deactivated_tenant_can_no_longer_pay() -> Result<()> {
    let f = fixture(serde_json::json!({}))?;
    f.plugin.deactivate(TENANT)?;
    let refused = f.plugin.create_payment(
        TENANT,
        create(2000, "pm_card_visa", true, false, "pay-gone"),
    );
    assert!(
        matches!(refused, Err(Error::Unsupported { .. })),
        "{refused:?}"
    );
    assert!(f.standin.requests().is_empty());
    Ok(())
}
