//! The fast in-process call path (`plugin_host::fast`): method and tenant
//! handles resolved once, replies into the caller's buffer. It answers as
//! the by-name path does, keeps panics, tenant checks, counts and hot
//! reloads safe, and falls back for plugins built before it existed.

use plugin_api::categories::*;
use plugin_api::communication::OutboundMessage;
use plugin_host::{Host, HostError, LoadOptions};
use plugkit_tests::artifacts;

use crate::foundation::new_host;

fn started(package: &str) -> (Host, tempfile::TempDir, String) {
    let (host, dir) = new_host();
    let id = host
        .load(artifacts().library(package), LoadOptions::default())
        .expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");
    (host, dir, id)
}

#[test]
fn the_fast_path_answers_as_invoke_does_for_native_and_by_name_tables() {
    // bench-arith exports a native table (`FastService`), fixture-good the
    // by-name table every `service` plugin gets.
    let (host, _dir, id) = started("plugkit-bench-arith");
    let plugin = host.plugin(&id).expect("handle");
    let acme = plugin.tenant("acme").expect("tenant");
    let mut reply = Vec::new();
    let kib: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    for (method, input) in [
        ("add_one", &41u64.to_le_bytes()[..]),
        ("add_one", &u64::MAX.to_le_bytes()[..]),
        ("sum", &kib[..]),
        ("nothing", &[][..]),
    ] {
        let mut handle = plugin.method(method).expect("resolve");
        handle
            .call_into(&acme, input, &mut reply)
            .expect("fast call");
        let slow = plugin.invoke("acme", method, input).expect("invoke");
        assert_eq!(reply, slow, "{method}");
    }
    let mut add_one = plugin.method("add_one").expect("resolve");
    let wrong = add_one.call(&acme, &[1, 2, 3]).unwrap_err();
    let by_name = plugin.invoke("acme", "add_one", &[1, 2, 3]).unwrap_err();
    assert_eq!(wrong.to_string(), by_name.to_string());
    let unknown = plugin.method("mul").err().expect("unknown method refused");
    assert!(
        matches!(&unknown, HostError::UnknownMethod { method, .. } if method == "mul"),
        "{unknown}"
    );
    assert!(unknown.to_string().contains("bench-arith"), "{unknown}");

    let (host, _dir, id) = started("fixture-good");
    let plugin = host.plugin(&id).expect("handle");
    let acme = plugin.tenant("acme").expect("tenant");
    let mut echo = plugin.method("echo").expect("resolve");
    // A reply larger than the buffer grows it through the host.
    let mut small = Vec::with_capacity(4);
    echo.call_into(&acme, &kib, &mut small).expect("echo");
    assert_eq!(small, kib);
    let mut count = plugin.method("count").expect("resolve");
    assert_eq!(count.call(&acme, b"").expect("count"), b"1");
    assert_eq!(plugin.invoke("acme", "count", b"").expect("count"), b"2");
}

#[test]
fn a_panic_through_the_fast_path_is_an_error_and_the_plugin_keeps_serving() {
    let (host, _dir, id) = started("fixture-good");
    let plugin = host.plugin(&id).expect("handle");
    let acme = plugin.tenant("acme").expect("tenant");
    let mut panic = plugin.method("panic").expect("resolve");
    let err = panic.call(&acme, b"").unwrap_err();
    assert!(
        matches!(&err, HostError::CallPanicked { message, .. } if message.contains("panics on request")),
        "{err}"
    );
    let mut fail = plugin.method("fail").expect("resolve");
    let err = fail.call(&acme, b"").unwrap_err();
    assert!(matches!(err, HostError::CallFailed { .. }), "{err}");
    let mut echo = plugin.method("echo").expect("resolve");
    assert_eq!(
        echo.call(&acme, b"still here").expect("echo"),
        b"still here"
    );
    let metrics = host.metrics(&id).expect("metrics");
    assert_eq!((metrics.errors, metrics.panics), (2, 1));
}

#[test]
fn a_tenant_handle_is_refused_after_the_tenant_is_deactivated() {
    let (host, _dir, id) = started("plugkit-bench-arith");
    let plugin = host.plugin(&id).expect("handle");
    let acme = plugin.tenant("acme").expect("tenant");
    let mut add_one = plugin.method("add_one").expect("resolve");
    assert!(add_one.call(&acme, &1u64.to_le_bytes()).is_ok());
    let bound = plugin.bind("acme").expect("bind");

    host.deactivate(&id, "acme").expect("deactivate");
    let err = add_one.call(&acme, &1u64.to_le_bytes()).unwrap_err();
    assert!(
        matches!(&err, HostError::NotActive { tenant, .. } if tenant == "acme"),
        "{err}"
    );
    assert!(
        plugin.tenant("acme").is_err(),
        "a new handle is refused too"
    );
    assert!(matches!(
        plugin.tenant("globex"),
        Err(HostError::NotActive { .. })
    ));
    drop(bound);

    host.activate(&id, "acme", "{}").expect("reactivate");
    assert!(
        add_one.call(&acme, &1u64.to_le_bytes()).is_ok(),
        "active again"
    );

    // A tenant handle of another plugin is refused by name.
    let (other_host, _other_dir, other) = started("fixture-good");
    let foreign = other_host
        .plugin(&other)
        .and_then(|p| p.tenant("acme"))
        .expect("tenant of another plugin");
    let err = add_one.call(&foreign, &1u64.to_le_bytes()).unwrap_err();
    assert!(matches!(err, HostError::ForeignHandle { .. }), "{err}");
}

#[test]
fn typed_category_calls_through_a_bound_handle_check_the_tenant_and_count() {
    let (host, _dir, id) = started("fixture-good");
    host.activate(&id, "globex", "{}").expect("activate globex");
    let plugin = host.plugin(&id).expect("handle");
    let bound = plugin.bind("acme").expect("bind");
    let message = OutboundMessage {
        to: "+14155550100".into(),
        body: "hi".into(),
        ..Default::default()
    };
    let before = host.metrics(&id).expect("metrics").calls;
    let fast = bound
        .communication()
        .and_then(|c| c.send_message(bound.tenant(), message.clone()))
        .expect("bound typed call");
    let slow = plugin
        .communication()
        .and_then(|c| c.send_message("acme", message.clone()))
        .expect("typed call");
    assert_eq!(fast, slow);
    // Another active tenant through the same bound handle takes the set lookup.
    let globex = bound
        .communication()
        .and_then(|c| c.send_message("globex", message.clone()))
        .expect("another active tenant");
    assert_eq!(globex.error_message, Some("globex".into()).into());
    assert_eq!(host.metrics(&id).expect("metrics").calls, before + 3);

    host.deactivate(&id, "acme").expect("deactivate");
    let err = bound
        .communication()
        .and_then(|c| c.send_message(bound.tenant(), message.clone()))
        .unwrap_err();
    assert!(matches!(err, HostError::NotActive { .. }), "{err}");
    let err = bound
        .communication()
        .and_then(|c| c.send_message("initech", message))
        .unwrap_err();
    assert!(matches!(err, HostError::NotActive { .. }), "{err}");
}

#[test]
fn calls_from_many_threads_are_counted_exactly() {
    const THREADS: u64 = 4;
    const CALLS: u64 = 10_000;
    let (host, _dir, id) = started("plugkit-bench-arith");
    let plugin = host.plugin(&id).expect("handle");
    let acme = plugin.tenant("acme").expect("tenant");
    let add_one = plugin.method("add_one").expect("resolve");
    let bound = plugin.bind("acme").expect("bind");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let mut add_one = add_one.clone();
            let acme = &acme;
            s.spawn(move || {
                let mut out = Vec::with_capacity(8);
                for i in 0..CALLS {
                    add_one
                        .call_into(acme, &(t * CALLS + i).to_le_bytes(), &mut out)
                        .expect("call");
                    assert_eq!(out, (t * CALLS + i + 1).to_le_bytes());
                }
            });
        }
    });
    // Handles still alive: the snapshot sums their counters.
    let metrics = host.metrics(&id).expect("metrics");
    assert_eq!(metrics.calls, THREADS * CALLS);
    assert!(metrics.latency_p50_ns.is_some(), "latency was sampled");
    assert!(plugin.invoke("acme", "nothing", b"").is_ok());
    drop((add_one, bound));
    // Dropped handles were folded into the totals.
    assert_eq!(
        host.metrics(&id).expect("metrics").calls,
        THREADS * CALLS + 1
    );
}

#[test]
fn a_method_handle_resolved_before_a_reload_calls_the_new_version() {
    let (host, _dir, id) = started("fixture-reload-v1");
    let plugin = host.plugin(&id).expect("handle");
    let acme = plugin.tenant("acme").expect("tenant");
    let mut version = plugin.method("version").expect("resolve");
    assert_eq!(version.call(&acme, b"").expect("v1"), b"1.0.0");
    drop(plugin);

    let started = std::time::Instant::now();
    let report = host
        .reload(
            &id,
            artifacts().library("fixture-reload-v2"),
            LoadOptions::default(),
        )
        .expect("reload");
    assert!(report.swapped(), "{report:?}");
    // Parked handles do not hold the drain up (it waits up to 2 s for calls in flight).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(version.call(&acme, b"").expect("v2"), b"2.0.0");
    // The handle let go of v1 when it moved: nothing holds it, it is unloaded.
    let stats = host.unload_stats();
    assert!(stats.unloaded >= 1, "{stats:?}");
}

#[test]
fn a_plugin_built_against_0_2_0_is_served_through_the_fallback() {
    let (host, _dir, id) = started("fixture-before-crm");
    let plugin = host.plugin(&id).expect("handle");
    assert_eq!(plugin.identity().api_version, "0.2.0");
    let acme = plugin.tenant("acme").expect("tenant");
    let mut echo = plugin.method("echo").expect("resolve through `service`");
    let reply = echo.call(&acme, b"old").expect("echo");
    assert_eq!(reply, b"acme:echo:old");
    assert_eq!(
        reply,
        plugin.invoke("acme", "echo", b"old").expect("invoke")
    );
}
