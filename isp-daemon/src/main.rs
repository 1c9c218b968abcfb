//! The isp-daemon binary: parses the command line, starts the daemon and
//! its admin API, runs the demo, and stops gracefully on SIGINT/SIGTERM
//! (plugins in reverse dependency order, audit log synced, exit 0); a second
//! signal forces the exit.

#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use isp_daemon::api::{self, AdminToken};
use isp_daemon::config::{TrustMode, EMBEDDED};
use isp_daemon::live::{self, Say};
use isp_daemon::peers::{Devices, Peers};
use isp_daemon::{demo, Config, Daemon, StartOptions};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing_subscriber::filter::LevelFilter;

/// Test hook: with this variable set, the shutdown stalls after the first
/// signal, so a test can check that a second signal forces the exit.
const STALL_SHUTDOWN: &str = "ISP_DAEMON_TEST_STALL_SHUTDOWN";

#[derive(Parser)]
#[command(
    name = "isp-daemon",
    version,
    about = "plugkit's ISP daemon: plugins per tenant, ISP flows, an admin API and page",
    after_help = "Without --config the embedded demo configuration is used (see --print-config).\n\
                  The main job: isp-daemon --demo --plugin-dir var/plugins --trusted-key config/trusted-keys\n\
                  (after `cargo xtask install-common-plugins`), or, unsigned, from a build:\n\
                  isp-daemon --demo --allow-unsigned --plugins-from-build <target dir>/plugkit-artifacts.json\n\
                  (`cargo xtask locations` prints the path)"
)]
struct Cli {
    /// The configuration file [default: the embedded demo configuration].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run the demo script, print what each plugin did, then stop (unless --serve).
    #[arg(long)]
    demo: bool,
    /// Keep serving the admin API (the default without --demo).
    #[arg(long)]
    serve: bool,
    /// Hot-reload plugins when their folders in the plugin directories change.
    #[arg(long)]
    watch: bool,
    /// A plugin directory (repeatable); replaces [plugins] dirs.
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Lay out the reference plugins from a build's artifact map (JSON of
    /// package → library, as `cargo xtask test` writes), unsigned.
    #[arg(long, value_name = "FILE")]
    plugins_from_build: Option<PathBuf>,
    /// Let unsigned plugins load (development only).
    #[arg(long)]
    allow_unsigned: bool,
    /// A trusted public key: its base64 line, a .pub file, or a folder of them (repeatable).
    #[arg(long = "trusted-key", value_name = "KEY")]
    trusted_keys: Vec<String>,
    /// The state directory (tenants, requests, audit log); replaces [state] dir.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The admin API's address; replaces [admin] listen (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Do not start the demo's snmpd and sshd devices.
    #[arg(long)]
    no_devices: bool,
    /// Refresh from the OCI registry once at start ([provisioning], or
    /// --registry and --tier) and exit 1 naming what failed unless the whole
    /// tier installed; without --serve or --demo, stop after it.
    #[arg(long)]
    provision: bool,
    /// The OCI registry to provision from; replaces [provisioning] registry.
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// The subscription tier to provision; replaces [provisioning] tier.
    #[arg(long, value_name = "TIER")]
    tier: Option<String>,
    /// With --provision: print the refresh's answer as one JSON line on
    /// stdout (every other line goes to stderr).
    #[arg(long, requires = "provision")]
    json: bool,
    /// Print the embedded configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// error, warn, info, debug or trace [default: warn with --demo, else info; RUST_LOG wins].
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// text or json (one JSON object per line, with the plugin and tenant of each line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: isp_daemon::telemetry::LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_config {
        print!("{EMBEDDED}");
        return ExitCode::SUCCESS;
    }
    init_tracing(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("isp-daemon: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(cli: &Cli) {
    let default = if cli.demo { "warn" } else { "info" };
    let level = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| cli.log_level.clone())
        .unwrap_or_else(|| default.to_owned());
    let filter = level.parse::<LevelFilter>().unwrap_or(LevelFilter::INFO);
    isp_daemon::telemetry::init(filter, cli.log_format, std::io::stderr().is_terminal());
}

/// `path` made absolute against the current directory.
fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .context("reading the current directory")?
            .join(path)
    })
}

/// The configuration file as the user named it, for error messages.
fn config_name(cli: &Cli) -> String {
    match &cli.config {
        Some(path) => path.display().to_string(),
        None => "the embedded configuration (see --print-config; pass --config FILE)".to_owned(),
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded()?,
    };
    if !cli.plugin_dirs.is_empty() {
        config.plugins.dirs = cli
            .plugin_dirs
            .iter()
            .map(|d| absolute(d))
            .collect::<Result<_>>()?;
    }
    if cli.allow_unsigned {
        config.trust.policy = TrustMode::AllowUnsigned;
    }
    for key in &cli.trusted_keys {
        let path = Path::new(key);
        if path.is_dir() {
            config.trust.key_dirs.push(absolute(path)?);
        } else if path.is_file() {
            config.trust.keys.push(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading trusted key {}", path.display()))?,
            );
        } else if key.starts_with('/') || key.starts_with('.') || key.ends_with(".pub") {
            // A base64 key never starts with `/` or `.`: this was meant as a path.
            anyhow::bail!(
                "--trusted-key {key}: no such file or directory; pass a public key, a `.pub` \
                 file or a folder of them (`cargo xtask install-plugin` writes \
                 config/trusted-keys/<KEY ID>.pub)"
            );
        } else {
            config.trust.keys.push(key.clone());
        }
    }
    if let Some(dir) = &cli.state_dir {
        config.state.dir = Some(absolute(dir)?);
    }
    if let Some(listen) = &cli.listen {
        config.admin.listen = listen.clone();
        config.listen_addr()?;
    }
    isp_daemon::provision_flag::apply_overrides(
        &mut config,
        cli.registry.as_deref(),
        cli.tier.as_deref(),
    )?;
    Ok(config)
}

fn run(cli: Cli) -> Result<ExitCode> {
    let config = load_config(&cli)?;
    // Refuse a policy that cannot work before starting anything.
    if cli.plugins_from_build.is_none() {
        config.trust.policy(&config)?;
    }
    // A closed stdout (`| head`) must not stop the daemon: lines are best effort.
    // With --json, stdout carries only the JSON answer.
    let say: Say = if cli.json {
        Arc::new(|line: &str| {
            let _ = writeln!(std::io::stderr(), "{line}");
        })
    } else {
        Arc::new(|line: &str| {
            let _ = writeln!(std::io::stdout(), "{line}");
        })
    };
    // Peers die with the thread that spawned them: start them on this one,
    // which lives until the end.
    let peers = if cli.demo && !cli.no_devices {
        Peers::start()
    } else {
        Peers::none("the demo devices were not started (they start with --demo)")
    };
    for note in &peers.notes {
        say(note);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve_and_run(cli, config, peers.devices(), say));
    // A demo step still blocked in a plugin call must not hold the exit.
    runtime.shutdown_background();
    peers.stop();
    result
}

/// Runs `work` on a thread of its own that ends when the work does.
///
/// Plugin calls may leave thread-local destructors of plugin code on the
/// calling thread; a library unloads only once they ran. A pooled blocking
/// thread outlives the work, so the demo's and the start's plugin calls run
/// on threads that end before the plugins are stopped.
async fn on_own_thread<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = done.send(work());
        })
        .with_context(|| format!("starting the {name} thread"))?;
    let value = result
        .await
        .with_context(|| format!("the {name} thread ended without a result"))?;
    // The value is sent just before the thread ends; wait for its end.
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .ok()
        .and_then(Result::ok)
        .with_context(|| format!("joining the {name} thread"))?;
    Ok(value)
}

/// Installs the SIGINT/SIGTERM handlers: the first signal asks for a
/// graceful stop, the second exits at once.
fn handle_signals(stop: watch::Sender<bool>, say: Say) -> Result<()> {
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        say(&format!(
            "[isp-daemon] {first}: stopping gracefully (send it again to force the exit)"
        ));
        let _ = stop.send(true);
        let (second, code) = tokio::select! {
            _ = terminate.recv() => ("SIGTERM", 143),
            _ = interrupt.recv() => ("SIGINT", 130),
        };
        say(&format!("[isp-daemon] {second} again: forcing the exit"));
        std::process::exit(code);
    });
    Ok(())
}

/// Stops the plugins and says what the shutdown did (before the API serves).
async fn stop_daemon(daemon: &Arc<Daemon>, say: &Say) {
    let stopping = Arc::clone(daemon);
    if let Ok(lines) = tokio::task::spawn_blocking(move || stopping.shutdown()).await {
        for line in lines {
            say(&line);
        }
    }
}

async fn serve_and_run(cli: Cli, config: Config, devices: Devices, say: Say) -> Result<ExitCode> {
    let (stop_tx, stop_rx) = watch::channel(false);
    handle_signals(stop_tx.clone(), say.clone())?;
    let listen = config.listen_addr()?;
    let options = StartOptions {
        env: BTreeMap::new(),
        plugins_from_build: match &cli.plugins_from_build {
            Some(map) => Some(absolute(map)?),
            None => None,
        },
        devices: Some(devices),
    };
    let daemon = Arc::new(
        on_own_thread("isp-daemon-start", move || Daemon::start(config, options))
            .await
            .context("the start-up thread failed")?
            .with_context(|| format!("starting with {}", config_name(&cli)))?,
    );
    for line in daemon.startup_lines() {
        say(line);
    }
    let _delivery = isp_daemon::webhooks::start_delivery(&daemon)
        .context("starting the webhook delivery thread")?;
    if cli.provision {
        let (for_refresh, json, refresh_say) = (Arc::clone(&daemon), cli.json, say.clone());
        let refreshed = on_own_thread("isp-daemon-provision", move || {
            isp_daemon::provision_flag::refresh_at_start(&for_refresh, json, &*refresh_say)
        })
        .await?;
        if let Err(e) = refreshed {
            stop_daemon(&daemon, &say).await;
            return Err(e);
        }
        if !cli.serve && !cli.demo {
            stop_daemon(&daemon, &say).await;
            return Ok(ExitCode::SUCCESS);
        }
    }
    // [provisioning]: refresh from the registry now (unless --provision just
    // did) and every refresh_interval.
    isp_daemon::provisioning::spawn_periodic_after(Arc::clone(&daemon), cli.provision);

    let server = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            let addr = listener.local_addr().context("reading the API's address")?;
            let secret = daemon.admin_secret();
            say(&format!("[admin] API listening on http://{addr}/api"));
            if secret.generated() {
                say(&format!(
                    "[admin] admin page: http://{addr}/?token={} (token made up for this run; \
                     set ISP_DAEMON_ADMIN_TOKEN to choose it)",
                    secret.token()
                ));
            } else {
                say(&format!(
                    "[admin] admin page: http://{addr}/ (log in with the configured admin token)"
                ));
            }
            say("[admin] the admin token manages API keys (POST /api/keys); every other route takes a key with its scope");
            let router = api::router(Arc::clone(&daemon), AdminToken::new(secret.token()));
            let mut stopped = stop_rx.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            Some(tokio::spawn(api::serve(listener, router, shutdown)))
        }
        Err(e) if cli.demo && !cli.serve => {
            say(&format!(
                "[admin] API not started: cannot listen on {listen}: {e}; the demo runs without it \
                 (choose another address with --listen)"
            ));
            None
        }
        Err(e) => {
            let lines = daemon.shutdown();
            for line in lines {
                say(&line);
            }
            let setting = if cli.listen.is_some() {
                "pass another --listen".to_owned()
            } else {
                format!(
                    "change [admin] listen in {} or pass --listen",
                    config_name(&cli)
                )
            };
            return Err(e).with_context(|| {
                format!(
                    "the admin API cannot listen on {listen} (another daemon may use it); \
                     {setting} (127.0.0.1:0 takes any free port)"
                )
            });
        }
    };

    if cli.watch {
        live::watch(&daemon, say.clone())?;
    }

    let mut demo_failed = false;
    if cli.demo {
        let for_demo = Arc::clone(&daemon);
        let demo_say = say.clone();
        let demo = on_own_thread("isp-daemon-demo", move || demo::run(&for_demo, &*demo_say));
        let mut stopped = stop_rx.clone();
        tokio::select! {
            finished = demo => match finished {
                Ok(reports) => {
                    let reached = reports.iter().filter(|r| r.ok).count();
                    say("");
                    say(&format!(
                        "── demo done: {} flows ran, {reached} reached their goal (the veto is part of the demo)",
                        reports.len()
                    ));
                    let problems = daemon.startup_problems();
                    if problems > 0 {
                        demo_failed = true;
                        say(&format!(
                            "[demo] FAILED: {} did not start (see `[host] problem:` above), \
                             so the flows ran without them",
                            isp_daemon::wording::counted(
                                problems,
                                "installed plugin",
                                "installed plugins"
                            )
                        ));
                    }
                }
                Err(e) => {
                    demo_failed = true;
                    say(&format!("[demo] FAILED: {e}"));
                }
            },
            _ = stopped.wait_for(|stop| *stop) => say("[demo] interrupted"),
        }
    }
    if cli.serve || !cli.demo {
        let mut stopped = stop_rx.clone();
        if !*stopped.borrow() {
            say("[isp-daemon] serving; stop with Ctrl-C or SIGTERM");
        }
        let _ = stopped.wait_for(|stop| *stop).await;
    }

    let _ = stop_tx.send(true);
    if std::env::var_os(STALL_SHUTDOWN).is_some() {
        say("[isp-daemon] test hook: the shutdown is stalled; a second signal forces the exit");
        std::future::pending::<()>().await;
    }
    let stopping = Arc::clone(&daemon);
    let lines = tokio::task::spawn_blocking(move || stopping.shutdown())
        .await
        .context("the shutdown thread failed")?;
    say("");
    for line in lines {
        say(&line);
    }
    if let Some(server) = server {
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => say(&format!("[admin] the API server ended with an error: {e}")),
            Ok(Err(e)) => say(&format!("[admin] the API server task failed: {e}")),
            Err(_) => say("[admin] requests still running after 5 s were cut off"),
        }
    }
    say("[isp-daemon] stopped");
    Ok(if demo_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
