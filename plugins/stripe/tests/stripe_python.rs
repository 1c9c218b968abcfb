//! Cross-checks against Stripe's official Python library (`pip install
//! stripe`, see `tests/peers/install-stripe-python.sh`), run through
//! `tests/py/stripe_peer.py`:
//! - `stripe.Webhook.construct_event` accepts what our signer signs, and
//!   refuses it with another secret or an old timestamp;
//! - our verifier accepts what `stripe.WebhookSignature` signs;
//! - our form encoder produces stripe-python's wire body for the same
//!   parameters, and the plugin's real request body equals the one
//!   stripe-python's own client sends for the same PaymentIntent (both
//!   recorded by the stand-in, which thereby also serves Stripe's client).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use plugin_api::payment::{CreatePayment, Money, Payment};
use plugin_api::{KeyValue, Plugin, TenantConfig};
use plugkit_standins::stripe::{StripeStandIn, StripeStandInConfig};
use plugkit_stripe::form::{self, Value};
use plugkit_stripe::{webhook, StripePlugin};

const SECRET: &str = "whsec_cross_check_3f9a1c7e";

/// Runs `stripe_peer.py command args...` with `stdin`; returns whether it
/// succeeded and what it printed.
fn peer(command: &str, args: &[&str], stdin: &[u8]) -> Result<(bool, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/stripe_peer.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(command)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "running {python}: install Python 3, then run tests/peers/install-stripe-python.sh"
            )
        })?;
    child
        .stdin
        .take()
        .context("python's stdin")?
        .write_all(stdin)?;
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match output.status.code() {
        Some(0) => Ok((true, stdout)),
        Some(1) => Ok((false, stdout)),
        _ => bail!(
            "stripe_peer.py {command} failed ({}): {}{}\n(is stripe-python installed? run tests/peers/install-stripe-python.sh)",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn now() -> Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
    )?)
}

fn event_body() -> Vec<u8> {
    // Not valid UTF-8 would be refused by stripe-python; keep a non-ASCII name
    // to check both sides sign the same bytes.
    serde_json::to_vec(&serde_json::json!({
        "id": "evt_cross_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1_750_000_000,
        "data": { "object": {
            "id": "pi_cross_1", "object": "payment_intent", "amount": 1999, "amount_received": 1999,
            "currency": "eur", "description": "Glasfaser Zürich", "status": "succeeded",
        }},
    }))
    .unwrap_or_default()
}

#[test]
fn stripe_python_accepts_what_our_signer_signs() -> Result<()> {
    let body = event_body();
    let t = now()?;
    let header = webhook::sign(&body, SECRET, t);
    assert_eq!(
        peer("construct-event", &[SECRET, &header], &body)?,
        (true, "evt_cross_1 payment_intent.succeeded".to_owned())
    );

    let (accepted, message) = peer("construct-event", &["whsec_another_secret", &header], &body)?;
    assert!(
        !accepted && message.contains("No signatures found matching the expected signature"),
        "{message}"
    );

    let stale = webhook::sign(&body, SECRET, t - 301);
    let (accepted, message) = peer("construct-event", &[SECRET, &stale], &body)?;
    assert!(
        !accepted && message.contains("Timestamp outside the tolerance zone"),
        "{message}"
    );
    Ok(())
}

#[test]
fn our_verifier_accepts_what_stripe_python_signs() -> Result<()> {
    let body = event_body();
    let t = 1_750_000_000;
    let (ok, header) = peer("sign", &[SECRET, &t.to_string()], &body)?;
    assert!(ok, "{header}");
    assert_eq!(
        header,
        webhook::sign(&body, SECRET, t),
        "both sides compute the same header"
    );
    assert_eq!(webhook::verify(&body, &header, SECRET, 300, t + 10), Ok(()));
    let event = webhook::parse_event(&body)?;
    assert_eq!(
        event.payment_id.as_ref().map(|p| p.as_str()).into_option(),
        Some("pi_cross_1")
    );

    // Stripe rolling the secret: the old signature next to the new one.
    let rolled = format!("{header},v1={}", "0".repeat(64));
    assert_eq!(webhook::verify(&body, &rolled, SECRET, 300, t), Ok(()));
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        webhook::verify(&tampered, &header, SECRET, 300, t),
        Err(webhook::WebhookError::SignatureMismatch)
    );
    assert!(webhook::verify(&body, &header, "whsec_another_secret", 300, t).is_err());
    Ok(())
}

/// `value` as JSON, keeping map order (which serde_json's map would sort).
fn to_json(value: &Value) -> String {
    match value {
        Value::Str(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Absent => "null".to_owned(),
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(to_json).collect::<Vec<_>>().join(",")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!(
                    "{}:{}",
                    serde_json::to_string(k).unwrap_or_default(),
                    to_json(v)
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn map(entries: &[(&str, Value)]) -> Vec<(String, Value)> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[test]
fn our_form_encoding_matches_stripe_pythons() -> Result<()> {
    let cases: Vec<Vec<(String, Value)>> = vec![
        map(&[
            ("amount", Value::Int(2000)),
            ("currency", Value::str("usd")),
        ]),
        map(&[
            ("amount", Value::Int(1999)),
            ("confirm", Value::Bool(true)),
            ("capture_method", Value::str("manual")),
            ("customer", Value::Absent),
            (
                "metadata",
                Value::Map(map(&[
                    ("invoice", Value::str("inv 42")),
                    ("tier", Value::str("pro")),
                ])),
            ),
            (
                "payment_method_types",
                Value::List(vec![Value::str("card"), Value::str("link")]),
            ),
        ]),
        map(&[(
            "description",
            Value::str("Fibre 1 Gbit/s – Zürich, 50% off & more [promo] ~ok? #1 a+b=c"),
        )]),
        map(&[(
            "metadata",
            Value::Map(map(&[
                ("key with space", Value::str("ünïcödé ✓")),
                ("empty", Value::str("")),
            ])),
        )]),
        map(&[(
            "line_items",
            Value::List(vec![
                Value::Map(map(&[
                    ("price", Value::str("price_1")),
                    ("quantity", Value::Int(2)),
                ])),
                Value::Map(map(&[
                    ("price", Value::str("price_2")),
                    ("quantity", Value::Int(1)),
                ])),
            ]),
        )]),
        map(&[(
            "nested",
            Value::Map(map(&[(
                "deeper",
                Value::Map(map(&[("flag", Value::Bool(false)), ("n", Value::Int(-3))])),
            )])),
        )]),
        map(&[(
            "matrix",
            Value::List(vec![
                Value::List(vec![Value::Int(1), Value::Int(2)]),
                Value::List(vec![Value::Int(3)]),
            ]),
        )]),
        map(&[
            ("expand", Value::List(vec![])),
            ("metadata", Value::Map(vec![])),
            ("amount", Value::Int(0)),
        ]),
    ];
    let json = format!(
        "[{}]",
        cases
            .iter()
            .map(|case| to_json(&Value::Map(case.clone())))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (ok, output) = peer("encode", &[], json.as_bytes())?;
    assert!(ok, "{output}");
    let theirs: Vec<String> = serde_json::from_str(&output)?;
    assert_eq!(theirs.len(), cases.len());
    for (case, theirs) in cases.iter().zip(theirs) {
        assert_eq!(
            form::encode(case),
            theirs,
            "case {}",
            to_json(&Value::Map(case.clone()))
        );
    }
    Ok(())
}

#[test]
fn the_plugins_request_body_is_the_one_stripe_pythons_client_sends() -> Result<()> {
    let standin = StripeStandIn::start(StripeStandInConfig::default())?;
    let plugin = StripePlugin::new()?;
    plugin.activate(&TenantConfig::new(
        "acme",
        serde_json::json!({
            "secret_key": standin.secret_key(),
            "base_url": standin.base_url(),
            "api_version": "2024-06-20",
        }),
    ))?;
    let ours = plugin.create_payment(
        "acme",
        CreatePayment {
            amount: Money {
                amount_minor: 2500,
                currency: "usd".into(),
            },
            customer: Some("cus_standin_1".into()).into(),
            payment_method: Some("pm_card_visa".into()).into(),
            confirm: true,
            manual_capture: true,
            description: Some("Fibre 1 Gbit/s, June & July".into()).into(),
            metadata: vec![
                KeyValue::new("invoice", "inv 7"),
                KeyValue::new("tenant", "acme"),
            ]
            .into(),
            idempotency_key: "cross-1".into(),
        },
    )?;

    // The same PaymentIntent, in the order the plugin sends its parameters.
    let params = r#"{"amount": 2500, "currency": "usd", "customer": "cus_standin_1",
        "payment_method": "pm_card_visa", "description": "Fibre 1 Gbit/s, June & July",
        "capture_method": "manual", "confirm": true,
        "metadata": {"invoice": "inv 7", "tenant": "acme"}, "payment_method_types": ["card"]}"#;
    let (ok, output) = peer(
        "create-payment-intent",
        &[standin.base_url(), standin.secret_key(), "2024-06-20"],
        params.as_bytes(),
    )?;
    assert!(
        ok,
        "stripe-python's request was refused by the stand-in: {output}"
    );
    let theirs: serde_json::Value = serde_json::from_str(&output)?;
    assert_eq!(theirs["status"], "requires_capture");
    assert_eq!(
        ours.status,
        plugin_api::payment::PaymentStatus::RequiresCapture
    );

    let requests = standin.requests();
    let [plugin_request, python_request] = requests.as_slice() else {
        bail!("expected two requests, got {}", requests.len());
    };
    assert_eq!(plugin_request.body, python_request.body);
    assert_eq!(plugin_request.path, python_request.path);
    for name in ["authorization", "stripe-version", "content-type"] {
        assert_eq!(
            plugin_request.header(name),
            python_request.header(name),
            "{name}"
        );
    }
    assert!(python_request.header("idempotency-key").is_some());
    Ok(())
}
