//! Strict input extractors: JSON bodies, query strings and path parameters,
//! each refused as a problem document that names the offending field (R18)
//! instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

mod objects;

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
        let declared = media_type(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_rejection(e, state.max_body))?;
        // No Content-Type on an empty body is not a claim about a media type:
        // it is read (and refused as not JSON) like any empty body.
        if declared.is_none() && !bytes.is_empty() {
            return Err(ApiError::unsupported_media_type(
                "the body has no Content-Type; send application/json",
            ));
        }
        parse_strict(&bytes).map(StrictJson)
    }
}

/// The body's declared media type, if any, when it is JSON: `application/json`
/// or `application/<name>+json` (RFC 6839), any parameters, and a `charset`
/// only if it is UTF-8, the one encoding of JSON (RFC 8259). Anything else is
/// `415`: a form or plain text is not read as JSON by accident.
fn media_type(headers: &HeaderMap) -> Result<Option<()>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let refuse = || {
        ApiError::unsupported_media_type(format!(
            "Content-Type {:?} is not JSON; send application/json",
            String::from_utf8_lossy(value.as_bytes())
        ))
    };
    let text = value.to_str().map_err(|_| refuse())?.to_ascii_lowercase();
    let mut parts = text.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .and_then(|subtype| subtype.strip_suffix("+json"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'));
    let utf8 = parts.all(|param| match param.split_once('=') {
        Some((name, charset)) if name.trim() == "charset" => {
            matches!(charset.trim().trim_matches('"'), "utf-8" | "utf8")
        }
        _ => true,
    });
    if json && utf8 {
        Ok(Some(()))
    } else {
        Err(refuse())
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
    // Read a second time, objects only: the first reading keeps serde_json's
    // own checks (duplicate fields, which a `Value` would drop), this one
    // refuses a struct written as an array. It fails on nothing else.
    let document: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed_json(format!("the body is not valid JSON: {e}")))?;
    serde_path_to_error::deserialize::<_, T>(objects::ObjectsOnly(document)).map_err(|e| {
        let path = e.path().to_string();
        data_error(&path, &e.into_inner().to_string())
    })?;
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

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // Decoded as pairs first, then read into `T` the way JSON bodies are,
        // so that both name fields alike.
        let pairs = query_pairs(parts.uri.query().unwrap_or_default())?;
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

/// The `name=value` pairs of a query string, form-decoded (`+` is a space,
/// `%XX` a byte). Unlike `form_urlencoded`, which puts U+FFFD in place of
/// bytes that are not UTF-8 (and a user `\u{FFFD}` would then be looked up),
/// a name or value that does not decode to UTF-8 is `422` naming it.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = String::from_utf8(form_decode(raw_name)).map_err(|_| {
            ApiError::validation(
                String::from_utf8_lossy(raw_name.as_bytes()),
                "the parameter's name is not UTF-8 once decoded",
            )
        })?;
        let value = String::from_utf8(form_decode(raw_value))
            .map_err(|_| ApiError::validation(name.clone(), "is not UTF-8 once decoded"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// `application/x-www-form-urlencoded` decoding to bytes; a `%` not followed
/// by two hex digits stays as it is, as browsers and `form_urlencoded` do.
fn form_decode(raw: &str) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digit = |at: usize| bytes.get(at).copied().and_then(hex);
                match (digit(i + 1), digit(i + 2)) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
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

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
        }
        headers
    }

    /// Issue 12, item 14: a body is JSON only when it says so.
    #[test]
    fn only_json_media_types_are_read() {
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/merge-patch+json",
        ] {
            assert_eq!(media_type(&headers(Some(json))), Ok(Some(())), "{json}");
        }
        assert_eq!(media_type(&headers(None)), Ok(None));
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "application/+json",
            "text/json",
            "",
        ] {
            let e = media_type(&headers(Some(other))).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (415, "unsupported_media_type"),
                "{other}"
            );
        }
    }

    /// Issue 12, item 15: bytes that are not UTF-8 are refused, not replaced.
    #[test]
    fn a_query_that_is_not_utf8_is_422_naming_the_parameter() {
        let e = query_pairs("limit=5&actor_user_id=%FF").unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str(), field_of(&e)),
            (422, "validation_failed", "actor_user_id")
        );
        assert!(query_pairs("%C3%28=1").is_err());
        // U+FFFD itself, and everything else form encoding allows, decodes.
        assert_eq!(
            query_pairs("a=%EF%BF%BD&b=x+y%2Bz&c&d=100%&e=%e2%82%ac&&").unwrap(),
            [
                ("a", "\u{FFFD}"),
                ("b", "x y+z"),
                ("c", ""),
                ("d", "100%"),
                ("e", "\u{20AC}"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
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

    /// serde fills a derived struct from an array by position; the wire has
    /// objects only (issue 12, item 13).
    #[test]
    fn a_struct_written_as_an_array_is_422_at_any_depth() {
        let e = parse_strict::<Body>(br#"["u1",[{"email":"a@b.example"}],null]"#).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str(), field_of(&e)),
            (422, "validation_failed", "body")
        );
        assert!(e.detail.contains("expected an object"), "{}", e.detail);

        let e = parse_strict::<Body>(br#"{"actor_user_id":"u1","invitees":[["a@b.example"]]}"#)
            .unwrap_err();
        assert_eq!((e.status.as_u16(), field_of(&e)), (422, "invitees[0]"));

        // Arrays where the wire wants arrays still parse, and duplicate
        // fields are still refused by the first reading.
        let body: Body = parse_strict(
            br#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"},{"email":"c@d.example","role":null}]}"#,
        )
        .unwrap();
        assert_eq!(body.invitees.len(), 2);
        let e =
            parse_strict::<Body>(br#"{"actor_user_id":"u1","actor_user_id":"u2","invitees":[]}"#)
                .unwrap_err();
        assert_eq!(field_of(&e), "actor_user_id");
    }
}
