//! How an admin route answers: a JSON value, or a [`Problem`] as its status
//! code and JSON body; and the one way a handler runs blocking daemon work.
//!
//! Every route module (`api`, `webhooks::admin`, `provisioning`) answers
//! through this module, so the bound on concurrent blocking work
//! (`limits::MAX_BLOCKING`) and the error shape hold for all of them.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{status_of, Problem};

/// A refused or failed request, answered as `status_of(kind)` with the
/// problem's JSON body (`{"error", "tenant"?, "plugin"?, ...}`).
pub(crate) struct ApiError(pub(crate) Problem);

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self(problem)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (status_of(self.0.kind), Json(self.0)).into_response()
    }
}

/// A route's answer: a JSON value (200) or a problem.
pub(crate) type ApiResult = Result<Json<Value>, ApiError>;

/// Runs blocking daemon work off the async threads, at most
/// `limits::MAX_BLOCKING` at once, in the request's log span. A worker that
/// panics answers 500 naming the failure.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = crate::limits::blocking_permit().await;
    let span = tracing::Span::current();
    let work = move || {
        let _permit = permit;
        span.in_scope(work)
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ApiError),
        Err(e) => Err(ApiError(Problem::internal(format!(
            "the request's worker failed: {e}"
        )))),
    }
}

/// [`blocking`] for work whose answer is a JSON value.
pub(crate) async fn blocking_json(
    work: impl FnOnce() -> Result<Value, Problem> + Send + 'static,
) -> ApiResult {
    blocking(work).await.map(Json)
}

/// Parses a JSON body; a malformed one is a 400 naming `what` was expected
/// and the parser's complaint.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(Problem::bad_request(format!(
            "the body is not a valid {what}: {e}"
        )))
    })
}

/// Parses a flow request body; a malformed one is a 400 naming every
/// missing, mistyped or unknown field and the expected shape
/// ([`crate::requests::parse_request`]).
pub(crate) fn parse_flow_body<T: crate::requests::RequestShape>(
    body: &Bytes,
) -> Result<T, ApiError> {
    crate::requests::parse_request(body).map_err(|e| ApiError(Problem::bad_request(e)))
}
