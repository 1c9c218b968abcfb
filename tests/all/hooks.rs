//! The hook bus, typed category calls and permission-gated host services,
//! with real plugin libraries.

use std::collections::BTreeSet;

use plugin_api::categories::*;
use plugin_api::communication::{DeliveryStatus, OutboundMessage};
use plugin_api::network_automation::{
    PlaybookRun, SnmpOperation, SnmpRequest, SnmpTarget, SnmpUser, SnmpValue, SnmpVersion,
    SshCommand, TaskStatus,
};
use plugin_api::payment::{
    CapturePayment, ConfirmPayment, CreatePayment, Money, PaymentEventKind, PaymentStatus,
    RefundRequest,
};
use plugin_api::{HealthStatus, KeyValue, PluginError, WebhookRequest};
use plugin_host::dispatch::{FilterError, HookKind, Subscription};
use plugin_host::package::manifest::Permission;
use plugin_host::{Host, HostError, LoadOptions};
use plugkit_tests::{artifacts, with_log_capture};
use tempfile::TempDir;

use crate::foundation::new_host;

fn sub(hook: &str, kind: HookKind, priority: i32, before: &[&str], after: &[&str]) -> Subscription {
    Subscription {
        plugin: String::new(),
        hook: hook.to_owned(),
        priority,
        kind,
        before: before.iter().map(|s| s.to_string()).collect(),
        after: after.iter().map(|s| s.to_string()).collect(),
    }
}

/// Loads `package` with subscriptions and hook behaviour, initialized and
/// active for tenant `acme`.
fn start(
    host: &Host,
    package: &str,
    subs: Vec<Subscription>,
    behaviour: serde_json::Value,
    permissions: &[Permission],
) -> String {
    let options = LoadOptions {
        config_json: Some(behaviour.to_string()),
        hooks: subs,
        permissions: permissions.iter().copied().collect::<BTreeSet<_>>(),
        ..LoadOptions::default()
    };
    let id = host
        .load(artifacts().library(package), options)
        .expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");
    id
}

fn three_filters(b_constraints: (&[&str], &[&str]), actions: [&str; 3]) -> (Host, TempDir) {
    let (host, dir) = new_host();
    let hook = "list.filter";
    start(
        &host,
        "fixture-dep-a",
        vec![sub(hook, HookKind::Filter, 0, &[], &[])],
        serde_json::json!({ "hooks": { hook: actions[0] } }),
        &[],
    );
    start(
        &host,
        "fixture-good",
        vec![sub(hook, HookKind::Filter, 10, &[], &[])],
        serde_json::json!({ "hooks": { hook: actions[1] } }),
        &[],
    );
    start(
        &host,
        "fixture-dep-b",
        vec![sub(
            hook,
            HookKind::Filter,
            5,
            b_constraints.0,
            b_constraints.1,
        )],
        serde_json::json!({ "hooks": { hook: actions[2] } }),
        &[],
    );
    (host, dir)
}

fn run_list_filter(host: &Host) -> Result<(Vec<String>, Vec<String>), FilterError> {
    host.run_filter("acme", "list.filter", "application/json", br#"["start"]"#)
        .map(|out| {
            let list: Vec<String> = serde_json::from_slice(&out.bytes).expect("json list");
            (list, out.ran)
        })
}

#[test]
fn filters_run_by_priority_and_modify_the_payload() {
    let (host, _dir) = three_filters((&[], &[]), ["append:a", "append:good", "append:b"]);
    let (list, ran) = run_list_filter(&host).expect("filter chain");
    assert_eq!(ran, ["dep-a", "dep-b", "fixture-good"]);
    assert_eq!(list, ["start", "a", "b", "good"]);
}

#[test]
fn before_and_after_constraints_override_priority() {
    // dep-b has priority 5 but must run after fixture-good (priority 10).
    let (host, _dir) = three_filters(
        (&[], &["fixture-good"]),
        ["append:a", "append:good", "append:b"],
    );
    let (list, ran) = run_list_filter(&host).expect("filter chain");
    assert_eq!(ran, ["dep-a", "fixture-good", "dep-b"]);
    assert_eq!(list, ["start", "a", "good", "b"]);

    // dep-b must run before dep-a (priority 0).
    let (host, _dir) = three_filters((&["dep-a"], &[]), ["append:a", "append:good", "append:b"]);
    let (_, ran) = run_list_filter(&host).expect("filter chain");
    assert_eq!(ran, ["dep-b", "dep-a", "fixture-good"]);
}

#[test]
fn a_veto_stops_the_chain_and_names_who_vetoed() {
    let (host, _dir) = three_filters(
        (&[], &[]),
        ["append:a", "append:good", "veto:over the credit limit"],
    );
    match run_list_filter(&host) {
        Err(FilterError::Vetoed {
            plugin,
            reason,
            hook,
        }) => {
            assert_eq!(plugin, "dep-b");
            assert_eq!(reason, "over the credit limit");
            assert_eq!(hook, "list.filter");
        }
        other => panic!("expected a veto, got {other:?}"),
    }
    // fixture-good comes after the veto and never ran.
    let good_calls = host.metrics("fixture-good").expect("metrics").calls;
    assert_eq!(good_calls, 0);
}

#[test]
fn a_failing_filter_fails_the_chain_closed() {
    let (host, _dir) = three_filters((&[], &[]), ["panic", "append:good", "append:b"]);
    match run_list_filter(&host) {
        Err(FilterError::Failed {
            plugin, message, ..
        }) => {
            assert_eq!(plugin, "dep-a");
            assert!(message.contains("panicked"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn constraint_cycles_are_errors_naming_the_plugins() {
    let (host, _dir) = new_host();
    let hook = "list.filter";
    start(
        &host,
        "fixture-dep-a",
        vec![sub(hook, HookKind::Filter, 0, &["dep-b"], &[])],
        serde_json::json!({}),
        &[],
    );
    start(
        &host,
        "fixture-dep-b",
        vec![sub(hook, HookKind::Filter, 0, &["dep-a"], &[])],
        serde_json::json!({}),
        &[],
    );
    match run_list_filter(&host) {
        Err(FilterError::Cycle(cycle)) => assert_eq!(cycle.plugins, ["dep-a", "dep-b"]),
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn one_panicking_event_subscriber_does_not_stop_the_others() {
    with_log_capture(|log| {
        let (host, _dir) = new_host();
        let hook = plugin_api::hooks::DEVICE_ALERT;
        start(
            &host,
            "fixture-dep-a",
            vec![sub(hook, HookKind::Event, 0, &[], &[])],
            serde_json::json!({ "hooks": { hook: "panic" } }),
            &[],
        );
        start(
            &host,
            "fixture-good",
            vec![sub(hook, HookKind::Event, 1, &[], &[])],
            serde_json::json!({}),
            &[],
        );
        start(
            &host,
            "fixture-dep-b",
            vec![sub(hook, HookKind::Event, 2, &[], &[])],
            serde_json::json!({ "hooks": { hook: "fail" } }),
            &[],
        );
        let alert = plugin_api::hooks::DeviceAlert {
            device: "cpe-17".to_owned(),
            severity: "critical".to_owned(),
            message: "link down".to_owned(),
        };
        let report = host.fire_json("acme", hook, &alert).expect("fire");
        assert_eq!(report.delivered, ["fixture-good"]);
        let failed: Vec<&str> = report.failures.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(failed, ["dep-a", "dep-b"]);
        assert!(
            report.failures[0].1.contains("panicked"),
            "{:?}",
            report.failures
        );
        let metrics = host.metrics("dep-a").expect("metrics");
        assert_eq!((metrics.hook_failures, metrics.panics), (1, 1));
        assert_eq!(host.metrics("dep-b").expect("metrics").hook_failures, 1);
        // Failures are logged with the plugin id.
        assert!(log
            .matching("event subscriber failed")
            .iter()
            .any(|l| l.contains("plugin=dep-a")));
    });
}

#[test]
fn hooks_reach_only_plugins_active_for_the_tenant() {
    let (host, _dir) = new_host();
    let hook = plugin_api::hooks::INVOICE_PAID;
    start(
        &host,
        "fixture-good",
        vec![sub(hook, HookKind::Event, 0, &[], &[])],
        serde_json::json!({}),
        &[],
    );
    let report = host
        .fire_json("other-isp", hook, &serde_json::json!({}))
        .expect("fire");
    assert!(report.delivered.is_empty());
    let report = host
        .fire_json("acme", hook, &serde_json::json!({}))
        .expect("fire");
    assert_eq!(report.delivered, ["fixture-good"]);
}

#[test]
fn typed_communication_calls_round_trip_every_field() {
    let (host, _dir) = new_host();
    let id = start(&host, "fixture-good", vec![], serde_json::json!({}), &[]);
    let plugin = host.plugin(&id).expect("handle");
    let message = OutboundMessage {
        to: "+14155550100".into(),
        body: "Welcome to Acme Fiber ✓".into(),
        from: Some("+14155550199".into()).into(),
        media_urls: vec![
            "https://example.com/a.png".into(),
            "https://example.com/b.png".into(),
        ]
        .into(),
        status_callback: Some("https://isp.example/cb?x=1".into()).into(),
    };
    let receipt = plugin
        .communication()
        .and_then(|c| c.send_message("acme", message.clone()))
        .expect("send");
    let echoed: OutboundMessage =
        serde_json::from_str(receipt.provider_message_id.as_str()).expect("json");
    assert_eq!(echoed, message);
    assert_eq!(receipt.status, DeliveryStatus::Queued);
    assert_eq!(receipt.segments as usize, message.body.len());
    assert_eq!(receipt.error_code.into_option(), Some(21211));
    assert_eq!(
        receipt.error_message.into_option().map(|s| s.to_string()),
        Some("acme".to_owned())
    );

    let status = plugin
        .communication()
        .and_then(|c| c.message_status("acme", "SM123".into()))
        .expect("status");
    assert_eq!(
        (status.provider_message_id.as_str(), status.status),
        ("SM123", DeliveryStatus::Delivered)
    );

    let request = WebhookRequest {
        url: "https://isp.example/hook?a=1".into(),
        params: vec![KeyValue::new("From", "+1"), KeyValue::new("Body", "hi")].into(),
        body: b"raw".to_vec().into(),
        signature: String::new().into(),
    };
    let signed = WebhookRequest {
        signature: serde_json::to_string(&(&request.url, &request.params, &request.body))
            .expect("json")
            .into(),
        ..request.clone()
    };
    assert!(plugin
        .communication()
        .and_then(|c| c.verify_webhook("acme", signed))
        .expect("verify"));
    assert!(!plugin
        .communication()
        .and_then(|c| c.verify_webhook("acme", request.clone()))
        .expect("verify"));
    let update = plugin
        .communication()
        .and_then(|c| c.parse_status_callback("acme", request.clone()))
        .expect("callback");
    let echoed: WebhookRequest =
        serde_json::from_str(update.provider_message_id.as_str()).expect("json");
    assert_eq!(echoed, request);
    assert_eq!(update.error_code.into_option(), Some(30003));
}

#[test]
fn typed_payment_calls_round_trip_every_field() {
    let (host, _dir) = new_host();
    let id = start(&host, "fixture-good", vec![], serde_json::json!({}), &[]);
    let plugin = host.plugin(&id).expect("handle");
    let create = CreatePayment {
        amount: Money {
            amount_minor: 4_999,
            currency: "usd".into(),
        },
        customer: Some("cus_1".into()).into(),
        payment_method: Some("pm_card_visa".into()).into(),
        confirm: true,
        manual_capture: true,
        description: Some("First month".into()).into(),
        metadata: vec![
            KeyValue::new("invoice", "inv_7"),
            KeyValue::new("tenant", "acme"),
        ]
        .into(),
        idempotency_key: "idem-1".into(),
    };
    let payment = plugin
        .payment()
        .and_then(|c| c.create_payment("acme", create.clone()))
        .expect("create");
    let echoed: CreatePayment = serde_json::from_str(payment.id.as_str()).expect("json");
    assert_eq!(echoed, create);
    assert_eq!(payment.status, PaymentStatus::RequiresCapture);
    assert_eq!(payment.amount_capturable, 4_999);
    assert_eq!(
        payment.latest_charge.into_option().map(|s| s.to_string()),
        Some("acme".to_owned())
    );

    let confirm = ConfirmPayment {
        payment_id: "pi_1".into(),
        payment_method: None.into(),
        idempotency_key: "idem-2".into(),
    };
    let echoed: ConfirmPayment = serde_json::from_str(
        plugin
            .payment()
            .and_then(|c| c.confirm_payment("acme", confirm.clone()))
            .expect("confirm")
            .id
            .as_str(),
    )
    .expect("json");
    assert_eq!(echoed, confirm);
    let capture = CapturePayment {
        payment_id: "pi_1".into(),
        amount_minor: Some(1_000).into(),
        idempotency_key: "idem-3".into(),
    };
    let captured = plugin
        .payment()
        .and_then(|c| c.capture_payment("acme", capture.clone()))
        .expect("capture");
    assert_eq!(
        serde_json::from_str::<CapturePayment>(captured.id.as_str()).expect("json"),
        capture
    );
    assert_eq!(
        (captured.amount_received, captured.status),
        (1_000, PaymentStatus::Succeeded)
    );
    let refund = RefundRequest {
        payment_id: "pi_1".into(),
        amount_minor: Some(250).into(),
        reason: Some("requested_by_customer".into()).into(),
        idempotency_key: "idem-4".into(),
    };
    let refunded = plugin
        .payment()
        .and_then(|c| c.refund("acme", refund.clone()))
        .expect("refund");
    assert_eq!(
        serde_json::from_str::<RefundRequest>(refunded.id.as_str()).expect("json"),
        refund
    );
    assert_eq!(refunded.amount.amount_minor, 250);

    let event = plugin
        .payment()
        .and_then(|c| c.parse_webhook("acme", WebhookRequest::default()))
        .expect("webhook");
    assert_eq!(event.kind, PaymentEventKind::ChargeRefunded);
    assert_eq!(event.amount.into_option().map(|m| m.amount_minor), Some(-5));
    assert_eq!(event.created, 1_700_000_000);
}

#[test]
fn typed_network_calls_round_trip_every_field() {
    let (host, _dir) = new_host();
    let id = start(&host, "fixture-good", vec![], serde_json::json!({}), &[]);
    let plugin = host.plugin(&id).expect("handle");
    let request = SnmpRequest {
        target: SnmpTarget {
            address: "127.0.0.1:1161".into(),
            version: SnmpVersion::V3,
            community: None.into(),
            user: Some(SnmpUser {
                user: "testuser".into(),
                auth_protocol: "SHA".into(),
                auth_password: "authpass123".into(),
                priv_protocol: "AES".into(),
                priv_password: "privpass123".into(),
            })
            .into(),
            timeout_ms: 1500,
            retries: 2,
        },
        operation: SnmpOperation::GetBulk {
            non_repeaters: 1,
            max_repetitions: 10,
        },
        oids: vec!["1.3.6.1.2.1.1.1.0".into(), "1.3.6.1.2.1.2.2".into()].into(),
    };
    let binds = plugin
        .network_automation()
        .and_then(|c| c.snmp("acme", request.clone()))
        .expect("snmp");
    assert_eq!(binds.len(), 13, "every SnmpValue variant");
    for bind in &binds {
        let echoed: SnmpRequest = serde_json::from_str(bind.oid.as_str()).expect("json");
        assert_eq!(echoed, request);
    }
    assert_eq!(binds[0].value, SnmpValue::Integer(-42));
    assert_eq!(
        binds[1].value,
        SnmpValue::OctetString(b"acme".to_vec().into())
    );
    assert_eq!(binds[7].value, SnmpValue::Counter64(u64::MAX));
    assert_eq!(binds[12].value, SnmpValue::EndOfMibView);

    let command = SshCommand {
        host: "cpe-1".into(),
        port: 2222,
        user: "ops".into(),
        command: "show version".into(),
        timeout_ms: 5000,
    };
    let out = plugin
        .network_automation()
        .and_then(|c| c.ssh_exec("acme", command.clone()))
        .expect("ssh");
    assert_eq!(
        serde_json::from_slice::<SshCommand>(&out.stdout).expect("json"),
        command
    );
    assert_eq!(
        (out.stderr.as_slice(), out.exit_status.into_option()),
        (&b"acme"[..], Some(3))
    );

    let run = PlaybookRun {
        playbook: "site.yml".into(),
        inventory: "[all]\nlocalhost".into(),
        extra_vars_json: "{\"a\":1}".into(),
        limit: Some("localhost".into()).into(),
        timeout_ms: 60_000,
    };
    let report = plugin
        .network_automation()
        .and_then(|c| c.run_playbook("acme", run.clone()))
        .expect("playbook");
    assert_eq!(
        serde_json::from_str::<PlaybookRun>(report.tasks[0].task.as_str()).expect("json"),
        run
    );
    assert_eq!(report.tasks[0].status, TaskStatus::Unreachable);
    let recap = &report.hosts[0];
    assert_eq!(
        (
            recap.ok,
            recap.changed,
            recap.failed,
            recap.unreachable,
            recap.skipped
        ),
        (1, 2, 3, 4, 5)
    );
}

#[test]
fn a_plugin_without_an_extension_says_so() {
    let (host, _dir) = new_host();
    let id = start(&host, "fixture-dep-a", vec![], serde_json::json!({}), &[]);
    let err = host
        .plugin(&id)
        .expect("handle")
        .communication()
        .and_then(|c| c.send_message("acme", OutboundMessage::default()))
        .expect_err("dep-a is no communication provider");
    assert!(
        matches!(
            err,
            HostError::MissingExtension {
                extension: "communication",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(host.plugins_with("payment").unwrap(), Vec::<String>::new());
    start(&host, "fixture-good", vec![], serde_json::json!({}), &[]);
    assert_eq!(host.plugins_with("payment").unwrap(), ["fixture-good"]);
    assert_eq!(
        host.providers::<plugin_api::payment::Contract>(),
        ["fixture-good"]
    );
    // A typo is an error naming what the host knows, never an empty list.
    let typo = host.plugins_with("payments").unwrap_err();
    assert!(
        matches!(&typo, HostError::UnknownExtension { name, known }
            if name == "payments" && known.contains("network-automation")),
        "{typo}"
    );
    assert_eq!(
        host.plugins_in_category("custom"),
        ["dep-a", "fixture-good"]
    );
    assert!(host
        .provider_for_tenant::<plugin_api::payment::Contract>("acme")
        .is_some());
    assert!(host
        .provider_for_tenant::<plugin_api::payment::Contract>("nobody")
        .is_none());
}

#[test]
fn host_services_are_refused_without_the_declared_permission() {
    with_log_capture(|log| {
        let (host, _dir) = new_host();
        let id = start(&host, "fixture-good", vec![], serde_json::json!({}), &[]);
        let plugin = host.plugin(&id).expect("handle");
        for (method, permission) in [
            ("secret", "secrets:read"),
            ("state_put", "storage:write"),
            ("state_get", "storage:read"),
            ("emit", "hooks:emit"),
            ("metric", "metrics:write"),
        ] {
            let err = plugin.invoke("acme", method, b"x").expect_err(method);
            match err {
                HostError::CallFailed { error, .. } => assert_eq!(
                    *error,
                    PluginError::PermissionDenied {
                        permission: permission.into()
                    }
                ),
                other => panic!("{method}: expected PermissionDenied, got {other}"),
            }
        }
        assert_eq!(host.metrics(&id).expect("metrics").permission_denials, 5);
        assert_eq!(log.matching("permission not declared").len(), 5);
    });
}

#[test]
fn host_services_work_with_the_declared_permissions() {
    let (host, _dir) = new_host();
    let id = start(
        &host,
        "fixture-good",
        vec![sub("list.event", HookKind::Event, 0, &[], &[])],
        serde_json::json!({}),
        &[
            Permission::SecretsRead,
            Permission::StorageRead,
            Permission::StorageWrite,
            Permission::HooksEmit,
            Permission::MetricsWrite,
        ],
    );
    // Secrets reach a plugin only in its tenant configuration (tenancy
    // resolves references there); the secret service reads that value.
    host.deactivate(&id, "acme").expect("deactivate acme");
    host.activate(&id, "acme", r#"{"api_key": "s3cr3t"}"#)
        .expect("activate acme with its secret");
    host.activate(&id, "other", "{}").expect("activate other");
    let plugin = host.plugin(&id).expect("handle");
    assert_eq!(
        plugin.invoke("acme", "secret", b"api_key").expect("secret"),
        b"s3cr3t"
    );
    assert!(
        plugin.invoke("other", "secret", b"api_key").is_err(),
        "secrets are per tenant"
    );
    plugin.invoke("acme", "state_put", b"kept").expect("put");
    assert_eq!(
        plugin.invoke("acme", "state_get", b"").expect("get"),
        b"kept"
    );
    assert_eq!(
        plugin.invoke("other", "state_get", b"").expect("get"),
        b"",
        "state is per tenant"
    );
    // The plugin raises a hook it subscribes to itself: the bus delivers it.
    plugin.invoke("acme", "emit", b"list.event").expect("emit");
    plugin.invoke("acme", "metric", b"").expect("metric");
    let metrics = host.metrics(&id).expect("metrics");
    assert_eq!(metrics.custom.get("fixture.value"), Some(&42.0));
    assert!(metrics.calls >= 6);
}

#[test]
fn health_is_aggregated_to_the_worst_plugin() {
    let (host, _dir) = new_host();
    start(&host, "fixture-good", vec![], serde_json::json!({}), &[]);
    assert_eq!(host.health().status, HealthStatus::Healthy);
    start(
        &host,
        "fixture-dep-a",
        vec![],
        serde_json::json!({ "health": "degraded:upstream slow" }),
        &[],
    );
    let report = host.health();
    assert_eq!(report.status, HealthStatus::Degraded);
    let entry = report
        .plugins
        .iter()
        .find(|p| p.plugin == "dep-a")
        .expect("dep-a");
    assert_eq!(entry.message, "upstream slow");
    start(
        &host,
        "fixture-dep-b",
        vec![],
        serde_json::json!({ "health": "unhealthy:no credentials" }),
        &[],
    );
    assert_eq!(host.health().status, HealthStatus::Unhealthy);
}

#[test]
fn calls_for_a_tenant_the_plugin_is_not_active_for_are_refused() {
    let (host, _dir) = new_host();
    let id = start(&host, "fixture-good", vec![], serde_json::json!({}), &[]);
    let plugin = host.plugin(&id).expect("handle");
    let err = plugin
        .invoke("other-isp", "echo", b"x")
        .expect_err("inactive tenant");
    assert!(
        matches!(&err, HostError::NotActive { plugin, tenant } if plugin == "fixture-good" && tenant == "other-isp"),
        "{err}"
    );
    let err = plugin
        .communication()
        .and_then(|c| c.send_message("other-isp", OutboundMessage::default()))
        .expect_err("inactive tenant");
    assert!(matches!(err, HostError::NotActive { .. }), "{err}");
    // Nothing reached the plugin.
    assert_eq!(host.metrics(&id).expect("metrics").calls, 0);
    // After deactivation, a fresh handle refuses the tenant too.
    host.deactivate(&id, "acme").expect("deactivate");
    let err = host
        .plugin(&id)
        .expect("handle")
        .invoke("acme", "echo", b"x")
        .expect_err("deactivated");
    assert!(matches!(err, HostError::NotActive { .. }), "{err}");
}
