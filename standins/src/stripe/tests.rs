//! Unit tests of the Stripe stand-in's API, called in process.

use super::*;

const KEY: &str = "sk_test_standin_key_0000";

fn stripe() -> Stripe {
    Stripe::new(KEY.to_owned(), 7)
}

fn post(path: &str, key: &str, body: &str) -> Incoming {
    Incoming {
        method: "POST".into(),
        path: path.into(),
        headers: vec![
            ("authorization".into(), format!("Bearer {KEY}")),
            ("stripe-version".into(), "2024-06-20".into()),
            ("idempotency-key".into(), key.into()),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
        ],
        body: body.as_bytes().to_vec(),
    }
}

fn without(mut request: Incoming, header: &str) -> Incoming {
    request.headers.retain(|(n, _)| n != header);
    request
}

fn with(mut request: Incoming, header: &str, value: &str) -> Incoming {
    request.headers.retain(|(n, _)| n != header);
    request.headers.push((header.into(), value.into()));
    request
}

/// Sends `request` and renders `status type/code: message` or `status status-of-object`.
fn check(stripe: &mut Stripe, request: Incoming, expected: &str) -> Value {
    let reply = stripe.handle(&request);
    let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    let actual = match body.get("error") {
        Some(error) => format!(
            "{} {}/{}: {}",
            reply.status,
            error["type"].as_str().unwrap_or("-"),
            error["code"].as_str().unwrap_or("-"),
            error["message"].as_str().unwrap_or("-"),
        ),
        None => format!(
            "{} {}",
            reply.status,
            body["status"].as_str().unwrap_or("-")
        ),
    };
    assert_eq!(
        actual,
        expected,
        "{} {}",
        request.path,
        String::from_utf8_lossy(&request.body)
    );
    body
}

const CREATE: &str =
    "amount=2000&currency=usd&payment_method=pm_card_visa&payment_method_types[0]=card";

#[test]
fn authentication_is_checked_with_stripes_messages() {
    let mut s = stripe();
    let request = post("/v1/payment_intents", "k1", CREATE);
    check(
        &mut s,
        with(
            request.clone(),
            "authorization",
            "Bearer sk_test_wrong_key_1234",
        ),
        "401 invalid_request_error/-: Invalid API Key provided: sk_test_**********1234",
    );
    let missing = check(&mut s, without(request.clone(), "authorization"), "401 invalid_request_error/-: You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.");
    assert!(missing.get("error").is_some());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"));
    check(
        &mut s,
        with(request, "authorization", &format!("Basic {basic}")),
        "200 requires_confirmation",
    );
}

#[test]
fn versions_keys_and_form_encoding_are_enforced() {
    let mut s = stripe();
    let request = post("/v1/payment_intents", "k1", CREATE);
    check(
        &mut s,
        with(request.clone(), "stripe-version", "2024-6-20"),
        "400 invalid_request_error/-: Invalid Stripe API version: 2024-6-20",
    );
    check(
        &mut s,
        with(request.clone(), "stripe-version", "2024-09-30.acacia"),
        "200 requires_confirmation",
    );
    let no_key = check(&mut s, without(request.clone(), "idempotency-key"), "400 invalid_request_error/-: Stripe stand-in: every POST must carry an Idempotency-Key header (a plugkit rule; Stripe itself only recommends it).");
    assert!(no_key.get("error").is_some());
    let mut json_body = with(request, "content-type", "application/json");
    json_body.body = br#"{"amount":2000}"#.to_vec();
    check(&mut s, json_body, "400 invalid_request_error/-: Invalid request (check that your POST content type is application/x-www-form-urlencoded). If you have any questions, we can help at https://support.stripe.com/.");
}

#[test]
fn parameters_are_checked_like_stripe() {
    let mut s = stripe();
    let mut n = 0;
    let mut go = |s: &mut Stripe, body: &str, expected: &str| {
        n += 1;
        check(
            s,
            post("/v1/payment_intents", &format!("k{n}"), body),
            expected,
        );
    };
    go(
        &mut s,
        "currency=usd",
        "400 invalid_request_error/parameter_missing: Missing required param: amount.",
    );
    go(
        &mut s,
        "amount=x&currency=usd",
        "400 invalid_request_error/parameter_invalid_integer: Invalid integer: x",
    );
    go(
        &mut s,
        "amount=10&currency=usd",
        "400 invalid_request_error/amount_too_small: Amount must be at least $0.50",
    );
    go(
        &mut s,
        "amount=100&currency=usd&colour=red",
        "400 invalid_request_error/parameter_unknown: Received unknown parameter: colour",
    );
    go(
        &mut s,
        "amount=100&currency=usd&payment_method=pm_nope",
        "400 invalid_request_error/resource_missing: No such PaymentMethod: 'pm_nope'",
    );
    go(
        &mut s,
        "amount=100&currency=usd&confirm=yes",
        "400 invalid_request_error/parameter_invalid_boolean: Invalid boolean: yes",
    );
    go(
        &mut s,
        "amount=100&currency=usd&payment_method_types[]=card&payment_method_types[]=card",
        "200 requires_payment_method",
    );
    go(
        &mut s,
        "amount=100&currency=usd&amount=200",
        "400 invalid_request_error/-: Invalid parameter amount: given more than once",
    );
}

#[test]
fn key_segments_parse_brackets() {
    assert_eq!(key_segments("a"), Some(vec!["a"]));
    assert_eq!(key_segments("a[b][0][]"), Some(vec!["a", "b", "0", ""]));
    assert_eq!(key_segments("a[b"), None);
    assert_eq!(key_segments("[b]"), None);
    assert_eq!(key_segments("a[b]c"), None);
}

#[test]
fn idempotency_replays_and_conflicts() {
    let mut s = stripe();
    let first = check(
        &mut s,
        post("/v1/payment_intents", "same", CREATE),
        "200 requires_confirmation",
    );
    let replay = s.handle(&post("/v1/payment_intents", "same", CREATE));
    assert_eq!(
        serde_json::from_str::<Value>(&replay.body).ok(),
        Some(first)
    );
    assert!(replay
        .headers
        .contains(&("idempotent-replayed".into(), "true".into())));
    check(&mut s, post("/v1/payment_intents", "same", "amount=3000&currency=usd"), "400 idempotency_error/-: Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'same' if you meant to execute a different request.");
    check(&mut s, post("/v1/refunds", "same", "payment_intent=pi_x"), "400 idempotency_error/-: Keys for idempotent requests can only be used for the same endpoint they were first used for ('POST /v1/payment_intents' vs 'POST /v1/refunds'). Try using a key other than 'same' if you meant to execute a different request.");
    assert_eq!(s.intents.len(), 1);
}

#[test]
fn the_state_machine_allows_only_stripes_transitions() {
    let mut s = stripe();
    let pi = check(
        &mut s,
        post(
            "/v1/payment_intents",
            "c",
            &format!("{CREATE}&capture_method=manual"),
        ),
        "200 requires_confirmation",
    );
    let id = pi["id"].as_str().unwrap_or_default().to_owned();
    check(&mut s, post(&format!("/v1/payment_intents/{id}/capture"), "cap0", ""), "400 invalid_request_error/payment_intent_unexpected_state: This PaymentIntent could not be captured because it has a status of requires_confirmation. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.");
    check(
        &mut s,
        post(&format!("/v1/payment_intents/{id}/confirm"), "conf", ""),
        "200 requires_capture",
    );
    check(&mut s, post(&format!("/v1/payment_intents/{id}/confirm"), "conf2", ""), "400 invalid_request_error/payment_intent_unexpected_state: You cannot confirm this PaymentIntent because it has a status of requires_capture.");
    check(&mut s, post(&format!("/v1/payment_intents/{id}/capture"), "cap1", "amount_to_capture=2001"), "400 invalid_request_error/amount_too_large: The amount to capture ($20.01) is greater than the amount capturable on this PaymentIntent ($20.00).");
    check(
        &mut s,
        post(
            &format!("/v1/payment_intents/{id}/capture"),
            "cap2",
            "amount_to_capture=1500",
        ),
        "200 succeeded",
    );
    check(
        &mut s,
        post(
            "/v1/refunds",
            "r1",
            &format!("payment_intent={id}&amount=1000"),
        ),
        "200 succeeded",
    );
    check(&mut s, post("/v1/refunds", "r2", &format!("payment_intent={id}&amount=501")), "400 invalid_request_error/amount_too_large: Refund amount ($5.01) is greater than unrefunded amount on charge ($5.00)");
    check(
        &mut s,
        post("/v1/refunds", "r3", &format!("payment_intent={id}")),
        "200 succeeded",
    );
    let charge = s.intents[&id].latest_charge.clone().unwrap_or_default();
    check(&mut s, post("/v1/refunds", "r4", &format!("payment_intent={id}")), &format!("400 invalid_request_error/charge_already_refunded: Charge {charge} has already been refunded."));
    check(
        &mut s,
        post("/v1/payment_intents/pi_missing/confirm", "m", ""),
        "404 invalid_request_error/resource_missing: No such payment_intent: 'pi_missing'",
    );
    let types: Vec<_> = s.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "payment_intent.created",
            "payment_intent.succeeded",
            "charge.refunded",
            "charge.refunded"
        ]
    );
}

#[test]
fn intents_without_explicit_types_need_a_return_url_to_confirm() {
    let mut s = stripe();
    check(&mut s, post("/v1/payment_intents", "a", "amount=100&currency=usd&payment_method=pm_card_visa&confirm=true"), "400 invalid_request_error/-: This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your website, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.");
    check(&mut s, post("/v1/payment_intents", "b", "amount=100&currency=usd&payment_method=pm_card_visa&confirm=true&return_url=https://example.com/r"), "200 succeeded");
}

#[test]
fn declines_are_card_errors_and_leave_the_intent_retryable() {
    let mut s = stripe();
    let body = check(&mut s, post("/v1/payment_intents", "d", "amount=100&currency=usd&payment_method=pm_card_chargeDeclined&payment_method_types[0]=card&confirm=true"), "402 card_error/card_declined: Your card was declined.");
    assert_eq!(body["error"]["decline_code"], "generic_decline");
    assert_eq!(
        body["error"]["payment_intent"]["status"],
        "requires_payment_method"
    );
    let id = body["error"]["payment_intent"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    check(
        &mut s,
        post(
            &format!("/v1/payment_intents/{id}/confirm"),
            "d2",
            "payment_method=pm_card_visa",
        ),
        "200 succeeded",
    );
}

#[test]
fn injected_failures_come_before_everything_and_are_not_saved() {
    let mut s = stripe();
    s.failures.extend([429, 500].map(|status| Injected {
        status,
        headers: Vec::new(),
    }));
    check(&mut s, post("/v1/payment_intents", "k", CREATE), "429 invalid_request_error/rate_limit: Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.");
    check(
        &mut s,
        post("/v1/payment_intents", "k", CREATE),
        "500 api_error/-: An unknown error occurred",
    );
    check(
        &mut s,
        post("/v1/payment_intents", "k", CREATE),
        "200 requires_confirmation",
    );
    assert!(s.requests.iter().all(|r| !r.replayed));
}

#[test]
fn amounts_are_shown_like_stripe() {
    assert_eq!(format_amount(1999, "usd"), "$19.99");
    assert_eq!(format_amount(5, "eur"), "0.05 EUR");
    assert_eq!(format_amount(500, "jpy"), "500 JPY");
    assert_eq!(mask_key("sk_test_abcdefgh1234"), "sk_test_********1234");
}
