//! The admin HTTP API (axum) and the admin page.
//!
//! Every `/api` route is an entry of `route_table()` with the scope it
//! needs: an API key holding that scope (see `auth` and `keys`), or, for
//! `/api/keys`, the admin token. `GET /` serves the admin page, which holds
//! no data of its own: it calls the API with the key the operator gives it,
//! or a session key it makes with the admin token.
//!
//! Every error is a JSON body `{"error": "...", "tenant"?, "plugin"?}` with
//! a 4xx status for bad input and 5xx for failures. Handlers run the
//! daemon's blocking methods on blocking threads.

use std::future::Future;
use std::sync::Arc;

mod keys_api;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::answer::{blocking, parse_body, parse_flow_body, ApiError, ApiResult};
use crate::auth::{self, ApiRoute, AuthState, Need};
use crate::daemon::Daemon;
use crate::error::{Problem, ProblemKind};
use crate::flows::{self, DeviceAlertRequest, NewCustomer, TierChangeRequest};
use crate::keys::{Caller, Scope};

mod not_allowed;
mod operator;

/// The admin page, a single static file.
const PAGE: &str = include_str!("page.html");

pub use crate::auth::AdminToken;

#[derive(Clone)]
pub(crate) struct AppState {
    daemon: Arc<Daemon>,
}

/// Lets a handler take the daemon alone (`State<Arc<Daemon>>`), as the
/// webhook routes do.
impl axum::extract::FromRef<AppState> for Arc<Daemon> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.daemon)
    }
}

/// Every `/api` route with what it needs: the one table the API router is
/// built from (see `auth`). Paths are under `/api`.
fn route_table() -> Vec<ApiRoute<AppState>> {
    use Scope::*;
    let scope = Need::Scope;
    let mut table = vec![
        ApiRoute::get("/daemon", scope(PluginsRead), daemon_info),
        ApiRoute::get("/plugins", scope(PluginsRead), plugins),
        ApiRoute::post("/plugins/{plugin}/reload", scope(PluginsWrite), reload),
        ApiRoute::post(
            "/plugins/{plugin}/release",
            scope(PluginsWrite),
            release_quarantine,
        ),
        ApiRoute::get("/tenants", scope(TenantsRead), tenants),
        ApiRoute::get("/tenants/{tenant}", scope(TenantsRead), tenant),
        ApiRoute::post(
            "/tenants/{tenant}/plugins/{plugin}/activate",
            scope(TenantsWrite),
            activate,
        ),
        ApiRoute::post(
            "/tenants/{tenant}/plugins/{plugin}/deactivate",
            scope(TenantsWrite),
            deactivate,
        ),
        ApiRoute::get(
            "/tenants/{tenant}/plugins/{plugin}/config",
            scope(TenantsRead),
            get_config,
        ),
        ApiRoute::put(
            "/tenants/{tenant}/plugins/{plugin}/config",
            scope(ConfigWrite),
            put_config,
        ),
        ApiRoute::get("/health", scope(PluginsRead), health),
        ApiRoute::get("/metrics", scope(PluginsRead), metrics),
        ApiRoute::get("/graph", scope(PluginsRead), graph_json),
        ApiRoute::get("/graph.dot", scope(PluginsRead), graph_dot),
        ApiRoute::get("/audit", scope(AuditRead), audit),
        ApiRoute::post("/flows/new-customer", scope(FlowsRun), new_customer),
        ApiRoute::post("/flows/device-alert", scope(FlowsRun), device_alert),
        ApiRoute::post("/flows/tier-change", scope(FlowsRun), tier_change),
        ApiRoute::get("/keys", Need::AdminToken, keys_api::list),
        ApiRoute::post("/keys", Need::AdminToken, keys_api::create),
        ApiRoute::delete("/keys/{id}", Need::AdminToken, keys_api::revoke),
        ApiRoute::post("/keys/{id}/revoke", Need::AdminToken, keys_api::revoke),
        ApiRoute::post("/keys/{id}/rotate", Need::AdminToken, keys_api::rotate),
        ApiRoute::post("/session", Need::AdminToken, keys_api::session),
    ];
    table.extend(crate::webhooks::admin::route_table());
    table.extend(operator::route_table());
    table.extend(crate::provisioning::route_table());
    table
}

/// The routes outside `/api` that need a credential: `GET /metrics`, the
/// conventional path Prometheus scrapes (scope `metrics:read`).
fn root_table() -> Vec<ApiRoute<AppState>> {
    vec![ApiRoute::get(
        "/metrics",
        Need::Scope(Scope::MetricsRead),
        crate::scrape::scrape,
    )]
}

/// Every route that needs a credential: method, full path (`/api/...` and
/// `/metrics`), what it needs.
pub fn routes() -> Vec<(Method, String, Need)> {
    let nested = route_table()
        .into_iter()
        .map(|r| (r.method, format!("/api{}", r.path), r.need));
    let root = root_table()
        .into_iter()
        .map(|r| (r.method, r.path.to_owned(), r.need));
    nested.chain(root).collect()
}

/// The admin API and page for `daemon`; `/api/keys` takes `token`, every
/// other `/api` route and `/metrics` an API key with the route's scope.
pub fn router(daemon: Arc<Daemon>, token: AdminToken) -> Router {
    let auth = Arc::new(AuthState {
        admin: token,
        keys: Arc::clone(daemon.keys()),
        limits: Arc::clone(daemon.rate_limits()),
    });
    let inbound = crate::webhooks::inbound::routes(Arc::clone(&daemon));
    let series = operator::start_series(&daemon);
    let state = AppState { daemon };
    let root = auth::build(root_table(), &auth).with_state(state.clone());
    let api = auth::build(route_table(), &auth)
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state);
    let app = Router::new()
        .route("/", get(page))
        .merge(inbound)
        .merge(operator::asset_routes())
        .merge(root)
        .nest("/api", api)
        // `GET /api/metrics/series` reads the page's metric ring from here.
        .layer(series)
        .fallback(no_route)
        .layer(crate::limits::body_timeout())
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(crate::telemetry::log_request));
    not_allowed::around(app)
}

/// The most an error answer's own text is read to rewrap it.
const ERROR_TEXT_LIMIT: usize = 16 * 1024;

/// Makes every error answer a JSON problem, including the ones axum writes
/// itself as plain text or leaves empty: a path segment that is not UTF-8
/// once unescaped, a method a route does not take, a body over the limit.
/// The status and the other headers (`Allow`, `WWW-Authenticate`) are kept.
async fn json_errors(request: axum::extract::Request, next: middleware::Next) -> Response {
    // The public provider routes never mention the admin API.
    let public = request.uri().path().starts_with("/webhooks/");
    let response = next.run(request).await;
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
        // axum's text is its own error chain ("Failed to buffer the request
        // body: length limit exceeded"); the caller gets the limit instead.
        StatusCode::PAYLOAD_TOO_LARGE if public => (
            ProblemKind::PayloadTooLarge,
            format!(
                "the request was refused: its body is over the limit of {} MiB for a provider's \
                 webhook; provider events are far smaller, so check what is sent to this URL",
                crate::limits::BODY_LIMIT_BYTES / (1024 * 1024),
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ProblemKind::PayloadTooLarge,
            format!(
                "the request was refused: its body is over the limit of {} MiB for this route; \
                 send a smaller body (package uploads to POST /api/packages take up to {} MiB)",
                crate::limits::BODY_LIMIT_BYTES / (1024 * 1024),
                crate::upload::MAX_PACKAGE_BYTES / (1024 * 1024)
            ),
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
/// requests in flight finish (with the guards of `limits`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::limits::serve(listener, router, shutdown).await
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
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
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

async fn reload(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(plugin): Path<String>,
) -> ApiResult {
    blocking(move || s.daemon.reload(&caller.id, &plugin))
        .await
        .map(Json)
}

async fn release_quarantine(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(plugin): Path<String>,
) -> ApiResult {
    blocking(move || s.daemon.release_quarantine(&caller.id, &plugin))
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
    Extension(caller): Extension<Caller>,
    Path((tenant, plugin)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let overrides: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(parse_body(&body, "JSON object of configuration overrides")?)
    };
    blocking(move || {
        s.daemon.activate(&caller.id, &tenant, &plugin, overrides)?;
        s.daemon.tenant_overview(&tenant)
    })
    .await
    .map(Json)
}

async fn deactivate(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, plugin)): Path<(String, String)>,
) -> ApiResult {
    blocking(move || {
        s.daemon.deactivate(&caller.id, &tenant, &plugin)?;
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
    Extension(caller): Extension<Caller>,
    Path((tenant, plugin)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let overrides: Value = parse_body(&body, "JSON object of configuration overrides")?;
    blocking(move || {
        let update = s
            .daemon
            .update_config(&caller.id, &tenant, &plugin, overrides)?;
        serde_json::to_value(update).map_err(|e| Problem::internal(e.to_string()))
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

/// The audit log's query: `limit=N`, the newest N entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

/// A query string that does not fit the route's parameters, as a 400
/// naming the parameter (axum's message names it) and what the route takes.
fn bad_query(rejection: &QueryRejection, takes: &str) -> ApiError {
    ApiError(Problem::bad_request(format!(
        "the query string is not valid here: {}; this route takes {takes}",
        rejection.body_text()
    )))
}

async fn audit(
    State(s): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| bad_query(&e, "`limit=N` (a whole number of entries)"))?;
    blocking(move || s.daemon.audit(query.limit))
        .await
        .map(Json)
}

/// A flow's report as the answer, after announcing it to webhook endpoints
/// as run by `actor` (the API key's id).
fn report_json(daemon: &Daemon, actor: &str, report: flows::FlowReport) -> Result<Value, Problem> {
    crate::webhooks::flow_completed(daemon, actor, &report);
    let lines = report.lines();
    let mut value = serde_json::to_value(report).map_err(|e| Problem::internal(e.to_string()))?;
    if let Value::Object(map) = &mut value {
        map.insert("lines".to_owned(), Value::from(lines));
    }
    Ok(value)
}

async fn new_customer(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let request: NewCustomer = parse_flow_body(&body)?;
    blocking(move || {
        report_json(
            &s.daemon,
            &caller.id,
            flows::new_customer(&s.daemon, &request)?,
        )
    })
    .await
    .map(Json)
}

async fn device_alert(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let request: DeviceAlertRequest = parse_flow_body(&body)?;
    blocking(move || {
        report_json(
            &s.daemon,
            &caller.id,
            flows::device_alert(&s.daemon, &request)?,
        )
    })
    .await
    .map(Json)
}

async fn tier_change(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let request: TierChangeRequest = parse_flow_body(&body)?;
    blocking(move || {
        report_json(
            &s.daemon,
            &caller.id,
            flows::change_tier(&s.daemon, &caller.id, &request)?,
        )
    })
    .await
    .map(Json)
}

#[cfg(test)]
mod tests {
    use axum::extract::Request;
    use tower::ServiceExt as _;

    use super::*;
    use crate::config::{StandinMode, TrustMode};
    use crate::{Config, StartOptions};

    const TOKEN: &str = "api-unit-test-token";

    thread_local! {
        /// The all-scope key of this thread's [`bare_router`].
        static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }

    /// The router of a daemon with no plugins and no stand-ins, and the
    /// secret of an API key with every scope.
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
        let key = daemon
            .keys()
            .create(
                crate::keys::NewKey {
                    name: "unit test".to_owned(),
                    scopes: Scope::ALL.to_vec(),
                    expires_in_secs: None,
                },
                1,
            )
            .expect("key");
        KEY.with(|k| *k.borrow_mut() = key.secret);
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
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", KEY.with(|k| k.borrow().clone())),
            )
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
                "is not allowed: this route takes",
            );
        }
    }

    /// New-user trial: a 405 said only "this route does not take that
    /// method". RFC 9110 §15.5.6: a 405 carries `Allow`; the body names the
    /// route and the methods it takes.
    #[test]
    fn a_405_names_the_route_and_its_methods_and_carries_allow() {
        let (router, _dir) = bare_router();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for (method, path, allowed) in [
            ("DELETE", "/api/health", "GET"),
            ("PUT", "/api/keys", "GET,POST"),
            (
                "GET",
                "/api/tenants/acme-fiber/plugins/twilio/activate",
                "POST",
            ),
            (
                "POST",
                "/api/tenants/acme-fiber/plugins/twilio/config",
                "GET,PUT",
            ),
            ("PATCH", "/api/webhooks/endpoints/x", "GET,DELETE"),
            ("GET", "/webhooks/stripe/acme-fiber", "POST"),
            ("POST", "/", "GET"),
            ("DELETE", "/metrics", "GET"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", KEY.with(|k| k.borrow().clone())),
                )
                .body(axum::body::Body::empty())
                .expect("request");
            let (status, allow, text) = runtime.block_on(async {
                let response = router.clone().oneshot(request).await.expect("answer");
                let status = response.status().as_u16();
                let allow = response
                    .headers()
                    .get(header::ALLOW)
                    .map(|v| v.to_str().unwrap_or_default().replace(' ', ""));
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("body");
                (status, allow, String::from_utf8_lossy(&body).into_owned())
            });
            let what = format!("{method} {path}");
            assert_eq!(status, 405, "{what}: {text}");
            let mut got: Vec<String> = allow
                .unwrap_or_else(|| panic!("{what}: no Allow header"))
                .split(',')
                .map(str::to_owned)
                .filter(|m| m != "HEAD")
                .collect();
            got.sort();
            let mut want: Vec<&str> = allowed.split(',').collect();
            want.sort();
            assert_eq!(got, want, "{what}");
            let problem: Value = serde_json::from_str(&text).expect("a JSON body");
            let error = problem["error"].as_str().unwrap_or_default();
            assert!(error.contains(&what), "{what}: {error}");
            for m in want {
                assert!(error.contains(m), "{what}: {error} lacks {m}");
            }
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
    fn a_bad_audit_query_is_a_json_400_naming_the_parameter() {
        let (router, _dir) = bare_router();
        for (path, part) in [
            ("/api/audit?limit=many", "limit"),
            ("/api/audit?limit=-1", "limit"),
            ("/api/audit?since=yesterday", "since"),
        ] {
            check_error(&router, b"GET", path, Vec::new(), 400, part);
        }
    }

    /// The scope walk in `tests/daemon/keys.rs` covers the table; this keeps
    /// every `/api` route in it: the `/api` router is `auth::build` of the
    /// table plus the two fallbacks, nested once, and no other `.route` in
    /// this file is under `/api` (public routes such as provider webhooks
    /// live beside it, outside `/api`).
    #[test]
    fn the_api_router_is_built_only_from_the_scope_table() {
        let source = include_str!("api.rs");
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let api = code
            .split_once("let api = ")
            .and_then(|(_, rest)| rest.split_once(';'))
            .map(|(statement, _)| statement)
            .expect("router() builds `let api = ...;`");
        let calls: Vec<&str> = api
            .split('.')
            .skip(1)
            .map(|c| c.split('(').next().unwrap_or_default().trim())
            .collect();
        assert_eq!(
            calls,
            ["fallback", "method_not_allowed_fallback", "with_state"],
            "the /api router is auth::build(route_table(), ..) and nothing else: {api}"
        );
        assert!(
            api.starts_with("auth::build(route_table(), &auth)"),
            "{api}"
        );
        assert_eq!(code.matches(".nest(").count(), 1);
        assert!(code.contains(r#".nest("/api", api)"#));
        for (i, _) in code.match_indices(".route(") {
            let path = code[i + ".route(".len()..].trim_start();
            assert!(
                !path.starts_with("\"/api"),
                "an /api route outside the scope table: {}",
                &code[i..(i + 80).min(code.len())]
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (method, path, _) in routes() {
            assert!(
                seen.insert((method.clone(), path.clone())),
                "{method} {path} twice"
            );
        }
    }
}
