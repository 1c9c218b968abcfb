//! Stoplight Prism mocking Twilio's own OpenAPI description of the 2010-04-01
//! API, on a free 127.0.0.1 port, stopped when dropped.
//!
//! Prism validates every request against Twilio's spec (path patterns,
//! required form fields, formats, Basic auth) and answers with the spec's
//! examples, so a request it refuses is a client bug. It is stateless and
//! answers errors in its own format: Twilio's error codes are tested
//! against the in-repo stand-in instead.
//!
//! Installed by `tests/peers/install-prism.sh` (npm) into
//! `<cargo target directory>/peers/prism`, or `$PLUGKIT_PEERS_DIR/prism`; [`Prism::start`]
//! runs that script itself the first time it finds nothing installed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::process::{free_tcp_port, target_dir, wait_for_tcp, workspace_root, ChildGuard};

/// Where the spec sits inside the `@twilio-alpha/mcp` npm package.
const SPEC: &str = "node_modules/@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json";
/// Prism's launcher inside the install directory.
const PRISM: &str = "node_modules/.bin/prism";
/// Prism loads the 2 MB spec in a second or two; this only bounds a hang.
const READY_LIMIT: Duration = Duration::from_secs(90);

/// A running `prism mock` of Twilio's API; killed on drop.
pub struct Prism {
    port: u16,
    log: PathBuf,
    startup: Duration,
    // Field order matters: the process dies before its log directory goes.
    _child: ChildGuard,
    _dir: TempDir,
}

impl Prism {
    /// Installs Prism if needed, starts it on a free port and waits until it accepts connections.
    pub fn start() -> Result<Self> {
        ensure_installed()?;
        let dir = install_dir();
        // A free port can be taken between asking and binding; try again then.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::start_once(&dir) {
                Ok(prism) => return Ok(prism),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("prism did not start")))
    }

    fn start_once(dir: &Path) -> Result<Self> {
        let port = free_tcp_port()?;
        let log_dir = tempfile::Builder::new()
            .prefix("plugkit-prism-")
            .tempdir()?;
        let log = log_dir.path().join("prism.log");
        // Prism logs every route at start and every request: a pipe nobody
        // reads would fill up and stall it, so it writes to a file.
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let started = Instant::now();
        let mut child = ChildGuard::spawn(
            "prism",
            Command::new(dir.join(PRISM))
                .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
                .arg(dir.join(SPEC))
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        )?;
        if let Err(error) = wait_for_tcp("prism", port, READY_LIMIT, Some(&mut child)) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(error.context(format!(
                "prism did not start; its log ends:\n{}",
                tail.join("\n")
            )));
        }
        Ok(Self {
            port,
            log,
            startup: started.elapsed(),
            _child: child,
            _dir: log_dir,
        })
    }

    /// `http://127.0.0.1:<port>`, to use as the Twilio API base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Prism's log (startup, and one validation report per request);
    /// removed on drop.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log's text, to show why Prism refused a request.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How long Prism took to accept connections.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }
}

/// `<cargo target directory>/peers/prism`, or `$PLUGKIT_PEERS_DIR/prism`.
pub fn install_dir() -> PathBuf {
    let peers = std::env::var_os("PLUGKIT_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("peers"));
    peers.join("prism")
}

/// The path of Twilio's 2010-04-01 spec inside the install directory.
pub fn spec_path() -> PathBuf {
    install_dir().join(SPEC)
}

fn is_installed() -> bool {
    let dir = install_dir();
    dir.join(PRISM).is_file() && dir.join(SPEC).is_file()
}

/// Runs the install script once per process when Prism is missing; tests
/// running in parallel wait for the first one's install.
fn ensure_installed() -> Result<()> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if is_installed() {
        return Ok(());
    }
    let script = workspace_root().join("tests/peers/install-prism.sh");
    let dir = install_dir();
    let mut command = Command::new("bash");
    command.arg(&script);
    // The script would ask cargo too; tell it, so both agree whatever cargo is on PATH.
    if let Some(peers) = dir.parent() {
        command.env("PLUGKIT_PEERS_DIR", peers);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() || !is_installed() {
        bail!(
            "installing Prism failed: run `bash tests/peers/install-prism.sh` (needs npm and the npm registry)\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
