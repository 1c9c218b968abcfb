//! The fast hook path (`Host::hook`, `plugin_host::fast_hooks`): a hook's
//! subscribers resolved once into a handle and delivered to through each
//! plugin's fast hook table. It delivers as `fire_event` / `run_filter` do,
//! keeps panics, tenant checks, counts and hot reloads safe, and falls
//! back to `HookHandler` for plugins without the table.

use std::collections::BTreeSet;
use std::time::Duration;

use plugin_host::dispatch::{FilterError, HookKind, Subscription};
use plugin_host::isolation::{Isolation, ProcessOptions};
use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_tests::{artifacts, with_log_capture};

use crate::foundation::new_host;

const HOOK: &str = "device.alert";
const FILTER: &str = "list.filter";

fn sub(hook: &str, kind: HookKind, priority: i32) -> Subscription {
    Subscription {
        plugin: String::new(),
        hook: hook.to_owned(),
        priority,
        kind,
        before: Vec::new(),
        after: Vec::new(),
    }
}

fn options(subs: Vec<Subscription>, behaviour: serde_json::Value) -> LoadOptions {
    LoadOptions {
        config_json: Some(behaviour.to_string()),
        hooks: subs,
        permissions: BTreeSet::new(),
        ..LoadOptions::default()
    }
}

/// Loads `package` subscribed to `hook` (event and filter `FILTER`) with
/// `action` as its behaviour for both, active for `acme`.
fn start(host: &Host, package: &str, priority: i32, action: &str) -> String {
    let id = host
        .load(
            artifacts().library(package),
            options(
                vec![
                    sub(HOOK, HookKind::Event, priority),
                    sub(FILTER, HookKind::Filter, priority),
                ],
                serde_json::json!({ "hooks": { HOOK: action, FILTER: action } }),
            ),
        )
        .expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");
    id
}

#[test]
fn a_hook_handle_delivers_as_fire_event_and_run_filter_do() {
    let (host, _dir) = new_host();
    start(&host, "fixture-dep-a", 0, "append:a");
    start(&host, "fixture-good", 10, "append:good");
    start(&host, "fixture-dep-b", 5, "continue");

    let mut events = host.hook(HOOK, "acme").expect("resolve");
    assert_eq!(
        events.event_subscribers(),
        ["dep-a", "dep-b", "fixture-good"]
    );
    assert_eq!(
        events.delivered_by_table(),
        3,
        "every fixture exports the table"
    );
    let fast = events.fire("application/json", b"[]").expect("fire");
    let slow = host
        .fire_event("acme", HOOK, "application/json", b"[]")
        .expect("fire");
    assert_eq!(fast, slow);
    assert_eq!(fast.delivered, ["dep-a", "dep-b", "fixture-good"]);
    let summary = events.emit("application/json", b"[]").expect("emit");
    assert_eq!((summary.delivered, summary.failed), (3, 0));

    let mut filters = host.hook(FILTER, "acme").expect("resolve");
    let fast = filters
        .filter("application/json", br#"["start"]"#)
        .expect("filter");
    let slow = host
        .run_filter("acme", FILTER, "application/json", br#"["start"]"#)
        .expect("filter");
    assert_eq!(fast, slow);
    let list: Vec<String> = serde_json::from_slice(&fast.bytes).expect("json");
    assert_eq!(list, ["start", "a", "good"]);
    assert_eq!(fast.ran, ["dep-a", "dep-b", "fixture-good"]);

    // A veto stops the chain and names who vetoed, as `run_filter` does.
    let (host, _dir) = new_host();
    start(&host, "fixture-dep-a", 0, "append:a");
    start(&host, "fixture-dep-b", 5, "veto:over the limit");
    start(&host, "fixture-good", 10, "append:good");
    let err = host
        .hook(FILTER, "acme")
        .expect("resolve")
        .filter("application/json", br#"["start"]"#)
        .unwrap_err();
    assert_eq!(
        err,
        FilterError::Vetoed {
            hook: FILTER.to_owned(),
            plugin: "dep-b".to_owned(),
            reason: "over the limit".to_owned(),
        }
    );
}

#[test]
fn a_panicking_subscriber_through_a_hook_handle_is_a_counted_failure() {
    with_log_capture(|log| {
        let (host, _dir) = new_host();
        start(&host, "fixture-dep-a", 0, "panic");
        start(&host, "fixture-good", 1, "continue");
        start(&host, "fixture-dep-b", 2, "fail");
        let mut handle = host.hook(HOOK, "acme").expect("resolve");

        let summary = handle.emit("application/json", b"{}").expect("emit");
        assert_eq!((summary.delivered, summary.failed), (1, 2));
        let report = handle.fire("application/json", b"{}").expect("fire");
        assert_eq!(report.delivered, ["fixture-good"]);
        let failed: Vec<&str> = report.failures.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(failed, ["dep-a", "dep-b"]);
        assert!(
            report.failures[0].1.contains("panicked")
                && report.failures[0].1.contains("panics in hook"),
            "{:?}",
            report.failures
        );
        assert!(
            report.failures[1].1.contains("fails in hook"),
            "{:?}",
            report.failures
        );

        let dep_a = host.metrics("dep-a").expect("metrics");
        assert_eq!((dep_a.hook_failures, dep_a.panics, dep_a.errors), (2, 2, 2));
        let dep_b = host.metrics("dep-b").expect("metrics");
        assert_eq!((dep_b.hook_failures, dep_b.panics), (2, 0));
        assert_eq!(
            host.metrics("fixture-good").expect("metrics").hook_failures,
            0
        );
        assert!(log
            .matching("event subscriber failed")
            .iter()
            .any(|l| l.contains("plugin=dep-a")));

        // The panicking plugin keeps serving its other calls.
        let pong = host
            .plugin("dep-a")
            .and_then(|p| p.invoke("acme", "echo", b"still here"))
            .expect("dep-a serves");
        assert_eq!(pong, b"still here");

        // A failing filter fails the chain closed, naming the plugin.
        let err = host
            .hook(FILTER, "acme")
            .expect("resolve")
            .filter("application/json", b"[]")
            .unwrap_err();
        assert!(
            matches!(&err, FilterError::Failed { plugin, message, .. } if plugin == "dep-a" && message.contains("panicked")),
            "{err}"
        );
    });
}

#[test]
fn a_hook_handle_skips_a_subscriber_deactivated_after_it_was_taken() {
    let (host, _dir) = new_host();
    start(&host, "fixture-dep-a", 0, "continue");
    let good = start(&host, "fixture-good", 1, "continue");
    let mut handle = host.hook(HOOK, "acme").expect("resolve");
    assert_eq!(
        handle
            .emit("application/json", b"{}")
            .expect("emit")
            .delivered,
        2
    );
    let calls = host.metrics(&good).expect("metrics").calls;

    host.deactivate(&good, "acme").expect("deactivate");
    let report = handle.fire("application/json", b"{}").expect("fire");
    assert_eq!(
        report.delivered,
        ["dep-a"],
        "the inactive tenant is refused"
    );
    assert_eq!(
        host.metrics(&good).expect("metrics").calls,
        calls,
        "not called"
    );

    host.activate(&good, "acme", "{}").expect("reactivate");
    let report = handle.fire("application/json", b"{}").expect("fire");
    assert_eq!(report.delivered, ["dep-a", "fixture-good"]);

    // A tenant nobody serves gets nobody.
    let mut other = host.hook(HOOK, "globex").expect("resolve");
    assert_eq!(
        other
            .emit("application/json", b"{}")
            .expect("emit")
            .delivered,
        0
    );
    // A subscriber loaded after the handle was taken is reached too.
    start(&host, "fixture-dep-b", 2, "continue");
    assert_eq!(
        handle
            .emit("application/json", b"{}")
            .expect("emit")
            .delivered,
        3
    );
}

#[test]
fn hook_handle_deliveries_are_counted_exactly() {
    const THREADS: u64 = 4;
    const EMITS: u64 = 2_000;
    let (host, _dir) = new_host();
    let a = start(&host, "fixture-dep-a", 0, "quiet");
    let b = start(&host, "fixture-dep-b", 1, "quiet");
    let before = |id: &str| host.metrics(id).expect("metrics").calls;
    let (a0, b0) = (before(&a), before(&b));
    let handle = host.hook(HOOK, "acme").expect("resolve");
    let alive: Vec<_> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let mut mine = handle.clone();
                scope.spawn(move || {
                    for _ in 0..EMITS {
                        let summary = mine.emit("application/json", b"{}").expect("emit");
                        assert_eq!(summary.delivered, 2);
                    }
                    mine
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    // Read while the handles live: their counters are summed in.
    assert_eq!(before(&a) - a0, THREADS * EMITS);
    assert_eq!(before(&b) - b0, THREADS * EMITS);
    drop(alive);
    drop(handle);
    // Dropped handles were folded into the totals, not lost or doubled.
    assert_eq!(before(&a) - a0, THREADS * EMITS);
    assert_eq!(before(&b) - b0, THREADS * EMITS);
}

#[test]
fn a_hook_handle_follows_a_reload_of_a_subscriber() {
    let (host, _dir) = new_host();
    let subs = || vec![sub(HOOK, HookKind::Event, 0)];
    let id = host
        .load(
            artifacts().library("fixture-reload-v1"),
            options(subs(), serde_json::json!({})),
        )
        .expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");
    let mut handle = host.hook(HOOK, "acme").expect("resolve");
    assert_eq!(
        handle
            .emit("application/json", b"{}")
            .expect("emit")
            .delivered,
        1
    );

    let started = std::time::Instant::now();
    let report = host
        .reload(
            &id,
            artifacts().library("fixture-reload-v2"),
            options(subs(), serde_json::json!({})),
        )
        .expect("reload");
    assert!(report.swapped(), "{report:?}");
    // A parked handle does not hold the drain up (it waits up to 2 s).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        handle
            .emit("application/json", b"{}")
            .expect("emit")
            .delivered,
        1
    );
    let version = host
        .plugin(&id)
        .and_then(|p| p.invoke("acme", "version", b""))
        .expect("version");
    assert_eq!(version, b"2.0.0");
    // The handle let go of v1 when it re-resolved: nothing holds it.
    let stats = host.unload_stats();
    assert!(stats.unloaded >= 1, "{stats:?}");
}

#[test]
fn a_plugin_without_the_fast_hook_table_is_delivered_to_by_its_handler() {
    // An isolated plugin's instance is a proxy with only the frozen
    // `HookHandler`: the handle reaches it through that.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = HostConfig::with_runtime_dir(dir.path().join("run"));
    config.runner = Some(artifacts().runner().to_owned());
    let host = Host::new(config).expect("host");
    let isolated = LoadOptions {
        isolation: Isolation::Process,
        process: ProcessOptions {
            call_deadline: Duration::from_secs(5),
            lifecycle_deadline: Duration::from_secs(10),
            ..ProcessOptions::default()
        },
        ..options(
            vec![
                sub(HOOK, HookKind::Event, 0),
                sub(FILTER, HookKind::Filter, 0),
            ],
            serde_json::json!({ "hooks": { HOOK: "fail", FILTER: "append:child" } }),
        )
    };
    let child = host
        .load(artifacts().library("fixture-good"), isolated)
        .expect("load isolated");
    host.initialize(&child).expect("initialize");
    host.activate(&child, "acme", "{}").expect("activate");
    start(&host, "fixture-dep-a", 1, "append:a");

    let mut events = host.hook(HOOK, "acme").expect("resolve");
    assert_eq!(events.event_subscribers(), ["fixture-good", "dep-a"]);
    assert_eq!(events.delivered_by_table(), 1, "the child has no table");
    let report = events.fire("application/json", b"[]").expect("fire");
    assert_eq!(report.delivered, ["dep-a"]);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(report.failures[0].1.contains("fails in hook"), "{report:?}");

    let out = host
        .hook(FILTER, "acme")
        .expect("resolve")
        .filter("application/json", b"[]")
        .expect("filter");
    let list: Vec<String> = serde_json::from_slice(&out.bytes).expect("json");
    assert_eq!(list, ["child", "a"]);
}
