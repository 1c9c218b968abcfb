//! The twilio plugin driven in-process through its `Plugin`, `Communication`
//! and `Hooks` traits against two peers: Prism serving Twilio's own OpenAPI
//! description (wire format accepted by Twilio's spec) and the in-repo
//! Twilio stand-in (error codes, retries, callbacks).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use abi_stable::std_types::{ROption, RString};
use plugin_api::communication::{Communication, DeliveryStatus, OutboundMessage};
use plugin_api::hooks::{DeviceAlert, DEVICE_ALERT};
use plugin_api::{
    HookAction, HookEvent, Hooks, KeyValue, Plugin, PluginError, TenantConfig, WebhookRequest,
};
use plugkit_standins::twilio::{TwilioStandIn, TwilioStandInConfig};
use plugkit_testkit::prism::Prism;
use plugkit_twilio::TwilioPlugin;
use serde_json::{json, Value};

const TENANT: &str = "acme";
/// A well-formed account for Prism, which checks only the SID's shape.
const PRISM_ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

/// The waits the plugin asked for between retries, recorded instead of slept.
#[derive(Clone, Default)]
struct Waits(Arc<Mutex<Vec<Duration>>>);

impl Waits {
    fn plugin(&self) -> TwilioPlugin {
        let waits = self.0.clone();
        TwilioPlugin::with_sleeper(move |d| waits.lock().unwrap().push(d))
    }

    fn taken(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

fn activate(plugin: &TwilioPlugin, config: Value) {
    plugin.activate(&TenantConfig::new(TENANT, config)).unwrap();
}

fn standin_config(standin: &TwilioStandIn) -> Value {
    json!({
        "account_sid": standin.account_sid(),
        "auth_token": standin.auth_token(),
        "from_number": "+15005550006",
        "base_url": standin.base_url(),
        "timeout_ms": 5000,
        "max_retries": 3,
        "on_call_number": "+14155550123",
    })
}

/// A plugin activated against a fresh stand-in.
fn with_standin() -> (TwilioStandIn, TwilioPlugin, Waits) {
    let standin = TwilioStandIn::start(TwilioStandInConfig::default()).unwrap();
    let waits = Waits::default();
    let plugin = waits.plugin();
    activate(&plugin, standin_config(&standin));
    (standin, plugin, waits)
}

fn sms(to: &str, body: &str) -> OutboundMessage {
    OutboundMessage {
        to: to.into(),
        body: body.into(),
        ..OutboundMessage::default()
    }
}

fn is_message_sid(sid: &str) -> bool {
    sid.len() == 34
        && (sid.starts_with("SM") || sid.starts_with("MM"))
        && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Fails with Prism's own validation report when it refused a request.
fn prism_ok<T>(prism: &Prism, result: Result<T, PluginError>) -> T {
    result.unwrap_or_else(|e| {
        panic!(
            "Prism refused a request (a plugin bug): {e}\n--- prism log ---\n{}",
            prism_tail(prism)
        )
    })
}

fn prism_tail(prism: &Prism) -> String {
    let log = prism.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("[CLI]")).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// ---------------------------------------------------------------- Prism

#[test]
fn prism_accepts_a_send_from_a_number_with_a_callback_and_a_status_lookup() {
    let prism = Prism::start().unwrap();
    eprintln!(
        "prism accepted connections after {:?}",
        prism.startup_time()
    );
    let plugin = Waits::default().plugin();
    activate(
        &plugin,
        json!({
            "account_sid": PRISM_ACCOUNT,
            "auth_token": "prism-token",
            "from_number": "+15005550006",
            "base_url": prism.base_url(),
            "max_retries": 0,
        }),
    );
    // No `MediaUrl` here: Twilio takes it as a repeated key (`MediaUrl=a&MediaUrl=b`,
    // as its SDKs send it), which Prism 5 cannot read as the spec's array and
    // refuses (stoplightio/prism#2473). Media is checked against the stand-in.
    let message = OutboundMessage {
        status_callback: ROption::RSome(
            "https://isp.example/hooks/twilio/status?tenant=acme".into(),
        ),
        ..sms("+14155550100", "PON port 4 down on olt-3 — ünïcode ok")
    };
    let receipt = prism_ok(&prism, plugin.send_message(TENANT, message));
    assert!(is_message_sid(&receipt.provider_message_id), "{receipt:?}");
    assert_eq!(receipt.status, DeliveryStatus::Queued, "{receipt:?}");
    assert_eq!(receipt.segments, 1);

    let status = prism_ok(
        &prism,
        plugin.message_status(TENANT, receipt.provider_message_id.as_str().into()),
    );
    assert!(is_message_sid(&status.provider_message_id), "{status:?}");
    // The spec's example for FetchMessage is a sent message with a carrier error.
    assert_eq!(status.status, DeliveryStatus::Sent, "{status:?}");
    assert_eq!(status.error_code, ROption::RSome(30007), "{status:?}");

    let log = prism.log();
    let passed = log
        .matches("The request passed the validation rules")
        .count();
    assert_eq!(
        passed,
        2,
        "both requests validated against Twilio's spec:\n{}",
        prism_tail(&prism)
    );
    assert!(
        !log.contains("UNPROCESSABLE_ENTITY") && !log.contains("violation"),
        "{}",
        prism_tail(&prism)
    );
}

#[test]
fn prism_accepts_a_messaging_service_send_with_an_api_key() {
    let prism = Prism::start().unwrap();
    let plugin = Waits::default().plugin();
    activate(
        &plugin,
        json!({
            "account_sid": PRISM_ACCOUNT,
            "auth_token": "prism-token",
            "api_key_sid": "SK0123456789abcdef0123456789abcdef",
            "api_key_secret": "prism-key-secret",
            "messaging_service_sid": "MG0123456789abcdef0123456789abcdef",
            "base_url": prism.base_url(),
            "max_retries": 0,
            "on_call_number": "+14155550123",
        }),
    );
    let receipt = prism_ok(
        &prism,
        plugin.send_message(TENANT, sms("+14155550100", "hello")),
    );
    assert!(is_message_sid(&receipt.provider_message_id), "{receipt:?}");

    // The device.alert hook goes through the same request.
    let alert = serde_json::to_vec(&DeviceAlert {
        device: "olt-3".to_owned(),
        severity: "critical".to_owned(),
        message: "PON port 4 down".to_owned(),
    })
    .unwrap();
    let action = prism_ok(
        &prism,
        plugin.on_hook(HookEvent {
            tenant: TENANT,
            hook: DEVICE_ALERT,
            content_type: "application/json",
            payload: &alert,
        }),
    );
    assert_eq!(action, HookAction::Continue);
    assert_eq!(
        prism
            .log()
            .matches("The request passed the validation rules")
            .count(),
        2
    );
}

#[test]
fn prism_refuses_what_twilios_spec_refuses_and_the_plugin_does_not_retry_it() {
    // Proof that Prism really validates: a `StatusCallback` that is not a
    // URI breaks the spec's `format: uri`. The plugin passes the caller's
    // value through, so the 422 surfaces as a non-retryable error.
    let prism = Prism::start().unwrap();
    let waits = Waits::default();
    let plugin = waits.plugin();
    activate(
        &plugin,
        json!({
            "account_sid": PRISM_ACCOUNT,
            "auth_token": "prism-token",
            "from_number": "+15005550006",
            "base_url": prism.base_url(),
        }),
    );
    let message = OutboundMessage {
        status_callback: ROption::RSome("not a url".into()),
        ..sms("+14155550100", "x")
    };
    let error = plugin.send_message(TENANT, message).unwrap_err();
    assert!(
        matches!(&error, PluginError::Provider { code, retryable: false, .. } if code.as_str() == "http_422"),
        "{error:?}"
    );
    assert!(waits.taken().is_empty(), "a 4xx is never retried");
    assert!(
        prism.log().contains("StatusCallback"),
        "{}",
        prism_tail(&prism)
    );
}

// ------------------------------------------------------------ stand-in

#[test]
fn a_message_is_sent_with_twilios_form_and_its_status_is_read_back() {
    let (standin, plugin, _) = with_standin();
    let message = OutboundMessage {
        media_urls: vec![
            RString::from("https://isp.example/graphs/olt-3.png"),
            RString::from("https://isp.example/graphs/olt-3-day.png"),
        ]
        .into(),
        ..sms("+14155550100", "Grüße: link down & up again")
    };
    let receipt = plugin.send_message(TENANT, message).unwrap();
    assert_eq!(receipt.status, DeliveryStatus::Queued);
    let sent = standin.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].sid, receipt.provider_message_id.as_str());
    assert_eq!(sent[0].to, "+14155550100");
    assert_eq!(sent[0].from.as_deref(), Some("+15005550006"));
    assert_eq!(sent[0].body, "Grüße: link down & up again");
    assert_eq!(
        sent[0].media_urls,
        [
            "https://isp.example/graphs/olt-3.png",
            "https://isp.example/graphs/olt-3-day.png"
        ]
    );
    assert_eq!(sent[0].auth_user, standin.account_sid());

    standin.set_status(&sent[0].sid, "delivered", None).unwrap();
    let status = plugin
        .message_status(TENANT, sent[0].sid.as_str().into())
        .unwrap();
    assert_eq!(status.status, DeliveryStatus::Delivered);
    standin
        .set_status(&sent[0].sid, "undelivered", Some(30003))
        .unwrap();
    let status = plugin
        .message_status(TENANT, sent[0].sid.as_str().into())
        .unwrap();
    assert_eq!(
        (status.status, status.error_code),
        (DeliveryStatus::Undelivered, ROption::RSome(30003))
    );

    let missing = plugin.message_status(TENANT, "SM00000000000000000000000000000000".into());
    assert!(
        matches!(missing, Err(PluginError::NotFound { .. })),
        "{missing:?}"
    );
}

#[test]
fn every_mapped_error_code_reaches_the_host_typed_and_is_not_retried() {
    let (standin, plugin, waits) = with_standin();
    let cases = [
        (None, "+15005550001", "21211"),
        (Some("+15005550001"), "+14155550100", "21212"),
        (Some("+15005550007"), "+14155550100", "21606"),
        (None, "+15005550003", "21408"),
        (None, "+15005550004", "21610"),
        (None, "+15005550002", "21612"),
        (None, "+15005550009", "21614"),
    ];
    for (from, to, code) in cases {
        let message = OutboundMessage {
            from: from.map(RString::from).into(),
            ..sms(to, "x")
        };
        match plugin.send_message(TENANT, message) {
            Err(PluginError::Provider {
                code: got,
                message,
                retryable,
            }) => {
                assert_eq!(got.as_str(), code, "{message}");
                assert!(!retryable, "{code} must not be retried");
                assert!(message.contains(&format!("errors/{code}")), "{message}");
            }
            other => panic!("{code}: expected a provider error, got {other:?}"),
        }
    }
    assert_eq!(
        standin.requests().len(),
        cases.len(),
        "one request per 4xx, no retry"
    );
    assert!(waits.taken().is_empty());
    assert!(standin.sent_messages().is_empty());
}

#[test]
fn wrong_credentials_are_an_authentication_error_without_leaking_the_token() {
    let standin = TwilioStandIn::start(TwilioStandInConfig::default()).unwrap();
    let waits = Waits::default();
    let plugin = waits.plugin();
    let mut config = standin_config(&standin);
    config["auth_token"] = json!("wrong-token-value");
    activate(&plugin, config);
    let error = plugin
        .send_message(TENANT, sms("+14155550100", "x"))
        .unwrap_err();
    match &error {
        PluginError::Provider {
            code,
            message,
            retryable,
        } => {
            assert_eq!(code.as_str(), "20003");
            assert!(!retryable);
            assert!(
                message.contains("auth_token"),
                "says what to check: {message}"
            );
        }
        other => panic!("expected 20003, got {other:?}"),
    }
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("wrong-token-value"), "{shown}");
    assert_eq!(standin.requests().len(), 1);
    assert!(waits.taken().is_empty());
}

#[test]
fn api_key_credentials_authenticate() {
    let standin = TwilioStandIn::start(TwilioStandInConfig {
        api_keys: vec![(
            "SK0123456789abcdef0123456789abcdef".to_owned(),
            "key-secret".to_owned(),
        )],
        ..TwilioStandInConfig::default()
    })
    .unwrap();
    let plugin = Waits::default().plugin();
    let mut tenant = standin_config(&standin);
    tenant["auth_token"] = json!("signing-token-only");
    tenant["api_key_sid"] = json!("SK0123456789abcdef0123456789abcdef");
    tenant["api_key_secret"] = json!("key-secret");
    activate(&plugin, tenant);
    plugin
        .send_message(TENANT, sms("+14155550100", "x"))
        .unwrap();
    assert_eq!(
        standin.sent_messages()[0].auth_user,
        "SK0123456789abcdef0123456789abcdef"
    );
}

#[test]
fn rate_limits_and_server_errors_are_retried_with_growing_backoff_then_succeed() {
    let (standin, plugin, waits) = with_standin();
    standin.fail_next(1, 429);
    standin.fail_next(1, 500);
    standin.fail_next(1, 503);
    let receipt = plugin
        .send_message(TENANT, sms("+14155550100", "x"))
        .unwrap();
    let statuses: Vec<u16> = standin.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 500, 503, 201]);
    assert_eq!(
        standin.sent_messages().len(),
        1,
        "exactly one message went out"
    );
    assert_eq!(
        standin.sent_messages()[0].sid,
        receipt.provider_message_id.as_str()
    );
    // Equal jitter over a 250 ms base: retry n waits between 125·2ⁿ and 250·2ⁿ ms.
    let waits = waits.taken();
    assert_eq!(waits.len(), 3, "{waits:?}");
    for (n, wait) in waits.iter().enumerate() {
        let full = Duration::from_millis(250 << n);
        assert!(
            *wait >= full / 2 && *wait <= full,
            "retry {n} waited {wait:?}"
        );
    }
}

// Issue 14, item 6: a `Retry-After` given as an HTTP-date was ignored and
// the request retried after the bare backoff.
#[test]
fn a_retry_after_in_seconds_or_as_an_http_date_is_a_floor_on_the_wait() {
    let (standin, plugin, waits) = with_standin();
    standin.fail_next_with_headers(1, 429, &[("Retry-After", "3")]);
    standin.fail_next_with_headers(
        1,
        503,
        &[
            ("Date", "Mon, 30 Nov 2026 17:00:00 GMT"),
            ("Retry-After", "Mon, 30 Nov 2026 17:00:05 GMT"),
        ],
    );
    plugin
        .send_message(TENANT, sms("+14155550100", "x"))
        .unwrap();
    assert_eq!(
        waits.taken(),
        [Duration::from_secs(3), Duration::from_secs(5)]
    );

    // One beyond the 8 s cap ends the retries: the caller decides when.
    let (standin, plugin, waits) = with_standin();
    standin.fail_next_with_headers(
        1,
        429,
        &[
            ("Date", "Mon, 30 Nov 2026 17:00:00 GMT"),
            ("Retry-After", "Mon, 30 Nov 2026 17:01:00 GMT"),
        ],
    );
    let refused = plugin.send_message(TENANT, sms("+14155550100", "x"));
    assert!(
        matches!(&refused, Err(PluginError::Provider { code, retryable: true, .. }) if code.as_str() == "20429"),
        "{refused:?}"
    );
    assert_eq!((standin.requests().len(), waits.taken().len()), (1, 0));
}

#[test]
fn retries_stop_at_max_retries_with_a_retryable_error() {
    let (standin, plugin, waits) = with_standin();
    standin.fail_next(10, 503);
    let error = plugin
        .send_message(TENANT, sms("+14155550100", "x"))
        .unwrap_err();
    assert!(
        matches!(&error, PluginError::Provider { code, retryable: true, .. } if code.as_str() == "20503"),
        "{error:?}"
    );
    assert_eq!(
        standin.requests().len(),
        4,
        "first attempt and max_retries = 3"
    );
    assert_eq!(waits.taken().len(), 3);
}

#[test]
fn a_status_lookup_is_retried_too() {
    let (standin, plugin, waits) = with_standin();
    let receipt = plugin
        .send_message(TENANT, sms("+14155550100", "x"))
        .unwrap();
    standin.fail_next(2, 429);
    let status = plugin
        .message_status(TENANT, receipt.provider_message_id.as_str().into())
        .unwrap();
    assert_eq!(status.status, DeliveryStatus::Queued);
    assert_eq!(waits.taken().len(), 2);
}

/// Accepts one HTTP request; yields its path and query, signature header and body.
fn one_shot_receiver() -> (u16, JoinHandle<(String, String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let target = request_line.split_whitespace().nth(1).unwrap().to_owned();
        let (mut signature, mut length) = (String::new(), 0usize);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "x-twilio-signature" => signature = value.trim().to_owned(),
                "content-length" => length = value.trim().parse().unwrap(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .unwrap();
        (target, signature, body)
    });
    (port, handle)
}

#[test]
fn a_posted_status_callback_is_verified_and_parsed() {
    let (standin, plugin, _) = with_standin();
    let (port, receiver) = one_shot_receiver();
    let callback_url = format!("http://127.0.0.1:{port}/hooks/twilio/status?tenant={TENANT}");
    let message = OutboundMessage {
        status_callback: ROption::RSome(callback_url.as_str().into()),
        ..sms("+14155550100", "x")
    };
    let receipt = plugin.send_message(TENANT, message).unwrap();
    let sid = receipt.provider_message_id.to_string();

    assert_eq!(
        standin
            .send_status_callback(&sid, "undelivered", Some(30003))
            .unwrap(),
        204
    );
    let (target, signature, body) = receiver.join().unwrap();
    // What the daemon hands over: the URL Twilio called, the raw body, the header.
    let request = WebhookRequest {
        url: format!("http://127.0.0.1:{port}{target}").into(),
        params: Vec::new().into(),
        body: body.into(),
        signature: signature.into(),
    };
    assert!(plugin.verify_webhook(TENANT, request.clone()).unwrap());
    let update = plugin
        .parse_status_callback(TENANT, request.clone())
        .unwrap();
    assert_eq!(update.provider_message_id.as_str(), sid);
    assert_eq!(update.status, DeliveryStatus::Undelivered);
    assert_eq!(update.error_code, ROption::RSome(30003));

    let mut tampered = request.clone();
    tampered.body = String::from_utf8(tampered.body.to_vec())
        .unwrap()
        .replace("undelivered", "delivered")
        .into_bytes()
        .into();
    assert!(!plugin.verify_webhook(TENANT, tampered.clone()).unwrap());
    let refused = plugin.parse_status_callback(TENANT, tampered.clone());
    assert!(
        matches!(refused, Err(PluginError::InvalidRequest { .. })),
        "{refused:?}"
    );
}

#[test]
fn a_status_callback_with_split_params_and_a_default_port_verifies() {
    let (standin, plugin, _) = with_standin();
    // Signed by the stand-in for a URL with :443; the daemon saw it without.
    let message = OutboundMessage {
        status_callback: ROption::RSome("https://isp.example:443/hooks/twilio/status".into()),
        ..sms("+14155550100", "x")
    };
    let sid = plugin
        .send_message(TENANT, message)
        .unwrap()
        .provider_message_id
        .to_string();
    let callback = standin.status_callback(&sid, "delivered", None).unwrap();
    let request = WebhookRequest {
        url: "https://isp.example/hooks/twilio/status".into(),
        params: callback
            .params
            .iter()
            .map(|(n, v)| KeyValue::new(n.as_str(), v.as_str()))
            .collect(),
        body: callback.body().into_bytes().into(),
        signature: callback.signature.as_str().into(),
    };
    let update = plugin
        .parse_status_callback(TENANT, request.clone())
        .unwrap();
    assert_eq!(
        (update.status, update.error_code),
        (DeliveryStatus::Delivered, ROption::RNone)
    );

    // Another tenant's token does not verify it.
    let mut other = standin_config(&standin);
    other["auth_token"] = json!("other-tenant-token");
    plugin.activate(&TenantConfig::new("other", other)).unwrap();
    assert!(!plugin.verify_webhook("other", request.clone()).unwrap());
}

// Issue 14, item 4: Twilio signs the query's `:`, `@` and `'` literally and
// delivers them escaped; the plugin validates what Twilio signed and still
// refuses an escape that changes the query.
#[test]
fn a_status_callback_signed_with_literal_query_characters_verifies_when_delivered_escaped() {
    let (standin, plugin, _) = with_standin();
    let signed_url =
        "https://isp.example/hooks/twilio/status?to=sip:noc@isp.example&site=Sull'Adda";
    let message = OutboundMessage {
        status_callback: ROption::RSome(signed_url.into()),
        ..sms("+14155550100", "x")
    };
    let sid = plugin
        .send_message(TENANT, message)
        .unwrap()
        .provider_message_id
        .to_string();
    let callback = standin.status_callback(&sid, "delivered", None).unwrap();
    assert_eq!(callback.url, signed_url);
    let request = |url: &str| WebhookRequest {
        url: url.into(),
        params: Vec::new().into(),
        body: callback.body().into_bytes().into(),
        signature: callback.signature.as_str().into(),
    };
    let delivered = request(
        "https://isp.example:443/hooks/twilio/status?to=sip%3Anoc%40isp.example&site=Sull%27Adda",
    );
    assert!(plugin.verify_webhook(TENANT, delivered.clone()).unwrap());
    let update = plugin
        .parse_status_callback(TENANT, delivered.clone())
        .unwrap();
    assert_eq!(update.status, DeliveryStatus::Delivered);

    let smuggled = request(
        "https://isp.example/hooks/twilio/status?to=sip%3Anoc%40isp.example%26site=Sull%27Adda",
    );
    assert!(!plugin.verify_webhook(TENANT, smuggled.clone()).unwrap());
}

#[test]
fn a_device_alert_pages_the_on_call_number() {
    let (standin, plugin, _) = with_standin();
    let alert = serde_json::to_vec(&DeviceAlert {
        device: "olt-3.pop1".to_owned(),
        severity: "critical".to_owned(),
        message: "PON port 4 down".to_owned(),
    })
    .unwrap();
    let action = plugin
        .on_hook(HookEvent {
            tenant: TENANT,
            hook: DEVICE_ALERT,
            content_type: "application/json",
            payload: &alert,
        })
        .unwrap();
    assert_eq!(action, HookAction::Continue);
    let sent = standin.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "+14155550123");
    assert_eq!(sent[0].body, "[CRITICAL] olt-3.pop1: PON port 4 down");

    // A failed page is a failed hook, so the host can record it.
    standin.fail_next(10, 500);
    let failed = plugin.on_hook(HookEvent {
        tenant: TENANT,
        hook: DEVICE_ALERT,
        content_type: "application/json",
        payload: &alert,
    });
    assert!(
        matches!(
            failed,
            Err(PluginError::Provider {
                retryable: true,
                ..
            })
        ),
        "{failed:?}"
    );
}

#[test]
fn deactivating_a_tenant_stops_its_traffic() {
    let (standin, plugin, _) = with_standin();
    plugin.deactivate(TENANT).unwrap();
    let result = plugin.send_message(TENANT, sms("+14155550100", "x"));
    assert!(
        matches!(result, Err(PluginError::Unsupported { .. })),
        "{result:?}"
    );
    assert!(standin.requests().is_empty());
    plugin.cleanup().unwrap();
}
