//! `ApiError`: every refusal the HTTP layer sends, as an RFC 9457
//! `application/problem+json` document. This is the one place where domain and
//! service errors become statuses and problem codes.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::DomainError;
use crate::service::ServiceError;

/// Where the `type` URIs of problems point.
const PROBLEM_BASE: &str = "https://invited.dev/problems/";

/// Every `code` a problem may carry: the list of docs/api.md, and the enum of the
/// `Problem` schema in `GET /v1/openapi.json`. A problem cannot carry any
/// other, and each is written as its snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    Unauthorized,
    Forbidden,
    NotFound,
    ValidationFailed,
    Conflict,
    InvalidTransition,
    RateLimited,
    SeatsExhausted,
    TokenInvalid,
    TokenUsed,
    TokenExpired,
    MfaRequired,
    EmailUnverified,
    AddressSuppressed,
    LinkInvalid,
    LinkRevoked,
    LinkExpired,
    LinkExhausted,
    DomainNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
}

impl ProblemCode {
    pub const ALL: [ProblemCode; 22] = [
        ProblemCode::Unauthorized,
        ProblemCode::Forbidden,
        ProblemCode::NotFound,
        ProblemCode::ValidationFailed,
        ProblemCode::Conflict,
        ProblemCode::InvalidTransition,
        ProblemCode::RateLimited,
        ProblemCode::SeatsExhausted,
        ProblemCode::TokenInvalid,
        ProblemCode::TokenUsed,
        ProblemCode::TokenExpired,
        ProblemCode::MfaRequired,
        ProblemCode::EmailUnverified,
        ProblemCode::AddressSuppressed,
        ProblemCode::LinkInvalid,
        ProblemCode::LinkRevoked,
        ProblemCode::LinkExpired,
        ProblemCode::LinkExhausted,
        ProblemCode::DomainNotAllowed,
        ProblemCode::PayloadTooLarge,
        ProblemCode::UnsupportedMediaType,
        ProblemCode::Unavailable,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Unauthorized => "unauthorized",
            ProblemCode::Forbidden => "forbidden",
            ProblemCode::NotFound => "not_found",
            ProblemCode::ValidationFailed => "validation_failed",
            ProblemCode::Conflict => "conflict",
            ProblemCode::InvalidTransition => "invalid_transition",
            ProblemCode::RateLimited => "rate_limited",
            ProblemCode::SeatsExhausted => "seats_exhausted",
            ProblemCode::TokenInvalid => "token_invalid",
            ProblemCode::TokenUsed => "token_used",
            ProblemCode::TokenExpired => "token_expired",
            ProblemCode::MfaRequired => "mfa_required",
            ProblemCode::EmailUnverified => "email_unverified",
            ProblemCode::AddressSuppressed => "address_suppressed",
            ProblemCode::LinkInvalid => "link_invalid",
            ProblemCode::LinkRevoked => "link_revoked",
            ProblemCode::LinkExpired => "link_expired",
            ProblemCode::LinkExhausted => "link_exhausted",
            ProblemCode::DomainNotAllowed => "domain_not_allowed",
            ProblemCode::PayloadTooLarge => "payload_too_large",
            ProblemCode::UnsupportedMediaType => "unsupported_media_type",
            ProblemCode::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The codes' names, in [`ProblemCode::ALL`] order.
pub const PROBLEM_CODES: [&str; ProblemCode::ALL.len()] = {
    let mut names = [""; ProblemCode::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = ProblemCode::ALL[i].as_str();
        i += 1;
    }
    names
};

/// The schema of `code` in the OpenAPI document: a string, one of the codes.
impl PartialSchema for ProblemCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("One of docs/api.md's problem codes"))
            .enum_values(Some(PROBLEM_CODES))
            .into()
    }
}

impl ToSchema for ProblemCode {}

/// One field named by a validation problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A problem ready to be sent. Build it from a [`DomainError`] or a
/// [`ServiceError`], or with one of the constructors for refusals that only
/// the HTTP layer knows (no key, malformed JSON, body too large, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ProblemCode,
    pub title: &'static str,
    pub detail: String,
    /// `Retry-After`, in whole seconds (rate limits).
    pub retry_after: Option<u64>,
    /// The fields a validation problem names (`errors` member).
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: ProblemCode,
        title: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            title,
            detail: detail.into(),
            retry_after: None,
            errors: Vec::new(),
        }
    }

    /// `422 validation_failed` naming one field (R18).
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        let message = message.into();
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::ValidationFailed,
            "Validation failed",
            format!("{field}: {message}"),
        );
        e.errors.push(FieldError { field, message });
        e
    }

    /// `400 validation_failed`: the body is not JSON at all (R18).
    pub fn malformed_json(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ProblemCode::ValidationFailed,
            "Malformed JSON",
            detail,
        )
    }

    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::PayloadTooLarge,
            "Payload too large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// `415 unsupported_media_type`: a body that does not say it is JSON.
    pub fn unsupported_media_type(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemCode::UnsupportedMediaType,
            "Unsupported media type",
            detail,
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ProblemCode::Unauthorized,
            "Unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
        )
    }

    /// `403 forbidden` for an API key without the scope a route needs (R47).
    pub fn missing_scope(needed: crate::config::Scope) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ProblemCode::Forbidden,
            "Forbidden",
            format!("this API key lacks the {needed} scope that this request needs"),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ProblemCode::NotFound,
            "Not found",
            detail,
        )
    }

    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            ProblemCode::Conflict,
            "Conflict",
            detail,
        )
    }

    /// `503 unavailable`. The cause goes to the log only: `detail` is for
    /// callers, who can do nothing with our internals but retry.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::Unavailable,
            "Service unavailable",
            "the service cannot answer right now; try again later",
        )
    }
}

/// Whole seconds for `Retry-After`, rounded up so that a client that waits
/// exactly that long never comes back a fraction too early.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The status and code of each domain refusal.
///
/// Tokens (R12) get three distinct answers that say nothing about other
/// invitations: an unknown or malformed token is `404 token_invalid` (there is
/// no such invitation as far as the caller can tell), an expired one is
/// `410 token_expired` (it existed and is gone for good), and one whose
/// invitation already left `pending` is `409 token_used` (it clashes with the
/// invitation's state, like `invalid_transition`).
impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        let detail = e.to_string();
        match e {
            DomainError::Validation { field, message } => ApiError::validation(field, message),
            DomainError::Forbidden(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                ProblemCode::Forbidden,
                "Forbidden",
                detail,
            ),
            DomainError::NotFound(_) => ApiError::not_found(detail),
            DomainError::Conflict(_) => ApiError::conflict(detail),
            DomainError::InvalidTransition { .. } | DomainError::JoinRequestTransition { .. } => {
                ApiError::new(
                    StatusCode::CONFLICT,
                    ProblemCode::InvalidTransition,
                    "Invalid transition",
                    detail,
                )
            }
            DomainError::RateLimited { retry_after, .. } => {
                let mut api = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ProblemCode::RateLimited,
                    "Rate limited",
                    detail,
                );
                api.retry_after = Some(retry_after_secs(retry_after));
                api
            }
            DomainError::SeatsExhausted(_) => ApiError::new(
                StatusCode::CONFLICT,
                ProblemCode::SeatsExhausted,
                "Seats exhausted",
                detail,
            ),
            DomainError::TokenInvalid => ApiError::new(
                StatusCode::NOT_FOUND,
                ProblemCode::TokenInvalid,
                "Invalid invitation token",
                detail,
            ),
            DomainError::TokenUsed => ApiError::new(
                StatusCode::CONFLICT,
                ProblemCode::TokenUsed,
                "Invitation token used",
                detail,
            ),
            DomainError::TokenExpired => ApiError::new(
                StatusCode::GONE,
                ProblemCode::TokenExpired,
                "Invitation expired",
                detail,
            ),
            DomainError::MfaRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                ProblemCode::MfaRequired,
                "Two-factor authentication required",
                detail,
            ),
            DomainError::EmailUnverified => ApiError::new(
                StatusCode::FORBIDDEN,
                ProblemCode::EmailUnverified,
                "Email not verified",
                detail,
            ),
            // R50: like tokens (R12), an unknown code is 404, one gone for
            // good 410, one used up 409; none says more than its code.
            DomainError::LinkInvalid => ApiError::new(
                StatusCode::NOT_FOUND,
                ProblemCode::LinkInvalid,
                "Invalid invite link",
                detail,
            ),
            DomainError::LinkRevoked => ApiError::new(
                StatusCode::GONE,
                ProblemCode::LinkRevoked,
                "Invite link revoked",
                detail,
            ),
            DomainError::LinkExpired => ApiError::new(
                StatusCode::GONE,
                ProblemCode::LinkExpired,
                "Invite link expired",
                detail,
            ),
            DomainError::LinkExhausted => ApiError::new(
                StatusCode::CONFLICT,
                ProblemCode::LinkExhausted,
                "Invite link used up",
                detail,
            ),
            DomainError::DomainNotAllowed => ApiError::new(
                StatusCode::FORBIDDEN,
                ProblemCode::DomainNotAllowed,
                "Email domain not allowed",
                detail,
            ),
            // R45: `errors` names each suppressed invitee's field, as a
            // validation problem names its fields.
            DomainError::AddressSuppressed(invitees) => {
                let mut api = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::AddressSuppressed,
                    "Address suppressed",
                    detail,
                );
                api.errors = invitees
                    .iter()
                    .map(|i| FieldError {
                        field: i.field.clone(),
                        message: i.message(),
                    })
                    .collect();
                api
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Domain(d) => d.into(),
            ServiceError::Store(error) => {
                tracing::error!(error = %error, "store error while serving a request");
                ApiError::unavailable()
            }
            ServiceError::Unavailable(error) => {
                tracing::error!(error = %error, "a part of the daemon is unavailable");
                ApiError::unavailable()
            }
        }
    }
}

/// An RFC 9457 problem document, sent as `application/problem+json`. Its
/// schema is the `Problem` of the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// `https://invited.dev/problems/<code>`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    kind: String,
    title: &'a str,
    /// The HTTP status, repeated.
    status: u16,
    /// What went wrong, for programs: one of docs/api.md's codes.
    code: ProblemCode,
    /// What went wrong, for people.
    detail: &'a str,
    /// The fields a `validation_failed` or `address_suppressed` problem
    /// names; absent otherwise.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<FieldError>)]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("{PROBLEM_BASE}{}", self.code.as_str()),
            title: self.title,
            status: self.status.as_u16(),
            code: self.code,
            detail: &self.detail,
            errors: &self.errors,
        };
        let body = serde_json::to_vec(&problem).expect("a problem always serialises");
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_code(e: DomainError) -> (u16, &'static str) {
        let api = ApiError::from(e);
        (api.status.as_u16(), api.code.as_str())
    }

    #[test]
    fn every_domain_error_has_its_status_and_code() {
        let table = [
            (
                DomainError::validation("invitees[0].email", "bad"),
                422,
                "validation_failed",
            ),
            (DomainError::forbidden("no"), 403, "forbidden"),
            (DomainError::NotFound("x".into()), 404, "not_found"),
            (DomainError::Conflict("x".into()), 409, "conflict"),
            (
                DomainError::InvalidTransition {
                    from: "accepted".into(),
                    command: "cancel".into(),
                },
                409,
                "invalid_transition",
            ),
            (
                DomainError::RateLimited {
                    retry_after: Duration::from_secs(3),
                    detail: "x".into(),
                },
                429,
                "rate_limited",
            ),
            (
                DomainError::SeatsExhausted("x".into()),
                409,
                "seats_exhausted",
            ),
            (DomainError::TokenInvalid, 404, "token_invalid"),
            (DomainError::TokenUsed, 409, "token_used"),
            (DomainError::TokenExpired, 410, "token_expired"),
            (DomainError::MfaRequired, 403, "mfa_required"),
            (DomainError::EmailUnverified, 403, "email_unverified"),
            (
                DomainError::AddressSuppressed(Vec::new()),
                422,
                "address_suppressed",
            ),
            (DomainError::LinkInvalid, 404, "link_invalid"),
            (DomainError::LinkRevoked, 410, "link_revoked"),
            (DomainError::LinkExpired, 410, "link_expired"),
            (DomainError::LinkExhausted, 409, "link_exhausted"),
            (DomainError::DomainNotAllowed, 403, "domain_not_allowed"),
        ];
        for (error, status, code) in table {
            let name = format!("{error:?}");
            assert_eq!(status_code(error), (status, code), "{name}");
        }
    }

    /// The wire name of each code is its `as_str`, and no two codes share one.
    #[test]
    fn problem_codes_are_written_by_name() {
        for code in ProblemCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
        let names: std::collections::BTreeSet<&str> = PROBLEM_CODES.into_iter().collect();
        assert_eq!(names.len(), ProblemCode::ALL.len());
    }

    #[test]
    fn service_failures_are_unavailable_without_internals() {
        let api = ApiError::from(ServiceError::Unavailable(
            "actor mailbox closed at 0xdeadbeef".into(),
        ));
        assert_eq!(
            (api.status.as_u16(), api.code.as_str()),
            (503, "unavailable")
        );
        assert!(!api.detail.contains("deadbeef"));
        let api = ApiError::from(ServiceError::Store(crate::store::StoreError::Other(
            "password=hunter2".into(),
        )));
        assert_eq!(
            (api.status.as_u16(), api.code.as_str()),
            (503, "unavailable")
        );
        assert!(!api.detail.contains("hunter2"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        for (wait, want) in [
            (Duration::ZERO, 0),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_millis(59_999), 60),
            (Duration::from_secs(86_400), 86_400),
        ] {
            assert_eq!(retry_after_secs(wait), want, "{wait:?}");
        }
        let api = ApiError::from(DomainError::RateLimited {
            retry_after: Duration::from_millis(2_500),
            detail: "x".into(),
        });
        let response = api.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[tokio::test]
    async fn problems_are_problem_json_with_type_code_and_errors() {
        let response =
            ApiError::validation("invitees[0].email", "not an email address").into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["type"],
            "https://invited.dev/problems/validation_failed"
        );
        assert_eq!(json["status"], 422);
        assert_eq!(json["code"], "validation_failed");
        assert!(
            json["detail"]
                .as_str()
                .unwrap()
                .contains("invitees[0].email")
        );
        assert_eq!(json["errors"][0]["field"], "invitees[0].email");
    }

    #[test]
    fn unauthorized_asks_for_a_bearer_token() {
        let response = ApiError::unauthorized().into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
