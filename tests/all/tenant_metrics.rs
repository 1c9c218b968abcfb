//! Per-(plugin, tenant) metrics: every call path counts a call once, under
//! the tenant it was made for, and the plugin's totals are the tenants'
//! counts plus what happened outside any tenant (issue 16, part 5).

use plugin_api::categories::*;
use plugin_api::communication::OutboundMessage;
use plugin_host::dispatch::{HookKind, Subscription};
use plugin_host::status::TenantMetricsSnapshot;
use plugin_host::{Host, LoadOptions};
use plugkit_tests::artifacts;

use crate::foundation::new_host;

/// `(calls, errors, panics, permission denials, hook failures)`.
fn counts(m: &TenantMetricsSnapshot) -> (u64, u64, u64, u64, u64) {
    (
        m.calls,
        m.errors,
        m.panics,
        m.permission_denials,
        m.hook_failures,
    )
}

/// fixture-good for `acme` and `globex`, with no permissions and the event
/// hook `billing.event` answered by failing.
fn started() -> (Host, tempfile::TempDir, String) {
    let (host, dir) = new_host();
    let options = LoadOptions {
        config_json: Some(r#"{"hooks": {"billing.event": "fail"}}"#.to_owned()),
        hooks: vec![Subscription {
            plugin: String::new(),
            hook: "billing.event".to_owned(),
            priority: 0,
            kind: HookKind::Event,
            before: Vec::new(),
            after: Vec::new(),
        }],
        ..LoadOptions::default()
    };
    let id = host
        .load(artifacts().library("fixture-good"), options)
        .expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate acme");
    host.activate(&id, "globex", "{}").expect("activate globex");
    (host, dir, id)
}

#[test]
fn per_tenant_counts_are_exact_on_every_call_path() {
    let (host, _dir, id) = started();
    let plugin = host.plugin(&id).expect("handle");
    let message = OutboundMessage {
        to: "+14155550100".into(),
        body: "hi".into(),
        ..Default::default()
    };

    // By name: acme 3 answered, 1 failed, 1 refused a secret (a denial
    // under acme); globex 1 answered, 1 panicked, 1 refused a metric (a
    // denial outside any tenant: the metrics service names none).
    for _ in 0..3 {
        plugin.invoke("acme", "echo", b"x").expect("echo");
    }
    plugin.invoke("acme", "fail", b"").expect_err("fail");
    plugin
        .invoke("acme", "secret", b"api_key")
        .expect_err("denied");
    plugin.invoke("globex", "echo", b"x").expect("echo");
    plugin.invoke("globex", "panic", b"").expect_err("panic");
    plugin.invoke("globex", "metric", b"").expect_err("denied");
    // A tenant the plugin is not active for is refused and counted nowhere.
    plugin
        .invoke("initech", "echo", b"x")
        .expect_err("not active");

    // Typed: globex twice.
    for _ in 0..2 {
        plugin
            .communication()
            .and_then(|c| c.send_message("globex", message.clone()))
            .expect("typed call");
    }

    // Fast path: one method handle alternating between the tenants, so it
    // keeps a counter per tenant (acme 5, globex 2).
    let acme = plugin.tenant("acme").expect("acme");
    let globex = plugin.tenant("globex").expect("globex");
    let mut echo = plugin.method("echo").expect("resolve");
    let mut out = Vec::new();
    for tenant in [&acme, &globex, &acme, &globex, &acme, &acme, &acme] {
        echo.call_into(tenant, b"x", &mut out).expect("fast call");
    }

    // Bound to acme: one call for acme, one for globex through it.
    let bound = plugin.bind("acme").expect("bind");
    for tenant in [bound.tenant(), "globex"] {
        bound
            .communication()
            .and_then(|c| c.send_message(tenant, message.clone()))
            .expect("bound typed call");
    }

    // Hooks: two events for acme, each failing in the subscriber.
    for _ in 0..2 {
        let summary = host
            .emit("acme", "billing.event", "application/json", b"[]")
            .expect("emit");
        assert_eq!(summary.failed, 1, "{summary:?}");
    }

    let expected_acme = (3 + 1 + 1 + 5 + 1 + 2, 1 + 1 + 2, 0, 1, 2);
    let expected_globex = (1 + 1 + 1 + 2 + 2 + 1, 1 + 1, 1, 0, 0);
    let check = |when: &str| {
        let tenants = host.tenant_metrics(&id).expect("tenant metrics");
        assert_eq!(
            tenants.keys().collect::<Vec<_>>(),
            ["acme", "globex"],
            "{when}: only activated tenants have series"
        );
        assert_eq!(counts(&tenants["acme"]), expected_acme, "{when}: acme");
        assert_eq!(
            counts(&tenants["globex"]),
            expected_globex,
            "{when}: globex"
        );
        let total = host.metrics(&id).expect("metrics");
        assert_eq!(
            (
                total.calls,
                total.errors,
                total.panics,
                total.permission_denials,
                total.hook_failures
            ),
            (
                expected_acme.0 + expected_globex.0,
                expected_acme.1 + expected_globex.1,
                1,
                // The metric refusal counts under the plugin only.
                1 + 1,
                2
            ),
            "{when}: plugin totals"
        );
        // The first call of each tenant was timed (one in 256 is).
        assert!(tenants["acme"].latency_p50_ns.is_some(), "{when}");
        assert!(tenants["globex"].latency_buckets.iter().sum::<u64>() >= 1);
    };
    check("with the fast-path handles alive");
    drop((echo, bound));
    check("after they were dropped and folded in");

    // Deactivated and activated again, acme continues its counts.
    host.deactivate(&id, "acme").expect("deactivate");
    host.activate(&id, "acme", "{}").expect("reactivate");
    host.plugin(&id)
        .and_then(|p| p.invoke("acme", "echo", b"x"))
        .expect("echo");
    let acme_now = host.tenant_metrics(&id).expect("tenant metrics")["acme"].calls;
    assert_eq!(acme_now, expected_acme.0 + 1);
}
