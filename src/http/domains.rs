//! Verified domains (R52): `POST /v1/businesses/{id}/domains` claims one,
//! `POST …/domains/{domain}/verify` looks its TXT record up, `GET` lists
//! them, `DELETE` gives one up; `GET /v1/users/{user_id}/suggestions` lists
//! the businesses a user's address makes them welcome in.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::HttpState;
use super::businesses::ActorQuery;
use super::error::{ApiError, Problem};
use super::invitations::ActorBody;
use super::json::{RawPath, StrictJson, StrictQuery, actor_from_query, business_path};
use super::openapi::{Unavailable, ValidationFailed};
use super::wire::Items;
use crate::domain::{DomainMode, MailDomain, UserId};
use crate::store::{DomainClaimRecord, DomainSuggestion};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimDomainBody {
    /// The owner of the business.
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    /// The email domain, `example.com` (international names in their
    /// `xn--` form). Public mail providers (gmail.com, …) are refused.
    #[schema(example = "acme.example")]
    pub domain: String,
    /// `suggest`: users with an address at the domain see the business in
    /// their suggestions; `auto_invite`: registering such a user creates a
    /// member invitation with the default role.
    #[schema(value_type = DomainModeName)]
    pub mode: String,
}

/// What a verified domain does: `suggest` or `auto_invite`.
#[derive(ToSchema)]
#[schema(as = DomainModeName)]
#[allow(dead_code)]
pub enum DomainModeName {
    #[schema(rename = "suggest")]
    Suggest,
    #[schema(rename = "auto_invite")]
    AutoInvite,
}

/// A business's claim on an email domain.
#[derive(Serialize, ToSchema)]
pub struct DomainJson {
    pub domain: String,
    #[schema(value_type = DomainModeName)]
    pub mode: &'static str,
    pub verified: bool,
    /// The TXT record to publish at the domain itself.
    #[schema(example = "invited-verification=3f0c9a8e5b7d41c2a6e9f0b1c2d3e4f5")]
    pub txt_record: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&DomainClaimRecord> for DomainJson {
    fn from(c: &DomainClaimRecord) -> Self {
        DomainJson {
            domain: c.domain.as_str().to_string(),
            mode: c.mode.as_str(),
            verified: c.verified(),
            txt_record: c.txt_value.txt_record(),
            verified_at: c.verified_at,
            created_at: c.created_at,
        }
    }
}

/// A business the user may ask to join (R51): its verified `suggest`
/// domain matches the user's address.
#[derive(Serialize, ToSchema)]
pub struct SuggestionJson {
    pub business: SuggestedBusinessJson,
    /// The verified domain that matched.
    pub domain: String,
}

#[derive(Serialize, ToSchema)]
pub struct SuggestedBusinessJson {
    /// The internal id.
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// The public Business ID, for a join request.
    pub business_id: String,
    pub name: String,
}

impl From<&DomainSuggestion> for SuggestionJson {
    fn from(s: &DomainSuggestion) -> Self {
        SuggestionJson {
            business: SuggestedBusinessJson {
                id: s.business_id.to_string(),
                business_id: s.public_id.as_str().to_string(),
                name: s.business_name.clone(),
            },
            domain: s.domain.as_str().to_string(),
        }
    }
}

/// A `{domain}` of the path; one that is not a domain names no claim.
fn domain_path(raw: &str) -> Result<MailDomain, ApiError> {
    MailDomain::parse(raw).map_err(|_| ApiError::not_found("no such domain claim"))
}

/// Claims an email domain for the business (R52).
#[utoipa::path(
    post,
    path = "/v1/businesses/{id}/domains",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id")),
    request_body = ClaimDomainBody,
    responses(
        (status = 201, description = "The claim, unverified, with the TXT record to publish", body = DomainJson,
            headers(("Location" = String, description = "`/v1/businesses/{id}/domains/{domain}`"))),
        (status = 403, description = "`forbidden`: the actor is not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the business already claimed the domain, or another business verified it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not a domain, or a public mail provider (field `domain`); not a mode (field `mode`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn claim_domain(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<ClaimDomainBody>,
) -> Result<Response, ApiError> {
    let id = business_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let domain = MailDomain::parse_claim(&body.domain, "domain")?;
    let mode = DomainMode::parse_field(&body.mode, "mode")?;
    let claim = state
        .services
        .claim_domain(id, &actor, domain, mode)
        .await?;
    let mut response = (StatusCode::CREATED, Json(DomainJson::from(&claim))).into_response();
    if let Ok(location) =
        HeaderValue::from_str(&format!("/v1/businesses/{id}/domains/{}", claim.domain))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Looks the claim's TXT record up through `domains.resolver` and, when it
/// is there, verifies the domain (event `domain.verified`).
#[utoipa::path(
    post,
    path = "/v1/businesses/{id}/domains/{domain}/verify",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ("domain" = String, Path, description = "The claimed domain")),
    request_body = ActorBody,
    responses(
        (status = 200, description = "The claim, verified", body = DomainJson),
        (status = 403, description = "`forbidden`: the actor is not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business or claim", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the TXT record is not there (the detail names what the DNS answered), or another business verified the domain", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, description = "`unavailable`: the DNS lookup failed or timed out", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_domain(
    State(state): State<HttpState>,
    RawPath((id, domain)): RawPath<(String, String)>,
    StrictJson(body): StrictJson<ActorBody>,
) -> Result<Json<DomainJson>, ApiError> {
    let id = business_path(&id)?;
    let domain = domain_path(&domain)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let claim = state.services.verify_domain(id, &actor, &domain).await?;
    Ok(Json(DomainJson::from(&claim)))
}

/// The business's domain claims, verified or not, by domain.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/domains",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ActorQuery),
    responses(
        (status = 200, description = "The claims", body = Items<DomainJson>),
        (status = 403, description = "`forbidden`: the actor is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_domains(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<Json<Items<DomainJson>>, ApiError> {
    let id = business_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let claims = state.services.list_domains(id, &actor).await?;
    Ok(Json(Items {
        items: claims.iter().map(DomainJson::from).collect(),
    }))
}

/// Gives up a claim (verified or not). Invitations it created stay.
#[utoipa::path(
    delete,
    path = "/v1/businesses/{id}/domains/{domain}",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ("domain" = String, Path, description = "The claimed domain"), ActorQuery),
    responses(
        (status = 204, description = "The claim is gone"),
        (status = 403, description = "`forbidden`: the actor is not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business or claim", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn remove_domain(
    State(state): State<HttpState>,
    RawPath((id, domain)): RawPath<(String, String)>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<StatusCode, ApiError> {
    let id = business_path(&id)?;
    let domain = domain_path(&domain)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    state.services.remove_domain(id, &actor, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The businesses with a verified `suggest` domain matching the user's
/// address, which the user is not a member of.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/suggestions",
    tag = "users",
    params(("user_id" = super::openapi::values::UserIdText, Path, description = "The app's own id of the user")),
    responses(
        (status = 200, description = "The suggested businesses", body = Items<SuggestionJson>),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn suggestions(
    State(state): State<HttpState>,
    RawPath(user_id): RawPath<String>,
) -> Result<Json<Items<SuggestionJson>>, ApiError> {
    let user = UserId::parse_field(&user_id, "user_id")?;
    let found = state.services.domain_suggestions(&user).await?;
    Ok(Json(Items {
        items: found.iter().map(SuggestionJson::from).collect(),
    }))
}
