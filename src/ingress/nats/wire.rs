//! The wire of inbound commands (docs/events.md, "Commands in"): which HTTP
//! request a command on `<prefix>.commands.<name>` stands for, which
//! `Nats-Msg-Id` is usable, and what is published on the results subject.
//! Pure functions: the consumer in [`super`] does the I/O.

use axum::http::Method;
use serde_json::{Map, Value};

use crate::http::error::ApiError;
use crate::http::idempotency::parse_key;
use crate::http::json::parse_strict;

/// The HTTP request a command stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: Method,
    pub path: String,
    /// The body without the fields that went into the path.
    pub body: Vec<u8>,
}

/// Maps a command and its body to the HTTP request (the table of docs/events.md). The
/// path ids are fields of the body: `business_id`, `invitation_id`,
/// `user_id` (of `put_user`). Refusals are the problems HTTP would give.
pub fn target(name: &str, payload: &[u8], max_body: usize) -> Result<Target, ApiError> {
    if payload.len() > max_body {
        return Err(ApiError::payload_too_large(max_body));
    }
    // The same parser as HTTP bodies: malformed JSON is 400, another type 422.
    let mut body: Map<String, Value> = parse_strict(payload)?;
    let (method, path) = match name {
        "create_business" => (Method::POST, "/v1/businesses".to_string()),
        "create_invitations" => (
            Method::POST,
            format!(
                "/v1/businesses/{}/invitations",
                take(&mut body, "business_id")?
            ),
        ),
        "create_partner" => (
            Method::POST,
            format!(
                "/v1/businesses/{}/partners",
                take(&mut body, "business_id")?
            ),
        ),
        "resend" | "cancel" | "renew" => (
            Method::POST,
            format!(
                "/v1/invitations/{}/{name}",
                take(&mut body, "invitation_id")?
            ),
        ),
        // R46: a corrected address for an invitation whose email failed.
        "correct_address" => (
            Method::PATCH,
            format!("/v1/invitations/{}", take(&mut body, "invitation_id")?),
        ),
        // With `invitation_id`: an answer by id (a partner invitation by
        // its business, a member invitation by its invitee in the app,
        // R37); without: a member invitation answered with its token.
        "accept" | "decline" => match take_optional(&mut body, "invitation_id")? {
            Some(id) => (Method::POST, format!("/v1/invitations/{id}/{name}")),
            None => (Method::POST, format!("/v1/invitations/{name}")),
        },
        // R35: what a token opens; a read, but commands are how NATS asks.
        "preview" => (Method::POST, "/v1/invitations/preview".to_string()),
        // R50: invite links. A revoke is a DELETE whose actor goes in the
        // query, as HTTP takes it; nothing else may come with it.
        "create_invite_link" => (
            Method::POST,
            format!(
                "/v1/businesses/{}/invite-links",
                take(&mut body, "business_id")?
            ),
        ),
        "revoke_invite_link" => {
            let business = take(&mut body, "business_id")?;
            let link = take(&mut body, "invite_link_id")?;
            let actor = take(&mut body, "actor_user_id")?;
            if let Some(field) = body.keys().next() {
                return Err(ApiError::validation(field.clone(), "unknown field"));
            }
            (
                Method::DELETE,
                format!("/v1/businesses/{business}/invite-links/{link}?actor_user_id={actor}"),
            )
        }
        "preview_invite_link" => (Method::POST, "/v1/invite-links/preview".to_string()),
        "redeem_invite_link" => (Method::POST, "/v1/invite-links/redeem".to_string()),
        // R51: the body's `business_id` is the public Business ID and stays
        // in the body; the answers name the request by `join_request_id`.
        "create_join_request" => (Method::POST, "/v1/join-requests".to_string()),
        "approve_join_request" | "deny_join_request" => (
            Method::POST,
            format!(
                "/v1/join-requests/{}/{}",
                take(&mut body, "join_request_id")?,
                name.trim_end_matches("_join_request")
            ),
        ),
        "put_user" => (
            Method::PUT,
            format!("/v1/users/{}", take(&mut body, "user_id")?),
        ),
        // R52: verified domains.
        "claim_domain" => (
            Method::POST,
            format!("/v1/businesses/{}/domains", take(&mut body, "business_id")?),
        ),
        "verify_domain" => {
            let business = take(&mut body, "business_id")?;
            let domain = take(&mut body, "domain")?;
            (
                Method::POST,
                format!("/v1/businesses/{business}/domains/{domain}/verify"),
            )
        }
        // The DELETE route reads its actor from the query.
        "remove_domain" => {
            let business = take(&mut body, "business_id")?;
            let domain = take(&mut body, "domain")?;
            let actor = take(&mut body, "actor_user_id")?;
            if let Some(field) = body.keys().next() {
                return Err(ApiError::validation(
                    field,
                    "is not a field of this command",
                ));
            }
            (
                Method::DELETE,
                format!("/v1/businesses/{business}/domains/{domain}?actor_user_id={actor}"),
            )
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "no such command {name:?} (create_business, create_invitations, create_partner, \
                 resend, cancel, renew, correct_address, accept, decline, preview, \
                 create_invite_link, revoke_invite_link, preview_invite_link, redeem_invite_link, \
                 create_join_request, approve_join_request, deny_join_request, put_user, \
                 claim_domain, verify_domain, remove_domain)"
            )));
        }
    };
    Ok(Target {
        method,
        path,
        body: serde_json::to_vec(&Value::Object(body)).expect("a JSON map serialises"),
    })
}

/// A required path field, percent-encoded for the path.
fn take(body: &mut Map<String, Value>, field: &str) -> Result<String, ApiError> {
    take_optional(body, field)?.ok_or_else(|| ApiError::validation(field, "is required"))
}

fn take_optional(body: &mut Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.remove(field) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(encode_segment(&s))),
        Some(_) => Err(ApiError::validation(field, "must be a non-empty string")),
    }
}

/// Percent-encodes all but letters, digits, `-`, `_` and `~`: an id can
/// never add a path segment or a query.
fn encode_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A usable `Nats-Msg-Id`: an idempotency key (1 to 255 visible ASCII
/// characters) that also makes a valid results subject.
pub fn message_id(raw: Option<&str>) -> Result<String, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::validation("Nats-Msg-Id", "is required: it is the idempotency key")
    })?;
    let value = axum::http::HeaderValue::from_str(raw)
        .map_err(|_| ApiError::validation("Nats-Msg-Id", "must be visible ASCII"))?;
    let key = parse_key(&value).map_err(|_| {
        ApiError::validation("Nats-Msg-Id", "must be 1 to 255 visible ASCII characters")
    })?;
    if key.contains(['*', '>']) || key.split('.').any(str::is_empty) {
        return Err(ApiError::validation(
            "Nats-Msg-Id",
            "must make a valid subject: no '*', '>' or empty dot-separated part",
        ));
    }
    Ok(key)
}

/// The payload published on the results subject: a success is
/// `{"status": <HTTP status>, "result": <the HTTP body or null>}`, a refusal
/// the problem document itself (which carries `status` too).
pub fn result_payload(status: u16, body: &[u8]) -> (Vec<u8>, &'static str) {
    if status >= 400 {
        (body.to_vec(), "application/problem+json")
    } else {
        let result: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let envelope = serde_json::json!({"status": status, "result": result});
        (
            serde_json::to_vec(&envelope).expect("JSON serialises"),
            "application/json",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_link_commands_map_to_their_http_requests() {
        let t = target(
            "create_invite_link",
            br#"{"business_id":"b1","actor_user_id":"olive","max_uses":3}"#,
            65536,
        )
        .unwrap();
        assert_eq!(
            (t.method, t.path.as_str()),
            (Method::POST, "/v1/businesses/b1/invite-links")
        );
        let body: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"actor_user_id": "olive", "max_uses": 3})
        );
        let t = target(
            "revoke_invite_link",
            br#"{"business_id":"b1","invite_link_id":"l1","actor_user_id":"a b&c"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(
            (t.method, t.path.as_str()),
            (
                Method::DELETE,
                "/v1/businesses/b1/invite-links/l1?actor_user_id=a%20b%26c"
            )
        );
        let e = target(
            "revoke_invite_link",
            br#"{"business_id":"b1","invite_link_id":"l1","actor_user_id":"a","x":1}"#,
            65536,
        )
        .unwrap_err();
        assert_eq!(e.code.as_str(), "validation_failed");
        let t = target(
            "redeem_invite_link",
            br#"{"code":"c","user_id":"u","email_verified":true}"#,
            65536,
        )
        .unwrap();
        assert_eq!(
            (t.method, t.path.as_str()),
            (Method::POST, "/v1/invite-links/redeem")
        );
        let t = target("preview_invite_link", br#"{"code":"c"}"#, 65536).unwrap();
        assert_eq!(t.path, "/v1/invite-links/preview");
    }

    #[test]
    fn commands_map_to_their_http_requests() {
        let t = target(
            "create_invitations",
            br#"{"business_id":"0190aa00-0000-7000-8000-000000000001","actor_user_id":"olive","invitees":[]}"#,
            65536,
        )
        .unwrap();
        assert_eq!(t.method, Method::POST);
        assert_eq!(
            t.path,
            "/v1/businesses/0190aa00-0000-7000-8000-000000000001/invitations"
        );
        let body: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"actor_user_id": "olive", "invitees": []})
        );

        let t = target("put_user", br#"{"user_id":"a/b c","email":"x@y.z"}"#, 65536).unwrap();
        assert_eq!(
            (t.method, t.path.as_str()),
            (Method::PUT, "/v1/users/a%2Fb%20c")
        );
        let t = target(
            "create_join_request",
            br#"{"user_id":"u","business_id":"23456789abcdefghjkmnpqrs","message":"hi"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(
            (t.method, t.path.as_str()),
            (Method::POST, "/v1/join-requests")
        );
        let body: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(body["business_id"], "23456789abcdefghjkmnpqrs");
        for (name, verb) in [
            ("approve_join_request", "approve"),
            ("deny_join_request", "deny"),
        ] {
            let t = target(
                name,
                br#"{"join_request_id":"r","actor_user_id":"u"}"#,
                65536,
            )
            .unwrap();
            assert_eq!(
                (t.method, t.path),
                (Method::POST, format!("/v1/join-requests/r/{verb}"))
            );
            let body: Value = serde_json::from_slice(&t.body).unwrap();
            assert_eq!(body, serde_json::json!({"actor_user_id": "u"}));
        }
        let t = target("accept", br#"{"token":"t","user_id":"u"}"#, 65536).unwrap();
        assert_eq!(t.path, "/v1/invitations/accept");
        let t = target(
            "decline",
            br#"{"invitation_id":"x","actor_user_id":"u"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(t.path, "/v1/invitations/x/decline");
        let t = target(
            "cancel",
            br#"{"invitation_id":"x","actor_user_id":"u"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(t.path, "/v1/invitations/x/cancel");
        let t = target(
            "correct_address",
            br#"{"invitation_id":"x","actor_user_id":"u","email":"a@b.example"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(
            (t.method, t.path.as_str(), t.body.as_slice()),
            (
                Method::PATCH,
                "/v1/invitations/x",
                br#"{"actor_user_id":"u","email":"a@b.example"}"#.as_slice()
            )
        );
        let t = target("preview", br#"{"token":"t"}"#, 65536).unwrap();
        assert_eq!(
            (t.method, t.path.as_str(), t.body.as_slice()),
            (
                Method::POST,
                "/v1/invitations/preview",
                br#"{"token":"t"}"#.as_slice()
            )
        );
    }

    /// R52: the domain commands.
    #[test]
    fn domain_commands_map_to_their_http_requests() {
        let t = target(
            "claim_domain",
            br#"{"business_id":"b","actor_user_id":"u","domain":"acme.example","mode":"suggest"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(
            (t.method, t.path.as_str(), t.body.as_slice()),
            (
                Method::POST,
                "/v1/businesses/b/domains",
                br#"{"actor_user_id":"u","domain":"acme.example","mode":"suggest"}"#.as_slice()
            )
        );
        let t = target(
            "verify_domain",
            br#"{"business_id":"b","domain":"acme.example","actor_user_id":"u"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(
            (t.method, t.path.as_str(), t.body.as_slice()),
            (
                Method::POST,
                "/v1/businesses/b/domains/acme%2Eexample/verify",
                br#"{"actor_user_id":"u"}"#.as_slice()
            )
        );
        let t = target(
            "remove_domain",
            br#"{"business_id":"b","domain":"acme.example","actor_user_id":"u&x"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(
            (t.method, t.path.as_str()),
            (
                Method::DELETE,
                "/v1/businesses/b/domains/acme%2Eexample?actor_user_id=u%26x"
            )
        );
        let e = target(
            "remove_domain",
            br#"{"business_id":"b","domain":"d.example","actor_user_id":"u","x":1}"#,
            65536,
        )
        .unwrap_err();
        assert_eq!(e.errors[0].field, "x");
    }

    #[test]
    fn malformed_commands_are_the_problems_http_gives() {
        let e = target("cancel", b"{not json", 65536).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (400, "validation_failed")
        );
        let e = target("cancel", b"[1]", 65536).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        let e = target("cancel", br#"{"actor_user_id":"u"}"#, 65536).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.errors[0].field.as_str()),
            (422, "invitation_id")
        );
        let e = target("cancel", br#"{"invitation_id":7}"#, 65536).unwrap_err();
        assert_eq!(e.errors[0].field, "invitation_id");
        let e = target("launch", b"{}", 65536).unwrap_err();
        assert_eq!(e.status.as_u16(), 404);
        let e = target("cancel", &[b' '; 100], 10).unwrap_err();
        assert_eq!(e.status.as_u16(), 413);
    }

    #[test]
    fn message_ids_must_be_keys_and_subject_tokens() {
        assert_eq!(message_id(Some("cmd-1")).unwrap(), "cmd-1");
        assert_eq!(message_id(Some("a.b")).unwrap(), "a.b");
        for bad in [
            None,
            Some(""),
            Some("a b"),
            Some("a.*"),
            Some("a..b"),
            Some(">"),
        ] {
            assert!(message_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn results_wrap_successes_and_pass_problems_through() {
        let (body, ct) = result_payload(201, br#"{"id":"x"}"#);
        assert_eq!(ct, "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            serde_json::json!({"status": 201, "result": {"id": "x"}})
        );
        let (body, ct) = result_payload(202, b"");
        assert_eq!(ct, "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            serde_json::json!({"status": 202, "result": null})
        );
        let problem = br#"{"status":404,"code":"not_found"}"#;
        assert_eq!(
            result_payload(404, problem),
            (problem.to_vec(), "application/problem+json")
        );
    }
}
