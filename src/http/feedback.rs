//! R43 a: `POST /feedback/{provider}`, the providers' bounce and complaint
//! webhooks. Outside `/v1` and without an API key: each provider signs its
//! requests instead, and `crate::feedback::providers` checks that signature
//! before anything else. The answers: `204` once read (also when the email
//! is not ours: recorded), `401` when the check fails (nothing recorded:
//! anyone can send that), `400` for a signed body we cannot read
//! (recorded as malformed), `404` for a provider that is not configured.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::HttpState;
use super::error::{ApiError, Problem, ProblemCode};
use crate::feedback::Unreadable;
use crate::feedback::providers::{MAX_BODY, Provider, Refused, Webhook};

#[utoipa::path(
    post,
    path = "/feedback/{provider}",
    tag = "feedback",
    params(("provider" = String, Path, description = "`ses`, `postmark`, `sendgrid`, `mailgun` or `resend`")),
    request_body(content = Object, description = "The provider's own webhook body, signed as that provider signs (docs/api.md)"),
    responses(
        (status = 204, description = "Read and applied; also for feedback about an email that is not ours (recorded)"),
        (status = 400, description = "`validation_failed`: signed, but not a body of that provider", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: the signature, its timestamp or the credentials fail; nothing changes", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such provider, or it is not configured", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: a body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the SNS signing certificate could not be fetched now, or the database", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn provider_feedback(
    State(state): State<HttpState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let Some(provider) = Provider::parse(&provider) else {
        return Err(ApiError::not_found(
            "no such feedback provider (ses, postmark, sendgrid, mailgun, resend)",
        ));
    };
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::payload_too_large(MAX_BODY))?;
    let hook = Webhook {
        headers: &headers,
        body: &body,
        now: chrono::Utc::now().timestamp(),
    };
    let feedback = match state.feedback.read(provider, &hook).await {
        Ok(feedback) => feedback,
        Err(Refused::NotConfigured) => {
            return Err(ApiError::not_found(format!(
                "feedback from {provider} is not configured"
            )));
        }
        Err(Refused::Unauthenticated(why)) => {
            tracing::warn!(%provider, reason = %why, "feedback webhook refused: not authenticated");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ProblemCode::Unauthorized,
                "Unauthorized",
                format!("the {provider} signature or credentials do not verify"),
            ));
        }
        Err(Refused::CertUnavailable(why)) => {
            tracing::warn!(%provider, reason = %why, "feedback webhook not checked: certificate unavailable");
            return Err(ApiError::unavailable());
        }
        Err(Refused::Malformed(why)) => {
            let why = Unreadable::Malformed(why);
            state
                .services
                .record_unreadable_feedback(provider.source(), None, &why)
                .await?;
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ProblemCode::ValidationFailed,
                "Malformed feedback",
                why.to_string(),
            ));
        }
    };
    for one in &feedback {
        state.services.apply_feedback(one).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
