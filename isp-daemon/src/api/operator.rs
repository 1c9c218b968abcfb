//! The routes the operator's page adds: package upload and removal, the
//! settings schema, the catalog by source, the tiers, the version history,
//! the metric series, and the page's own script and style sheet.
//!
//! Scopes they need: `plugins:write` for `POST /api/packages` and
//! `DELETE /api/plugins/{plugin}`; `plugins:read` for the others.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::{blocking, ApiError, ApiResult, AppState, ACTOR};
use crate::error::Problem;
use crate::series::{self, Series};
use crate::upload::{self, MAX_PACKAGE_BYTES};
use crate::Daemon;

/// The admin page's script.
const SCRIPT: &str = include_str!("../page.js");
/// The admin page's style sheet.
const STYLE: &str = include_str!("../page.css");

/// The `/api` routes of the operator's page (under the admin token), with
/// the metric sampler started for `daemon`.
pub(super) fn api_routes(daemon: &Arc<Daemon>) -> Router<AppState> {
    let series = Arc::new(Series::default());
    series::start_sampler(daemon, &series);
    Router::new()
        .route("/packages", post(install_package))
        .route("/plugins/{plugin}", delete(remove_plugin))
        .route("/plugins/{plugin}/schema", get(schema))
        .route("/catalog", get(catalog))
        .route("/tiers", get(tiers))
        .route("/history", get(history))
        .route("/metrics/series", get(metric_series))
        .layer(Extension(series))
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

/// `name=<file name>` and `allow_downgrade=true|false` from the query.
fn upload_query(query: Option<&str>) -> Result<(String, bool), Problem> {
    let mut name = "the uploaded package".to_owned();
    let mut allow_downgrade = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("name", value)) => {
                let decoded = percent_decode(value);
                if !decoded.is_empty() {
                    name = format!("`{decoded}`");
                }
            }
            Some(("allow_downgrade", "true")) => allow_downgrade = true,
            Some(("allow_downgrade", "false")) => allow_downgrade = false,
            _ => {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter {pair:?}; POST /api/packages takes `name=<file \
                     name>` and `allow_downgrade=true`"
                )))
            }
        }
    }
    Ok((name, allow_downgrade))
}

/// `%XX` and `+` unescaped; anything undecodable kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = [bytes[i + 1], bytes[i + 2]];
                let digits = std::str::from_utf8(&hex).unwrap_or("00");
                out.push(u8::from_str_radix(digits, 16).unwrap_or(b'?'));
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

async fn install_package(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let (name, allow_downgrade) = upload_query(query.as_deref()).map_err(ApiError)?;
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
            .install_package(ACTOR, &name, &bytes, allow_downgrade)
    })
    .await
    .map(Json)
}

async fn remove_plugin(State(s): State<AppState>, Path(plugin): Path<String>) -> ApiResult {
    blocking(move || s.daemon.remove_plugin(ACTOR, &plugin))
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
    fn the_upload_query_takes_a_name_and_a_downgrade_switch() {
        let check = |query: Option<&str>, expected: Result<(&str, bool), &str>| match (
            upload_query(query),
            expected,
        ) {
            (Ok((name, down)), Ok((want, want_down))) => {
                assert_eq!((name.as_str(), down), (want, want_down), "{query:?}")
            }
            (Err(got), Err(part)) => assert!(got.error.contains(part), "{got}"),
            (got, want) => panic!("{query:?}: got {got:?}, expected {want:?}"),
        };
        check(None, Ok(("the uploaded package", false)));
        check(
            Some("name=twilio%2D0.1.tar"),
            Ok(("`twilio-0.1.tar`", false)),
        );
        check(
            Some("name=a+b.tar&allow_downgrade=true"),
            Ok(("`a b.tar`", true)),
        );
        check(Some("name=%ZZ"), Ok(("`%ZZ`", false)));
        check(Some("name=%4"), Ok(("`%4`", false)));
        check(Some("force=yes"), Err("unknown query parameter"));
    }
}
