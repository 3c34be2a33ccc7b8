//! The outboxes and the failed deliveries: `GET /console/outbox` (the
//! email outbox and the event sinks, webhook and NATS: depth, oldest age;
//! sent and failed emails, deliveries to webhook endpoints, and those of
//! each other sink (NATS, configured webhooks, from their counts per
//! minute), per minute over the last hour as SVG bar charts drawn here),
//! `GET /console/failed` (failed emails, filtered),
//! `POST /console/failed/{id}/retry`, and `GET`/`POST
//! /console/failed/retry-all` (the count shown before confirming).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{HttpState, acting_session, error_page, render_page, service_error, session_and, time};
use crate::service::console::{Chart, MinuteCounts};
use crate::store::FailedFilter;

/// The chart's geometry: one slot of this many pixels per minute.
const SLOT: u32 = 12;
const BAR: u32 = 5;
const CHART_HEIGHT: u32 = 120;

/// The bars of the chart, scaled to its tallest.
fn bars(minutes: &[MinuteCounts]) -> (u32, Vec<serde_json::Value>) {
    let max = minutes
        .iter()
        .map(|m| m.sent.max(m.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let height = |n: u32| (u64::from(n) * u64::from(CHART_HEIGHT) / u64::from(max)) as u32;
    let count = minutes.len();
    let bars = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let x = i as u32 * SLOT;
            let ago = count - 1 - i;
            serde_json::json!({
                "ago": ago,
                "sent": m.sent,
                "failed": m.failed,
                "sent_x": x,
                "failed_x": x + BAR,
                "sent_h": height(m.sent),
                "failed_h": height(m.failed),
                "sent_y": CHART_HEIGHT - height(m.sent),
                "failed_y": CHART_HEIGHT - height(m.failed),
            })
        })
        .collect();
    (max, bars)
}

pub async fn page_handler(state: &HttpState, headers: &HeaderMap) -> Response {
    let reads = state.services.console_outbox();
    let (session, view) = match session_and(state, headers, reads).await {
        Ok(found) => found,
        Err(elsewhere) => return elsewhere,
    };
    let sinks: Vec<_> = view
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
    let mut charts: Vec<_> = [
        (
            "emails",
            "Emails sent and failed per minute, last hour",
            (
                "sent",
                "failed for good (attempts to be retried count as neither)",
            ),
            &view.emails,
        ),
        (
            "webhooks",
            "Deliveries to webhook endpoints per minute, last hour",
            ("answered 2xx", "failed (each retry counts again)"),
            &view.webhooks,
        ),
    ]
    .into_iter()
    .map(|(id, title, legend, chart)| chart_context(id, title, legend, chart, None))
    .collect();
    // The sinks without per-attempt rows (NATS, configured webhooks), from
    // their counts per minute.
    charts.extend(view.sink_charts.iter().enumerate().map(|(i, c)| {
        chart_context(
            &format!("sink-{i}"),
            &format!("{}: events delivered per minute, last hour", c.sink),
            ("delivered", "failed attempts (each retry counts again)"),
            &c.chart,
            Some(&c.sink),
        )
    }));
    render_page(
        &session,
        "outbox",
        "outbox.html",
        serde_json::json!({
            "email_depth": view.email_depth,
            "email_oldest_age_seconds": format!("{:.0}", view.email_oldest_age_seconds),
            "sinks": sinks,
            "charts": charts,
            "now": time(view.now),
        }),
    )
}

/// One chart as its template draws it.
fn chart_context(
    id: &str,
    title: &str,
    (sent_label, failed_label): (&str, &str),
    chart: &Chart,
    sink: Option<&str>,
) -> serde_json::Value {
    let (max, bars) = bars(&chart.minutes);
    serde_json::json!({
        "id": id,
        "sink": sink,
        "title": title,
        "sent_label": sent_label,
        "failed_label": failed_label,
        "bars": bars,
        "max": max,
        "total_sent": chart.minutes.iter().map(|m| m.sent).sum::<u32>(),
        "total_failed": chart.minutes.iter().map(|m| m.failed).sum::<u32>(),
        "width": SLOT * chart.minutes.len() as u32,
        "height": CHART_HEIGHT,
        "bar_width": BAR,
        "truncated": chart.truncated,
    })
}

pub async fn page(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    page_handler(&state, &headers).await
}

#[derive(Deserialize, Default)]
pub struct FilterQuery {
    recipient: Option<String>,
    template: Option<String>,
}

impl FilterQuery {
    fn filter(&self) -> FailedFilter {
        let clean = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        FailedFilter {
            recipient: clean(&self.recipient),
            template: clean(&self.template),
        }
    }
}

fn filter_context(filter: &FailedFilter) -> serde_json::Value {
    serde_json::json!({
        "recipient": filter.recipient.clone().unwrap_or_default(),
        "template": filter.template.clone().unwrap_or_default(),
    })
}

/// `GET /console/failed?recipient=&template=`.
pub async fn failed(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<FilterQuery>,
) -> Response {
    let filter = query.filter();
    let reads = state.services.console_failed(&filter);
    let (session, view) = match session_and(&state, &headers, reads).await {
        Ok(found) => found,
        Err(elsewhere) => return elsewhere,
    };
    let emails: Vec<_> = view
        .emails
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id.to_string(),
                "invitation_id": e.invitation_id.map(|i| i.to_string()),
                "business_id": e.business_id.to_string(),
                "template": e.template,
                "recipient": e.recipient,
                "attempts": e.attempts,
                "last_error": e.last_error,
                "failed_at": time(e.updated_at),
            })
        })
        .collect();
    render_page(
        &session,
        "failed",
        "failed.html",
        serde_json::json!({
            "emails": emails,
            "total": view.total,
            "filter": filter_context(&filter),
        }),
    )
}

#[derive(Deserialize)]
pub struct RetryOne {
    csrf: Option<String>,
    /// Where to go back to (a console page), else the failed list.
    back: Option<String>,
}

/// Only a console path is a place to go back to.
fn back_to(back: Option<&str>) -> String {
    match back {
        Some(b) if b.starts_with("/console/") && !b.starts_with("//") && !b.contains("://") => {
            b.to_owned()
        }
        _ => "/console/failed".to_owned(),
    }
}

/// `POST /console/failed/{id}/retry`: puts one failed email back in the
/// outbox (`admin`), then 303 back.
pub async fn retry_one(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    Form(input): Form<RetryOne>,
) -> Response {
    let session = match acting_session(&state, &headers, input.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let Ok(id) = raw_id.parse::<uuid::Uuid>() else {
        return error_page(StatusCode::NOT_FOUND, "Not found: no such email");
    };
    match state
        .services
        .console_retry(&session.key_name, Some(id), &FailedFilter::default())
        .await
    {
        Ok(done) if done.is_empty() => error_page(
            StatusCode::CONFLICT,
            "This email is not failed (any more): nothing was retried.",
        ),
        Ok(_) => Redirect::to(&back_to(input.back.as_deref())).into_response(),
        Err(e) => service_error(e),
    }
}

/// `GET /console/failed/retry-all?recipient=&template=`: how many emails
/// the filter matches, and the form that retries them.
pub async fn confirm_retry_all(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<FilterQuery>,
) -> Response {
    let filter = query.filter();
    let reads = state.services.console_count_failed(&filter);
    let (session, count) = match session_and(&state, &headers, reads).await {
        Ok(found) => found,
        Err(elsewhere) => return elsewhere,
    };
    render_page(
        &session,
        "retry-all",
        "retry_all.html",
        serde_json::json!({
            "count": count,
            "limit": crate::service::console::RETRY_ALL_LIMIT,
            "filter": filter_context(&filter),
        }),
    )
}

#[derive(Deserialize)]
pub struct RetryAll {
    csrf: Option<String>,
    recipient: Option<String>,
    template: Option<String>,
}

/// `POST /console/failed/retry-all`: retries every failed email the filter
/// matches (`admin`), then 303 to the failed list.
pub async fn retry_all(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Form(input): Form<RetryAll>,
) -> Response {
    let session = match acting_session(&state, &headers, input.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let filter = FilterQuery {
        recipient: input.recipient,
        template: input.template,
    }
    .filter();
    match state
        .services
        .console_retry(&session.key_name, None, &filter)
        .await
    {
        Ok(_) => Redirect::to("/console/failed").into_response(),
        Err(e) => service_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_tallest() {
        let minutes = [
            MinuteCounts { sent: 4, failed: 1 },
            MinuteCounts { sent: 0, failed: 0 },
        ];
        let (max, bars) = bars(&minutes);
        assert_eq!(max, 4);
        assert_eq!(bars[0]["sent_h"], CHART_HEIGHT);
        assert_eq!(bars[0]["failed_h"], CHART_HEIGHT / 4);
        assert_eq!(bars[1]["ago"], 0);
    }

    #[test]
    fn only_console_paths_are_gone_back_to() {
        assert_eq!(
            back_to(Some("/console/invitations/x")),
            "/console/invitations/x"
        );
        for elsewhere in [
            None,
            Some("https://evil.test/"),
            Some("//evil.test"),
            Some("/v1/x"),
        ] {
            assert_eq!(back_to(elsewhere), "/console/failed");
        }
    }
}
