//! Invite links (R50): create, list, revoke and the link's timeline, by the
//! business's members; preview and redeem, by whoever holds the code. The
//! code is in one answer only, the create's, with its `url`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::HttpState;
use super::access::{BusinessRefJson, GrantBody, parse_grants};
use super::businesses::ActorQuery;
use super::error::{ApiError, Problem};
use super::json::{RawPath, StrictJson, StrictQuery, actor_from_query, business_path};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{decode_cursor, next_cursor, parse_limit};
use super::wire::{Items, MemberJson, Page, TimelineItemJson};
use crate::domain::access::InvitationGrant;
use crate::domain::invite_link::{AllowedDomains, check_max_uses};
use crate::domain::{InviteLinkId, UserId};
use crate::service::invite_links::{CreateInviteLink, InviteLinkPreview, RedeemInviteLink};
use crate::store::{InviteLinkQuery, InviteLinkRecord};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteLinkBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    /// A role of the business's catalog, not ranked above the actor's
    /// (R3); the preset's default when left out.
    #[schema(value_type = Option<super::openapi::values::RoleName>)]
    pub role: Option<String>,
    /// How many users may join through the link: 1 to 1,000.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_uses: i64,
    /// The link's lifetime, from `1h` up to `invitations.max_ttl`;
    /// `invitations.ttl` when left out.
    #[schema(value_type = Option<super::openapi::values::TtlText>)]
    pub ttl: Option<String>,
    /// Only users whose email is at one of these domains (exactly, not
    /// their subdomains) may redeem it; anyone when left out or empty.
    pub allowed_domains: Option<Vec<String>>,
    /// Profile grants each redemption gives the new member (R13).
    pub grants: Option<Vec<GrantBody>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The code of the link, as the create's answer gave it.
    pub code: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    pub code: String,
    /// The user who joins, registered with `PUT /v1/users/{user_id}`.
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub user_id: String,
    /// The app's word that the user verified their email address; without
    /// `true` the answer is `403 email_unverified`.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// The user completed two-factor authentication (R15); `false` when
    /// left out.
    #[serde(default)]
    pub mfa_verified: Option<bool>,
}

/// An invite link, never with its code.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteLinkJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    #[schema(value_type = uuid::Uuid)]
    pub business_id: String,
    pub created_by: String,
    pub role: String,
    pub max_uses: u32,
    /// Users who joined through it.
    pub uses: u32,
    /// `max_uses - uses`.
    pub remaining: u32,
    pub allowed_domains: Vec<String>,
    /// `[{"profile_id": "<uuid>", "permission": "publisher"}]`.
    #[schema(value_type = Vec<Object>)]
    pub grants: serde_json::Value,
    pub revoked: bool,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<&InviteLinkRecord> for InviteLinkJson {
    fn from(l: &InviteLinkRecord) -> Self {
        InviteLinkJson {
            id: l.id.to_string(),
            business_id: l.business_id.to_string(),
            created_by: l.created_by.as_str().to_string(),
            role: l.role.as_str().to_string(),
            max_uses: l.max_uses,
            uses: l.uses,
            remaining: l.view().remaining(),
            allowed_domains: l.allowed_domains.as_slice().to_vec(),
            grants: InvitationGrant::to_stored(&l.grants),
            revoked: l.revoked_at.is_some(),
            revoked_at: l.revoked_at,
            created_at: l.created_at,
            expires_at: l.expires_at,
        }
    }
}

/// The create's answer: the link, its code and its `url`, shown only here.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedInviteLinkJson {
    /// The secret of the link (256 bits, base64url); only its hash is kept.
    pub code: String,
    /// `links.invite_link_url` with `{code}` replaced.
    pub url: String,
    #[serde(flatten)]
    pub link: InviteLinkJson,
}

/// What a code opens (R50), for whoever holds it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteLinkPreviewJson {
    pub business: BusinessRefJson,
    pub role: String,
    pub remaining: u32,
    pub expires_at: DateTime<Utc>,
    /// Whether a redemption could succeed now, as far as the link goes (the
    /// user's own checks, such as allowed domains, seats and 2FA, aside).
    pub can_join: bool,
    /// Why not: `link_revoked`, `link_expired` or `link_exhausted`; `null`
    /// when `can_join`.
    #[schema(required = true, value_type = Option<super::openapi::values::LinkReason>)]
    pub reason: Option<&'static str>,
}

impl From<&InviteLinkPreview> for InviteLinkPreviewJson {
    fn from(p: &InviteLinkPreview) -> Self {
        InviteLinkPreviewJson {
            business: BusinessRefJson {
                id: p.link.business_id.to_string(),
                name: p.business_name.clone(),
            },
            role: p.link.role.as_str().to_string(),
            remaining: p.link.view().remaining(),
            expires_at: p.link.expires_at,
            can_join: p.reason.is_none(),
            reason: p.reason.map(|r| r.as_str()),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MembershipJson {
    pub membership: MemberJson,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListLinksQuery {
    /// The acting user, a member of the business.
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub actor_user_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (base64url, never empty).
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// A link `{link_id}` from the path; `404` when it is not even a UUID.
fn link_path(raw: &str) -> Result<InviteLinkId, ApiError> {
    InviteLinkId::parse_field(raw, "link_id")
        .map_err(|_| ApiError::not_found("no such invite link"))
}

/// R50: a link that lets up to `max_uses` users join with its role. Takes
/// one unit of the invitation quota (R8).
#[utoipa::path(
    post,
    path = "/v1/businesses/{id}/invite-links",
    operation_id = "create_invite_link",
    tag = "invite_links",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id")),
    request_body = CreateInviteLinkBody,
    responses(
        (status = 201, description = "The link, with its code and `url`, shown only in this answer", body = CreatedInviteLinkJson),
        (status = 403, description = "`forbidden`: the actor is not a member, lacks `members.invite`, or the role is ranked above theirs (R3)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `max_uses` outside 1–1,000, a bad `ttl`, role, domain or grant (`errors` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: the invitation quota is used up (R8; a link takes one unit)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until a slot frees up"))),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_invite_link(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<CreateInviteLinkBody>,
) -> Result<Response, ApiError> {
    let business = business_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let max_uses = check_max_uses(body.max_uses)?;
    let ttl = body
        .ttl
        .as_deref()
        .map(|raw| super::invitations::parse_ttl(raw, state.services.settings.max_ttl))
        .transpose()?;
    let allowed_domains = AllowedDomains::parse(&body.allowed_domains.unwrap_or_default())?;
    let grants = parse_grants(body.grants)?;
    let created = state
        .services
        .create_invite_link(CreateInviteLink {
            business,
            actor,
            role: body.role,
            max_uses,
            ttl,
            allowed_domains,
            grants,
        })
        .await?;
    let json = CreatedInviteLinkJson {
        code: created.code.expose().to_string(),
        url: created.url,
        link: InviteLinkJson::from(&created.link),
    };
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

/// The business's links, newest first, without their codes.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/invite-links",
    operation_id = "list_invite_links",
    tag = "invite_links",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ListLinksQuery),
    responses(
        (status = 200, description = "One page of links, newest first, with `uses`, `remaining` and `revoked`", body = Page<InviteLinkJson>),
        (status = 403, description = "`forbidden`: the actor is not a member of the business", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_invite_links(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ListLinksQuery>,
) -> Result<Json<Page<InviteLinkJson>>, ApiError> {
    let business = business_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let before = query
        .cursor
        .as_deref()
        .map(|raw| decode_cursor(raw, |b| uuid::Uuid::from_slice(b).ok().map(InviteLinkId)))
        .transpose()?;
    let limit = parse_limit(query.limit.as_deref())?;
    let found = state
        .services
        .list_invite_links(
            InviteLinkQuery {
                business_id: business,
                before,
                limit,
            },
            &actor,
        )
        .await?;
    let next_cursor = next_cursor(&found, limit, |l| l.id.0.as_bytes().to_vec());
    Ok(Json(Page {
        items: found.iter().map(InviteLinkJson::from).collect(),
        next_cursor,
    }))
}

/// R50: the link stops working at once. Revoking a revoked link is a no-op.
#[utoipa::path(
    delete,
    path = "/v1/businesses/{id}/invite-links/{link_id}",
    operation_id = "revoke_invite_link",
    tag = "invite_links",
    params(
        ("id" = uuid::Uuid, Path, description = "The business's internal id"),
        ("link_id" = uuid::Uuid, Path, description = "The link"),
        ActorQuery
    ),
    responses(
        (status = 204, description = "The link is revoked; every later redemption gets `link_revoked`"),
        (status = 403, description = "`forbidden`: the actor is not a member or lacks `members.invite`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business, or no such link in it", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn revoke_invite_link(
    State(state): State<HttpState>,
    RawPath((id, link_id)): RawPath<(String, String)>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<StatusCode, ApiError> {
    let business = business_path(&id)?;
    let link = link_path(&link_id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    state
        .services
        .revoke_invite_link(business, link, &actor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// R50, R53: every redemption is on the link's timeline: the events that
/// name the link (`invite_link.created`, each `member.added` with `via:
/// "link"`, `invite_link.revoked`), oldest first.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/invite-links/{link_id}/timeline",
    operation_id = "invite_link_timeline",
    tag = "invite_links",
    params(
        ("id" = uuid::Uuid, Path, description = "The business's internal id"),
        ("link_id" = uuid::Uuid, Path, description = "The link"),
        ActorQuery
    ),
    responses(
        (status = 200, description = "The link's events, oldest first", body = Items<TimelineItemJson>),
        (status = 403, description = "`forbidden`: the actor is not a member of the business", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business, or no such link in it", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn invite_link_timeline(
    State(state): State<HttpState>,
    RawPath((id, link_id)): RawPath<(String, String)>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<Json<Items<TimelineItemJson>>, ApiError> {
    let business = business_path(&id)?;
    let link = link_path(&link_id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let entries = state
        .services
        .invite_link_timeline(business, link, &actor)
        .await?;
    Ok(Json(Items {
        items: entries.iter().map(TimelineItemJson::from).collect(),
    }))
}

/// R50: what a code opens, changing nothing. Every code that opens no link
/// gets the same `404 link_invalid`.
#[utoipa::path(
    post,
    path = "/v1/invite-links/preview",
    operation_id = "preview_invite_link",
    tag = "invite_links",
    request_body = CodeBody,
    responses(
        (status = 200, description = "The business, role, uses left, expiry, and whether the link can be redeemed now", body = InviteLinkPreviewJson),
        (status = 404, description = "`link_invalid`: no link has this code", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn preview_invite_link(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<CodeBody>,
) -> Result<Json<InviteLinkPreviewJson>, ApiError> {
    let preview = state.services.preview_invite_link(&body.code).await?;
    Ok(Json(InviteLinkPreviewJson::from(&preview)))
}

/// R50, R53: the user joins the business with the link's role.
#[utoipa::path(
    post,
    path = "/v1/invite-links/redeem",
    operation_id = "redeem_invite_link",
    tag = "invite_links",
    request_body = RedeemBody,
    responses(
        (status = 200, description = "The new membership", body = MembershipJson),
        (status = 403, description = "`email_unverified` (no `email_verified: true`), `domain_not_allowed` (the user's address is not at an allowed domain) or `mfa_required` (R15)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`link_invalid`: no link has this code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`link_exhausted` (no uses left), `seats_exhausted` (R9) or `conflict` (already a member)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`link_revoked` or `link_expired`", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn redeem_invite_link(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<RedeemBody>,
) -> Result<Json<MembershipJson>, ApiError> {
    let user = UserId::parse_field(&body.user_id, "user_id")?;
    let member = state
        .services
        .redeem_invite_link(RedeemInviteLink {
            code: body.code,
            user,
            email_verified: body.email_verified.unwrap_or(false),
            mfa_verified: body.mfa_verified.unwrap_or(false),
        })
        .await?;
    Ok(Json(MembershipJson {
        membership: MemberJson::from(&member),
    }))
}
