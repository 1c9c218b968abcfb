//! The per-request cost of an API key check (issue 16: "key checking costs
//! no more than a few microseconds per request"), against the check it
//! replaced measured in the same run: the single admin token compared as
//! SHA-256 digests in constant time.
//!
//! - `keys/admin_token_compare`: the old check (baseline).
//! - `keys/authenticate`: shape, CRC32 checksum, SHA-256, index lookup,
//!   expiry and last-use update, in a store of 200 keys.
//! - `keys/authenticate_scope_rate`: that, the scope bit and the key's
//!   rate-limit bucket: everything the guard does before the handler.
//! - `keys/refuse_malformed`: a credential that is not a key (no hashing).
//!
//! Then p50/p99 of single hand-timed checks (each includes one
//! `Instant::now()` pair, ~20–40 ns on this machine).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use isp_daemon::auth::AdminToken;
use isp_daemon::keys::{KeyStore, NewKey, Scope};
use isp_daemon::ratelimit::{Limit, RateLimitConfig, RateLimits};
use plugkit_bench::{format_ns, print_ratios};

const KEYS: usize = 200;
const NOW: u64 = 1_800_000_000;

struct Fixture {
    admin: AdminToken,
    admin_text: String,
    keys: KeyStore,
    secret: String,
    limits: RateLimits,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    // On tmpfs when there is one: creating 200 keys writes the file 200 times.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let keys = KeyStore::open(dir.path()).expect("key store");
    let mut secret = String::new();
    for i in 0..KEYS {
        let made = keys
            .create(
                NewKey {
                    name: format!("bench key {i}"),
                    scopes: vec![Scope::PluginsRead, Scope::TenantsRead],
                    expires_in_secs: None,
                },
                NOW,
            )
            .expect("create");
        if i == KEYS / 2 {
            secret = made.secret;
        }
    }
    // A bucket that never empties during the run: the allowed path is measured.
    let config = RateLimitConfig {
        default: Limit {
            per_second: 1e6,
            burst: u32::MAX,
        },
        ..RateLimitConfig::default()
    };
    let admin_text = "an-admin-token-of-some-length-0123456789".to_owned();
    Fixture {
        admin: AdminToken::new(&admin_text),
        admin_text,
        keys,
        secret,
        limits: RateLimits::new(&config).expect("limits"),
        _dir: dir,
    }
}

fn guard(f: &Fixture) -> bool {
    match f.keys.authenticate(&f.secret, NOW) {
        Ok(caller) => {
            caller.scopes.contains(Scope::PluginsRead)
                && f.limits.check(Scope::PluginsRead, &caller.id).allowed
        }
        Err(_) => false,
    }
}

fn percentiles(mut f: impl FnMut(), n: usize) -> (f64, f64) {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_nanos() as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[n / 2], samples[n * 99 / 100])
}

fn checks(c: &mut Criterion) {
    let f = fixture();
    assert!(f.admin.matches(&f.admin_text));
    assert!(guard(&f), "the bench key must pass the guard");
    let malformed = "not-a-key-at-all";
    let mut group = c.benchmark_group("keys");
    group.bench_function("admin_token_compare", |b| {
        b.iter(|| black_box(f.admin.matches(black_box(&f.admin_text))))
    });
    group.bench_function("authenticate", |b| {
        b.iter(|| black_box(f.keys.authenticate(black_box(&f.secret), NOW).is_ok()))
    });
    group.bench_function("authenticate_scope_rate", |b| {
        b.iter(|| black_box(guard(black_box(&f))))
    });
    group.bench_function("refuse_malformed", |b| {
        b.iter(|| black_box(f.keys.authenticate(black_box(malformed), NOW).is_err()))
    });
    group.finish();

    let n = 200_000;
    let base = percentiles(
        || {
            black_box(f.admin.matches(&f.admin_text));
        },
        n,
    );
    let auth = percentiles(
        || {
            black_box(f.keys.authenticate(&f.secret, NOW).is_ok());
        },
        n,
    );
    let full = percentiles(
        || {
            black_box(guard(&f));
        },
        n,
    );
    println!("\n== single checks, hand-timed ({n} each) ==");
    for (name, (p50, p99)) in [
        ("admin_token_compare", base),
        ("authenticate", auth),
        ("authenticate_scope_rate", full),
    ] {
        println!(
            "  {name:<24} p50 {:>10}  p99 {:>10}  (p50 {:.2}x, p99 {:.2}x the baseline)",
            format_ns(p50),
            format_ns(p99),
            p50 / base.0,
            p99 / base.1
        );
    }
    println!("  goal: a few microseconds per request (issue 16)");
}

criterion_group!(benches, checks);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios(
        "API key check per request",
        "keys/admin_token_compare",
        &[
            "keys/admin_token_compare",
            "keys/authenticate",
            "keys/authenticate_scope_rate",
            "keys/refuse_malformed",
        ],
    );
}
