//! `POST /v1/businesses` and `GET /v1/businesses/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::HttpState;
use super::error::{ApiError, Problem};
use super::json::{RawPath, StrictJson, StrictQuery, actor_from_query, business_path};
use super::openapi::{Unavailable, ValidationFailed};
use super::wire::BusinessJson;
use crate::domain::{Locale, RolePreset, UserId};
use crate::service::businesses::{NewBusinessInput, parse_business_name};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBusinessBody {
    #[schema(value_type = super::openapi::values::NameText)]
    pub name: String,
    /// A user registered with `PUT /v1/users/{user_id}`.
    #[schema(value_type = super::openapi::values::UserIdText)]
    pub owner_user_id: String,
    /// `business_manager` when left out.
    #[schema(value_type = Option<super::openapi::values::RolePreset>)]
    pub role_preset: Option<String>,
    /// From 1 to 2147483647; no limit when left out.
    // Any JSON number, so that `0`, `-3`, `1.5` and `1e30` are refused by our
    // rule with our message rather than by a Rust type with serde's, and a
    // whole number written `64077.0` (an integer to JSON Schema) is taken.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    pub seat_limit: Option<serde_json::Number>,
    #[schema(value_type = Option<super::openapi::values::LocaleTag>)]
    pub locale: Option<String>,
}

/// `?actor_user_id=` and nothing else.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActorQuery {
    /// The acting user.
    #[param(required = true, value_type = Option<super::openapi::values::UserIdText>)]
    pub actor_user_id: Option<String>,
}

/// Creates a business with its owner as first member.
#[utoipa::path(
    post,
    path = "/v1/businesses",
    tag = "businesses",
    request_body = CreateBusinessBody,
    responses(
        (status = 201, description = "The business, with its public `business_id`", body = BusinessJson,
            headers(("Location" = String, description = "`/v1/businesses/{id}`"))),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_business(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<CreateBusinessBody>,
) -> Result<Response, ApiError> {
    let input = parse_create(body)?;
    let business = state.services.create_business(input).await?;
    let mut response = (StatusCode::CREATED, Json(BusinessJson::from(&business))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/businesses/{}", business.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The seat limits both stores hold: Postgres keeps them in an `integer`
/// (issue 12, item 12: 2147483648 and up wrapped there and were stored as
/// given on SQLite).
const SEAT_LIMITS: std::ops::RangeInclusive<u32> = 1..=i32::MAX as u32;

/// A JSON number that is a whole number, however it is written (`12`,
/// `12.0`, `1.2e1`), as JSON Schema's `integer` counts it.
fn whole_number(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        // Past 2^63 the cast saturates; such a number is out of every range here.
        (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
    })
}

fn parse_create(body: CreateBusinessBody) -> Result<NewBusinessInput, ApiError> {
    let name = parse_business_name(&body.name, "name")?;
    let owner = UserId::parse_field(&body.owner_user_id, "owner_user_id")?;
    let preset = body
        .role_preset
        .as_deref()
        .map(|raw| {
            RolePreset::parse(raw).ok_or_else(|| {
                ApiError::validation(
                    "role_preset",
                    "must be \"business_manager\" or \"account_levels\"",
                )
            })
        })
        .transpose()?;
    let seat_limit = body
        .seat_limit
        .map(|n| {
            whole_number(&n)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| SEAT_LIMITS.contains(n))
                .ok_or_else(|| {
                    ApiError::validation(
                        "seat_limit",
                        format!(
                            "must be a whole number from {} to {}",
                            SEAT_LIMITS.start(),
                            SEAT_LIMITS.end()
                        ),
                    )
                })
        })
        .transpose()?;
    let locale = body
        .locale
        .as_deref()
        .map(|raw| Locale::parse_field(raw, "locale"))
        .transpose()?;
    Ok(NewBusinessInput {
        name,
        owner,
        preset,
        seat_limit,
        locale,
    })
}

/// One business, for its members.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}",
    tag = "businesses",
    params(("id" = uuid::Uuid, Path, description = "The business's internal id"), ActorQuery),
    responses(
        (status = 200, description = "The business", body = BusinessJson),
        (status = 403, description = "`forbidden`: the actor is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get_business(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<ActorQuery>,
) -> Result<Json<BusinessJson>, ApiError> {
    let id = business_path(&id)?;
    let actor = actor_from_query(query.actor_user_id.as_deref())?;
    let business = state.services.get_business(id, &actor).await?;
    Ok(Json(BusinessJson::from(&business)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(role_preset: Option<&str>, seat_limit: Option<i64>) -> CreateBusinessBody {
        CreateBusinessBody {
            name: "Acme".into(),
            owner_user_id: "u1".into(),
            role_preset: role_preset.map(Into::into),
            seat_limit: seat_limit.map(Into::into),
            locale: Some("fr-ca".into()),
        }
    }

    #[test]
    fn a_valid_business_parses() {
        let input = parse_create(body(Some("account_levels"), Some(10))).unwrap();
        assert_eq!(input.preset, Some(RolePreset::AccountLevels));
        assert_eq!(input.seat_limit, Some(10));
        assert_eq!(input.locale.unwrap().as_str(), "fr-CA");
    }

    #[test]
    fn bad_presets_and_seat_limits_name_their_field() {
        let field = |b| parse_create(b).err().unwrap().errors[0].field.clone();
        assert_eq!(field(body(Some("admins"), None)), "role_preset");
        assert_eq!(field(body(None, Some(0))), "seat_limit");
        assert_eq!(field(body(None, Some(-1))), "seat_limit");
        assert_eq!(field(body(None, Some(i64::MAX))), "seat_limit");
        assert_eq!(field(body(None, Some(2_147_483_648))), "seat_limit");
        assert_eq!(field(body(None, Some(4_294_967_295))), "seat_limit");
        assert_eq!(
            parse_create(body(None, Some(2_147_483_647)))
                .unwrap()
                .seat_limit,
            Some(2_147_483_647)
        );
        let mut b = body(None, None);
        b.name = " ".into();
        assert_eq!(field(b), "name");
    }

    #[test]
    fn a_whole_number_written_with_a_fraction_is_a_seat_limit() {
        let with = |raw: &str| {
            let mut b = body(None, None);
            b.seat_limit = Some(serde_json::from_str(raw).unwrap());
            parse_create(b)
        };
        assert_eq!(with("64077.0").unwrap().seat_limit, Some(64077));
        assert_eq!(with("1.2e1").unwrap().seat_limit, Some(12));
        for refused in ["1.5", "0.0", "-3.0", "2147483648.0", "1e30"] {
            let e = with(refused).err().unwrap();
            assert_eq!(e.errors[0].field, "seat_limit", "{refused}");
        }
    }
}
