//! `GET /console/businesses/{id}`: a business's members, its pending
//! invitations, its quota (used, and when the next slot frees) and seats.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{HttpState, error_page, opt_time, render_page, session, session_and, time};
use crate::domain::BusinessId;

pub async fn page(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> Response {
    let Ok(id) = raw_id.parse::<uuid::Uuid>() else {
        return match session(&state, &headers).await {
            Ok(_) => error_page(StatusCode::NOT_FOUND, "Not found: no such business"),
            Err(elsewhere) => elsewhere,
        };
    };
    let reads = state.services.console_business(BusinessId(id));
    let (session, view) = match session_and(&state, &headers, reads).await {
        Ok(found) => found,
        Err(elsewhere) => return elsewhere,
    };
    let b = &view.business;
    let members: Vec<_> = view
        .members
        .iter()
        .map(|m| {
            serde_json::json!({
                "user_id": m.user_id.to_string(),
                "email": m.email.to_string(),
                "role": m.role.to_string(),
                "joined_at": time(m.joined_at),
            })
        })
        .collect();
    let pending: Vec<_> = view
        .pending
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": i.id.to_string(),
                "kind": i.kind,
                "email": i.email,
                "created_at": time(i.created_at),
                "expires_at": time(i.expires_at),
            })
        })
        .collect();
    render_page(
        &session,
        "business",
        "business.html",
        serde_json::json!({
            "business": serde_json::json!({
                "id": b.id.to_string(),
                "public_id": b.public_id.as_str(),
                "name": b.name,
                "role_preset": b.role_preset.as_str(),
                "seat_limit": b.seat_limit,
                "created_at": time(b.created_at),
            }),
            "seats_used": view.seats_used,
            "members": members,
            "pending": pending,
            "quota": serde_json::json!({
                "limit": view.quota.limit,
                "window_seconds": view.quota.window_seconds,
                "used": view.quota.used,
                "remaining": view.quota.remaining,
                "next_slot_at": opt_time(view.quota.next_slot_at),
            }),
        }),
    )
}
