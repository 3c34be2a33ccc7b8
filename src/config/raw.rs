//! The configuration as written: every scalar is an optional string, so that
//! TOML numbers, TOML strings and environment variables all arrive the same way
//! and one converter per key (in `mod.rs`) owns both its syntax and its error.
//! `deny_unknown_fields` everywhere is what turns a typo into a start-up error.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub smtp: RawSmtp,
    #[serde(default)]
    pub mail: RawMail,
    #[serde(default)]
    pub links: RawLinks,
    #[serde(default)]
    pub invitations: RawInvitations,
    #[serde(default)]
    pub join_requests: RawJoinRequests,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default)]
    pub roles: RawRoles,
    #[serde(default)]
    pub templates: RawTemplates,
    #[serde(default)]
    pub log: RawLog,
    /// `[[webhooks]]` (where outbound events go, R17), or `[webhooks]` with
    /// `disable_after` (R48) and `[[webhooks.endpoints]]`.
    #[serde(default)]
    pub webhooks: RawWebhooks,
    #[serde(default)]
    pub nats: RawNats,
    #[serde(default)]
    pub events: RawEvents,
    #[serde(default)]
    pub feedback: RawFeedback,
    #[serde(default)]
    pub domains: RawDomains,
}

/// `[domains]` (R52).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomains {
    pub resolver: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub url: Option<String>,
    pub max_connections: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub listen: Option<String>,
    pub keys: Option<Vec<RawApiKey>>,
    pub max_body: Option<String>,
    pub request_timeout: Option<String>,
}

/// One `[[api.keys]]` entry. Deliberately not `Debug`: it may hold a plaintext
/// key, which lives only until it is hashed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiKey {
    pub name: String,
    pub key: Option<String>,
    pub sha256: Option<String>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    pub url: Option<String>,
    pub pool_size: Option<String>,
    pub timeout: Option<String>,
    pub probe_interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
    pub from: Option<String>,
    pub outbox_dir: Option<String>,
    pub send_rate: Option<String>,
    pub product_name: Option<String>,
    pub support_address: Option<String>,
    pub reply_to_inviter: Option<String>,
    pub return_path: Option<String>,
    pub dkim: Option<RawDkim>,
}

/// `[mail.dkim]` (R42): all three keys, or none.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDkim {
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub private_key_file: Option<String>,
}

/// `[feedback]` (R43).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeedback {
    pub smtp_listen: Option<String>,
    pub postmark: Option<RawPostmark>,
    pub sendgrid: Option<RawSendgrid>,
    pub mailgun: Option<RawMailgun>,
    pub resend: Option<RawResend>,
    #[serde(default)]
    pub ses: RawSes,
}

/// `[feedback.postmark]` (R43 a): both keys, or none.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostmark {
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSendgrid {
    pub public_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMailgun {
    pub signing_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResend {
    pub secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSes {
    pub allowed_cert_hosts: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLinks {
    pub accept_url: Option<String>,
    pub decline_url: Option<String>,
    pub partner_url: Option<String>,
    pub invite_link_url: Option<String>,
    pub join_request_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJoinRequests {
    pub rate_limit: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInvitations {
    pub ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub rate_limit: Option<String>,
    pub resend_cooldown: Option<String>,
    pub reminders: Option<Vec<String>>,
    pub expiry_schedule: Option<String>,
    pub actor_idle: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub give_up_after: Option<String>,
    pub lease: Option<String>,
    pub workers: Option<String>,
    pub poll_interval: Option<String>,
}

/// `roles.catalog` (custom catalogs) is not supported yet, so it is rejected
/// as unknown rather than silently ignored.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoles {
    pub preset: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplates {
    pub dir: Option<String>,
    pub default_locale: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: Option<String>,
    pub filter: Option<String>,
}

/// `webhooks` in either of its forms. TOML cannot make `webhooks` both a
/// list of tables and a table, so a file that sets `webhooks.disable_after`
/// lists its endpoints under `[[webhooks.endpoints]]`; `[[webhooks]]` keeps
/// working for files that do not.
pub(super) enum RawWebhooks {
    List(Vec<RawWebhook>),
    Table(RawWebhooksTable),
}

/// By the shape of the value, so that an error inside either form names
/// its field (an untagged enum would only say that neither matched).
impl<'de> Deserialize<'de> for RawWebhooks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawWebhooks, D::Error> {
        struct Shape;
        impl<'de> Visitor<'de> for Shape {
            type Value = RawWebhooks;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[[webhooks]] tables or a [webhooks] table")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawWebhooks, A::Error> {
                Vec::<RawWebhook>::deserialize(SeqAccessDeserializer::new(seq))
                    .map(RawWebhooks::List)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawWebhooks, A::Error> {
                RawWebhooksTable::deserialize(MapAccessDeserializer::new(map))
                    .map(RawWebhooks::Table)
            }
        }
        deserializer.deserialize_any(Shape)
    }
}

impl Default for RawWebhooks {
    fn default() -> RawWebhooks {
        RawWebhooks::List(Vec::new())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhooksTable {
    pub disable_after: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<RawWebhook>,
}

/// One `[[webhooks]]` entry. Deliberately not `Debug`: it holds the signing
/// secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub url: String,
    pub secret: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNats {
    pub url: Option<String>,
    pub subject_prefix: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub timeout: Option<String>,
    pub lease: Option<String>,
    pub poll_interval: Option<String>,
}
