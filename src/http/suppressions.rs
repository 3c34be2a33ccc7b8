//! R45: the suppression list. `GET /v1/suppressions` reads it (scope
//! `read`); `POST` and `DELETE` change it (scope `admin`, R47: the list is
//! the daemon's, shared by every business).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::HttpState;
use super::error::{ApiError, Problem};
use super::json::{RawPath, StrictJson, StrictQuery};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{decode_cursor, next_cursor, parse_limit};
use super::wire::Page;
use crate::domain::{Email, SuppressionReason};
use crate::store::{SuppressionQuery, SuppressionRecord};

/// Why an address is on the list.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the wire writes `SuppressionReason::as_str`
pub enum SuppressionReasonName {
    HardBounce,
    Complaint,
    Manual,
}

/// One address on the suppression list.
#[derive(Serialize, ToSchema)]
pub struct SuppressionJson {
    /// In lower case: addresses are compared case-insensitively.
    #[schema(value_type = super::openapi::values::EmailText)]
    pub email: String,
    #[schema(value_type = SuppressionReasonName)]
    pub reason: &'static str,
    /// Who listed it: `api`, or the feedback's source (`smtp`, a provider).
    #[schema(example = "smtp")]
    pub source: String,
    /// The bounce's status and diagnostic, or the complaint's type; `null`
    /// for an address listed by hand.
    #[schema(example = "5.1.1 smtp; 550 5.1.1 user unknown")]
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<&SuppressionRecord> for SuppressionJson {
    fn from(s: &SuppressionRecord) -> Self {
        SuppressionJson {
            email: s.email.as_str().to_owned(),
            reason: s.reason.as_str(),
            source: s.source.clone(),
            detail: s.detail.clone(),
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SuppressionParams {
    /// Only this address (compared case-insensitively).
    #[param(value_type = Option<super::openapi::values::EmailText>)]
    pub email: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (base64url, never empty).
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

fn parse_params(q: &SuppressionParams) -> Result<SuppressionQuery, ApiError> {
    let email = q
        .email
        .as_deref()
        .map(|raw| Email::parse_field(raw, "email"))
        .transpose()?;
    let after = q
        .cursor
        .as_deref()
        .map(|raw| decode_cursor(raw, |b| String::from_utf8(b.to_vec()).ok()))
        .transpose()?;
    Ok(SuppressionQuery {
        email,
        after,
        limit: parse_limit(q.limit.as_deref())?,
    })
}

/// The suppression list, by address; the cursor is the last item's address.
#[utoipa::path(
    get,
    path = "/v1/suppressions",
    tag = "deliverability",
    params(SuppressionParams),
    responses(
        (status = 200, description = "One page of the suppression list, by address", body = Page<SuppressionJson>),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_suppressions(
    State(state): State<HttpState>,
    StrictQuery(query): StrictQuery<SuppressionParams>,
) -> Result<Json<Page<SuppressionJson>>, ApiError> {
    let query = parse_params(&query)?;
    let found = state.services.list_suppressions(&query).await?;
    let next_cursor = next_cursor(&found, query.limit, |s| {
        s.email.as_str().as_bytes().to_vec()
    });
    Ok(Json(Page {
        items: found.iter().map(SuppressionJson::from).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppressionBody {
    #[schema(value_type = super::openapi::values::EmailText)]
    pub email: String,
    /// Only `manual` (the default): bounces and complaints are listed by
    /// the feedback that reports them.
    #[schema(value_type = Option<String>, example = "manual")]
    pub reason: Option<String>,
}

/// Puts an address on the list by hand: no business can invite it until it
/// is taken off. An address already listed keeps its entry, which is
/// answered.
#[utoipa::path(
    post,
    path = "/v1/suppressions",
    tag = "deliverability",
    request_body = AddSuppressionBody,
    security(("api_key" = ["admin"])),
    responses(
        (status = 201, description = "The address's entry on the list", body = SuppressionJson),
        (status = 503, response = Unavailable),
    )
)]
pub async fn add_suppression(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<AddSuppressionBody>,
) -> Result<(StatusCode, Json<SuppressionJson>), ApiError> {
    let email = Email::parse_field(&body.email, "email")?;
    let reason = match body.reason.as_deref() {
        Some(raw) => SuppressionReason::parse_api(raw, "reason")?,
        None => SuppressionReason::Manual,
    };
    let record = state.services.add_suppression(email, reason, None).await?;
    Ok((StatusCode::CREATED, Json(SuppressionJson::from(&record))))
}

/// Takes an address off the list: it can be invited again.
#[utoipa::path(
    delete,
    path = "/v1/suppressions/{email}",
    tag = "deliverability",
    params(("email" = super::openapi::values::EmailText, Path, description = "The address (any case)")),
    security(("api_key" = ["admin"])),
    responses(
        (status = 204, description = "Taken off the list"),
        (status = 404, description = "`not_found`: the address is not on the list", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn remove_suppression(
    State(state): State<HttpState>,
    RawPath(email): RawPath<String>,
) -> Result<StatusCode, ApiError> {
    let email = Email::parse_field(&email, "email")?;
    state.services.remove_suppression(&email).await?;
    Ok(StatusCode::NO_CONTENT)
}
