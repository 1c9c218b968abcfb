//! `/api/keys`: create, list, revoke and rotate API keys. These routes take
//! the admin token only (see `auth`); a created or rotated secret is in the
//! answer once and nowhere else.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, parse_body, ApiError, ApiResult, AppState};
use crate::error::Problem;
use crate::keys::{KeyStoreError, NewKey};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn problem(error: KeyStoreError) -> Problem {
    match error {
        KeyStoreError::NotFound(_) => Problem::not_found(error.to_string()),
        KeyStoreError::Invalid(_) => Problem::unprocessable(error.to_string()),
        other => Problem::internal(other.to_string()),
    }
}

/// `GET /api/keys`: every key, masked.
pub(super) async fn list(State(s): State<AppState>) -> ApiResult {
    let keys = s.daemon.keys().list(now());
    Ok(Json(json!({ "keys": keys })))
}

/// `POST /api/keys` with `{"name", "scopes", "expires_in_secs"?}`: 201 and
/// the key with its secret.
pub(super) async fn create(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let new: NewKey = parse_body(
        &body,
        "new key: {\"name\": \"...\", \"scopes\": [\"plugins:read\", ...], \"expires_in_secs\"?: N}",
    )?;
    let made = blocking(move || s.daemon.keys().create(new, now()).map_err(problem)).await?;
    tracing::info!(key = %made.key.id, scopes = ?made.key.scopes, "API key created with the admin token");
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

/// `DELETE /api/keys/{id}` or `POST /api/keys/{id}/revoke`.
pub(super) async fn revoke(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let view = blocking(move || s.daemon.keys().revoke(&id, now()).map_err(problem)).await?;
    tracing::info!(key = %view.id, "API key revoked with the admin token");
    serde_json::to_value(view)
        .map(Json)
        .map_err(|e| ApiError(Problem::internal(e.to_string())))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    #[serde(default)]
    grace_secs: Option<u64>,
}

/// `POST /api/keys/{id}/rotate` with `{"grace_secs"?: N}`: the new secret;
/// the old one works for the grace period (1 hour when absent).
pub(super) async fn rotate(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let rotation: Rotation = if body.iter().all(u8::is_ascii_whitespace) {
        Rotation::default()
    } else {
        parse_body(&body, "rotation: {\"grace_secs\"?: N}")?
    };
    let rotated = blocking(move || {
        s.daemon
            .keys()
            .rotate(&id, rotation.grace_secs, now())
            .map_err(problem)
    })
    .await?;
    tracing::info!(key = %rotated.key.id, "API key rotated with the admin token");
    serde_json::to_value(rotated)
        .map(|v: Value| Json(v))
        .map_err(|e| ApiError(Problem::internal(e.to_string())))
}
