//! Fires an event with 100 subscriptions in a loop, for instruction-level
//! profiling with `valgrind --tool=callgrind`: `hook_profile [rounds]
//! [emit|handle]`, through `Host::emit` (looked up per emit, the default)
//! or a `HookHandle` resolved once (`Host::hook`).

use std::hint::black_box;

use plugin_host::dispatch::{HookKind, Subscription};
use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_bench::library;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let through_handle = args.next().as_deref() == Some("handle");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Host::new(HostConfig::with_runtime_dir(dir.path().join("rt"))).expect("host");
    for package in [
        "fixture-good",
        "fixture-dep-a",
        "fixture-dep-b",
        "fixture-misbehaving",
    ] {
        let subs = (0..25)
            .map(|i| Subscription {
                plugin: String::new(),
                hook: "bench.event".to_owned(),
                priority: i,
                kind: HookKind::Event,
                before: Vec::new(),
                after: Vec::new(),
            })
            .collect();
        let options = LoadOptions {
            config_json: Some(r#"{"hooks":{"bench.event":"quiet"}}"#.to_owned()),
            hooks: subs,
            ..LoadOptions::default()
        };
        let id = host.load(&library(package), options).expect("load");
        host.initialize(&id).expect("initialize");
        host.activate(&id, "acme", "{}").expect("activate");
    }
    if through_handle {
        let mut handle = host.hook("bench.event", "acme").expect("resolve");
        for _ in 0..rounds {
            let _ = black_box(handle.emit("application/json", black_box(b"{}")));
        }
    } else {
        for _ in 0..rounds {
            let _ =
                black_box(host.emit("acme", black_box("bench.event"), "application/json", b"{}"));
        }
    }
}
