//! One child process of a plugin: its pidfd, channel and cgroups, the kill
//! that names why, the reaping by `waitid` on the pidfd, and the words for
//! each way it can die.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::isolation::shm::{self, Channel};

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

pub(super) type OnDeath = Box<dyn FnOnce(Death) + Send>;

/// One child process and its channel.
pub(crate) struct Generation {
    pub(super) pid: i32,
    pub(super) pidfd: OwnedFd,
    pub(super) channel: Channel,
    pub(super) call_lock: Mutex<()>,
    pub(super) death: Mutex<Option<Death>>,
    pub(super) reaped: Mutex<bool>,
    pub(super) reaped_cv: Condvar,
    pub(super) cgroups: Vec<PathBuf>,
    pub(super) on_death: Mutex<Option<OnDeath>>,
    /// Signalled when the child's stderr reached its end.
    pub(super) stderr_done: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Generation {
    pub(super) fn kill(&self, why: Death) {
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
    pub(super) fn on_death(&self, f: OnDeath) {
        let mut slot = self.on_death.lock();
        if *self.reaped.lock() {
            drop(slot);
            f(self.death.lock().clone().unwrap_or(Death::Stopped));
        } else {
            *slot = Some(f);
        }
    }

    /// Waits until the watcher has reaped the child and recorded why.
    pub(super) fn wait_reaped(&self) -> Death {
        let mut reaped = self.reaped.lock();
        while !*reaped {
            self.reaped_cv.wait(&mut reaped);
        }
        drop(reaped);
        self.death.lock().clone().unwrap_or(Death::Stopped)
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

pub(super) fn signal_name(signal: i32) -> &'static str {
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
pub(super) fn reap(generation: &Generation) -> Death {
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
