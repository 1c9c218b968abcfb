//! `cargo xtask dev <plugin>`: the plugin author's loop. Rebuilds and
//! reinstalls the plugin whenever its sources change, so a host watching the
//! plugin directory (`isp-daemon --watch`) swaps it in; prints the build time
//! and, from the host's live event log, the host's swap time.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};

use crate::artifacts::PluginCrate;
use crate::install::{self, Options};

/// The file a watching host appends its live events to (see `LiveOptions::event_log`).
pub(crate) const EVENT_LOG: &str = ".plugkit-live.jsonl";

/// How long to wait for a host to report the swap.
const SWAP_WAIT: Duration = Duration::from_secs(15);

pub(crate) fn run(name: &str, plugin_dir: PathBuf, release: bool, once: bool) -> Result<()> {
    let krate = install::resolve(name)?;
    let options = Options {
        release,
        plugin_dir: plugin_dir.clone(),
        allow_downgrade: true,
        dry_run: false,
        rebuild: true,
    };
    let id = plugin_package::manifest::Manifest::load(&krate.plugin_toml())
        .map(|m| m.id)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let log = plugin_dir.join(EVENT_LOG);
    cycle(&krate, &id, &options, &log)?;
    if once {
        return Ok(());
    }

    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(event.paths);
            }
        }
    })?;
    for path in [
        krate.dir.join("src"),
        krate.cargo_toml(),
        krate.plugin_toml(),
    ] {
        if path.exists() {
            watcher
                .watch(&path, RecursiveMode::Recursive)
                .with_context(|| format!("watching {}", path.display()))?;
        }
    }
    eprintln!(
        "xtask: watching {} — save a file to rebuild; a host watching {} swaps it in (Ctrl-C stops)",
        krate.dir.display(),
        plugin_dir.display()
    );
    loop {
        let Ok(first) = rx.recv() else {
            return Ok(());
        };
        let mut changed = first;
        // Editors write in bursts: wait for 100 ms of quiet.
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(more) => changed.extend(more),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        if let Some(path) = changed.first() {
            eprintln!("xtask: {} changed", path.display());
        }
        if let Err(e) = cycle(&krate, &id, &options, &log) {
            eprintln!("xtask: error: {e:#} (fix it and save again)");
        }
    }
}

/// One rebuild: build + install, then wait for the host's swap.
fn cycle(krate: &PluginCrate, id: &str, options: &Options, log: &Path) -> Result<()> {
    let seen = std::fs::read_to_string(log).map(|s| s.len()).unwrap_or(0);
    let started = Instant::now();
    install::install_crates(std::slice::from_ref(krate), options)?;
    let installed = started.elapsed();
    eprintln!(
        "xtask: [{id}] build + package + install: {} ms",
        installed.as_millis()
    );
    match wait_for_swap(log, seen, id) {
        Some(event) => report(id, &event, installed, started.elapsed()),
        None => eprintln!(
            "xtask: [{id}] no host reported loading it within {SWAP_WAIT:?}; is a daemon running with --watch \
             on {}?",
            options.plugin_dir.display()
        ),
    }
    Ok(())
}

fn wait_for_swap(log: &Path, offset: usize, id: &str) -> Option<serde_json::Value> {
    let deadline = Instant::now() + SWAP_WAIT;
    let (_never, wait) = mpsc::channel::<()>();
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(log) {
            let fresh = text.get(offset..).unwrap_or_default();
            for line in fresh.lines() {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                // A first install starts the plugin; later ones reload it.
                let ours = event["plugin"] == id
                    || event["folder"]
                        .as_str()
                        .is_some_and(|f| Path::new(f).file_name() == Some(id.as_ref()));
                let kind = event["event"].as_str().unwrap_or_default();
                if ours && matches!(kind, "reloaded" | "started" | "start_failed" | "problem") {
                    return Some(event);
                }
            }
        }
        // Polled often: the wait is part of the edit → live time reported.
        let _ = wait.recv_timeout(Duration::from_millis(5));
    }
    None
}

fn millis(value: &serde_json::Value) -> f64 {
    let secs = value["secs"].as_f64().unwrap_or(0.0);
    let nanos = value["nanos"].as_f64().unwrap_or(0.0);
    secs * 1e3 + nanos / 1e6
}

/// `observed`: from the start of the rebuild until this process saw the
/// host's event, so it includes the host watcher's settle time, which the
/// host's own `total` (from the settled change to serving) does not.
fn report(id: &str, event: &serde_json::Value, installed: Duration, observed: Duration) {
    match event["event"].as_str() {
        Some("started") => {
            return eprintln!(
                "xtask: [{id}] live: started {}; edit to live {:.0} ms (install {:.0} ms)",
                event["version"].as_str().unwrap_or("?"),
                observed.as_secs_f64() * 1e3,
                installed.as_secs_f64() * 1e3,
            )
        }
        Some("start_failed") => {
            return eprintln!(
                "xtask: [{id}] the host could not START it: {}",
                event["error"].as_str().unwrap_or("?")
            )
        }
        Some("problem") => {
            return eprintln!(
                "xtask: [{id}] the host did not act on the change: {}",
                event["message"].as_str().unwrap_or("?")
            )
        }
        _ => {}
    }
    match event["outcome"].as_str() {
        Some("swapped") => eprintln!(
            "xtask: [{id}] live: {} -> {}; host reload {:.1} ms (callers waited {:.3} ms); \
             edit to live {:.0} ms (install {:.0} ms, then the host's watcher and reload {:.0} ms)",
            event["from_version"].as_str().unwrap_or("?"),
            event["to_version"].as_str().unwrap_or("?"),
            millis(&event["total"]),
            millis(&event["swap"]),
            observed.as_secs_f64() * 1e3,
            installed.as_secs_f64() * 1e3,
            (observed - installed).as_secs_f64() * 1e3,
        ),
        Some("rolled_back") => eprintln!(
            "xtask: [{id}] the host ROLLED BACK at step {}: {} — the old version keeps serving",
            event["step"].as_str().unwrap_or("?"),
            event["error"].as_str().unwrap_or("?"),
        ),
        other => eprintln!("xtask: [{id}] host reports {other:?}"),
    }
}
