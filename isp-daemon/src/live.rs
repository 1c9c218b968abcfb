//! `--watch`: hot reload of the plugin directories through [`Host::watch`],
//! each [`LiveEvent`] printed, recorded in the audit log, and a newly
//! started plugin registered and activated for the tenants waiting for it.
//!
//! [`Host::watch`]: plugin_host::Host::watch

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use plugin_host::hot_reload::{LiveEvent, LiveOptions, LiveReload, ReloadOutcome};

use crate::daemon::Daemon;

/// Where the daemon's lines go.
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// One line for a live event.
pub fn describe(event: &LiveEvent) -> String {
    match event {
        LiveEvent::Reloaded(report) => match &report.outcome {
            ReloadOutcome::Swapped if !report.library_changed => format!(
                "[reload] {}: plugin.toml changed and was applied to {} (callers waited {:?} at \
                 most): {}",
                report.plugin,
                report.from_version,
                report.swap,
                report.manifest_changes.join("; ")
            ),
            ReloadOutcome::Swapped => format!(
                "[reload] {}: {} → {} swapped in (callers waited {:?} at most{})",
                report.plugin,
                report.from_version,
                report.to_version.as_deref().unwrap_or("?"),
                report.swap,
                if report.dependents_cycled.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; dependents cycled: {}",
                        report.dependents_cycled.join(", ")
                    )
                }
            ),
            ReloadOutcome::Unchanged => format!(
                "[reload] {}: neither the library nor its manifest changed; nothing to do",
                report.plugin
            ),
            ReloadOutcome::RolledBack { step, error } if !report.library_changed => format!(
                "[reload] {}: the change was refused at the {step}; {} keeps serving as it \
                 was: {error}",
                report.plugin, report.from_version
            ),
            ReloadOutcome::RolledBack { step, error } => format!(
                "[reload] {}: the new version failed at the {step} and was rolled back; {} \
                 keeps serving: {error}",
                report.plugin, report.from_version
            ),
        },
        LiveEvent::Started { plugin, version } => format!("[reload] {plugin} {version} started"),
        LiveEvent::StartFailed { plugin, error } => {
            format!("[reload] {plugin} could not start: {error}")
        }
        LiveEvent::Stopped { plugin, dependents } => format!(
            "[reload] {plugin} stopped: its folder was removed{}",
            if dependents.is_empty() {
                String::new()
            } else {
                format!(" (and its dependents {})", dependents.join(", "))
            }
        ),
        LiveEvent::DirectoryGone { dir } => format!(
            "[reload] {} is gone: its plugins stop, and live reload is degraded until it is \
             created again",
            dir.display()
        ),
        LiveEvent::DirectoryBack { dir } => format!(
            "[reload] {} is back: watching it again and starting what is installed in it",
            dir.display()
        ),
        LiveEvent::Problem { folder, message } => {
            format!("[reload] {}: {message}", folder.display())
        }
    }
}

/// Starts watching the daemon's plugin directories; events are handled on
/// a thread of their own until the daemon shuts down.
///
/// A plugin directory that does not exist yet is not an error: it is named
/// in a warning, looked for every 250 ms, and once it exists the watch is
/// re-armed on it and what is installed in it starts (in dependency order,
/// as at start-up).
///
/// # Errors
/// The OS watch cannot be set up on a directory that exists, or the
/// thread cannot start.
pub fn watch(daemon: &Arc<Daemon>, say: Say) -> Result<()> {
    let (present, missing) = split_missing(daemon.plugin_dirs());
    for dir in &missing {
        say(&missing_warning(dir));
    }
    let live = start_watch(daemon, &present)?;
    daemon.watching.store(true, Ordering::SeqCst);
    say(&if present.is_empty() {
        "[reload] no plugin directory exists yet: live reload starts when one is created".to_owned()
    } else {
        format!(
            "[reload] watching {} for changes (hot reload)",
            join_dirs(&present)
        )
    });
    let daemon = Arc::clone(daemon);
    std::thread::Builder::new()
        .name("isp-daemon-live".to_owned())
        .spawn(move || {
            let mut live = live;
            let mut missing = missing;
            while daemon.watching.load(Ordering::SeqCst) {
                if !missing.is_empty() {
                    if let Some(rearmed) = rearm_if_created(&daemon, &mut missing, &say) {
                        live = rearmed;
                    }
                }
                let Some(event) = live.next_event(Duration::from_millis(250)) else {
                    continue;
                };
                if let LiveEvent::Reloaded(report) = &event {
                    daemon.record_live_reload(report);
                }
                say(&describe(&event));
            }
        })
        .context("starting the live reload thread")?;
    Ok(())
}

/// The directories that exist and those that do not (yet).
fn split_missing(dirs: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    dirs.iter().cloned().partition(|d| d.is_dir())
}

/// The warning for a plugin directory that does not exist when the watch starts.
pub fn missing_warning(dir: &Path) -> String {
    format!(
        "[reload] warning: plugin directory {} does not exist (yet): nothing in it loads until          it is created; watching for it to appear (create it, or fix [plugins] dirs or          --plugin-dir if the path is wrong)",
        dir.display()
    )
}

/// The host's watch on `dirs` (all existing), its events logged in the
/// first plugin directory.
fn start_watch(daemon: &Arc<Daemon>, dirs: &[PathBuf]) -> Result<LiveReload> {
    let mut options = LiveOptions::new(dirs.to_vec());
    // `cargo xtask dev` reads the swap time from here.
    options.event_log = daemon
        .plugin_dirs()
        .first()
        .filter(|first| dirs.contains(first))
        .map(|dir| dir.join(".plugkit-live.jsonl"));
    let weak = Arc::downgrade(daemon);
    options.on_started = Some(Arc::new(move |_host, plugin| {
        if let Some(daemon) = weak.upgrade() {
            daemon.adopt_new_plugin("isp-daemon", plugin);
        }
    }));
    daemon.host().watch(options).with_context(|| {
        format!(
            "watching the plugin directories {}; check that they are readable folders",
            join_dirs(dirs)
        )
    })
}

/// When a missing directory exists now: a new watch on every directory
/// that exists, and what is installed in the new ones started. `None`
/// while nothing changed (or the new watch failed; tried again next tick).
fn rearm_if_created(
    daemon: &Arc<Daemon>,
    missing: &mut Vec<PathBuf>,
    say: &Say,
) -> Option<LiveReload> {
    let (created, still_missing) = split_missing(missing);
    if created.is_empty() {
        return None;
    }
    let (present, _) = split_missing(daemon.plugin_dirs());
    let live = match start_watch(daemon, &present) {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!("{e:#}; trying again");
            return None;
        }
    };
    *missing = still_missing;
    say(&format!(
        "[reload] {} exists now: watching it and starting what is installed in it",
        join_dirs(&created)
    ));
    for line in daemon.start_installed_now("isp-daemon") {
        say(&line);
    }
    Some(live)
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use plugin_host::hot_reload::{ReloadReport, ReloadStep};

    use super::*;

    fn report(outcome: ReloadOutcome, library_changed: bool, changes: &[&str]) -> LiveEvent {
        LiveEvent::Reloaded(ReloadReport {
            plugin: "stripe".to_owned(),
            from_version: "0.1.0".to_owned(),
            to_version: Some("0.1.0".to_owned()),
            outcome,
            total: Duration::from_millis(3),
            swap: Duration::from_micros(5),
            dependents_cycled: Vec::new(),
            library_changed,
            manifest_changes: changes.iter().map(|c| (*c).to_owned()).collect(),
        })
    }

    fn check(event: LiveEvent, expected: &str) {
        assert_eq!(describe(&event), expected);
    }

    #[test]
    fn manifest_changes_and_directory_changes_are_said_in_one_line_each() {
        check(
            report(
                ReloadOutcome::Swapped,
                false,
                &["permissions: none → metrics:write"],
            ),
            "[reload] stripe: plugin.toml changed and was applied to 0.1.0 (callers waited 5µs \
             at most): permissions: none → metrics:write",
        );
        check(
            report(
                ReloadOutcome::RolledBack {
                    step: ReloadStep::Validate,
                    error: "library x was built as `stripe` 0.2.0".to_owned(),
                },
                false,
                &[],
            ),
            "[reload] stripe: the change was refused at the folder check; 0.1.0 keeps serving \
             as it was: library x was built as `stripe` 0.2.0",
        );
        check(
            report(ReloadOutcome::Unchanged, false, &[]),
            "[reload] stripe: neither the library nor its manifest changed; nothing to do",
        );
        check(
            LiveEvent::DirectoryGone {
                dir: PathBuf::from("/srv/plugins"),
            },
            "[reload] /srv/plugins is gone: its plugins stop, and live reload is degraded until \
             it is created again",
        );
        check(
            LiveEvent::DirectoryBack {
                dir: PathBuf::from("/srv/plugins"),
            },
            "[reload] /srv/plugins is back: watching it again and starting what is installed in it",
        );
    }
}
