//! Configuration: one typed value, loaded once at start from defaults, a TOML
//! file, `INVITED_<SECTION>__<KEY>` environment variables and `DATABASE_URL`.
//! This is the only module that reads the environment for settings (the one
//! exception is `RUST_LOG`, honoured by [`crate::telemetry`]).
//!
//! Every value is parsed here into the type the daemon uses, so a typo or a bad
//! value stops start-up with one message naming the key, e.g.
//! `invalid configuration: invitations.ttl: "7x" is not a duration (use 30s, 10m, 24h, 7d)`.
//!
//! # Environment variables
//!
//! * `INVITED_<SECTION>__<KEY>` sets `<section>.<key>` (a double underscore
//!   between section and key; names are case-insensitive), e.g.
//!   `INVITED_API__LISTEN=0.0.0.0:8080`, `INVITED_SMTP__POOL_SIZE=8`. An
//!   `INVITED_` variable that names no key is an error, like a typo in the file.
//! * `INVITED_API__KEYS` is a comma-separated list of `name:key` pairs
//!   (`ci:s3cret,ops:0ther`), because lists of tables are awkward in the
//!   environment. The name is everything before the first `:`, so a key may
//!   contain `:` but not `,`. `name@read:key` gives the key a scope (R47;
//!   `write` without one). When set, it replaces the file's `api.keys`;
//!   set to the empty string, it leaves no key at all.
//! * `INVITED_INVITATIONS__REMINDERS` is a comma-separated list of durations
//!   (`2d,5d`); the empty string means no reminders.
//! * `INVITED_CONFIG` is not a setting: it is left to the command line, which
//!   may read the path of the configuration file from it.
//! * `DATABASE_URL` (the sqlx convention) sets `database.url` and wins over
//!   `INVITED_DATABASE__URL`. An empty value counts as unset.

mod parse;
mod raw;
mod render;

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::domain::Locale;
pub use crate::domain::RolePreset;
pub use crate::feedback::providers::keys::{
    CertHost, HmacSecret, PostmarkCredentials, SendgridKey,
};
use crate::mail::{DkimKey, DkimSettings, ReturnPath, Sender};
pub use parse::{ParseDurationError, format_duration, parse_duration};

use raw::{RawApiKey, RawConfig};
use render::redact_url;

/// The prefix of every setting in the environment.
const ENV_PREFIX: &str = "INVITED_";
/// Read by the command line for the path of the file, so not a setting.
const CONFIG_PATH_VAR: &str = "INVITED_CONFIG";
const DATABASE_URL_VAR: &str = "DATABASE_URL";
/// Keys whose environment form is a comma-separated list.
const API_KEYS: &str = "api.keys";
const REMINDERS: &str = "invitations.reminders";
/// Read from the environment after the file, not merged into it: merging
/// would turn a file's `[[webhooks]]` list into a table and lose it.
const DISABLE_AFTER: &str = "webhooks.disable_after";
const SES_CERT_HOSTS: &str = "feedback.ses.allowed_cert_hosts";

/// The whole configuration of the daemon. Build it with [`Config::load`];
/// `delivery.workers` by default: the emails a process holds claimed and
/// not yet recorded. Most of an email's time in flight is the claim and the
/// durable commit of its outcome, not the SMTP exchange (which
/// `smtp.pool_size` bounds), so a small bound left the connections idle:
/// with 8 the end to end burst of issue 17 delivered 456-473 emails/s, with
/// 128 (and 16 connections) 2,974-3,294/s, same run (BENCHMARKS.md). What a
/// larger bound costs: a process that crashes mid-burst may have sent up to
/// this many emails it had not recorded yet, which another sends again
/// (R29's one case of a duplicate).
pub const DEFAULT_DELIVERY_WORKERS: u32 = 128;

/// `smtp.pool_size` by default: SMTP exchanges (so connections) at once.
/// 4 capped the same burst at ~1,900-2,250/s with 64 workers, 16 at
/// ~2,300-2,500/s. `mail.send_rate` (50/s by default) still bounds what a
/// relay sees.
pub const DEFAULT_SMTP_POOL_SIZE: u32 = 16;

/// `Config::default()` is the configuration with nothing set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub database: DatabaseConfig,
    pub api: ApiConfig,
    pub smtp: SmtpConfig,
    pub mail: MailConfig,
    pub links: LinksConfig,
    pub invitations: InvitationsConfig,
    pub join_requests: JoinRequestsConfig,
    pub delivery: DeliveryConfig,
    pub roles: RolesConfig,
    pub templates: TemplatesConfig,
    pub log: LogConfig,
    /// `[[webhooks]]` (or `[[webhooks.endpoints]]`): each gets every event
    /// (R17). Default none.
    pub webhooks: Vec<WebhookConfig>,
    /// `webhooks.disable_after` and what else applies to the webhook
    /// endpoints of the API (R48).
    pub webhook_policy: WebhookPolicy,
    pub nats: NatsConfig,
    pub events: EventsConfig,
    pub feedback: FeedbackConfig,
    pub domains: DomainsConfig,
}

/// `[domains]`: verified email domains (R52).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainsConfig {
    /// `domains.resolver`: the DNS server (`ip:port`) TXT records are read
    /// from. `None` (the default): the system's resolvers
    /// (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
}

/// `[feedback]`: bounces and complaints coming back (R43).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackConfig {
    /// `feedback.smtp_listen`: where the inbound SMTP listener for delivery
    /// status notifications and complaints listens (the port an MX of the
    /// return path's domain points at). `None` (the default): no listener.
    /// Needs `mail.return_path`.
    pub smtp_listen: Option<SocketAddr>,
    /// `feedback.postmark.{username, password}`: `POST /feedback/postmark`
    /// takes these basic credentials; unset, the route is `404`.
    pub postmark: Option<PostmarkCredentials>,
    /// `feedback.sendgrid.public_key`: the signed event webhook's
    /// verification key; unset, `POST /feedback/sendgrid` is `404`.
    pub sendgrid: Option<SendgridKey>,
    /// `feedback.mailgun.signing_key`; unset, `POST /feedback/mailgun` is `404`.
    pub mailgun: Option<HmacSecret>,
    /// `feedback.resend.secret` (`whsec_…`); unset, `POST /feedback/resend` is `404`.
    pub resend: Option<HmacSecret>,
    pub ses: SesFeedbackConfig,
}

/// `[feedback.ses]`: Amazon SES notifications through SNS (R43 a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesFeedbackConfig {
    /// `feedback.ses.allowed_cert_hosts`: the hosts an SNS `SigningCertURL`
    /// may name (default `sns.*.amazonaws.com`); empty: `POST /feedback/ses`
    /// is `404`.
    pub allowed_cert_hosts: Vec<CertHost>,
    /// Not a configuration key: only tests set it, to serve the signing
    /// certificate from a loopback `http://` server. The file and the
    /// environment cannot reach it, so a running daemon always wants https.
    pub plain_http_certs_for_tests: bool,
}

/// One `[[webhooks]]` entry: events are `POST`ed to `url`, signed with
/// `secret` (`Invited-Signature`). `Debug` masks the secret and any password
/// in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// An http(s) URL.
    pub url: String,
    /// The HMAC-SHA256 key, at least 16 bytes.
    pub secret: String,
}

/// What applies to the webhook endpoints added through the API (R48).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// `webhooks.disable_after`: an endpoint whose deliveries have failed
    /// without a success for this long is disabled. Default 5 days.
    pub disable_after: Duration,
}

/// `[nats]`. `Debug` masks a password in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats.url` (`nats://host:4222`, `tls://host:4222`). `None` (the
    /// default) turns off the event publisher to NATS and the command
    /// consumer.
    pub url: Option<String>,
    /// `nats.subject_prefix`: subjects are `<prefix>.events.<type>`,
    /// `<prefix>.commands.<name>`, `<prefix>.results.<id>`. Default `invited`.
    pub subject_prefix: String,
}

/// `[events]`: delivery of outbound events to webhooks and NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// `events.initial_backoff`, at most `max_backoff`. Default 1s.
    pub initial_backoff: Duration,
    /// `events.max_backoff`. Default 5m. Events are retried forever.
    pub max_backoff: Duration,
    /// `events.timeout`, of one delivery, shorter than `lease`. Default 10s.
    pub timeout: Duration,
    /// `events.lease`: how long a replica keeps a sink without renewing it.
    /// Default 30s.
    pub lease: Duration,
    /// `events.poll_interval`, the fallback when a NOTIFY is lost. Default 5s.
    pub poll_interval: Duration,
}

/// `[database]`. `Debug` masks the password in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `database.url`: `sqlite://<file>` (the embedded store, one process)
    /// or `postgres://…` (several replicas). Default `sqlite://invited.db`.
    pub url: String,
    /// `database.max_connections`, the pool size, at least 1. Default 10.
    pub max_connections: u32,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// `api.listen`. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `api.keys`, the accepted bearer keys, by hash only. Default none.
    pub keys: Vec<ApiKey>,
    /// `api.max_body`, the largest request body in bytes. Default 64 KiB.
    pub max_body: usize,
    /// `api.request_timeout`: a request not answered within it is cut off
    /// with `503 unavailable`. Default 30 s.
    pub request_timeout: Duration,
}

/// An API key as kept in memory: its name and the SHA-256 of the key. The
/// plaintext is hashed while the configuration is read and then dropped.
/// `Debug` masks the hash too, so that not even it reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
    /// The widest of its `scopes` (R47); `write` when none are configured.
    pub scope: Scope,
}

/// What an API key may do (R47). Ordered: each scope includes those before
/// it, so a key is fully described by its widest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every `GET`.
    Read,
    /// Everything an app does.
    Write,
    /// Webhook endpoints, suppressions, console actions.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether a key of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[smtp]`. `Debug` masks the password in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// `smtp.url`: `smtp://host:port` (optionally `?tls=required` or
    /// `?tls=opportunistic`), `smtps://host:port`, with optional user and
    /// password. `None` (the default, or an empty value) writes mail to
    /// `mail.outbox_dir` instead.
    pub url: Option<String>,
    /// `smtp.pool_size`, open SMTP connections, at least 1. Default
    /// [`DEFAULT_SMTP_POOL_SIZE`].
    pub pool_size: u32,
    /// `smtp.timeout`, per SMTP command. Default 30s.
    pub timeout: Duration,
    /// `smtp.probe_interval`: while the SMTP transport is down, one email
    /// per interval is tried as a probe. Default 5s.
    pub probe_interval: Duration,
}

/// `[mail]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// `mail.from`, a mailbox such as `Name <address@host>`. Default
    /// `Invitations <no-reply@localhost>`.
    pub from: Sender,
    /// `mail.outbox_dir`, where mail goes without SMTP. Default `./outbox`.
    pub outbox_dir: PathBuf,
    /// `mail.send_rate`. Default `50/s`.
    pub send_rate: SendRate,
    /// `mail.product_name`: names the product in the body and the footer
    /// of every email (R41); one line, 1 to 100 characters. Default
    /// `Invitations`.
    pub product_name: String,
    /// `mail.support_address`: an address shown in every email's footer
    /// (R41). Default none (no support line).
    pub support_address: Option<String>,
    /// `mail.reply_to_inviter`: whether the emails sent on an inviter's
    /// behalf carry `Reply-To: <the inviter>` (R41). Default false.
    pub reply_to_inviter: bool,
    /// `mail.return_path`, the VERP envelope sender with `{id}` (R43 b).
    /// `None` (the default): the envelope sender is `mail.from`'s address.
    pub return_path: Option<ReturnPath>,
    /// `[mail.dkim]` (R42). `None` (the default): messages are not signed.
    pub dkim: Option<DkimSettings>,
}

impl MailConfig {
    /// What every email says about the product (R41).
    pub fn brand(&self) -> crate::mail::contexts::Brand {
        crate::mail::contexts::Brand {
            product_name: self.product_name.clone(),
            support_address: self.support_address.clone(),
        }
    }
}

/// At most `count` emails per `per` (`50/s`, `10/m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRate {
    pub count: u32,
    pub per: Duration,
}

/// `[links]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinksConfig {
    /// `links.accept_url`, an http(s) URL containing `{token}`. Default
    /// `http://localhost:3000/invitations/accept?token={token}`.
    pub accept_url: String,
    /// `links.decline_url`, an http(s) URL containing `{token}`: the
    /// decline link of member invitations and reminders (R40). Default
    /// `http://localhost:3000/invitations/decline?token={token}`.
    pub decline_url: String,
    /// `links.partner_url`, an http(s) URL containing `{invitation_id}`:
    /// the button of partner invitation and request emails (R40). Default
    /// `http://localhost:3000/partners/invitations/{invitation_id}`.
    pub partner_url: String,
    /// `links.invite_link_url`, an http(s) URL containing `{code}`: the
    /// `url` of a new invite link (R50), shown once with its code. Default
    /// `http://localhost:3000/join?code={code}`.
    pub invite_link_url: String,
    /// `links.join_request_url`, an http(s) URL containing
    /// `{join_request_id}`: the button of the join request email (R51).
    /// Default `http://localhost:3000/join-requests/{join_request_id}`.
    pub join_request_url: String,
}

/// `[join_requests]` (R51).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequestsConfig {
    /// `join_requests.rate_limit`: how many join requests one user may send
    /// (to any businesses) in a sliding window. Default `5 per 24h`.
    pub rate_limit: RateLimit,
}

/// `[invitations]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationsConfig {
    /// `invitations.ttl`. Default 7d.
    pub ttl: Duration,
    /// `invitations.max_ttl`: the longest `ttl` a creation may ask for
    /// (R39), at least 1h. Default 30d.
    pub max_ttl: Duration,
    /// `invitations.rate_limit`. Default `5 per 24h`.
    pub rate_limit: RateLimit,
    /// `invitations.resend_cooldown` (may be 0s). Default 10m.
    pub resend_cooldown: Duration,
    /// `invitations.reminders`, ascending, without duplicates, each shorter
    /// than `ttl`. Default `["2d", "5d"]`.
    pub reminders: Vec<Duration>,
    /// `invitations.expiry_schedule`, a `cron` expression with a leading
    /// seconds field (6 or 7 fields), its fields separated by single spaces
    /// (`source()`). Default `0 * * * * *`.
    pub expiry_schedule: cron::Schedule,
    /// `invitations.actor_idle`: how long an idle invitation actor lives.
    /// Default 60s.
    pub actor_idle: Duration,
}

/// At most `count` events per sliding `window` (`5 per 24h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub window: Duration,
}

/// `[delivery]`: email retries and the mailer workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// `delivery.initial_backoff`, at most `max_backoff`. Default 30s.
    pub initial_backoff: Duration,
    /// `delivery.max_backoff`. Default 1h.
    pub max_backoff: Duration,
    /// `delivery.give_up_after`. Default 5d.
    pub give_up_after: Duration,
    /// `delivery.lease`: how long a claimed email may be held before another
    /// worker reclaims it. Default 60s.
    pub lease: Duration,
    /// `delivery.workers`, mailer workers, at least 1. Default
    /// [`DEFAULT_DELIVERY_WORKERS`].
    pub workers: u32,
    /// `delivery.poll_interval`. Default 1s.
    pub poll_interval: Duration,
}

/// `[roles]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolesConfig {
    /// `roles.preset`: `business_manager` (default) or `account_levels`.
    pub preset: RolePreset,
}

/// `[templates]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatesConfig {
    /// `templates.dir`. Default `./templates`.
    pub dir: PathBuf,
    /// `templates.default_locale`, a language tag in canonical case. Default
    /// `en-US`.
    pub default_locale: Locale,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `log.format`. Default `pretty` when stderr is a terminal, else `json`.
    pub format: LogFormat,
    /// `log.filter`, a `tracing` filter (`RUST_LOG` wins over it). Default
    /// `info`.
    pub filter: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people at a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Why the configuration was refused. Each variant displays as one line
/// starting `invalid configuration:` and naming the key at fault (and the
/// environment variable, when the value came from one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not TOML.
    #[error("invalid configuration: {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A key that no part of the daemon reads: usually a typo.
    #[error("invalid configuration: unknown key {key}{}", unknown_hint(key, var.as_deref()))]
    UnknownKey { key: String, var: Option<String> },
    /// A key whose value does not parse or breaks a rule.
    #[error("invalid configuration: {key}{}: {message}", from_var(var.as_deref()))]
    Invalid {
        key: String,
        var: Option<String>,
        message: String,
    },
}

fn from_var(var: Option<&str>) -> String {
    var.map(|var| format!(" (from {var})")).unwrap_or_default()
}

fn unknown_hint(key: &str, var: Option<&str>) -> String {
    match var {
        // A top-level name from the environment is most likely a single
        // underscore where the double one belongs.
        Some(var) if !key.contains('.') => format!(
            " (from {var}; put a double underscore between section and key, \
             like INVITED_SMTP__POOL_SIZE)"
        ),
        _ => from_var(var),
    }
}

impl Config {
    /// Loads the configuration from the file at `path` (if given; a missing
    /// file is an error) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            // Names and values that are not UTF-8 cannot be ours, unless they
            // carry our prefix, in which case silence would hide a setting.
            let Ok(name) = name.into_string() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => env.push((name, value)),
                Err(_) if EnvOverlay::is_ours(&name) => {
                    return Err(ConfigError::Invalid {
                        key: name,
                        var: None,
                        message: "the value is not valid UTF-8".into(),
                    });
                }
                Err(_) => {}
            }
        }
        Config::load_from(path, env)
    }

    /// Loads the configuration from the file at `path` (if given) and the
    /// environment `env`, given explicitly so that tests need not touch the
    /// process environment. `Config::load_from(None, [])` is the default.
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let overlay = EnvOverlay::collect(env);
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            // Read the file ourselves: config-rs would report a missing file
            // without saying which path it looked at.
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
                path: path.to_owned(),
                message: error.to_string(),
            })?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        for (key, (var, value)) in &overlay.values {
            let value: config::Value = match key.as_str() {
                // Parsed separately below: its environment form differs.
                API_KEYS | DISABLE_AFTER => continue,
                REMINDERS | SES_CERT_HOSTS => split_list(value).into(),
                _ => value.as_str().into(),
            };
            builder = builder
                .set_override(key, value)
                .map_err(|_| ConfigError::UnknownKey {
                    key: key.clone(),
                    var: Some(var.clone()),
                })?;
        }
        if let Some(url) = &overlay.database_url {
            builder = builder
                .set_override("database.url", url.as_str())
                .expect("database.url is a valid path");
        }
        let built = builder.build().map_err(|error| match error {
            config::ConfigError::FileParse { cause, .. } => ConfigError::File {
                path: path.map(Path::to_owned).unwrap_or_default(),
                message: cause.to_string().trim_end().to_owned(),
            },
            other => overlay.invalid(".", other.to_string()),
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(built)
            .map_err(|error| overlay.deserialize_error(error))?;
        overlay.convert(raw)
    }
}

/// The configuration with nothing set; the field docs give the values.
impl Default for Config {
    fn default() -> Config {
        // Cannot fail: with no file and no environment only built-in values
        // are used, and `config_defaults` checks them.
        Config::load_from(None, []).expect("the built-in defaults are valid")
    }
}

impl ApiKey {
    /// The key as the configuration would keep it: name and hash.
    pub fn from_plaintext(name: impl Into<String>, key: &str) -> ApiKey {
        ApiKey {
            name: name.into(),
            sha256: ApiKey::digest(key),
            scope: Scope::Write,
        }
    }

    /// The same key with another scope.
    pub fn with_scope(self, scope: Scope) -> ApiKey {
        ApiKey { scope, ..self }
    }

    /// The SHA-256 of a presented key, to compare with [`ApiKey::sha256`].
    pub fn digest(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }

    /// Whether `presented` is this key. Compares hashes in constant time, so
    /// the time taken says nothing about how much of the hash matched.
    pub fn matches(&self, presented: &str) -> bool {
        let presented = ApiKey::digest(presented);
        let difference = self
            .sha256
            .iter()
            .zip(presented.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        difference == 0
    }
}

/// A key's widest scope from its `scopes` (R47): `write` when not given;
/// an empty list or an unknown name is an error.
fn key_scope(scopes: Option<Vec<String>>) -> Result<Scope, String> {
    let Some(scopes) = scopes else {
        return Ok(Scope::Write);
    };
    let mut widest = None;
    for raw in &scopes {
        let scope = Scope::parse(raw.trim()).ok_or_else(|| {
            format!("unknown scope {raw:?}: the scopes are \"read\", \"write\" and \"admin\"")
        })?;
        widest = widest.max(Some(scope));
    }
    widest.ok_or_else(|| "scopes is empty: give at least one of read, write, admin".to_owned())
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("sha256", &render::MASK)
            .field("scope", &self.scope)
            .finish()
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("secret", &render::MASK)
            .finish()
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("subject_prefix", &self.subject_prefix)
            .finish()
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("probe_interval", &self.probe_interval)
            .finish()
    }
}

/// Splits a comma-separated environment value, dropping empty items so that
/// the empty string is the empty list.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The settings found in the environment, kept with the variable each came
/// from so that an error can name it.
struct EnvOverlay {
    /// Dotted key → (variable name, value).
    values: BTreeMap<String, (String, String)>,
    database_url: Option<String>,
}

impl EnvOverlay {
    fn is_ours(name: &str) -> bool {
        name == DATABASE_URL_VAR || strip_prefix_ignore_case(name, ENV_PREFIX).is_some()
    }

    fn collect(env: impl IntoIterator<Item = (String, String)>) -> EnvOverlay {
        let mut values = BTreeMap::new();
        let mut database_url = None;
        for (name, value) in env {
            if name == DATABASE_URL_VAR {
                database_url = Some(value).filter(|url| !url.is_empty());
                continue;
            }
            if name.eq_ignore_ascii_case(CONFIG_PATH_VAR) {
                continue;
            }
            if let Some(rest) = strip_prefix_ignore_case(&name, ENV_PREFIX) {
                let key = rest.to_ascii_lowercase().replace("__", ".");
                values.insert(key, (name, value));
            }
        }
        EnvOverlay {
            values,
            database_url,
        }
    }

    /// The environment variable that supplied `key` (a dotted path, possibly
    /// with a `[n]` index), if one did.
    fn var_for(&self, key: &str) -> Option<String> {
        if self.database_url.is_some() && key == "database.url" {
            return Some(DATABASE_URL_VAR.to_owned());
        }
        self.values.iter().find_map(|(set, (var, _))| {
            let related = key == set
                || key
                    .strip_prefix(set.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
                || set
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('.'));
            related.then(|| var.clone())
        })
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            var: self.var_for(key),
            message: message.into(),
        }
    }

    /// Names the key of a deserialisation failure. With `deny_unknown_fields`
    /// and string-typed raw fields, the failures are unknown keys, a table or
    /// list where a value belongs (or the reverse), and missing names in
    /// `[[api.keys]]`.
    fn deserialize_error(
        &self,
        error: serde_path_to_error::Error<config::ConfigError>,
    ) -> ConfigError {
        let key = error.path().to_string();
        let mut inner = error.into_inner();
        // config-rs wraps the cause once per level of nesting it passes.
        while let config::ConfigError::At { error, .. } = inner {
            inner = *error;
        }
        let message = match inner {
            config::ConfigError::Message(message) if message.starts_with("unknown field") => {
                return ConfigError::UnknownKey {
                    var: self.var_for(&key),
                    key,
                };
            }
            config::ConfigError::Type {
                unexpected,
                expected,
                ..
            } => {
                let expected = if expected.starts_with("struct ") {
                    "a table"
                } else {
                    expected
                };
                format!("expected {expected}, found {unexpected}")
            }
            // config-rs glues the field onto the path without a dot
            // (`api.keys[0]name`), so recover the field from the end.
            config::ConfigError::NotFound(missing) => {
                let field = missing.strip_prefix(key.as_str()).unwrap_or(&missing);
                format!("{} is missing", field.trim_start_matches('.'))
            }
            other => other.to_string(),
        };
        self.invalid(&key, message)
    }

    fn convert(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let database = DatabaseConfig {
            url: self.value(
                "database.url",
                raw.database.url,
                "sqlite://invited.db".into(),
                parse_database_url,
            )?,
            max_connections: self.count(
                "database.max_connections",
                raw.database.max_connections,
                10,
            )?,
        };

        let api = ApiConfig {
            listen: self.value(
                "api.listen",
                raw.api.listen,
                SocketAddr::from(([127, 0, 0, 1], 8080)),
                |text| {
                    text.trim().parse().map_err(|_| {
                        format!(
                            "{text:?} is not a socket address (use 127.0.0.1:8080 or [::]:8080)"
                        )
                    })
                },
            )?,
            keys: self.api_keys(raw.api.keys)?,
            max_body: self.value("api.max_body", raw.api.max_body, 64 * 1024, |text| {
                match parse::parse_byte_size(text)? {
                    0 => Err("must be larger than 0".into()),
                    bytes => Ok(bytes),
                }
            })?,
            request_timeout: self.positive_duration(
                "api.request_timeout",
                raw.api.request_timeout,
                secs(30),
            )?,
        };

        // An empty URL is "no SMTP": `INVITED_SMTP__URL=` is the natural way
        // to switch it off from a container's environment.
        let smtp_url = raw.smtp.url.filter(|url| !url.trim().is_empty());
        let smtp = SmtpConfig {
            url: match smtp_url {
                Some(url) => Some(
                    parse_smtp_url(&url).map_err(|message| self.invalid("smtp.url", message))?,
                ),
                None => None,
            },
            pool_size: self.count("smtp.pool_size", raw.smtp.pool_size, DEFAULT_SMTP_POOL_SIZE)?,
            timeout: self.positive_duration("smtp.timeout", raw.smtp.timeout, secs(30))?,
            probe_interval: self.positive_duration(
                "smtp.probe_interval",
                raw.smtp.probe_interval,
                secs(5),
            )?,
        };

        let mail = MailConfig {
            from: self.value(
                "mail.from",
                raw.mail.from,
                "Invitations <no-reply@localhost>"
                    .parse()
                    .expect("the default sender parses"),
                |text| {
                    // The mailer hands this to lettre, so lettre's parser is the
                    // one that decides what is valid.
                    text.parse::<lettre::message::Mailbox>()
                        .and_then(|_| text.parse::<Sender>())
                        .map_err(|_| {
                            format!(
                                "{text:?} is not a mailbox \
                                 (use Name <address@example.com> or address@example.com)"
                            )
                        })
                },
            )?,
            outbox_dir: self.path("mail.outbox_dir", raw.mail.outbox_dir, "./outbox")?,
            send_rate: self.value(
                "mail.send_rate",
                raw.mail.send_rate,
                SendRate {
                    count: 50,
                    per: secs(1),
                },
                parse::parse_send_rate,
            )?,
            product_name: self.value(
                "mail.product_name",
                raw.mail.product_name,
                "Invitations".into(),
                parse_product_name,
            )?,
            support_address: match raw.mail.support_address.filter(|a| !a.trim().is_empty()) {
                Some(text) => Some(
                    parse_support_address(&text)
                        .map_err(|message| self.invalid("mail.support_address", message))?,
                ),
                None => None,
            },
            reply_to_inviter: self.value(
                "mail.reply_to_inviter",
                raw.mail.reply_to_inviter,
                false,
                parse_bool,
            )?,
            return_path: match raw.mail.return_path.filter(|p| !p.trim().is_empty()) {
                Some(text) => Some(
                    text.parse::<ReturnPath>()
                        .map_err(|message| self.invalid("mail.return_path", message))?,
                ),
                None => None,
            },
            dkim: self.dkim(raw.mail.dkim)?,
        };

        let links = LinksConfig {
            accept_url: self.value(
                "links.accept_url",
                raw.links.accept_url,
                "http://localhost:3000/invitations/accept?token={token}".into(),
                |text| parse_link(text, "{token}"),
            )?,
            decline_url: self.value(
                "links.decline_url",
                raw.links.decline_url,
                "http://localhost:3000/invitations/decline?token={token}".into(),
                |text| parse_link(text, "{token}"),
            )?,
            partner_url: self.value(
                "links.partner_url",
                raw.links.partner_url,
                "http://localhost:3000/partners/invitations/{invitation_id}".into(),
                |text| parse_link(text, "{invitation_id}"),
            )?,
            invite_link_url: self.value(
                "links.invite_link_url",
                raw.links.invite_link_url,
                "http://localhost:3000/join?code={code}".into(),
                |text| parse_link(text, "{code}"),
            )?,
            join_request_url: self.value(
                "links.join_request_url",
                raw.links.join_request_url,
                "http://localhost:3000/join-requests/{join_request_id}".into(),
                |text| parse_link(text, "{join_request_id}"),
            )?,
        };

        let invitations = self.invitations(raw.invitations)?;
        let join_requests = JoinRequestsConfig {
            rate_limit: self.value(
                "join_requests.rate_limit",
                raw.join_requests.rate_limit,
                RateLimit {
                    count: 5,
                    window: hours(24),
                },
                parse::parse_rate_limit,
            )?,
        };
        let delivery = self.delivery(raw.delivery)?;

        let roles = RolesConfig {
            preset: self.value(
                "roles.preset",
                raw.roles.preset,
                RolePreset::BusinessManager,
                |text| {
                    RolePreset::parse(text.trim()).ok_or_else(|| {
                        format!(
                            "{text:?} is not a role preset (use business_manager or account_levels)"
                        )
                    })
                },
            )?,
        };

        let templates = TemplatesConfig {
            dir: self.path("templates.dir", raw.templates.dir, "./templates")?,
            default_locale: self.value(
                "templates.default_locale",
                raw.templates.default_locale,
                Locale::parse("en-US").expect("the default locale parses"),
                |text| {
                    Locale::parse(text.trim()).map_err(|message| format!("{text:?} is {message}"))
                },
            )?,
        };

        let log = LogConfig {
            format: match raw.log.format {
                Some(text) => match text.trim().to_ascii_lowercase().as_str() {
                    "pretty" => LogFormat::Pretty,
                    "json" => LogFormat::Json,
                    _ => {
                        return Err(self.invalid(
                            "log.format",
                            format!("{text:?} is not a log format (use pretty or json)"),
                        ));
                    }
                },
                None if std::io::stderr().is_terminal() => LogFormat::Pretty,
                None => LogFormat::Json,
            },
            filter: self.value("log.filter", raw.log.filter, "info".into(), |text| {
                tracing_subscriber::EnvFilter::try_new(text)
                    .map(|_| text.to_owned())
                    .map_err(|error| format!("{text:?} is not a tracing filter ({error})"))
            })?,
        };

        let (webhooks, file_disable_after) = match raw.webhooks {
            raw::RawWebhooks::List(list) => (self.webhooks("webhooks", list)?, None),
            raw::RawWebhooks::Table(table) => (
                self.webhooks("webhooks.endpoints", table.endpoints)?,
                table.disable_after,
            ),
        };
        let env_disable_after = self.values.get(DISABLE_AFTER).map(|(_, v)| v.clone());
        let webhook_policy = WebhookPolicy {
            disable_after: self.positive_duration(
                DISABLE_AFTER,
                env_disable_after.or(file_disable_after),
                days(5),
            )?,
        };
        let nats_url = raw.nats.url.filter(|url| !url.trim().is_empty());
        let nats = NatsConfig {
            url: match nats_url {
                Some(url) => Some(
                    parse_nats_url(&url).map_err(|message| self.invalid("nats.url", message))?,
                ),
                None => None,
            },
            subject_prefix: self.value(
                "nats.subject_prefix",
                raw.nats.subject_prefix,
                "invited".into(),
                parse_subject_prefix,
            )?,
        };
        let events = self.events(raw.events)?;
        let feedback = FeedbackConfig {
            postmark: self.postmark(raw.feedback.postmark)?,
            sendgrid: self.feedback_key(
                "feedback.sendgrid.public_key",
                raw.feedback.sendgrid.and_then(|s| s.public_key),
                SendgridKey::parse,
            )?,
            mailgun: self.feedback_key(
                "feedback.mailgun.signing_key",
                raw.feedback.mailgun.and_then(|m| m.signing_key),
                HmacSecret::mailgun,
            )?,
            resend: self.feedback_key(
                "feedback.resend.secret",
                raw.feedback.resend.and_then(|r| r.secret),
                HmacSecret::svix,
            )?,
            ses: SesFeedbackConfig {
                allowed_cert_hosts: match raw.feedback.ses.allowed_cert_hosts {
                    None => {
                        vec![CertHost::parse("sns.*.amazonaws.com").expect("the default parses")]
                    }
                    Some(list) => {
                        let mut hosts = Vec::with_capacity(list.len());
                        for (index, text) in list.iter().enumerate() {
                            hosts.push(CertHost::parse(text).map_err(|message| {
                                self.invalid(&format!("{SES_CERT_HOSTS}[{index}]"), message)
                            })?);
                        }
                        hosts
                    }
                },
                plain_http_certs_for_tests: false,
            },
            smtp_listen: match raw.feedback.smtp_listen.filter(|a| !a.trim().is_empty()) {
                Some(text) => Some(text.trim().parse().map_err(|_| {
                    self.invalid(
                        "feedback.smtp_listen",
                        format!("{text:?} is not a socket address (use 0.0.0.0:2525 or [::]:25)"),
                    )
                })?),
                None => None,
            },
        };
        let domains = DomainsConfig {
            resolver: match raw.domains.resolver.filter(|a| !a.trim().is_empty()) {
                Some(text) => Some(text.trim().parse().map_err(|_| {
                    self.invalid(
                        "domains.resolver",
                        format!(
                            "{text:?} is not a socket address (use 192.0.2.53:53 or [2001:db8::53]:53)"
                        ),
                    )
                })?),
                None => None,
            },
        };
        if feedback.smtp_listen.is_some() && mail.return_path.is_none() {
            return Err(self.invalid(
                "feedback.smtp_listen",
                "needs mail.return_path: the listener takes mail for the return path's domain only",
            ));
        }

        Ok(Config {
            database,
            api,
            smtp,
            mail,
            links,
            invitations,
            join_requests,
            delivery,
            roles,
            templates,
            log,
            webhooks,
            webhook_policy,
            nats,
            events,
            feedback,
            domains,
        })
    }

    /// `[feedback.postmark]` (R43 a): both credentials or none.
    fn postmark(
        &self,
        raw: Option<raw::RawPostmark>,
    ) -> Result<Option<PostmarkCredentials>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let set = |v: Option<String>| v.filter(|v| !v.is_empty());
        match (set(raw.username), set(raw.password)) {
            (None, None) => Ok(None),
            (Some(username), Some(password)) => {
                if username.contains(':') {
                    return Err(self.invalid(
                        "feedback.postmark.username",
                        "may not contain `:` (HTTP basic auth splits there)",
                    ));
                }
                Ok(Some(PostmarkCredentials { username, password }))
            }
            (Some(_), None) => Err(self.invalid(
                "feedback.postmark.password",
                "is needed with feedback.postmark.username",
            )),
            (None, Some(_)) => Err(self.invalid(
                "feedback.postmark.username",
                "is needed with feedback.postmark.password",
            )),
        }
    }

    /// One provider's key (R43 a); unset or empty: that provider is off.
    fn feedback_key<T>(
        &self,
        key: &str,
        raw: Option<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match raw.filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .map_err(|message| self.invalid(key, message)),
        }
    }

    /// `[mail.dkim]`: all three keys or none, and a key file that holds a
    /// key the daemon can sign with (R42).
    fn dkim(&self, raw: Option<raw::RawDkim>) -> Result<Option<DkimSettings>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let nonempty = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let (domain, selector, file) = (
            nonempty(raw.domain),
            nonempty(raw.selector),
            nonempty(raw.private_key_file),
        );
        if domain.is_none() && selector.is_none() && file.is_none() {
            return Ok(None);
        }
        let need = |value: Option<String>, key: &str| {
            value.ok_or_else(|| {
                self.invalid(
                    key,
                    "is missing: [mail.dkim] needs domain, selector and private_key_file",
                )
            })
        };
        let domain = need(domain, "mail.dkim.domain")?;
        let selector = need(selector, "mail.dkim.selector")?;
        let file = PathBuf::from(need(file, "mail.dkim.private_key_file")?);
        let label = |text: &str| {
            !text.is_empty()
                && text.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        if !label(&domain) {
            return Err(self.invalid(
                "mail.dkim.domain",
                format!("{domain:?} is not a domain name"),
            ));
        }
        if !label(&selector) {
            return Err(self.invalid(
                "mail.dkim.selector",
                format!("{selector:?} is not a DNS label (letters, digits, - and _)"),
            ));
        }
        let key = DkimKey::read(&file)
            .map_err(|message| self.invalid("mail.dkim.private_key_file", message))?;
        Ok(Some(DkimSettings {
            domain,
            selector,
            private_key_file: file,
            key,
        }))
    }

    /// The configured endpoints, named in errors under `list` (`webhooks` or
    /// `webhooks.endpoints`).
    fn webhooks(
        &self,
        list: &str,
        raw: Vec<raw::RawWebhook>,
    ) -> Result<Vec<WebhookConfig>, ConfigError> {
        let mut webhooks: Vec<WebhookConfig> = Vec::with_capacity(raw.len());
        for (index, entry) in raw.into_iter().enumerate() {
            let key = format!("{list}[{index}]");
            let url = parse_webhook_url(&entry.url)
                .map_err(|message| self.invalid(&format!("{key}.url"), message))?;
            // Never echo the secret.
            if entry.secret.len() < 16 {
                return Err(
                    self.invalid(&format!("{key}.secret"), "must be at least 16 bytes long")
                );
            }
            if webhooks.iter().any(|w| w.url == url) {
                return Err(self.invalid(
                    &format!("{key}.url"),
                    "is configured twice (each URL has one delivery cursor)",
                ));
            }
            webhooks.push(WebhookConfig {
                url,
                secret: entry.secret,
            });
        }
        Ok(webhooks)
    }

    fn events(&self, raw: raw::RawEvents) -> Result<EventsConfig, ConfigError> {
        let events = EventsConfig {
            initial_backoff: self.positive_duration(
                "events.initial_backoff",
                raw.initial_backoff,
                secs(1),
            )?,
            max_backoff: self.positive_duration("events.max_backoff", raw.max_backoff, mins(5))?,
            timeout: self.positive_duration("events.timeout", raw.timeout, secs(10))?,
            lease: self.positive_duration("events.lease", raw.lease, secs(30))?,
            poll_interval: self.positive_duration(
                "events.poll_interval",
                raw.poll_interval,
                secs(5),
            )?,
        };
        if events.initial_backoff > events.max_backoff {
            return Err(self.invalid(
                "events.initial_backoff",
                format!(
                    "{} is longer than events.max_backoff ({})",
                    format_duration(events.initial_backoff),
                    format_duration(events.max_backoff)
                ),
            ));
        }
        // A delivery still running when its lease lapses could overlap with
        // another replica's, and arrive after a later event.
        if events.timeout >= events.lease {
            return Err(self.invalid(
                "events.timeout",
                format!(
                    "{} must be shorter than events.lease ({})",
                    format_duration(events.timeout),
                    format_duration(events.lease)
                ),
            ));
        }
        Ok(events)
    }

    fn invitations(&self, raw: raw::RawInvitations) -> Result<InvitationsConfig, ConfigError> {
        let ttl = self.positive_duration("invitations.ttl", raw.ttl, days(7))?;
        let mut reminders = match raw.reminders {
            None => vec![days(2), days(5)],
            Some(list) => {
                let mut reminders = Vec::with_capacity(list.len());
                for (index, text) in list.iter().enumerate() {
                    let key = format!("{REMINDERS}[{index}]");
                    let reminder = parse_duration(text)
                        .map_err(|error| self.invalid(&key, error.to_string()))?;
                    // A reminder at or after expiry would remind of nothing.
                    if reminder.is_zero() || reminder >= ttl {
                        return Err(self.invalid(
                            &key,
                            format!(
                                "{text:?} must be longer than 0s and shorter than invitations.ttl ({})",
                                format_duration(ttl)
                            ),
                        ));
                    }
                    reminders.push(reminder);
                }
                reminders
            }
        };
        reminders.sort();
        reminders.dedup();
        let max_ttl = self.duration("invitations.max_ttl", raw.max_ttl, days(30))?;
        // Below the shortest lifetime a creation may ask for, no `ttl`
        // would be accepted at all.
        let min_ttl = crate::domain::options::MIN_TTL;
        if max_ttl < min_ttl {
            return Err(self.invalid(
                "invitations.max_ttl",
                format!(
                    "{} must be at least {}",
                    format_duration(max_ttl),
                    format_duration(min_ttl)
                ),
            ));
        }
        Ok(InvitationsConfig {
            ttl,
            max_ttl,
            rate_limit: self.value(
                "invitations.rate_limit",
                raw.rate_limit,
                RateLimit {
                    count: 5,
                    window: hours(24),
                },
                parse::parse_rate_limit,
            )?,
            resend_cooldown: self.duration(
                "invitations.resend_cooldown",
                raw.resend_cooldown,
                mins(10),
            )?,
            reminders,
            expiry_schedule: self.value(
                "invitations.expiry_schedule",
                raw.expiry_schedule,
                parse_schedule("0 * * * * *").expect("the default schedule parses"),
                parse_schedule,
            )?,
            actor_idle: self.positive_duration(
                "invitations.actor_idle",
                raw.actor_idle,
                secs(60),
            )?,
        })
    }

    fn delivery(&self, raw: raw::RawDelivery) -> Result<DeliveryConfig, ConfigError> {
        let delivery = DeliveryConfig {
            initial_backoff: self.positive_duration(
                "delivery.initial_backoff",
                raw.initial_backoff,
                secs(30),
            )?,
            max_backoff: self.positive_duration(
                "delivery.max_backoff",
                raw.max_backoff,
                hours(1),
            )?,
            give_up_after: self.positive_duration(
                "delivery.give_up_after",
                raw.give_up_after,
                days(5),
            )?,
            lease: self.positive_duration("delivery.lease", raw.lease, secs(60))?,
            workers: self.count("delivery.workers", raw.workers, DEFAULT_DELIVERY_WORKERS)?,
            poll_interval: self.positive_duration(
                "delivery.poll_interval",
                raw.poll_interval,
                secs(1),
            )?,
        };
        if delivery.initial_backoff > delivery.max_backoff {
            return Err(self.invalid(
                "delivery.initial_backoff",
                format!(
                    "{} is longer than delivery.max_backoff ({})",
                    format_duration(delivery.initial_backoff),
                    format_duration(delivery.max_backoff)
                ),
            ));
        }
        Ok(delivery)
    }

    /// `api.keys` from the environment when `INVITED_API__KEYS` is set, else
    /// from the file. Plaintext keys are hashed here and go no further.
    fn api_keys(&self, from_file: Option<Vec<RawApiKey>>) -> Result<Vec<ApiKey>, ConfigError> {
        // (key path for errors, name, key material, scopes as written)
        type Entry = (
            String,
            String,
            Result<[u8; 32], String>,
            Option<Vec<String>>,
        );
        let mut entries: Vec<Entry> = Vec::new();
        if let Some((_, value)) = self.values.get(API_KEYS) {
            for (index, pair) in split_list(value).iter().enumerate() {
                // Never echo the pair: it holds the key.
                let (name, key) = pair.split_once(':').ok_or_else(|| {
                    self.invalid(
                        API_KEYS,
                        format!("entry {} is not written name:key", index + 1),
                    )
                })?;
                // `name@scope:key`: a name has no `@`, so the scope is
                // everything after it.
                let (name, scopes) = match name.split_once('@') {
                    Some((name, scope)) => (name, Some(vec![scope.trim().to_owned()])),
                    None => (name, None),
                };
                let material = if key.is_empty() {
                    Err("the key is empty".to_owned())
                } else {
                    Ok(ApiKey::digest(key))
                };
                entries.push((
                    API_KEYS.to_owned(),
                    name.trim().to_owned(),
                    material,
                    scopes,
                ));
            }
        } else {
            for (index, entry) in from_file.into_iter().flatten().enumerate() {
                let material = match (entry.key.as_deref(), entry.sha256.as_deref()) {
                    (Some(""), None) => Err("the key is empty".to_owned()),
                    (Some(key), None) => Ok(ApiKey::digest(key)),
                    (None, Some(hash)) => <[u8; 32] as hex::FromHex>::from_hex(hash.trim())
                        .map_err(|_| "sha256 must be 64 hexadecimal digits".to_owned()),
                    (Some(_), Some(_)) => Err("give either key or sha256, not both".to_owned()),
                    (None, None) => Err("needs a key or a sha256".to_owned()),
                };
                entries.push((
                    format!("{API_KEYS}[{index}]"),
                    entry.name.trim().to_owned(),
                    material,
                    entry.scopes,
                ));
            }
        }

        let mut keys: Vec<ApiKey> = Vec::with_capacity(entries.len());
        for (path, name, material, scopes) in entries {
            let sha256 = material.map_err(|message| self.invalid(&path, message))?;
            let scope = key_scope(scopes).map_err(|message| self.invalid(&path, message))?;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(self.invalid(
                    &path,
                    format!("name {name:?} must be letters, digits, '-', '_' or '.'"),
                ));
            }
            if keys.iter().any(|other| other.name == name) {
                return Err(self.invalid(&path, format!("name {name:?} is used twice")));
            }
            if let Some(other) = keys.iter().find(|other| other.sha256 == sha256) {
                return Err(self.invalid(
                    &path,
                    format!("{name:?} has the same key as {:?}", other.name),
                ));
            }
            keys.push(ApiKey {
                name,
                sha256,
                scope,
            });
        }
        Ok(keys)
    }

    /// The value of `key`: `default` when unset, else `raw` parsed, its error
    /// message prefixed with the key.
    fn value<T>(
        &self,
        key: &str,
        raw: Option<String>,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match raw {
            None => Ok(default),
            Some(text) => parse(&text).map_err(|message| self.invalid(key, message)),
        }
    }

    fn duration(
        &self,
        key: &str,
        raw: Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.value(key, raw, default, |text| {
            parse_duration(text).map_err(|error| error.to_string())
        })
    }

    /// A duration for which zero would make no sense (a timeout, a period).
    fn positive_duration(
        &self,
        key: &str,
        raw: Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.value(key, raw, default, |text| match parse_duration(text) {
            Ok(duration) if duration.is_zero() => Err(format!("{text:?} must be longer than 0s")),
            Ok(duration) => Ok(duration),
            Err(error) => Err(error.to_string()),
        })
    }

    /// A count of things (connections, workers): a whole number, at least 1.
    fn count(&self, key: &str, raw: Option<String>, default: u32) -> Result<u32, ConfigError> {
        self.value(key, raw, default, |text| match text.trim().parse::<u32>() {
            Ok(0) => Err("must be at least 1".into()),
            Ok(count) => Ok(count),
            Err(_) => Err(format!("{text:?} is not a whole number")),
        })
    }

    fn path(&self, key: &str, raw: Option<String>, default: &str) -> Result<PathBuf, ConfigError> {
        self.value(key, raw, PathBuf::from(default), |text| {
            if text.trim().is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(PathBuf::from(text))
            }
        })
    }
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// Error messages never echo a database or SMTP URL unmasked: they may carry a
/// password.
fn parse_database_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|error| format!("not a URL ({error})"))?;
    match url.scheme() {
        "postgres" | "postgresql" | "sqlite" => Ok(text.trim().to_owned()),
        scheme => Err(format!(
            "scheme {scheme:?} is not supported (use sqlite://invited.db or postgres://user@host:5432/database)"
        )),
    }
}

/// Accepts what lettre's `from_url` accepts, so a URL that passes here cannot
/// fail later when the mailer builds its transport.
fn parse_smtp_url(text: &str) -> Result<String, String> {
    let hint = "use smtp://host:port, smtp://host:port?tls=required or smtps://host:port";
    let url =
        url::Url::parse(text.trim()).map_err(|error| format!("not a URL ({error}); {hint}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{:?} has no host; {hint}", redact_url(text.trim())));
    }
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtp", None | Some("required" | "opportunistic")) | ("smtps", _) => {
            Ok(text.trim().to_owned())
        }
        ("smtp", Some(tls)) => Err(format!("tls={tls:?} is not required or opportunistic")),
        (scheme, _) => Err(format!("scheme {scheme:?} is not smtp or smtps; {hint}")),
    }
}

/// An http(s) URL with a host. Errors never echo it unmasked.
fn parse_webhook_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|error| format!("not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{:?} is not an http(s) URL with a host",
            redact_url(text.trim())
        ));
    }
    Ok(text.trim().to_owned())
}

fn parse_nats_url(text: &str) -> Result<String, String> {
    let hint = "use nats://host:4222 or tls://host:4222";
    let url =
        url::Url::parse(text.trim()).map_err(|error| format!("not a URL ({error}); {hint}"))?;
    if !matches!(url.scheme(), "nats" | "tls") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{:?} is not a NATS URL; {hint}",
            redact_url(text.trim())
        ));
    }
    Ok(text.trim().to_owned())
}

/// Dot-separated tokens of letters, digits, `-` and `_`: no wildcard, no
/// empty token, so `<prefix>.events.<type>` is always a valid subject.
fn parse_subject_prefix(text: &str) -> Result<String, String> {
    let text = text.trim();
    let valid = !text.is_empty()
        && text.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        });
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a subject prefix (dot-separated tokens of letters, digits, '-' and '_')"
        ))
    }
}

/// A link of the app's: an http(s) URL with a host, containing
/// `placeholder` (`{token}`, `{invitation_id}`), which delivery replaces.
fn parse_link(text: &str, placeholder: &str) -> Result<String, String> {
    let text = text.trim();
    if !text.contains(placeholder) {
        return Err(format!("{text:?} must contain {placeholder}"));
    }
    // Check the URL a recipient will actually receive.
    let sample = text.replace(placeholder, "0190aaaa-0000-7000-8000-000000000000");
    let url =
        url::Url::parse(&sample).map_err(|error| format!("{text:?} is not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} is not an http(s) URL with a host"));
    }
    Ok(text.to_owned())
}

/// The product's name: one line of 1 to 100 characters, because it is
/// written into every email (R41).
fn parse_product_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(format!(
            "{text:?} is not a product name (1 to 100 characters on one line)"
        ));
    }
    Ok(name.to_owned())
}

/// An email address (no display name): it is shown, and linked with
/// `mailto:`, in every footer.
fn parse_support_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    text.parse::<lettre::Address>()
        .map(|_| text.to_owned())
        .map_err(|_| format!("{text:?} is not an email address (use help@example.com)"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean (use true or false)")),
    }
}

/// The `cron` crate wants a leading seconds field (6 or 7 fields); a crontab
/// habit of 5 fields gets only a caret from it, so say what is wrong here.
fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    if (6..=7).contains(&fields) {
        let normalized = text.split_whitespace().collect::<Vec<_>>().join(" ");
        <cron::Schedule as std::str::FromStr>::from_str(&normalized)
            .map_err(|e| format!("{text:?} is not a cron schedule: {e}"))
    } else {
        Err(format!(
            "{text:?} has {fields} fields; a schedule needs 6 or 7, seconds first (\"0 * * * * *\" is every minute)"
        ))
    }
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3_600)
}

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

#[cfg(test)]
mod tests;
