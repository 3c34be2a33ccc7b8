//! Profiles, grants and access (R1, R15, R23, R24): `POST
//! /v1/businesses/{id}/profiles`, `POST|DELETE /v1/profiles/{id}/grants`,
//! `GET /v1/access`, `GET /v1/authorize`, `GET /v1/users/{id}/profiles` and
//! `PUT /v1/businesses/{id}/security`, with their JSON.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::HttpState;
use super::error::{ApiError, Problem};
use super::json::{RawPath, StrictJson, StrictQuery, actor_from_query, business_path};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{page_by_id, parse_limit};
use super::wire::{BusinessJson, Page};
use crate::domain::access::{Grantee, InvitationGrant, Permission};
use crate::domain::partners::TwoFactorPolicy;
use crate::domain::{BusinessId, GrantId, ProfileId, UserId};
use crate::service::access::Access;
use crate::store::{GrantRecord, ProfileRecord};

/// One grant of an invitation's `grants`, or of a partner request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    #[schema(value_type = uuid::Uuid)]
    pub profile_id: String,
    /// `publisher`, the only permission; may be left out.
    #[schema(value_type = Option<super::openapi::values::Permission>)]
    pub permission: Option<String>,
}

/// Parses the `grants` of a create request (R7), naming the field of a bad one.
pub fn parse_grants(grants: Option<Vec<GrantBody>>) -> Result<Vec<InvitationGrant>, ApiError> {
    let mut out = Vec::new();
    for (i, g) in grants.unwrap_or_default().into_iter().enumerate() {
        out.push(InvitationGrant {
            profile_id: ProfileId::parse_field(&g.profile_id, &format!("grants[{i}].profile_id"))?,
            permission: parse_permission(
                g.permission.as_deref(),
                &format!("grants[{i}].permission"),
            )?,
        });
    }
    Ok(out)
}

fn parse_permission(raw: Option<&str>, field: &str) -> Result<Permission, ApiError> {
    Ok(raw
        .map(|p| Permission::parse_field(p, field))
        .transpose()?
        .unwrap_or(Permission::Publisher))
}

fn profile_path(raw: &str) -> Result<ProfileId, ApiError> {
    ProfileId::parse_field(raw, "profile_id").map_err(|_| ApiError::not_found("no such profile"))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProfileJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    #[schema(value_type = uuid::Uuid)]
    pub business_id: String,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<&ProfileRecord> for ProfileJson {
    fn from(p: &ProfileRecord) -> Self {
        ProfileJson {
            id: p.id.to_string(),
            business_id: p.business_id.to_string(),
            name: p.name.clone(),
            created_by: p.created_by.as_str().to_string(),
            created_at: p.created_at,
        }
    }
}

/// The grantee of a grant: `{"user_id"}` or `{"business_id"}`, as in requests.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum GranteeJson {
    User { user_id: String },
    Business { business_id: String },
}

impl From<&Grantee> for GranteeJson {
    fn from(g: &Grantee) -> Self {
        match g {
            Grantee::User(u) => GranteeJson::User {
                user_id: u.as_str().to_string(),
            },
            Grantee::Business(b) => GranteeJson::Business {
                business_id: b.to_string(),
            },
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    #[schema(value_type = uuid::Uuid)]
    pub profile_id: String,
    /// The business that owns the profile.
    #[schema(value_type = uuid::Uuid)]
    pub business_id: String,
    #[schema(value_type = super::openapi::values::Permission)]
    pub permission: &'static str,
    pub grantee: GranteeJson,
    /// The grant this one derives from (a partner's grant to its member).
    pub derived_from: Option<String>,
    /// The business whose membership carries a grant to a user.
    pub holder_business_id: String,
    pub granted_by: String,
    pub invitation_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<&GrantRecord> for GrantJson {
    fn from(g: &GrantRecord) -> Self {
        GrantJson {
            id: g.id.to_string(),
            profile_id: g.profile_id.to_string(),
            business_id: g.business_id.to_string(),
            permission: g.permission.as_str(),
            grantee: GranteeJson::from(&g.grantee),
            derived_from: g.parent.map(|p| p.to_string()),
            holder_business_id: g.holder.to_string(),
            granted_by: g.granted_by.as_str().to_string(),
            invitation_id: g.invitation_id.map(|i| i.to_string()),
            created_at: g.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProfileBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    #[schema(value_type = super::openapi::values::NameText)]
    pub name: String,
}

/// Creates a profile of the business (the thing Publisher access is on).
#[utoipa::path(
    post,
    path = "/v1/businesses/{id}/profiles",
    tag = "access",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id")),
    request_body = CreateProfileBody,
    responses(
        (status = 201, description = "The profile", body = ProfileJson),
        (status = 403, description = "`forbidden`: the actor is not a member or may not manage profiles", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_profile(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<CreateProfileBody>,
) -> Result<Response, ApiError> {
    let business = business_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let profile = state
        .services
        .create_profile(business, &actor, &body.name)
        .await?;
    Ok((StatusCode::CREATED, Json(ProfileJson::from(&profile))).into_response())
}

/// Exactly one of `user_id` (a member, or a partner's member) and
/// `business_id` (a partner business, by internal id).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GranteeBody {
    pub user_id: Option<String>,
    pub business_id: Option<String>,
}

/// `oneOf` the two shapes [`parse_grantee`] takes: a `user_id`, or a
/// `business_id`, the other absent or `null`.
impl utoipa::PartialSchema for GranteeBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let one = |name: &str,
                   value: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
                   other: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(name, value)
                .required(name)
                .property(other, null())
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ))
        };
        OneOfBuilder::new()
            .description(Some(
                "Exactly one of `user_id` (a member, or a partner's member) and `business_id` \
                 (a partner business, by internal id)",
            ))
            .item(one(
                "user_id",
                <super::openapi::values::UserIdText as utoipa::PartialSchema>::schema(),
                "business_id",
            ))
            .item(one(
                "business_id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                        utoipa::openapi::schema::KnownFormat::Uuid,
                    )))
                    .into(),
                "user_id",
            ))
            .into()
    }
}

impl utoipa::ToSchema for GranteeBody {}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddGrantBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    pub grantee: GranteeBody,
    /// `publisher` when left out.
    #[schema(value_type = Option<super::openapi::values::Permission>)]
    pub permission: Option<String>,
}

fn parse_grantee(g: GranteeBody) -> Result<Grantee, ApiError> {
    match (g.user_id, g.business_id) {
        (Some(u), None) => Ok(Grantee::User(UserId::parse_field(&u, "grantee.user_id")?)),
        (None, Some(b)) => Ok(Grantee::Business(BusinessId::parse_field(
            &b,
            "grantee.business_id",
        )?)),
        _ => Err(ApiError::validation(
            "grantee",
            "must name exactly one of user_id or business_id",
        )),
    }
}

/// Grants a permission on a profile to a user or a partner business (R23).
#[utoipa::path(
    post,
    path = "/v1/profiles/{profile_id}/grants",
    tag = "access",
    params(("profile_id" = uuid::Uuid, Path, description = "The profile")),
    request_body = AddGrantBody,
    responses(
        (status = 201, description = "The grant", body = GrantJson),
        (status = 403, description = "`forbidden`: the actor may not grant this to this grantee (R23)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such profile", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the grantee already holds this grant", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn add_grant(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<AddGrantBody>,
) -> Result<Response, ApiError> {
    let profile = profile_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let grantee = parse_grantee(body.grantee)?;
    let permission = parse_permission(body.permission.as_deref(), "permission")?;
    let grant = state
        .services
        .add_grant(profile, &actor, grantee, permission)
        .await?;
    Ok((StatusCode::CREATED, Json(GrantJson::from(&grant))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActorOnlyQuery {
    /// The acting user.
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub actor_user_id: Option<String>,
}

/// Removes a grant and every grant derived from it (R23).
#[utoipa::path(
    delete,
    path = "/v1/profiles/{profile_id}/grants/{grant_id}",
    tag = "access",
    params(("profile_id" = uuid::Uuid, Path, description = "The profile"), ("grant_id" = uuid::Uuid, Path, description = "The grant"), ActorOnlyQuery),
    responses(
        (status = 204, description = "The grant and the grants derived from it are gone"),
        (status = 403, description = "`forbidden`: the actor may not remove this grant", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such profile or grant", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn remove_grant(
    State(state): State<HttpState>,
    RawPath((profile, grant)): RawPath<(String, String)>,
    StrictQuery(query): StrictQuery<ActorOnlyQuery>,
) -> Result<StatusCode, ApiError> {
    let profile = profile_path(&profile)?;
    let grant = GrantId::parse_field(&grant, "grant_id")
        .map_err(|_| ApiError::not_found("no such grant"))?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    state.services.remove_grant(profile, grant, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub user_id: Option<String>,
    #[param(required = true, value_type = Option<uuid::Uuid>)]
    pub profile_id: Option<String>,
    /// `publisher` when left out.
    #[param(value_type = Option<super::openapi::values::Permission>)]
    pub permission: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AccessJson {
    pub allowed: bool,
    /// The chain of grants, the business grant first.
    pub via: Vec<GrantJson>,
    pub reason: String,
}

impl From<&Access> for AccessJson {
    fn from(a: &Access) -> Self {
        AccessJson {
            allowed: a.decision.allowed,
            via: a.via.iter().map(GrantJson::from).collect(),
            reason: a.decision.reason.clone(),
        }
    }
}

fn required<'a>(raw: Option<&'a str>, field: &str) -> Result<&'a str, ApiError> {
    raw.ok_or_else(|| ApiError::validation(field, "is required"))
}

/// R24: `GET /v1/access?user_id=&profile_id=&permission=publisher`.
#[utoipa::path(
    get,
    path = "/v1/access",
    tag = "access",
    params(AccessQuery),
    responses(
        (status = 200, description = "Whether the user may, and through which grants (R24)", body = AccessJson),
        (status = 404, description = "`not_found`: no such profile", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn access(
    State(state): State<HttpState>,
    StrictQuery(q): StrictQuery<AccessQuery>,
) -> Result<Json<AccessJson>, ApiError> {
    let user = UserId::parse_field(required(q.user_id.as_deref(), "user_id")?, "user_id")?;
    let profile = ProfileId::parse_field(
        required(q.profile_id.as_deref(), "profile_id")?,
        "profile_id",
    )?;
    let permission = parse_permission(q.permission.as_deref(), "permission")?;
    let access = state
        .services
        .check_access(&user, profile, permission)
        .await?;
    Ok(Json(AccessJson::from(&access)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub user_id: Option<String>,
    /// The business's internal id.
    #[param(required = true, value_type = Option<uuid::Uuid>)]
    pub business_id: Option<String>,
    /// A capability name such as `campaigns.send`.
    #[param(
        required = true,
        min_length = 1,
        max_length = 100,
        pattern = "^[a-z0-9._-]{1,100}$"
    )]
    pub capability: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorizeJson {
    pub allowed: bool,
    /// The user's role in the business, `null` for a non-member.
    pub role: Option<String>,
}

/// A capability name as the catalog writes them: `billing.edit`.
fn parse_capability(raw: &str) -> Result<&str, ApiError> {
    let ok = !raw.is_empty()
        && raw.len() <= 100
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(raw)
    } else {
        Err(ApiError::validation(
            "capability",
            "must be a capability name such as campaigns.send (lowercase letters, digits, '.', '_', '-')",
        ))
    }
}

/// R1: `GET /v1/authorize?user_id=&business_id=&capability=`.
#[utoipa::path(
    get,
    path = "/v1/authorize",
    tag = "access",
    params(AuthorizeQuery),
    responses(
        (status = 200, description = "Whether the user's role has the capability (R1)", body = AuthorizeJson),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn authorize(
    State(state): State<HttpState>,
    StrictQuery(q): StrictQuery<AuthorizeQuery>,
) -> Result<Json<AuthorizeJson>, ApiError> {
    let user = UserId::parse_field(required(q.user_id.as_deref(), "user_id")?, "user_id")?;
    let business = BusinessId::parse_field(
        required(q.business_id.as_deref(), "business_id")?,
        "business_id",
    )?;
    let capability = parse_capability(required(q.capability.as_deref(), "capability")?)?;
    let answer = state
        .services
        .authorize(&user, business, capability)
        .await?;
    Ok(Json(AuthorizeJson {
        allowed: answer.allowed,
        role: answer.role.map(|r| r.as_str().to_string()),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BusinessRefJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    pub name: String,
}

/// One entry of the profile switcher.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserProfileJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    pub name: String,
    pub business: BusinessRefJson,
    /// The chain of grants that gives access; empty for the owner's own.
    pub via: Vec<GrantJson>,
}

/// The page (`limit`, `cursor`) of the profile switcher.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserProfilesQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (base64url, never empty).
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// `GET /v1/users/{user_id}/profiles`: the profiles the user may publish
/// on, one page at a time in profile-id (creation) order. The list is
/// computed whole; the cursor holds the last profile's id.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/profiles",
    tag = "access",
    params(("user_id" = super::openapi::values::UserIdText, Path, description = "The app's own id of the user"), UserProfilesQuery),
    responses(
        (status = 200, description = "One page of the profiles the user may publish on", body = Page<UserProfileJson>),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn user_profiles(
    State(state): State<HttpState>,
    RawPath(user_id): RawPath<String>,
    StrictQuery(query): StrictQuery<UserProfilesQuery>,
) -> Result<Json<Page<UserProfileJson>>, ApiError> {
    let user = UserId::parse_field(&user_id, "user_id")?;
    parse_limit(query.limit.as_deref())?;
    let found = state.services.user_profiles(&user).await?;
    let (page, next_cursor) = page_by_id(
        found,
        |(p, _)| p.id.0,
        query.limit.as_deref(),
        query.cursor.as_deref(),
    )?;
    Ok(Json(Page {
        items: page
            .iter()
            .map(|(p, access)| UserProfileJson {
                id: p.id.to_string(),
                name: p.name.clone(),
                business: BusinessRefJson {
                    id: p.business_id.to_string(),
                    name: p.business_name.clone(),
                },
                via: access.via.iter().map(GrantJson::from).collect(),
            })
            .collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    #[schema(value_type = super::openapi::values::TwoFactorPolicy)]
    pub require_2fa: String,
}

/// R15: `PUT /v1/businesses/{id}/security`.
#[utoipa::path(
    put,
    path = "/v1/businesses/{id}/security",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id")),
    request_body = SecurityBody,
    responses(
        (status = 200, description = "The business with its new policy (R15)", body = BusinessJson),
        (status = 403, description = "`forbidden`: the actor is not a member or may not change security", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn set_security(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<SecurityBody>,
) -> Result<Json<BusinessJson>, ApiError> {
    let business = business_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let policy = TwoFactorPolicy::parse(&body.require_2fa).ok_or_else(|| {
        ApiError::validation("require_2fa", "must be \"off\", \"managers\" or \"all\"")
    })?;
    let updated = state
        .services
        .set_security(business, &actor, policy)
        .await?;
    Ok(Json(BusinessJson::from(&updated)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::json::parse_strict;

    fn field(e: ApiError) -> String {
        assert_eq!(e.status.as_u16(), 422);
        e.errors[0].field.clone()
    }

    #[test]
    fn grants_parse_and_name_the_bad_field() {
        let id = ProfileId::new();
        let body: Vec<GrantBody> = parse_strict(
            format!(
                r#"[{{"profile_id":"{id}","permission":"publisher"}},{{"profile_id":"{id}"}}]"#
            )
            .as_bytes(),
        )
        .unwrap();
        let grants = parse_grants(Some(body)).unwrap();
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[1].permission, Permission::Publisher);
        let bad: Vec<GrantBody> = parse_strict(br#"[{"profile_id":"p"}]"#).unwrap();
        assert_eq!(
            field(parse_grants(Some(bad)).unwrap_err()),
            "grants[0].profile_id"
        );
        let bad: Vec<GrantBody> =
            parse_strict(format!(r#"[{{"profile_id":"{id}","permission":"admin"}}]"#).as_bytes())
                .unwrap();
        assert_eq!(
            field(parse_grants(Some(bad)).unwrap_err()),
            "grants[0].permission"
        );
    }

    #[test]
    fn a_grantee_is_a_user_or_a_business() {
        let g = |u: Option<&str>, b: Option<&str>| {
            parse_grantee(GranteeBody {
                user_id: u.map(Into::into),
                business_id: b.map(Into::into),
            })
        };
        assert_eq!(
            g(Some("emma"), None).unwrap(),
            Grantee::User(UserId::parse("emma").unwrap())
        );
        let b = BusinessId::new();
        assert_eq!(g(None, Some(&b.to_string())).unwrap(), Grantee::Business(b));
        assert_eq!(field(g(None, None).unwrap_err()), "grantee");
        assert_eq!(field(g(Some("a"), Some("b")).unwrap_err()), "grantee");
        assert_eq!(
            field(g(None, Some("x")).unwrap_err()),
            "grantee.business_id"
        );
    }

    #[test]
    fn capabilities_are_names() {
        assert!(parse_capability("campaigns.send").is_ok());
        assert!(parse_capability("security.require_2fa").is_ok());
        for bad in ["", "Billing", "a b", "x\n"] {
            assert_eq!(field(parse_capability(bad).unwrap_err()), "capability");
        }
    }
}
