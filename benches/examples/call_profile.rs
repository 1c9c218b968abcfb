//! Calls a loaded plugin in a loop, for instruction-level profiling with
//! `valgrind --tool=callgrind` (counts instructions, so a busy machine does
//! not skew it).
//!
//! `call_profile [calls] [mode]`, mode one of:
//! - `ping` (default): `invoke("ping")` on fixture-good, empty payload and reply;
//! - `add_one`: `invoke("add_one")` on bench-arith, 8 bytes in and out;
//! - `fast_add_one`: the same through a resolved `MethodHandle` into a reused buffer.

use std::hint::black_box;

use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_bench::library;

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let mode = args.next().unwrap_or_else(|| "ping".to_owned());
    let package = if mode == "ping" {
        "fixture-good"
    } else {
        "plugkit-bench-arith"
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Host::new(HostConfig::with_runtime_dir(dir.path().join("rt"))).expect("host");
    let id = host
        .load(&library(package), LoadOptions::default())
        .expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");
    let plugin = host.plugin(&id).expect("handle");
    let n = 41u64.to_le_bytes();
    match mode.as_str() {
        "ping" => {
            for _ in 0..calls {
                let _ =
                    black_box(plugin.invoke(black_box("acme"), black_box("ping"), black_box(&[])));
            }
        }
        "add_one" => {
            for _ in 0..calls {
                let _ = black_box(plugin.invoke(
                    black_box("acme"),
                    black_box("add_one"),
                    black_box(&n),
                ));
            }
        }
        "fast_add_one" => {
            let mut add_one = plugin.method("add_one").expect("resolve");
            let acme = plugin.tenant("acme").expect("tenant");
            let mut out = Vec::with_capacity(8);
            for _ in 0..calls {
                let _ = black_box(add_one.call_into(&acme, black_box(&n), &mut out));
            }
        }
        other => panic!("unknown mode {other}: ping, add_one or fast_add_one"),
    }
}
