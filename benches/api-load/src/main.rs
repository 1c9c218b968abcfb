//! `api-load`: starts an isp-daemon on 127.0.0.1 with the reference
//! plugins, creates API keys with different scopes through the API, and
//! sends a bounded number of GETs to each read endpoint, then to all of
//! them at once, from many keep-alive connections, cycling through the
//! keys (and the admin token, which reads nothing) so that some requests
//! must be refused with 403. Meanwhile it deactivates and activates a
//! plugin for a tenant a few times a second, and a local receiver checks
//! the signed webhook deliveries those changes cause. It prints per-route
//! throughput, p50/p99 latency, refused, failed and mis-authorised
//! requests, the daemon's resident memory (VmRSS) idle, during and after
//! each run, and the deliveries; `cargo xtask bench api-load` builds what
//! it needs and runs it. It exits non-zero when a request failed or was
//! mis-authorised, a delivery did not verify, or an event was not
//! delivered.

#![deny(unsafe_code)]

mod load;
mod report;
mod webhooks;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hyper::Method;
use serde_json::{json, Value};

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

/// The keys the load presents, by name and scopes, in the order requests
/// cycle through them (the admin token, which has no scope, comes last).
const KEYS: [(&str, &[&str]); 7] = [
    (
        "reader",
        &["plugins:read", "tenants:read", "audit:read", "metrics:read"],
    ),
    ("plugins-only", &["plugins:read"]),
    (
        "reader",
        &["plugins:read", "tenants:read", "audit:read", "metrics:read"],
    ),
    ("tenants-only", &["tenants:read"]),
    ("auditor", &["audit:read", "tenants:read"]),
    ("scraper", &["metrics:read"]),
    (
        "reader",
        &["plugins:read", "tenants:read", "audit:read", "metrics:read"],
    ),
];

#[derive(Parser)]
#[command(
    name = "api-load",
    about = "Load test of the isp-daemon's read endpoints with a mix of API keys, while webhooks are delivered"
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
    /// Requests of the mixed run (every endpoint at once).
    #[arg(long, default_value_t = 40_000)]
    mixed_requests: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Paths to measure (repeatable) [default: every read endpoint].
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// Plugin deactivations and activations per second during the runs,
    /// each one a signed webhook delivery (0: none).
    #[arg(long, default_value_t = 10.0)]
    events_per_second: f64,
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

/// Limits far above what the load sends: the run measures the read paths,
/// not the per-key token buckets (`cargo xtask bench keys` times those).
const RATE_LIMITS: &str = "
[rate_limits]
default = { per_second = 1000000.0, burst = 1000000 }
";

/// The daemon's embedded configuration with [`RATE_LIMITS`], in `dir`.
fn write_config(cli: &Cli, dir: &std::path::Path) -> Result<PathBuf> {
    let printed = Command::new(&cli.daemon)
        .arg("--print-config")
        .output()
        .with_context(|| format!("running {} --print-config", cli.daemon.display()))?;
    if !printed.status.success() {
        bail!("{} --print-config failed", cli.daemon.display());
    }
    let mut text = String::from_utf8(printed.stdout).context("the printed configuration")?;
    if text.contains("[rate_limits]") {
        bail!("the embedded configuration has [rate_limits] now; set them in this bench instead");
    }
    text.push_str(RATE_LIMITS);
    let path = dir.join("isp-daemon.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Starts the daemon and waits for the line naming its address.
fn start_daemon(cli: &Cli, token: &str) -> Result<(Daemon, SocketAddr)> {
    let state = tempdir::Dir::new().context("creating a state directory")?;
    let config = write_config(cli, state.path())?;
    let mut command = Command::new(&cli.daemon);
    command
        .arg("--config")
        .arg(&config)
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

/// `method path` with `token` and a JSON body; the JSON answer when it is `expected`.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    expected: u16,
) -> Result<Value> {
    let (status, bytes) = load::request(addr, method.clone(), path, token, body).await?;
    if status.as_u16() != expected {
        bail!(
            "{method} {path} answered {status}, expected {expected}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{method} {path}: not JSON"))
}

/// Creates an API key through the API with the admin token.
async fn create_key(
    addr: SocketAddr,
    admin: &str,
    name: &str,
    scopes: &[&str],
) -> Result<Credential> {
    let made = call(
        addr,
        Method::POST,
        "/api/keys",
        admin,
        Some(&json!({ "name": format!("api-load {name}"), "scopes": scopes })),
        201,
    )
    .await?;
    let token = made["secret"]
        .as_str()
        .context("POST /api/keys answered without the secret")?
        .to_owned();
    Ok(Credential {
        name: name.to_owned(),
        token,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// The tenant a read endpoint names, and a (tenant, plugin) to switch off
/// and on for events: a plugin active in process, twilio if it can.
fn pick(tenants: &Value) -> Result<(String, Option<(String, String)>)> {
    let list = tenants["tenants"]
        .as_array()
        .context("/api/tenants has no tenants array")?;
    let first = list
        .first()
        .and_then(|t| t["tenant"].as_str())
        .context("the daemon has no tenant to read")?
        .to_owned();
    let mut switchable: Vec<(String, String)> = list
        .iter()
        .flat_map(|t| {
            let tenant = t["tenant"].as_str().unwrap_or_default().to_owned();
            t["plugins"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["active"] == true)
                .filter_map(move |p| Some((tenant.clone(), p["plugin"].as_str()?.to_owned())))
        })
        .filter(|(_, plugin)| plugin != "network-automation")
        .collect();
    switchable.sort_by_key(|(_, plugin)| plugin != "twilio");
    Ok((first, switchable.into_iter().next()))
}

/// Runs `paths` with RSS sampling; prints nothing.
async fn measured(
    addr: SocketAddr,
    pid: u32,
    paths: &[String],
    requests: usize,
    connections: usize,
    credentials: &[Credential],
) -> Result<report::Run> {
    let stop = Arc::new(AtomicBool::new(false));
    let max = Arc::new(AtomicU64::new(0));
    let sampler = sample_rss(pid, Arc::clone(&stop), Arc::clone(&max));
    let outcome = load::run(addr, paths, requests, connections, credentials).await;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(report::Run {
        outcome: outcome?,
        rss_max: max.load(Ordering::Relaxed),
        rss_after: rss_of(pid).unwrap_or(0),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let admin = format!("api-load-admin-{}", std::process::id());
    let (daemon, addr) = start_daemon(&cli, &admin)?;
    let pid = daemon.child.id();

    // Ready when the key list answers to the admin token.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match load::get(addr, "/api/keys", &admin).await {
            Ok((status, _)) if status.is_success() => break,
            _ if Instant::now() > deadline => bail!("the daemon did not answer GET /api/keys"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    // The keys, made through the API as an operator would.
    let mut credentials: Vec<Credential> = Vec::new();
    for (name, scopes) in KEYS {
        let made = credentials.iter().find(|c| c.name == name).cloned();
        match made {
            Some(made) => credentials.push(made),
            None => credentials.push(create_key(addr, &admin, name, scopes).await?),
        }
    }
    credentials.push(Credential {
        name: "admin token".to_owned(),
        token: admin.clone(),
        scopes: Vec::new(),
    });
    let operator = create_key(addr, &admin, "operator", &["tenants:write"]).await?;
    let hooks_admin = create_key(addr, &admin, "webhooks", &["webhooks:manage"]).await?;

    let tenants = call(
        addr,
        Method::GET,
        "/api/tenants",
        &credentials[0].token,
        None,
        200,
    )
    .await?;
    let (tenant, switch) = pick(&tenants)?;
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

    // The receiver and its endpoint, with a secret chosen here.
    let secret = webhooks::new_secret()?;
    let receiver = webhooks::Receiver::start(&secret).await?;
    call(
        addr,
        Method::POST,
        "/api/webhooks/endpoints",
        &hooks_admin.token,
        Some(&json!({
            "id": "api-load",
            "url": format!("http://{}/hooks", receiver.addr),
            "events": ["plugin.activated", "plugin.deactivated"],
            "secret": secret,
        })),
        201,
    )
    .await?;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_of(pid).context("reading the daemon's VmRSS")?;
    let mix: Vec<&str> = credentials.iter().map(|c| c.name.as_str()).collect();
    println!(
        "api-load: daemon pid {pid} on {addr} (log level {}), {} requests per endpoint and {} \
         mixed, from {} connections; requests cycle through {}; idle RSS {:.1} MB",
        cli.daemon_log,
        cli.requests,
        cli.mixed_requests,
        cli.connections,
        mix.join(", "),
        mb(idle)
    );

    // Events while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let driven = Arc::new(webhooks::Driven::default());
    let driver = match (&switch, cli.events_per_second > 0.0) {
        (Some((t, p)), true) => {
            println!(
                "api-load: {:.0} events/s: {p} deactivated and activated for {t} through the API, \
                 delivered to a receiver on {} that checks each signature",
                cli.events_per_second, receiver.addr
            );
            Some(webhooks::drive(
                addr,
                operator.token.clone(),
                t.clone(),
                p.clone(),
                Duration::from_secs_f64(1.0 / cli.events_per_second),
                Arc::clone(&stop),
                Arc::clone(&driven),
            ))
        }
        _ => {
            println!("api-load: no webhook events (none asked for, or no plugin to switch)");
            None
        }
    };

    let mut runs = Vec::new();
    for path in &endpoints {
        let run = measured(
            addr,
            pid,
            std::slice::from_ref(path),
            cli.requests,
            cli.connections,
            &credentials,
        )
        .await?;
        runs.push(run);
    }
    let mixed = measured(
        addr,
        pid,
        &endpoints,
        cli.mixed_requests,
        cli.connections,
        &credentials,
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    if let Some(driver) = driver {
        driver.await?;
    }

    // Every event delivered: the outbox empty and each event's id seen.
    let events = driven.events.load(Ordering::Relaxed);
    let drained_by = Instant::now() + Duration::from_secs(60);
    let (pending, dead) = loop {
        let pending = call(
            addr,
            Method::GET,
            "/api/webhooks/outbox",
            &hooks_admin.token,
            None,
            200,
        )
        .await?;
        let dead = call(
            addr,
            Method::GET,
            "/api/webhooks/dead-letters",
            &hooks_admin.token,
            None,
            200,
        )
        .await?;
        let pending = pending.as_array().map_or(0, Vec::len);
        let dead = dead.as_array().map_or(0, Vec::len);
        let (_, _, _, distinct, _) = receiver.counts();
        if (pending == 0 && distinct >= events) || Instant::now() > drained_by {
            break (pending, dead);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_of(pid).unwrap_or(0);
    drop(daemon);

    let problems = report::print(&report::Report {
        runs: &runs,
        mixed: &mixed,
        credentials: &credentials,
        idle,
        after,
        events,
        driven: &driven,
        receiver: &receiver,
        pending,
        dead,
    });
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}
