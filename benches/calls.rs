//! Call cost: a direct `Box<dyn Trait>` call, a plain `extern "C"` call and a
//! call into a loaded plugin through the SDK, for an empty and a 1 KiB
//! payload; plus load time per plugin.
//!
//! Two baselines: `direct_dyn_bare` does only the call's own work (an empty
//! reply; a copy of the payload), so its ratio shows the plugin call's fixed
//! costs; `direct_dyn` also repeats the fixture's method matching.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, BenchmarkId, Criterion};
use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_bench::{format_ns, library, print_ratios, rss_bytes};

/// The in-process baseline: the same signature as the plugin's service, and
/// the same method dispatch as the fixture (`tests/fixtures/common/recording.rs`).
trait DirectService {
    fn invoke(&self, tenant: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, String>;
}

struct Echo;

impl DirectService for Echo {
    #[inline(never)]
    fn invoke(&self, _tenant: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        match method {
            "ping" => Ok(Vec::new()),
            "echo" => Ok(payload.to_vec()),
            "count" | "version" | "secret" | "state_put" | "state_get" | "emit" | "metric" => {
                Ok(method.as_bytes().to_vec())
            }
            "panic" => panic!("panics on request"),
            "fail" => Err("failing on request".to_owned()),
            other => Err(format!("unknown method {other}")),
        }
    }
}

/// The honest baseline: a `Box<dyn>` call doing only the work of the call
/// under test, with no method matching to hide the plugin path's fixed costs.
struct BareEmpty;

impl DirectService for BareEmpty {
    #[inline(never)]
    fn invoke(&self, _tenant: &str, _method: &str, _payload: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
}

/// The same for the 1 KiB call, which echoes its payload.
struct BareEcho;

impl DirectService for BareEcho {
    #[inline(never)]
    fn invoke(&self, _tenant: &str, _method: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        Ok(payload.to_vec())
    }
}

/// A plain C-ABI function doing the same work (method 0: ping, 1: echo).
extern "C" fn c_echo(method: u32, payload: *const u8, len: usize, out: *mut Vec<u8>) -> i32 {
    if method == 0 {
        // SAFETY: the caller passes a valid pointer to a Vec and a valid slice.
        unsafe { (*out).clear() };
        return 0;
    }
    // SAFETY: as above.
    unsafe { *out = std::slice::from_raw_parts(payload, len).to_vec() };
    0
}

fn calls(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Host::new(HostConfig::with_runtime_dir(dir.path().join("rt"))).expect("host");
    let id = host
        .load(&library("fixture-good"), LoadOptions::default())
        .expect("load fixture-good");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");
    let plugin = host.plugin(&id).expect("handle");
    let direct: Box<dyn DirectService> = black_box(Box::new(Echo));
    let c_fn: extern "C" fn(u32, *const u8, usize, *mut Vec<u8>) -> i32 = black_box(c_echo);
    let kib = vec![7u8; 1024];

    for (label, method, payload) in [("empty", "ping", &[][..]), ("1KiB", "echo", &kib[..])] {
        let mut group = c.benchmark_group(format!("call/{label}"));
        let bare: Box<dyn DirectService> = if payload.is_empty() {
            black_box(Box::new(BareEmpty))
        } else {
            black_box(Box::new(BareEcho))
        };
        group.bench_function("direct_dyn_bare", |b| {
            b.iter(|| bare.invoke(black_box("acme"), black_box(method), black_box(payload)))
        });
        group.bench_function("direct_dyn", |b| {
            b.iter(|| direct.invoke(black_box("acme"), black_box(method), black_box(payload)))
        });
        group.bench_function("extern_c", |b| {
            let mut out = Vec::new();
            b.iter(|| {
                let code = u32::from(black_box(method) == "echo");
                c_fn(code, payload.as_ptr(), payload.len(), &mut out);
                black_box(out.len())
            })
        });
        group.bench_function("plugin_sdk", |b| {
            b.iter(|| plugin.invoke(black_box("acme"), black_box(method), black_box(payload)))
        });
        group.bench_function("plugin_lookup_and_call", |b| {
            b.iter(|| {
                host.plugin(black_box("fixture-good"))
                    .and_then(|p| p.invoke("acme", black_box(method), black_box(payload)))
            })
        });
        group.finish();
    }
    let _ = BenchmarkId::new("unused", 0);
}

/// Loads are timed by hand: every load maps a new copy that is never
/// unloaded, so criterion's thousands of iterations would measure the leak.
fn load_time() {
    const LOADS: usize = 20;
    let source = library("fixture-good");
    let mut stage_and_load = Vec::with_capacity(LOADS);
    let mut initialize = Vec::with_capacity(LOADS);
    let rss_before = rss_bytes();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut hosts = Vec::new();
    for i in 0..LOADS {
        let host = Host::new(HostConfig::with_runtime_dir(
            dir.path().join(format!("rt{i}")),
        ))
        .expect("host");
        let start = Instant::now();
        let id = host.load(&source, LoadOptions::default()).expect("load");
        stage_and_load.push(start.elapsed().as_nanos() as f64);
        let start = Instant::now();
        host.initialize(&id).expect("initialize");
        initialize.push(start.elapsed().as_nanos() as f64);
        hosts.push(host);
    }
    let rss_per_load = (rss_bytes().saturating_sub(rss_before)) as f64 / LOADS as f64;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\n== load time per plugin (median of {LOADS}, fixture-good release build) ==");
    println!(
        "  stage copy + ELF check + dlopen + version/layout check + instantiate: {}",
        format_ns(median(&mut stage_and_load))
    );
    println!("  initialize: {}", format_ns(median(&mut initialize)));
    println!("  RSS per loaded copy: {:.2} MB", rss_per_load / 1e6);
}

criterion_group!(benches, calls);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    for label in ["empty", "1KiB"] {
        let g = format!("call/{label}");
        let rows = [
            format!("{g}/direct_dyn_bare"),
            format!("{g}/direct_dyn"),
            format!("{g}/extern_c"),
            format!("{g}/plugin_sdk"),
            format!("{g}/plugin_lookup_and_call"),
        ];
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        print_ratios(
            &format!(
                "call cost, {label} payload, against a bare Box<dyn> doing only the call's work"
            ),
            &format!("{g}/direct_dyn_bare"),
            &rows,
        );
        print_ratios(
            &format!("call cost, {label} payload, against a Box<dyn> that also matches the method like the fixture"),
            &format!("{g}/direct_dyn"),
            &rows,
        );
    }
    load_time();
}
