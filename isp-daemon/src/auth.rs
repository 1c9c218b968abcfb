//! Who may call which `/api` route: the route table's entry type, and the
//! guard every entry's handler runs behind (bearer credential, scope, rate
//! limit, content type).
//!
//! Invariants:
//! - The `/api` router is built only from a table of `ApiRoute`s, and an
//!   `ApiRoute` cannot be made without a [`Need`]: a route without a scope
//!   cannot exist (`api::tests::the_api_router_is_built_only_from_the_scope_table`,
//!   and `tests/daemon/keys.rs` walks every entry with and without its scope).
//! - The admin token opens only [`Need::AdminToken`] routes (`/api/keys`);
//!   an API key never opens them, so no key can mint a stronger key.
//! - A refusal (401, 403, 415, 429) is decided before the handler runs, is a
//!   JSON problem, and never echoes the credential; every answer to a known
//!   key (refusals too) carries the `RateLimit-*` headers, a 429 also
//!   `Retry-After` (`keys::a_refused_answer_to_a_known_key_carries_the_rate_limit_headers`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Problem, ProblemKind};
use crate::keys::{Caller, KeyStore, Refusal, Scope, ShapeError};
use crate::ratelimit::RateLimits;

/// The admin token, kept only as a digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    /// The token that grants access to `/api/keys`.
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the token, in time independent of both.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// An API key holding this scope.
    Scope(Scope),
    /// The bootstrap admin token (key management only).
    AdminToken,
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Scope(scope) => write!(f, "scope `{scope}`"),
            Need::AdminToken => f.write_str("the admin token"),
        }
    }
}

/// What a route's body must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Empty, or JSON (`Content-Type: application/json` or `…+json`); else 415.
    Json,
    /// Anything (the handler checks it).
    Any,
}

/// One entry of the route table.
pub(crate) struct ApiRoute<S> {
    /// The method.
    pub(crate) method: Method,
    /// The path under `/api`, in axum's syntax (`/tenants/{tenant}`).
    pub(crate) path: &'static str,
    /// Who may call it.
    pub(crate) need: Need,
    /// What its body must be.
    pub(crate) body: BodyKind,
    handler: MethodRouter<S>,
}

impl<S: Clone + Send + Sync + 'static> ApiRoute<S> {
    fn new(method: Method, path: &'static str, need: Need, handler: MethodRouter<S>) -> Self {
        Self {
            method,
            path,
            need,
            body: BodyKind::Json,
            handler,
        }
    }

    /// `GET path`.
    pub(crate) fn get<H: Handler<T, S>, T: 'static>(path: &'static str, need: Need, h: H) -> Self {
        Self::new(Method::GET, path, need, routing::get(h))
    }

    /// `POST path`.
    pub(crate) fn post<H: Handler<T, S>, T: 'static>(path: &'static str, need: Need, h: H) -> Self {
        Self::new(Method::POST, path, need, routing::post(h))
    }

    /// `PUT path`.
    pub(crate) fn put<H: Handler<T, S>, T: 'static>(path: &'static str, need: Need, h: H) -> Self {
        Self::new(Method::PUT, path, need, routing::put(h))
    }

    /// `DELETE path`.
    pub(crate) fn delete<H: Handler<T, S>, T: 'static>(
        path: &'static str,
        need: Need,
        h: H,
    ) -> Self {
        Self::new(Method::DELETE, path, need, routing::delete(h))
    }

    /// The same route taking any body (an upload), not only JSON.
    #[allow(
        dead_code,
        reason = "for upload routes, e.g. issue 17's package upload, merged from another branch"
    )]
    pub(crate) fn any_body(mut self) -> Self {
        self.body = BodyKind::Any;
        self
    }
}

/// What the guard checks credentials against.
#[derive(Debug)]
pub(crate) struct AuthState {
    /// The bootstrap token.
    pub(crate) admin: AdminToken,
    /// The API keys.
    pub(crate) keys: Arc<KeyStore>,
    /// Per key and scope.
    pub(crate) limits: Arc<RateLimits>,
}

#[derive(Clone)]
struct Guard {
    auth: Arc<AuthState>,
    need: Need,
    body: BodyKind,
}

/// The router of `table`, every route behind its guard. Two entries with
/// the same method and path panic here, at start-up (axum's merge).
pub(crate) fn build<S: Clone + Send + Sync + 'static>(
    table: Vec<ApiRoute<S>>,
    auth: &Arc<AuthState>,
) -> Router<S> {
    table.into_iter().fold(Router::new(), |router, route| {
        let guard = Guard {
            auth: Arc::clone(auth),
            need: route.need,
            body: route.body,
        };
        router.route(
            route.path,
            route
                .handler
                .route_layer(middleware::from_fn_with_state(guard, guard_route)),
        )
    })
}

/// The presented bearer credential. The scheme is matched without regard
/// to case (RFC 9110 §11.1); surrounding spaces are ignored.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or("this route needs `Authorization: Bearer <API key>`")?
        .to_str()
        .map_err(|_| "the Authorization header is not visible ASCII")?
        .trim();
    let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the Authorization header must use the Bearer scheme: `Bearer <API key>`");
    }
    let credential = credential.trim();
    if credential.is_empty() {
        return Err("the Authorization header has no credential after `Bearer`");
    }
    Ok(credential)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn guard_route(State(g): State<Guard>, mut request: Request, next: Next) -> Response {
    let credential = match bearer(request.headers()) {
        Ok(c) => c,
        Err(why) => return unauthorized(why),
    };
    let scope = match g.need {
        Need::AdminToken => {
            if g.auth.admin.matches(credential) {
                // As the audit log names it (`api::keys_api`).
                tracing::Span::current().record("key_id", "admin-token");
                if let Some(refused) = wrong_content_type(g.body, request.headers()) {
                    return refused;
                }
                return next.run(request).await;
            }
            if crate::keys::check_shape(credential).is_ok() {
                return forbidden(
                    "API keys cannot manage API keys; these routes take the admin token".to_owned(),
                );
            }
            return unauthorized("the bearer credential is not the admin token");
        }
        Need::Scope(scope) => scope,
    };
    let caller: Caller = match g.auth.keys.authenticate(credential, now_secs()) {
        Ok(caller) => caller,
        Err(Refusal::Malformed(ShapeError::Prefix)) if g.auth.admin.matches(credential) => {
            return forbidden(format!(
                "the admin token only manages API keys; create a key with the scope `{scope}` \
                 (POST /api/keys) and call this route with it"
            ))
        }
        Err(refusal) => return unauthorized(&refusal.to_string()),
    };
    // The request log's span (`telemetry`) names the key on every line,
    // never its secret.
    tracing::Span::current().record("key_id", &*caller.id);
    // Every request of a known key counts against its bucket for the
    // route's scope, refused ones too, so every answer to it carries the
    // rate-limit headers (and a flood of refused requests is limited).
    let verdict = g.auth.limits.check(scope, &caller.id);
    let mut response = if !verdict.allowed {
        let mut refused = problem(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "API key {} is over its rate limit for `{scope}` ({} requests at once); retry \
                 after {} s",
                caller.id, verdict.limit, verdict.retry_after_secs
            ),
        );
        refused.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(verdict.retry_after_secs),
        );
        refused
    } else if !caller.scopes.contains(scope) {
        forbidden(format!(
            "API key {} lacks the scope `{scope}` this route needs; ask the operator for a key \
             with it",
            caller.id
        ))
    } else if let Some(refused) = wrong_content_type(g.body, request.headers()) {
        refused
    } else {
        let key = Arc::clone(&caller.id);
        request.extensions_mut().insert(caller);
        let method = request.method().clone();
        let response = next.run(request).await;
        tracing::debug!(key = %key, %method, status = response.status().as_u16(), "api request");
        response
    };
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(verdict.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(verdict.reset_secs));
    response
}

/// A 415 when a JSON route gets a non-empty body that is not JSON.
fn wrong_content_type(kind: BodyKind, headers: &HeaderMap) -> Option<Response> {
    if kind == BodyKind::Any {
        return None;
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if !has_body {
        return None;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        return None;
    }
    let shown = if content_type.is_empty() {
        "no Content-Type".to_owned()
    } else {
        format!("Content-Type {content_type:?}")
    };
    Some(problem(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("this route takes a JSON body; the request has {shown}; send `Content-Type: application/json`"),
    ))
}

fn problem(status: StatusCode, message: String) -> Response {
    let kind = if status.is_server_error() {
        ProblemKind::Internal
    } else {
        ProblemKind::BadRequest
    };
    (status, Json(Problem::new(kind, message))).into_response()
}

fn forbidden(message: String) -> Response {
    problem(StatusCode::FORBIDDEN, message)
}

/// A 401 with `WWW-Authenticate: Bearer`.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = problem(StatusCode::UNAUTHORIZED, message.to_owned());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"isp-daemon\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: Option<&str>, expected: Result<&str, &str>) {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("value"),
            );
        }
        match (bearer(&headers), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{value:?}"),
            (Err(got), Err(part)) => assert!(got.contains(part), "{value:?}: {got}"),
            (got, want) => panic!("{value:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        check(Some("Bearer abc"), Ok("abc"));
        check(Some("bearer abc"), Ok("abc"));
        check(Some("BEARER abc"), Ok("abc"));
        check(Some("bEaReR   abc  "), Ok("abc"));
        check(None, Err("needs `Authorization: Bearer"));
        check(Some("Basic YWJj"), Err("Bearer scheme"));
        check(Some("Bearerabc"), Err("Bearer scheme"));
        check(Some("Bearer"), Err("no credential"));
        check(Some("Bearer   "), Err("no credential"));
    }

    #[test]
    fn only_the_token_itself_matches() {
        let token = AdminToken::new("s3cret-token");
        assert!(token.matches("s3cret-token"));
        for wrong in [
            "",
            "s3cret",
            "s3cret-token ",
            "S3CRET-TOKEN",
            "s3cret-tokenx",
        ] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
    }

    #[test]
    fn a_json_route_refuses_a_body_of_another_type() {
        let check = |content_type: Option<&str>, length: &str, refused: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from_str(length).expect("len"),
            );
            if let Some(t) = content_type {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(t).expect("type"),
                );
            }
            assert_eq!(
                wrong_content_type(BodyKind::Json, &headers).is_some(),
                refused,
                "{content_type:?} {length}"
            );
            assert!(wrong_content_type(BodyKind::Any, &headers).is_none());
        };
        check(Some("application/json"), "2", false);
        check(Some("Application/JSON; charset=utf-8"), "2", false);
        check(Some("application/merge-patch+json"), "2", false);
        check(Some("text/plain"), "2", true);
        check(Some("application/x-www-form-urlencoded"), "2", true);
        check(None, "2", true);
        check(None, "0", false);
        check(Some("text/plain"), "0", false);
    }
}
