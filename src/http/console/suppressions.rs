//! `GET /console/suppressions?email=&after=`: the suppression list (R45),
//! a page at a time by address, or one address.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::{HttpState, render_page, session_and, time};
use crate::domain::Email;
use crate::store::CONSOLE_LIMIT;

#[derive(Deserialize)]
pub struct ListQuery {
    email: Option<String>,
    after: Option<String>,
}

pub async fn page_of(state: &HttpState, headers: &HeaderMap, query: ListQuery) -> Response {
    let typed = query
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    // An address that does not parse is on no list: nothing is found.
    let (email, unparsable) = match typed.map(Email::parse) {
        Some(Ok(email)) => (Some(email), false),
        Some(Err(_)) => (None, true),
        None => (None, false),
    };
    let after = query.after.filter(|a| !a.is_empty());
    let reads = async {
        if unparsable {
            Ok(Vec::new())
        } else {
            state.services.console_suppressions(email, after).await
        }
    };
    let (session, records) = match session_and(state, headers, reads).await {
        Ok(found) => found,
        Err(elsewhere) => return elsewhere,
    };
    let next = (records.len() as u32 >= CONSOLE_LIMIT)
        .then(|| records.last().map(|r| r.email.to_string()))
        .flatten();
    let entries: Vec<_> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "email": r.email.to_string(),
                "reason": r.reason.to_string(),
                "source": r.source,
                "detail": r.detail,
                "created_at": time(r.created_at),
            })
        })
        .collect();
    render_page(
        &session,
        "suppressions",
        "suppressions.html",
        serde_json::json!({
            "entries": entries,
            "email": typed.unwrap_or_default(),
            "next": next,
        }),
    )
}

pub async fn page(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    page_of(&state, &headers, query).await
}
