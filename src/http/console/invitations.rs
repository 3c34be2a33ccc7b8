//! `GET /console/invitations/{id}`: one invitation's whole story: its
//! state changes and other events (the `console.action`s among them), every
//! delivery attempt with the SMTP server's reply, the bounces and
//! complaints, its emails (with "retry" on a failed one) and how far each
//! event sink is.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{HttpState, error_page, opt_time, render_page, session, session_and, time};
use crate::domain::InvitationId;
use crate::store::TimelineEntry;

pub async fn page_of(state: &HttpState, headers: &HeaderMap, raw_id: &str) -> Response {
    let Ok(id) = raw_id.parse::<uuid::Uuid>() else {
        return match session(state, headers).await {
            Ok(_) => error_page(StatusCode::NOT_FOUND, "Not found: no such invitation"),
            Err(elsewhere) => elsewhere,
        };
    };
    let reads = state.services.console_invitation(InvitationId(id));
    let (session, story) = match session_and(state, headers, reads).await {
        Ok(found) => found,
        Err(elsewhere) => return elsewhere,
    };
    let inv = &story.invitation;
    let timeline: Vec<_> = story
        .timeline
        .iter()
        .map(|entry| match entry {
            TimelineEntry::Event {
                id: event_id,
                event_type,
                at,
                actor_user_id,
                from_status,
                to_status,
                data,
                ..
            } => serde_json::json!({
                "kind": "event",
                "at": time(*at),
                "what": event_type,
                "actor": actor_user_id,
                "transition": from_status.zip(*to_status).map(|(f, t)| format!("{f} → {t}")),
                "detail": event_detail(data),
                "taken_by": story.taken_by.get(event_id).cloned().unwrap_or_default(),
            }),
            TimelineEntry::Delivery {
                at,
                template,
                recipient,
                outcome,
                smtp_code,
                detail,
                duration_ms,
                ..
            } => serde_json::json!({
                "kind": "delivery",
                "template": template,
                "at": time(*at),
                "what": format!("{template} to {recipient}: {outcome}"),
                "smtp_code": smtp_code,
                "detail": detail.clone().unwrap_or_default(),
                "duration_ms": duration_ms,
            }),
            TimelineEntry::Feedback {
                at,
                template,
                recipient,
                kind,
                source,
                status_code,
                detail,
                ..
            } => serde_json::json!({
                "kind": "feedback",
                "at": time(*at),
                "what": format!("{kind} of {template} to {recipient} (from {source})"),
                "status_code": status_code,
                "detail": detail.clone().unwrap_or_default(),
            }),
        })
        .collect();
    let emails: Vec<_> = story
        .emails
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id.to_string(),
                "template": e.template,
                "recipient": e.recipient,
                "message_id": e.message_id,
                "status": e.status,
                "attempts": e.attempts,
                "last_error": e.last_error,
                "updated_at": time(e.updated_at),
            })
        })
        .collect();
    let sinks: Vec<_> = story
        .sinks
        .iter()
        .map(|s| {
            serde_json::json!({
                "sink": s.sink,
                "depth": s.depth,
                "oldest_age_seconds": format!("{:.0}", s.oldest_age_seconds),
            })
        })
        .collect();
    render_page(
        &session,
        "invitation",
        "invitation.html",
        serde_json::json!({
            "invitation": serde_json::json!({
                "id": inv.id.to_string(),
                "business_id": inv.business_id.to_string(),
                "business_name": story.business_name,
                "kind": inv.kind.as_str(),
                "email": inv.email.as_ref().map(|e| e.to_string()),
                "role": inv.role.as_ref().map(|r| r.to_string()),
                "status": inv.status.as_str(),
                "invited_by": inv.invited_by.to_string(),
                "inviter_display_name": story.inviter_display_name,
                "locale": inv.locale.to_string(),
                "delivery_mode": inv.delivery_mode.as_str(),
                "created_at": time(inv.created_at),
                "expires_at": time(inv.expires_at),
                "accepted_by": inv.accepted_by.as_ref().map(|u| u.to_string()),
                "renewed_from": inv.renewed_from.map(|r| r.to_string()),
                "sent_at": opt_time(inv.delivery.as_ref().and_then(|d| d.sent_at)),
            }),
            "timeline": timeline,
            "emails": emails,
            "sinks": sinks,
        }),
    )
}

/// An event's data as one line of JSON; nothing for `{}`.
fn event_detail(data: &serde_json::Value) -> String {
    if data.as_object().is_some_and(|o| o.is_empty()) {
        String::new()
    } else {
        data.to_string()
    }
}

pub async fn page(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    page_of(&state, &headers, &id).await
}
