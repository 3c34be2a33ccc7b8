//! Signing in and out. The sign-in form has no session yet, so its token
//! is a double-submit one: a random value in a short-lived cookie of its
//! own, repeated in the form.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{
    HttpState, LOGIN_COOKIE, SESSION_COOKIE, constant_time_eq, cookie, csrf_ok, csrf_refused,
    render, service_error, session, set_cookie,
};
use crate::http::auth::authenticate_key;
use crate::service::console::SESSION_TTL;

/// How long the sign-in form's token lasts.
const LOGIN_FORM_TTL: u64 = 3600;

fn login_token() -> String {
    use base64::Engine as _;
    use rand::RngExt as _;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn login_page(headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let token = login_token();
    let mut response = render(
        status,
        "login.html",
        serde_json::json!({ "csrf": token, "error": error }),
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(headers, LOGIN_COOKIE, &token, LOGIN_FORM_TTL),
    );
    response
}

/// `GET /console/login`: the sign-in form.
pub async fn form(headers: HeaderMap) -> Response {
    login_page(&headers, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    key: String,
    csrf: Option<String>,
}

/// `POST /console/login`: checks the key as the API does, starts a session
/// and goes to the search page (303).
pub async fn sign_in(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Form(input): Form<SignIn>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE);
    let token_ok = matches!(
        (expected, input.csrf.as_deref()),
        (Some(a), Some(b)) if constant_time_eq(a.as_bytes(), b.as_bytes())
    );
    if !token_ok {
        return login_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some("The form had expired; sign in again."),
        );
    }
    let Some(caller) = authenticate_key(&input.key, &state.api_keys) else {
        tracing::warn!("console: sign-in with an unknown key");
        return login_page(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("This key is not one of the daemon's API keys."),
        );
    };
    let new = match state
        .services
        .console_sign_in(&caller.key_name, caller.scope)
        .await
    {
        Ok(new) => new,
        Err(e) => return service_error(e),
    };
    let mut response = Redirect::to("/console/search").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &new.id, SESSION_TTL.as_secs()),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, "", 0),
    );
    response
}

#[derive(Deserialize)]
pub struct SignOut {
    csrf: Option<String>,
}

/// `POST /console/logout`: forgets the session and clears its cookie (303
/// to the sign-in page).
pub async fn sign_out(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Form(input): Form<SignOut>,
) -> Response {
    let current = match session(&state, &headers).await {
        Ok(current) => current,
        Err(to_login) => return to_login,
    };
    if !csrf_ok(&current, input.csrf.as_deref()) {
        return csrf_refused();
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.services.console_sign_out(id).await
    {
        return service_error(e);
    }
    tracing::info!(key = %current.key_name, "console: signed out");
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", 0),
    );
    response
}
