//! `GET /console/webhooks`: the webhook endpoints of R48 with their lag
//! (events not yet delivered, the age of the oldest), last error and state,
//! and the latest console actions on each (who paused, resumed or replayed
//! it, from their `console.action` events);
//! `POST /console/webhooks/{id}/pause`, `…/resume` and `…/replay` (events
//! since a time) for the `admin` scope.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::events::catalog::ConsoleActionKind;

use super::{
    HttpState, acting_session, error_page, opt_time, render_page, service_error, session_and, time,
};

pub async fn page_of(state: &HttpState, headers: &HeaderMap) -> Response {
    let reads = state.services.console_webhooks();
    let (session, endpoints) = match session_and(state, headers, reads).await {
        Ok(found) => found,
        Err(elsewhere) => return elsewhere,
    };
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|v| {
            let e = &v.endpoint;
            serde_json::json!({
                "id": e.id.to_string(),
                "url": e.url,
                "description": e.description,
                "event_types": e.event_types.as_ref().map(|t| t.join(", ")),
                "disabled": e.disabled,
                "disabled_reason": e.disabled_reason,
                "failing_since": opt_time(e.failing_since),
                "last_error": e.last_error,
                "last_success_at": opt_time(e.last_success_at),
                "depth": v.lag.as_ref().map(|l| l.depth),
                "oldest_age_seconds": v.lag.as_ref().map(|l| format!("{:.0}", l.oldest_age_seconds)),
                "actions": v.actions.iter().map(|a| serde_json::json!({
                    "at": time(a.at),
                    "action": a.action.as_str(),
                    "label": action_label(a.action),
                    "key_name": a.key_name,
                    "since": opt_time(a.since),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    render_page(
        &session,
        "webhooks",
        "webhooks.html",
        serde_json::json!({
            "endpoints": endpoints,
            "replay_default": time(Utc::now() - chrono::Duration::hours(1)),
        }),
    )
}

pub async fn page(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    page_of(&state, &headers).await
}

#[derive(Deserialize)]
pub struct Action {
    csrf: Option<String>,
    /// For a replay: from when (RFC 3339).
    since: Option<String>,
}

/// How the page names an action.
fn action_label(action: ConsoleActionKind) -> &'static str {
    match action {
        ConsoleActionKind::PauseWebhook => "paused",
        ConsoleActionKind::ResumeWebhook => "resumed",
        ConsoleActionKind::ReplayWebhook => "replayed",
        ConsoleActionKind::RetryEmail => "email retried",
    }
}

fn no_endpoint() -> Response {
    error_page(StatusCode::NOT_FOUND, "Not found: no such webhook endpoint")
}

async fn pause_or_resume(
    state: HttpState,
    headers: HeaderMap,
    raw_id: String,
    input: Action,
    paused: bool,
) -> Response {
    let session = match acting_session(&state, &headers, input.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let Ok(id) = raw_id.parse::<uuid::Uuid>() else {
        return no_endpoint();
    };
    match state
        .services
        .console_pause_webhook(&session.key_name, id, paused)
        .await
    {
        Ok(()) => Redirect::to("/console/webhooks").into_response(),
        Err(e) => service_error(e),
    }
}

pub async fn pause(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(input): Form<Action>,
) -> Response {
    pause_or_resume(state, headers, id, input, true).await
}

pub async fn resume(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(input): Form<Action>,
) -> Response {
    pause_or_resume(state, headers, id, input, false).await
}

pub async fn replay(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    Form(input): Form<Action>,
) -> Response {
    let session = match acting_session(&state, &headers, input.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let Ok(id) = raw_id.parse::<uuid::Uuid>() else {
        return no_endpoint();
    };
    let Some(since) = input
        .since
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
    else {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Replay needs a time to start from, as 2026-12-03T10:00:00Z.",
        );
    };
    match state
        .services
        .console_replay_webhook(&session.key_name, id, since.with_timezone(&Utc))
        .await
    {
        Ok(()) => Redirect::to("/console/webhooks").into_response(),
        Err(e) => service_error(e),
    }
}
