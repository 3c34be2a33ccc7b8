//! Invitations: create (R7–R9), read, list, timeline (R34), quota (R33), and
//! the commands on one invitation (resend, cancel, accept and decline by
//! token, repeat-safe by R36), which go through the invitation's actor.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::HttpState;
use super::access::{GrantBody, parse_grants};
use super::businesses::ActorQuery;
use super::error::{ApiError, Problem};
use super::json::{
    RawPath, StrictJson, StrictQuery, actor_from_query, business_path, invitation_path,
};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{decode_cursor, next_cursor, parse_limit};
use super::wire::{
    AcceptJson, AcceptUrlJson, InvitationJson, Items, MemberJson, Page, QuotaJson, TimelineItemJson,
};
use std::time::Duration;

use crate::config::{format_duration, parse_duration};
use crate::domain::access::InvitationGrant;
use crate::domain::options::MIN_TTL;
use crate::domain::{
    DeliveryMode, Email, InvitationId, InvitationKind, InvitationStatus, Locale, MAX_MESSAGE_CHARS,
    Metadata, UserId,
};
use crate::service::invitations::{CreateInvitations, InvitationCommand, Invitee};
use crate::store::InvitationQuery;

/// The most invitees one request may name.
pub const MAX_INVITEES: usize = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationsBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    /// 1 to 100 addresses; all are invited or none.
    #[schema(min_items = 1, max_items = 100)]
    pub invitees: Vec<InviteeBody>,
    /// At most 1,000 characters, shown in the email.
    #[schema(value_type = Option<super::openapi::values::MessageText>)]
    pub message: Option<String>,
    /// Profile grants every invitation of the request carries (R7, R13).
    pub grants: Option<Vec<GrantBody>>,
    /// R38: `email` (the default) has the daemon email the invitation and its
    /// reminders; with `none` nothing is sent and each created item carries
    /// its `accept_url`, once, for the app to deliver.
    #[schema(value_type = Option<super::openapi::values::DeliveryMode>)]
    pub delivery: Option<String>,
    /// R39: the invitations' lifetime, from `1h` up to `invitations.max_ttl`
    /// (default `30d`); `invitations.ttl` when left out.
    #[schema(value_type = Option<super::openapi::values::TtlText>)]
    pub ttl: Option<String>,
    /// R39: the app's own data, a JSON object of at most 4 KiB (serialised),
    /// kept with each invitation, returned with it and in its
    /// `invitation.created` event; never put into an email.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteeBody {
    #[schema(value_type = super::openapi::values::EmailText)]
    pub email: String,
    /// A role of the business's catalog; the preset's default when left out.
    #[schema(value_type = Option<super::openapi::values::RoleName>)]
    pub role: Option<String>,
    /// The email's language (BCP 47); the business's, then the daemon's default.
    #[schema(value_type = Option<super::openapi::values::LocaleTag>)]
    pub locale: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The acting user.
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub actor_user_id: Option<String>,
    #[param(value_type = Option<super::openapi::values::InvitationStatus>)]
    pub status: Option<String>,
    #[param(value_type = Option<super::openapi::values::InvitationKind>)]
    pub kind: Option<String>,
    /// `outgoing` (sent by the business, the default) or `incoming` (partner
    /// invitations it received).
    #[param(pattern = "^(incoming|outgoing)$")]
    pub direction: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (base64url, never empty).
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// The body of commands given by a member of the sending business.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
}

/// R46: the corrected address of an invitation whose email did not get
/// through.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectAddressBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    /// The address the invitation goes to from now on.
    #[schema(value_type = super::openapi::values::EmailText)]
    pub email: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The token of the email's accept link.
    pub token: String,
    /// The user who accepts, registered with `PUT /v1/users/{user_id}`.
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub user_id: String,
    /// The user completed two-factor authentication (R15); `false` when left out.
    #[serde(default)]
    pub mfa_verified: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclineBody {
    pub token: String,
}

/// Invites one or more addresses, all or nothing (R7–R9).
#[utoipa::path(
    post,
    path = "/v1/businesses/{id}/invitations",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id")),
    request_body = CreateInvitationsBody,
    responses(
        (status = 201, description = "The invitations, one per invitee; with `delivery: \"none\"` each carries its `accept_url` (R38)", body = Items<InvitationJson>),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict` (an invitee is already a member or has a pending invitation) or `seats_exhausted` (R9)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (a field is invalid; `errors` names it) or `address_suppressed` (R45: an invitee's address is on the suppression list; `errors` names each such `invitees[i].email`; nothing is created)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: the 24-hour invitation quota is used up (R8)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until a slot frees up"))),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_invitations(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<CreateInvitationsBody>,
) -> Result<Response, ApiError> {
    let business = business_path(&id)?;
    let (req, grants) = parse_create(business, body, state.services.settings.max_ttl)?;
    let created = state
        .services
        .create_invitations_granting(req, grants, None)
        .await?;
    let items = created
        .iter()
        .map(|inv| InvitationJson::created(inv, state.services.app_accept_url(inv)))
        .collect();
    Ok((StatusCode::CREATED, Json(Items { items })).into_response())
}

fn parse_create(
    business: crate::domain::BusinessId,
    body: CreateInvitationsBody,
    max_ttl: Duration,
) -> Result<(CreateInvitations, Vec<InvitationGrant>), ApiError> {
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    if body.invitees.is_empty() {
        return Err(ApiError::validation(
            "invitees",
            "must name at least one invitee",
        ));
    }
    if body.invitees.len() > MAX_INVITEES {
        return Err(ApiError::validation(
            "invitees",
            format!("may name at most {MAX_INVITEES} invitees"),
        ));
    }
    let mut invitees = Vec::with_capacity(body.invitees.len());
    for (i, invitee) in body.invitees.into_iter().enumerate() {
        invitees.push(Invitee {
            email: Email::parse_field(&invitee.email, &format!("invitees[{i}].email"))?,
            // The role is checked by the service against the business's catalog.
            role: invitee.role,
            locale: invitee
                .locale
                .as_deref()
                .map(|raw| Locale::parse_field(raw, &format!("invitees[{i}].locale")))
                .transpose()?,
        });
    }
    let message = body.message.map(parse_message).transpose()?.flatten();
    let grants = parse_grants(body.grants)?;
    let delivery = body
        .delivery
        .as_deref()
        .map(|raw| DeliveryMode::parse_field(raw, "delivery"))
        .transpose()?
        .unwrap_or_default();
    let ttl = body
        .ttl
        .as_deref()
        .map(|raw| parse_ttl(raw, max_ttl))
        .transpose()?;
    let metadata = body
        .metadata
        .map(|value| Metadata::parse_field(value, "metadata"))
        .transpose()?
        .unwrap_or_default();
    Ok((
        CreateInvitations {
            business,
            actor,
            invitees,
            message,
            delivery,
            ttl,
            metadata,
        },
        grants,
    ))
}

/// R39: a lifetime written as the configuration writes durations (`3d`,
/// `12h`), from 1h up to `invitations.max_ttl`.
pub(super) fn parse_ttl(raw: &str, max: Duration) -> Result<Duration, ApiError> {
    let range = || {
        ApiError::validation(
            "ttl",
            format!(
                "must be a duration from {} to {}, like 3d or 12h",
                format_duration(MIN_TTL),
                format_duration(max)
            ),
        )
    };
    let ttl = parse_duration(raw).map_err(|_| range())?;
    if ttl < MIN_TTL || ttl > max {
        return Err(range());
    }
    Ok(ttl)
}

/// The personal message (R7): at most 1,000 characters, and no control
/// characters but line breaks and tabs (R30: it goes into an email). An empty
/// message is no message.
pub(crate) fn parse_message(raw: String) -> Result<Option<String>, ApiError> {
    if raw.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::validation(
            "message",
            format!("must be at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::validation(
            "message",
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok((!raw.is_empty()).then_some(raw))
}

#[utoipa::path(
    get,
    path = "/v1/invitations/{id}",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The invitation"), ActorQuery),
    responses(
        (status = 200, description = "The invitation", body = InvitationJson),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such invitation (or not visible to the actor)", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get_invitation(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<Json<InvitationJson>, ApiError> {
    let id = invitation_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let invitation = state.services.get_invitation(id, &actor).await?;
    Ok(Json(InvitationJson::from(&invitation)))
}

/// Newest first; the cursor is the last item's id (ids are time-ordered v7
/// UUIDs, so "below the cursor" is "older than the last one seen").
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/invitations",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ListQuery),
    responses(
        (status = 200, description = "One page of invitations, newest first", body = Page<InvitationJson>),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_invitations(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ListQuery>,
) -> Result<Json<Page<InvitationJson>>, ApiError> {
    let business = business_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let query = parse_list(business, &query)?;
    let limit = query.limit;
    let found = state.services.list_invitations(query, &actor).await?;
    let next_cursor = next_cursor(&found, limit, |i| i.id.0.as_bytes().to_vec());
    Ok(Json(Page {
        items: found.iter().map(InvitationJson::from).collect(),
        next_cursor,
    }))
}

/// The `status` query parameter of the invitation lists.
pub(super) fn parse_status_param(raw: Option<&str>) -> Result<Option<InvitationStatus>, ApiError> {
    raw.map(|raw| {
        InvitationStatus::parse(raw).ok_or_else(|| {
            ApiError::validation(
                "status",
                "must be pending, accepted, declined, cancelled or expired",
            )
        })
    })
    .transpose()
}

fn parse_list(
    business: crate::domain::BusinessId,
    q: &ListQuery,
) -> Result<InvitationQuery, ApiError> {
    let status = parse_status_param(q.status.as_deref())?;
    let kind = q
        .kind
        .as_deref()
        .map(|raw| {
            InvitationKind::parse(raw).ok_or_else(|| {
                ApiError::validation("kind", "must be member, partner_invite or partner_request")
            })
        })
        .transpose()?;
    let incoming = match q.direction.as_deref() {
        None | Some("outgoing") => false,
        Some("incoming") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "direction",
                "must be incoming or outgoing",
            ));
        }
    };
    let before = q
        .cursor
        .as_deref()
        .map(|raw| decode_cursor(raw, |b| uuid::Uuid::from_slice(b).ok().map(InvitationId)))
        .transpose()?;
    Ok(InvitationQuery {
        business_id: business,
        incoming,
        status,
        kind,
        before,
        limit: parse_limit(q.limit.as_deref())?,
    })
}

/// Events and delivery attempts of one invitation, oldest first (R34).
#[utoipa::path(
    get,
    path = "/v1/invitations/{id}/timeline",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The invitation"), ActorQuery),
    responses(
        (status = 200, description = "The invitation's history, oldest first", body = Items<TimelineItemJson>),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such invitation (or not visible to the actor)", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn timeline(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<Json<Items<TimelineItemJson>>, ApiError> {
    let id = invitation_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let mut entries = state.services.timeline(id, &actor).await?;
    // Oldest first whatever order the store merged events and attempts in;
    // the sort is stable, so equal times keep the store's order.
    entries.sort_by_key(|e| e.at());
    Ok(Json(Items {
        items: entries.iter().map(TimelineItemJson::from).collect(),
    }))
}

/// `202`: the email is queued again, not yet sent (R14). For an invitation
/// the app delivers itself, `200` with its accept link (R38).
#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/resend",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The invitation")),
    request_body = ActorBody,
    responses(
        (status = 200, description = "R38: an invitation the app delivers itself (`delivery_mode: \"none\"`): its accept link again, the same as at creation; nothing is sent and nothing changes", body = AcceptUrlJson),
        (status = 202, description = "The email is queued again, with the same token", body = InvitationJson),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such invitation (or not visible to the actor)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition`: the invitation is no longer pending", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: inside the resend cooldown (R14)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until a resend is allowed"))),
        (status = 503, response = Unavailable),
    )
)]
pub async fn resend(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<ActorBody>,
) -> Result<Response, ApiError> {
    let id = invitation_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let outcome = state
        .invitations
        .execute(id, InvitationCommand::Resend { actor })
        .await?;
    if let Some(accept_url) = state.services.app_accept_url(&outcome.invitation) {
        return Ok((StatusCode::OK, Json(AcceptUrlJson { accept_url })).into_response());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(InvitationJson::from(&outcome.invitation)),
    )
        .into_response())
}

/// R46: gives a pending member invitation whose email failed, bounced or
/// was complained about a corrected address: a new token (the old one stops
/// working at once), a new email to the new address, the same quota slot.
#[utoipa::path(
    patch,
    path = "/v1/invitations/{id}",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The invitation")),
    request_body = CorrectAddressBody,
    responses(
        (status = 200, description = "The invitation with its new address; its new email is queued", body = InvitationJson),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks `members.invite`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition`: not a pending member invitation whose email failed, bounced or was complained about (one sent or still on its way may yet arrive); `conflict`: the new address is already a member or has a pending invitation", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn correct_address(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<CorrectAddressBody>,
) -> Result<Json<InvitationJson>, ApiError> {
    let id = invitation_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let email = Email::parse_field(&body.email, "email")?;
    let outcome = state
        .invitations
        .execute(id, InvitationCommand::CorrectAddress { actor, email })
        .await?;
    Ok(Json(InvitationJson::from(&outcome.invitation)))
}

#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/cancel",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The invitation")),
    request_body = ActorBody,
    responses(
        (status = 200, description = "The cancelled invitation", body = InvitationJson),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such invitation (or not visible to the actor)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition`: the invitation is no longer pending", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn cancel(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<ActorBody>,
) -> Result<Json<InvitationJson>, ApiError> {
    let id = invitation_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let outcome = state
        .invitations
        .execute(id, InvitationCommand::Cancel { actor })
        .await?;
    Ok(Json(InvitationJson::from(&outcome.invitation)))
}

/// R31: `201` with the new invitation that replaces an expired, declined or
/// cancelled one.
#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/renew",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The invitation")),
    request_body = ActorBody,
    responses(
        (status = 201, description = "The new invitation, with `renewed_from` (R31); with its `accept_url` when the app delivers it itself (R38)", body = InvitationJson),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such invitation (or not visible to the actor)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition` (still pending, or accepted), `conflict` or `seats_exhausted`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: the 24-hour invitation quota is used up (R8)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until a slot frees up"))),
        (status = 503, response = Unavailable),
    )
)]
pub async fn renew(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<ActorBody>,
) -> Result<Response, ApiError> {
    let id = invitation_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let renewed = state.services.renew_invitation(id, &actor).await?;
    let accept_url = state.services.app_accept_url(&renewed);
    Ok((
        StatusCode::CREATED,
        Json(InvitationJson::created(&renewed, accept_url)),
    )
        .into_response())
}

/// What is left of the 24-hour invitation quota (R33).
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/invitation-quota",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ActorQuery),
    responses(
        (status = 200, description = "The quota", body = QuotaJson),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn quota(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<Json<QuotaJson>, ApiError> {
    let business = business_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let status = state.services.invitation_quota(business, &actor).await?;
    Ok(Json(QuotaJson::from(&status)))
}

/// The recipient accepts with the token from the email (R12, R13, R15); the
/// user who accepted gets the same answer again (R36).
#[utoipa::path(
    post,
    path = "/v1/invitations/accept",
    tag = "invitations",
    request_body = AcceptBody,
    responses(
        (status = 200, description = "The accepted invitation and the new membership; the same again when the user who accepted repeats the accept (R36)", body = AcceptJson),
        (status = 403, description = "`mfa_required`: the business requires 2FA for this role (R15)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`token_invalid`: no member invitation has this token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`token_used` (the invitation is no longer pending, and not accepted by this user) or `conflict` (already a member)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`token_expired`: the invitation expired (R11)", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn accept(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<AcceptBody>,
) -> Result<Json<AcceptJson>, ApiError> {
    let user = UserId::parse_field(&body.user_id, "user_id")?;
    let id = state.services.resolve_token(&body.token).await?;
    let cmd = InvitationCommand::Accept {
        user,
        mfa_verified: body.mfa_verified.unwrap_or(false),
    };
    let outcome = state.invitations.execute(id, cmd).await?;
    Ok(Json(AcceptJson {
        invitation: InvitationJson::from(&outcome.invitation),
        membership: outcome.membership.as_ref().map(MemberJson::from),
    }))
}

/// The recipient declines with the token from the email; a declined
/// invitation answers the same again (R36).
#[utoipa::path(
    post,
    path = "/v1/invitations/decline",
    tag = "invitations",
    request_body = DeclineBody,
    responses(
        (status = 200, description = "The declined invitation (also when it was declined before, R36)", body = InvitationJson),
        (status = 404, description = "`token_invalid`: no member invitation has this token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`token_used`: the invitation was accepted or cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`token_expired`: the invitation expired", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn decline(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<DeclineBody>,
) -> Result<Json<InvitationJson>, ApiError> {
    let id = state.services.resolve_token(&body.token).await?;
    let outcome = state
        .invitations
        .execute(id, InvitationCommand::Decline)
        .await?;
    Ok(Json(InvitationJson::from(&outcome.invitation)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BusinessId;
    use crate::http::json::parse_strict;

    fn create(json: &str) -> Result<CreateInvitations, ApiError> {
        parse_create(
            BusinessId::new(),
            parse_strict(json.as_bytes())?,
            Duration::from_secs(30 * 86_400),
        )
        .map(|(req, _)| req)
    }

    fn field(json: &str) -> String {
        let e = create(json).err().expect("refused");
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (422, "validation_failed"),
            "{json}"
        );
        e.errors[0].field.clone()
    }

    #[test]
    fn a_valid_request_parses() {
        let req = create(
            r#"{"actor_user_id":"u1","invitees":[{"email":"A@B.example","role":"manager","locale":"fr-ca"}],
                "message":"Welcome!\nSee you","grants":[]}"#,
        )
        .unwrap();
        assert_eq!(req.invitees[0].email.as_str(), "a@b.example");
        assert_eq!(req.invitees[0].locale.as_ref().unwrap().as_str(), "fr-CA");
        assert_eq!(req.message.as_deref(), Some("Welcome!\nSee you"));
    }

    #[test]
    fn each_bad_input_names_its_field() {
        assert_eq!(field(r#"{"actor_user_id":"u1","invitees":[]}"#), "invitees");
        assert_eq!(
            field(r#"{"actor_user_id":"u1","invitees":[{"email":"nope"}]}"#),
            "invitees[0].email"
        );
        assert_eq!(
            field(
                r#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"},{"email":"x@y.example","locale":"english"}]}"#
            ),
            "invitees[1].locale"
        );
        assert_eq!(
            field(r#"{"actor_user_id":"","invitees":[{"email":"a@b.example"}]}"#),
            "actor_user_id"
        );
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert_eq!(
            field(&format!(
                r#"{{"actor_user_id":"u1","invitees":[{{"email":"a@b.example"}}],"message":"{long}"}}"#
            )),
            "message"
        );
        assert_eq!(
            field(
                r#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"}],"message":"a\u0007b"}"#
            ),
            "message"
        );
        assert_eq!(
            field(
                r#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"}],"grants":[{"profile_id":"p"}]}"#
            ),
            "grants[0].profile_id"
        );
        let many: Vec<String> = (0..=MAX_INVITEES)
            .map(|i| format!(r#"{{"email":"u{i}@b.example"}}"#))
            .collect();
        assert_eq!(
            field(&format!(
                r#"{{"actor_user_id":"u1","invitees":[{}]}}"#,
                many.join(",")
            )),
            "invitees"
        );
    }

    /// R38, R39: the options parse into their types, and each bad one is
    /// refused naming its field.
    #[test]
    fn delivery_ttl_and_metadata_parse_or_name_their_field() {
        let base = r#""actor_user_id":"u1","invitees":[{"email":"a@b.example"}]"#;
        let req = create(&format!(
            r#"{{{base},"delivery":"none","ttl":"3d","metadata":{{"crm":"42"}}}}"#
        ))
        .unwrap();
        assert_eq!(req.delivery, DeliveryMode::None);
        assert_eq!(req.ttl, Some(Duration::from_secs(3 * 86_400)));
        assert_eq!(req.metadata.to_value(), serde_json::json!({"crm": "42"}));
        let plain = create(&format!("{{{base}}}")).unwrap();
        assert_eq!(
            (plain.delivery, plain.ttl, plain.metadata.is_empty()),
            (DeliveryMode::Email, None, true)
        );
        assert_eq!(
            create(&format!(r#"{{{base},"ttl":"1h"}}"#)).unwrap().ttl,
            Some(MIN_TTL)
        );
        assert_eq!(
            create(&format!(r#"{{{base},"ttl":"30d"}}"#)).unwrap().ttl,
            Some(Duration::from_secs(30 * 86_400))
        );
        for (extra, name) in [
            (r#""delivery":"sms""#, "delivery"),
            (r#""delivery":"Email""#, "delivery"),
            (r#""ttl":"30m""#, "ttl"),
            (r#""ttl":"31d""#, "ttl"),
            (r#""ttl":"x""#, "ttl"),
            (r#""ttl":"1h30m""#, "ttl"),
            (r#""metadata":[1]"#, "metadata"),
            (r#""metadata":"x""#, "metadata"),
        ] {
            assert_eq!(field(&format!("{{{base},{extra}}}")), name, "{extra}");
        }
        let big = "x".repeat(Metadata::MAX_BYTES);
        assert_eq!(
            field(&format!(r#"{{{base},"metadata":{{"k":"{big}"}}}}"#)),
            "metadata"
        );
    }

    #[test]
    fn a_message_of_exactly_the_limit_passes_and_empty_is_none() {
        assert!(
            parse_message("é".repeat(MAX_MESSAGE_CHARS))
                .unwrap()
                .is_some()
        );
        assert_eq!(parse_message(String::new()).unwrap(), None);
    }

    fn list(query: ListQuery) -> Result<InvitationQuery, ApiError> {
        parse_list(BusinessId::new(), &query)
    }

    fn query() -> ListQuery {
        ListQuery {
            actor_user_id: Some("u1".into()),
            status: None,
            kind: None,
            direction: None,
            limit: None,
            cursor: None,
        }
    }

    #[test]
    fn list_filters_parse_and_junk_is_refused() {
        let q = list(ListQuery {
            status: Some("pending".into()),
            kind: Some("member".into()),
            direction: Some("incoming".into()),
            limit: Some("10".into()),
            ..query()
        })
        .unwrap();
        assert_eq!(
            (q.status, q.kind, q.incoming, q.limit),
            (
                Some(InvitationStatus::Pending),
                Some(InvitationKind::Member),
                true,
                10
            )
        );
        let d = list(query()).unwrap();
        assert_eq!((d.incoming, d.limit, d.before), (false, 50, None));

        let field = |q| list(q).err().unwrap().errors[0].field.clone();
        assert_eq!(
            field(ListQuery {
                status: Some("done".into()),
                ..query()
            }),
            "status"
        );
        assert_eq!(
            field(ListQuery {
                kind: Some("x".into()),
                ..query()
            }),
            "kind"
        );
        assert_eq!(
            field(ListQuery {
                direction: Some("up".into()),
                ..query()
            }),
            "direction"
        );
        assert_eq!(
            field(ListQuery {
                limit: Some("501".into()),
                ..query()
            }),
            "limit"
        );
        assert_eq!(
            field(ListQuery {
                cursor: Some("junk!".into()),
                ..query()
            }),
            "cursor"
        );
    }

    #[test]
    fn the_cursor_of_a_page_leads_to_the_next() {
        let id = InvitationId::new();
        let cursor = crate::http::paging::encode_cursor(id.0.as_bytes());
        let q = list(ListQuery {
            cursor: Some(cursor),
            ..query()
        })
        .unwrap();
        assert_eq!(q.before, Some(id));
    }
}
