//! Child processes that die with the test, free ports, and waiting for a
//! peer to be ready without sleeping a fixed time.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A child process killed (and reaped) on drop.
pub struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    /// Spawns `command`, naming it in errors.
    pub fn spawn(name: &str, command: &mut Command) -> Result<Self> {
        let child = command.spawn().with_context(|| {
            format!("starting {name}: is it installed? run `bash .ci/run` once or see tests/peers/")
        })?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited (e.g. a bad config).
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> Result<u16> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(socket.local_addr()?.port())
}

/// Polls `ready` every 50 ms until it returns true, the child dies, or `limit` passes.
pub fn wait_until(
    what: &str,
    limit: Duration,
    child: Option<&mut ChildGuard>,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let start = Instant::now();
    let mut child = child;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(c) = child.as_deref_mut() {
            c.ensure_running()?;
        }
        if start.elapsed() > limit {
            bail!("{what} was not ready after {limit:?}");
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_tcp(
    what: &str,
    port: u16,
    limit: Duration,
    child: Option<&mut ChildGuard>,
) -> Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_until(what, limit, child, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
}

/// The workspace root (where the top-level Cargo.toml is).
pub fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.pop();
    dir
}

/// The cargo target directory, as cargo reports it (`CARGO_TARGET_DIR`, a
/// config file's `build.target-dir`, else `<workspace>/target`); asked once
/// per process, falling back to `<workspace>/target` only when cargo cannot
/// be run at all.
pub fn target_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|meta| meta["target_directory"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| workspace_root().join("target"))
    })
    .clone()
}

/// Finds an executable on PATH or in well-known install locations.
pub fn find_program(name: &str, extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
