//! The document against the code: every route of the router (read from its
//! source, so a new route without an entry fails here), every problem code of
//! docs/api.md, the OpenAPI version, and the endpoint served through the router.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt as _;

use super::*;
use crate::actors::InvitationsHandle;
use crate::config::ApiKey;
use crate::http::{HttpState, router};
use crate::service::{Services, Settings};
use crate::store::postgres::PgStore;

/// The router's source: the routes are read from it, not listed again here.
const ROUTER_SOURCE: &str = include_str!("../mod.rs");

/// The problem codes of docs/api.md ("Conventions"), as it lists them.
const API_MD_CODES: [&str; 22] = [
    "unauthorized",
    "forbidden",
    "not_found",
    "validation_failed",
    "conflict",
    "invalid_transition",
    "rate_limited",
    "seats_exhausted",
    "token_invalid",
    "token_used",
    "token_expired",
    "mfa_required",
    "email_unverified",
    "address_suppressed",
    "link_invalid",
    "link_revoked",
    "link_expired",
    "link_exhausted",
    "domain_not_allowed",
    "payload_too_large",
    "unsupported_media_type",
    "unavailable",
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn document() -> Value {
    serde_json::from_str(&DOCUMENT).expect("the document is JSON")
}

/// The text inside the parentheses that open at `open` (an index of `(`).
fn parenthesised(source: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in source[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &source[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in the router's source");
}

/// The HTTP methods a method router expression names: `get(…)`,
/// `axum::routing::patch(…).delete(…)`, …
fn methods_in(expr: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for (i, _) in expr.match_indices('(') {
        let before = &expr[..i];
        let word_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |j| j + 1);
        if let Some(m) = METHODS.iter().find(|m| **m == &before[word_start..]) {
            found.push(*m);
        }
    }
    found
}

/// `(method, path)` of every `.route("<path>", <methods>)` in `source`,
/// with `prefix` put before the path.
fn routes_in(source: &str, prefix: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (i, _) in source.match_indices(".route(") {
        let args = parenthesised(source, i + ".route".len());
        let mut quoted = args.split('"');
        let (Some(_), Some(path)) = (quoted.next(), quoted.next()) else {
            panic!("a route without a literal path: {args}");
        };
        let (_, expr) = args.split_once(',').expect("a route has a method router");
        let methods = methods_in(expr);
        assert!(
            !methods.is_empty(),
            "no method found in route {path}: {expr}"
        );
        for m in methods {
            routes.insert((m.to_string(), format!("{prefix}{path}")));
        }
    }
    routes
}

/// Every route the router serves, as `(lowercase method, path)`: the routes
/// of the `v1` router under `/v1`, and those of the outer router as they are.
fn router_routes() -> BTreeSet<(String, String)> {
    let body = &ROUTER_SOURCE[ROUTER_SOURCE
        .find("pub fn router(")
        .expect("src/http/mod.rs has fn router")..];
    const V1: &str = "let v1 = Router::new()";
    let v1_start = body.find(V1).expect("the router builds a v1 router") + V1.len();
    let outer_start = v1_start
        + body[v1_start..]
            .find("Router::new()")
            .expect("and an outer router");
    let outer = &body[outer_start..];
    assert!(
        outer.contains(".nest(\"/v1\", v1)"),
        "the outer router nests v1 under /v1"
    );
    let end = outer.find("\n}").expect("the end of fn router");
    let mut routes = routes_in(&body[v1_start..outer_start], "/v1");
    routes.extend(routes_in(&outer[..end], ""));
    routes
}

/// The `/v1` routes registered through `auth::admin(…)`: they need the
/// `admin` scope whatever their method (R47).
fn admin_routes() -> BTreeSet<(String, String)> {
    // The methods inside `auth::admin(…)`, wherever it stands in the
    // route's method router (all of it, or one `.merge(auth::admin(…))`).
    let mut routes = BTreeSet::new();
    for (i, _) in ROUTER_SOURCE.match_indices(".route(") {
        let args = parenthesised(ROUTER_SOURCE, i + ".route".len());
        let mut quoted = args.split('"');
        let (Some(_), Some(path)) = (quoted.next(), quoted.next()) else {
            continue;
        };
        let (_, expr) = args.split_once(',').expect("a route has a method router");
        for (j, _) in expr.match_indices("auth::admin(") {
            let inner = parenthesised(expr, j + "auth::admin".len());
            for m in methods_in(inner) {
                routes.insert((m.to_string(), format!("/v1{path}")));
            }
        }
    }
    routes
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                routes.insert((m.to_string(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_route_of_the_router_is_documented_with_its_method() {
    let served = router_routes();
    // The parser found the router, not a fragment of it.
    assert!(served.len() >= 30, "only {} routes found", served.len());
    for expected in [
        ("get", "/v1/openapi.json"),
        ("patch", "/v1/businesses/{id}/members/{user_id}"),
        ("delete", "/v1/businesses/{id}/members/{user_id}"),
        ("post", "/v1/businesses/{id}/invitations"),
        ("get", "/v1/businesses/{id}/invitations"),
        ("get", "/healthz"),
    ] {
        let expected = (expected.0.to_string(), expected.1.to_string());
        assert!(served.contains(&expected), "{expected:?} not parsed");
    }
    let documented = documented_routes(&document());
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an OpenAPI entry (add #[utoipa::path] and list the handler in ApiDoc): {undocumented:?}"
    );
    assert!(
        stale.is_empty(),
        "OpenAPI entries the router does not serve: {stale:?}"
    );
}

#[test]
fn the_method_parser_reads_chains_and_full_paths() {
    assert_eq!(
        methods_in(" axum::routing::patch(members::set_role).delete(members::remove)"),
        ["patch", "delete"]
    );
    assert_eq!(
        methods_in(" post(x::get_thing).get(y::post)"),
        ["post", "get"]
    );
    assert_eq!(methods_in(" get(forget)"), ["get"]);
}

/// The schema a `$ref` points to, or the value itself.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("a local $ref");
            resolve(doc, doc.pointer(pointer).expect("the $ref resolves"))
        }
        None => value,
    }
}

#[test]
fn the_problem_schema_enumerates_every_code_of_api_md() {
    let doc = document();
    let problem = &doc["components"]["schemas"]["Problem"];
    let code = resolve(&doc, &problem["properties"]["code"]);
    let codes: BTreeSet<&str> = code["enum"]
        .as_array()
        .expect("code is an enumeration")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in API_MD_CODES {
        assert!(codes.contains(c), "{c} missing from the Problem schema");
    }
    assert_eq!(
        codes,
        BTreeSet::from(API_MD_CODES),
        "codes not in docs/api.md"
    );
    assert_eq!(
        BTreeSet::from(crate::http::error::PROBLEM_CODES),
        BTreeSet::from(API_MD_CODES)
    );
    let required: BTreeSet<&str> = problem["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["type", "title", "status", "code", "detail"])
    );
}

#[test]
fn every_failure_is_a_problem_and_v1_needs_the_key() {
    let doc = document();
    let admin = admin_routes();
    assert!(
        admin.contains(&("post".to_string(), "/v1/webhooks".to_string())),
        "{admin:?}"
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{m} {path}: no success response"
            );
            for (status, response) in responses {
                if status.starts_with('2') {
                    continue;
                }
                let response = resolve(&doc, response);
                let schema = &response["content"][PROBLEM_JSON]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/Problem",
                    "{m} {path} {status}: not a problem"
                );
            }
            let security = op.get("security");
            if path.starts_with("/v1/") {
                // R47: the scope a key needs, as the router asks for it.
                let scope = if admin.contains(&(m.to_string(), path.clone())) {
                    crate::config::Scope::Admin
                } else {
                    crate::http::auth::method_scope(&m.to_uppercase().parse().unwrap())
                };
                assert_eq!(
                    security,
                    Some(&serde_json::json!([{ API_KEY_SCHEME: [scope.as_str()] }])),
                    "{m} {path}"
                );
                assert!(responses.contains_key("401"), "{m} {path}: no 401");
                assert!(responses.contains_key("403"), "{m} {path}: no 403");
            } else {
                assert_eq!(security, None, "{m} {path} needs no key");
            }
            // Idempotency-Key is a /v1 layer; a provider's webhook retries
            // by its own rules (R43 a).
            if m == "post" && path.starts_with("/v1/") {
                let params = op["parameters"].as_array().unwrap();
                assert!(
                    params.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "{m} {path}: no Idempotency-Key"
                );
            }
        }
    }
    let scheme = &doc["components"]["securitySchemes"][API_KEY_SCHEME];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&"http".into(), &"bearer".into())
    );
}

#[test]
fn the_document_is_openapi_3_1() {
    let doc = document();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "invited");
}

/// The values the document lists for plain-string fields are the ones the
/// domain accepts.
#[test]
fn enumerated_values_are_the_domains() {
    use crate::domain::{DeliveryMode, InvitationKind, InvitationStatus, RolePreset};
    use crate::domain::{access::Permission, partners::Direction, partners::TwoFactorPolicy};
    let doc = document();
    let values = |name: &str| -> Vec<String> {
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is an enumeration"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    type Accepts = fn(&str) -> bool;
    let checks: [(&str, Accepts); 10] = [
        ("InvitationKind", |v| InvitationKind::parse(v).is_some()),
        ("InvitationStatus", |v| InvitationStatus::parse(v).is_some()),
        ("RolePreset", |v| RolePreset::parse(v).is_some()),
        ("TwoFactorPolicy", |v| TwoFactorPolicy::parse(v).is_some()),
        ("Direction", |v| Direction::parse(v).is_some()),
        ("Permission", |v| Permission::parse(v).is_some()),
        ("PreviewReason", |v| {
            crate::domain::invitee::Unacceptable::ALL
                .iter()
                .any(|r| r.as_str() == v)
        }),
        ("DeliveryMode", |v| DeliveryMode::parse(v).is_some()),
        ("LinkReason", |v| {
            crate::domain::invite_link::Unredeemable::ALL
                .iter()
                .any(|r| r.as_str() == v)
        }),
        ("JoinRequestStatusName", |v| {
            crate::domain::JoinRequestStatus::parse(v).is_some()
        }),
    ];
    for (name, accepted) in checks {
        let values = values(name);
        assert!(!values.is_empty(), "{name}");
        for v in values {
            assert!(accepted(&v), "{name}: the domain refuses {v:?}");
        }
    }
}

/// R38, R39: the creation body's options, the invitation's new fields (the
/// accept link optional: only a creation answer has it) and the resend's
/// `200` with the link.
#[test]
fn invitation_options_and_fields_are_documented() {
    let doc = document();
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let body = schema("CreateInvitationsBody");
    for field in ["delivery", "ttl", "metadata"] {
        assert!(body["properties"].get(field).is_some(), "{field}: {body}");
        assert!(
            !body["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == field),
            "{field} is optional"
        );
    }
    let invitation = schema("InvitationJson");
    let required: Vec<&str> = invitation["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in ["delivery_mode", "metadata"] {
        assert!(required.contains(&field), "{field} is always there");
    }
    assert!(invitation["properties"].get("accept_url").is_some());
    assert!(
        !required.contains(&"accept_url"),
        "accept_url is not in reads"
    );
    let resend = &doc["paths"]["/v1/invitations/{id}/resend"]["post"]["responses"];
    let ok = resolve(
        &doc,
        &resend["200"]["content"]["application/json"]["schema"],
    );
    assert_eq!(ok["required"], serde_json::json!(["accept_url"]), "{ok}");
    assert!(resend.get("202").is_some());
}

const KEY: &str = "openapi-test-key";

async fn app(pool: &PgPool) -> axum::Router {
    let settings = Settings::from_config(&crate::config::Config::default()).unwrap();
    let services = Services::new(Arc::new(PgStore::from_pool(pool.clone())), settings)
        .await
        .unwrap();
    router(HttpState {
        services,
        // No handler reached here talks to an invitation actor.
        invitations: InvitationsHandle::new(format!("test.openapi.{}", uuid::Uuid::now_v7())),
        api_keys: Arc::new(vec![ApiKey::from_plaintext("app", KEY)]),
        max_body: 1024,
        request_timeout: std::time::Duration::from_secs(30),
        feedback: Default::default(),
    })
}

async fn get(app: &axum::Router, key: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = Request::get("/v1/openapi.json");
    if let Some(key) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

#[sqlx::test]
async fn the_router_serves_the_document_to_key_holders(pool: PgPool) {
    let app = app(&pool).await;
    let (status, content_type, doc) = get(&app, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(doc, document());
    assert!(doc["paths"]["/v1/openapi.json"]["get"].is_object());

    let (status, content_type, problem) = get(&app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(content_type, PROBLEM_JSON);
    assert_eq!(problem["code"], "unauthorized");
}

#[test]
fn every_operation_id_is_unique() {
    // OpenAPI requires it, and generated clients name their methods after
    // it: two handlers called `accept` once gave two operations one name.
    let doc = document();
    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let Some(id) = operation.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            assert!(
                seen.insert(id.to_string()),
                "operationId {id} of {method} {path} is used twice"
            );
        }
    }
    assert!(!seen.is_empty(), "the document names no operation");
}

/// A `pattern` of the document, compiled as a JSON Schema validator would
/// (unanchored search; ours carry their own `^…$`).
fn pattern(p: &str) -> regex::Regex {
    regex::Regex::new(p).expect("the pattern compiles")
}

/// Whether `value` fits a string schema of `values`: length in characters
/// and pattern, as JSON Schema counts them.
fn fits(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>, value: &str) -> bool {
    let json = serde_json::to_value(schema).unwrap();
    let chars = value.chars().count() as u64;
    json["minLength"].as_u64().is_none_or(|min| chars >= min)
        && json["maxLength"].as_u64().is_none_or(|max| chars <= max)
        && json["pattern"]
            .as_str()
            .is_none_or(|p| pattern(p).is_match(value))
}

/// Issue 12, item 16: the string schemas say exactly what the parsers take,
/// on the edges each parser has.
#[test]
fn string_schemas_are_the_parsers() {
    use crate::domain::{Locale, PublicBusinessId, UserId};
    use crate::http::openapi::values::*;
    use utoipa::PartialSchema;

    let long = "u".repeat(200);
    let too_long = "u".repeat(201);
    for id in [
        "u1",
        "",
        "a\u{0}b",
        "tab\there",
        "\u{7f}",
        "\u{85}x",
        "é",
        "😀",
        " x ",
        &long,
        &too_long,
    ] {
        assert_eq!(
            fits(UserIdText::schema(), id),
            UserId::parse(id).is_ok(),
            "{id:?}"
        );
    }
    for tag in [
        "en",
        "en-US",
        "fr_CA",
        "zh-Hant-TW",
        "es-419",
        "EN-us",
        "e",
        "english",
        "en-",
        "en-US-x",
        "en-USA",
        "zh-Hant-Hans",
        "en-US-CA",
        "en-1234",
        "",
    ] {
        assert_eq!(
            fits(LocaleTag::schema(), tag),
            Locale::parse(tag).is_ok(),
            "{tag:?}"
        );
    }
    let generated = PublicBusinessId::generate();
    for id in [
        generated.as_str(),
        "23456789abcdefghjkmnpqrs",
        "23456789abcdefghjkmnpqr",
        "23456789abcdefghjkmnpqrl",
        "23456789ABCDEFGHJKMNPQRS",
    ] {
        assert_eq!(
            fits(PublicBusinessIdText::schema(), id),
            PublicBusinessId::parse(id).is_ok(),
            "{id:?}"
        );
    }
    let key = pattern(IDEMPOTENCY_KEY);
    for raw in [
        "k",
        "a b",
        "~!",
        "",
        "é",
        &"k".repeat(255),
        &"k".repeat(256),
    ] {
        let parsed = axum::http::HeaderValue::from_bytes(raw.as_bytes())
            .map(|v| crate::http::idempotency::parse_key(&v).is_ok())
            .unwrap_or(false);
        assert_eq!(key.is_match(raw), parsed, "{raw:?}");
    }
    let message = "m".repeat(1000);
    for (text, ok) in [
        ("hi\r\n\tthere", true),
        ("bell\u{7}", false),
        (message.as_str(), true),
    ] {
        assert_eq!(fits(MessageText::schema(), text), ok, "{text:?}");
        assert_eq!(
            crate::http::invitations::parse_message(text.to_string()).is_ok(),
            ok
        );
    }
    assert!(!fits(MessageText::schema(), &"m".repeat(1001)));
    for (ttl, ok) in [
        ("3d", true),
        ("12h", true),
        ("1h30m", false),
        ("x", false),
        ("", false),
    ] {
        assert_eq!(fits(TtlText::schema(), ttl), ok, "{ttl:?}");
        assert_eq!(crate::config::parse_duration(ttl).is_ok(), ok, "{ttl:?}");
    }
    for (name, ok) in [
        ("Acme", true),
        ("  Acme ", true),
        ("   ", false),
        ("", false),
        ("a\u{1b}", false),
        ("Acme\u{202E}proC", false),
        ("Acme\u{2066}x\u{2069}", false),
        ("\u{200B}Acme", false),
        ("Acme\u{FEFF}", false),
        ("A\u{61C}b", false),
        ("مؤسسة", true),
    ] {
        assert_eq!(fits(NameText::schema(), name), ok, "{name:?}");
        assert_eq!(
            crate::service::businesses::parse_business_name(name, "name").is_ok(),
            ok,
            "{name:?}"
        );
    }
}

/// Issue 12, item 16: every link leads to an operation of the document, with
/// parameters it has.
#[test]
fn links_lead_to_operations_with_those_parameters() {
    let doc = document();
    let mut operations = std::collections::BTreeMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                let names: BTreeSet<String> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect();
                operations.insert(id.to_string(), names);
            }
        }
    }
    let mut links = 0;
    let mut next_pages = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, r)| r)
            {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    if name == NEXT_PAGE {
                        assert_eq!(link["operationId"], op["operationId"], "{link}");
                        assert_eq!(
                            link["parameters"]["cursor"], "$response.body#/next_cursor",
                            "{link}"
                        );
                        next_pages.insert(op["operationId"].as_str().unwrap().to_string());
                        continue;
                    }
                    links += 1;
                    let target = link["operationId"].as_str().unwrap();
                    let parameters = operations
                        .get(target)
                        .unwrap_or_else(|| panic!("link {name} to unknown {target}"));
                    for parameter in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            parameters.contains(parameter),
                            "{name}: {target} has no {parameter}"
                        );
                    }
                }
            }
        }
    }
    assert_eq!(links, LINKS.len());
    // Every paginated list links its next page (issue 12, item 16).
    let paginated: BTreeSet<String> = operations
        .iter()
        .filter(|(_, parameters)| parameters.contains("cursor"))
        .map(|(id, _)| id.clone())
        .collect();
    assert!(paginated.len() >= 4, "{paginated:?}");
    assert_eq!(next_pages, paginated);
    // Issue 12, item 14: every operation with a JSON body says it may answer
    // 415. The providers' webhooks (outside /v1) take any content type: SNS
    // posts its JSON as text/plain.
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for op in item.as_object().unwrap().values() {
            if op.get("requestBody").is_some() {
                assert!(
                    op["responses"].get("415").is_some(),
                    "{}",
                    op["operationId"]
                );
            }
        }
    }
    let grantee = &doc["components"]["schemas"]["GranteeBody"];
    assert_eq!(
        grantee["oneOf"].as_array().map(Vec::len),
        Some(2),
        "{grantee}"
    );
}

#[test]
fn tmp_dump() {
    let doc = document();
    for name in [
        "AcceptByIdJson",
        "AcceptJson",
        "PartnerAcceptJson",
        "PreviewJson",
        "AnswerBody",
    ] {
        println!("{name}: {}", doc["components"]["schemas"][name]);
    }
    println!("{}", doc["paths"]["/v1/users/{user_id}/invitations"]);
}
