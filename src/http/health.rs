//! `GET /healthz` (the process runs) and `GET /readyz` (the database answers
//! and its migrations are current). Neither needs a key: orchestrators call them.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::HttpState;
use super::error::{ApiError, Problem};

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
        (status = 200, description = "The database answers and its migrations are current: `{\"status\": \"ready\"}`", body = Object),
        (status = 503, description = "`unavailable`: the database does not answer, or its migrations are not this build's", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn readyz(State(state): State<HttpState>) -> Response {
    match state.services.store.ready().await {
        Ok(true) => Json(json!({"status": "ready"})).into_response(),
        Ok(false) => {
            tracing::warn!(
                "not ready: the database's migrations are not the ones this build ships"
            );
            ApiError::unavailable().into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "not ready: the database does not answer");
            ApiError::unavailable().into_response()
        }
    }
}
