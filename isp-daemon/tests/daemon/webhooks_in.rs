//! Provider webhooks into the daemon over HTTP, signed exactly as the
//! providers sign them (the Stripe stand-in's own events and signer; Twilio's
//! HMAC-SHA1 over the URL and sorted parameters): verified events drive the
//! flows once per id; unsigned, wrongly signed and stale ones are refused,
//! counted, and reach no flow.

use std::time::Duration;

use plugkit_testkit::process::wait_until;
use serde_json::{json, Value};

use crate::support::TestDaemon;

/// What the providers see as the daemon's address (a reverse proxy's).
const PUBLIC_URL: &str = "https://isp.example.test";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn with_public_url(config: &mut isp_daemon::Config) {
    config.webhooks.public_url = Some(format!("{PUBLIC_URL}/"));
}

fn daemon() -> TestDaemon {
    TestDaemon::start_with(with_public_url, None)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POSTs `body` with `headers`; returns status, content type and body.
fn post(
    url: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    let mut request = agent().post(url).header("Content-Type", content_type);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send(body).expect("POST");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        content_type,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn inbound(d: &TestDaemon) -> Value {
    d.get("/api/webhooks/inbound").expect(200)
}

/// Waits until `check` holds for the inbound view.
fn wait_for_inbound(d: &TestDaemon, what: &str, mut check: impl FnMut(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let reached = wait_until(what, Duration::from_secs(30), None, || {
        last = inbound(d);
        check(&last)
    });
    assert!(reached.is_ok(), "{what}: {last:#}");
    last
}

fn new_customer(d: &TestDaemon, customer: &str, payment_method: &str) -> Value {
    d.post(
        "/api/flows/new-customer",
        &json!({"tenant": "acme-fiber", "customer_id": customer, "name": "Ada",
                "plan": "fiber-100", "monthly_price_minor": 4999, "currency": "usd",
                "payment_method": payment_method}),
    )
    .expect(200)
}

/// The stand-in's event of `event_type` for `customer`.
fn stripe_event(
    d: &TestDaemon,
    event_type: &str,
    customer: &str,
) -> plugkit_standins::stripe::StandInEvent {
    let stripe = d.daemon.standins().stripe().expect("stripe stand-in");
    stripe
        .events()
        .into_iter()
        .find(|e| e.event_type == event_type && e.body.contains(customer))
        .unwrap_or_else(|| panic!("no {event_type} for {customer} in {:#?}", stripe.events()))
}

#[test]
fn stripe_payment_events_signed_as_stripe_signs_drive_the_invoice_once_per_event_id() {
    let d = daemon();
    let stripe = d.daemon.standins().stripe().expect("stripe stand-in");
    let url = format!("{}/webhooks/stripe/acme-fiber", d.base);

    // A declined first charge: Stripe reports payment_intent.payment_failed later.
    let report = new_customer(&d, "cust-declined", "pm_card_chargeDeclined");
    assert_eq!(report["ok"], false, "{report:#}");
    let failed = stripe_event(&d, "payment_intent.payment_failed", "cust-declined");
    assert_eq!(
        stripe
            .deliver_event(&failed.id, &url, now())
            .expect("deliver"),
        200
    );
    let view = wait_for_inbound(&d, "the invoice is overdue", |v| {
        v["tenants"]["acme-fiber"]["invoices"]["cust-declined"]["status"] == "overdue"
            && v["recent"][0]["outcome"].is_object()
    });
    let steps = view["recent"][0]["outcome"]["steps"].to_string();
    assert!(steps.contains("payment.failed"), "{steps}");
    assert!(
        steps.contains("the invoice of customer cust-declined is overdue"),
        "{steps}"
    );

    // Stripe redelivers the same event: taken once, counted as a duplicate.
    assert_eq!(
        stripe
            .deliver_event(&failed.id, &url, now())
            .expect("redeliver"),
        200
    );
    let view = inbound(&d);
    assert_eq!(view["counts"]["accepted"], 1, "{view:#}");
    assert_eq!(view["counts"]["duplicate"], 1, "{view:#}");
    assert_eq!(view["recent"].as_array().map(Vec::len), Some(1), "{view:#}");

    // A charge that goes through: the invoice is paid.
    new_customer(&d, "cust-paid", "pm_card_visa");
    let succeeded = stripe_event(&d, "payment_intent.succeeded", "cust-paid");
    let (status, content_type, body) = post(
        &url,
        &[(
            "Stripe-Signature",
            &stripe.signature_header(&succeeded.body, now()),
        )],
        "application/json; charset=utf-8",
        &succeeded.body,
    );
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{body}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["id"],
        succeeded.id.as_str()
    );
    let view = wait_for_inbound(&d, "the invoice is paid", |v| {
        v["tenants"]["acme-fiber"]["invoices"]["cust-paid"]["status"] == "paid"
    });
    assert_eq!(view["counts"]["accepted"], 2, "{view:#}");

    // The ids taken survive a restart: a redelivery afterwards is a duplicate.
    let dir = std::sync::Arc::clone(&d.dir);
    d.stop();
    let d = TestDaemon::start_in(dir, with_public_url, None);
    let stripe = d.daemon.standins().stripe().expect("stripe stand-in");
    let (status, _, body) = post(
        &format!("{}/webhooks/stripe/acme-fiber", d.base),
        &[(
            "Stripe-Signature",
            &stripe.signature_header(&failed.body, now()),
        )],
        "application/json; charset=utf-8",
        &failed.body,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["duplicate"],
        true,
        "{body}"
    );
    let view = inbound(&d);
    assert_eq!(view["counts"]["accepted"], 2, "{view:#}");
    assert_eq!(
        view["tenants"]["acme-fiber"]["invoices"]["cust-declined"]["status"],
        "overdue"
    );
}

fn twilio_signed(token: &str, url: &str, params: &[(&str, &str)]) -> (String, String) {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let signature = plugkit_standins::twilio::sign(token, url, &owned).expect("sign");
    let body = params
        .iter()
        .map(|(n, v)| format!("{n}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    (signature, body)
}

#[test]
fn twilio_delivery_receipts_signed_for_the_public_url_update_the_message_status() {
    let d = daemon();
    let token = d
        .daemon
        .standins()
        .twilio()
        .expect("twilio stand-in")
        .auth_token()
        .to_owned();
    let path = "/webhooks/twilio/acme-fiber?attempt=1";
    let params = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", "+15005550006"),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("MessageStatus", "delivered"),
        ("To", "+14155550100"),
    ];
    // Twilio signs the URL it called: the public one, with the query string.
    let (signature, body) = twilio_signed(&token, &format!("{PUBLIC_URL}{path}"), &params);
    let (status, content_type, text) = post(
        &format!("{}{path}", d.base),
        &[("X-Twilio-Signature", &signature)],
        "application/x-www-form-urlencoded",
        &body,
    );
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/xml"), "{content_type}");
    assert!(text.contains("<Response></Response>"), "{text}");
    let view = wait_for_inbound(&d, "the message is delivered", |v| {
        v["tenants"]["acme-fiber"]["messages"]["SM0123456789abcdef0123456789abcdef"]["status"]
            == "delivered"
    });
    assert!(
        view["recent"][0]["outcome"]
            .to_string()
            .contains("message.delivered"),
        "{view:#}"
    );

    // The same receipt signed for the address the daemon listens on is not
    // what Twilio would have signed behind the proxy: refused.
    let (wrong, _) = twilio_signed(&token, &format!("{}{path}", d.base), &params);
    let (status, _, text) = post(
        &format!("{}{path}", d.base),
        &[("X-Twilio-Signature", &wrong)],
        "application/x-www-form-urlencoded",
        &body,
    );
    assert_eq!(status, 403, "{text}");

    // Undelivered later: the status moves on and message.failed fires.
    let mut later = params;
    later[3] = ("MessageStatus", "undelivered");
    let mut with_code = later.to_vec();
    with_code.insert(1, ("ErrorCode", "30003"));
    let (signature, body) = twilio_signed(&token, &format!("{PUBLIC_URL}{path}"), &with_code);
    let (status, _, text) = post(
        &format!("{}{path}", d.base),
        &[("X-Twilio-Signature", &signature)],
        "application/x-www-form-urlencoded",
        &body,
    );
    assert_eq!(status, 200, "{text}");
    let view = wait_for_inbound(&d, "the message is undelivered", |v| {
        let message = &v["tenants"]["acme-fiber"]["messages"]["SM0123456789abcdef0123456789abcdef"];
        message["status"] == "undelivered" && message["error_code"] == 30003
    });
    assert!(view.to_string().contains("message.failed"), "{view:#}");
    assert_eq!(view["counts"]["bad_signature"], 1, "{view:#}");
}

/// A refused request: url, headers, body, status, part of the error.
type Case<'a> = (String, Vec<(&'a str, String)>, &'a str, u16, &'a str);

#[test]
fn unsigned_wrongly_signed_stale_and_misaddressed_webhooks_are_refused_counted_and_reach_no_flow() {
    let d = daemon();
    new_customer(&d, "cust-x", "pm_card_visa");
    let event = stripe_event(&d, "payment_intent.succeeded", "cust-x");
    let stripe = d.daemon.standins().stripe().expect("stripe stand-in");
    let stripe_url = format!("{}/webhooks/stripe/acme-fiber", d.base);
    let json_type = "application/json";
    let forged = plugin_api_free_sign(&event.body, "whsec_not_the_tenants_secret", now());
    let cases: Vec<Case<'_>> = vec![
        (
            stripe_url.clone(),
            vec![],
            event.body.as_str(),
            400,
            "no `stripe-signature` header",
        ),
        (
            stripe_url.clone(),
            vec![("Stripe-Signature", forged)],
            event.body.as_str(),
            403,
            "webhook refused",
        ),
        (
            stripe_url.clone(),
            vec![(
                "Stripe-Signature",
                stripe.signature_header(&event.body, now() - 301),
            )],
            event.body.as_str(),
            400,
            "tolerance",
        ),
        (
            format!("{}/webhooks/twilio/acme-fiber", d.base),
            vec![],
            "MessageSid=SM1&MessageStatus=sent",
            400,
            "x-twilio-signature",
        ),
        (
            format!("{}/webhooks/twilio/acme-fiber", d.base),
            vec![("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJl".to_owned())],
            "MessageSid=SM1&MessageStatus=sent",
            403,
            "X-Twilio-Signature does not match",
        ),
        (
            format!("{}/webhooks/ghost/acme-fiber", d.base),
            vec![],
            "{}",
            404,
            "no plugin `ghost`",
        ),
        (
            format!("{}/webhooks/network-automation/acme-fiber", d.base),
            vec![],
            "{}",
            404,
            "takes no provider webhooks",
        ),
        (
            format!("{}/webhooks/stripe/ghost-tenant", d.base),
            vec![],
            "{}",
            404,
            "not active for tenant",
        ),
    ];
    for (url, headers, body, status, part) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (got, content_type, text) = post(url, &headers, json_type, body);
        assert_eq!(got, *status, "{url}: {text}");
        assert!(
            content_type.starts_with("application/json"),
            "{url}: {content_type}"
        );
        let error = serde_json::from_str::<Value>(&text).expect("json")["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(part), "{url}: {error:?} lacks {part:?}");
        assert_names_nothing_internal(&d, url, &text);
    }
    let view = inbound(&d);
    assert_eq!(
        view["counts"],
        json!({"unsigned": 2, "bad_signature": 2, "stale": 1, "not_found": 3}),
        "{view:#}"
    );
    assert_eq!(view["recent"], json!([]), "{view:#}");
    assert_eq!(view["tenants"], json!({}), "{view:#}");
    // No admin token was needed for any of these; the inbound view needs one.
    assert_eq!(
        d.request("GET", "/api/webhooks/inbound", None, None).status,
        401
    );
}

/// New-user trial: the public 403 named the plugin library's path. A public
/// answer names the plugin, the tenant and what to do, never a file, a
/// library or the host's error chain.
#[track_caller]
fn assert_names_nothing_internal(d: &TestDaemon, url: &str, text: &str) {
    let workspace = plugkit_testkit::process::workspace_root();
    let leaks = [
        d.dir.path().display().to_string(),
        workspace.display().to_string(),
        ".so".to_owned(),
        "libplugkit".to_owned(),
        "inbound.json".to_owned(),
        "plugin `stripe` (".to_owned(),
        "plugin `twilio` (".to_owned(),
    ];
    for leak in leaks {
        assert!(!text.contains(&leak), "{url} answers {leak:?}: {text}");
    }
}

/// A daemon whose acme-fiber has Stripe active without a webhook signing
/// secret (no stand-in, whose secret would reach every tenant), so its
/// Stripe plugin cannot check a webhook.
fn daemon_without_a_stripe_webhook_secret() -> TestDaemon {
    TestDaemon::start_with(
        |config| {
            with_public_url(config);
            config.standins.stripe = isp_daemon::config::StandinMode::Off;
            let state = config.state.dir.clone().expect("a state folder");
            let key_file = state.with_file_name("stripe-secret-key");
            std::fs::write(&key_file, "sk_test_no_webhook_secret").expect("key file");
            let stripe = config
                .tenants
                .get_mut("acme-fiber")
                .and_then(|t| t.plugins.get_mut("stripe"))
                .expect("acme-fiber configures stripe");
            stripe.insert(
                "secret_key".to_owned(),
                format!("${{file:{}}}", key_file.display()).into(),
            );
        },
        None,
    )
}

/// README listed the 503 for a webhook the daemon cannot check as untested.
#[test]
fn a_webhook_the_daemon_cannot_check_is_a_503_the_provider_retries_naming_nothing_internal() {
    let d = daemon_without_a_stripe_webhook_secret();
    assert_eq!(d.state_of("acme-fiber", "stripe"), "active");
    let url = format!("{}/webhooks/stripe/acme-fiber", d.base);
    let body = r#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let signature = plugin_api_free_sign(body, "whsec_anything", now());
    let (status, content_type, text) = post(
        &url,
        &[("Stripe-Signature", &signature)],
        "application/json",
        body,
    );
    assert_eq!(status, 503, "{text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let problem: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        (&problem["plugin"], &problem["tenant"]),
        (&json!("stripe"), &json!("acme-fiber")),
        "{problem:#}"
    );
    let error = problem["error"].as_str().unwrap_or_default();
    assert!(error.contains("retry later"), "{error}");
    assert_names_nothing_internal(&d, &url, &text);
    let view = inbound(&d);
    assert_eq!(view["counts"], json!({"unavailable": 1}), "{view:#}");
    assert_eq!(view["recent"], json!([]), "{view:#}");
}

/// A verified event whose id cannot be written to the ledger is a 503 and
/// stays unclaimed, so the provider's redelivery reaches the flows once.
#[test]
fn a_verified_event_the_ledger_cannot_record_is_a_503_and_its_redelivery_is_taken() {
    let d = daemon();
    let stripe = d.daemon.standins().stripe().expect("stripe stand-in");
    new_customer(&d, "cust-l", "pm_card_visa");
    let event = stripe_event(&d, "payment_intent.succeeded", "cust-l");
    let url = format!("{}/webhooks/stripe/acme-fiber", d.base);
    // A folder where the ledger's file goes: its atomic write cannot replace it.
    let ledger = d.dir.path().join("state/webhooks/inbound.json");
    let _ = std::fs::remove_file(&ledger);
    std::fs::create_dir_all(ledger.join("blocked")).expect("block the ledger");
    let send = || {
        let signature = stripe.signature_header(&event.body, now());
        post(
            &url,
            &[("Stripe-Signature", &signature)],
            "application/json",
            &event.body,
        )
    };
    let (status, _, text) = send();
    assert_eq!(status, 503, "{text}");
    assert_names_nothing_internal(&d, &url, &text);
    std::fs::remove_dir_all(&ledger).expect("unblock the ledger");
    let (status, _, text) = send();
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(answer["duplicate"], Value::Null, "{answer}");
    let (status, _, text) = send();
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["duplicate"],
        true
    );
}

/// A `Stripe-Signature` with another secret, computed here as Stripe does
/// (lowercase hex HMAC-SHA256 of `"{t}.{payload}"` keyed with the whole
/// `whsec_` string), independent of the stand-in's and the plugin's signers.
fn plugin_api_free_sign(payload: &str, secret: &str, t: i64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{payload}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}
