//! Guards that keep slow, oversized or too many requests from exhausting
//! the daemon: the HTTP/1.1 server loop with a header read timeout and a
//! cap on open connections, the body read timeout and size limit, and the
//! bound on blocking work the handlers run at once.
//!
//! Invariants:
//! - A client that opens a connection and sends its header slowly (or not
//!   at all) is cut off after [`HEADER_TIMEOUT`]; a body that trickles is
//!   cut off after [`BODY_TIMEOUT`] with a 408. Test:
//!   `daemon::limits::a_silent_connection_is_closed_after_the_header_timeout`.
//! - At most [`MAX_CONNECTIONS`] connections are served; more wait in the
//!   kernel's accept queue instead of costing memory here.
//! - At most [`MAX_BLOCKING`] handlers run blocking daemon work at once;
//!   the others wait their turn (see `api::blocking`), so a burst of heavy
//!   requests costs bounded memory and threads.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How long a client has to send a request's header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Handlers running blocking daemon work at once.
pub const MAX_BLOCKING: usize = 32;

/// The permit to run blocking work; waits while [`MAX_BLOCKING`] run.
pub async fn blocking_permit() -> Option<OwnedSemaphorePermit> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    let permits = PERMITS.get_or_init(|| Arc::new(Semaphore::new(MAX_BLOCKING)));
    // The semaphore is never closed, so this is always a permit.
    Arc::clone(permits).acquire_owned().await.ok()
}

/// The largest request body a JSON or webhook route reads: axum's default
/// (`DefaultBodyLimit`, 2 MiB), named here for the 413's words. Not set as
/// a layer: with an explicit `DefaultBodyLimit` layer, the scope walks
/// (`keys::every_route_…`, `api::every_api_route_answers_401_…`) failed
/// with "Peer disconnected" on reused connections in 2 of 2 loaded runs,
/// and passed in 2 of 2 without it; why was not found. Package uploads
/// have their own limit.
pub(crate) const BODY_LIMIT_BYTES: usize = 2 * 1024 * 1024;

/// The body read timeout (a trickling body answers 408); the size limit
/// is `BODY_LIMIT_BYTES`, which every `Bytes` extractor enforces.
pub fn body_timeout() -> RequestBodyTimeoutLayer {
    RequestBodyTimeoutLayer::new(BODY_TIMEOUT)
}

/// Serves `router` on `listener` over HTTP/1.1 until `shutdown`
/// completes, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away or times out is not an error of ours.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
