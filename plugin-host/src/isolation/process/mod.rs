//! The host side of one isolated plugin: spawning its runner, the calls
//! over the channel with deadlines, the watcher that notices a death at once
//! (pidfd), restarts with back-off and quarantine.
//!
//! Invariants:
//! - every child is spawned by one long-lived thread (the parent-death
//!   signal fires when the *thread* that forked exits);
//! - every child is reaped by its watcher (`waitid` on its pidfd), and its
//!   cgroups are removed after it; the pidfd, channel and stderr pipe close
//!   with the generation, so crash/restart cycles leak nothing;
//! - a death is recorded once per generation: the first reason wins (a
//!   deadline or garbage the caller saw, then the exit status).
//!
//! Split by job: this file holds [`ChildPlugin`] (the plugin across its
//! generations) and what the proxies tell it; `spawn` starts a generation
//! (the spawner thread, the runner's fds, the handshake, stderr);
//! `generation` is one child process (kill, reap, why it died); `call` is
//! the channel (requests with deadlines, host-service callbacks, errors);
//! `supervise` restarts after a crash with back-off, or quarantines.

mod call;
mod generation;
mod spawn;
mod supervise;

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use plugin_api::abi::HostServicesBox;

use super::wire::{Extensions, WireIdentity};
use super::ProcessOptions;
use crate::error::HostError;
use generation::{Death, Generation};
use spawn::spawn_generation;

/// How many of the plugin's last log lines an error quotes.
const LOG_TAIL: usize = 12;

pub(crate) type OnQuarantine = Box<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
struct Current {
    generation: Option<Arc<Generation>>,
    /// Initialized and tenants re-activated: calls may use it.
    ready: bool,
    quarantine: Option<String>,
}

/// A plugin served by a runner process, restarted when it dies.
pub(crate) struct ChildPlugin {
    pub(crate) plugin: String,
    pub(crate) options: ProcessOptions,
    runner: PathBuf,
    library: OwnedFd,
    permissions: Vec<String>,
    current: Mutex<Current>,
    changed: Condvar,
    services: Mutex<Option<Arc<HostServicesBox>>>,
    tenants: Mutex<BTreeMap<String, String>>,
    initialized: AtomicBool,
    stopping: AtomicBool,
    log_tail: LogTail,
    crashes: Mutex<VecDeque<Instant>>,
    pub(crate) restarts: AtomicU64,
    spawned: AtomicU64,
    pub(crate) sandbox: Mutex<Vec<String>>,
    pub(crate) identity: WireIdentity,
    pub(crate) extensions: Extensions,
    on_quarantine: Mutex<Option<OnQuarantine>>,
    this: Weak<ChildPlugin>,
}

impl ChildPlugin {
    /// Spawns the first child and waits for it to load the library.
    pub(crate) fn start(
        label: &str,
        runner: PathBuf,
        library: OwnedFd,
        permissions: Vec<String>,
        options: ProcessOptions,
    ) -> Result<Arc<Self>, HostError> {
        let log_tail = LogTail::default();
        let first = spawn_generation(
            label,
            &runner,
            &library,
            &permissions,
            &options,
            0,
            &log_tail,
        )?;
        let (generation, identity, extensions, sandbox) = first;
        let child = Arc::new_cyclic(|this| Self {
            plugin: identity.id.clone(),
            options,
            runner,
            library,
            permissions,
            current: Mutex::new(Current {
                generation: Some(generation.clone()),
                ready: true,
                quarantine: None,
            }),
            changed: Condvar::new(),
            services: Mutex::new(None),
            tenants: Mutex::new(BTreeMap::new()),
            initialized: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            log_tail,
            crashes: Mutex::new(VecDeque::new()),
            restarts: AtomicU64::new(0),
            spawned: AtomicU64::new(1),
            sandbox: Mutex::new(sandbox),
            identity,
            extensions,
            on_quarantine: Mutex::new(None),
            this: this.clone(),
        });
        child.watch(generation);
        Ok(child)
    }

    pub(crate) fn set_on_quarantine(&self, f: OnQuarantine) {
        *self.on_quarantine.lock() = Some(f);
    }

    pub(crate) fn pid(&self) -> Option<i32> {
        self.current.lock().generation.as_ref().map(|g| g.pid)
    }

    pub(crate) fn quarantine_reason(&self) -> Option<String> {
        self.current.lock().quarantine.clone()
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.current.lock().ready
    }

    pub(crate) fn last_log(&self) -> String {
        self.log_tail.text()
    }

    pub(crate) fn set_services(&self, services: HostServicesBox) {
        *self.services.lock() = Some(Arc::new(services));
    }

    pub(crate) fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::Release);
    }

    pub(crate) fn tenant_activated(&self, tenant: &str, config_json: &str) {
        self.tenants
            .lock()
            .insert(tenant.to_owned(), config_json.to_owned());
    }

    pub(crate) fn tenant_deactivated(&self, tenant: &str) {
        self.tenants.lock().remove(tenant);
    }

    /// Stops the child for good (after cleanup, or when dropped).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let generation = {
            let mut current = self.current.lock();
            current.ready = false;
            current.generation.take()
        };
        self.changed.notify_all();
        if let Some(g) = generation {
            g.kill(Death::Stopped);
            g.wait_reaped();
        }
    }
}

impl Drop for ChildPlugin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last lines a plugin logged (through the host or on stderr), shared
/// by every generation of one plugin.
#[derive(Clone, Default)]
pub(crate) struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    fn push(&self, line: String) {
        let mut tail = self.0.lock();
        if tail.len() == LOG_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    fn text(&self) -> String {
        let tail = self.0.lock();
        if tail.is_empty() {
            "(nothing)".to_owned()
        } else {
            tail.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }
}
