//! `api-load`: starts an isp-daemon on 127.0.0.1 with the reference
//! plugins, sends a bounded number of GETs to each read endpoint from many
//! keep-alive connections, and prints throughput, p50/p99 latency, failed
//! and mis-authorised requests, and the daemon's resident memory (VmRSS)
//! idle, during and after each run. `cargo xtask bench api-load` builds
//! what it needs and runs it; it exits non-zero when a request failed.

#![deny(unsafe_code)]

mod load;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::load::Credential;

/// The read endpoints measured by default; `{tenant}` is the first tenant.
const ENDPOINTS: [&str; 7] = [
    "/api/health",
    "/api/plugins",
    "/api/tenants/{tenant}",
    "/api/tenants",
    "/api/graph",
    "/api/audit",
    "/metrics",
];

#[derive(Parser)]
#[command(
    name = "api-load",
    about = "Load test of the isp-daemon's read endpoints"
)]
struct Cli {
    /// The isp-daemon executable (build it with --release).
    #[arg(long)]
    daemon: PathBuf,
    /// The artifact map of the plugins to install (`--plugins-from-build`).
    #[arg(long)]
    artifacts: PathBuf,
    /// The isolation runner (PLUGKIT_RUNNER), for plugins that run in a child.
    #[arg(long)]
    runner: Option<PathBuf>,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Paths to measure (repeatable) [default: every read endpoint].
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// A credential, `TOKEN` or `TOKEN,/path-prefix,...` naming the paths it
    /// may read (others must answer 403); repeatable, used in turn. The
    /// first one is also given to the daemon as its admin token.
    /// [default: a token made up for this run, allowed everywhere]
    #[arg(long = "credential")]
    credentials: Vec<String>,
    /// The daemon's log level (RUST_LOG); `info` logs a line per request.
    #[arg(long, default_value = "warn")]
    daemon_log: String,
    /// Extra arguments for the daemon (after `--`).
    #[arg(last = true)]
    daemon_args: Vec<String>,
}

/// The daemon's resident memory in bytes, from `/proc/<pid>/status`.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Kills the daemon when the run ends, however it ends.
struct Daemon {
    child: Child,
    _state: tempdir::Dir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod tempdir {
    //! A temporary state directory, removed on drop.
    use std::path::{Path, PathBuf};

    pub(crate) struct Dir(PathBuf);

    impl Dir {
        pub(crate) fn new() -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!(
                "plugkit-api-load-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default()
            ));
            std::fs::create_dir_all(&path)?;
            Ok(Self(path))
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Starts the daemon and waits for the line naming its address.
fn start_daemon(cli: &Cli, token: &str) -> Result<(Daemon, SocketAddr)> {
    let state = tempdir::Dir::new().context("creating a state directory")?;
    let mut command = Command::new(&cli.daemon);
    command
        .args([
            "--serve",
            "--no-devices",
            "--allow-unsigned",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--plugins-from-build")
        .arg(&cli.artifacts)
        .arg("--state-dir")
        .arg(state.path().join("state"))
        .args(&cli.daemon_args)
        .env("ISP_DAEMON_ADMIN_TOKEN", token)
        .env("RUST_LOG", &cli.daemon_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(runner) = &cli.runner {
        command.env("PLUGKIT_RUNNER", runner);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", cli.daemon.display()))?;
    let stdout = child.stdout.take().context("the daemon's stdout")?;
    let daemon = Daemon {
        child,
        _state: state,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("API listening on http://").nth(1) {
                    let addr = rest.trim_end_matches("/api").to_owned();
                    sent = tx.send(addr).is_ok();
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the daemon did not say where it listens within 60 s")?;
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("the daemon's address {addr:?}"))?;
    Ok((daemon, addr))
}

/// Samples the daemon's RSS every 20 ms until `stop`; returns the maximum.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>, max: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(rss) = rss_of(pid) {
                max.fetch_max(rss, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let credentials: Vec<Credential> = if cli.credentials.is_empty() {
        let token = format!("api-load-{}", std::process::id());
        vec![Credential::parse(&token)]
    } else {
        cli.credentials
            .iter()
            .map(|c| Credential::parse(c))
            .collect()
    };
    let admin = credentials[0].token.clone();
    let (daemon, addr) = start_daemon(&cli, &admin)?;
    let pid = daemon.child.id();

    // Ready when health answers; then the first tenant's id.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match load::get(addr, "/api/health", &admin).await {
            Ok((status, _)) if status.is_success() => break,
            _ if Instant::now() > deadline => bail!("the daemon did not answer /api/health"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let (_, body) = load::get(addr, "/api/tenants", &admin).await?;
    let tenants: serde_json::Value = serde_json::from_slice(&body).context("/api/tenants")?;
    let tenant = tenants["tenants"][0]["tenant"]
        .as_str()
        .context("the daemon has no tenant to read")?
        .to_owned();
    let endpoints: Vec<String> = if cli.endpoints.is_empty() {
        ENDPOINTS
            .iter()
            .map(|e| e.replace("{tenant}", &tenant))
            .collect()
    } else {
        cli.endpoints
            .iter()
            .map(|e| e.replace("{tenant}", &tenant))
            .collect()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_of(pid).context("reading the daemon's VmRSS")?;
    println!(
        "api-load: daemon pid {pid} on {addr} (log level {}), {} requests per endpoint from {} \
         connections, {} credential(s); idle RSS {:.1} MB",
        cli.daemon_log,
        cli.requests,
        cli.connections,
        credentials.len(),
        mb(idle)
    );
    println!();
    println!("| endpoint | req/s | p50 ms | p99 ms | failed | mis-authorised | RSS during (max) MB | RSS after MB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut failed = 0;
    for path in &endpoints {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let sampler = sample_rss(pid, Arc::clone(&stop), Arc::clone(&max));
        let outcome = load::run(addr, path, cli.requests, cli.connections, &credentials).await?;
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_of(pid).unwrap_or(0);
        println!(
            "| `GET {path}` | {:.0} | {:.2} | {:.2} | {} | {} | {:.1} | {:.1} |",
            outcome.throughput(),
            outcome.quantile_ms(0.50),
            outcome.quantile_ms(0.99),
            outcome.failed,
            outcome.misauthorised,
            mb(max.load(Ordering::Relaxed)),
            mb(after)
        );
        if let Some(first) = &outcome.first_failure {
            eprintln!("api-load: first failure: {first}");
        }
        failed += outcome.failed;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_of(pid).unwrap_or(0);
    println!();
    println!(
        "api-load: RSS idle {:.1} MB, after all runs {:.1} MB ({:+.1} MB); {failed} failed request(s)",
        mb(idle),
        mb(after),
        mb(after) - mb(idle)
    );
    drop(daemon);
    if failed > 0 {
        bail!("{failed} request(s) failed or were answered with the wrong status");
    }
    Ok(())
}
