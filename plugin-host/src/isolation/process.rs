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

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use abi_stable::std_types::{RResult, RSlice, RStr};
use parking_lot::{Condvar, Mutex};
use plugin_api::abi::{HostServicesBox, LogLevel, Payload, PluginError};

use super::runner::EXIT_SETUP;
use super::sandbox::{CHANNEL_FD, LIBRARY_FD};
use super::shm::{self, Channel, Wait};
use super::wire::{
    self, Callback, CallbackReply, Extensions, Hello, Reply, Request, WireError, WireIdentity,
    PROTOCOL_VERSION,
};
use super::ProcessOptions;
use crate::error::{Call, HostError};

/// How many of the plugin's last log lines an error quotes.
const LOG_TAIL: usize = 12;

/// Why a child is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Death {
    Signal(i32),
    OutOfMemory(&'static str),
    Exited(i32),
    Deadline(Duration),
    Garbage(String),
    /// Stopped by the host (cleanup, unload, release).
    Stopped,
}

type OnDeath = Box<dyn FnOnce(Death) + Send>;
pub(crate) type OnQuarantine = Box<dyn Fn(&str) + Send + Sync>;

/// One child process and its channel.
pub(crate) struct Generation {
    pid: i32,
    pidfd: OwnedFd,
    channel: Channel,
    call_lock: Mutex<()>,
    death: Mutex<Option<Death>>,
    reaped: Mutex<bool>,
    reaped_cv: Condvar,
    cgroups: Vec<PathBuf>,
    on_death: Mutex<Option<OnDeath>>,
    /// Signalled when the child's stderr reached its end.
    stderr_done: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Generation {
    fn kill(&self, why: Death) {
        self.death.lock().get_or_insert(why);
        // SAFETY: pidfd_send_signal on our own pidfd; the pidfd pins the
        // process identity, so a reused pid is never signalled.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
        }
    }

    /// Runs `f` once the child is reaped (at once when it already is).
    fn on_death(&self, f: OnDeath) {
        let mut slot = self.on_death.lock();
        if *self.reaped.lock() {
            drop(slot);
            f(self.death.lock().clone().unwrap_or(Death::Stopped));
        } else {
            *slot = Some(f);
        }
    }

    /// Waits until the watcher has reaped the child and recorded why.
    fn wait_reaped(&self) -> Death {
        let mut reaped = self.reaped.lock();
        while !*reaped {
            self.reaped_cv.wait(&mut reaped);
        }
        drop(reaped);
        self.death.lock().clone().unwrap_or(Death::Stopped)
    }
}

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

    /// Hands this generation's death to the supervisor.
    fn watch(&self, generation: Arc<Generation>) {
        let weak = self.this.clone();
        let g = Arc::downgrade(&generation);
        generation.on_death(Box::new(move |death| {
            if let (Some(child), Some(g)) = (weak.upgrade(), g.upgrade()) {
                child.after_death(&g, death);
            }
        }));
    }

    fn after_death(&self, generation: &Arc<Generation>, death: Death) {
        let was_current = {
            let mut current = self.current.lock();
            let same = current
                .generation
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(g, generation));
            if same {
                current.generation = None;
                current.ready = false;
            }
            same
        };
        self.changed.notify_all();
        if !was_current || self.stopping.load(Ordering::Acquire) || death == Death::Stopped {
            return;
        }
        tracing::error!(
            plugin = %self.plugin,
            pid = generation.pid,
            "plugin process died: {}; last lines it logged:\n{}",
            describe(&death),
            self.last_log()
        );
        self.restart_after_crash(describe(&death));
    }

    /// Counts a crash, then restarts with back-off or quarantines.
    fn restart_after_crash(&self, reason: String) {
        let crashes = {
            let mut c = self.crashes.lock();
            let now = Instant::now();
            c.push_back(now);
            while c
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.options.crash_window)
            {
                c.pop_front();
            }
            c.len() as u32
        };
        if crashes >= self.options.max_crashes {
            let why = format!(
                "{crashes} crashes within {:?}, the last: {reason}",
                self.options.crash_window
            );
            tracing::error!(plugin = %self.plugin, "quarantined: {why}; release it with `Host::release_quarantine`");
            self.current.lock().quarantine = Some(why.clone());
            self.changed.notify_all();
            if let Some(f) = self.on_quarantine.lock().as_ref() {
                f(&why);
            }
            return;
        }
        let backoff = self
            .options
            .restart_backoff
            .saturating_mul(1 << (crashes - 1).min(16))
            .min(self.options.max_backoff);
        std::thread::sleep(backoff);
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.respawn() {
            tracing::error!(plugin = %self.plugin, "restart failed: {e}");
            self.restart_after_crash(e.to_string());
        }
    }

    /// Spawns a new generation and brings it to the state the host had
    /// asked for: initialized, with the same tenants and configurations.
    fn respawn(&self) -> Result<(), HostError> {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let (generation, _, _, sandbox) = spawn_generation(
            &self.plugin,
            &self.runner,
            &self.library,
            &self.permissions,
            &self.options,
            n,
            &self.log_tail,
        )?;
        *self.sandbox.lock() = sandbox;
        self.current.lock().generation = Some(generation.clone());
        self.watch(generation.clone());
        self.restarts.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.bring_up(&generation) {
            if generation.death.lock().is_some() {
                // It died during start-up: its own watcher restarts it.
                return Ok(());
            }
            // Alive but refusing (e.g. initialize failed): stopped here, and
            // the caller counts it as a crash.
            generation.kill(Death::Stopped);
            generation.wait_reaped();
            return Err(e);
        }
        {
            let mut current = self.current.lock();
            if current
                .generation
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(g, &generation))
            {
                current.ready = true;
            }
        }
        self.changed.notify_all();
        tracing::info!(plugin = %self.plugin, pid = generation.pid, "plugin process restarted and serving");
        Ok(())
    }

    /// Initializes a new generation and re-activates every tenant.
    fn bring_up(&self, generation: &Generation) -> Result<(), HostError> {
        let deadline = self.options.lifecycle_deadline;
        if self.initialized.load(Ordering::Acquire) {
            self.expect_done(
                generation,
                "",
                Call::Initialize,
                &Request::Initialize,
                deadline,
            )?;
            let tenants: Vec<(String, String)> = self
                .tenants
                .lock()
                .iter()
                .map(|(t, c)| (t.clone(), c.clone()))
                .collect();
            for (tenant, config_json) in tenants {
                let request = Request::Activate {
                    tenant: tenant.clone(),
                    config_json,
                };
                self.expect_done(generation, &tenant, Call::Activate, &request, deadline)?;
            }
        }
        Ok(())
    }

    fn expect_done(
        &self,
        generation: &Generation,
        tenant: &str,
        call: Call,
        request: &Request,
        deadline: Duration,
    ) -> Result<(), HostError> {
        match self.exchange(generation, tenant, call, request, deadline)? {
            Reply::Done(Ok(())) => Ok(()),
            Reply::Done(Err(e)) => Err(crate::loader::call_error(
                &self.plugin,
                &self.runner,
                call,
                &e.into(),
            )),
            other => Err(self.garbage_error(
                generation,
                tenant,
                call,
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Lifts a quarantine and starts a fresh child.
    pub(crate) fn release(&self) -> Result<(), HostError> {
        if self.current.lock().quarantine.take().is_none() {
            return Ok(());
        }
        self.crashes.lock().clear();
        self.respawn()
    }

    /// The generation calls may use, waiting for a restart up to `deadline`.
    fn ready_generation(
        &self,
        tenant: &str,
        call: Call,
        deadline: Instant,
    ) -> Result<Arc<Generation>, HostError> {
        let mut current = self.current.lock();
        loop {
            if let Some(reason) = &current.quarantine {
                return Err(HostError::Quarantined {
                    plugin: self.plugin.clone(),
                    reason: reason.clone(),
                });
            }
            if current.ready {
                // A generation that has died but is not yet replaced is skipped:
                // its watcher is about to clear it and start the next one.
                if let Some(g) = current
                    .generation
                    .as_ref()
                    .filter(|g| g.death.lock().is_none())
                {
                    return Ok(g.clone());
                }
            }
            if self.stopping.load(Ordering::Acquire) {
                return Err(HostError::ChildExited {
                    plugin: self.plugin.clone(),
                    tenant: tenant.to_owned(),
                    call,
                    code: 0,
                    last_log: "(the plugin was stopped)".into(),
                });
            }
            if self.changed.wait_until(&mut current, deadline).timed_out() {
                return Err(HostError::DeadlineExceeded {
                    plugin: self.plugin.clone(),
                    tenant: tenant.to_owned(),
                    call,
                    deadline: self.options.call_deadline,
                    last_log: format!(
                        "(the plugin process was restarting and did not come back in time)\n{}",
                        self.last_log()
                    )
                    .into(),
                });
            }
        }
    }

    /// One request/reply with the current generation.
    pub(crate) fn request(
        &self,
        tenant: &str,
        call: Call,
        request: &Request,
    ) -> Result<Reply, HostError> {
        let deadline = match call {
            Call::Hook | Call::Service | Call::Health => self.options.call_deadline,
            _ => self.options.lifecycle_deadline,
        };
        let generation = self.ready_generation(tenant, call, Instant::now() + deadline)?;
        self.exchange(&generation, tenant, call, request, deadline)
    }

    fn exchange(
        &self,
        generation: &Generation,
        tenant: &str,
        call: Call,
        request: &Request,
        deadline: Duration,
    ) -> Result<Reply, HostError> {
        let until = Instant::now() + deadline;
        let Some(_turn) = generation.call_lock.try_lock_until(until) else {
            return Err(HostError::DeadlineExceeded {
                plugin: self.plugin.clone(),
                tenant: tenant.to_owned(),
                call,
                deadline,
                last_log: "(waited for the plugin's previous call the whole time)".into(),
            });
        };
        if let Some(death) = generation.death.lock().clone() {
            return Err(self.death_error(death, tenant, call));
        }
        let channel = &generation.channel;
        let len = wire::encode(request, channel.buffer()).map_err(|e| HostError::CallFailed {
            plugin: self.plugin.clone(),
            path: self.runner.clone(),
            call,
            message: format!(
                "the request does not fit the {} byte channel: {e}",
                channel.capacity()
            ),
            error: Box::new(PluginError::InvalidRequest {
                message: "request too large for process isolation".into(),
            }),
        })?;
        channel.send(len, shm::REQUEST);
        loop {
            match channel.wait_while(&[shm::REQUEST, shm::CALLBACK_REPLY], Some(until)) {
                Wait::State(shm::RESPONSE) => {
                    let reply = channel.message().map(wire::decode::<Reply>);
                    return match reply {
                        Some(Ok(reply)) => {
                            channel.publish(shm::IDLE);
                            Ok(reply)
                        }
                        Some(Err(e)) => Err(self.garbage_error(
                            generation,
                            tenant,
                            call,
                            format!("undecodable reply: {e}"),
                        )),
                        None => Err(self.garbage_error(
                            generation,
                            tenant,
                            call,
                            "reply length beyond the channel".to_owned(),
                        )),
                    };
                }
                Wait::State(shm::CALLBACK) => {
                    let cb = match channel.message().map(wire::decode::<Callback>) {
                        Some(Ok(cb)) => cb,
                        _ => {
                            return Err(self.garbage_error(
                                generation,
                                tenant,
                                call,
                                "undecodable host-service callback".to_owned(),
                            ))
                        }
                    };
                    let answer = self.serve_callback(cb);
                    let n = wire::encode(&answer, channel.buffer()).unwrap_or(0);
                    channel.send(n, shm::CALLBACK_REPLY);
                }
                Wait::State(shm::DEAD) => {
                    let death = generation.wait_reaped();
                    return Err(self.death_error(death, tenant, call));
                }
                Wait::State(other) => {
                    return Err(self.garbage_error(
                        generation,
                        tenant,
                        call,
                        format!("unknown channel state {other:#x}"),
                    ))
                }
                Wait::TimedOut => {
                    let state = channel.state();
                    if ![shm::REQUEST, shm::CALLBACK_REPLY].contains(&state) {
                        // Changed without a wake-up: only a scribbling child does that.
                        return Err(self.garbage_error(
                            generation,
                            tenant,
                            call,
                            format!("channel state changed to {state:#x} without a wake-up"),
                        ));
                    }
                    generation.kill(Death::Deadline(deadline));
                    let death = generation.wait_reaped();
                    return Err(self.death_error(death, tenant, call));
                }
            }
        }
    }

    fn garbage_error(
        &self,
        generation: &Generation,
        tenant: &str,
        call: Call,
        detail: String,
    ) -> HostError {
        generation.kill(Death::Garbage(detail));
        let death = generation.wait_reaped();
        self.death_error(death, tenant, call)
    }

    /// A plugin error standing for a broken channel (used by the proxies).
    pub(crate) fn garbage(&self, tenant: &str, detail: String) -> PluginError {
        let generation = self.current.lock().generation.clone();
        let err = match generation {
            Some(g) => self.garbage_error(&g, tenant, Call::Service, detail),
            None => HostError::ChannelGarbage {
                plugin: self.plugin.clone(),
                tenant: tenant.to_owned(),
                call: Call::Service,
                detail: detail.into(),
                last_log: self.last_log().into(),
            },
        };
        super::stash(err)
    }

    fn death_error(&self, death: Death, tenant: &str, call: Call) -> HostError {
        let plugin = self.plugin.clone();
        let tenant = tenant.to_owned();
        let last_log: Box<str> = self.last_log().into();
        match death {
            Death::Signal(signal) => HostError::ChildCrashed {
                plugin,
                tenant,
                call,
                signal,
                signal_name: signal_name(signal),
                last_log,
            },
            Death::OutOfMemory(limit) => HostError::ChildOutOfMemory {
                plugin,
                tenant,
                call,
                limit,
                last_log,
            },
            Death::Exited(code) => HostError::ChildExited {
                plugin,
                tenant,
                call,
                code,
                last_log,
            },
            Death::Stopped => HostError::ChildExited {
                plugin,
                tenant,
                call,
                code: 0,
                last_log: "(stopped by the host)".into(),
            },
            Death::Deadline(deadline) => HostError::DeadlineExceeded {
                plugin,
                tenant,
                call,
                deadline,
                last_log,
            },
            Death::Garbage(detail) => HostError::ChannelGarbage {
                plugin,
                tenant,
                call,
                detail: detail.into(),
                last_log,
            },
        }
    }

    fn serve_callback(&self, cb: Callback) -> CallbackReply {
        let services = self.services.lock().clone();
        let Some(s) = services else {
            return CallbackReply::Unit(Err(WireError::Failed(
                "host services are not available before initialize".into(),
            )));
        };
        let wire_unit =
            |r: RResult<(), PluginError>| CallbackReply::Unit(wire::to_wire(r, |()| ()));
        match cb {
            Callback::Log { level, message } => {
                let level = match level {
                    0 => LogLevel::Trace,
                    1 => LogLevel::Debug,
                    2 => LogLevel::Info,
                    3 => LogLevel::Warn,
                    _ => LogLevel::Error,
                };
                if level >= LogLevel::Info {
                    self.log_tail.push(message.clone());
                }
                s.log(level, RStr::from_str(&message));
                CallbackReply::Logged
            }
            Callback::Config => CallbackReply::Config(s.config_json().to_string()),
            Callback::Secret { tenant, name } => CallbackReply::Secret(wire::to_wire(
                s.secret(tenant.as_str().into(), name.as_str().into()),
                |v| v.to_string(),
            )),
            Callback::Emit {
                tenant,
                hook,
                content_type,
                payload,
            } => wire_unit(s.emit(
                tenant.as_str().into(),
                hook.as_str().into(),
                Payload {
                    content_type: content_type.into(),
                    bytes: payload.into(),
                },
            )),
            Callback::StateGet { tenant, key } => CallbackReply::StateGet(wire::to_wire(
                s.state_get(tenant.as_str().into(), key.as_str().into()),
                |v| v.into_option().map(|v| v.into_vec()),
            )),
            Callback::StatePut { tenant, key, value } => wire_unit(s.state_put(
                tenant.as_str().into(),
                key.as_str().into(),
                RSlice::from_slice(&value),
            )),
            Callback::Metric { name, value } => wire_unit(s.metric(name.as_str().into(), value)),
        }
    }

    /// A category call (see `categories`).
    pub(crate) fn category(
        &self,
        category: &str,
        tenant: &str,
        request: Vec<u8>,
    ) -> RResult<Vec<u8>, PluginError> {
        let request = Request::Category {
            category: category.to_owned(),
            tenant: tenant.to_owned(),
            request,
        };
        match self.request(tenant, Call::Service, &request) {
            Ok(Reply::Bytes(r)) => r.map(|b| b.0).map_err(PluginError::from).into(),
            Ok(other) => {
                RResult::RErr(self.garbage(tenant, format!("a reply of the wrong kind: {other:?}")))
            }
            Err(e) => RResult::RErr(super::stash(e)),
        }
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

/// Describes a death for logs.
pub(crate) fn describe(death: &Death) -> String {
    match death {
        Death::Signal(s) => format!("killed by {}", signal_name(*s)),
        Death::OutOfMemory(limit) => format!("killed for exceeding its memory limit ({limit})"),
        Death::Exited(code) => format!("exited with status {code}"),
        Death::Deadline(d) => format!("missed its {d:?} deadline and was killed"),
        Death::Garbage(detail) => format!("wrote garbage on the channel ({detail}) and was killed"),
        Death::Stopped => "stopped by the host".to_owned(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGTRAP => "SIGTRAP",
        _ => "another signal (see `signal`)",
    }
}

/// Blocks until the generation's process exits, reaps it, and records why.
fn reap(generation: &Generation) -> Death {
    let mut pfd = libc::pollfd {
        fd: generation.pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd; blocks until the process exits.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r > 0 || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)) {
            break;
        }
    }
    // SAFETY: zeroed siginfo is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid(P_PIDFD) on our pidfd; reaps exactly this child.
    let r = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            generation.pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED,
        )
    };
    let observed = if r != 0 {
        Death::Exited(-1)
    } else {
        // SAFETY: filled in by a successful waitid.
        let (code, status) = unsafe { (info.si_code, info.si_status()) };
        if code == libc::CLD_EXITED {
            Death::Exited(status)
        } else if status == libc::SIGKILL && oom_killed(&generation.cgroups) {
            Death::OutOfMemory("cgroup memory limit")
        } else {
            Death::Signal(status)
        }
    };
    {
        let mut death = generation.death.lock();
        death.get_or_insert(observed);
    }
    // The last words (a panic message, "overflowed its stack") arrive on
    // stderr just before the end: wait for the pipe to close, briefly.
    let done = generation.stderr_done.lock().take();
    if let Some(done) = done {
        let _ = done.recv_timeout(Duration::from_millis(250));
    }
    for dir in &generation.cgroups {
        let _ = std::fs::remove_dir(dir);
    }
    generation.channel.publish(shm::DEAD);
    *generation.reaped.lock() = true;
    generation.reaped_cv.notify_all();
    generation.death.lock().clone().unwrap_or(Death::Stopped)
}

fn oom_killed(cgroups: &[PathBuf]) -> bool {
    cgroups.iter().any(|dir| {
        std::fs::read_to_string(dir.join("memory.oom_control")).is_ok_and(|s| {
            s.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    })
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

type Spawned = (Arc<Generation>, WireIdentity, Extensions, Vec<String>);

/// Spawns a runner, hands it the library and limits, and waits until it has
/// loaded the library (or refused).
fn spawn_generation(
    label: &str,
    runner: &Path,
    library: &OwnedFd,
    permissions: &[String],
    options: &ProcessOptions,
    serial: u64,
    log_tail: &LogTail,
) -> Result<Spawned, HostError> {
    let failed = |reason: String| HostError::RunnerFailed {
        plugin: label.to_owned(),
        runner: runner.to_owned(),
        reason,
    };
    let mut channel = Channel::create(PROTOCOL_VERSION)
        .map_err(|e| failed(format!("creating the shared-memory channel: {e}")))?;
    channel.set_spin(options.spin);
    let cgroups = super::cgroups::create(label, serial, options);
    let hello = Hello {
        plugin: label.to_owned(),
        permissions: permissions.to_vec(),
        limits: cgroups.fallback_limits(options),
        cgroups: cgroups
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect(),
        host_pid: std::process::id(),
        spin_ns: options.spin.as_nanos().min(u128::from(u64::MAX)) as u64,
    };
    let (pid, stderr) = spawn_on_spawner_thread(runner, library.as_raw_fd(), channel.fd())
        .map_err(|e| {
            cgroups.remove();
            failed(format!("starting the runner: {e}"))
        })?;
    // SAFETY: pidfd_open on the child we just started and have not reaped.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        cgroups.remove();
        return Err(failed(format!("pidfd_open: {e}")));
    }
    let generation = Arc::new(Generation {
        pid,
        // SAFETY: a fresh fd from pidfd_open that we own.
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd as i32) },
        channel,
        call_lock: Mutex::new(()),
        death: Mutex::new(None),
        reaped: Mutex::new(false),
        reaped_cv: Condvar::new(),
        cgroups: cgroups.dirs.clone(),
        on_death: Mutex::new(None),
        stderr_done: Mutex::new(None),
    });
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    *generation.stderr_done.lock() = Some(done_rx);
    forward_stderr(label, stderr, lines_tx, done_tx, log_tail.clone());
    {
        let g = generation.clone();
        std::thread::Builder::new()
            .name(format!("plugkit-watch-{label}"))
            .spawn(move || {
                let death = reap(&g);
                let f = g.on_death.lock().take();
                if let Some(f) = f {
                    f(death);
                }
            })
            .map_err(|e| {
                generation.kill(Death::Stopped);
                failed(format!("starting the watcher thread: {e}"))
            })?;
    }
    let until = Instant::now() + options.lifecycle_deadline;
    match handshake(&generation, &hello, until) {
        Ok((identity, extensions, runner_lines)) => {
            let mut sandbox = cgroups.report.clone();
            sandbox.extend(runner_lines);
            for line in &sandbox {
                tracing::info!(plugin = %identity.id, pid, "sandbox: {line}");
            }
            Ok((generation, identity, extensions, sandbox))
        }
        Err(reason) => {
            generation.kill(Death::Stopped);
            let death = generation.wait_reaped();
            // The stderr pipe closes with the process: collect what it said.
            let lines: Vec<String> = lines_rx
                .recv_timeout(Duration::from_millis(200))
                .into_iter()
                .chain(lines_rx.try_iter())
                .collect();
            let refused = generation.channel.runner_protocol();
            if refused != 0 {
                return Err(HostError::RunnerProtocolMismatch {
                    plugin: label.to_owned(),
                    runner: runner.to_owned(),
                    host_protocol: PROTOCOL_VERSION,
                    runner_protocol: refused,
                });
            }
            let detail = if lines.is_empty() {
                String::new()
            } else {
                format!("; it wrote:\n{}", lines.join("\n"))
            };
            let exit = match death {
                Death::Exited(EXIT_SETUP) | Death::Stopped => String::new(),
                other => format!(" (the runner {})", describe(&other)),
            };
            Err(failed(format!("{reason}{exit}{detail}")))
        }
    }
}

fn handshake(
    generation: &Generation,
    hello: &Hello,
    until: Instant,
) -> Result<(WireIdentity, Extensions, Vec<String>), String> {
    let channel = &generation.channel;
    let n = wire::encode(&Request::Hello(hello.clone()), channel.buffer())
        .map_err(|e| format!("encoding the hello: {e}"))?;
    channel.send(n, shm::REQUEST);
    match channel.wait_while(&[shm::REQUEST], Some(until)) {
        Wait::State(shm::RESPONSE) => {
            let reply = channel
                .message()
                .map(wire::decode::<Reply>)
                .ok_or("reply length beyond the channel")?
                .map_err(|e| format!("undecodable handshake reply: {e}"))?;
            channel.publish(shm::IDLE);
            match reply {
                Reply::Ready {
                    identity,
                    extensions,
                    sandbox,
                } => Ok((identity, extensions, sandbox)),
                Reply::Refused { message } => Err(format!("the runner refused: {message}")),
                other => Err(format!("unexpected handshake reply {other:?}")),
            }
        }
        Wait::State(shm::REFUSED) => Err("the runner speaks another protocol".to_owned()),
        Wait::State(shm::DEAD) => Err("the runner exited during the handshake".to_owned()),
        Wait::State(other) => Err(format!("unknown channel state {other:#x}")),
        Wait::TimedOut => Err("the runner did not answer the handshake in time".to_owned()),
    }
}

fn forward_stderr(
    plugin: &str,
    stderr: OwnedFd,
    lines: mpsc::Sender<String>,
    done: mpsc::Sender<()>,
    tail: LogTail,
) {
    let plugin = plugin.to_owned();
    let _ = std::thread::Builder::new()
        .name(format!("plugkit-stderr-{plugin}"))
        .spawn(move || {
            let reader = BufReader::new(std::fs::File::from(stderr));
            for line in reader.lines() {
                let Ok(line) = line else { break };
                tracing::warn!(target: "plugin", plugin = %plugin, "stderr: {line}");
                tail.push(format!("stderr: {line}"));
                let _ = lines.send(line);
            }
            let _ = done.send(());
        });
}

struct SpawnJob {
    runner: PathBuf,
    library: i32,
    channel: i32,
    reply: mpsc::Sender<std::io::Result<(i32, OwnedFd)>>,
}

/// Spawns on the host's one spawner thread, which never exits, so the
/// children's parent-death signal fires only when the host process dies.
fn spawn_on_spawner_thread(
    runner: &Path,
    library: i32,
    channel: i32,
) -> std::io::Result<(i32, OwnedFd)> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        let spawned = std::thread::Builder::new()
            .name("plugkit-spawner".to_owned())
            .spawn(move || {
                for job in rx {
                    let _ = job
                        .reply
                        .send(spawn_runner(&job.runner, job.library, job.channel));
                }
            });
        if let Err(e) = spawned {
            tracing::error!("could not start the plugkit spawner thread: {e}");
        }
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    sender
        .lock()
        .send(SpawnJob {
            runner: runner.to_owned(),
            library,
            channel,
            reply,
        })
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

fn spawn_runner(runner: &Path, library: i32, channel: i32) -> std::io::Result<(i32, OwnedFd)> {
    let mut cmd = Command::new(runner);
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (fcntl, dup2, prctl).
    unsafe {
        cmd.pre_exec(move || {
            let lib = libc::fcntl(library, libc::F_DUPFD_CLOEXEC, 10);
            let chan = libc::fcntl(channel, libc::F_DUPFD_CLOEXEC, 10);
            if lib < 0
                || chan < 0
                || libc::dup2(lib, LIBRARY_FD) < 0
                || libc::dup2(chan, CHANNEL_FD) < 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let stderr = child
        .stderr
        .take()
        .map(OwnedFd::from)
        .ok_or_else(|| std::io::Error::other("no stderr pipe"))?;
    let pid = child.id() as i32;
    // The watcher reaps it through its pidfd; `Child` does not wait on drop.
    drop(child);
    Ok((pid, stderr))
}
