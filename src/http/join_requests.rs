//! Join requests (R51, R53): `POST /v1/join-requests` (a user asks to join
//! a business by its public Business ID), `GET
//! /v1/businesses/{id}/join-requests` (the requests its owner and inviters
//! answer), `GET /v1/join-requests/{id}` and its timeline, and the answers
//! `POST /v1/join-requests/{id}/approve|deny`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::HttpState;
use super::businesses::ActorQuery;
use super::error::{ApiError, Problem};
use super::invitations::{ActorBody, parse_message};
use super::json::{RawPath, StrictJson, StrictQuery, actor_from_query, business_path};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{decode_cursor, next_cursor, parse_limit};
use super::wire::{Items, MemberJson, Page, TimelineItemJson};
use crate::domain::{JoinRequestId, JoinRequestStatus, PublicBusinessId, UserId};
use crate::service::join_requests::{CreateJoinRequest, JoinAnswer};
use crate::store::{JoinRequestQuery, JoinRequestRecord};

/// Where a join request is in its life (R51).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the wire writes `JoinRequestStatus::as_str`
pub enum JoinRequestStatusName {
    Pending,
    Approved,
    Denied,
    Expired,
}

/// One join request.
#[derive(Serialize, ToSchema)]
pub struct JoinRequestJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// The business's internal id.
    #[schema(value_type = uuid::Uuid)]
    pub business_id: String,
    /// The user who asked.
    pub user_id: String,
    pub message: Option<String>,
    #[schema(value_type = JoinRequestStatusName)]
    pub status: &'static str,
    /// The role it was approved with; `null` unless approved.
    pub role: Option<String>,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<&JoinRequestRecord> for JoinRequestJson {
    fn from(r: &JoinRequestRecord) -> Self {
        JoinRequestJson {
            id: r.id.to_string(),
            business_id: r.business_id.to_string(),
            user_id: r.user_id.as_str().to_string(),
            message: r.message.clone(),
            status: r.status.as_str(),
            role: r.role.as_ref().map(|role| role.as_str().to_string()),
            decided_by: r.decided_by.as_ref().map(|u| u.as_str().to_string()),
            decided_at: r.decided_at,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// An approval's answer: the request and the new membership.
#[derive(Serialize, ToSchema)]
pub struct ApprovedJson {
    pub request: JoinRequestJson,
    pub membership: MemberJson,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinRequestBody {
    /// The user asking to join.
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub user_id: String,
    /// The business's public Business ID (the one its members see).
    #[schema(value_type = super::openapi::values::PublicBusinessIdText)]
    pub business_id: String,
    /// At most 1,000 characters (R7).
    #[schema(value_type = Option<super::openapi::values::MessageText>)]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    /// The role the user gets: not above the approver's, never `owner`
    /// (R3); the business's default role if left out.
    #[schema(value_type = Option<super::openapi::values::RoleName>)]
    pub role: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JoinRequestListQuery {
    /// The acting user: the owner or a member with `members.invite`.
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub actor_user_id: Option<String>,
    /// Only requests in this status.
    #[param(value_type = Option<JoinRequestStatusName>)]
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// A join request `{id}` from the path; `404` for one that is not a UUID.
fn request_path(raw: &str) -> Result<JoinRequestId, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(JoinRequestId)
        .map_err(|_| ApiError::not_found("no such join request"))
}

/// A user asks to join a business (R51). Its owner and every member with
/// `members.invite` get the email "{name} asked to join {business}".
#[utoipa::path(
    post,
    path = "/v1/join-requests",
    tag = "join requests",
    request_body = CreateJoinRequestBody,
    responses(
        (status = 201, description = "The pending request", body = JoinRequestJson),
        (status = 404, description = "`not_found`: no business has this Business ID", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the user is already a member, or already has a pending request to this business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 429, description = "`rate_limited`: the user's join requests of the window are used up (`join_requests.rate_limit`)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until the user may ask again"))),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_join_request(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<CreateJoinRequestBody>,
) -> Result<(StatusCode, Json<JoinRequestJson>), ApiError> {
    let user = UserId::parse_field(&body.user_id, "user_id")?;
    let business = PublicBusinessId::parse(&body.business_id)
        .map_err(|m| ApiError::validation("business_id", m))?;
    let message = body.message.map(parse_message).transpose()?.flatten();
    let request = state
        .services
        .create_join_request(CreateJoinRequest {
            user,
            business,
            message,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(JoinRequestJson::from(&request))))
}

/// A business's join requests, newest first; the cursor is the last item's id.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/join-requests",
    tag = "join requests",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), JoinRequestListQuery),
    responses(
        (status = 200, description = "One page of join requests, newest first", body = Page<JoinRequestJson>),
        (status = 403, description = "`forbidden`: the actor is not the owner or a member with `members.invite`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_join_requests(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<JoinRequestListQuery>,
) -> Result<Json<Page<JoinRequestJson>>, ApiError> {
    let business = business_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let status = query
        .status
        .as_deref()
        .map(|raw| {
            JoinRequestStatus::parse(raw).ok_or_else(|| {
                ApiError::validation("status", "must be pending, approved, denied or expired")
            })
        })
        .transpose()?;
    let before = query
        .cursor
        .as_deref()
        .map(|raw| decode_cursor(raw, |b| uuid::Uuid::from_slice(b).ok().map(JoinRequestId)))
        .transpose()?;
    let limit = parse_limit(query.limit.as_deref())?;
    let found = state
        .services
        .list_join_requests(
            JoinRequestQuery {
                business_id: business,
                status,
                before,
                limit,
            },
            &actor,
        )
        .await?;
    let next_cursor = next_cursor(&found, limit, |r| r.id.0.as_bytes().to_vec());
    Ok(Json(Page {
        items: found.iter().map(JoinRequestJson::from).collect(),
        next_cursor,
    }))
}

/// One join request, for the user who asked or the business's owner and
/// inviters.
#[utoipa::path(
    get,
    path = "/v1/join-requests/{id}",
    tag = "join requests",
    params(("id" = uuid::Uuid, Path, description = "The join request"), ActorQuery),
    responses(
        (status = 200, description = "The join request", body = JoinRequestJson),
        (status = 403, description = "`forbidden`: the actor is neither the requester nor the owner or a member with `members.invite`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such join request", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get_join_request(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<Json<JoinRequestJson>, ApiError> {
    let id = request_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let request = state.services.get_join_request(id, &actor).await?;
    Ok(Json(JoinRequestJson::from(&request)))
}

/// The events of one join request, oldest first (R53): its creation, its
/// answer and, for an approval, the `member.added` (`via: request`) it made.
#[utoipa::path(
    get,
    path = "/v1/join-requests/{id}/timeline",
    tag = "join requests",
    params(("id" = uuid::Uuid, Path, description = "The join request"), ActorQuery),
    responses(
        (status = 200, description = "The request's events, oldest first", body = Items<TimelineItemJson>),
        (status = 403, description = "`forbidden`: the actor is neither the requester nor the owner or a member with `members.invite`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such join request", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn join_request_timeline(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<Json<Items<TimelineItemJson>>, ApiError> {
    let id = request_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let mut entries = state.services.join_request_timeline(id, &actor).await?;
    entries.sort_by_key(|e| e.at());
    Ok(Json(Items {
        items: entries.iter().map(TimelineItemJson::from).collect(),
    }))
}

/// Approves a pending request: the user becomes a member with the role
/// chosen (R3, within the seats, R9) and is told by email.
#[utoipa::path(
    post,
    path = "/v1/join-requests/{id}/approve",
    tag = "join requests",
    params(("id" = uuid::Uuid, Path, description = "The join request")),
    request_body = ApproveBody,
    responses(
        (status = 200, description = "The approved request and the new membership", body = ApprovedJson),
        (status = 403, description = "`forbidden`: the actor lacks `members.invite`, or the role is above theirs (or `owner`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such join request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition` (no longer pending: approved, denied or expired), `conflict` (already a member) or `seats_exhausted`", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn approve_join_request(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<ApproveBody>,
) -> Result<Json<ApprovedJson>, ApiError> {
    let id = request_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let (request, membership) = state
        .services
        .approve_join_request(id, actor, body.role)
        .await?;
    Ok(Json(ApprovedJson {
        request: JoinRequestJson::from(&request),
        membership: MemberJson::from(&membership),
    }))
}

/// Denies a pending request; the user is told by email.
#[utoipa::path(
    post,
    path = "/v1/join-requests/{id}/deny",
    tag = "join requests",
    params(("id" = uuid::Uuid, Path, description = "The join request")),
    request_body = ActorBody,
    responses(
        (status = 200, description = "The denied request", body = JoinRequestJson),
        (status = 403, description = "`forbidden`: the actor lacks `members.invite`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such join request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition`: no longer pending (approved, denied or expired)", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn deny_join_request(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<ActorBody>,
) -> Result<Json<JoinRequestJson>, ApiError> {
    let id = request_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let outcome = state
        .services
        .answer_join_request(id, JoinAnswer::Deny { actor })
        .await?;
    Ok(Json(JoinRequestJson::from(&outcome.request)))
}
