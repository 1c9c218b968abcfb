//! A real Prometheus server (Debian's `prometheus` package, installed by
//! `tests/peers/install-prometheus.sh`) on a free 127.0.0.1 port, scraping
//! one target every second with a bearer token, its storage in a temporary
//! directory; killed and its files removed on drop. The packaged service
//! is never used.
//!
//! Queries its HTTP API (`/api/v1/query`) by hand over HTTP/1.0, so the
//! testkit needs no HTTP client.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tempfile::TempDir;

use crate::process::{find_program, free_tcp_port, wait_for_tcp, wait_until, ChildGuard};

/// A running Prometheus server; killed and its files removed on drop.
pub struct Prometheus {
    port: u16,
    // Field order matters: the process dies before its directory goes.
    _child: ChildGuard,
    dir: TempDir,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// One series of a query's answer: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Every label, `__name__` included.
    pub labels: BTreeMap<String, String>,
    /// The sample's value.
    pub value: f64,
}

/// The `prometheus` binary: `$PLUGKIT_PROMETHEUS`, else on PATH.
pub fn prometheus_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PLUGKIT_PROMETHEUS") {
        return Ok(PathBuf::from(path));
    }
    find_program("prometheus", &[]).context(
        "Prometheus is not installed: run `sudo bash tests/peers/install-prometheus.sh` \
         (Debian package `prometheus`)",
    )
}

impl Prometheus {
    /// Starts a server scraping `http://<target><path>` every second with
    /// `Authorization: Bearer <token>`, and waits until it is ready.
    pub fn scraping(target: &str, path: &str, token: &str) -> Result<Self> {
        let binary = prometheus_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("plugkit-prometheus-")
            .tempdir()?;
        let port = free_tcp_port()?;
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token)?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: isp-daemon\n    metrics_path: {path}\n\
                 \x20   authorization:\n      type: Bearer\n      credentials_file: {}\n\
                 \x20   static_configs:\n      - targets: ['{target}']\n",
                token_file.display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let mut child = ChildGuard::spawn(
            "prometheus",
            Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        wait_for_tcp(
            "Prometheus",
            port,
            Duration::from_secs(60),
            Some(&mut child),
        )?;
        let server = Self {
            port,
            _child: child,
            dir,
        };
        let mut child_ready = || server.get("/-/ready").is_ok_and(|(s, _)| s == 200);
        wait_until(
            "Prometheus /-/ready",
            Duration::from_secs(60),
            None,
            &mut child_ready,
        )
        .with_context(|| server.log_tail())?;
        Ok(server)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// An instant query through `/api/v1/query`: the vector's series.
    pub fn query(&self, expr: &str) -> Result<Vec<Series>> {
        let (status, body) = self.get(&format!("/api/v1/query?query={}", percent_encode(expr)))?;
        let answer: Value = serde_json::from_str(&body)
            .with_context(|| format!("Prometheus answered {status} with non-JSON: {body}"))?;
        if answer["status"] != "success" {
            bail!("Prometheus refused the query {expr:?}: {body}");
        }
        let mut out = Vec::new();
        for item in answer["data"]["result"].as_array().into_iter().flatten() {
            let labels = item["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let value = item["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .with_context(|| format!("a sample without a value: {item}"))?;
            out.push(Series { labels, value });
        }
        Ok(out)
    }

    /// The scrape targets' health as `/api/v1/targets` reports it.
    pub fn targets(&self) -> Result<Value> {
        let (_, body) = self.get("/api/v1/targets")?;
        Ok(serde_json::from_str(&body)?)
    }

    fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw)?;
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .context("Prometheus's answer has no header end")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("Prometheus's answer has no status")?;
        Ok((status, body.to_owned()))
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
