//! Members of a business: list, change a role (R6), revoke or leave (R4),
//! transfer ownership (R5).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::HttpState;
use super::error::{ApiError, Problem};
use super::json::{RawPath, StrictJson, StrictQuery, actor_from_query, business_path};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{decode_cursor, next_cursor, parse_limit};
use super::wire::{Items, MemberJson, Page};
use crate::domain::UserId;
use crate::store::MemberRecord;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoleBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    #[schema(value_type = super::openapi::values::RoleName)]
    pub role: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// The acting user: a manager revoking, or the member leaving.
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub actor_user_id: String,
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub new_owner_user_id: String,
}

/// Members come from the store whole, ordered by `(joined_at, user_id)`; a
/// page is cut from that order, and the cursor holds the last item's sort key
/// (not its position), so a member leaving between pages skips nobody.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/members",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), MembersQuery),
    responses(
        (status = 200, description = "One page of members, oldest first", body = Page<MemberJson>),
        (status = 403, description = "`forbidden`: the actor is not a member or lacks the capability", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business or member", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_members(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<MembersQuery>,
) -> Result<Json<Page<MemberJson>>, ApiError> {
    let id = business_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let limit = parse_limit(query.limit.as_deref())?;
    let after = query
        .cursor
        .as_deref()
        .map(|raw| decode_cursor(raw, decode_member_key))
        .transpose()?;
    let members = state.services.list_members(id, &actor).await?;
    let page: Vec<MemberRecord> = members
        .into_iter()
        .filter(|m| after.as_ref().is_none_or(|after| member_key(m) > *after))
        .take(limit as usize)
        .collect();
    let next_cursor = next_cursor(&page, limit, |m| encode_member_key(&member_key(m)));
    Ok(Json(Page {
        items: page.iter().map(MemberJson::from).collect(),
        next_cursor,
    }))
}

/// The sort key of a member: join time in microseconds (the database's
/// precision) and user id.
type MemberKey = (i64, String);

fn member_key(m: &MemberRecord) -> MemberKey {
    (
        m.joined_at.timestamp_micros(),
        m.user_id.as_str().to_string(),
    )
}

fn encode_member_key((micros, user): &MemberKey) -> Vec<u8> {
    let mut bytes = micros.to_be_bytes().to_vec();
    bytes.extend_from_slice(user.as_bytes());
    bytes
}

fn decode_member_key(bytes: &[u8]) -> Option<MemberKey> {
    let (micros, user) = bytes.split_first_chunk::<8>()?;
    let user = std::str::from_utf8(user).ok()?;
    UserId::parse(user).ok()?;
    Some((i64::from_be_bytes(*micros), user.to_string()))
}

/// Changes a member's role (R6).
#[utoipa::path(
    patch,
    path = "/v1/businesses/{id}/members/{user_id}",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ("user_id" = super::openapi::values::UserIdText, Path, description = "The member")),
    request_body = SetRoleBody,
    responses(
        (status = 200, description = "The member with the new role", body = MemberJson),
        (status = 403, description = "`forbidden`: the actor is not a member or lacks the capability (R6), or the member is the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business or member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the role is not in the business's catalog (field `role`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn set_member_role(
    State(state): State<HttpState>,
    RawPath((id, user_id)): RawPath<(String, String)>,
    StrictJson(body): StrictJson<SetRoleBody>,
) -> Result<Json<MemberJson>, ApiError> {
    let id = business_path(&id)?;
    let target = UserId::parse_field(&user_id, "user_id")?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let member = state
        .services
        .set_member_role(id, &actor, &target, &body.role)
        .await?;
    Ok(Json(MemberJson::from(&member)))
}

/// Revokes a member, or the member leaves (R4).
#[utoipa::path(
    delete,
    path = "/v1/businesses/{id}/members/{user_id}",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ("user_id" = super::openapi::values::UserIdText, Path, description = "The member"), RemoveQuery),
    responses(
        (status = 204, description = "The member is gone, with the grants their membership carried"),
        (status = 403, description = "`forbidden`: the actor is not a member or lacks the capability (R4), or the member is the owner, who cannot leave or be revoked", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business or member", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn remove_member(
    State(state): State<HttpState>,
    RawPath((id, user_id)): RawPath<(String, String)>,
    StrictQuery(query): StrictQuery<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let id = business_path(&id)?;
    let target = UserId::parse_field(&user_id, "user_id")?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    state.services.remove_member(id, &actor, &target).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Answers with the members after the transfer, both changed roles included.
#[utoipa::path(
    post,
    path = "/v1/businesses/{id}/ownership",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id")),
    request_body = TransferBody,
    responses(
        (status = 200, description = "The members after the transfer (R5)", body = Items<MemberJson>),
        (status = 403, description = "`forbidden`: the actor is not the owner, or the new owner does not hold the admin-equivalent role (R5)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business, or the new owner is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the new owner is the actor, already the owner (field `new_owner_user_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn transfer_ownership(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<TransferBody>,
) -> Result<Json<Items<MemberJson>>, ApiError> {
    let id = business_path(&id)?;
    let actor = UserId::parse_field(&body.actor_user_id, "actor_user_id")?;
    let new_owner = UserId::parse_field(&body.new_owner_user_id, "new_owner_user_id")?;
    let members = state
        .services
        .transfer_ownership(id, &actor, &new_owner)
        .await?;
    Ok(Json(Items {
        items: members.iter().map(MemberJson::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::paging::encode_cursor;

    #[test]
    fn a_member_cursor_round_trips() {
        let key = (1_700_000_000_123_456, "user-42".to_string());
        let cursor = encode_cursor(&encode_member_key(&key));
        assert_eq!(decode_cursor(&cursor, decode_member_key).unwrap(), key);
        assert!(decode_cursor("AAAA", decode_member_key).is_err());
    }
}
