//! The lifecycle loop behind hot reload: turns settled folder events from
//! [`crate::watch`] into reloads, starts and stops, and reports each as a
//! [`LiveEvent`] that callers (the daemon, tests) wait on.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::discovery::read_identity;
use crate::error::HostError;
use crate::host::Host;
use crate::reload::ReloadReport;
use crate::supervisor::load_options;
use crate::watch::{self, FolderEvent, FolderWatcher};
use plugin_package::graph::DependencyGraph;
use plugin_package::manifest::Manifest;

/// Called after the live loop starts a new plugin (e.g. to activate it for tenants).
pub type OnStarted = Arc<dyn Fn(&Host, &str) + Send + Sync>;

/// How the live loop runs.
#[derive(Clone)]
pub struct LiveOptions {
    /// The plugin directories to watch.
    pub dirs: Vec<PathBuf>,
    /// Quiet time before a change counts, and the settle window after it (default 150 ms).
    pub debounce: Duration,
    /// Called after a newly added plugin was loaded and initialized.
    pub on_started: Option<OnStarted>,
    /// Appends every event as a JSON line here (e.g. for `cargo xtask dev`,
    /// which prints the host's swap time from it).
    pub event_log: Option<PathBuf>,
}

impl LiveOptions {
    /// Watches `dirs` with the default debounce.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            debounce: Duration::from_millis(150),
            on_started: None,
            event_log: None,
        }
    }
}

/// Something the live loop did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A loaded plugin's files changed: the reload swapped or rolled back.
    Reloaded(ReloadReport),
    /// A plugin appeared (or its missing dependency did) and was started.
    Started {
        /// The plugin.
        plugin: String,
        /// Its version.
        version: String,
    },
    /// A plugin that appeared could not be started.
    StartFailed {
        /// The plugin.
        plugin: String,
        /// Why.
        error: String,
    },
    /// A plugin's folder was removed: it and its dependents were stopped.
    Stopped {
        /// The plugin.
        plugin: String,
        /// Dependents stopped before it.
        dependents: Vec<String>,
    },
    /// A watched plugin directory is gone (deleted or moved away): its
    /// plugins were stopped, and live reload is degraded until it is back.
    DirectoryGone {
        /// The directory.
        dir: PathBuf,
    },
    /// A watched plugin directory exists again (recreated, renamed in,
    /// symlink swapped); the watch is re-armed and its folders rescanned.
    DirectoryBack {
        /// The directory.
        dir: PathBuf,
    },
    /// A change that could not be acted on (a bad manifest, say).
    Problem {
        /// The folder.
        folder: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A running live loop. Dropping it stops watching.
pub struct LiveReload {
    _watcher: FolderWatcher,
    events: Receiver<LiveEvent>,
}

impl LiveReload {
    /// The next event, waiting at most `limit`.
    pub fn next_event(&self, limit: Duration) -> Option<LiveEvent> {
        self.events.recv_timeout(limit).ok()
    }

    /// Waits for the first event matching `wanted`, at most `limit` in all.
    pub fn wait_for(
        &self,
        limit: Duration,
        mut wanted: impl FnMut(&LiveEvent) -> bool,
    ) -> Option<LiveEvent> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if wanted(&event) => return Some(event),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

fn append_json_line(path: &std::path::Path, event: &LiveEvent) {
    use std::io::Write;
    let line = match serde_json::to_string(event) {
        Ok(line) => line,
        Err(e) => {
            tracing::warn!("cannot serialize a live event: {e}");
            return;
        }
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), "cannot append to the live event log: {e}");
    }
}

impl Host {
    /// Watches plugin directories and applies every settled change: a
    /// changed plugin is reloaded, a removed one stopped with its
    /// dependents, a new one started once its dependencies are met.
    pub fn watch(&self, options: LiveOptions) -> Result<LiveReload, HostError> {
        let (folder_tx, folder_rx) = mpsc::channel();
        let watcher = watch::watch(&options.dirs, options.debounce, folder_tx)?;
        self.inner_live()
            .lock()
            .push(Arc::downgrade(&watcher.health()));
        let (event_tx, event_rx) = mpsc::channel();
        let host = self.clone();
        let (inner_tx, inner_rx) = mpsc::channel::<LiveEvent>();
        let event_log = options.event_log.clone();
        std::thread::Builder::new()
            .name("plugkit-live".to_owned())
            .spawn(move || {
                // Events go to the log file first, then to the caller.
                let forward = std::thread::spawn(move || {
                    for event in inner_rx {
                        if let Some(path) = &event_log {
                            append_json_line(path, &event);
                        }
                        if event_tx.send(event).is_err() && event_log.is_none() {
                            break;
                        }
                    }
                });
                while let Ok(event) = folder_rx.recv() {
                    host.apply(&options, event, &inner_tx);
                }
                drop(inner_tx);
                let _ = forward.join();
            })
            .map_err(|source| HostError::Io {
                plugin: "<host>".to_owned(),
                action: "starting the live reload thread",
                path: PathBuf::new(),
                source,
            })?;
        Ok(LiveReload {
            _watcher: watcher,
            events: event_rx,
        })
    }

    fn apply(&self, options: &LiveOptions, event: FolderEvent, out: &Sender<LiveEvent>) {
        match event {
            FolderEvent::Settled(folder) => {
                let manifest = match Manifest::load(&folder.join("plugin.toml")) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = out.send(LiveEvent::Problem {
                            folder,
                            message: e.to_string(),
                        });
                        return;
                    }
                };
                if self.state(&manifest.id).is_some() {
                    // The same checks as start-up, then the reload.
                    match self.reload_installed(&manifest.id, &folder) {
                        Ok(report) => {
                            let _ = out.send(LiveEvent::Reloaded(report));
                        }
                        Err(e) => {
                            let _ = out.send(LiveEvent::Problem {
                                folder,
                                message: e.to_string(),
                            });
                        }
                    }
                } else {
                    self.start_ready(options, out);
                }
            }
            FolderEvent::DirectoryGone(dir) => {
                let _ = out.send(LiveEvent::DirectoryGone { dir });
            }
            FolderEvent::DirectoryBack(dir) => {
                let _ = out.send(LiveEvent::DirectoryBack { dir });
            }
            FolderEvent::Removed(folder) => {
                let gone: Vec<String> = self
                    .statuses()
                    .into_iter()
                    .filter(|s| s.source.starts_with(&folder))
                    .map(|s| s.identity.id)
                    .collect();
                for plugin in gone {
                    let dependents = self.loaded_dependents(&plugin);
                    for dependent in dependents.iter().rev() {
                        if let Err(e) = self.remove(dependent) {
                            tracing::warn!(plugin = %dependent, "stopping a dependent: {e}");
                        }
                    }
                    if let Err(e) = self.remove(&plugin) {
                        tracing::warn!(plugin = %plugin, "stopping a removed plugin: {e}");
                    }
                    tracing::info!(plugin = %plugin, ?dependents, "stopped: its folder was removed");
                    let _ = out.send(LiveEvent::Stopped { plugin, dependents });
                }
            }
        }
    }

    /// Starts every installed plugin that is not loaded and whose
    /// dependencies are all loaded now.
    fn start_ready(&self, options: &LiveOptions, out: &Sender<LiveEvent>) {
        let found = crate::discovery::discover(&options.dirs, &read_identity);
        let manifests: Vec<Manifest> = found.plugins.iter().map(|p| p.manifest.clone()).collect();
        let api = semver::Version::parse(plugin_api::API_VERSION)
            .unwrap_or_else(|_| semver::Version::new(0, 0, 0));
        let resolution = DependencyGraph::resolve(&manifests, &api);
        for id in &resolution.start_order {
            if self.state(id).is_some() {
                continue;
            }
            let Some(plugin) = found.plugins.iter().find(|p| &p.manifest.id == id) else {
                continue;
            };
            let ready = plugin
                .manifest
                .dependencies
                .iter()
                .all(|(dep, spec)| spec.optional || self.state(dep).is_some());
            if !ready {
                continue;
            }
            let started = self
                .load(&plugin.library, load_options(&plugin.manifest))
                .and_then(|id| self.initialize(&id).map(|()| id));
            match started {
                Ok(id) => {
                    if let Some(hook) = &options.on_started {
                        hook(self, &id);
                    }
                    let _ = out.send(LiveEvent::Started {
                        plugin: id,
                        version: plugin.manifest.version.to_string(),
                    });
                }
                Err(e) => {
                    let _ = self.remove(id);
                    let _ = out.send(LiveEvent::StartFailed {
                        plugin: id.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
    }
}
