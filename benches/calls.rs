//! Call cost: a direct `Box<dyn Trait>` call, a plain `extern "C"` call and a
//! call into a loaded plugin through the SDK, for an empty and a 1 KiB
//! payload; plus load time per plugin.
//!
//! Two baselines: `direct_dyn_bare` does only the call's own work (an empty
//! reply; a copy of the payload), so its ratio shows the plugin call's fixed
//! costs; `direct_dyn` also repeats the fixture's method matching.
//!
//! Then the fast path (`plugin_host::fast`, issue 15), timed in interleaved
//! turns against `Box<dyn>` doing the same work in the same run: add one to
//! an 8-byte integer, sum a 1 KiB payload (both on `bench-arith`), and a
//! typed category call (`communication.message_status` on fixture-good).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, BenchmarkId, Criterion};
use plugin_api::categories::*;
use plugin_api::communication::{DeliveryStatus, MessageReceipt};
use plugin_api::RString;
use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_bench::{
    format_ns, interleaved, library, print_quantiles, print_ratios, rss_bytes, Batch,
};

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

/// The fast path's baseline: the same work through `Box<dyn>`, the reply
/// written into the caller's buffer as the fast path writes it.
trait DirectArith {
    fn call(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String>;
}

struct AddOne;

impl DirectArith for AddOne {
    #[inline(never)]
    fn call(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let n = u64::from_le_bytes(input.try_into().map_err(|_| "not 8 bytes".to_owned())?);
        out.clear();
        out.extend_from_slice(&n.wrapping_add(1).to_le_bytes());
        Ok(())
    }
}

struct Sum;

impl DirectArith for Sum {
    #[inline(never)]
    fn call(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        out.extend_from_slice(&plugkit_bench_arith::sum(input).to_le_bytes());
        Ok(())
    }
}

/// The typed call's baseline: fixture-good's `message_status`, through `Box<dyn>`.
trait DirectCommunication {
    fn message_status(&self, tenant: &str, id: RString) -> Result<MessageReceipt, String>;
}

struct Good;

impl DirectCommunication for Good {
    #[inline(never)]
    fn message_status(&self, tenant: &str, id: RString) -> Result<MessageReceipt, String> {
        Ok(MessageReceipt {
            provider_message_id: id,
            status: DeliveryStatus::Delivered,
            segments: 1,
            error_code: None.into(),
            error_message: Some(tenant.into()).into(),
        })
    }
}

fn batch<'a, T>(mut call: impl FnMut() -> T + 'a) -> Batch<'a> {
    Box::new(move |n| {
        let start = Instant::now();
        for _ in 0..n {
            black_box(call());
        }
        start.elapsed()
    })
}

/// The fast path against `Box<dyn>` and `invoke`, p50/p99 in one run.
fn fast_path() {
    const ROUNDS: usize = 40;
    const PER_ROUND: usize = 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Host::new(HostConfig::with_runtime_dir(dir.path().join("rt"))).expect("host");
    for package in ["plugkit-bench-arith", "fixture-good"] {
        let id = host
            .load(&library(package), LoadOptions::default())
            .expect("load");
        host.initialize(&id).expect("initialize");
        host.activate(&id, "acme", "{}").expect("activate");
    }
    let arith = host.plugin("bench-arith").expect("handle");
    let acme = arith.tenant("acme").expect("tenant");
    let kib = vec![7u8; 1024];
    for (label, method, input, direct) in [
        (
            "small call (add_one, 8 bytes in and out)",
            "add_one",
            &41u64.to_le_bytes()[..],
            Box::new(AddOne) as Box<dyn DirectArith>,
        ),
        (
            "1 KiB call (sum of the payload's bytes, 8 bytes out)",
            "sum",
            &kib[..],
            Box::new(Sum),
        ),
    ] {
        let direct = black_box(direct);
        let mut fast = arith.method(method).expect("resolve");
        let (mut out_direct, mut out_fast) = (Vec::with_capacity(64), Vec::with_capacity(64));
        let names = [
            "Box<dyn> into a reused buffer",
            "plugkit fast path (MethodHandle::call_into)",
            "plugkit invoke (by name, new Vec)",
        ];
        let stats = interleaved(
            vec![
                batch(|| {
                    direct
                        .call(black_box(input), &mut out_direct)
                        .map(|()| out_direct.len())
                }),
                batch(|| {
                    fast.call_into(&acme, black_box(input), &mut out_fast)
                        .map(|()| out_fast.len())
                }),
                batch(|| {
                    arith
                        .invoke("acme", black_box(method), black_box(input))
                        .map(|v| v.len())
                }),
            ],
            ROUNDS,
            PER_ROUND,
        );
        print_quantiles(label, &names, &stats);
    }

    let good = host.plugin("fixture-good").expect("handle");
    let bound = good.bind("acme").expect("bind");
    let direct: Box<dyn DirectCommunication> = black_box(Box::new(Good));
    let names = [
        "Box<dyn> message_status",
        "plugkit typed call, tenant-bound (BoundPlugin)",
        "plugkit typed call (PluginHandle)",
    ];
    let stats = interleaved(
        vec![
            batch(|| direct.message_status(black_box("acme"), RString::from("SM1"))),
            batch(|| {
                bound
                    .communication()
                    .and_then(|c| c.message_status(bound.tenant(), RString::from("SM1")))
            }),
            batch(|| {
                good.communication()
                    .and_then(|c| c.message_status(black_box("acme"), RString::from("SM1")))
            }),
        ],
        ROUNDS,
        PER_ROUND,
    );
    print_quantiles(
        "typed category call (communication.message_status on fixture-good)",
        &names,
        &stats,
    );
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
    fast_path();
    load_time();
}
