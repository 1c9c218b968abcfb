//! Side-by-side benchmark: the same two calls (add one to a 64-bit integer;
//! sum a 1 KiB payload) through `Box<dyn Trait>`, plugkit in-process (by
//! name, fast path), plugkit in process isolation, wasmtime, Extism, Lua
//! 5.4 and a Unix socket to a second process, timed in one process and one
//! run, with ratios to `Box<dyn>`; and a typed category call against the
//! same method through `Box<dyn>`.
//!
//! Run it with `cargo xtask bench side-by-side`, which builds the plugins
//! and the runner first; by hand: `cargo run --release --manifest-path
//! benches/side-by-side/Cargo.toml -- --plugin <libplugkit_bench_arith.so>
//! [--runner <plugkit-runner>] [--typed-plugin <libfixture_good.so>]`.

#![deny(unsafe_code)]

mod contenders;
mod timing;

use std::cell::RefCell;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use plugin_api::categories::*;

use contenders::lua::LuaScript;
use contenders::native::BoxDyn;
use contenders::plugkit::{Plugkit, PlugkitFast};
use contenders::socket::Socket;
use contenders::typed::{self, Typed};
use contenders::wasm::{Extism, Wasmtime};
use contenders::Contender;
use timing::{Batch, Stats};

const USAGE: &str = "usage: plugkit-side-by-side --plugin <path to the bench-arith cdylib> \
[--runner <plugkit-runner>] [--typed-plugin <fixture-good cdylib>] [--rounds N] [--per-round N]
(`cargo xtask bench side-by-side` builds the plugins and the runner and passes them)";

struct Options {
    plugin: PathBuf,
    /// The process-isolation runner; without it the process rows say so.
    runner: Option<PathBuf>,
    /// `fixture-good`, for the typed category call; without it that table says so.
    typed_plugin: Option<PathBuf>,
    rounds: usize,
    per_round: usize,
}

fn parse_args() -> Result<Option<Options>> {
    let mut args = std::env::args_os().skip(1);
    let mut plugin = None;
    let mut runner = None;
    let mut typed_plugin = None;
    let mut rounds = 200;
    let mut per_round = 10;
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--serve-socket" => {
                contenders::socket::serve(&PathBuf::from(value()?))?;
                return Ok(None);
            }
            "--plugin" => plugin = Some(PathBuf::from(value()?)),
            "--runner" => runner = Some(PathBuf::from(value()?)),
            "--typed-plugin" => typed_plugin = Some(PathBuf::from(value()?)),
            "--rounds" => rounds = value()?.to_string_lossy().parse().context("--rounds")?,
            "--per-round" => {
                per_round = value()?.to_string_lossy().parse().context("--per-round")?
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let plugin = plugin.with_context(|| format!("no plugin given\n{USAGE}"))?;
    if rounds == 0 || per_round == 0 {
        bail!("--rounds and --per-round must be at least 1");
    }
    Ok(Some(Options {
        plugin,
        runner,
        typed_plugin,
        rounds,
        per_round,
    }))
}

/// The first error a timed loop met; the run fails with it.
type Failure = RefCell<Option<String>>;

fn fail(failure: &Failure, name: &str, e: anyhow::Error) {
    failure
        .borrow_mut()
        .get_or_insert_with(|| format!("{name}: {e:#}"));
}

fn small_batch<'a, C: Contender>(name: &'a str, c: &'a mut C, failure: &'a Failure) -> Batch<'a> {
    Box::new(move |calls| {
        let start = Instant::now();
        for i in 0..calls {
            match c.add_one(black_box(i)) {
                Ok(v) => {
                    black_box(v);
                }
                Err(e) => {
                    fail(failure, name, e);
                    break;
                }
            }
        }
        start.elapsed()
    })
}

fn kib_batch<'a, C: Contender>(
    name: &'a str,
    c: &'a mut C,
    payload: &'a [u8],
    failure: &'a Failure,
) -> Batch<'a> {
    Box::new(move |calls| {
        let start = Instant::now();
        for _ in 0..calls {
            match c.sum(black_box(payload)) {
                Ok(v) => {
                    black_box(v);
                }
                Err(e) => {
                    fail(failure, name, e);
                    break;
                }
            }
        }
        start.elapsed()
    })
}

/// One line of a table: measured, or a slot for a contender that does not exist yet.
enum Row<'a> {
    Measured(&'a str, Batch<'a>),
    Missing(&'a str, &'a str),
}

fn format_ns(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2} ns")
    } else if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// Times the measured rows and prints the table; the first row is the baseline.
fn table(title: &str, rows: Vec<Row<'_>>, options: &Options, failure: &Failure) -> Result<()> {
    let mut batches = Vec::new();
    let mut layout = Vec::new();
    for row in rows {
        match row {
            Row::Measured(name, batch) => {
                layout.push((name, None));
                batches.push(batch);
            }
            Row::Missing(name, why) => layout.push((name, Some(why))),
        }
    }
    let stats = timing::measure(batches, options.rounds, options.per_round);
    if let Some(e) = failure.borrow().as_ref() {
        bail!("a call failed while being timed: {e}");
    }
    let base = stats.first().map(|s| s.median).unwrap_or(f64::NAN);
    println!("\n### {title}\n");
    println!("| contender | median | min | max | p99 | median ÷ `Box<dyn>` | calls per sample |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut measured = stats.iter();
    for (name, missing) in layout {
        match missing {
            Some(why) => println!("| {name} | — | — | — | — | — | {why} |"),
            None => {
                let Some(s): Option<&Stats> = measured.next() else {
                    bail!("internal: fewer timings than measured rows");
                };
                println!(
                    "| {name} | {} | {} | {} | {} | {:.1}× | {} |",
                    format_ns(s.median),
                    format_ns(s.min),
                    format_ns(s.max),
                    format_ns(s.p99),
                    s.median / base,
                    s.batch
                );
            }
        }
    }
    Ok(())
}

fn check(name: &str, what: &str, got: Result<u64>, want: u64) -> Result<()> {
    let got = got.with_context(|| format!("{name}: {what} failed"))?;
    if got != want {
        bail!("{name}: {what} returned {got}, expected {want}");
    }
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

const TYPED_SLOT: &str = "bench-arith has no category: see the typed category call table";
const PROCESS_SLOT: &str = "no `--runner` given (`cargo xtask bench side-by-side` passes it)";
const PROCESS_NAME: &str = "plugkit process isolation (`invoke`, sandboxed child)";

fn run(options: &Options) -> Result<()> {
    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 31 + 7) as u8).collect();
    let payload_sum: u64 = payload.iter().map(|b| u64::from(*b)).sum();

    let mut native = BoxDyn::new();
    let mut plugkit = Plugkit::load(&options.plugin)?;
    let mut plugkit_nothing = Plugkit::load(&options.plugin)?;
    let mut plugkit_fast = PlugkitFast::load(&options.plugin)?;
    let mut wasmtime = Wasmtime::new()?;
    let mut extism = Extism::new()?;
    let mut lua = LuaScript::new()?;
    let mut socket = Socket::start()?;
    let mut process = match &options.runner {
        Some(runner) => Some(Plugkit::load_isolated(&options.plugin, runner)?),
        None => None,
    };
    let lua_name = format!("mlua ({})", lua.version());

    // Every contender must do the work before its time counts.
    macro_rules! verify {
        ($name:expr, $c:expr) => {
            check($name, "add_one(41)", $c.add_one(41), 42)?;
            check($name, "add_one(u64::MAX)", $c.add_one(u64::MAX), 0)?;
            check($name, "sum(1 KiB)", $c.sum(&payload), payload_sum)?;
        };
    }
    verify!("Box<dyn>", native);
    verify!("plugkit", plugkit);
    verify!("plugkit fast path", plugkit_fast);
    verify!("wasmtime", wasmtime);
    verify!("Extism", extism);
    verify!(&lua_name, lua);
    verify!("Unix socket", socket);
    if let Some(process) = process.as_mut() {
        verify!("plugkit process isolation", process);
    }
    if plugkit_nothing.nothing()? != 0 {
        bail!("bench-arith's `nothing` replied with bytes");
    }

    println!("# plugkit side by side");
    println!();
    println!("machine: {}", machine());
    println!(
        "{}; wasmtime {}, extism {}, mlua {} ({}), plugkit in-process via plugin-host",
        env!("SIDE_BY_SIDE_RUSTC"),
        env!("SIDE_BY_SIDE_WASMTIME"),
        env!("SIDE_BY_SIDE_EXTISM"),
        env!("SIDE_BY_SIDE_MLUA"),
        lua.version()
    );
    println!(
        "each sample times a batch of calls (~50 µs); {} rounds × {} samples per contender, \
         contenders taking turns; min, max and p99 are over the batch means",
        options.rounds, options.per_round
    );

    let failure = Failure::default();
    let nothing_name = "plugkit `invoke`, empty payload and reply";
    let nothing: Batch<'_> = Box::new(|calls| {
        let start = Instant::now();
        for _ in 0..calls {
            match plugkit_nothing.nothing() {
                Ok(n) => {
                    black_box(n);
                }
                Err(e) => {
                    fail(&failure, nothing_name, e);
                    break;
                }
            }
        }
        start.elapsed()
    });
    table(
        "small call: add one to a u64",
        vec![
            Row::Measured(
                "`Box<dyn Trait>`",
                small_batch("Box<dyn>", &mut native, &failure),
            ),
            Row::Measured(
                "plugkit `invoke` (in-process)",
                small_batch("plugkit", &mut plugkit, &failure),
            ),
            Row::Measured(nothing_name, nothing),
            Row::Measured(
                "plugkit fast path (`MethodHandle::call_into`)",
                small_batch("plugkit fast path", &mut plugkit_fast, &failure),
            ),
            Row::Missing("plugkit typed call", TYPED_SLOT),
            match process.as_mut() {
                Some(p) => Row::Measured(PROCESS_NAME, small_batch("plugkit process", p, &failure)),
                None => Row::Missing(PROCESS_NAME, PROCESS_SLOT),
            },
            Row::Measured(
                "wasmtime, typed func",
                small_batch("wasmtime", &mut wasmtime, &failure),
            ),
            Row::Measured("Extism", small_batch("Extism", &mut extism, &failure)),
            Row::Measured(&lua_name, small_batch("mlua", &mut lua, &failure)),
            Row::Measured(
                "Unix socket, 2 processes",
                small_batch("Unix socket", &mut socket, &failure),
            ),
        ],
        options,
        &failure,
    )?;
    table(
        "1 KiB payload: the callee sums its bytes",
        vec![
            Row::Measured(
                "`Box<dyn Trait>`",
                kib_batch("Box<dyn>", &mut native, &payload, &failure),
            ),
            Row::Measured(
                "plugkit `invoke` (in-process)",
                kib_batch("plugkit", &mut plugkit, &payload, &failure),
            ),
            Row::Measured(
                "plugkit fast path (`MethodHandle::call_into`)",
                kib_batch("plugkit fast path", &mut plugkit_fast, &payload, &failure),
            ),
            Row::Missing("plugkit typed call", TYPED_SLOT),
            match process.as_mut() {
                Some(p) => Row::Measured(
                    PROCESS_NAME,
                    kib_batch("plugkit process", p, &payload, &failure),
                ),
                None => Row::Missing(PROCESS_NAME, PROCESS_SLOT),
            },
            Row::Measured(
                "wasmtime, memory write + typed func",
                kib_batch("wasmtime", &mut wasmtime, &payload, &failure),
            ),
            Row::Measured(
                "Extism",
                kib_batch("Extism", &mut extism, &payload, &failure),
            ),
            Row::Measured(&lua_name, kib_batch("mlua", &mut lua, &payload, &failure)),
            Row::Measured(
                "Unix socket, 2 processes",
                kib_batch("Unix socket", &mut socket, &payload, &failure),
            ),
        ],
        options,
        &failure,
    )?;

    typed_table(options, &failure)?;

    // The timed loops did not look at results; look once more afterwards.
    verify!("plugkit", plugkit);
    verify!("wasmtime", wasmtime);
    verify!("Extism", extism);
    verify!(&lua_name, lua);
    verify!("Unix socket", socket);
    if let Some(process) = process.as_mut() {
        verify!("plugkit process isolation", process);
    }
    Ok(())
}

/// A batch of `call`s; the first error fails the run.
fn timed<'a>(name: &'a str, failure: &'a Failure, call: impl Fn() -> Result<()> + 'a) -> Batch<'a> {
    Box::new(move |calls| {
        let start = Instant::now();
        for _ in 0..calls {
            if let Err(e) = call() {
                fail(failure, name, e);
                break;
            }
        }
        start.elapsed()
    })
}

/// The typed category call: `communication.message_status` through
/// `Box<dyn>` (baseline), a tenant-bound plugkit handle and a plain one.
fn typed_table(options: &Options, failure: &Failure) -> Result<()> {
    const TITLE: &str = "typed category call: `communication.message_status`";
    let Some(library) = &options.typed_plugin else {
        println!("\n### {TITLE}\n\nnot measured: no `--typed-plugin` given (`cargo xtask bench side-by-side` passes fixture-good)");
        return Ok(());
    };
    let direct = typed::direct();
    let plugkit = Typed::load(library)?;
    plugkit.verify(&*direct)?;
    let tenant = typed::tenant();
    table(
        TITLE,
        vec![
            Row::Measured(
                "`Box<dyn Trait>`, same method",
                timed("Box<dyn>", failure, || {
                    black_box(direct.message_status(black_box(tenant), "SM1".into())?);
                    Ok(())
                }),
            ),
            Row::Measured(
                "plugkit typed call, tenant-bound (`BoundPlugin`)",
                timed("BoundPlugin", failure, || {
                    let bound = &plugkit.bound;
                    black_box(
                        bound
                            .communication()?
                            .message_status(bound.tenant(), "SM1".into())?,
                    );
                    Ok(())
                }),
            ),
            Row::Measured(
                "plugkit typed call (`PluginHandle`)",
                timed("PluginHandle", failure, || {
                    black_box(
                        plugkit
                            .handle
                            .communication()?
                            .message_status(black_box(tenant), "SM1".into())?,
                    );
                    Ok(())
                }),
            ),
        ],
        options,
        failure,
    )?;
    plugkit.verify(&*direct)
}

fn main() -> Result<()> {
    let Some(options) = parse_args()? else {
        return Ok(());
    };
    run(&options)
}
