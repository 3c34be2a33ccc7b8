//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the whole HTTP
//! interface, generated from the code with utoipa. Each handler carries its
//! `#[utoipa::path]` (method, path as mounted, parameters, body, success and
//! the problems it can give), the wire types derive `ToSchema`, and [`ApiDoc`]
//! lists every path. What the router's layers do to every `/v1` route (the
//! API key, `Idempotency-Key` on `POST`, the body limit and JSON parsing) is
//! added once, by [`Layers`], rather than repeated on thirty handlers.
//!
//! The tests below read the router's own source, so a route without an entry
//! here fails them.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, Required};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use super::error::{Problem, ProblemCode};
use super::{
    access, businesses, domains, feedback, health, invitations, invite_links, invitee,
    join_requests, members, observe, partners, suppressions, users, webhooks,
};

/// The media type of every problem.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The name of the bearer API-key scheme in `components.securitySchemes`.
pub const API_KEY_SCHEME: &str = "api_key";

/// The document: every path of the router, the schemas they reach (collected
/// from the paths), the shared problem responses, and the layers' additions.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "invited",
        description = "Member invitations, partner requests, their emails and the access they \
            grant. Every `/v1` request carries `Authorization: Bearer <api key>`; errors are \
            `application/problem+json` (RFC 9457) with a `code`."
    ),
    paths(
        users::put_user,
        businesses::create_business,
        businesses::get_business,
        members::list_members,
        members::set_member_role,
        members::remove_member,
        members::transfer_ownership,
        invitations::create_invitations,
        invitations::list_invitations,
        invitations::quota,
        invitations::accept,
        invitations::decline,
        invitee::preview,
        invitee::list_user_invitations,
        invitations::get_invitation,
        invitations::timeline,
        invitations::resend,
        invitations::correct_address,
        invitations::cancel,
        invitations::renew,
        invite_links::create_invite_link,
        invite_links::list_invite_links,
        invite_links::revoke_invite_link,
        invite_links::invite_link_timeline,
        invite_links::preview_invite_link,
        invite_links::redeem_invite_link,
        partners::create_partner,
        partners::list_partners,
        partners::end_partnership,
        partners::accept,
        partners::decline,
        access::set_security,
        access::create_profile,
        access::add_grant,
        access::remove_grant,
        access::access,
        access::authorize,
        access::user_profiles,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::update_webhook,
        webhooks::delete_webhook,
        webhooks::rotate_secret,
        webhooks::replay,
        webhooks::deliveries,
        suppressions::list_suppressions,
        suppressions::add_suppression,
        suppressions::remove_suppression,
        join_requests::create_join_request,
        join_requests::list_join_requests,
        join_requests::get_join_request,
        join_requests::join_request_timeline,
        join_requests::approve_join_request,
        join_requests::deny_join_request,
        domains::claim_domain,
        domains::verify_domain,
        domains::list_domains,
        domains::remove_domain,
        domains::suggestions,
        openapi_json,
        health::healthz,
        health::readyz,
        observe::metrics_text,
        feedback::provider_feedback,
    ),
    components(
        schemas(Problem, ProblemCode),
        responses(BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, Unavailable, IdempotencyConflict)
    ),
    modifiers(&Layers, &Links),
    tags(
        (name = "users", description = "The app's users"),
        (name = "businesses", description = "Businesses, their members and security policy"),
        (name = "invitations", description = "Member invitations and the commands on one invitation"),
        (name = "invite_links", description = "Invite links (R50): many users join through one code"),
        (name = "partners", description = "Partner invitations and partnerships"),
        (name = "join requests", description = "Users asking to join a business by its Business ID (R51)"),
        (name = "access", description = "Profiles, grants and access checks"),
        (name = "webhooks", description = "Webhook endpoints managed at runtime (admin scope)"),
        (name = "deliverability", description = "The suppression list (R45): addresses no business may invite"),
        (name = "operations", description = "Probes and metrics: no API key"),
        (name = "feedback", description = "Bounces and complaints from email providers: signed by the provider, no API key"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The document as served, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document always serialises")
});

/// `GET /v1/openapi.json`. It lives under `/v1`, so like every `/v1` request
/// it needs the API key (docs/api.md): one rule for the whole prefix, and the
/// document is for those who call the API, who hold a key.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object),
    )
)]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

/// A response whose body is a [`Problem`].
fn problem_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(
                utoipa::openapi::Ref::from_schema_name(Problem::name()),
            ))
            .build(),
    )
}

/// The problem responses that the router's layers and extractors give on
/// every route they wrap, as named components.
macro_rules! problem_responses {
    ($($name:ident: $description:literal;)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), problem_response($description).build().into())
            }
        }
    )*};
}

problem_responses! {
    BadRequest: "`validation_failed`: the body is not JSON";
    Unauthorized: "`unauthorized`: no `Authorization: Bearer <api key>`, or not a configured key";
    Forbidden: "`forbidden`: the API key lacks the scope this operation needs (the scope named in its security requirement), or the actor may not do this";
    PayloadTooLarge: "`payload_too_large`: the body is larger than `api.max_body`";
    UnsupportedMediaType: "`unsupported_media_type`: the body's `Content-Type` is not `application/json` (or `application/*+json`, UTF-8), or a non-empty body has none";
    ValidationFailed: "`validation_failed`: a field, query parameter or header is missing, unknown or invalid; `errors` names it";
    Unavailable: "`unavailable`: the database or a part of the daemon cannot answer; retry later";
    IdempotencyConflict: "`conflict`: a request with this `Idempotency-Key` is still running";
}

/// What the router's layers add to each route, by the same facts the router
/// goes by: under `/v1` the API key is required (`401`); a `POST` may carry
/// `Idempotency-Key` (a reused key with another request is `422`, one still
/// running `409`); a route with a body reads it strictly (`400`, `413`,
/// `415`).
pub struct Layers;

impl Modify for Layers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key of the configuration: `Authorization: Bearer <key>`",
                    ))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            for (method, op) in operations_mut(item) {
                // The scope the method needs (R47); an admin route says
                // `security(("api_key" = ["admin"]))` in its annotation.
                if op.security.is_none() {
                    let method = axum::http::Method::from_bytes(method.to_uppercase().as_bytes())
                        .expect("an HTTP method");
                    let scope = super::auth::method_scope(&method);
                    op.security = Some(vec![SecurityRequirement::new(
                        API_KEY_SCHEME,
                        [scope.as_str()],
                    )]);
                }
                add_ref(op, "401", "Unauthorized");
                add_ref(op, "403", "Forbidden");
                if op.request_body.is_some() {
                    add_ref(op, "400", "BadRequest");
                    add_ref(op, "413", "PayloadTooLarge");
                    add_ref(op, "415", "UnsupportedMediaType");
                    add_ref(op, "422", "ValidationFailed");
                }
                if method == "post" {
                    idempotency(op);
                }
            }
        }
    }
}

/// OpenAPI `links`: how an id a response creates feeds the next call, so
/// that a stateful tester (schemathesis) chains them as a client would.
/// `(path, method, status, link name, target operationId, parameters)`.
type LinkRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const BUSINESS: &[(&str, &str)] = &[
    ("id", "$response.body#/id"),
    ("actor_user_id", "$request.body#/owner_user_id"),
];
const FIRST_INVITATION: &[(&str, &str)] = &[
    ("id", "$response.body#/items/0/id"),
    ("actor_user_id", "$request.body#/actor_user_id"),
];
const INVITATION: &[(&str, &str)] = &[
    ("id", "$response.body#/id"),
    ("actor_user_id", "$request.body#/actor_user_id"),
];

pub const LINKS: &[LinkRow] = &[
    (
        "/v1/users/{user_id}",
        "put",
        "200",
        "UserProfiles",
        "user_profiles",
        &[("user_id", "$response.body#/user_id")],
    ),
    (
        "/v1/users/{user_id}",
        "put",
        "200",
        "UserInvitations",
        "list_user_invitations",
        &[("user_id", "$response.body#/user_id")],
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "GetBusiness",
        "get_business",
        BUSINESS,
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "ListMembers",
        "list_members",
        BUSINESS,
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "ListInvitations",
        "list_invitations",
        BUSINESS,
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "InvitationQuota",
        "quota",
        BUSINESS,
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "ListPartners",
        "list_partners",
        BUSINESS,
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "CreateInvitations",
        "create_invitations",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "CreatePartner",
        "create_partner",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "CreateProfile",
        "create_profile",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/businesses",
        "post",
        "201",
        "SetSecurity",
        "set_security",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/businesses/{id}/invitations",
        "post",
        "201",
        "GetInvitation",
        "get_invitation",
        &[("id", "$response.body#/items/0/id")],
    ),
    (
        "/v1/businesses/{id}/invitations",
        "post",
        "201",
        "Timeline",
        "timeline",
        FIRST_INVITATION,
    ),
    (
        "/v1/businesses/{id}/invitations",
        "post",
        "201",
        "Cancel",
        "cancel",
        &[("id", "$response.body#/items/0/id")],
    ),
    (
        "/v1/businesses/{id}/invitations",
        "post",
        "201",
        "Resend",
        "resend",
        &[("id", "$response.body#/items/0/id")],
    ),
    (
        "/v1/businesses/{id}/invitations",
        "post",
        "201",
        "Renew",
        "renew",
        &[("id", "$response.body#/items/0/id")],
    ),
    (
        "/v1/businesses/{id}/partners",
        "post",
        "201",
        "GetInvitation",
        "get_invitation",
        INVITATION,
    ),
    (
        "/v1/businesses/{id}/partners",
        "post",
        "201",
        "AcceptInvitationById",
        "accept_invitation_by_id",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/businesses/{id}/partners",
        "post",
        "201",
        "DeclineInvitationById",
        "decline_invitation_by_id",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/invitations/{id}/renew",
        "post",
        "201",
        "GetInvitation",
        "get_invitation",
        INVITATION,
    ),
    (
        "/v1/businesses/{id}/profiles",
        "post",
        "201",
        "AddGrant",
        "add_grant",
        &[("profile_id", "$response.body#/id")],
    ),
    (
        "/v1/profiles/{profile_id}/grants",
        "post",
        "201",
        "RemoveGrant",
        "remove_grant",
        &[
            ("profile_id", "$request.path.profile_id"),
            ("grant_id", "$response.body#/id"),
            ("actor_user_id", "$request.body#/actor_user_id"),
        ],
    ),
];

/// Adds [`LINKS`] to the responses they start from.
pub struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, method, status, name, target, parameters) in LINKS {
            let item = openapi
                .paths
                .paths
                .get_mut(*path)
                .unwrap_or_else(|| panic!("link from unknown path {path}"));
            let (_, op) = operations_mut(item)
                .into_iter()
                .find(|(m, _)| m == method)
                .unwrap_or_else(|| panic!("link from unknown operation {method} {path}"));
            let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) else {
                panic!("link from undocumented response {status} of {method} {path}");
            };
            let mut link = LinkBuilder::new().operation_id(*target);
            for (parameter, expression) in *parameters {
                link = link.parameter(*parameter, *expression);
            }
            response
                .links
                .insert(name.to_string(), RefOr::T(link.build()));
        }
        for item in openapi.paths.paths.values_mut() {
            for (_, op) in operations_mut(item) {
                next_page_link(op);
            }
        }
    }
}

/// The link a paginated list's `next_cursor` makes: the same operation with
/// `cursor` set to it, the same path and required parameters. Every
/// operation that takes a `cursor` gets it, so a list added later cannot
/// forget it.
fn next_page_link(op: &mut Operation) {
    let Some(id) = op.operation_id.clone() else {
        return;
    };
    let parameters: Vec<_> = op
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        })
        .collect();
    if !parameters
        .iter()
        .any(|p| p.name == "cursor" && p.parameter_in == ParameterIn::Query)
    {
        return;
    }
    let mut link = LinkBuilder::new()
        .operation_id(id)
        .parameter("cursor", "$response.body#/next_cursor");
    for p in &parameters {
        let expression = match p.parameter_in {
            ParameterIn::Path => format!("$request.path.{}", p.name),
            ParameterIn::Query if p.required == Required::True => {
                format!("$request.query.{}", p.name)
            }
            _ => continue,
        };
        link = link.parameter(p.name.clone(), expression);
    }
    if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
        ok.links
            .insert(NEXT_PAGE.to_string(), RefOr::T(link.build()));
    }
}

/// The name of the link from a page to the next (see [`next_page_link`]).
pub const NEXT_PAGE: &str = "NextPage";

/// The operations of a path item with their (lowercase) methods.
pub fn operations_mut(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
        ("head", item.head.as_mut()),
        ("options", item.options.as_mut()),
        ("trace", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
    .collect()
}

/// Adds the named response component under `status`, unless the handler
/// already documents that status itself.
fn add_ref(op: &mut Operation, status: &str, component: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::Ref(utoipa::openapi::Ref::from_response_name(component)));
}

/// `Idempotency-Key` on a `POST`: the header, and its two problems.
fn idempotency(op: &mut Operation) {
    let header = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The same key with the same request within 24 hours returns the first response \
             (with `Idempotent-Replayed: true`) and does nothing again; with another request it is \
             `422`. 1 to 255 visible ASCII characters.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some(values::IDEMPOTENCY_KEY)),
        ))
        .build();
    op.parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(header));
    add_ref(op, "422", "ValidationFailed");
    match op.responses.responses.get_mut("409") {
        Some(RefOr::T(conflict)) => {
            if !conflict.description.ends_with('.') {
                conflict.description.push('.');
            }
            conflict.description.push_str(
                " Also `conflict` while a request with the same `Idempotency-Key` is still running.",
            );
        }
        Some(RefOr::Ref(_)) => {}
        None => add_ref(op, "409", "IdempotencyConflict"),
    }
}

/// Schema-only enumerations: the closed sets of strings the wire carries as
/// plain strings, so clients see their values. The tests check each against
/// the domain's parser.
pub mod values {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
    use utoipa::{PartialSchema, ToSchema};

    /// No control character (`char::is_control`, Unicode category Cc), the
    /// rule of user ids and names (R30: they may reach an email header).
    pub const NO_CONTROL: &str = "^[^\\x00-\\x1F\\x7F-\\x9F]*$";
    /// Some character other than white space, and none that is a control or
    /// a bidirectional-control or zero-width character (`domain::names`).
    pub const NAME: &str = concat!(
        "^[^\\x00-\\x1F\\x7F-\\x9F\\u061C\\u200B-\\u200F\\u202A-\\u202E\\u2060\\u2066-\\u2069\\uFEFF]*",
        "[^\\s\\x00-\\x1F\\x7F-\\x9F\\u061C\\u200B-\\u200F\\u202A-\\u202E\\u2060\\u2066-\\u2069\\uFEFF]",
        "[^\\x00-\\x1F\\x7F-\\x9F\\u061C\\u200B-\\u200F\\u202A-\\u202E\\u2060\\u2066-\\u2069\\uFEFF]*$"
    );
    /// A message: no control character but line breaks and tabs.
    pub const MESSAGE: &str = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$";
    /// `Locale::parse`: a language, an optional script, an optional region.
    pub const LOCALE: &str = "^[A-Za-z]{2,3}([-_][A-Za-z]{4})?([-_]([A-Za-z]{2}|[0-9]{3}))?$";
    /// `PublicBusinessId::parse`: 24 characters of its unambiguous alphabet.
    pub const PUBLIC_BUSINESS_ID: &str = "^[2-9a-hjkmnp-z]{24}$";
    /// A duration as the configuration writes them: one whole number and
    /// one unit (`config::parse_duration`).
    pub const DURATION: &str = "^[0-9]+(ms|s|m|h|d)$";
    /// What a webhook URL's parser takes for sure: `http(s)://`, a host of
    /// letters and digits in dot-separated labels, an optional port and
    /// path (the parser takes more; the document promises this much).
    pub const WEBHOOK_URL: &str =
        "^https?://[A-Za-z0-9]+(\\.[A-Za-z0-9]+)*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$";
    /// `Idempotency-Key`: 1 to 255 visible ASCII characters.
    pub const IDEMPOTENCY_KEY: &str = "^[\\x21-\\x7E]{1,255}$";

    /// String schemas for the values the domain parses from plain strings:
    /// the lengths, patterns and formats of the parsers in `src/domain/`
    /// (the tests hold each against its parser).
    macro_rules! text_values {
        ($($(#[doc = $doc:literal])* $name:ident { $($method:ident($value:expr)),* $(,)? })*) => {$(
            $(#[doc = $doc])*
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some(concat!($($doc),*).trim()))
                        $(.$method($value))*
                        .into()
                }
            }

            impl ToSchema for $name {}
        )*};
    }

    text_values! {
        /// A user id of the app: 1 to 200 characters, no control characters.
        UserIdText { min_length(Some(1)), max_length(Some(200)), pattern(Some(NO_CONTROL)) }
        /// An email address (at most 254 characters).
        EmailText { max_length(Some(254)), format(Some(SchemaFormat::KnownFormat(KnownFormat::Email))) }
        /// A BCP 47 language tag: language, optional script, optional region (`en-US`, `zh-Hant-TW`).
        LocaleTag { min_length(Some(2)), max_length(Some(12)), pattern(Some(LOCALE)) }
        /// A name: 1 to 200 characters once trimmed, no control characters, no bidirectional-control or zero-width characters (R41).
        NameText { min_length(Some(1)), max_length(Some(200)), pattern(Some(NAME)) }
        /// A personal message: at most 1,000 characters, no control characters but line breaks and tabs.
        MessageText { max_length(Some(1000)), pattern(Some(MESSAGE)) }
        /// A public Business ID: 24 characters of `23456789abcdefghjkmnpqrstuvwxyz`.
        PublicBusinessIdText { min_length(Some(24)), max_length(Some(24)), pattern(Some(PUBLIC_BUSINESS_ID)) }
        /// An invitation's lifetime (R39), like `3d` or `12h`: from `1h` up to `invitations.max_ttl` (default `30d`).
        TtlText { pattern(Some(DURATION)) }
        /// A webhook endpoint's URL (R48): absolute, `http://` or `https://`, with a host.
        WebhookUrlText { min_length(Some(8)), max_length(Some(2048)), pattern(Some(WEBHOOK_URL)), format(Some(SchemaFormat::Custom("uri".into()))) }
    }

    /// The name of an event type of the catalog (`docs/events.md`).
    pub struct EventTypeName;

    impl PartialSchema for EventTypeName {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(
                    crate::events::catalog::EventType::ALL
                        .iter()
                        .map(|t| t.as_str()),
                ))
                .into()
        }
    }

    impl ToSchema for EventTypeName {}

    /// How an invitation reaches the invitee (R38): emailed by the daemon, or
    /// delivered by the app itself with the `accept_url` of the creation answer.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum DeliveryMode {
        Email,
        None,
    }

    /// What an invitation is for.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum InvitationKind {
        Member,
        PartnerInvite,
        PartnerRequest,
    }

    /// Where an invitation is in its life (R10).
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum InvitationStatus {
        Pending,
        Accepted,
        Declined,
        Cancelled,
        Expired,
    }

    /// Where the invitation email is.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum DeliveryStatus {
        Queued,
        Sending,
        Sent,
        Retrying,
        Failed,
        /// Sent, then a hard bounce came back (R44).
        Bounced,
        /// Sent, then the recipient complained (R44).
        Complained,
    }

    /// Who must have completed 2FA to accept (R15).
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum TwoFactorPolicy {
        Off,
        Managers,
        All,
    }

    /// The role catalog of a business (R1).
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum RolePreset {
        BusinessManager,
        AccountLevels,
    }

    /// A role of either preset's catalog (R1); a business takes only its own
    /// preset's roles (`422` otherwise).
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum RoleName {
        Owner,
        Admin,
        Manager,
        Employee,
        Author,
        Viewer,
    }

    /// A partner invitation invites the other business in, or asks to be let in.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum Direction {
        Invite,
        Request,
    }

    /// The permissions a grant gives; only `publisher` for now.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum Permission {
        Publisher,
    }

    /// Why a previewed invitation can no longer be accepted (R35).
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum PreviewReason {
        TokenUsed,
        TokenExpired,
        Cancelled,
        Declined,
    }

    /// Why a previewed invite link can no longer be redeemed (R50).
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum LinkReason {
        LinkRevoked,
        LinkExpired,
        LinkExhausted,
    }
}

#[cfg(test)]
mod tests;
