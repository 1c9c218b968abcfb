//! Process isolation cost (issue 13): the same plugin library called
//! in-process and in a sandboxed child process, against the floor of a
//! plain Unix-socket request/response between two processes (what a
//! go-plugin style design pays before any serialization); plus crash →
//! replacement serving, and spawn + load + initialize of a child.
//!
//! Run with `cargo xtask bench isolation`. Prints mean (criterion) and
//! p50/p99 (hand-timed single calls) with ratios measured in the same run.

use std::hint::black_box;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use plugin_host::isolation::{Isolation, ProcessOptions};
use plugin_host::{Host, HostConfig, LoadOptions, PluginHandle};
use plugkit_bench::{format_ns, library, print_ratios};

const TENANT: &str = "acme";
const PLUGIN: &str = "fixture-hostile";

fn host_with(isolation: Isolation, dir: &std::path::Path, spin: Duration) -> (Host, PluginHandle) {
    let mut config = HostConfig::with_runtime_dir(dir);
    config.runner = Some(library("plugkit-runner"));
    let host = Host::new(config).expect("host");
    let options = LoadOptions {
        isolation,
        process: ProcessOptions {
            max_crashes: 1_000,
            restart_backoff: Duration::ZERO,
            spin,
            ..ProcessOptions::default()
        },
        ..LoadOptions::default()
    };
    let id = host.load(&library(PLUGIN), options).expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, TENANT, "{}").expect("activate");
    let handle = host.plugin(&id).expect("handle");
    (host, handle)
}

/// A forked echo server on a SOCK_SEQPACKET socketpair: the request/response
/// floor between two processes.
struct SocketPeer {
    fd: OwnedFd,
    child: libc::pid_t,
    buf: Vec<u8>,
}

impl SocketPeer {
    fn start() -> Self {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills two fds.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0, "socketpair");
        // SAFETY: the bench is single-threaded here; the child only uses
        // recv/send/_exit until it exits.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // SAFETY: a valid buffer.
                let n = unsafe { libc::recv(fds[1], buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n <= 0 {
                    // SAFETY: leaving the forked child without running destructors.
                    unsafe { libc::_exit(0) };
                }
                // SAFETY: sends the n bytes just received.
                unsafe { libc::send(fds[1], buf.as_ptr().cast(), n as usize, 0) };
            }
        }
        // SAFETY: closing the child's end in the parent; owning ours.
        unsafe { libc::close(fds[1]) };
        Self {
            // SAFETY: fds[0] is ours.
            fd: unsafe { OwnedFd::from_raw_fd(fds[0]) },
            child,
            buf: vec![0u8; 64 * 1024],
        }
    }

    fn call(&mut self, request: &[u8]) -> usize {
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid buffers for send/recv.
        unsafe {
            libc::send(fd, request.as_ptr().cast(), request.len(), 0);
            libc::recv(fd, self.buf.as_mut_ptr().cast(), self.buf.len(), 0) as usize
        }
    }
}

impl Drop for SocketPeer {
    fn drop(&mut self) {
        // SAFETY: shutting our end makes the child's recv return 0; reap it.
        unsafe {
            libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_RDWR);
            libc::waitpid(self.child, std::ptr::null_mut(), 0);
        }
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

fn calls(c: &mut Criterion) {
    // Forked before any host thread exists.
    let mut peer = SocketPeer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let default_spin = ProcessOptions::default().spin;
    let (_in_host, in_process) =
        host_with(Isolation::InProcess, &dir.path().join("a"), default_spin);
    let (_proc_host, process) = host_with(Isolation::Process, &dir.path().join("b"), default_spin);
    // The same with a long busy-wait: the fast path when a core is free.
    let (_spin_host, spinning) = host_with(
        Isolation::Process,
        &dir.path().join("c"),
        Duration::from_micros(200),
    );
    let kib = vec![7u8; 1024];
    let mut tails = Vec::new();
    for (label, payload) in [("empty", &[][..]), ("1KiB", &kib[..])] {
        // The socket peer gets the method name and payload, unencoded.
        let mut request = b"echo".to_vec();
        request.extend_from_slice(payload);
        let mut group = c.benchmark_group(format!("isolation/{label}"));
        group.measurement_time(Duration::from_secs(3));
        group.bench_function("in_process", |b| {
            b.iter(|| in_process.invoke(black_box(TENANT), "echo", black_box(payload)))
        });
        group.bench_function("process", |b| {
            b.iter(|| process.invoke(black_box(TENANT), "echo", black_box(payload)))
        });
        group.bench_function("process_spin200us", |b| {
            b.iter(|| spinning.invoke(black_box(TENANT), "echo", black_box(payload)))
        });
        group.bench_function("unix_socket", |b| b.iter(|| peer.call(black_box(&request))));
        group.finish();
        let n = 20_000;
        let inp = percentiles(|| drop(in_process.invoke(TENANT, "echo", payload)), n);
        let pro = percentiles(|| drop(process.invoke(TENANT, "echo", payload)), n);
        let spin = percentiles(|| drop(spinning.invoke(TENANT, "echo", payload)), n);
        let sock = percentiles(
            || {
                black_box(peer.call(&request));
            },
            n,
        );
        tails.push((label, inp, pro, spin, sock));
    }
    for (label, inp, pro, spin, sock) in tails {
        println!("\n== isolation call latency, {label} payload (20000 single calls) ==");
        for (name, (p50, p99)) in [
            ("in_process", inp),
            ("process", pro),
            ("process_spin200us", spin),
            ("unix_socket", sock),
        ] {
            println!(
                "  {name:<12} p50 {:>10}  p99 {:>10}",
                format_ns(p50),
                format_ns(p99)
            );
        }
        println!(
            "  unix_socket / process: p50 {:.2}x  p99 {:.2}x; / process_spin200us: p50 {:.2}x  p99 {:.2}x  (goal: >= 3x; p99 < 50 µs)",
            sock.0 / pro.0,
            sock.1 / pro.1,
            sock.0 / spin.0,
            sock.1 / spin.1
        );
    }
}

/// Crash → replacement serving, and spawn + load + initialize, timed by hand.
fn recovery() {
    const RUNS: usize = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let (_host, process) = host_with(
        Isolation::Process,
        &dir.path().join("crash"),
        ProcessOptions::default().spin,
    );
    let mut detected = Vec::new();
    let mut serving = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let err = process.invoke(TENANT, "segv", b"");
        assert!(err.is_err(), "segv must fail");
        let at_error = start.elapsed();
        process.invoke(TENANT, "echo", b"x").expect("serving again");
        detected.push(at_error.as_nanos() as f64);
        serving.push(start.elapsed().as_nanos() as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let (d50, dmax) = median(&mut detected);
    let (s50, smax) = median(&mut serving);
    println!("\n== crash → replacement serving ({RUNS} SIGSEGVs, release runner) ==");
    println!(
        "  crash detected (error returned):   median {}  max {}",
        format_ns(d50),
        format_ns(dmax)
    );
    println!(
        "  replacement serving (echo answered): median {}  max {}  (goal < 50 ms)",
        format_ns(s50),
        format_ns(smax)
    );

    let mut spawn = Vec::new();
    for i in 0..RUNS {
        let mut config = HostConfig::with_runtime_dir(dir.path().join(format!("s{i}")));
        config.runner = Some(library("plugkit-runner"));
        let host = Host::new(config).expect("host");
        let options = LoadOptions {
            isolation: Isolation::Process,
            ..LoadOptions::default()
        };
        let start = Instant::now();
        let id = host.load(&library(PLUGIN), options).expect("load");
        host.initialize(&id).expect("initialize");
        spawn.push(start.elapsed().as_nanos() as f64);
        host.cleanup(&id).expect("cleanup");
    }
    let (p50, max) = median(&mut spawn);
    println!("\n== spawn + sandbox + load + initialize of a child ({RUNS} runs) ==");
    println!("  median {}  max {}", format_ns(p50), format_ns(max));
}

criterion_group!(benches, calls);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    for label in ["empty", "1KiB"] {
        let g = format!("isolation/{label}");
        print_ratios(
            &format!("isolation call cost (mean), {label} payload"),
            &format!("{g}/process"),
            &[
                &format!("{g}/in_process"),
                &format!("{g}/process"),
                &format!("{g}/process_spin200us"),
                &format!("{g}/unix_socket"),
            ],
        );
    }
    recovery();
}
