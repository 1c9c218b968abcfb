//! Shared by the benchmarks: where the plugin libraries are, and the table of
//! ratios each benchmark prints against a baseline measured in the same run.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The plugin library built from `package` (release build by `cargo xtask bench`).
pub fn library(package: &str) -> PathBuf {
    let list = std::env::var_os("PLUGKIT_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            eprintln!("PLUGKIT_ARTIFACTS is not set: run the benchmarks with `cargo xtask bench`");
            std::process::exit(2)
        });
    let text = std::fs::read_to_string(&list).unwrap_or_default();
    let map: BTreeMap<String, PathBuf> = serde_json::from_str(&text).unwrap_or_default();
    match map.get(package) {
        Some(path) => path.clone(),
        None => {
            eprintln!("{} lists no library for {package}", list.display());
            std::process::exit(2)
        }
    }
}

/// The mean time in nanoseconds criterion measured for `id` (`group/function`).
pub fn mean_ns(id: &str) -> Option<f64> {
    // Criterion stores `group/with/slashes` + `function` as `group_with_slashes/function`.
    let (group, function) = id.rsplit_once('/')?;
    let dir = criterion_dir()
        .join(group.replace('/', "_"))
        .join(function)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(dir).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["mean"]["point_estimate"].as_f64()
}

fn criterion_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(dir);
    }
    // Where criterion writes by default: the target directory cargo reports.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|meta| meta["target_directory"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion")
}

/// Prints `rows` (benchmark ids) as time and ratio to `baseline`.
pub fn print_ratios(title: &str, baseline: &str, rows: &[&str]) {
    println!("\n== {title} (ratio to {baseline}) ==");
    let Some(base) = mean_ns(baseline) else {
        println!("  (no estimate for {baseline})");
        return;
    };
    for id in rows {
        match mean_ns(id) {
            Some(ns) => println!("  {id:<44} {:>12}  {:>6.2}x", format_ns(ns), ns / base),
            None => println!("  {id:<44} (not measured)"),
        }
    }
}

/// Formats nanoseconds with a unit.
pub fn format_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Per-call timings of one contender, from batches: nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Quantiles {
    /// Median of the batches' per-call times.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Fastest batch.
    pub min: f64,
}

/// Runs `calls` calls and returns how long they took (the loop lives inside
/// the closure, so the call under test is not behind a virtual call).
pub type Batch<'a> = Box<dyn FnMut(u64) -> std::time::Duration + 'a>;

/// Times contenders in turns: each batch takes ~50 µs (the clock's cost is
/// then negligible), and every round gives each contender `per_round`
/// batches, so the load of a shared machine spreads over all of them and
/// their ratios come from one run. The same sampler as
/// `benches/side-by-side/src/timing.rs`.
pub fn interleaved(batches: Vec<Batch<'_>>, rounds: usize, per_round: usize) -> Vec<Quantiles> {
    use std::time::{Duration, Instant};
    const TARGET: Duration = Duration::from_micros(50);
    let mut runners: Vec<(Batch<'_>, u64, Vec<f64>)> = batches
        .into_iter()
        .map(|mut run| {
            let warm_until = Instant::now() + Duration::from_millis(50);
            let mut calls = 1u64;
            loop {
                let took = run(calls);
                if took >= TARGET && Instant::now() >= warm_until {
                    break;
                }
                if took < TARGET {
                    calls = calls.saturating_mul(2);
                }
            }
            let per_call = run(calls).as_nanos() as f64 / calls as f64;
            let batch = ((TARGET.as_nanos() as f64 / per_call).ceil() as u64).max(1);
            (run, batch, Vec::with_capacity(rounds * per_round))
        })
        .collect();
    for _ in 0..rounds {
        for (run, batch, samples) in &mut runners {
            for _ in 0..per_round {
                samples.push(run(*batch).as_nanos() as f64 / *batch as f64);
            }
        }
    }
    runners
        .into_iter()
        .map(|(_, _, mut s)| {
            s.sort_by(f64::total_cmp);
            let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
            Quantiles {
                p50: at(0.5),
                p99: at(0.99),
                min: s[0],
            }
        })
        .collect()
}

/// Prints contenders' p50/p99 with each p50's ratio to the first row's.
pub fn print_quantiles(title: &str, names: &[&str], stats: &[Quantiles]) {
    println!("\n== {title} (p50 ratio to {}) ==", names[0]);
    let base = stats[0].p50;
    for (name, s) in names.iter().zip(stats) {
        println!(
            "  {name:<52} p50 {:>10}  p99 {:>10}  min {:>10}  {:>6.2}x",
            format_ns(s.p50),
            format_ns(s.p99),
            format_ns(s.min),
            s.p50 / base
        );
    }
}
