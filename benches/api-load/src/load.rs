//! The load loop: `connections` workers, each on one HTTP/1.1 keep-alive
//! connection, share a budget of requests to one path and record each
//! request's latency and whether its answer was the expected one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A credential the load presents, and which paths it may read.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    /// The bearer secret.
    pub(crate) token: String,
    /// Path prefixes it is allowed to read; empty means every path.
    pub(crate) allowed: Vec<String>,
}

impl Credential {
    /// `TOKEN` or `TOKEN,/api/plugins,/metrics` (the paths it may read).
    pub(crate) fn parse(text: &str) -> Self {
        let mut parts = text.split(',');
        let token = parts.next().unwrap_or_default().to_owned();
        Self {
            token,
            allowed: parts.map(str::to_owned).collect(),
        }
    }

    /// The status the daemon should answer `path` with for this credential.
    pub(crate) fn expected(&self, path: &str) -> StatusCode {
        if self.allowed.is_empty() || self.allowed.iter().any(|p| path.starts_with(p.as_str())) {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        }
    }
}

/// What one endpoint's run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) requests: usize,
    /// Connection errors and answers other than the expected status.
    pub(crate) failed: usize,
    /// Answers 2xx where a refusal was expected.
    pub(crate) misauthorised: usize,
    pub(crate) elapsed: Duration,
    /// Sorted latencies of the answered requests.
    pub(crate) latencies: Vec<Duration>,
    pub(crate) first_failure: Option<String>,
}

impl Outcome {
    pub(crate) fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of the latencies (nearest rank), in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.latencies.len() as f64) * q).ceil().max(1.0) as usize;
        self.latencies[rank.min(self.latencies.len()) - 1].as_secs_f64() * 1000.0
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request; its status, or why it got none.
async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> Result<StatusCode> {
    sender.ready().await.context("connection closed")?;
    let request = Request::get(path)
        .header(HOST, addr.to_string())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// Sends `requests` GETs of `path` over `connections` connections,
/// cycling through `credentials`.
pub(crate) async fn run(
    addr: SocketAddr,
    path: &str,
    requests: usize,
    connections: usize,
    credentials: &[Credential],
) -> Result<Outcome> {
    let budget = Arc::new(AtomicUsize::new(0));
    let credentials: Arc<[Credential]> = credentials.into();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let budget = Arc::clone(&budget);
        let credentials = Arc::clone(&credentials);
        let path = path.to_owned();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut failed, mut misauthorised, mut first_failure) = (0, 0, None);
            let mut sender = None;
            loop {
                let n = budget.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let credential = &credentials[n % credentials.len()];
                let expected = credential.expected(&path);
                let begun = Instant::now();
                let result = async {
                    if sender.is_none() {
                        sender = Some(connect(addr).await?);
                    }
                    let s = sender.as_mut().context("no connection")?;
                    send(s, addr, &path, &credential.token).await
                }
                .await;
                match result {
                    Ok(status) => {
                        latencies.push(begun.elapsed());
                        if status != expected {
                            failed += 1;
                            if status.is_success() {
                                misauthorised += 1;
                            }
                            first_failure.get_or_insert_with(|| {
                                format!("{path}: {status}, expected {expected}")
                            });
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        sender = None;
                        first_failure.get_or_insert_with(|| format!("{path}: {e:#}"));
                    }
                }
            }
            (latencies, failed, misauthorised, first_failure)
        }));
    }
    let mut outcome = Outcome {
        requests,
        failed: 0,
        misauthorised: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(requests),
        first_failure: None,
    };
    for worker in workers {
        let (latencies, failed, misauthorised, first) = worker.await?;
        outcome.latencies.extend(latencies);
        outcome.failed += failed;
        outcome.misauthorised += misauthorised;
        if outcome.first_failure.is_none() {
            outcome.first_failure = first;
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies.sort_unstable();
    Ok(outcome)
}

/// One GET with the first credential: status and body.
pub(crate) async fn get(addr: SocketAddr, path: &str, token: &str) -> Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    sender.ready().await?;
    let request = Request::get(path)
        .header(HOST, addr.to_string())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_without_paths_may_read_everything() {
        let check = |text: &str, path: &str, expected: StatusCode| {
            assert_eq!(
                Credential::parse(text).expected(path),
                expected,
                "{text} {path}"
            );
        };
        check("secret", "/api/plugins", StatusCode::OK);
        check("secret,/api/plugins", "/api/plugins", StatusCode::OK);
        check("secret,/api/plugins", "/api/audit", StatusCode::FORBIDDEN);
        check(
            "secret,/api/tenants,/metrics",
            "/api/tenants/acme",
            StatusCode::OK,
        );
    }
}
