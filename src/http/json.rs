//! Strict input extractors: JSON bodies, query strings and path parameters,
//! each refused as a problem document that names the offending field (R18)
//! instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::HttpState;
use super::error::{ApiError, ProblemCode};
use crate::domain::{BusinessId, InvitationId, UserId};

/// A JSON body deserialised strictly: wire structs use
/// `#[serde(deny_unknown_fields)]`, so an unknown field, a missing one or a
/// wrong type is `422` naming it (as a path such as `invitees[0].email`);
/// bytes that are not JSON at all are `400`; a body over `api.max_body` is
/// `413` (the limit itself is `DefaultBodyLimit`, set by the router).
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<HttpState> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &HttpState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_rejection(e, state.max_body))?;
        parse_strict(&bytes).map(StrictJson)
    }
}

/// Maps a failure to read the body: over the limit is `413`, anything else
/// (a client that hung up, a broken chunked encoding) is a malformed request.
pub fn body_rejection(e: BytesRejection, max_body: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(max_body)
    } else {
        ApiError::malformed_json("the request body could not be read")
    }
}

/// Deserialises `bytes` as one JSON document into `T`.
pub fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error(&path, &inner.to_string()),
            _ => ApiError::malformed_json(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    // Trailing bytes after the document make it malformed too.
    de.end()
        .map_err(|e| ApiError::malformed_json(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A `422` for a value that is JSON but not what the wire struct wants.
/// serde names unknown and missing fields only in its message, relative to the
/// object being read, so the field is appended to the path here.
fn data_error(path: &str, message: &str) -> ApiError {
    // serde_json appends " at line 1 column 9"; that says nothing to a caller
    // who has the field name.
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let named = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match (path, named) {
        // serde_path_to_error shows the root as ".".
        (".", Some(name)) => name.to_string(),
        (".", None) => "body".to_string(),
        (p, Some(name)) if !p.ends_with(name) => format!("{p}.{name}"),
        (p, _) => p.to_string(),
    };
    ApiError::validation(field, message)
}

/// A query string deserialised strictly, like [`StrictJson`]: an unknown
/// parameter is `422` naming it. Query structs hold `Option<String>`s and the
/// handlers parse them, so a missing value is named by the handler.
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Decoded as pairs first (which only fails on broken encoding), then
        // read into `T` the way JSON bodies are, so that both name fields alike.
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation("query", e.body_text()))?;
        let mut object = serde_json::Map::new();
        for (name, value) in pairs {
            if object.contains_key(&name) {
                return Err(ApiError::validation(name, "is given more than once"));
            }
            object.insert(name, serde_json::Value::String(value));
        }
        serde_path_to_error::deserialize(serde_json::Value::Object(object))
            .map(StrictQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                data_error(&path, &e.into_inner().to_string())
            })
    }
}

/// Path parameters as strings; the handlers parse them into ids. A path that
/// cannot even be decoded (bad percent-encoding, not UTF-8) names nothing that
/// can exist, so it is `404`.
#[derive(Debug)]
pub struct RawPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for RawPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(RawPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::not_found("no such resource"))
            }
            Err(e) => {
                // Missing path params means a route was wired wrongly: ours to fix.
                tracing::error!(error = %e.body_text(), "path parameters missing");
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ProblemCode::Unavailable,
                    "Internal error",
                    "the request could not be routed",
                ))
            }
        }
    }
}

/// `?actor_user_id=` of reads and deletes: required, and a valid user id.
pub fn actor_from_query(raw: Option<&str>) -> Result<UserId, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::validation("actor_user_id", "is required"))?;
    Ok(UserId::parse_field(raw, "actor_user_id")?)
}

/// A business `{id}` from the path. An id that is not even a UUID names
/// nothing that can exist, so it is `404`, as an unknown one would be.
pub fn business_path(raw: &str) -> Result<BusinessId, ApiError> {
    BusinessId::parse_field(raw, "id").map_err(|_| ApiError::not_found("no such business"))
}

/// An invitation `{id}` from the path; `404` like [`business_path`].
pub fn invitation_path(raw: &str) -> Result<InvitationId, ApiError> {
    InvitationId::parse_field(raw, "id").map_err(|_| ApiError::not_found("no such invitation"))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialised
    struct Body {
        actor_user_id: String,
        invitees: Vec<Invitee>,
        message: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialised
    struct Invitee {
        email: String,
        role: Option<String>,
    }

    fn field_of(e: &ApiError) -> &str {
        &e.errors[0].field
    }

    #[test]
    fn a_well_formed_body_parses() {
        let body: Body =
            parse_strict(br#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"}]}"#)
                .unwrap();
        assert_eq!(body.invitees.len(), 1);
    }

    #[test]
    fn an_unknown_field_is_422_naming_it() {
        let e =
            parse_strict::<Body>(br#"{"actor_user_id":"u1","invitees":[],"bogus":1}"#).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (422, "validation_failed")
        );
        assert_eq!(field_of(&e), "bogus");
        assert!(e.detail.contains("bogus"), "{}", e.detail);

        let e = parse_strict::<Body>(
            br#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example","x":1}]}"#,
        )
        .unwrap_err();
        assert_eq!(field_of(&e), "invitees[0].x");
    }

    #[test]
    fn a_wrong_type_is_422_naming_its_path() {
        let e = parse_strict::<Body>(br#"{"actor_user_id":"u1","invitees":[{"email":5}]}"#)
            .unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (422, "validation_failed")
        );
        assert_eq!(field_of(&e), "invitees[0].email");
        assert!(e.detail.starts_with("invitees[0].email: "), "{}", e.detail);
        assert!(!e.detail.contains("line"), "{}", e.detail);
    }

    #[test]
    fn a_missing_field_is_422_naming_it() {
        let e = parse_strict::<Body>(br#"{"actor_user_id":"u1","invitees":[{}]}"#).unwrap_err();
        assert_eq!(field_of(&e), "invitees[0].email");
        let e = parse_strict::<Body>(br#"{"invitees":[]}"#).unwrap_err();
        assert_eq!(field_of(&e), "actor_user_id");
    }

    #[test]
    fn malformed_json_is_400() {
        let trailing = br#"{"actor_user_id":"u1","invitees":[]} {}"#;
        for raw in [
            &b"{"[..],
            b"",
            b"not json",
            b"{\"actor_user_id\":}",
            trailing,
        ] {
            let e = parse_strict::<Body>(raw).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (400, "validation_failed"),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_422_naming_the_body() {
        let e = parse_strict::<Body>(br#""a string""#).unwrap_err();
        assert_eq!((e.status.as_u16(), field_of(&e)), (422, "body"));
    }
}
