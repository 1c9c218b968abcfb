//! Hook dispatch: an event with 1, 10 and 100 subscriptions and a filter
//! chain of 10, against in-process closures doing the same work (a lock and
//! a map lookup per subscriber, as the fixture's quiet handler does).
//!
//! Then the fast hook path (`Host::hook`, issue 15) against the same direct
//! closures, timed in interleaved turns in one run with p50/p99, per
//! subscriber: `HookHandle::emit` (subscribers resolved once) and
//! `Host::emit` (looked up per emit), both through the plugins' fast hook
//! tables.
//!
//! The fixture set has few distinct plugin ids, so larger fan-outs subscribe
//! the same plugin several times; every subscription takes the full
//! per-subscriber path (tenant check, ABI call, outcome handling).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use parking_lot::RwLock;
use plugin_host::dispatch::{HookKind, Subscription};
use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_bench::{format_ns, interleaved, library, mean_ns, print_ratios, Batch};

const FAN_OUT: [usize; 3] = [1, 10, 100];
const PACKAGES: [&str; 4] = [
    "fixture-good",
    "fixture-dep-a",
    "fixture-dep-b",
    "fixture-misbehaving",
];

fn host_with(hook: &str, kind: HookKind, subscriptions: usize) -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Host::new(HostConfig::with_runtime_dir(dir.path().join("rt"))).expect("host");
    for (p, package) in PACKAGES.iter().enumerate() {
        let count = (subscriptions + PACKAGES.len() - 1 - p) / PACKAGES.len();
        let subs = (0..count)
            .map(|i| Subscription {
                plugin: String::new(),
                hook: hook.to_owned(),
                priority: i as i32,
                kind,
                before: Vec::new(),
                after: Vec::new(),
            })
            .collect();
        let options = LoadOptions {
            config_json: Some(serde_json::json!({ "hooks": { hook: "quiet" } }).to_string()),
            hooks: subs,
            ..LoadOptions::default()
        };
        let id = host.load(&library(package), options).expect("load");
        host.initialize(&id).expect("init");
        host.activate(&id, "acme", "{}").expect("activate");
    }
    (host, dir)
}

type Direct = Box<dyn Fn(&str, &[u8]) -> bool>;

fn direct_subscribers(n: usize, hook: &str) -> Vec<Direct> {
    (0..n)
        .map(|_| {
            let behaviour: RwLock<BTreeMap<String, String>> = RwLock::new(
                [(hook.to_owned(), "quiet".to_owned())]
                    .into_iter()
                    .collect(),
            );
            Box::new(move |hook: &str, payload: &[u8]| {
                black_box(payload);
                behaviour.read().get(hook).map(String::as_str) == Some("quiet")
            }) as Direct
        })
        .collect()
}

fn hooks(c: &mut Criterion) {
    let payload = br#"{"device":"cpe-17","severity":"critical","message":"link down"}"#;
    for n in FAN_OUT {
        let (host, _dir) = host_with("bench.event", HookKind::Event, n);
        let direct = direct_subscribers(n, "bench.event");
        let mut group = c.benchmark_group(format!("event/{n}"));
        group.bench_function("direct_closures", |b| {
            b.iter(|| {
                direct
                    .iter()
                    .filter(|f| f(black_box("bench.event"), payload))
                    .count()
            })
        });
        group.bench_function("plugin_hook_bus", |b| {
            b.iter(|| {
                host.fire_event(
                    "acme",
                    black_box("bench.event"),
                    "application/json",
                    payload,
                )
            })
        });
        group.finish();
    }
    let (host, _dir) = host_with("bench.filter", HookKind::Filter, 10);
    let direct = direct_subscribers(10, "bench.filter");
    let mut group = c.benchmark_group("filter/10");
    group.bench_function("direct_closures", |b| {
        b.iter(|| {
            let mut bytes = payload.to_vec();
            for f in &direct {
                if !f(black_box("bench.filter"), &bytes) {
                    bytes.clear();
                }
            }
            bytes
        })
    });
    group.bench_function("plugin_hook_bus", |b| {
        b.iter(|| {
            host.run_filter(
                "acme",
                black_box("bench.filter"),
                "application/json",
                payload,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, hooks);

fn batch<'a, T>(mut call: impl FnMut() -> T + 'a) -> Batch<'a> {
    Box::new(move |n| {
        let start = Instant::now();
        for _ in 0..n {
            black_box(call());
        }
        start.elapsed()
    })
}

/// The fast hook path against direct closures, per subscriber, p50/p99 in one run.
fn fast_hooks() {
    const ROUNDS: usize = 40;
    const PER_ROUND: usize = 10;
    let payload = br#"{"device":"cpe-17","severity":"critical","message":"link down"}"#;
    for n in FAN_OUT {
        let (host, _dir) = host_with("bench.event", HookKind::Event, n);
        let direct = direct_subscribers(n, "bench.event");
        let mut handle = host.hook("bench.event", "acme").expect("resolve");
        assert_eq!(
            handle.delivered_by_table(),
            n,
            "every fixture exports the table"
        );
        let names = [
            "direct closures",
            "HookHandle::emit (fast path)",
            "Host::emit (by name)",
        ];
        let stats = interleaved(
            vec![
                batch(|| {
                    direct
                        .iter()
                        .filter(|f| f(black_box("bench.event"), payload))
                        .count()
                }),
                batch(|| {
                    handle
                        .emit("application/json", black_box(payload))
                        .map(|s| s.delivered)
                }),
                batch(|| {
                    host.emit(
                        "acme",
                        black_box("bench.event"),
                        "application/json",
                        payload,
                    )
                    .map(|s| s.delivered)
                }),
            ],
            ROUNDS,
            PER_ROUND,
        );
        println!(
            "\n== event hook, {n} subscriptions, per subscriber (p50 ratio to direct closures; goal <= 1.5x) =="
        );
        let per = n as f64;
        for (name, s) in names.iter().zip(&stats) {
            println!(
                "  {name:<40} p50 {:>10}  p99 {:>10}  min {:>10}  {:>6.2}x",
                format_ns(s.p50 / per),
                format_ns(s.p99 / per),
                format_ns(s.min / per),
                s.p50 / stats[0].p50
            );
        }
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    for n in FAN_OUT {
        let g = format!("event/{n}");
        print_ratios(
            &format!("event hook, {n} subscriptions"),
            &format!("{g}/direct_closures"),
            &[
                &format!("{g}/direct_closures"),
                &format!("{g}/plugin_hook_bus"),
            ],
        );
        if let (Some(d), Some(p)) = (
            mean_ns(&format!("{g}/direct_closures")),
            mean_ns(&format!("{g}/plugin_hook_bus")),
        ) {
            println!(
                "  per subscriber: direct {:.1} ns, plugin {:.1} ns (goal <= 1.5x)",
                d / n as f64,
                p / n as f64
            );
        }
    }
    print_ratios(
        "filter chain of 10",
        "filter/10/direct_closures",
        &["filter/10/direct_closures", "filter/10/plugin_hook_bus"],
    );
    fast_hooks();
}
