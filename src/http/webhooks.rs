//! Webhook endpoints at runtime (R48), every route `admin`-scoped (R47):
//! `POST|GET /v1/webhooks`, `GET|PATCH|DELETE /v1/webhooks/{id}`,
//! `POST /v1/webhooks/{id}/rotate-secret`, `POST /v1/webhooks/{id}/replay`
//! and `GET /v1/webhooks/{id}/deliveries`. The secret is in the answers of
//! create and rotate only; the publisher picks every change up through the
//! store's events wake-up.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::HttpState;
use super::error::{ApiError, Problem};
use super::json::{RawPath, StrictJson, StrictQuery};
use super::openapi::{Unavailable, ValidationFailed};
use super::paging::{decode_cursor, next_cursor, parse_limit};
use super::wire::{Items, Page};
use crate::events::catalog::EventType;
use crate::events::generate_secret;
use crate::service::ServiceError;
use crate::store::{
    NewWebhookEndpoint, StoreError, WebhookDeliveryRecord, WebhookEndpointChange,
    WebhookEndpointRecord, endpoint_sink,
};

/// How long the secret before a rotation keeps signing.
pub const ROTATION_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::hours(24);

const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 500;

fn store_error(error: StoreError) -> ApiError {
    ServiceError::from(error).into()
}

/// `{id}`: a UUID, else nothing that can exist (`404`).
fn endpoint_path(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such webhook endpoint"))
}

fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such webhook endpoint")
}

/// An absolute http(s) URL with a host.
fn parse_url(raw: &str) -> Result<String, ApiError> {
    let text = raw.trim();
    if text.len() > MAX_URL {
        return Err(ApiError::validation(
            "url",
            format!("is longer than {MAX_URL} bytes"),
        ));
    }
    let url = url::Url::parse(text)
        .map_err(|e| ApiError::validation("url", format!("is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::validation(
            "url",
            "must be an http:// or https:// URL with a host",
        ));
    }
    Ok(text.to_owned())
}

/// The filter: known event types (the catalog's), at least one, each once.
/// Unknown names are refused together, each named.
fn parse_event_types(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::validation(
            "event_types",
            "must name at least one event type (leave it out for every type)",
        ));
    }
    let unknown: Vec<&str> = raw
        .iter()
        .filter(|name| EventType::parse(name).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::validation(
            "event_types",
            format!("unknown event types: {}", unknown.join(", ")),
        ));
    }
    let mut types: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        if !types.contains(&name) {
            types.push(name);
        }
    }
    Ok(types)
}

fn parse_description(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(text) = raw.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::validation(
            "description",
            format!("is longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(Some(text))
}

/// An endpoint as the API shows it: never its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookEndpointJson {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// The event types it gets; `null`: every type.
    pub event_types: Option<Vec<String>>,
    pub disabled: bool,
    /// Why it is disabled: answered `410`, failed for
    /// `webhooks.disable_after`, or disabled by an operator.
    pub disabled_reason: Option<String>,
    /// Events committed after its cursor (filtered-out ones included)
    /// that it has not been sent yet.
    pub lag: u64,
    /// The error of the latest attempt, while failing.
    pub last_error: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpointJson {
    fn from_record(record: &WebhookEndpointRecord, lag: u64) -> WebhookEndpointJson {
        WebhookEndpointJson {
            id: record.id,
            url: record.url.clone(),
            description: record.description.clone(),
            event_types: record.event_types.clone(),
            disabled: record.disabled,
            disabled_reason: record.disabled_reason.clone(),
            lag,
            last_error: record.last_error.clone(),
            last_success_at: record.last_success_at,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// The endpoint and its secret: the answer of create, the only time the
/// secret is shown besides a rotation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedWebhookJson {
    #[serde(flatten)]
    pub endpoint: WebhookEndpointJson,
    /// `whsec_<base64 of 32 random bytes>`: the key of `webhook-signature`
    /// (and, as text, of `Invited-Signature`).
    pub secret: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SecretJson {
    /// The new `whsec_…` secret; the previous one keeps signing for 24 hours.
    pub secret: String,
}

async fn lags(state: &HttpState) -> Result<Vec<(String, u64)>, ApiError> {
    Ok(state
        .services
        .store
        .event_lag()
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|lag| (lag.sink, lag.depth))
        .collect())
}

fn lag_of(lags: &[(String, u64)], id: Uuid) -> u64 {
    let sink = endpoint_sink(id);
    lags.iter().find(|(s, _)| *s == sink).map_or(0, |(_, d)| *d)
}

async fn shown(
    state: &HttpState,
    record: &WebhookEndpointRecord,
) -> Result<WebhookEndpointJson, ApiError> {
    let lags = lags(state).await?;
    Ok(WebhookEndpointJson::from_record(
        record,
        lag_of(&lags, record.id),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookBody {
    /// An absolute http(s) URL.
    #[schema(value_type = super::openapi::values::WebhookUrlText)]
    pub url: String,
    /// Event types of the catalog (docs/events.md), at least one; left out:
    /// every type.
    #[schema(value_type = Option<Vec<super::openapi::values::EventTypeName>>, min_items = 1)]
    pub event_types: Option<Vec<String>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// `201` the endpoint with its new secret. It gets the events committed from
/// now on.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    security(("api_key" = ["admin"])),
    request_body = CreateWebhookBody,
    responses(
        (status = 201, description = "The endpoint, with its secret (shown only here and on rotation)", body = CreatedWebhookJson),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_webhook(
    State(state): State<HttpState>,
    StrictJson(body): StrictJson<CreateWebhookBody>,
) -> Result<Response, ApiError> {
    let new = NewWebhookEndpoint {
        id: Uuid::now_v7(),
        url: parse_url(&body.url)?,
        description: parse_description(body.description)?,
        event_types: body.event_types.map(parse_event_types).transpose()?,
        secret: generate_secret(),
    };
    let record = state
        .services
        .store
        .insert_webhook_endpoint(&new)
        .await
        .map_err(store_error)?;
    let created = CreatedWebhookJson {
        endpoint: WebhookEndpointJson::from_record(&record, 0),
        secret: new.secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Every endpoint of the API (not those of the configuration file), oldest
/// first.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "Every endpoint, oldest first", body = Items<WebhookEndpointJson>),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_webhooks(
    State(state): State<HttpState>,
) -> Result<Json<Items<WebhookEndpointJson>>, ApiError> {
    let endpoints = state
        .services
        .store
        .webhook_endpoints()
        .await
        .map_err(store_error)?;
    let lags = lags(&state).await?;
    Ok(Json(Items {
        items: endpoints
            .iter()
            .map(|e| WebhookEndpointJson::from_record(e, lag_of(&lags, e.id)))
            .collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookEndpointJson),
        (status = 404, description = "`not_found`: no such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get_webhook(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
) -> Result<Json<WebhookEndpointJson>, ApiError> {
    let id = endpoint_path(&id)?;
    let record = state
        .services
        .store
        .webhook_endpoint(id)
        .await
        .map_err(store_error)?
        .ok_or_else(no_such_endpoint)?;
    Ok(Json(shown(&state, &record).await?))
}

/// `Some(None)` for an explicit `null`, `None` when the field is left out.
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookBody {
    #[schema(value_type = Option<super::openapi::values::WebhookUrlText>)]
    pub url: Option<String>,
    /// A new filter (at least one type); `null`: every type again.
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<Vec<super::openapi::values::EventTypeName>>, nullable, min_items = 1)]
    pub event_types: Option<Option<Vec<String>>>,
    /// `true` pauses the endpoint; `false` resumes it where it stopped.
    pub disabled: Option<bool>,
}

#[utoipa::path(
    patch,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    request_body = UpdateWebhookBody,
    responses(
        (status = 200, description = "The endpoint as changed", body = WebhookEndpointJson),
        (status = 404, description = "`not_found`: no such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn update_webhook(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<UpdateWebhookBody>,
) -> Result<Json<WebhookEndpointJson>, ApiError> {
    let id = endpoint_path(&id)?;
    let change = WebhookEndpointChange {
        url: body.url.as_deref().map(parse_url).transpose()?,
        event_types: match body.event_types {
            None => None,
            Some(None) => Some(None),
            Some(Some(types)) => Some(Some(parse_event_types(types)?)),
        },
        disabled: body.disabled,
    };
    let record = state
        .services
        .store
        .update_webhook_endpoint(id, &change)
        .await
        .map_err(store_error)?
        .ok_or_else(no_such_endpoint)?;
    Ok(Json(shown(&state, &record).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "The endpoint, its cursor and its attempts are gone"),
        (status = 404, description = "`not_found`: no such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete_webhook(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = endpoint_path(&id)?;
    if !state
        .services
        .store
        .delete_webhook_endpoint(id)
        .await
        .map_err(store_error)?
    {
        return Err(no_such_endpoint());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `200` the new secret. For 24 hours both sign every delivery
/// (`webhook-signature` carries two signatures), so receivers can switch
/// without losing any.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The new secret", body = SecretJson),
        (status = 404, description = "`not_found`: no such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn rotate_secret(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
) -> Result<Json<SecretJson>, ApiError> {
    let id = endpoint_path(&id)?;
    let secret = generate_secret();
    state
        .services
        .store
        .rotate_webhook_secret(id, &secret, Utc::now() + ROTATION_OVERLAP)
        .await
        .map_err(store_error)?
        .ok_or_else(no_such_endpoint)?;
    Ok(Json(SecretJson { secret }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// RFC 3339: the events that occurred at or after it are sent again.
    #[schema(format = DateTime)]
    pub since: String,
}

/// `202`: the endpoint's cursor moves back to the first event at or after
/// `since`, and everything from there is sent again, in order (its filter
/// still applies). Never moves the cursor forward.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/replay",
    tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    request_body = ReplayBody,
    responses(
        (status = 202, description = "The events since then are on their way again"),
        (status = 404, description = "`not_found`: no such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn replay(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictJson(body): StrictJson<ReplayBody>,
) -> Result<StatusCode, ApiError> {
    let id = endpoint_path(&id)?;
    let since = DateTime::parse_from_rfc3339(body.since.trim())
        .map_err(|e| ApiError::validation("since", format!("is not an RFC 3339 time ({e})")))?
        .with_timezone(&Utc);
    if !state
        .services
        .store
        .replay_webhook_endpoint(id, since)
        .await
        .map_err(store_error)?
    {
        return Err(no_such_endpoint());
    }
    Ok(StatusCode::ACCEPTED)
}

/// `?limit=&cursor=` of the attempts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (base64url, never empty).
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// One delivery attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookDeliveryJson {
    pub event_id: Uuid,
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status the endpoint answered; `null` when it did not answer
    /// (connection refused, timeout).
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// Why it failed; `null` for a success.
    pub error: Option<String>,
}

impl From<&WebhookDeliveryRecord> for WebhookDeliveryJson {
    fn from(d: &WebhookDeliveryRecord) -> WebhookDeliveryJson {
        WebhookDeliveryJson {
            event_id: d.event_id,
            attempted_at: d.attempted_at,
            status: d.status,
            duration_ms: d.duration_ms,
            error: d.error.clone(),
        }
    }
}

/// The endpoint's delivery attempts, oldest first, one page at a time.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "One page of attempts, oldest first", body = Page<WebhookDeliveryJson>),
        (status = 404, description = "`not_found`: no such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
pub async fn deliveries(
    State(state): State<HttpState>,
    RawPath(id): RawPath<String>,
    StrictQuery(query): StrictQuery<DeliveriesQuery>,
) -> Result<Json<Page<WebhookDeliveryJson>>, ApiError> {
    let id = endpoint_path(&id)?;
    let limit = parse_limit(query.limit.as_deref())?;
    let after = query
        .cursor
        .as_deref()
        .map(|raw| decode_cursor(raw, |bytes| Uuid::from_slice(bytes).ok()))
        .transpose()?;
    let store = &state.services.store;
    if store
        .webhook_endpoint(id)
        .await
        .map_err(store_error)?
        .is_none()
    {
        return Err(no_such_endpoint());
    }
    let found = store
        .webhook_deliveries(id, after, limit)
        .await
        .map_err(store_error)?;
    let next_cursor = next_cursor(&found, limit, |last| last.id.as_bytes().to_vec());
    Ok(Json(Page {
        items: found.iter().map(WebhookDeliveryJson::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_filters_are_checked() {
        assert!(parse_url("https://hooks.example.com/x").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/hook").is_ok());
        for bad in [
            "ftp://x.example/",
            "/relative",
            "hooks.example.com",
            "https://",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_event_types(vec!["invitation.sent".into(), "invitation.sent".into()]).unwrap(),
            vec!["invitation.sent".to_string()]
        );
        assert!(parse_event_types(vec![]).is_err());
    }
}
