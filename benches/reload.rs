//! Hot reload: swap latency (file settled → new version serving, no
//! debounce, no build) against a cold load of the same library, and RSS
//! growth over 1,000 reloads with unloading against the same host never
//! unloading. Timed by hand: every reload maps a library, so criterion's
//! iteration counts would measure something else.

use std::path::Path;
use std::time::{Duration, Instant};

use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_bench::{format_ns, library, rss_bytes};

fn host(unload: bool, dir: &Path) -> Host {
    let mut config = HostConfig::with_runtime_dir(dir.join(format!("rt-{unload}")));
    config.unload_libraries = unload;
    let host = Host::new(config).expect("host");
    host.load(&library("fixture-reload-v1"), LoadOptions::default())
        .expect("load v1");
    host.initialize("reloadable").expect("init");
    host.activate("reloadable", "acme", "{}").expect("activate");
    host
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn reload_n(host: &Host, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (v1, v2) = (library("fixture-reload-v1"), library("fixture-reload-v2"));
    let mut totals = Vec::with_capacity(n);
    let mut swaps = Vec::with_capacity(n);
    for i in 0..n {
        let next = if i % 2 == 0 { &v2 } else { &v1 };
        let start = Instant::now();
        let report = host
            .reload("reloadable", next, LoadOptions::default())
            .expect("reload");
        totals.push(start.elapsed());
        swaps.push(report.swap);
        assert!(report.swapped(), "{report:?}");
    }
    (totals, swaps)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");

    // Baseline: a cold load + initialize of the same library.
    let mut cold = Vec::new();
    for i in 0..20 {
        let h = Host::new(HostConfig::with_runtime_dir(
            dir.path().join(format!("cold{i}")),
        ))
        .expect("host");
        let start = Instant::now();
        h.load(&library("fixture-reload-v2"), LoadOptions::default())
            .expect("load");
        h.initialize("reloadable").expect("init");
        cold.push(start.elapsed());
        h.stop_all();
    }
    let cold = median(&mut cold);

    let unloading = host(true, dir.path());
    reload_n(&unloading, 20);
    let rss_start = rss_bytes();
    let (mut totals, mut swaps) = reload_n(&unloading, 1_000);
    let rss_growth = rss_bytes().saturating_sub(rss_start);
    let stats = unloading.unload_stats();

    let keeping = host(false, dir.path());
    reload_n(&keeping, 20);
    let keep_start = rss_bytes();
    reload_n(&keeping, 200);
    let keep_growth = rss_bytes().saturating_sub(keep_start);

    let total = median(&mut totals);
    println!(
        "\n== hot reload (release fixture, {} reloads) ==",
        totals.len()
    );
    println!(
        "  cold load + initialize (baseline): {}",
        format_ns(cold.as_nanos() as f64)
    );
    println!(
        "  reload, settled file -> new version serving (median): {}  {:.2}x cold load  (goal <= 5 ms)",
        format_ns(total.as_nanos() as f64),
        total.as_secs_f64() / cold.as_secs_f64()
    );
    println!(
        "  of which callers wait at the gate (median): {}",
        format_ns(median(&mut swaps).as_nanos() as f64)
    );
    println!(
        "  RSS growth over 1,000 reloads with unloading: {:.2} MB ({} unloaded, {} pinned)  (goal <= 5 MB)",
        rss_growth as f64 / 1e6,
        stats.unloaded,
        stats.pinned.len()
    );
    println!(
        "  RSS growth per reload without unloading (baseline, 200 reloads): {:.3} MB -> {:.0} MB per 1,000",
        keep_growth as f64 / 200.0 / 1e6,
        keep_growth as f64 / 200.0 * 1_000.0 / 1e6
    );
}
