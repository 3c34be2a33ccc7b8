//! The effective configuration written back as TOML for `invited check-config`,
//! with every secret masked: API key hashes and any password inside a URL.
//! The output parses back into the same configuration when it holds no secret.

use std::fmt::Write as _;
use std::path::Path;

use super::parse::{format_byte_size, format_duration};
use super::{Config, LogFormat};

/// What a masked secret prints as.
pub(super) const MASK: &str = "***";

impl Config {
    /// The effective configuration as TOML, secrets masked. API keys show only
    /// their names; URL passwords (userinfo or a `password=` query parameter)
    /// are replaced by `***`.
    pub fn redacted_toml(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        let d = format_duration;

        line("[database]".into());
        line(format!("url = {}", quote(&redact_url(&self.database.url))));
        line(format!(
            "max_connections = {}",
            self.database.max_connections
        ));

        line("\n[api]".into());
        line(format!("listen = {}", quote(&self.api.listen.to_string())));
        line(format!(
            "max_body = {}",
            quote(&format_byte_size(self.api.max_body))
        ));
        line(format!(
            "request_timeout = {}",
            quote(&d(self.api.request_timeout))
        ));
        if self.api.keys.is_empty() {
            line("keys = []".into());
        } else {
            line("keys = [".into());
            for key in &self.api.keys {
                line(format!(
                    "  {{ name = {}, sha256 = {}, scopes = [{}] }},",
                    quote(&key.name),
                    quote(MASK),
                    quote(key.scope.as_str())
                ));
            }
            line("]".into());
        }

        line("\n[smtp]".into());
        match &self.smtp.url {
            Some(url) => line(format!("url = {}", quote(&redact_url(url)))),
            // TOML has no null: say in a comment what the absence means.
            None => line("# url is not set: mail is written to mail.outbox_dir".into()),
        }
        line(format!("pool_size = {}", self.smtp.pool_size));
        line(format!("timeout = {}", quote(&d(self.smtp.timeout))));
        line(format!(
            "probe_interval = {}",
            quote(&d(self.smtp.probe_interval))
        ));

        line("\n[mail]".into());
        line(format!("from = {}", quote(self.mail.from.as_str())));
        line(format!(
            "outbox_dir = {}",
            quote_path(&self.mail.outbox_dir)
        ));
        line(format!(
            "send_rate = {}",
            quote(&self.mail.send_rate.to_string())
        ));
        line(format!("product_name = {}", quote(&self.mail.product_name)));
        match &self.mail.support_address {
            Some(address) => line(format!("support_address = {}", quote(address))),
            None => line("# support_address is not set: the footer has no support line".into()),
        }
        line(format!("reply_to_inviter = {}", self.mail.reply_to_inviter));

        // R42, R43 b: the return path and the DKIM key (its file, never
        // the key).
        match &self.mail.return_path {
            Some(path) => line(format!("return_path = {}", quote(path.as_str()))),
            None => line("# return_path is not set: the envelope sender is mail.from".into()),
        }
        match &self.mail.dkim {
            Some(dkim) => {
                line("\n[mail.dkim]".into());
                line(format!("domain = {}", quote(&dkim.domain)));
                line(format!("selector = {}", quote(&dkim.selector)));
                line(format!(
                    "private_key_file = {}",
                    quote_path(&dkim.private_key_file)
                ));
                line(format!(
                    "# a {} key; publish at {}._domainkey.{}: \"v=DKIM1; k={}; p={}\"",
                    dkim.key.algorithm(),
                    dkim.selector,
                    dkim.domain,
                    dkim.key.algorithm(),
                    dkim.key.public_key()
                ));
            }
            None => line("# no [mail.dkim]: messages are not DKIM-signed".into()),
        }

        line("\n[links]".into());
        line(format!("accept_url = {}", quote(&self.links.accept_url)));
        line(format!("decline_url = {}", quote(&self.links.decline_url)));
        line(format!("partner_url = {}", quote(&self.links.partner_url)));
        line(format!(
            "invite_link_url = {}",
            quote(&self.links.invite_link_url)
        ));
        line(format!(
            "join_request_url = {}",
            quote(&self.links.join_request_url)
        ));

        let inv = &self.invitations;
        line("\n[invitations]".into());
        line(format!("ttl = {}", quote(&d(inv.ttl))));
        line(format!("max_ttl = {}", quote(&d(inv.max_ttl))));
        line(format!(
            "rate_limit = {}",
            quote(&inv.rate_limit.to_string())
        ));
        line(format!(
            "resend_cooldown = {}",
            quote(&d(inv.resend_cooldown))
        ));
        let reminders: Vec<String> = inv.reminders.iter().map(|r| quote(&d(*r))).collect();
        line(format!("reminders = [{}]", reminders.join(", ")));
        line(format!(
            "expiry_schedule = {}",
            quote(inv.expiry_schedule.source())
        ));
        line(format!("actor_idle = {}", quote(&d(inv.actor_idle))));

        line("\n[join_requests]".into());
        line(format!(
            "rate_limit = {}",
            quote(&self.join_requests.rate_limit.to_string())
        ));

        let del = &self.delivery;
        line("\n[delivery]".into());
        line(format!(
            "initial_backoff = {}",
            quote(&d(del.initial_backoff))
        ));
        line(format!("max_backoff = {}", quote(&d(del.max_backoff))));
        line(format!("give_up_after = {}", quote(&d(del.give_up_after))));
        line(format!("lease = {}", quote(&d(del.lease))));
        line(format!("workers = {}", del.workers));
        line(format!("poll_interval = {}", quote(&d(del.poll_interval))));

        line("\n[roles]".into());
        line(format!("preset = {}", quote(self.roles.preset.as_str())));

        line("\n[templates]".into());
        line(format!("dir = {}", quote_path(&self.templates.dir)));
        line(format!(
            "default_locale = {}",
            quote(self.templates.default_locale.as_str())
        ));

        line("\n[log]".into());
        line(format!("format = {}", quote(self.log.format.as_str())));
        line(format!("filter = {}", quote(&self.log.filter)));

        line("\n[nats]".into());
        match &self.nats.url {
            Some(url) => line(format!("url = {}", quote(&redact_url(url)))),
            None => line("# url is not set: no NATS publisher, no command consumer".into()),
        }
        line(format!(
            "subject_prefix = {}",
            quote(&self.nats.subject_prefix)
        ));

        let ev = &self.events;
        line("\n[events]".into());
        line(format!(
            "initial_backoff = {}",
            quote(&d(ev.initial_backoff))
        ));
        line(format!("max_backoff = {}", quote(&d(ev.max_backoff))));
        line(format!("timeout = {}", quote(&d(ev.timeout))));
        line(format!("lease = {}", quote(&d(ev.lease))));
        line(format!("poll_interval = {}", quote(&d(ev.poll_interval))));

        line("\n[feedback]".into());
        match &self.feedback.smtp_listen {
            Some(addr) => line(format!("smtp_listen = {}", quote(&addr.to_string()))),
            None => line("# smtp_listen is not set: no inbound bounce listener".into()),
        }
        let fb = &self.feedback;
        line("\n[feedback.postmark]".into());
        match &fb.postmark {
            Some(p) => {
                line(format!("username = {}", quote(&p.username)));
                line(format!("password = {}", quote(MASK)));
            }
            None => line("# not set: POST /feedback/postmark is 404".into()),
        }
        line("\n[feedback.sendgrid]".into());
        match &fb.sendgrid {
            Some(key) => line(format!("public_key = {}", quote(&key.base64))),
            None => line("# public_key is not set: POST /feedback/sendgrid is 404".into()),
        }
        line("\n[feedback.mailgun]".into());
        match &fb.mailgun {
            Some(_) => line(format!("signing_key = {}", quote(MASK))),
            None => line("# signing_key is not set: POST /feedback/mailgun is 404".into()),
        }
        line("\n[feedback.resend]".into());
        match &fb.resend {
            Some(_) => line(format!("secret = {}", quote(MASK))),
            None => line("# secret is not set: POST /feedback/resend is 404".into()),
        }
        line("\n[feedback.ses]".into());
        let hosts: Vec<String> = fb
            .ses
            .allowed_cert_hosts
            .iter()
            .map(|h| quote(h.as_str()))
            .collect();
        line(format!("allowed_cert_hosts = [{}]", hosts.join(", ")));

        line("\n[domains]".into());
        match &self.domains.resolver {
            Some(addr) => line(format!("resolver = {}", quote(&addr.to_string()))),
            None => line("# resolver is not set: the system's resolvers".into()),
        }

        // The table form (R48): `disable_after` beside the endpoints, which
        // `[[webhooks]]` cannot have.
        line("\n[webhooks]".into());
        line(format!(
            "disable_after = {}",
            quote(&d(self.webhook_policy.disable_after))
        ));
        if self.webhooks.is_empty() {
            line("# no [[webhooks.endpoints]]".into());
        }
        for webhook in &self.webhooks {
            line("\n[[webhooks.endpoints]]".into());
            line(format!("url = {}", quote(&redact_url(&webhook.url))));
            line(format!("secret = {}", quote(MASK)));
        }
        out
    }
}

/// A URL with its password (and any `password=` query parameter) masked.
/// Text that does not parse as a URL is masked whole, since there is no
/// telling where a secret inside it would be.
pub(super) fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return MASK.to_owned();
    };
    if url.password().is_some() {
        // Only fails for URLs that cannot carry credentials, which then have none.
        let _ = url.set_password(Some(MASK));
    }
    if url
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    MASK.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

impl LogFormat {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_redacts_url_passwords() {
        assert_eq!(
            redact_url("smtps://mailer:hunter2@smtp.example.com:465"),
            "smtps://mailer:***@smtp.example.com:465"
        );
        assert_eq!(
            redact_url("postgres://app@db/invited?sslmode=require&password=hunter2"),
            "postgres://app@db/invited?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("smtp://relay.example.com:25"),
            "smtp://relay.example.com:25"
        );
        assert_eq!(redact_url("not a url hunter2"), MASK);
    }

    #[test]
    fn config_quotes_toml_strings() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(quote("x\ny\u{7}"), r#""x\ny\u0007""#);
    }
}
