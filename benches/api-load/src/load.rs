//! The load loop: `connections` workers, each on one HTTP/1.1 keep-alive
//! connection, share a budget of requests over a list of paths and a list
//! of credentials, and record each request's latency per path and whether
//! its answer was the one the credential's scopes call for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The scope a read path needs, as the daemon's route table declares it
/// (README "The admin API"); kept here by hand so that the load test checks
/// the daemon against an independent copy.
pub(crate) fn scope_of(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/metrics" {
        "metrics:read"
    } else if path.starts_with("/api/tenants") {
        "tenants:read"
    } else if path.starts_with("/api/audit") {
        "audit:read"
    } else if path.starts_with("/api/webhooks") {
        "webhooks:manage"
    } else {
        "plugins:read"
    }
}

/// A credential the load presents, and the scopes it carries.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    /// What the tables call it.
    pub(crate) name: String,
    /// The bearer secret.
    pub(crate) token: String,
    /// Its scopes; the admin token has none (it only manages keys).
    pub(crate) scopes: Vec<String>,
}

impl Credential {
    /// The status the daemon should answer `path` with for this credential.
    pub(crate) fn expected(&self, path: &str) -> StatusCode {
        if self.scopes.iter().any(|s| s == scope_of(path)) {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        }
    }
}

/// What one path measured in a run.
#[derive(Debug, Default)]
pub(crate) struct PathOutcome {
    pub(crate) requests: usize,
    /// Answered as expected with 200.
    pub(crate) ok: usize,
    /// Answered as expected with 403 (a key without the route's scope).
    pub(crate) refused: usize,
    /// Connection errors and answers other than the expected status, other
    /// than the two authorisation mix-ups below.
    pub(crate) failed: usize,
    /// 2xx where 403 was expected, or 403 where 200 was expected.
    pub(crate) misauthorised: usize,
    /// Sorted latencies of the answered requests.
    pub(crate) latencies: Vec<Duration>,
    pub(crate) first_failure: Option<String>,
}

impl PathOutcome {
    /// The `q` quantile of the latencies (nearest rank), in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.latencies.len() as f64) * q).ceil().max(1.0) as usize;
        self.latencies[rank.min(self.latencies.len()) - 1].as_secs_f64() * 1000.0
    }

    fn record(
        &mut self,
        path: &str,
        expected: StatusCode,
        result: &Result<StatusCode>,
        took: Duration,
    ) {
        self.requests += 1;
        match result {
            Ok(status) => {
                self.latencies.push(took);
                if *status == expected {
                    if status.is_success() {
                        self.ok += 1;
                    } else {
                        self.refused += 1;
                    }
                    return;
                }
                let mixup = (status.is_success() && expected == StatusCode::FORBIDDEN)
                    || (*status == StatusCode::FORBIDDEN && expected.is_success());
                if mixup {
                    self.misauthorised += 1;
                } else {
                    self.failed += 1;
                }
                self.first_failure
                    .get_or_insert_with(|| format!("{path}: {status}, expected {expected}"));
            }
            Err(e) => {
                self.failed += 1;
                self.first_failure
                    .get_or_insert_with(|| format!("{path}: {e:#}"));
            }
        }
    }

    fn merge(&mut self, other: Self) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.refused += other.refused;
        self.failed += other.failed;
        self.misauthorised += other.misauthorised;
        self.latencies.extend(other.latencies);
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// What one run measured: per path (in the order given), and its length.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) paths: Vec<(String, PathOutcome)>,
    pub(crate) elapsed: Duration,
}

impl Outcome {
    /// Requests per second of the whole run for `path`'s share.
    pub(crate) fn throughput(&self, path: &PathOutcome) -> f64 {
        path.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Every path together.
    pub(crate) fn total(&self) -> PathOutcome {
        let mut total = PathOutcome::default();
        for (_, p) in &self.paths {
            total.merge(PathOutcome {
                requests: p.requests,
                ok: p.ok,
                refused: p.refused,
                failed: p.failed,
                misauthorised: p.misauthorised,
                latencies: p.latencies.clone(),
                first_failure: p.first_failure.clone(),
            });
        }
        total.latencies.sort_unstable();
        total
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
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

/// One request; its status and body, or why it got none.
async fn send(
    sender: &mut Sender,
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Result<(StatusCode, Bytes)> {
    sender.ready().await.context("connection closed")?;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(AUTHORIZATION, format!("Bearer {token}"));
    let bytes = match body {
        Some(json) => {
            request = request.header(CONTENT_TYPE, "application/json");
            Bytes::from(serde_json::to_vec(json)?)
        }
        None => Bytes::new(),
    };
    let response = sender.send_request(request.body(Full::new(bytes))?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Sends `requests` GETs over `connections` connections: request `n` goes
/// to `paths[n % paths.len()]` with `credentials[(n / paths.len()) %
/// credentials.len()]`, so every path sees every credential.
pub(crate) async fn run(
    addr: SocketAddr,
    paths: &[String],
    requests: usize,
    connections: usize,
    credentials: &[Credential],
) -> Result<Outcome> {
    let budget = Arc::new(AtomicUsize::new(0));
    let credentials: Arc<[Credential]> = credentials.into();
    let paths: Arc<[String]> = paths.into();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let budget = Arc::clone(&budget);
        let credentials = Arc::clone(&credentials);
        let paths = Arc::clone(&paths);
        workers.push(tokio::spawn(async move {
            let mut outcomes: Vec<PathOutcome> =
                paths.iter().map(|_| PathOutcome::default()).collect();
            let mut sender = None;
            loop {
                let n = budget.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let which = n % paths.len();
                let path = &paths[which];
                let credential = &credentials[(n / paths.len()) % credentials.len()];
                let expected = credential.expected(path);
                let begun = Instant::now();
                let result = async {
                    if sender.is_none() {
                        sender = Some(connect(addr).await?);
                    }
                    let s = sender.as_mut().context("no connection")?;
                    send(s, addr, Method::GET, path, &credential.token, None)
                        .await
                        .map(|(status, _)| status)
                }
                .await;
                if result.is_err() {
                    sender = None;
                }
                outcomes[which].record(path, expected, &result, begun.elapsed());
            }
            outcomes
        }));
    }
    let mut merged: Vec<PathOutcome> = paths.iter().map(|_| PathOutcome::default()).collect();
    for worker in workers {
        for (mine, theirs) in merged.iter_mut().zip(worker.await?) {
            mine.merge(theirs);
        }
    }
    let elapsed = started.elapsed();
    for p in &mut merged {
        p.latencies.sort_unstable();
    }
    Ok(Outcome {
        paths: paths.iter().cloned().zip(merged).collect(),
        elapsed,
    })
}

/// One request on a fresh connection: status and body.
pub(crate) async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    send(&mut sender, addr, method, path, token, body).await
}

/// One GET on a fresh connection: status and body.
pub(crate) async fn get(addr: SocketAddr, path: &str, token: &str) -> Result<(StatusCode, Bytes)> {
    request(addr, Method::GET, path, token, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(scopes: &[&str]) -> Credential {
        Credential {
            name: "test".to_owned(),
            token: String::new(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_credential_may_read_the_paths_its_scopes_name() {
        let check = |scopes: &[&str], path: &str, expected: StatusCode| {
            assert_eq!(
                credential(scopes).expected(path),
                expected,
                "{scopes:?} {path}"
            );
        };
        check(&["plugins:read"], "/api/plugins", StatusCode::OK);
        check(&["plugins:read"], "/api/health", StatusCode::OK);
        check(&["plugins:read"], "/api/audit", StatusCode::FORBIDDEN);
        check(&["tenants:read"], "/api/tenants/acme", StatusCode::OK);
        check(&["tenants:read"], "/metrics", StatusCode::FORBIDDEN);
        check(&["metrics:read"], "/metrics", StatusCode::OK);
        check(&["audit:read"], "/api/audit?limit=5", StatusCode::OK);
        // The admin token carries no scope: every read route refuses it.
        check(&[], "/api/health", StatusCode::FORBIDDEN);
    }

    #[test]
    fn answers_are_sorted_into_expected_refused_failed_and_misauthorised() {
        let mut p = PathOutcome::default();
        let took = Duration::from_millis(1);
        p.record("/a", StatusCode::OK, &Ok(StatusCode::OK), took);
        p.record(
            "/a",
            StatusCode::FORBIDDEN,
            &Ok(StatusCode::FORBIDDEN),
            took,
        );
        p.record("/a", StatusCode::FORBIDDEN, &Ok(StatusCode::OK), took);
        p.record("/a", StatusCode::OK, &Ok(StatusCode::FORBIDDEN), took);
        p.record(
            "/a",
            StatusCode::OK,
            &Ok(StatusCode::TOO_MANY_REQUESTS),
            took,
        );
        p.record("/a", StatusCode::OK, &Err(anyhow::anyhow!("reset")), took);
        assert_eq!(
            (p.requests, p.ok, p.refused, p.misauthorised, p.failed),
            (6, 1, 1, 2, 2)
        );
        assert_eq!(p.latencies.len(), 5);
    }
}
