//! The admin routes of webhooks, under `/api/webhooks` behind the admin
//! API's authentication (scope `webhooks:manage`):
//! inbound counters and records, endpoints (create, list, show, delete,
//! rotate the secret, enable, disable), each endpoint's delivery log, the
//! pending outbox, the dead-letter list and its replay.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::daemon::Daemon;
use crate::error::{Problem, ProblemKind};
use crate::webhook_state::events::EVENT_TYPES;

/// The routes, to merge into the `/api` router before its authentication layer.
pub fn routes<S: Clone + Send + Sync + 'static>(daemon: Arc<Daemon>) -> Router<S> {
    Router::new()
        .route("/webhooks/inbound", get(inbound))
        .route("/webhooks/event-types", get(event_types))
        .route("/webhooks/endpoints", get(list).post(create))
        .route("/webhooks/endpoints/{id}", get(show).delete(delete))
        .route("/webhooks/endpoints/{id}/rotate", post(rotate))
        .route("/webhooks/endpoints/{id}/enable", post(enable))
        .route("/webhooks/endpoints/{id}/disable", post(disable))
        .route("/webhooks/endpoints/{id}/deliveries", get(deliveries))
        .route("/webhooks/outbox", get(outbox))
        .route("/webhooks/dead-letters", get(dead_letters))
        .route("/webhooks/dead-letters/{id}/replay", post(replay))
        .with_state(daemon)
}

struct Failure(Problem);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0.kind {
            ProblemKind::BadRequest => StatusCode::BAD_REQUEST,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::Conflict => StatusCode::CONFLICT,
            ProblemKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0)).into_response()
    }
}

type Answer = Result<Json<Value>, Failure>;

/// Runs file work off the async threads.
async fn blocking(work: impl FnOnce() -> Result<Value, Problem> + Send + 'static) -> Answer {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map(Json).map_err(Failure),
        Err(e) => Err(Failure(Problem::internal(format!(
            "the request's worker failed: {e}"
        )))),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes, what: &str) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        Failure(Problem::bad_request(format!(
            "the body is not a valid {what}: {e}"
        )))
    })
}

async fn inbound(State(d): State<Arc<Daemon>>) -> Answer {
    blocking(move || Ok(d.webhooks().ledger().view())).await
}

async fn event_types() -> Json<Value> {
    Json(Value::from(EVENT_TYPES.to_vec()))
}

async fn list(State(d): State<Arc<Daemon>>) -> Answer {
    blocking(move || Ok(d.webhooks().outbox().list())).await
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

async fn create(State(d): State<Arc<Daemon>>, body: Bytes) -> Result<Response, Failure> {
    let new: NewEndpoint = parse(
        &body,
        "endpoint ({\"id\", \"url\", \"events\"?, \"secret\"?})",
    )?;
    let created = blocking(move || {
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

async fn show(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer {
    blocking(move || d.webhooks().outbox().get(&id)).await
}

async fn delete(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer {
    blocking(move || d.webhooks().outbox().delete(&id)).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotation {
    /// How long the old secrets keep signing, in seconds (default 24 h).
    #[serde(default)]
    grace_secs: Option<u64>,
}

async fn rotate(State(d): State<Arc<Daemon>>, Path(id): Path<String>, body: Bytes) -> Answer {
    let rotation: Rotation = if body.iter().all(u8::is_ascii_whitespace) {
        Rotation::default()
    } else {
        parse(&body, "rotation ({\"grace_secs\"?})")?
    };
    let grace = rotation.grace_secs.unwrap_or(86_400);
    blocking(move || d.webhooks().outbox().rotate(&id, grace)).await
}

async fn enable(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer {
    blocking(move || d.webhooks().outbox().set_disabled(&id, None)).await
}

async fn disable(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer {
    blocking(move || {
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
) -> Answer {
    let limit = limit.limit.unwrap_or(100);
    blocking(move || d.webhooks().outbox().log(&id, limit)).await
}

async fn outbox(State(d): State<Arc<Daemon>>) -> Answer {
    blocking(move || {
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

async fn dead_letters(State(d): State<Arc<Daemon>>) -> Answer {
    blocking(move || {
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

async fn replay(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer {
    blocking(move || d.webhooks().outbox().replay(&id)).await
}
