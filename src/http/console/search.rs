//! `GET /console` and `GET /console/search?q=`: find an invitation by its
//! id or its address, a business by its id, public id or name.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{HttpState, render_page, session, session_and, time};

/// `GET /console`: the search page of a session, the sign-in page without.
pub async fn home(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Ok(_) => Redirect::to("/console/search").into_response(),
        Err(elsewhere) => elsewhere,
    }
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub async fn search(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Response {
    let reads = state.services.console_search(&query.q);
    let (session, found) = match session_and(&state, &headers, reads).await {
        Ok(found) => found,
        Err(elsewhere) => return elsewhere,
    };
    let invitations: Vec<_> = found
        .invitations
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": i.id.to_string(),
                "business_id": i.business_id.to_string(),
                "business_name": i.business_name,
                "kind": i.kind,
                "email": i.email,
                "status": i.status,
                "created_at": time(i.created_at),
                "expires_at": time(i.expires_at),
            })
        })
        .collect();
    let businesses: Vec<_> = found
        .businesses
        .iter()
        .map(|b| {
            serde_json::json!({
                "id": b.id.to_string(),
                "public_id": b.public_id,
                "name": b.name,
                "created_at": time(b.created_at),
            })
        })
        .collect();
    render_page(
        &session,
        "search",
        "search.html",
        serde_json::json!({
            "q": query.q.trim(),
            "searched": !query.q.trim().is_empty(),
            "invitations": invitations,
            "businesses": businesses,
        }),
    )
}
