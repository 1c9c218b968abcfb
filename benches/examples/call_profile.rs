//! Calls a loaded plugin in a loop, for instruction-level profiling with
//! `valgrind --tool=callgrind` (counts instructions, so a busy machine does
//! not skew it).

use std::hint::black_box;

use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_bench::library;

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Host::new(HostConfig::with_runtime_dir(dir.path().join("rt"))).expect("host");
    let id = host
        .load(&library("fixture-good"), LoadOptions::default())
        .expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");
    let plugin = host.plugin(&id).expect("handle");
    for _ in 0..calls {
        let _ = black_box(plugin.invoke(black_box("acme"), black_box("ping"), black_box(&[])));
    }
}
