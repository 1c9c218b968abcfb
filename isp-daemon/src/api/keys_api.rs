//! `/api/keys`: create, list, revoke and rotate API keys, and
//! `/api/session`, the admin page's session key. These routes take
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

use plugin_host::tenancy::{AuditAction, AuditEntry, AuditOutcome};

use super::{blocking, parse_body, ApiError, ApiResult, AppState};
use crate::daemon::Daemon;
use crate::error::Problem;
use crate::keys::{KeyStoreError, NewKey};

/// Who the audit log names for key changes: whoever holds the admin token.
const ADMIN_ACTOR: &str = "admin-token";

fn audit(daemon: &Daemon, detail: String) {
    daemon.audit_entry(
        AuditEntry::new(ADMIN_ACTOR, AuditAction::ApiKey, AuditOutcome::Ok).detail(detail),
    );
}

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
    let made = blocking(move || {
        let made = s.daemon.keys().create(new, now()).map_err(problem)?;
        let scopes: Vec<&str> = made.key.scopes.iter().map(|s| s.as_str()).collect();
        audit(
            &s.daemon,
            format!(
                "created {} ({:?}) with {}; expires {}",
                made.key.id,
                made.key.name,
                scopes.join(", "),
                made.key.expires.as_deref().unwrap_or("never")
            ),
        );
        Ok(made)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

/// `DELETE /api/keys/{id}` or `POST /api/keys/{id}/revoke`.
pub(super) async fn revoke(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let view = blocking(move || {
        let view = s.daemon.keys().revoke(&id, now()).map_err(problem)?;
        audit(&s.daemon, format!("revoked {} ({:?})", view.id, view.name));
        Ok(view)
    })
    .await?;
    serde_json::to_value(view)
        .map(Json)
        .map_err(|e| ApiError(Problem::internal(e.to_string())))
}

/// `POST /api/session` (no body): the admin page's session key with every
/// scope, 12 hours. 200 with the live one (`"reused": true`) while it has
/// more than an hour left, else 201 with a new one; see `keys::Session`.
pub(super) async fn session(State(s): State<AppState>) -> Result<Response, ApiError> {
    let session = blocking(move || {
        let session = s.daemon.keys().page_session(now()).map_err(problem)?;
        if !session.reused {
            audit(
                &s.daemon,
                format!(
                    "created admin page session key {}; expires {}",
                    session.key.key.id,
                    session.key.key.expires.as_deref().unwrap_or("never")
                ),
            );
        }
        Ok(session)
    })
    .await?;
    let status = if session.reused {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(session)).into_response())
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
        let rotated = s
            .daemon
            .keys()
            .rotate(&id, rotation.grace_secs, now())
            .map_err(problem)?;
        let until: Vec<&str> = rotated
            .key
            .previous_secrets
            .iter()
            .map(|p| p.works_until.as_str())
            .collect();
        audit(
            &s.daemon,
            format!(
                "rotated {} ({:?}); the previous secret works until {}",
                rotated.key.id,
                rotated.key.name,
                until.first().copied().unwrap_or("now (no grace)")
            ),
        );
        Ok(rotated)
    })
    .await?;
    serde_json::to_value(rotated)
        .map(|v: Value| Json(v))
        .map_err(|e| ApiError(Problem::internal(e.to_string())))
}
