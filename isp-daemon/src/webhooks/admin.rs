//! The admin routes of webhooks, under `/api/webhooks` behind the admin
//! API's authentication (scope `webhooks:manage`):
//! inbound counters and records, endpoints (create, list, show, delete,
//! rotate the secret, enable, disable), each endpoint's delivery log, the
//! pending outbox, the dead-letter list and its replay.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use crate::answer::{blocking_json, parse_body, ApiError, ApiResult};
use crate::auth::{ApiRoute, Need};
use crate::daemon::Daemon;
use crate::error::{Problem, ProblemKind};
use crate::keys::{Scope, MAX_GRACE_SECS};
use crate::webhook_state::events::EVENT_TYPES;

/// The routes, for the `/api` route table (each behind `webhooks:manage`).
pub(crate) fn route_table<S>() -> Vec<ApiRoute<S>>
where
    S: Clone + Send + Sync + 'static,
    Arc<Daemon>: FromRef<S>,
{
    let manage = Need::Scope(Scope::WebhooksManage);
    vec![
        ApiRoute::get("/webhooks/inbound", manage, inbound),
        ApiRoute::get("/webhooks/event-types", manage, event_types),
        ApiRoute::get("/webhooks/endpoints", manage, list),
        ApiRoute::post("/webhooks/endpoints", manage, create),
        ApiRoute::get("/webhooks/endpoints/{id}", manage, show),
        ApiRoute::delete("/webhooks/endpoints/{id}", manage, delete),
        ApiRoute::post("/webhooks/endpoints/{id}/rotate", manage, rotate),
        ApiRoute::post("/webhooks/endpoints/{id}/enable", manage, enable),
        ApiRoute::post("/webhooks/endpoints/{id}/disable", manage, disable),
        ApiRoute::get("/webhooks/endpoints/{id}/deliveries", manage, deliveries),
        ApiRoute::get("/webhooks/outbox", manage, outbox),
        ApiRoute::get("/webhooks/dead-letters", manage, dead_letters),
        ApiRoute::post("/webhooks/dead-letters/{id}/replay", manage, replay),
    ]
}

async fn inbound(State(d): State<Arc<Daemon>>) -> ApiResult {
    blocking_json(move || Ok(d.webhooks().ledger().view())).await
}

async fn event_types() -> Json<Value> {
    Json(Value::from(EVENT_TYPES.to_vec()))
}

async fn list(State(d): State<Arc<Daemon>>) -> ApiResult {
    blocking_json(move || Ok(d.webhooks().outbox().list())).await
}

/// `POST /api/webhooks/endpoints`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    id: String,
    url: String,
    #[serde(default)]
    events: Option<Vec<String>>,
    /// A `whsec_` secret to use; one is made up when absent.
    #[serde(default)]
    secret: Option<String>,
}

async fn create(State(d): State<Arc<Daemon>>, body: Bytes) -> Result<Response, ApiError> {
    let new: NewEndpoint = parse_body(
        &body,
        "endpoint ({\"id\", \"url\", \"events\"?, \"secret\"?})",
    )?;
    let created = blocking_json(move || {
        d.webhooks().outbox().create(
            &new.id,
            &new.url,
            new.events.unwrap_or_else(|| vec!["*".to_owned()]),
            new.secret,
        )
    })
    .await?;
    Ok((StatusCode::CREATED, created).into_response())
}

async fn show(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    blocking_json(move || d.webhooks().outbox().get(&id)).await
}

async fn delete(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    blocking_json(move || d.webhooks().outbox().delete(&id)).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotation {
    /// How long the old secrets keep signing, in seconds (default 24 h).
    #[serde(default)]
    grace_secs: Option<u64>,
}

async fn rotate(State(d): State<Arc<Daemon>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let rotation: Rotation = if body.iter().all(u8::is_ascii_whitespace) {
        Rotation::default()
    } else {
        parse_body(&body, "rotation ({\"grace_secs\"?})")?
    };
    let grace = rotation.grace_secs.unwrap_or(86_400);
    if grace > MAX_GRACE_SECS {
        return Err(Problem::new(
            ProblemKind::Unprocessable,
            format!(
                "webhook endpoint `{id}`: `grace_secs` is at most {MAX_GRACE_SECS} (30 days), \
                 not {grace}; the old secret signs alongside the new one for that long"
            ),
        )
        .into());
    }
    blocking_json(move || d.webhooks().outbox().rotate(&id, grace)).await
}

async fn enable(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    blocking_json(move || d.webhooks().outbox().set_disabled(&id, None)).await
}

async fn disable(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    blocking_json(move || {
        d.webhooks()
            .outbox()
            .set_disabled(&id, Some("disabled by an operator".to_owned()))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    #[serde(default)]
    limit: Option<usize>,
}

async fn deliveries(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult {
    let limit = limit.limit.unwrap_or(100);
    blocking_json(move || d.webhooks().outbox().log(&id, limit)).await
}

async fn outbox(State(d): State<Arc<Daemon>>) -> ApiResult {
    blocking_json(move || {
        Ok(Value::from(
            d.webhooks()
                .outbox()
                .pending()
                .iter()
                .map(|p| p.view())
                .collect::<Vec<_>>(),
        ))
    })
    .await
}

async fn dead_letters(State(d): State<Arc<Daemon>>) -> ApiResult {
    blocking_json(move || {
        Ok(Value::from(
            d.webhooks()
                .outbox()
                .dead()
                .iter()
                .map(|p| p.view())
                .collect::<Vec<_>>(),
        ))
    })
    .await
}

async fn replay(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    blocking_json(move || d.webhooks().outbox().replay(&id)).await
}
