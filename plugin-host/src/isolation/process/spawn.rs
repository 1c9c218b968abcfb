//! Starting a generation: the one long-lived spawner thread (the
//! parent-death signal follows the forking thread), the runner's fds, its
//! pidfd and watcher thread, stderr forwarded into tracing, and the hello
//! handshake that ends when the runner has loaded the library or refused.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::generation::{describe, reap, Death, Generation};
use super::LogTail;
use crate::error::HostError;
use crate::isolation::runner::EXIT_SETUP;
use crate::isolation::sandbox::{CHANNEL_FD, LIBRARY_FD};
use crate::isolation::shm::{self, Channel, Wait};
use crate::isolation::wire::{
    self, Extensions, Hello, Reply, Request, WireIdentity, PROTOCOL_VERSION,
};
use crate::isolation::ProcessOptions;

type Spawned = (Arc<Generation>, WireIdentity, Extensions, Vec<String>);

/// Spawns a runner, hands it the library and limits, and waits until it has
/// loaded the library (or refused).
pub(super) fn spawn_generation(
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
    let cgroups = crate::isolation::cgroups::create(label, serial, options);
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
