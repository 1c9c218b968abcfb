//! The routes the operator's page adds: package upload and removal, the
//! settings schema, the catalog by source, the tiers, the version history,
//! the metric series, and the page's own script and style sheet.
//!
//! Scopes they need: `plugins:write` for `POST /api/packages` and
//! `DELETE /api/plugins/{plugin}`; `plugins:read` for the others.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, ApiError, ApiResult, AppState};
use crate::auth::{ApiRoute, Need};
use crate::error::Problem;
use crate::keys::{Caller, Scope};
use crate::series::{self, Series};
use crate::upload::{self, MAX_PACKAGE_BYTES};
use crate::Daemon;

/// The admin page's script.
const SCRIPT: &str = include_str!("../page.js");
/// The admin page's style sheet.
const STYLE: &str = include_str!("../page.css");

/// The `/api` routes of the operator's page, for the route table.
pub(super) fn route_table() -> Vec<ApiRoute<AppState>> {
    use Scope::*;
    let scope = Need::Scope;
    vec![
        ApiRoute::post("/packages", scope(PluginsWrite), install_package).any_body(),
        ApiRoute::delete("/plugins/{plugin}", scope(PluginsWrite), remove_plugin),
        ApiRoute::get("/plugins/{plugin}/schema", scope(PluginsRead), schema),
        ApiRoute::get("/catalog", scope(PluginsRead), catalog),
        ApiRoute::get("/tiers", scope(PluginsRead), tiers),
        ApiRoute::get("/history", scope(PluginsRead), history),
        ApiRoute::get("/metrics/series", scope(PluginsRead), metric_series),
    ]
}

/// The metric ring the page charts, sampled for `daemon` from now on; the
/// API router carries it as an extension for `GET /api/metrics/series`.
pub(super) fn start_series(daemon: &Arc<Daemon>) -> Extension<Arc<Series>> {
    let series = Arc::new(Series::default());
    series::start_sampler(daemon, &series);
    Extension(series)
}

/// The page's static files, served without the token like the page itself.
pub(super) fn asset_routes() -> Router {
    Router::new()
        .route(
            "/page.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route("/page.css", get(|| asset(STYLE, "text/css; charset=utf-8")))
}

async fn asset(text: &'static str, content_type: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (headers, text).into_response()
}

/// `POST /api/packages`'s query: `name=<file name>` (for messages) and
/// `allow_downgrade=true|false`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    name: Option<String>,
    #[serde(default)]
    allow_downgrade: bool,
}

impl UploadQuery {
    /// The name messages call the package by: the file name in backticks,
    /// without control characters and at most 200 characters long.
    fn display_name(&self) -> String {
        let name: String = self
            .name
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        if name.is_empty() {
            "the uploaded package".to_owned()
        } else {
            format!("`{name}`")
        }
    }
}

async fn install_package(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Query(query) = query.map_err(|e| {
        ApiError(Problem::bad_request(format!(
            "{}; POST /api/packages takes `name=<file name>` and `allow_downgrade=true`",
            e.body_text()
        )))
    })?;
    let (name, allow_downgrade) = (query.display_name(), query.allow_downgrade);
    let bytes = match axum::body::to_bytes(body, MAX_PACKAGE_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let declared = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(MAX_PACKAGE_BYTES + 1);
            return Err(ApiError(upload::too_large(&name, declared)));
        }
    };
    blocking(move || {
        s.daemon
            .install_package(&caller.id, &name, &bytes, allow_downgrade)
    })
    .await
    .map(Json)
}

async fn remove_plugin(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(plugin): Path<String>,
) -> ApiResult {
    blocking(move || s.daemon.remove_plugin(&caller.id, &plugin))
        .await
        .map(Json)
}

async fn schema(State(s): State<AppState>, Path(plugin): Path<String>) -> ApiResult {
    blocking(move || s.daemon.plugin_schema(&plugin))
        .await
        .map(Json)
}

async fn catalog(State(s): State<AppState>) -> ApiResult {
    blocking(move || Ok(s.daemon.catalog())).await.map(Json)
}

async fn tiers(State(s): State<AppState>) -> ApiResult {
    blocking(move || Ok(s.daemon.tiers_view())).await.map(Json)
}

async fn history(State(s): State<AppState>) -> ApiResult {
    blocking(move || s.daemon.history(100)).await.map(Json)
}

async fn metric_series(
    State(s): State<AppState>,
    Extension(series): Extension<Arc<Series>>,
) -> ApiResult {
    blocking(move || {
        let mut rings = series.snapshot();
        // The newest point is read now, so a chart is never a sample behind.
        for (id, sample) in series::sample_now(&s.daemon) {
            rings.entry(id).or_default().push(sample);
        }
        Ok(json!({
            "interval_ms": series::INTERVAL.as_millis() as u64,
            "plugins": rings,
        }))
    })
    .await
    .map(|v: Value| Json(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_query_names_the_package_without_control_characters() {
        let named = |name: Option<&str>| {
            UploadQuery {
                name: name.map(str::to_owned),
                allow_downgrade: false,
            }
            .display_name()
        };
        assert_eq!(named(None), "the uploaded package");
        assert_eq!(named(Some("")), "the uploaded package");
        assert_eq!(named(Some("twilio-0.1.tar")), "`twilio-0.1.tar`");
        assert_eq!(named(Some("a\u{1b}[31mb.tar")), "`a[31mb.tar`");
        assert_eq!(named(Some(&"x".repeat(300))).len(), 202);
    }
}
