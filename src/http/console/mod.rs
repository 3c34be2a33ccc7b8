//! The operator console at `/console` (R49): HTML pages rendered here from
//! minijinja templates built into the binary (`console/templates/`, HTML
//! autoescaped), with a little hand-written CSS and no JavaScript build.
//! These routes are not part of the JSON API and not in its OpenAPI
//! document; docs/api.md lists them and docs/console.md is the operator's
//! guide.
//!
//! Sessions: signing in checks an API key exactly as `/v1` does
//! (`auth::authenticate_key`) and stores a session in the database (its
//! id's hash, the key's name and scope, a form token, the expiry), so it
//! works across replicas. The cookie carries the session id: `HttpOnly`,
//! `SameSite=Strict`, `Path=/console`, and `Secure` when the request came
//! over https (`X-Forwarded-Proto: https`; the daemon itself serves plain
//! HTTP behind a proxy). Every form carries the session's token and every
//! POST checks it. A session's scope is its key's scope: `read` and `write`
//! see everything; actions need `admin` (R47).

mod businesses;
mod invitations;
mod login;
mod outbox;
mod search;
mod suppressions;
mod webhooks;

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use super::HttpState;
use crate::config::Scope;
use crate::domain::DomainError;
use crate::service::ServiceError;
use crate::service::console::Session;

/// The session cookie.
const SESSION_COOKIE: &str = "invited_console";
/// The sign-in form's token, before there is a session.
const LOGIN_COOKIE: &str = "invited_console_login";

/// The console's routes (merged into the router beside `/v1`).
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/console", get(search::home))
        .route("/console/login", get(login::form).post(login::sign_in))
        .route("/console/logout", post(login::sign_out))
        .route("/console/search", get(search::search))
        .route("/console/invitations/{id}", get(invitations::page))
        .route("/console/businesses/{id}", get(businesses::page))
        .route("/console/outbox", get(outbox::page))
        .route("/console/failed", get(outbox::failed))
        .route("/console/failed/{id}/retry", post(outbox::retry_one))
        .route(
            "/console/failed/retry-all",
            get(outbox::confirm_retry_all).post(outbox::retry_all),
        )
        .route("/console/webhooks", get(webhooks::page))
        .route("/console/webhooks/{id}/pause", post(webhooks::pause))
        .route("/console/webhooks/{id}/resume", post(webhooks::resume))
        .route("/console/webhooks/{id}/replay", post(webhooks::replay))
        .route("/console/suppressions", get(suppressions::page))
}

const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../../console/templates/layout.html"),
    ),
    (
        "login.html",
        include_str!("../../../console/templates/login.html"),
    ),
    (
        "search.html",
        include_str!("../../../console/templates/search.html"),
    ),
    (
        "invitation.html",
        include_str!("../../../console/templates/invitation.html"),
    ),
    (
        "business.html",
        include_str!("../../../console/templates/business.html"),
    ),
    (
        "outbox.html",
        include_str!("../../../console/templates/outbox.html"),
    ),
    (
        "failed.html",
        include_str!("../../../console/templates/failed.html"),
    ),
    (
        "retry_all.html",
        include_str!("../../../console/templates/retry_all.html"),
    ),
    (
        "webhooks.html",
        include_str!("../../../console/templates/webhooks.html"),
    ),
    (
        "suppressions.html",
        include_str!("../../../console/templates/suppressions.html"),
    ),
    (
        "error.html",
        include_str!("../../../console/templates/error.html"),
    ),
];

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Every template is HTML: escape everything interpolated.
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // A value in a query string.
        env.add_filter("urlencode", |s: String| {
            url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("console template {name}: {e}"));
        }
        env
    })
}

/// A rendered page.
fn render(status: StatusCode, template: &str, ctx: serde_json::Value) -> Response {
    match templates()
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
    {
        Ok(html) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                     form-action 'self'; frame-ancestors 'none'",
                ),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(template, error = %e, "console: a template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// What every page of a session shows in its frame.
#[derive(Serialize)]
struct Frame<'a> {
    key_name: &'a str,
    scope: &'a str,
    csrf: &'a str,
    /// Whether this session may act (the `admin` scope): without it no
    /// action form is shown.
    can_act: bool,
    /// The page, for the navigation and `data-page`.
    page: &'a str,
}

/// A page of a signed-in session: `ctx` plus the frame.
fn render_page(
    session: &Session,
    page: &str,
    template: &str,
    mut ctx: serde_json::Value,
) -> Response {
    let frame = Frame {
        key_name: &session.key_name,
        scope: session.scope.as_str(),
        csrf: &session.csrf_token,
        can_act: can_act(session),
        page,
    };
    if let Some(fields) = ctx.as_object_mut() {
        fields.insert(
            "frame".into(),
            serde_json::to_value(frame).expect("the frame serialises"),
        );
    }
    render(StatusCode::OK, template, ctx)
}

/// Console actions need the `admin` scope (R47).
fn can_act(session: &Session) -> bool {
    session.scope.allows(Scope::Admin)
}

/// A refusal or failure, as a page.
fn error_page(status: StatusCode, message: &str) -> Response {
    render(
        status,
        "error.html",
        serde_json::json!({ "status": status.as_u16(), "message": message }),
    )
}

fn service_error(e: ServiceError) -> Response {
    match e {
        ServiceError::Domain(DomainError::NotFound(what)) => {
            error_page(StatusCode::NOT_FOUND, &format!("Not found: {what}"))
        }
        ServiceError::Domain(other) => error_page(StatusCode::CONFLICT, &other.to_string()),
        other => {
            tracing::error!(error = %other, "console: a page failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer; try again.",
            )
        }
    }
}

/// The value of the cookie `name`, if the request carries it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request came over https: the daemon serves plain HTTP, so
/// only a proxy in front of it can say (`X-Forwarded-Proto`).
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for the console: `HttpOnly`, `SameSite=Strict`,
/// `Path=/console`, `Secure` over https; `max_age` 0 clears it.
fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if is_https(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are base64url")
}

/// The session of this request, or where to go instead: the sign-in page
/// without one. The key that signed in must still be configured; its scope
/// is the narrower of the session's and the key's now.
async fn session(state: &HttpState, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Err(to_login());
    };
    session_of(state, id).await
}

/// A page's session and its reads. For a session found live here lately
/// the check and the reads run at once, so the page costs the slower of the
/// two instead of their sum; for any other cookie the check comes first, so
/// a stranger's cookie never costs a page's reads. Either way nothing read
/// is shown before the session is found live in the database.
async fn session_and<T>(
    state: &HttpState,
    headers: &HeaderMap,
    reads: impl Future<Output = Result<T, ServiceError>>,
) -> Result<(Session, T), Response> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Err(to_login());
    };
    let (session, read) = if state.services.console_session_seen(id) {
        tokio::join!(session_of(state, id), reads)
    } else {
        let session = session_of(state, id).await?;
        (Ok(session), reads.await)
    };
    Ok((session?, read.map_err(service_error)?))
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

async fn session_of(state: &HttpState, id: &str) -> Result<Session, Response> {
    let found = state
        .services
        .console_session(id)
        .await
        .map_err(service_error)?;
    let Some(mut session) = found else {
        return Err(to_login());
    };
    let Some(key) = state.api_keys.iter().find(|k| k.name == session.key_name) else {
        return Err(to_login());
    };
    session.scope = session.scope.min(key.scope);
    Ok(session)
}

/// For a POST: the session, its form token checked, and (for an action)
/// the `admin` scope. Refusals are `403` pages.
async fn acting_session(
    state: &HttpState,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<Session, Response> {
    let session = session(state, headers).await?;
    if !csrf_ok(&session, csrf) {
        return Err(csrf_refused());
    }
    if !can_act(&session) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            &format!(
                "The key {} has the {} scope; console actions need the admin scope.",
                session.key_name, session.scope
            ),
        ));
    }
    Ok(session)
}

/// Whether a form carried its session's token.
fn csrf_ok(session: &Session, csrf: Option<&str>) -> bool {
    csrf.is_some_and(|given| constant_time_eq(given.as_bytes(), session.csrf_token.as_bytes()))
}

fn csrf_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form has no valid token (CSRF); reload the page and try again.",
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            templates().get_template(name).unwrap();
        }
    }

    #[test]
    fn cookies_are_read_by_name_and_marked_secure_over_https() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; invited_console=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let plain = set_cookie(&h, SESSION_COOKIE, "x", 10);
        assert!(!plain.to_str().unwrap().contains("Secure"));
        assert!(
            plain
                .to_str()
                .unwrap()
                .contains("HttpOnly; SameSite=Strict")
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie(&h, SESSION_COOKIE, "x", 10)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
