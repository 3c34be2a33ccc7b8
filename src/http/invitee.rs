//! The invitee's side (R35, R37): `POST /v1/invitations/preview` (what a
//! token opens, before anyone acts) and `GET /v1/users/{user_id}/invitations`
//! (the member invitations addressed to a user, in every business). The
//! answers themselves are the accept and decline routes, by token
//! (`invitations`) or by id (`partners`, which serves both kinds).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::HttpState;
use super::access::BusinessRefJson;
use super::error::{ApiError, Problem};
use super::json::{RawPath, StrictJson, StrictQuery};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{decode_cursor, next_cursor, parse_limit};
use super::wire::Page;
use crate::domain::invitee::unacceptable;
use crate::domain::{InvitationId, UserId};
use crate::service::invitee::UserInvitationsQuery;
use crate::store::InviteeInvitationRecord;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// The token of the email's accept link.
    pub token: String,
}

/// Who sent an invitation, as its invitee sees them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InviterJson {
    pub user_id: String,
    /// `null` when the inviter has none (or is no longer registered).
    pub display_name: Option<String>,
}

/// R35: a member invitation as the holder of its token may see it. No
/// address: the token holder learns nothing they could not read in the
/// email.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PreviewJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// Always `member`: a token opens member invitations only.
    #[schema(value_type = super::openapi::values::InvitationKind)]
    pub kind: &'static str,
    pub business: BusinessRefJson,
    pub invited_by: InviterJson,
    pub role: Option<String>,
    pub message: Option<String>,
    pub locale: String,
    /// As of now: a pending invitation past its expiry is `expired`, even
    /// before the sweep moves it.
    #[schema(value_type = super::openapi::values::InvitationStatus)]
    pub status: &'static str,
    pub expires_at: DateTime<Utc>,
    /// Whether an accept could succeed now (R15 and R13 aside).
    pub can_accept: bool,
    /// Why not, when `can_accept` is false; `null` otherwise.
    #[schema(required = true, value_type = Option<super::openapi::values::PreviewReason>)]
    pub reason: Option<&'static str>,
}

impl From<&InviteeInvitationRecord> for PreviewJson {
    fn from(r: &InviteeInvitationRecord) -> Self {
        let i = &r.invitation;
        let reason = unacceptable(&i.view(), r.read_at);
        PreviewJson {
            id: i.id.to_string(),
            kind: i.kind.as_str(),
            business: business_ref(r),
            invited_by: inviter(r),
            role: i.role.as_ref().map(|role| role.as_str().to_string()),
            message: i.message.clone(),
            locale: i.locale.as_str().to_string(),
            status: i.view().effective_status(r.read_at).as_str(),
            expires_at: i.expires_at,
            can_accept: reason.is_none(),
            reason: reason.map(|r| r.as_str()),
        }
    }
}

/// R37: one member invitation in a user's list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserInvitationJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// Always `member`.
    #[schema(value_type = super::openapi::values::InvitationKind)]
    pub kind: &'static str,
    pub business: BusinessRefJson,
    pub invited_by: InviterJson,
    /// The address it was sent to (the user's, in any case).
    pub email: Option<String>,
    pub role: Option<String>,
    pub message: Option<String>,
    pub locale: String,
    /// As of now: a pending invitation past its expiry is `expired`.
    #[schema(value_type = super::openapi::values::InvitationStatus)]
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&InviteeInvitationRecord> for UserInvitationJson {
    fn from(r: &InviteeInvitationRecord) -> Self {
        let i = &r.invitation;
        UserInvitationJson {
            id: i.id.to_string(),
            kind: i.kind.as_str(),
            business: business_ref(r),
            invited_by: inviter(r),
            email: i.email.as_ref().map(|e| e.as_str().to_string()),
            role: i.role.as_ref().map(|role| role.as_str().to_string()),
            message: i.message.clone(),
            locale: i.locale.as_str().to_string(),
            status: i.view().effective_status(r.read_at).as_str(),
            created_at: i.created_at,
            expires_at: i.expires_at,
            updated_at: i.updated_at,
        }
    }
}

fn business_ref(r: &InviteeInvitationRecord) -> BusinessRefJson {
    BusinessRefJson {
        id: r.invitation.business_id.to_string(),
        name: r.business_name.clone(),
    }
}

fn inviter(r: &InviteeInvitationRecord) -> InviterJson {
    InviterJson {
        user_id: r.invitation.invited_by.as_str().to_string(),
        display_name: r.inviter_display_name.clone(),
    }
}

/// R35: reads the invitation a token opens and changes nothing. Every token
/// that opens no member invitation (malformed, unknown, a partner
/// invitation's) gets the same `404 token_invalid`, so a preview cannot be
/// used to probe.
#[utoipa::path(
    post,
    path = "/v1/invitations/preview",
    operation_id = "preview_invitation",
    tag = "invitations",
    request_body = PreviewBody,
    responses(
        (status = 200, description = "The invitation, whether it can still be accepted, and why not", body = PreviewJson),
        (status = 404, description = "`token_invalid`: no member invitation has this token", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn preview(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<PreviewBody>,
) -> Result<Json<PreviewJson>, ApiError> {
    let found = state.services.preview(&body.token).await?;
    Ok(Json(PreviewJson::from(&found)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserInvitationsParams {
    /// Only invitations in this status as of now (`pending`: those that
    /// can still be accepted); all when left out.
    #[param(value_type = Option<super::openapi::values::InvitationStatus>)]
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (base64url, never empty).
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

fn parse_user_query(q: &UserInvitationsParams) -> Result<UserInvitationsQuery, ApiError> {
    let status = super::invitations::parse_status_param(q.status.as_deref())?;
    let before = q
        .cursor
        .as_deref()
        .map(|raw| decode_cursor(raw, |b| uuid::Uuid::from_slice(b).ok().map(InvitationId)))
        .transpose()?;
    Ok(UserInvitationsQuery {
        status,
        before,
        limit: parse_limit(q.limit.as_deref())?,
    })
}

/// R37: the member invitations addressed to the user's email, in every
/// business, newest first; the cursor is the last item's id.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/invitations",
    operation_id = "list_user_invitations",
    tag = "invitations",
    params(("user_id" = super::openapi::values::UserIdText, Path, description = "The app's own id of the user"), UserInvitationsParams),
    responses(
        (status = 200, description = "One page of the member invitations addressed to the user, newest first", body = Page<UserInvitationJson>),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_user_invitations(
    State(state): State<HttpState>,
    RawPath(user_id): RawPath<String>,
    StrictQuery(query): StrictQuery<UserInvitationsParams>,
) -> Result<Json<Page<UserInvitationJson>>, ApiError> {
    let user = UserId::parse_field(&user_id, "user_id")?;
    let query = parse_user_query(&query)?;
    let limit = query.limit;
    let found = state.services.user_invitations(&user, query).await?;
    let next_cursor = next_cursor(&found, limit, |r| r.invitation.id.0.as_bytes().to_vec());
    Ok(Json(Page {
        items: found.iter().map(UserInvitationJson::from).collect(),
        next_cursor,
    }))
}
