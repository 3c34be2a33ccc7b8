//! HTTP: the v1 API of docs/api.md, and the only code that knows its JSON. Handlers
//! parse raw input into domain types, call one use case (or an invitation's
//! actor) and turn records into wire structs; refusals become problem+json.
//!
//! Layers, outermost first: tracing, the body limit, then on `/v1` routes the
//! API-key check and `Idempotency-Key` handling, then the handler.

pub mod access;
pub mod auth;
pub mod businesses;
pub mod console;
pub mod domains;
pub mod error;
pub mod feedback;
pub mod health;
pub mod idempotency;
pub mod invitations;
pub mod invite_links;
pub mod invitee;
pub mod join_requests;
pub mod json;
pub mod members;
pub mod observe;
pub mod openapi;
pub mod paging;
pub mod partners;
pub mod suppressions;
pub mod users;
pub mod webhooks;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use tower_http::trace::TraceLayer;

use crate::actors::InvitationsHandle;
use crate::config::ApiKey;
use crate::feedback::providers::Providers;
use crate::service::Services;
pub use auth::generate_api_key;
use error::{ApiError, ProblemCode};

/// What every handler reaches.
#[derive(Clone)]
pub struct HttpState {
    pub services: Services,
    pub invitations: InvitationsHandle,
    pub api_keys: Arc<Vec<ApiKey>>,
    /// The largest request body, in bytes (`api.max_body`).
    pub max_body: usize,
    /// How long a request may take before it is answered `503 unavailable`
    /// (`api.request_timeout`).
    pub request_timeout: std::time::Duration,
    /// The providers whose feedback webhooks are taken, with their keys
    /// (R43 a; `feedback.*`).
    pub feedback: Arc<Providers>,
}

/// The feedback webhooks' providers as the configuration sets them.
pub fn feedback_providers(config: &crate::config::FeedbackConfig) -> Providers {
    Providers::new(
        config.postmark.clone(),
        config.sendgrid.clone(),
        config.mailgun.clone(),
        config.resend.clone(),
        config.ses.allowed_cert_hosts.clone(),
        config.ses.plain_http_certs_for_tests,
    )
}

/// The whole HTTP interface.
pub fn router(state: HttpState) -> Router {
    let v1 = Router::new()
        .route("/users/{user_id}", put(users::put_user))
        .route("/businesses", post(businesses::create_business))
        .route("/businesses/{id}", get(businesses::get_business))
        .route("/businesses/{id}/members", get(members::list_members))
        .route(
            "/businesses/{id}/members/{user_id}",
            axum::routing::patch(members::set_member_role).delete(members::remove_member),
        )
        .route(
            "/businesses/{id}/ownership",
            post(members::transfer_ownership),
        )
        .route(
            "/businesses/{id}/invitations",
            post(invitations::create_invitations).get(invitations::list_invitations),
        )
        .route("/businesses/{id}/invitation-quota", get(invitations::quota))
        // Static segments win over `{id}` in axum's router, so these three are
        // never taken for an invitation id.
        .route("/invitations/accept", post(invitations::accept))
        .route("/invitations/decline", post(invitations::decline))
        .route("/invitations/preview", post(invitee::preview))
        .route(
            "/invitations/{id}",
            get(invitations::get_invitation).patch(invitations::correct_address),
        )
        .route("/invitations/{id}/timeline", get(invitations::timeline))
        .route("/invitations/{id}/resend", post(invitations::resend))
        .route("/invitations/{id}/cancel", post(invitations::cancel))
        // Partners (R19–R21), profiles, grants and access (R1, R15, R23, R24).
        .route(
            "/businesses/{id}/partners",
            post(partners::create_partner).get(partners::list_partners),
        )
        .route(
            "/businesses/{id}/partners/{partner_id}",
            axum::routing::delete(partners::end_partnership),
        )
        .route("/invitations/{id}/accept", post(partners::accept))
        .route("/invitations/{id}/decline", post(partners::decline))
        .route("/businesses/{id}/security", put(access::set_security))
        .route("/businesses/{id}/profiles", post(access::create_profile))
        .route("/profiles/{profile_id}/grants", post(access::add_grant))
        .route(
            "/profiles/{profile_id}/grants/{grant_id}",
            axum::routing::delete(access::remove_grant),
        )
        .route("/access", get(access::access))
        .route("/authorize", get(access::authorize))
        .route("/users/{user_id}/profiles", get(access::user_profiles))
        .route(
            "/users/{user_id}/invitations",
            get(invitee::list_user_invitations),
        )
        .route("/invitations/{id}/renew", post(invitations::renew))
        // Invite links (R50): the business's members create, list and
        // revoke them; whoever holds a code previews and redeems it.
        .route(
            "/businesses/{id}/invite-links",
            post(invite_links::create_invite_link).get(invite_links::list_invite_links),
        )
        .route(
            "/businesses/{id}/invite-links/{link_id}",
            axum::routing::delete(invite_links::revoke_invite_link),
        )
        .route(
            "/businesses/{id}/invite-links/{link_id}/timeline",
            get(invite_links::invite_link_timeline),
        )
        .route(
            "/invite-links/preview",
            post(invite_links::preview_invite_link),
        )
        .route(
            "/invite-links/redeem",
            post(invite_links::redeem_invite_link),
        )
        // Join requests (R51, R53).
        .route("/join-requests", post(join_requests::create_join_request))
        .route(
            "/businesses/{id}/join-requests",
            get(join_requests::list_join_requests),
        )
        .route("/join-requests/{id}", get(join_requests::get_join_request))
        .route(
            "/join-requests/{id}/timeline",
            get(join_requests::join_request_timeline),
        )
        .route(
            "/join-requests/{id}/approve",
            post(join_requests::approve_join_request),
        )
        .route(
            "/join-requests/{id}/deny",
            post(join_requests::deny_join_request),
        )
        // R52: verified domains.
        .route(
            "/businesses/{id}/domains",
            get(domains::list_domains).merge(post(domains::claim_domain)),
        )
        .route(
            "/businesses/{id}/domains/{domain}",
            axum::routing::delete(domains::remove_domain),
        )
        .route(
            "/businesses/{id}/domains/{domain}/verify",
            post(domains::verify_domain),
        )
        .route("/users/{user_id}/suggestions", get(domains::suggestions))
        // R45: reading the list is `read`; changing it is `admin` (R47).
        .route(
            "/suppressions",
            get(suppressions::list_suppressions)
                .merge(auth::admin(post(suppressions::add_suppression))),
        )
        .route(
            "/suppressions/{email}",
            auth::admin(axum::routing::delete(suppressions::remove_suppression)),
        )
        // Webhook endpoints (R48): reading them is `read` like every GET,
        // changing them `admin` (R47).
        .route(
            "/webhooks",
            get(webhooks::list_webhooks).merge(auth::admin(post(webhooks::create_webhook))),
        )
        .route(
            "/webhooks/{id}",
            get(webhooks::get_webhook).merge(auth::admin(
                axum::routing::patch(webhooks::update_webhook).delete(webhooks::delete_webhook),
            )),
        )
        .route(
            "/webhooks/{id}/rotate-secret",
            auth::admin(post(webhooks::rotate_secret)),
        )
        .route("/webhooks/{id}/replay", auth::admin(post(webhooks::replay)))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        // The OpenAPI document of all of the above; behind the key like all of /v1.
        .route("/openapi.json", get(openapi::openapi_json))
        // `route_layer`: only matched routes are checked, so an unknown path
        // is a 404 whoever asks. The later layer runs first: the key is
        // checked before an idempotency key is looked at.
        .route_layer(from_fn_with_state(state.clone(), idempotency::idempotency))
        .route_layer(from_fn_with_state(state.clone(), auth::require_api_key));

    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics_text))
        // R43 a: signed by the provider, not by an API key.
        .route("/feedback/{provider}", post(feedback::provider_feedback))
        .nest("/v1", v1)
        // R49: the operator console, HTML pages behind a session of its own
        // (not part of the JSON API; docs/api.md lists its routes).
        .merge(console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(from_fn_with_state(state.request_timeout, request_timeout))
        .layer(axum::middleware::from_fn(observe::record))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// One span per request with the method and the route template only: the
/// concrete path and query may hold user ids, and bodies hold tokens.
fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    tracing::info_span!("http", method = %req.method(), route = route.unwrap_or("<unmatched>"))
}

/// `api.request_timeout`: past it the request's future is dropped (a
/// transaction under way rolls back) and the client gets `503 unavailable`
/// as problem+json, so a stuck part of the daemon never hangs a client. Inside
/// the metrics and the trace span, which see the `503`.
async fn request_timeout(
    State(limit): State<std::time::Duration>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(
                limit = %crate::config::format_duration(limit),
                "a request was not answered within api.request_timeout"
            );
            ApiError::unavailable().into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// No code of docs/api.md says "wrong method"; `not_found` is the nearest (there is
/// nothing at this path for this method), with the standard status.
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ProblemCode::NotFound,
        "Method not allowed",
        "this route does not take this method",
    )
}

#[cfg(test)]
mod tests;
