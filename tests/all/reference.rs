//! The three reference plugins, built as cdylibs and installed with their
//! real manifests, started by a real host and driven through it: Twilio and
//! Stripe against their local stand-ins, network automation against the real
//! snmpd and sshd started by the test.

use std::path::{Path, PathBuf};

use plugin_api::categories::*;
use plugin_api::communication::OutboundMessage;
use plugin_api::network_automation::{
    SnmpOperation, SnmpRequest, SnmpTarget, SnmpValue, SnmpVersion, SshCommand,
};
use plugin_api::payment::{CapturePayment, CreatePayment, Money, PaymentStatus, RefundRequest};
use plugin_api::{KeyValue, WebhookRequest};
use plugin_host::isolation::Isolation;
use plugin_host::{Host, HostConfig};
use plugkit_standins::stripe::{StripeStandIn, StripeStandInConfig};
use plugkit_standins::twilio::{TwilioStandIn, TwilioStandInConfig};
use plugkit_testkit::process::workspace_root;
use plugkit_tests::artifacts;
use tempfile::TempDir;

use crate::foundation::new_host;

/// Installs plugin `name` from `plugins/<name>` (manifest) and its built cdylib.
fn install_reference(dir: &Path, name: &str) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).expect("mkdir");
    let manifest = workspace_root()
        .join("plugins")
        .join(name)
        .join("plugin.toml");
    std::fs::copy(&manifest, folder.join("plugin.toml")).expect("copy manifest");
    let library = artifacts().library(&format!("plugkit-{name}"));
    std::fs::copy(library, folder.join(library.file_name().expect("name"))).expect("copy library");
    folder
}

#[test]
fn reference_plugins_start_from_their_manifests() {
    let (host, dir) = new_host();
    let plugins = dir.path().join("plugins");
    for name in ["twilio", "stripe", "network-automation"] {
        install_reference(&plugins, name);
    }
    let report = host.start_installed(&[plugins]);
    assert!(report.problems().is_empty(), "{:#?}", report.problems());
    assert_eq!(report.started, ["network-automation", "stripe", "twilio"]);
    assert_eq!(host.plugins_with("communication").unwrap(), ["twilio"]);
    assert_eq!(host.plugins_with("payment").unwrap(), ["stripe"]);
    assert_eq!(
        host.plugins_with("network-automation").unwrap(),
        ["network-automation"]
    );
    assert_eq!(host.providers_of("sms"), ["twilio"]);
    let errors = host.stop_all();
    assert!(errors.is_empty(), "{errors:?}");
}

/// A host that runs every plugin in a sandboxed child process (issue 13).
fn new_isolating_host() -> (Host, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = HostConfig::with_runtime_dir(dir.path().join("runtime"));
    config.runner = Some(artifacts().runner().to_owned());
    config.isolation.default = Isolation::Process;
    (Host::new(config).expect("host"), dir)
}

#[test]
fn twilio_sends_through_the_host_to_the_stand_in() {
    twilio_sends(new_host, false);
}

#[test]
fn twilio_sends_from_a_sandboxed_child_process() {
    twilio_sends(new_isolating_host, true);
}

#[test]
fn stripe_charges_captures_and_refunds_through_the_host() {
    stripe_charges(new_host, false);
}

#[test]
fn stripe_charges_from_a_sandboxed_child_process() {
    stripe_charges(new_isolating_host, true);
}

fn twilio_sends(new_host: fn() -> (Host, TempDir), isolated: bool) {
    let standin = TwilioStandIn::start(TwilioStandInConfig::default()).expect("stand-in");
    let (host, dir) = new_host();
    install_reference(&dir.path().join("plugins"), "twilio");
    let report = host.start_installed(&[dir.path().join("plugins")]);
    assert_eq!(report.started, ["twilio"], "{:#?}", report.problems());
    assert_eq!(host.isolation_status("twilio").is_some(), isolated);
    let config = serde_json::json!({
        "account_sid": standin.account_sid(),
        "auth_token": standin.auth_token(),
        "from_number": "+15005550006",
        "base_url": standin.base_url(),
        "on_call_number": "+14155550123",
    });
    host.activate("twilio", "acme", &config.to_string())
        .expect("activate");
    let plugin = host.plugin("twilio").expect("handle");
    let receipt = plugin
        .communication()
        .and_then(|c| {
            c.send_message(
                "acme",
                OutboundMessage {
                    to: "+14155550100".into(),
                    body: "Welcome to Acme Fiber".into(),
                    ..OutboundMessage::default()
                },
            )
        })
        .expect("send");
    assert!(receipt.provider_message_id.starts_with("SM"), "{receipt:?}");
    let sent = standin.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].to.as_str(), sent[0].body.as_str()),
        ("+14155550100", "Welcome to Acme Fiber")
    );

    // A typed provider error crosses the host boundary intact.
    let err = plugin
        .communication()
        .and_then(|c| {
            c.send_message(
                "acme",
                OutboundMessage {
                    to: "+15005550001".into(),
                    body: "x".into(),
                    ..OutboundMessage::default()
                },
            )
        })
        .expect_err("invalid To");
    assert!(err.to_string().contains("21211"), "{err}");

    // The device.alert hook pages the on-call number.
    host.fire_json(
        "acme",
        plugin_api::hooks::DEVICE_ALERT,
        &plugin_api::hooks::DeviceAlert {
            device: "cpe-17".to_owned(),
            severity: "critical".to_owned(),
            message: "link down".to_owned(),
        },
    )
    .expect("fire");
    let sent = standin.sent_messages();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].to, "+14155550123");
    assert!(sent[1].body.contains("link down"), "{}", sent[1].body);
}

fn stripe_charges(new_host: fn() -> (Host, TempDir), isolated: bool) {
    let standin = StripeStandIn::start(StripeStandInConfig::default()).expect("stand-in");
    let (host, dir) = new_host();
    install_reference(&dir.path().join("plugins"), "stripe");
    let report = host.start_installed(&[dir.path().join("plugins")]);
    assert_eq!(report.started, ["stripe"], "{:#?}", report.problems());
    assert_eq!(host.isolation_status("stripe").is_some(), isolated);
    let config = serde_json::json!({
        "secret_key": standin.secret_key(),
        "webhook_secret": standin.webhook_secret(),
        "base_url": standin.base_url(),
    });
    host.activate("stripe", "acme", &config.to_string())
        .expect("activate");
    let plugin = host.plugin("stripe").expect("handle");
    let payment = plugin
        .payment()
        .and_then(|c| {
            c.create_payment(
                "acme",
                CreatePayment {
                    amount: Money {
                        amount_minor: 4_999,
                        currency: "usd".into(),
                    },
                    customer: None.into(),
                    payment_method: Some("pm_card_visa".into()).into(),
                    confirm: true,
                    manual_capture: true,
                    description: Some("First month".into()).into(),
                    metadata: vec![KeyValue::new("tenant", "acme")].into(),
                    idempotency_key: "acme-cus1-m1".into(),
                },
            )
        })
        .expect("create");
    assert_eq!(
        payment.status,
        PaymentStatus::RequiresCapture,
        "{payment:?}"
    );
    let captured = plugin
        .payment()
        .and_then(|c| {
            c.capture_payment(
                "acme",
                CapturePayment {
                    payment_id: payment.id.clone(),
                    amount_minor: None.into(),
                    idempotency_key: "cap-1".into(),
                },
            )
        })
        .expect("capture");
    assert_eq!(
        (captured.status, captured.amount_received),
        (PaymentStatus::Succeeded, 4_999)
    );
    let refund = plugin
        .payment()
        .and_then(|c| {
            c.refund(
                "acme",
                RefundRequest {
                    payment_id: payment.id.clone(),
                    amount_minor: Some(999).into(),
                    reason: None.into(),
                    idempotency_key: "ref-1".into(),
                },
            )
        })
        .expect("refund");
    assert_eq!(refund.amount.amount_minor, 999);

    // A webhook the stand-in signs verifies and parses through the host.
    let event = standin
        .events()
        .into_iter()
        .find(|e| e.event_type == "payment_intent.succeeded")
        .expect("succeeded event");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let parsed = plugin
        .payment()
        .and_then(|c| {
            c.parse_webhook(
                "acme",
                WebhookRequest {
                    url: "https://isp.example/stripe".into(),
                    params: Vec::new().into(),
                    body: event.body.as_bytes().to_vec().into(),
                    signature: standin.signature_header(&event.body, now).into(),
                },
            )
        })
        .expect("webhook");
    assert_eq!(
        parsed.payment_id.into_option().map(|s| s.to_string()),
        Some(payment.id.to_string())
    );
}

#[test]
fn network_automation_queries_the_real_snmpd_and_sshd_through_the_host() {
    network_automation_queries(new_host);
}

#[test]
fn network_automation_queries_from_a_sandboxed_child_process() {
    network_automation_queries(new_isolating_host);
}

fn network_automation_queries(new_host: fn() -> (Host, TempDir)) {
    let snmpd = plugkit_testkit::snmpd::Snmpd::shared().expect("snmpd");
    let sshd = plugkit_testkit::sshd::Sshd::shared().expect("sshd");
    let (host, dir) = new_host();
    install_reference(&dir.path().join("plugins"), "network-automation");
    let report = host.start_installed(&[dir.path().join("plugins")]);
    assert_eq!(
        report.started,
        ["network-automation"],
        "{:#?}",
        report.problems()
    );
    let config = serde_json::json!({
        "snmp_community": "public",
        "ssh_user": sshd.user(),
        "ssh_private_key_path": sshd.client_key_path(),
        "ssh_known_hosts": [sshd.host_key_pin()],
    });
    host.activate("network-automation", "acme", &config.to_string())
        .expect("activate");
    let plugin = host.plugin("network-automation").expect("handle");
    let binds = plugin
        .network_automation()
        .and_then(|c| {
            c.snmp(
                "acme",
                SnmpRequest {
                    target: SnmpTarget {
                        address: snmpd.address().into(),
                        version: SnmpVersion::V2c,
                        community: None.into(),
                        user: None.into(),
                        timeout_ms: 2_000,
                        retries: 1,
                    },
                    operation: SnmpOperation::Get,
                    oids: vec!["1.3.6.1.2.1.1.1.0".into()].into(),
                },
            )
        })
        .expect("snmp get");
    match &binds[0].value {
        SnmpValue::OctetString(text) => assert!(text.starts_with(b"Linux"), "{binds:?}"),
        other => panic!("sysDescr: {other:?}"),
    }
    let out = plugin
        .network_automation()
        .and_then(|c| {
            c.ssh_exec(
                "acme",
                SshCommand {
                    host: "127.0.0.1".into(),
                    port: sshd.port(),
                    user: sshd.user().into(),
                    command: "echo provisioned".into(),
                    timeout_ms: 10_000,
                },
            )
        })
        .expect("ssh");
    assert_eq!(out.stdout.as_slice(), b"provisioned\n");
    assert_eq!(out.exit_status.into_option(), Some(0));
    host.cleanup("network-automation")
        .expect("cleanup stops the runtime");
}
