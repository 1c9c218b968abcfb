//! The admin HTTP API (axum) and the admin page.
//!
//! Every `/api` route needs `Authorization: Bearer <token>`, compared in
//! constant time (as SHA-256 digests, so the length is not revealed
//! either); without it the answer is 401. `GET /` serves the admin page,
//! which holds no data of its own: it calls the API with the token the
//! operator gives it.
//!
//! Every error is a JSON body `{"error": "...", "tenant"?, "plugin"?}` with
//! a 4xx status for bad input and 5xx for failures. Handlers run the
//! daemon's blocking methods on blocking threads.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::daemon::Daemon;
use crate::error::{Problem, ProblemKind};
use crate::flows::{self, DeviceAlertRequest, NewCustomer, TierChangeRequest};

/// The admin page, a single static file.
const PAGE: &str = include_str!("page.html");
/// Who the audit log names for changes made through the API.
const ACTOR: &str = "admin-api";

/// The admin token, kept only as a digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    /// The token that grants access.
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the token, in time independent of both.
    fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

#[derive(Clone)]
struct AppState {
    daemon: Arc<Daemon>,
    token: AdminToken,
}

struct ApiError(Problem);

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self(problem)
    }
}

fn status_of(kind: ProblemKind) -> StatusCode {
    match kind {
        ProblemKind::BadRequest => StatusCode::BAD_REQUEST,
        ProblemKind::Forbidden => StatusCode::FORBIDDEN,
        ProblemKind::NotFound => StatusCode::NOT_FOUND,
        ProblemKind::Conflict => StatusCode::CONFLICT,
        ProblemKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (status_of(self.0.kind), Json(self.0)).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Runs blocking daemon work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ApiError),
        Err(e) => Err(ApiError(Problem::internal(format!(
            "the request's worker failed: {e}"
        )))),
    }
}

/// Parses a JSON body; a malformed one is a 400 naming the problem.
fn parse_body<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(Problem::bad_request(format!(
            "the body is not a valid {what}: {e}"
        )))
    })
}

/// The admin API and page for `daemon`.
pub fn router(daemon: Arc<Daemon>, token: AdminToken) -> Router {
    let state = AppState { daemon, token };
    let api = Router::new()
        .route("/daemon", get(daemon_info))
        .route("/plugins", get(plugins))
        .route("/plugins/{plugin}/reload", post(reload))
        .route("/plugins/{plugin}/release", post(release_quarantine))
        .route("/tenants", get(tenants))
        .route("/tenants/{tenant}", get(tenant))
        .route(
            "/tenants/{tenant}/plugins/{plugin}/activate",
            post(activate),
        )
        .route(
            "/tenants/{tenant}/plugins/{plugin}/deactivate",
            post(deactivate),
        )
        .route(
            "/tenants/{tenant}/plugins/{plugin}/config",
            get(get_config).put(put_config),
        )
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/graph", get(graph_json))
        .route("/graph.dot", get(graph_dot))
        .route("/audit", get(audit))
        .route("/flows/new-customer", post(new_customer))
        .route("/flows/device-alert", post(device_alert))
        .route("/flows/tier-change", post(tier_change))
        .merge(crate::provisioning::routes(|s: &AppState| {
            Arc::clone(&s.daemon)
        }))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    Router::new()
        .route("/", get(page))
        .nest("/api", api)
        .fallback(no_route)
        .layer(middleware::map_response(json_errors))
}

/// The most an error answer's own text is read to rewrap it.
const ERROR_TEXT_LIMIT: usize = 16 * 1024;

/// Makes every error answer a JSON problem, including the ones axum writes
/// itself as plain text or leaves empty: a path segment that is not UTF-8
/// once unescaped, a method a route does not take, a body over the limit.
/// The status and the other headers (`Allow`, `WWW-Authenticate`) are kept.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (kind, error) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            ProblemKind::BadRequest,
            "this route does not take that method".to_owned(),
        ),
        StatusCode::BAD_REQUEST if text.starts_with("Invalid URL") => (
            ProblemKind::BadRequest,
            format!(
                "the request path is not valid ({text}); percent-escape each path segment as \
                 UTF-8"
            ),
        ),
        _ if status.is_server_error() => {
            (ProblemKind::Internal, format!("the request failed: {text}"))
        }
        _ if text.is_empty() => (
            ProblemKind::BadRequest,
            format!(
                "the request was refused: {}",
                status.canonical_reason().unwrap_or("client error")
            ),
        ),
        _ => (
            ProblemKind::BadRequest,
            format!("the request was refused: {text}"),
        ),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // A struct of strings always serializes.
    let body = serde_json::to_vec(&Problem::new(kind, error)).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if state.token.matches(token) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is not the admin token"),
        None => unauthorized(
            "this endpoint needs `Authorization: Bearer <admin token>`; the daemon printed \
             where its token comes from when it started",
        ),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(Problem::new(ProblemKind::BadRequest, message)),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"isp-daemon\""),
    );
    response
}

async fn no_route() -> ApiError {
    ApiError(Problem::not_found(
        "no such route; the admin API is under /api (see GET / for the admin page)",
    ))
}

async fn wrong_method() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(Problem::new(
            ProblemKind::BadRequest,
            "this route does not take that method",
        )),
    )
        .into_response()
}

async fn page() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'",
        ),
    );
    (headers, Html(PAGE)).into_response()
}

async fn daemon_info(State(s): State<AppState>) -> ApiResult {
    blocking(move || Ok(s.daemon.info())).await.map(Json)
}

async fn plugins(State(s): State<AppState>) -> ApiResult {
    blocking(move || Ok(s.daemon.plugins_overview()))
        .await
        .map(Json)
}

async fn reload(State(s): State<AppState>, Path(plugin): Path<String>) -> ApiResult {
    blocking(move || s.daemon.reload(ACTOR, &plugin))
        .await
        .map(Json)
}

async fn release_quarantine(State(s): State<AppState>, Path(plugin): Path<String>) -> ApiResult {
    blocking(move || s.daemon.release_quarantine(ACTOR, &plugin))
        .await
        .map(Json)
}

async fn tenants(State(s): State<AppState>) -> ApiResult {
    blocking(move || s.daemon.tenants_overview())
        .await
        .map(Json)
}

async fn tenant(State(s): State<AppState>, Path(tenant): Path<String>) -> ApiResult {
    blocking(move || s.daemon.tenant_overview(&tenant))
        .await
        .map(Json)
}

async fn activate(
    State(s): State<AppState>,
    Path((tenant, plugin)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let overrides: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(parse_body(&body, "JSON object of configuration overrides")?)
    };
    blocking(move || {
        s.daemon.activate(ACTOR, &tenant, &plugin, overrides)?;
        s.daemon.tenant_overview(&tenant)
    })
    .await
    .map(Json)
}

async fn deactivate(
    State(s): State<AppState>,
    Path((tenant, plugin)): Path<(String, String)>,
) -> ApiResult {
    blocking(move || {
        s.daemon.deactivate(ACTOR, &tenant, &plugin)?;
        s.daemon.tenant_overview(&tenant)
    })
    .await
    .map(Json)
}

async fn get_config(
    State(s): State<AppState>,
    Path((tenant, plugin)): Path<(String, String)>,
) -> ApiResult {
    blocking(move || {
        let view = s.daemon.plugin_config(&tenant, &plugin)?;
        serde_json::to_value(view).map_err(|e| Problem::internal(e.to_string()))
    })
    .await
    .map(Json)
}

async fn put_config(
    State(s): State<AppState>,
    Path((tenant, plugin)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let overrides: Value = parse_body(&body, "JSON object of configuration overrides")?;
    blocking(move || {
        let view = s.daemon.update_config(ACTOR, &tenant, &plugin, overrides)?;
        serde_json::to_value(view).map_err(|e| Problem::internal(e.to_string()))
    })
    .await
    .map(Json)
}

async fn health(State(s): State<AppState>) -> ApiResult {
    blocking(move || {
        serde_json::to_value(s.daemon.host().health()).map_err(|e| Problem::internal(e.to_string()))
    })
    .await
    .map(Json)
}

async fn metrics(State(s): State<AppState>) -> ApiResult {
    blocking(move || Ok(s.daemon.metrics())).await.map(Json)
}

async fn graph_json(State(s): State<AppState>) -> ApiResult {
    blocking(move || Ok(s.daemon.graph().0)).await.map(Json)
}

async fn graph_dot(State(s): State<AppState>) -> Result<Response, ApiError> {
    let dot = blocking(move || Ok(s.daemon.graph().1)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/vnd.graphviz; charset=utf-8"),
        )],
        dot,
    )
        .into_response())
}

/// `limit=N` from a query string; anything else is a 400.
fn parse_limit(query: Option<&str>) -> Result<Option<usize>, Problem> {
    let mut limit = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("limit", n)) => {
                limit = Some(n.parse::<usize>().map_err(|_| {
                    Problem::bad_request(format!(
                        "`limit` must be a whole number of entries, not {n:?}"
                    ))
                })?);
            }
            _ => {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter {pair:?}; the audit log takes `limit=N`"
                )))
            }
        }
    }
    Ok(limit)
}

async fn audit(State(s): State<AppState>, RawQuery(query): RawQuery) -> ApiResult {
    let limit = parse_limit(query.as_deref()).map_err(ApiError)?;
    blocking(move || s.daemon.audit(limit)).await.map(Json)
}

fn report_json(report: flows::FlowReport) -> Result<Value, Problem> {
    let lines = report.lines();
    let mut value = serde_json::to_value(report).map_err(|e| Problem::internal(e.to_string()))?;
    if let Value::Object(map) = &mut value {
        map.insert("lines".to_owned(), Value::from(lines));
    }
    Ok(value)
}

async fn new_customer(State(s): State<AppState>, body: Bytes) -> ApiResult {
    let request: NewCustomer = parse_body(&body, "new customer")?;
    blocking(move || report_json(flows::new_customer(&s.daemon, &request)?))
        .await
        .map(Json)
}

async fn device_alert(State(s): State<AppState>, body: Bytes) -> ApiResult {
    let request: DeviceAlertRequest = parse_body(&body, "device alert")?;
    blocking(move || report_json(flows::device_alert(&s.daemon, &request)?))
        .await
        .map(Json)
}

async fn tier_change(State(s): State<AppState>, body: Bytes) -> ApiResult {
    let request: TierChangeRequest = parse_body(&body, "tier change")?;
    blocking(move || report_json(flows::change_tier(&s.daemon, ACTOR, &request)?))
        .await
        .map(Json)
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;
    use crate::config::{StandinMode, TrustMode};
    use crate::{Config, StartOptions};

    const TOKEN: &str = "api-unit-test-token";

    /// The router of a daemon with no plugins and no stand-ins.
    fn bare_router() -> (Router, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut config = Config::embedded().expect("embedded configuration");
        config.plugins.dirs = vec![dir.path().join("plugins")];
        config.trust.policy = TrustMode::AllowUnsigned;
        config.trust.key_dirs = Vec::new();
        config.state.dir = Some(dir.path().join("state"));
        config.state.config_dir = Some(dir.path().join("config"));
        config.admin.token = "${env:API_UNIT_TEST_TOKEN}".to_owned();
        config.admin.generate_token_if_unset = false;
        config.standins.twilio = StandinMode::Off;
        config.standins.stripe = StandinMode::Off;
        let options = StartOptions {
            env: [("API_UNIT_TEST_TOKEN".to_owned(), TOKEN.to_owned())].into(),
            ..StartOptions::default()
        };
        let daemon = Daemon::start(config, options).expect("daemon");
        (router(Arc::new(daemon), AdminToken::new(TOKEN)), dir)
    }

    /// Sends `method path` with `body` and the token; checks that the answer
    /// has `status` and is a JSON problem whose message contains `part`.
    fn check_error(
        router: &Router,
        method: &[u8],
        path: &str,
        body: Vec<u8>,
        status: u16,
        part: &str,
    ) {
        let request = Request::builder()
            .method(axum::http::Method::from_bytes(method).expect("method"))
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(axum::body::Body::from(body))
            .expect("request");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (got, content_type, text) = runtime.block_on(async {
            let response = router.clone().oneshot(request).await.expect("answer");
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .unwrap_or_default();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            (
                status,
                content_type,
                String::from_utf8_lossy(&body).into_owned(),
            )
        });
        let what = format!("{} {path}", String::from_utf8_lossy(method));
        assert_eq!(got, status, "{what}: {text}");
        assert_eq!(content_type, "application/json", "{what}: {text}");
        let problem: Value = serde_json::from_str(&text).expect("a JSON body");
        let error = problem["error"].as_str().unwrap_or_default();
        assert!(error.contains(part), "{what}: {error:?} lacks {part:?}");
    }

    /// Found by `cargo xtask fuzz api`: axum answered these in plain text.
    #[test]
    fn a_path_segment_that_is_not_utf8_is_a_json_400_naming_the_path() {
        let (router, _dir) = bare_router();
        let fix = "percent-escape each path segment as UTF-8";
        for path in [
            "/api/tenants/bluesky-ne%FFt/plugins/stripe/deactivate",
            "/api/tenants/acme-fiber/plugins/tw%C0%AFilio/activate",
            "/api/tenants/%80",
            "/api/plugins/%FE%FF/reload",
        ] {
            let method: &[u8] = if path.starts_with("/api/tenants/%80") {
                b"GET"
            } else {
                b"POST"
            };
            check_error(&router, method, path, Vec::new(), 400, fix);
        }
    }

    /// Found by `cargo xtask fuzz api`: `/` answered 405 with an empty body.
    #[test]
    fn a_method_a_route_does_not_take_is_a_json_405() {
        let (router, _dir) = bare_router();
        for (method, path) in [
            (&b"FET"[..], "/"),
            (b"POST", "/"),
            (b"DELETE", "/api/health"),
            (b"PURGE", "/api/tenants"),
        ] {
            check_error(
                &router,
                method,
                path,
                Vec::new(),
                405,
                "does not take that method",
            );
        }
    }

    #[test]
    fn a_body_over_the_limit_is_a_json_413() {
        let (router, _dir) = bare_router();
        let body = vec![b' '; 3 * 1024 * 1024];
        check_error(
            &router,
            b"PUT",
            "/api/tenants/acme-fiber/plugins/twilio/config",
            body,
            413,
            "the request was refused",
        );
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
    fn the_audit_query_takes_only_a_limit() {
        let check = |query: Option<&str>, expected: Result<Option<usize>, &str>| match (
            parse_limit(query),
            expected,
        ) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{query:?}"),
            (Err(got), Err(part)) => assert!(got.error.contains(part), "{got}"),
            (got, want) => panic!("{query:?}: got {got:?}, expected {want:?}"),
        };
        check(None, Ok(None));
        check(Some(""), Ok(None));
        check(Some("limit=5"), Ok(Some(5)));
        check(Some("limit=-1"), Err("whole number"));
        check(Some("limit=many"), Err("whole number"));
        check(Some("since=yesterday"), Err("unknown query parameter"));
    }
}
