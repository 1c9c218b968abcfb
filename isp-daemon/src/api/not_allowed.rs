//! The 405 answer: which route, which methods it takes, and an `Allow`
//! header (RFC 9110 §15.5.6), for every route of the daemon (`/api`, the
//! page, `/metrics`, the public webhook routes).
//!
//! axum's method routers set `Allow` themselves, as the last step of a
//! route's answer (outside every `Router::layer`); so this middleware wraps
//! the finished router as a whole (`around`) and writes the JSON body from
//! that header, since a router's fallback does not know the request.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

use crate::error::{Problem, ProblemKind};

/// Rewrites a 405 into a JSON problem naming `METHOD path` and the methods
/// of its `Allow` header (HEAD left out of the words: it follows GET).
async fn explain_405(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let methods: Vec<&str> = allow
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != "HEAD")
        .collect();
    let error = if methods.is_empty() {
        format!("{method} {path} is not a method this route takes")
    } else {
        format!(
            "{method} {path} is not allowed: this route takes {} (see the `Allow` header)",
            methods.join(", ")
        )
    };
    let mut answer = (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(Problem::new(ProblemKind::BadRequest, error)),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        answer.headers_mut().insert(header::ALLOW, value);
    }
    answer
}

/// `router` inside [`explain_405`]: the one place a 405 is answered.
pub(super) fn around(router: Router) -> Router {
    use tower::Layer as _;
    Router::new().fallback_service(axum::middleware::from_fn(explain_405).layer(router))
}
