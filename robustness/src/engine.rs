//! The run loop: a coverage-free mutator seeded from a corpus of real inputs,
//! one input at a time through a target, with every panic, overlong input
//! and crash kept as a finding in the findings directory.
//!
//! Reproducible: input `i` depends only on the seed corpus, the run seed and
//! `i`, so a run with the same seed feeds the same inputs. A panic is caught
//! (`catch_unwind`, and a hook that sees panics on any thread, such as the
//! daemon's blocking workers); an input that runs past the time budget is
//! written out by a watchdog thread, which then ends the process; a crash
//! (abort, segfault, stack overflow) is written out by a signal handler
//! before the process dies. The driver (`cargo xtask fuzz`) runs each target
//! in its own process and reports all three.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::IntoRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

/// Separates the fields of a multi-part input (URL, body, signature, ...).
/// One byte, so the mutator creates and deletes fields as it does any byte.
pub(crate) const FIELD_SEPARATOR: u8 = 0x1e;

/// The largest input fed to a target.
const MAX_INPUT: usize = 64 * 1024;

/// What one execution found, besides panics (which the engine sees itself).
pub enum Outcome {
    /// Handled: an answer or a clear refusal, of the class named (e.g.
    /// `accepted`, `refused`, `401`); the summary counts each class, which
    /// shows how deep the inputs got.
    Handled(&'static str),
    /// A fault the target detected without panicking (a 5xx for bad input,
    /// a message that leaks a secret, ...). `key` groups the same fault.
    Fault {
        /// What the fault is, without the input's variable parts.
        key: String,
        /// What this input produced.
        message: String,
    },
}

/// Runs one input through the code under test.
pub type Run = Box<dyn FnMut(&[u8]) -> Outcome>;

/// One thing under test.
pub struct Target {
    /// The target's name: the findings folder, the summary.
    pub name: &'static str,
    /// Real inputs to mutate; each is also run as it is.
    pub seeds: Vec<Vec<u8>>,
    /// Tokens of the input's language, inserted and overwritten whole.
    pub dictionary: Vec<Vec<u8>>,
    /// A field most mutations go to (three in four inputs change only it,
    /// splicing only with the same field of other seeds); `None`: the
    /// whole input.
    pub focus: Option<usize>,
    /// Runs one input.
    pub run: Run,
}

/// How to run.
pub(crate) struct Options {
    pub(crate) runs: u64,
    pub(crate) seed: u64,
    pub(crate) budget: Duration,
    pub(crate) findings: PathBuf,
}

/// The findings of one kind at one place.
#[derive(Clone)]
struct Finding {
    kind: &'static str,
    key: String,
    message: String,
    count: u64,
    file: PathBuf,
}

static EXECUTIONS: AtomicU64 = AtomicU64::new(0);
static CLASSES: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static FINDINGS: Mutex<BTreeMap<String, Finding>> = Mutex::new(BTreeMap::new());
/// The input being executed, for the watchdog and the signal handler.
static CURRENT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);
/// Milliseconds since [`epoch`] when the current execution started; 0 when idle.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// Where the signal handler writes the input that crashed.
static CRASH_FD: AtomicI32 = AtomicI32::new(-1);
/// Set by the panic hook; read after each execution.
static PANICKED: AtomicBool = AtomicBool::new(false);
static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);
static SUMMARY: OnceLock<SummaryHeader> = OnceLock::new();

struct SummaryHeader {
    target: &'static str,
    started: Instant,
    runs: u64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The crash file's name: the driver renames it after the process died.
pub(crate) const CRASH_PENDING: &str = "crash-pending.bin";

/// Runs `target` for `options.runs` inputs (the seeds first), then prints
/// the summary as one JSON line on stdout.
pub(crate) fn run(mut target: Target, options: &Options) -> anyhow::Result<()> {
    let dir = options.findings.join(target.name);
    std::fs::create_dir_all(&dir)?;
    let _ = SUMMARY.set(SummaryHeader {
        target: target.name,
        started: Instant::now(),
        runs: options.runs,
    });
    install_panic_hook();
    install_crash_handler(&dir.join(CRASH_PENDING))?;
    start_watchdog(options.budget, dir.clone());
    anyhow::ensure!(
        !target.seeds.is_empty(),
        "target {} has no seeds",
        target.name
    );

    let mut slowest = Duration::ZERO;
    let mut last_report = Instant::now();
    let seeds = target.seeds.clone();
    for i in 0..options.runs {
        let input = match usize::try_from(i).ok().and_then(|i| seeds.get(i)) {
            Some(seed) => seed.clone(),
            None => {
                let mut rng =
                    fastrand::Rng::with_seed(options.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                match target.focus {
                    Some(field) if rng.u8(0..4) != 0 => {
                        mutate_field(&seeds, field, &target.dictionary, &mut rng)
                    }
                    _ => mutate(&seeds, &target.dictionary, &mut rng),
                }
            }
        };
        CURRENT_LEN.store(input.len(), Ordering::SeqCst);
        CURRENT.store(input.as_ptr().cast_mut(), Ordering::SeqCst);
        let began = Instant::now();
        STARTED_MS.store(now_ms(), Ordering::SeqCst);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        STARTED_MS.store(0, Ordering::SeqCst);
        slowest = slowest.max(began.elapsed());
        EXECUTIONS.store(i + 1, Ordering::SeqCst);

        if PANICKED.swap(false, Ordering::SeqCst) {
            let (location, message) = LAST_PANIC
                .lock()
                .map(|mut p| p.take())
                .ok()
                .flatten()
                .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
            record(&dir, "panic", location, message, &input);
        } else {
            match outcome {
                Ok(Outcome::Fault { key, message }) => {
                    record(&dir, "fault", key, message, &input);
                }
                Ok(Outcome::Handled(class)) => {
                    if let Ok(mut classes) = CLASSES.lock() {
                        *classes.entry(class).or_default() += 1;
                    }
                }
                // Recorded by the panic hook.
                Err(_) => {}
            }
        }
        CURRENT.store(std::ptr::null_mut(), Ordering::SeqCst);

        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "[{}] {} / {} inputs, {} findings",
                target.name,
                i + 1,
                options.runs,
                FINDINGS.lock().map(|f| f.len()).unwrap_or(0)
            );
        }
    }
    let _ = std::fs::remove_file(dir.join(CRASH_PENDING));
    println!("{}", summary(None, slowest));
    Ok(())
}

/// The summary line the driver reads.
fn summary(stopped_by: Option<&str>, slowest: Duration) -> String {
    let header = SUMMARY.get();
    let findings: Vec<_> = FINDINGS
        .lock()
        .map(|f| f.values().cloned().collect())
        .unwrap_or_default();
    json!({
        "target": header.map(|h| h.target),
        "executions": EXECUTIONS.load(Ordering::SeqCst),
        "runs": header.map(|h| h.runs),
        "seconds": header.map(|h| h.started.elapsed().as_secs_f64()),
        "slowest_ms": slowest.as_secs_f64() * 1000.0,
        "stopped_by": stopped_by,
        "classes": CLASSES.lock().map(|c| c.clone()).unwrap_or_default(),
        "findings": findings.iter().map(|f| json!({
            "kind": f.kind,
            "key": f.key,
            "message": f.message,
            "count": f.count,
            "file": f.file,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Keeps the first input of each distinct finding; counts the rest.
fn record(dir: &Path, kind: &'static str, key: String, message: String, input: &[u8]) {
    let Ok(mut findings) = FINDINGS.lock() else {
        return;
    };
    let id = format!("{kind} {key}");
    if let Some(f) = findings.get_mut(&id) {
        f.count += 1;
        return;
    }
    let hash = hex::encode(&Sha256::digest(input)[..8]);
    let file = dir.join(format!("{kind}-{hash}.bin"));
    let _ = std::fs::write(&file, input);
    let _ = std::fs::write(
        file.with_extension("txt"),
        format!("{kind} at {key}\n{message}\n"),
    );
    eprintln!("finding: {kind} at {key}: {message}");
    findings.insert(
        id,
        Finding {
            kind,
            key,
            message,
            count: 1,
            file,
        },
    );
}

fn install_panic_hook() {
    // Replaces the default hook: no backtraces (RUST_BACKTRACE is often set
    // on the machine) and no output; the engine reports each kind once.
    panic::set_hook(Box::new(|info| {
        let location = info.location().map_or_else(
            || "unknown".to_owned(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some((location, message));
        }
        PANICKED.store(true, Ordering::SeqCst);
    }));
}

/// Writes the current input to `path` when the process gets a fatal signal.
fn install_crash_handler(path: &Path) -> anyhow::Result<()> {
    let file = File::create(path)?;
    CRASH_FD.store(file.into_raw_fd(), Ordering::SeqCst);
    for signal in [
        libc::SIGABRT,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
    ] {
        // SAFETY: `on_fatal_signal` only calls async-signal-safe functions
        // (write, ftruncate, signal, raise) and reads atomics; the sigaction
        // struct is zeroed, then filled as sigaction(2) documents.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as *const () as usize;
            // SA_ONSTACK: a stack overflow runs the handler on the signal
            // stack the Rust runtime set up for the main thread.
            action.sa_flags = libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    Ok(())
}

extern "C" fn on_fatal_signal(signal: libc::c_int) {
    let fd = CRASH_FD.load(Ordering::SeqCst);
    let ptr = CURRENT.load(Ordering::SeqCst);
    let len = CURRENT_LEN.load(Ordering::SeqCst);
    // SAFETY: `ptr`/`len` describe the input the main loop keeps alive while
    // it runs (null when idle); write/ftruncate/signal/raise are
    // async-signal-safe.
    unsafe {
        if fd >= 0 && !ptr.is_null() {
            libc::ftruncate(fd, 0);
            libc::write(fd, ptr.cast(), len);
        }
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Ends the process when one input runs longer than `budget`, keeping it.
fn start_watchdog(budget: Duration, dir: PathBuf) {
    let budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(50));
        let started = STARTED_MS.load(Ordering::SeqCst);
        if started == 0 || now_ms().saturating_sub(started) <= budget_ms {
            continue;
        }
        let ptr = CURRENT.load(Ordering::SeqCst);
        let len = CURRENT_LEN.load(Ordering::SeqCst);
        let input = if ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: the main loop is stuck inside this input's execution,
            // so the buffer is alive and unchanged.
            unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
        };
        record(
            &dir,
            "hang",
            format!("over {budget_ms} ms"),
            format!("one input ran longer than the budget of {budget_ms} ms"),
            &input,
        );
        println!("{}", summary(Some("hang"), budget));
        std::process::exit(3);
    });
}

/// Splits a multi-part input into its fields.
pub fn fields(input: &[u8]) -> Vec<&[u8]> {
    input.split(|b| *b == FIELD_SEPARATOR).collect()
}

/// Joins fields into one input.
pub fn join(fields: &[&[u8]]) -> Vec<u8> {
    fields.join(&FIELD_SEPARATOR)
}

/// Bytes that break parsers: delimiters, quotes, escapes, extremes.
const INTERESTING_BYTES: &[u8] =
    b"\0\x01\x7f\x80\xff\t\n\r \"'\\[]{}=,.:;#%&?/@$+-_0123456789eE\x1e";

/// Numbers at the edges of the integer and float types.
const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "255",
    "65535",
    "65536",
    "2147483647",
    "-2147483648",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551616",
    "1e308",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "-inf",
    "0.0000000000000000000000001",
    "99999999999999999999999999999999999999",
];

/// One seed with only its field `field` mutated (the seed is used as it is
/// when it has no such field).
fn mutate_field(
    seeds: &[Vec<u8>],
    field: usize,
    dictionary: &[Vec<u8>],
    rng: &mut fastrand::Rng,
) -> Vec<u8> {
    let seed = &seeds[rng.usize(..seeds.len())];
    let mut parts: Vec<Vec<u8>> = fields(seed).into_iter().map(<[u8]>::to_vec).collect();
    if field >= parts.len() {
        return seed.clone();
    }
    let same_field: Vec<Vec<u8>> = seeds
        .iter()
        .filter_map(|s| fields(s).get(field).map(|f| f.to_vec()))
        .collect();
    // The mutated field starts from this seed's own.
    let mut pool = vec![parts[field].clone()];
    pool.extend(same_field);
    let mut mutated = mutate(&pool[..1], dictionary, rng);
    if rng.u8(0..8) == 0 {
        mutated = mutate(&pool, dictionary, rng);
    }
    parts[field] = mutated;
    let borrowed: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    join(&borrowed)
}

/// One mutated input: a seed, changed by a stack of 1 to 16 mutations.
pub(crate) fn mutate(
    seeds: &[Vec<u8>],
    dictionary: &[Vec<u8>],
    rng: &mut fastrand::Rng,
) -> Vec<u8> {
    let mut data = seeds[rng.usize(..seeds.len())].clone();
    let stack = 1usize << rng.u32(0..5);
    for _ in 0..stack {
        let len = data.len();
        match rng.u8(0..14) {
            // Flip one bit.
            0 if len > 0 => {
                let at = rng.usize(..len);
                data[at] ^= 1 << rng.u8(0..8);
            }
            // Set a byte to any value.
            1 if len > 0 => {
                let at = rng.usize(..len);
                data[at] = rng.u8(..);
            }
            // Set a byte to a delimiter or an extreme.
            2 if len > 0 => {
                let at = rng.usize(..len);
                data[at] = INTERESTING_BYTES[rng.usize(..INTERESTING_BYTES.len())];
            }
            // Insert random bytes.
            3 => {
                let at = rng.usize(..=len);
                let n = rng.usize(1..9);
                let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                data.splice(at..at, bytes);
            }
            // Delete a range.
            4 if len > 0 => {
                let at = rng.usize(..len);
                let n = rng.usize(1..=(len - at).min(64));
                data.drain(at..at + n);
            }
            // Duplicate a range in place.
            5 if len > 0 => {
                let at = rng.usize(..len);
                let n = rng.usize(1..=(len - at).min(64));
                let copy = data[at..at + n].to_vec();
                let to = rng.usize(..=len);
                data.splice(to..to, copy);
            }
            // Overwrite with a dictionary token.
            6 if len > 0 && !dictionary.is_empty() => {
                let token = &dictionary[rng.usize(..dictionary.len())];
                let at = rng.usize(..len);
                let end = (at + token.len()).min(len);
                data.splice(at..end, token.iter().copied());
            }
            // Insert a dictionary token.
            7 if !dictionary.is_empty() => {
                let token = &dictionary[rng.usize(..dictionary.len())];
                let at = rng.usize(..=len);
                data.splice(at..at, token.iter().copied());
            }
            // Splice: this input's head, another seed's tail.
            8 => {
                let other = &seeds[rng.usize(..seeds.len())];
                let at = rng.usize(..=len);
                let from = rng.usize(..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            // Replace a run of digits (or insert) with an edge number.
            9 => {
                let number = INTERESTING_NUMBERS[rng.usize(..INTERESTING_NUMBERS.len())];
                let at = rng.usize(..=len);
                let end = data[at..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |p| at + p);
                data.splice(at..end, number.bytes());
            }
            // Repeat a token many times: deep nesting, long lines.
            10 if rng.u8(0..4) == 0 => {
                let token: Vec<u8> = if !dictionary.is_empty() && rng.bool() {
                    dictionary[rng.usize(..dictionary.len())].clone()
                } else {
                    vec![INTERESTING_BYTES[rng.usize(..INTERESTING_BYTES.len())]]
                };
                let times = rng.usize(1..5000);
                let at = rng.usize(..=len);
                let repeated: Vec<u8> = token
                    .iter()
                    .copied()
                    .cycle()
                    .take(token.len() * times)
                    .collect();
                data.splice(at..at, repeated);
            }
            // Nudge an ASCII byte by one (`0`→`1`, `a`→`b`, `"`→`#`).
            11 if len > 0 => {
                let at = rng.usize(..len);
                data[at] = if rng.bool() {
                    data[at].wrapping_add(1)
                } else {
                    data[at].wrapping_sub(1)
                };
            }
            // Truncate.
            12 if len > 0 => {
                data.truncate(rng.usize(..len));
            }
            // Swap two bytes.
            13 if len > 1 => {
                let a = rng.usize(..len);
                let b = rng.usize(..len);
                data.swap(a, b);
            }
            _ => {}
        }
        data.truncate(MAX_INPUT);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let seeds = vec![b"name = \"plugkit\"\nversion = \"1.0.0\"".to_vec()];
        let dictionary = vec![b"[[".to_vec()];
        let run = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..100)
                .map(|_| mutate(&seeds, &dictionary, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn mutated_inputs_stay_within_the_size_limit_and_differ_from_the_seed() {
        let seeds = vec![vec![b'a'; 1000]];
        let mut rng = fastrand::Rng::with_seed(1);
        let inputs: Vec<_> = (0..2000).map(|_| mutate(&seeds, &[], &mut rng)).collect();
        assert!(inputs.iter().all(|i| i.len() <= MAX_INPUT));
        let changed = inputs.iter().filter(|i| **i != seeds[0]).count();
        assert!(changed > 1800, "only {changed} of 2000 inputs changed");
    }

    #[test]
    fn fields_round_trip_through_the_separator() {
        let input = join(&[b"url", b"", b"body"]);
        assert_eq!(fields(&input), vec![&b"url"[..], b"", b"body"]);
    }
}
