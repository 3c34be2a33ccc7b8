//! Metric names in one place, as `docs/operations.md` lists them. Recording goes
//! through the `metrics` facade; the Prometheus recorder is installed once per
//! process on first use and rendered by `GET /metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it, so several
/// daemons in one test process share it).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets(&buckets)
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed by an embedding program;
        // then our handle renders only what reaches it, which is nothing.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        register_known_series();
        handle
    })
}

/// The label values every counter and histogram can take, known in advance.
/// `http` routes, statuses and locales are open-ended: those series start
/// with their first request or email.
const KINDS: [&str; 3] = ["member", "partner_invite", "partner_request"];
const TRANSITIONS: [&str; 4] = ["accepted", "declined", "cancelled", "expired"];
/// `status` of `invited_join_requests_total` (R51): what happened to a request.
const JOIN_REQUEST_STATUSES: [&str; 4] = ["created", "approved", "denied", "expired"];
const OUTCOMES: [&str; 3] = ["sent", "transient", "permanent"];
const CHANNELS: [&str; 3] = ["email", "webhook", "nats"];
/// What came back about an email (R43): `kind` of `invited_email_feedback_total`.
const FEEDBACK_KINDS: [&str; 5] = [
    "hard_bounce",
    "soft_bounce",
    "complaint",
    "unmatched",
    "malformed",
];
const RESTARTABLE: [&str; 9] = [
    "registry",
    "dispatcher",
    "scheduler",
    "publisher",
    "gauges",
    "commands",
    "feedback",
    "invitation",
    "mailer",
];
/// How a redemption of an invite link ended (R50): `outcome` of
/// `invited_invite_link_redemptions_total`.
pub const LINK_OUTCOMES: [&str; 7] = [
    "redeemed",
    "link_invalid",
    "link_revoked",
    "link_expired",
    "link_exhausted",
    "domain_not_allowed",
    "refused",
];
/// The locale every deployment has (R33's last fallback): `emails_sent`
/// starts at 0 for it; other locales appear with their first email.
const DEFAULT_LOCALE: &str = "en-US";

/// Creates every series with known labels at 0, so that `rate()` and
/// `increase()` see a series from the first scrape after a start, not only
/// after the first increment (a restart would otherwise hide the first
/// events from an alert).
fn register_known_series() {
    for kind in KINDS {
        metrics::counter!("invited_invitations_created_total", "kind" => kind).absolute(0);
        metrics::gauge!("invited_invitations_pending", "kind" => kind).increment(0.0);
        for to in TRANSITIONS {
            metrics::counter!("invited_invitation_transitions_total", "kind" => kind, "to" => to)
                .absolute(0);
        }
    }
    metrics::counter!("invited_rate_limited_total").absolute(0);
    for status in JOIN_REQUEST_STATUSES {
        metrics::counter!("invited_join_requests_total", "status" => status).absolute(0);
    }
    for template in crate::domain::TemplateName::ALL.map(crate::domain::TemplateName::as_str) {
        for outcome in OUTCOMES {
            metrics::counter!("invited_email_attempts_total", "template" => template, "outcome" => outcome)
                .absolute(0);
        }
        let _ = metrics::histogram!("invited_email_send_seconds", "template" => template);
        metrics::counter!("invited_emails_sent_total", "template" => template, "locale" => DEFAULT_LOCALE)
            .absolute(0);
        metrics::counter!("invited_email_failed_total", "template" => template).absolute(0);
    }
    for channel in CHANNELS {
        metrics::gauge!("invited_outbox_depth", "channel" => channel).increment(0.0);
        metrics::gauge!("invited_outbox_oldest_age_seconds", "channel" => channel).increment(0.0);
    }
    for actor in RESTARTABLE {
        metrics::counter!("invited_actor_restarts_total", "actor" => actor).absolute(0);
    }
    for kind in FEEDBACK_KINDS {
        metrics::counter!("invited_email_feedback_total", "kind" => kind, "source" => "smtp")
            .absolute(0);
    }
    metrics::counter!("invited_smtp_config_faults_total").absolute(0);
    metrics::gauge!("invited_smtp_circuit_open").set(0.0);
    for outcome in ["delivered", "failed"] {
        metrics::counter!("invited_webhook_attempts_total", "outcome" => outcome).absolute(0);
    }
    for reason in ["gone", "failing"] {
        metrics::counter!("invited_webhook_endpoints_disabled_total", "reason" => reason)
            .absolute(0);
    }
    metrics::gauge!("invited_suppressions").increment(0.0);
    metrics::counter!("invited_invite_links_created_total").absolute(0);
    metrics::counter!("invited_invite_links_revoked_total").absolute(0);
    for outcome in LINK_OUTCOMES {
        metrics::counter!("invited_invite_link_redemptions_total", "outcome" => outcome)
            .absolute(0);
    }
    for outcome in DOMAIN_VERIFICATIONS {
        metrics::counter!("invited_domain_verifications_total", "outcome" => outcome).absolute(0);
    }
    for action in CONSOLE_ACTIONS {
        metrics::counter!("invited_console_actions_total", "action" => action).absolute(0);
    }
}

/// `outcome` of `invited_domain_verifications_total` (R52).
const DOMAIN_VERIFICATIONS: [&str; 3] = ["verified", "mismatch", "dns_error"];

/// R52: one TXT lookup of a domain claim and how it ended.
pub fn domain_verification(outcome: &'static str) {
    metrics::counter!("invited_domain_verifications_total", "outcome" => outcome).increment(1);
}

/// The console's actions (R49), the label of `invited_console_actions_total`.
const CONSOLE_ACTIONS: [&str; 4] = [
    "retry_email",
    "pause_webhook",
    "resume_webhook",
    "replay_webhook",
];

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    install().render()
}

pub fn http_request(route: &str, status: u16, seconds: f64) {
    let route = route.to_string();
    metrics::counter!("invited_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("invited_http_request_seconds", "route" => route).record(seconds);
}

pub fn invitations_pending(kind: &'static str, n: u64) {
    metrics::gauge!("invited_invitations_pending", "kind" => kind).set(n as f64);
}

pub fn outbox(channel: &'static str, depth: u64, oldest_age_seconds: f64) {
    metrics::gauge!("invited_outbox_depth", "channel" => channel).set(depth as f64);
    metrics::gauge!("invited_outbox_oldest_age_seconds", "channel" => channel)
        .set(oldest_age_seconds);
}

/// One delivery attempt to a runtime webhook endpoint (R48): `delivered` or
/// `failed`.
pub fn webhook_attempt(outcome: &'static str) {
    metrics::counter!("invited_webhook_attempts_total", "outcome" => outcome).increment(1);
}

/// A runtime webhook endpoint disabled by the daemon (R48): `gone` (it
/// answered 410) or `failing` (for `webhooks.disable_after`).
pub fn webhook_endpoint_disabled(reason: &'static str) {
    metrics::counter!("invited_webhook_endpoints_disabled_total", "reason" => reason).increment(1);
}

pub fn db_pool(active: u32, idle: u32) {
    metrics::gauge!("invited_db_pool_connections", "state" => "active").set(active as f64);
    metrics::gauge!("invited_db_pool_connections", "state" => "idle").set(idle as f64);
}

pub fn actors_live(actor: &'static str, n: usize) {
    metrics::gauge!("invited_actors_live", "actor" => actor).set(n as f64);
}

pub fn actor_restarted(actor: &'static str) {
    metrics::counter!("invited_actor_restarts_total", "actor" => actor).increment(1);
}

pub fn invitations_created(kind: &'static str, n: usize) {
    metrics::counter!("invited_invitations_created_total", "kind" => kind).increment(n as u64);
}

pub fn invitation_transition(kind: &'static str, to: &'static str) {
    metrics::counter!("invited_invitation_transitions_total", "kind" => kind, "to" => to)
        .increment(1);
}

/// An invite link created (R50).
pub fn invite_link_created() {
    metrics::counter!("invited_invite_links_created_total").increment(1);
}

/// An invite link revoked (R50).
pub fn invite_link_revoked() {
    metrics::counter!("invited_invite_links_revoked_total").increment(1);
}

/// A redemption of an invite link: `redeemed`, the link's own refusal
/// (`link_*`, `domain_not_allowed`), or `refused` for any other (seats,
/// 2FA, already a member, ...).
pub fn invite_link_redemption(outcome: &'static str) {
    metrics::counter!("invited_invite_link_redemptions_total", "outcome" => outcome).increment(1);
}

/// R51: a join request was created, approved, denied or expired.
pub fn join_request(status: &'static str) {
    metrics::counter!("invited_join_requests_total", "status" => status).increment(1);
}

pub fn rate_limited() {
    metrics::counter!("invited_rate_limited_total").increment(1);
}

pub fn email_attempt(template: &str, outcome: &'static str, seconds: f64) {
    let template = template.to_string();
    metrics::counter!("invited_email_attempts_total", "template" => template.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("invited_email_send_seconds", "template" => template).record(seconds);
}

pub fn email_sent(template: &str, locale: &str) {
    metrics::counter!("invited_emails_sent_total", "template" => template.to_string(), "locale" => locale.to_string())
        .increment(1);
}

pub fn email_failed(template: &str) {
    metrics::counter!("invited_email_failed_total", "template" => template.to_string())
        .increment(1);
}

/// The SMTP server refused the session (authentication, TLS, the sender).
pub fn smtp_config_fault() {
    metrics::counter!("invited_smtp_config_faults_total").increment(1);
}

/// The SMTP circuit breaker opened (mail held) or closed.
pub fn smtp_breaker_open(open: bool) {
    metrics::gauge!("invited_smtp_circuit_open").set(if open { 1.0 } else { 0.0 });
}

/// One bounce or complaint received (R43): `kind` is `hard_bounce`,
/// `soft_bounce`, `complaint`, or `unmatched`/`malformed` for one that was
/// recorded and dropped; `source` is where it came from (`smtp`).
pub fn email_feedback(kind: &'static str, source: &str) {
    metrics::counter!("invited_email_feedback_total", "kind" => kind, "source" => source.to_string())
        .increment(1);
}

/// Things operators did in the console (R49), by action.
pub fn console_action(action: &'static str, n: u64) {
    metrics::counter!("invited_console_actions_total", "action" => action).increment(n);
}

/// Addresses on the suppression list (R45), sampled from the database.
pub fn suppressions(n: u64) {
    metrics::gauge!("invited_suppressions").set(n as f64);
}
