//! Partners (R19–R21): `POST|GET /v1/businesses/{id}/partners`, `DELETE
//! /v1/businesses/{id}/partners/{partner_id}`, and the answers by id `POST
//! /v1/invitations/{id}/accept|decline`: the receiving business's to a
//! partner invitation, the invitee's in the app to a member invitation
//! (R37). They go through the invitation's actor like every command on one
//! invitation, which decides by the invitation's kind.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::HttpState;
use super::access::{GrantBody, parse_grants};
use super::error::{ApiError, Problem};
use super::invitations::parse_message;
use super::json::{
    RawPath, StrictJson, StrictQuery, actor_from_query, business_path, invitation_path,
};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{page_by_id, parse_limit};
use super::wire::{AcceptJson, InvitationJson, MemberJson, Page};
use crate::domain::partners::Direction;
use crate::domain::{BusinessId, InvitationKind, PublicBusinessId, UserId};
use crate::service::invitations::InvitationCommand;
use crate::service::partners::CreatePartner;
use crate::store::PartnershipRecord;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartnerBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    /// The other business's public Business ID.
    #[schema(value_type = super::openapi::values::PublicBusinessIdText)]
    pub partner_business_id: String,
    #[schema(value_type = super::openapi::values::Direction)]
    pub direction: String,
    #[schema(value_type = Option<super::openapi::values::MessageText>)]
    pub message: Option<String>,
    pub grants: Option<Vec<GrantBody>>,
}

fn parse_create(business: BusinessId, body: CreatePartnerBody) -> Result<CreatePartner, ApiError> {
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let partner = PublicBusinessId::parse(&body.partner_business_id)
        .map_err(|m| ApiError::validation("partner_business_id", m))?;
    let direction = Direction::parse(&body.direction)
        .ok_or_else(|| ApiError::validation("direction", "must be \"invite\" or \"request\""))?;
    Ok(CreatePartner {
        business,
        actor,
        partner,
        direction,
        message: body.message.map(parse_message).transpose()?.flatten(),
        grants: parse_grants(body.grants)?,
        renewed_from: None,
    })
}

/// `201` the partner invitation (R19, R20).
#[utoipa::path(
    post,
    path = "/v1/businesses/{id}/partners",
    tag = "partners",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id")),
    request_body = CreatePartnerBody,
    responses(
        (status = 201, description = "The partner invitation", body = InvitationJson),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or may not manage partners", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business, or no business has that public Business ID", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: a pending partner invitation or a live partnership already joins the two", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: the 24-hour invitation quota is used up (R8)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until a slot frees up"))),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_partner(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<CreatePartnerBody>,
) -> Result<Response, ApiError> {
    let business = business_path(&id)?;
    let req = parse_create(business, body)?;
    let created = state.services.create_partner_invitation(req).await?;
    Ok((StatusCode::CREATED, Json(InvitationJson::from(&created))).into_response())
}

/// One partnership, seen from the business in the path.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PartnershipJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    #[schema(value_type = uuid::Uuid)]
    pub business_id: String,
    /// The other business's internal id.
    #[schema(value_type = uuid::Uuid)]
    pub partner_business_id: String,
    pub partner_name: String,
    /// How it began: `partner_invite` or `partner_request`.
    #[schema(value_type = super::openapi::values::InvitationKind)]
    pub kind: &'static str,
    /// The business that sent the invitation.
    pub initiated_by_business_id: String,
    pub invitation_id: Option<String>,
    pub established_at: DateTime<Utc>,
}

impl PartnershipJson {
    pub fn seen_from(p: &PartnershipRecord, me: BusinessId) -> PartnershipJson {
        let (other, name) = p.other(me);
        PartnershipJson {
            id: p.id.to_string(),
            business_id: me.to_string(),
            partner_business_id: other.to_string(),
            partner_name: name.to_string(),
            kind: p.direction.kind().as_str(),
            initiated_by_business_id: p.business_id.to_string(),
            invitation_id: p.invitation_id.map(|i| i.to_string()),
            established_at: p.established_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PartnersQuery {
    /// The acting user.
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub actor_user_id: Option<String>,
}

/// `?actor_user_id=` and the page (`limit`, `cursor`) of the partners list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPartnersQuery {
    /// The acting user.
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub actor_user_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (base64url, never empty).
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// The live partnerships, one page at a time, oldest first. The list comes
/// whole from the store; the cursor holds the last partnership's id.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/partners",
    tag = "partners",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ListPartnersQuery),
    responses(
        (status = 200, description = "One page of live partnerships, oldest first", body = Page<PartnershipJson>),
        (status = 403, description = "`forbidden`: the actor is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_partners(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ListPartnersQuery>,
) -> Result<Json<Page<PartnershipJson>>, ApiError> {
    let business = business_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    // Checked before the store is asked, like every other input.
    parse_limit(query.limit.as_deref())?;
    let found = state.services.list_partnerships(business, &actor).await?;
    let (page, next_cursor) = page_by_id(
        found,
        |p| p.id.0,
        query.limit.as_deref(),
        query.cursor.as_deref(),
    )?;
    Ok(Json(Page {
        items: page
            .iter()
            .map(|p| PartnershipJson::seen_from(p, business))
            .collect(),
        next_cursor,
    }))
}

/// `204`: the partnership and every grant it carried are gone (R23).
/// `{partner_id}` is the partner's business id (or the partnership's id).
#[utoipa::path(
    delete,
    path = "/v1/businesses/{id}/partners/{partner_id}",
    tag = "partners",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ("partner_id" = uuid::Uuid, Path, description = "The partner's internal business id, or the partnership's id"), PartnersQuery),
    responses(
        (status = 204, description = "The partnership and every grant it carried are gone (R23)"),
        (status = 403, description = "`forbidden`: the actor is not a member of the business or may not manage partners", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business or partnership", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn end_partnership(
    State(state): State<HttpState>,
    RawPath((id, partner)): RawPath<(String, String)>,
    StrictQuery(query): StrictQuery<PartnersQuery>,
) -> Result<StatusCode, ApiError> {
    let business = business_path(&id)?;
    let partner =
        uuid::Uuid::parse_str(&partner).map_err(|_| ApiError::not_found("no such partner"))?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    state
        .services
        .end_partnership(business, partner, &actor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /v1/invitations/{id}/accept`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// A partner invitation: the owner or a partners manager of the business
    /// it is addressed to. A member invitation: the invitee, signed in to
    /// the app (R37).
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    /// The user completed two-factor authentication (R15); `false` when
    /// left out.
    #[serde(default)]
    pub mfa_verified: Option<bool>,
    /// Member invitations: the app verified that the actor owns their
    /// registered email (R37); without `true` the answer is `403
    /// email_unverified`. Not read for partner invitations.
    #[serde(default)]
    pub email_verified: Option<bool>,
}

/// The body of `POST /v1/invitations/{id}/decline`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclineAnswerBody {
    /// As for the accept.
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    /// As for the accept: member invitations need `true` (R37).
    #[serde(default)]
    pub email_verified: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PartnerAcceptJson {
    pub invitation: InvitationJson,
    #[schema(required = true)]
    pub partnership: Option<PartnershipJson>,
}

/// The answer to an accept by id: a member invitation's
/// `{"invitation", "membership"}` or a partner invitation's
/// `{"invitation", "partnership"}`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AcceptByIdJson {
    Member(AcceptJson),
    Partner(PartnerAcceptJson),
}

/// Accepts an invitation by its id: a partner invitation, by the owner or a
/// manager of the receiving business (R21); a member invitation, by its
/// invitee in the app, on the app's word that their email is verified
/// (R37), with R13 and R15 as for a token accept. Repeated by the invitee
/// who accepted, it answers the same again (R36).
#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/accept",
    // Not the handler's name: the token accept is `accept` too, and an
    // operationId names one operation of the whole document.
    operation_id = "accept_invitation_by_id",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The invitation")),
    request_body = AnswerBody,
    responses(
        (status = 200, description = "The accepted invitation with the membership (member invitation) or the partnership (partner invitation)", body = AcceptByIdJson),
        (status = 403, description = "`forbidden` (not the receiving business's owner or a partners manager; not the user the member invitation is addressed to), `mfa_required` (R15) or `email_unverified` (R37)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`token_used` (no longer pending) or `conflict` (already a member; the businesses are already partners)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`token_expired`: the invitation expired", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn accept(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<AnswerBody>,
) -> Result<Json<AcceptByIdJson>, ApiError> {
    let id = invitation_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let cmd = InvitationCommand::AcceptById {
        actor,
        mfa_verified: body.mfa_verified.unwrap_or(false),
        email_verified: body.email_verified.unwrap_or(false),
    };
    let outcome = state.invitations.execute(id, cmd).await?;
    let invitation = InvitationJson::from(&outcome.invitation);
    Ok(Json(match outcome.invitation.partner_business_id {
        Some(receiving) if outcome.invitation.kind != InvitationKind::Member => {
            AcceptByIdJson::Partner(PartnerAcceptJson {
                invitation,
                partnership: outcome
                    .partnership
                    .as_ref()
                    .map(|p| PartnershipJson::seen_from(p, receiving)),
            })
        }
        _ => AcceptByIdJson::Member(AcceptJson {
            invitation,
            membership: outcome.membership.as_ref().map(MemberJson::from),
        }),
    }))
}

/// Declines an invitation by its id: a partner invitation, by the receiving
/// business (R21); a member invitation, by its invitee in the app (R37).
/// A repeat of a decline answers the same again (R36).
#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/decline",
    operation_id = "decline_invitation_by_id",
    tag = "invitations",
    params(("id" = uuid::Uuid, Path, description = "The invitation")),
    request_body = DeclineAnswerBody,
    responses(
        (status = 200, description = "The declined invitation", body = InvitationJson),
        (status = 403, description = "`forbidden` (not the receiving business's owner or a partners manager; not the user the member invitation is addressed to) or `email_unverified` (R37)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`token_used`: the invitation is no longer pending", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`token_expired`: the invitation expired", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn decline(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<DeclineAnswerBody>,
) -> Result<Json<InvitationJson>, ApiError> {
    let id = invitation_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let cmd = InvitationCommand::DeclineById {
        actor,
        email_verified: body.email_verified.unwrap_or(false),
    };
    let outcome = state.invitations.execute(id, cmd).await?;
    Ok(Json(InvitationJson::from(&outcome.invitation)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::json::parse_strict;

    fn create(json: &str) -> Result<CreatePartner, ApiError> {
        parse_create(BusinessId::new(), parse_strict(json.as_bytes())?)
    }

    #[test]
    fn a_partner_request_parses_and_bad_fields_are_named() {
        let public = PublicBusinessId::generate();
        let ok = create(&format!(
            r#"{{"actor_user_id":"u1","partner_business_id":"{}","direction":"request","message":"hi"}}"#,
            public.as_str()
        ))
        .unwrap();
        assert_eq!(ok.direction, Direction::Request);
        let field = |json: String| create(&json).err().unwrap().errors[0].field.clone();
        assert_eq!(
            field(
                r#"{"actor_user_id":"u1","partner_business_id":"nope","direction":"invite"}"#
                    .into()
            ),
            "partner_business_id"
        );
        assert_eq!(
            field(format!(
                r#"{{"actor_user_id":"u1","partner_business_id":"{}","direction":"sideways"}}"#,
                public.as_str()
            )),
            "direction"
        );
        assert_eq!(
            field(format!(
                r#"{{"actor_user_id":"u1","partner_business_id":"{}","direction":"invite","grants":[{{"profile_id":"x"}}]}}"#,
                public.as_str()
            )),
            "grants[0].profile_id"
        );
    }
}
