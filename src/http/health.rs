//! `GET /healthz` (the process runs) and `GET /readyz` (the database answers
//! within a second, its migrations are current and it takes writes). Neither
//! needs a key: orchestrators call them.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::HttpState;
use super::error::{ApiError, Problem};
use crate::store::Readiness;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process runs: `{\"status\": \"ok\"}`", body = Object)),
)]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers, its migrations are current and it takes writes: `{\"status\": \"ready\"}`", body = Object),
        (status = 503, description = "`unavailable`: the database does not answer within a second, refuses writes (read-only, a standby), or its migrations are not this build's", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn readyz(State(state): State<HttpState>) -> Response {
    // A probe must get its answer before its own timeout: the pool would
    // wait up to its acquire timeout (5 s) for a database that is gone.
    let found = tokio::time::timeout(READY_WITHIN, state.services.store.ready()).await;
    match found {
        Ok(Ok(Readiness::Ready)) => Json(json!({"status": "ready"})).into_response(),
        Ok(Ok(Readiness::OtherMigrations)) => {
            tracing::warn!(
                "not ready: the database's migrations are not the ones this build ships"
            );
            ApiError::unavailable().into_response()
        }
        Ok(Ok(Readiness::ReadOnly)) => {
            tracing::warn!("not ready: the database refuses writes (read-only, or a standby)");
            ApiError::unavailable().into_response()
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: the database does not answer");
            ApiError::unavailable().into_response()
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within {READY_WITHIN:?}");
            ApiError::unavailable().into_response()
        }
    }
}

/// How long `/readyz` waits for the database: readiness answers within 1 s
/// (docs/operations.md), and this leaves a quarter of it for the request
/// itself on a loaded machine.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_millis(750);
