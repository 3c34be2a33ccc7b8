//! `PUT /v1/users/{user_id}`: the app registers (or updates) one of its users.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::HttpState;
use super::error::ApiError;
use super::json::{RawPath, StrictJson};
use super::openapi::Unavailable;
use super::wire::UserJson;
use crate::domain::{DisplayName, Email, Locale, TimeZone, UserId};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutUserBody {
    #[schema(value_type = super::openapi::values::EmailText)]
    pub email: String,
    #[schema(value_type = Option<super::openapi::values::NameText>)]
    pub display_name: Option<String>,
    #[schema(value_type = Option<super::openapi::values::LocaleTag>)]
    pub locale: Option<String>,
    /// The user's IANA time zone (R41): emails to this user write times in
    /// it. Absent or `null`: none (times in UTC). An unknown zone is `422`.
    #[schema(example = "America/Los_Angeles")]
    pub time_zone: Option<String>,
}

/// Registers or updates one of the app's users.
#[utoipa::path(
    put,
    path = "/v1/users/{user_id}",
    tag = "users",
    params(("user_id" = super::openapi::values::UserIdText, Path, description = "The app's own id of the user")),
    request_body = PutUserBody,
    responses(
        (status = 200, description = "The user, created or updated", body = UserJson),
        (status = 503, response = Unavailable),
    )
)]
pub async fn put_user(
    State(state): State<HttpState>,
    RawPath(user_id): RawPath<String>,
    StrictJson(body): StrictJson<PutUserBody>,
) -> Result<Json<UserJson>, ApiError> {
    let user_id = UserId::parse_field(&user_id, "user_id")?;
    let email = Email::parse_field(&body.email, "email")?;
    let display_name = body
        .display_name
        .as_deref()
        .map(parse_display_name)
        .transpose()?;
    let locale = body
        .locale
        .as_deref()
        .map(|raw| Locale::parse_field(raw, "locale"))
        .transpose()?;
    let time_zone = body
        .time_zone
        .as_deref()
        .map(|raw| TimeZone::parse_field(raw, "time_zone"))
        .transpose()?;
    let user = state
        .services
        .put_user(user_id, email, display_name, locale, time_zone)
        .await?;
    Ok(Json(UserJson::from(&user)))
}

/// A display name: trimmed, 1 to 200 characters, no control characters (R30:
/// it may end up in a header of an email), no bidirectional-control or
/// zero-width characters (R41); see `domain::names`.
fn parse_display_name(raw: &str) -> Result<String, ApiError> {
    Ok(DisplayName::parse_field(raw, "display_name")?.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(
            parse_display_name("  Ada Lovelace ").unwrap(),
            "Ada Lovelace"
        );
        for bad in [
            "",
            "   ",
            "Ada\r\nBcc: x@y.example",
            &"x".repeat(201),
            "Ada\u{202E}ecalevol",
            "Ada\u{200B}",
        ] {
            let e = parse_display_name(bad).unwrap_err();
            assert_eq!(e.errors[0].field, "display_name", "{bad:?}");
        }
    }
}
