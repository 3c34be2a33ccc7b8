//! Loading tests: defaults, the three layers, and one clear error per bad key.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// A TOML file in the temp directory, removed on drop.
struct TempToml(PathBuf);

impl TempToml {
    fn new(text: &str) -> TempToml {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "invited-config-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).expect("write temp config");
        TempToml(path)
    }
}

impl Drop for TempToml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(file: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let file = TempToml::new(file);
    Config::load_from(Some(&file.0), env(pairs))
}

fn load_err(file: &str, pairs: &[(&str, &str)]) -> String {
    load(file, pairs)
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn config_defaults() {
    let config = Config::load_from(None, []).unwrap();
    assert_eq!(config.database.url, "sqlite://invited.db");
    assert_eq!(config.database.max_connections, 10);
    assert_eq!(config.api.listen, "127.0.0.1:8080".parse().unwrap());
    assert!(config.api.keys.is_empty());
    assert_eq!(config.api.max_body, 64 * 1024);
    assert_eq!(config.smtp.url, None);
    assert_eq!(config.smtp.pool_size, 16);
    assert_eq!(config.smtp.timeout, secs(30));
    assert_eq!(config.smtp.probe_interval, secs(5));
    assert_eq!(
        config.mail.from.as_str(),
        "Invitations <no-reply@localhost>"
    );
    assert_eq!(config.mail.outbox_dir, PathBuf::from("./outbox"));
    assert_eq!(
        config.mail.send_rate,
        SendRate {
            count: 50,
            per: secs(1)
        }
    );
    assert_eq!(
        config.links.accept_url,
        "http://localhost:3000/invitations/accept?token={token}"
    );
    assert_eq!(
        config.links.decline_url,
        "http://localhost:3000/invitations/decline?token={token}"
    );
    assert_eq!(
        config.links.partner_url,
        "http://localhost:3000/partners/invitations/{invitation_id}"
    );
    assert_eq!(
        config.links.invite_link_url,
        "http://localhost:3000/join?code={code}"
    );
    assert_eq!(config.mail.product_name, "Invitations");
    assert_eq!(config.mail.support_address, None);
    assert!(!config.mail.reply_to_inviter);
    let inv = &config.invitations;
    assert_eq!(inv.ttl, days(7));
    assert_eq!(inv.max_ttl, days(30));
    assert_eq!(
        inv.rate_limit,
        RateLimit {
            count: 5,
            window: hours(24)
        }
    );
    assert_eq!(inv.resend_cooldown, mins(10));
    assert_eq!(inv.reminders, vec![days(2), days(5)]);
    assert_eq!(inv.expiry_schedule.source(), "0 * * * * *");
    assert_eq!(inv.actor_idle, secs(60));
    let del = &config.delivery;
    assert_eq!(del.initial_backoff, secs(30));
    assert_eq!(del.max_backoff, hours(1));
    assert_eq!(del.give_up_after, days(5));
    assert_eq!(del.lease, secs(60));
    assert_eq!(del.workers, 128);
    assert_eq!(del.poll_interval, secs(1));
    assert_eq!(config.roles.preset, RolePreset::BusinessManager);
    assert_eq!(config.templates.dir, PathBuf::from("./templates"));
    assert_eq!(config.templates.default_locale.as_str(), "en-US");
    let want_format = if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    };
    assert_eq!(config.log.format, want_format);
    assert_eq!(config.log.filter, "info");
    assert_eq!(Config::default(), config);
}

#[test]
fn config_file_then_env_then_database_url() {
    let file = r#"
        [database]
        url = "postgres://file@db/invited"
        max_connections = 20

        [api]
        listen = "0.0.0.0:9000"
        max_body = "1MiB"

        [smtp]
        pool_size = 2
        timeout = "10s"

        [invitations]
        ttl = "3d"
        reminders = ["1d"]
        rate_limit = "10 per 1h"

        [roles]
        preset = "account_levels"

        [log]
        format = "json"
    "#;
    // The file alone.
    let config = load(file, &[]).unwrap();
    assert_eq!(config.database.url, "postgres://file@db/invited");
    assert_eq!(config.database.max_connections, 20);
    assert_eq!(config.api.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(config.api.max_body, 1 << 20);
    assert_eq!(config.smtp.pool_size, 2);
    assert_eq!(config.invitations.ttl, days(3));
    assert_eq!(config.invitations.reminders, vec![days(1)]);
    assert_eq!(config.invitations.rate_limit.count, 10);
    assert_eq!(config.roles.preset, RolePreset::AccountLevels);
    assert_eq!(config.log.format, LogFormat::Json);
    // Keys the file leaves out keep their defaults.
    assert_eq!(config.delivery.workers, 128);

    // The environment overrides the file, key by key.
    let config = load(
        file,
        &[
            ("INVITED_DATABASE__URL", "postgres://env@db/invited"),
            ("INVITED_SMTP__POOL_SIZE", "6"),
            ("INVITED_API__LISTEN", "127.0.0.1:7000"),
            ("INVITED_INVITATIONS__REMINDERS", "2d, 1d,2d"),
            ("INVITED_DELIVERY__WORKERS", "3"),
            ("invited_log__format", "pretty"),
            ("INVITED_CONFIG", "/etc/invited.toml"),
            ("HOME", "/root"),
        ],
    )
    .unwrap();
    assert_eq!(config.database.url, "postgres://env@db/invited");
    assert_eq!(config.smtp.pool_size, 6);
    assert_eq!(config.smtp.timeout, secs(10), "from the file");
    assert_eq!(config.api.listen, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(config.invitations.reminders, vec![days(1), days(2)]);
    assert_eq!(config.delivery.workers, 3);
    assert_eq!(config.log.format, LogFormat::Pretty);

    // DATABASE_URL wins over both.
    let config = load(
        file,
        &[
            ("INVITED_DATABASE__URL", "postgres://env@db/invited"),
            ("DATABASE_URL", "postgres://dburl@db/invited"),
        ],
    )
    .unwrap();
    assert_eq!(config.database.url, "postgres://dburl@db/invited");

    // An empty DATABASE_URL counts as unset; an empty reminders list is none.
    let config = load(
        file,
        &[("DATABASE_URL", ""), ("INVITED_INVITATIONS__REMINDERS", "")],
    )
    .unwrap();
    assert_eq!(config.database.url, "postgres://file@db/invited");
    assert!(config.invitations.reminders.is_empty());
}

#[test]
fn config_unknown_key_in_file_is_named() {
    assert_eq!(
        load_err("[smtp]\npool_sise = 4\n", &[]),
        "invalid configuration: unknown key smtp.pool_sise"
    );
    assert_eq!(
        load_err("[smtpp]\npool_size = 4\n", &[]),
        "invalid configuration: unknown key smtpp"
    );
    // Custom role catalogs are not supported yet: refused, not ignored.
    assert_eq!(
        load_err("[roles]\ncatalog = \"roles.toml\"\n", &[]),
        "invalid configuration: unknown key roles.catalog"
    );
    assert_eq!(
        load_err(
            "[[api.keys]]\nname = \"ci\"\nkey = \"k\"\nscope = \"all\"\n",
            &[]
        ),
        "invalid configuration: unknown key api.keys[0].scope"
    );
}

#[test]
fn config_unknown_env_var_is_named() {
    assert_eq!(
        Config::load_from(None, env(&[("INVITED_SMTP__POOL_SISE", "4")]))
            .unwrap_err()
            .to_string(),
        "invalid configuration: unknown key smtp.pool_sise (from INVITED_SMTP__POOL_SISE)"
    );
    let error = Config::load_from(None, env(&[("INVITED_SMTP_POOL_SIZE", "4")])).unwrap_err();
    assert_eq!(
        error,
        ConfigError::UnknownKey {
            key: "smtp_pool_size".into(),
            var: Some("INVITED_SMTP_POOL_SIZE".into()),
        }
    );
    assert!(error.to_string().contains("double underscore"), "{error}");
}

/// R39: a per-invitation `ttl` is at least 1h, so a maximum below it would
/// refuse every one.
#[test]
fn max_ttl_is_at_least_an_hour() {
    assert_eq!(
        load_err("[invitations]\nmax_ttl = \"30m\"\n", &[]),
        "invalid configuration: invitations.max_ttl: 30m must be at least 1h"
    );
    let config = Config::load_from(None, env(&[("INVITED_INVITATIONS__MAX_TTL", "90d")])).unwrap();
    assert_eq!(config.invitations.max_ttl, days(90));
}

#[test]
fn config_bad_duration_names_the_key() {
    assert_eq!(
        load_err("[invitations]\nttl = \"7x\"\n", &[]),
        r#"invalid configuration: invitations.ttl: "7x" is not a duration (use 30s, 10m, 24h, 7d)"#
    );
    assert_eq!(
        Config::load_from(None, env(&[("INVITED_DELIVERY__LEASE", "1 minute")]))
            .unwrap_err()
            .to_string(),
        r#"invalid configuration: delivery.lease (from INVITED_DELIVERY__LEASE): "1 minute" is not a duration (use 30s, 10m, 24h, 7d)"#
    );
    assert_eq!(
        load_err("[invitations]\nreminders = [\"2d\", \"soon\"]\n", &[]),
        r#"invalid configuration: invitations.reminders[1]: "soon" is not a duration (use 30s, 10m, 24h, 7d)"#
    );
}

#[test]
fn config_bad_values_name_their_key() {
    for (file, key) in [
        (
            "[database]\nmax_connections = 0",
            "database.max_connections:",
        ),
        ("[database]\nurl = \"mysql://db/x\"", "database.url:"),
        ("[api]\nlisten = \"localhost\"", "api.listen:"),
        ("[api]\nmax_body = \"lots\"", "api.max_body:"),
        ("[api]\nlisten = { host = \"x\" }", "api.listen:"),
        ("[smtp]\nurl = \"http://mail.example.com\"", "smtp.url:"),
        (
            "[smtp]\nurl = \"smtp://mail.example.com?tls=maybe\"",
            "smtp.url:",
        ),
        ("[smtp]\npool_size = -1", "smtp.pool_size:"),
        ("[smtp]\ntimeout = \"0s\"", "smtp.timeout:"),
        ("[mail]\nfrom = \"nobody\"", "mail.from:"),
        ("[mail]\nsend_rate = \"fast\"", "mail.send_rate:"),
        ("[mail]\noutbox_dir = \"\"", "mail.outbox_dir:"),
        (
            "[links]\naccept_url = \"http://x/accept\"",
            "links.accept_url:",
        ),
        (
            "[links]\naccept_url = \"ftp://x/{token}\"",
            "links.accept_url:",
        ),
        (
            "[links]\ndecline_url = \"https://x/decline\"",
            "links.decline_url:",
        ),
        (
            "[links]\npartner_url = \"https://x/p?token={token}\"",
            "links.partner_url:",
        ),
        (
            "[links]\ninvite_link_url = \"https://x/join?token={token}\"",
            "links.invite_link_url:",
        ),
        ("[mail]\nproduct_name = \"  \"", "mail.product_name:"),
        (
            "[mail]\nsupport_address = \"help\"",
            "mail.support_address:",
        ),
        (
            "[mail]\nreply_to_inviter = \"sometimes\"",
            "mail.reply_to_inviter:",
        ),
        (
            "[invitations]\nrate_limit = \"5/day\"",
            "invitations.rate_limit:",
        ),
        (
            "[invitations]\nreminders = [\"8d\"]",
            "invitations.reminders[0]:",
        ),
        (
            "[invitations]\nreminders = \"2d\"",
            "invitations.reminders:",
        ),
        (
            "[invitations]\nexpiry_schedule = \"*/5 * * * *\"",
            "invitations.expiry_schedule:",
        ),
        (
            "[delivery]\ninitial_backoff = \"2h\"",
            "delivery.initial_backoff:",
        ),
        ("[delivery]\nworkers = \"many\"", "delivery.workers:"),
        ("[roles]\npreset = \"admin\"", "roles.preset:"),
        (
            "[templates]\ndefault_locale = \"english\"",
            "templates.default_locale:",
        ),
        ("[log]\nformat = \"xml\"", "log.format:"),
        ("[log]\nfilter = \"foo=loud\"", "log.filter:"),
        ("[[api.keys]]\nkey = \"k\"", "api.keys[0]:"),
        ("[[api.keys]]\nname = \"ci\"", "api.keys[0]:"),
        (
            "[[api.keys]]\nname = \"ci\"\nsha256 = \"abc\"",
            "api.keys[0]:",
        ),
        ("[[api.keys]]\nname = \"c i\"\nkey = \"k\"", "api.keys[0]:"),
        (
            "[[api.keys]]\nname = \"a\"\nkey = \"k\"\n[[api.keys]]\nname = \"a\"\nkey = \"j\"",
            "api.keys[1]:",
        ),
        (
            "[[api.keys]]\nname = \"a\"\nkey = \"k\"\n[[api.keys]]\nname = \"b\"\nkey = \"k\"",
            "api.keys[1]:",
        ),
    ] {
        let message = load_err(file, &[]);
        let want = format!("invalid configuration: {key}");
        assert!(message.starts_with(&want), "{file:?}: {message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
    // Numbers may be written as TOML numbers or strings.
    let config = load("[smtp]\npool_size = \"7\"\n[api]\nmax_body = 4096\n", &[]).unwrap();
    assert_eq!(config.smtp.pool_size, 7);
    assert_eq!(config.api.max_body, 4096);
}

#[test]
fn config_file_errors_name_the_file() {
    let missing = std::env::temp_dir().join("invited-config-test-does-not-exist.toml");
    let message = Config::load_from(Some(&missing), [])
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("invalid configuration: "), "{message}");
    assert!(
        message.contains("invited-config-test-does-not-exist.toml"),
        "{message}"
    );

    let file = TempToml::new("[smtp\n");
    let message = Config::load_from(Some(&file.0), [])
        .unwrap_err()
        .to_string();
    assert!(message.contains(&*file.0.to_string_lossy()), "{message}");
}

#[test]
fn config_api_keys_keep_only_the_hash() {
    let plaintext = "correct-horse-battery-staple";
    let hash = hex::encode(ApiKey::digest("other-key"));
    let config = load(
        &format!(
            "[[api.keys]]\nname = \"ci\"\nkey = \"{plaintext}\"\n\
             [[api.keys]]\nname = \"ops\"\nsha256 = \"{hash}\"\n"
        ),
        &[],
    )
    .unwrap();
    assert_eq!(config.api.keys.len(), 2);
    assert_eq!(config.api.keys[0].name, "ci");
    assert_eq!(config.api.keys[0].sha256, ApiKey::digest(plaintext));
    assert!(config.api.keys[0].matches(plaintext));
    assert!(!config.api.keys[0].matches("guess"));
    assert!(config.api.keys[1].matches("other-key"));

    let debug = format!("{config:?}");
    assert!(!debug.contains(plaintext), "{debug}");
    assert!(!debug.contains(&hash), "{debug}");
    let redacted = config.redacted_toml();
    assert!(!redacted.contains(plaintext), "{redacted}");
    assert!(!redacted.contains(&hash), "{redacted}");
    assert!(
        redacted.contains(r#"{ name = "ci", sha256 = "***", scopes = ["write"] }"#),
        "{redacted}"
    );

    // The environment form replaces the file's list.
    let config = load(
        &format!("[[api.keys]]\nname = \"ci\"\nkey = \"{plaintext}\"\n"),
        &[("INVITED_API__KEYS", "web:k:with:colons, cli:abc")],
    )
    .unwrap();
    let names: Vec<&str> = config.api.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["web", "cli"]);
    assert!(config.api.keys[0].matches("k:with:colons"));
    assert!(!format!("{config:?}").contains("k:with:colons"));

    // A malformed environment entry is named without echoing the key.
    let message = Config::load_from(None, env(&[("INVITED_API__KEYS", "web:ok,secretvalue")]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "invalid configuration: api.keys (from INVITED_API__KEYS): entry 2 is not written name:key"
    );
}

/// R47: a key's scopes from the file or the environment; `write` without
/// any; the widest one counts; an unknown or empty list is refused.
#[test]
fn config_api_keys_have_scopes() {
    use crate::config::Scope;
    let config = load(
        "[[api.keys]]\nname = \"support\"\nkey = \"a\"\nscopes = [\"read\"]\n\
         [[api.keys]]\nname = \"app\"\nkey = \"b\"\n\
         [[api.keys]]\nname = \"ops\"\nkey = \"c\"\nscopes = [\"read\", \"admin\"]\n",
        &[],
    )
    .unwrap();
    let scopes: Vec<Scope> = config.api.keys.iter().map(|k| k.scope).collect();
    assert_eq!(scopes, [Scope::Read, Scope::Write, Scope::Admin]);
    assert!(
        config
            .redacted_toml()
            .contains(r#"{ name = "support", sha256 = "***", scopes = ["read"] }"#)
    );

    let config = load(
        "",
        &[("INVITED_API__KEYS", "support@read:k:1,app:k2,ops@admin:k3")],
    )
    .unwrap();
    let keys: Vec<(&str, Scope)> = config
        .api
        .keys
        .iter()
        .map(|k| (k.name.as_str(), k.scope))
        .collect();
    assert_eq!(
        keys,
        [
            ("support", Scope::Read),
            ("app", Scope::Write),
            ("ops", Scope::Admin)
        ]
    );
    assert!(config.api.keys[0].matches("k:1"));

    assert_eq!(
        load_err(
            "[[api.keys]]\nname = \"x\"\nkey = \"a\"\nscopes = [\"root\"]\n",
            &[]
        ),
        "invalid configuration: api.keys[0]: unknown scope \"root\": the scopes are \"read\", \"write\" and \"admin\""
    );
    assert!(
        load_err(
            "[[api.keys]]\nname = \"x\"\nkey = \"a\"\nscopes = []\n",
            &[]
        )
        .contains("scopes is empty")
    );
    assert!(load_err("", &[("INVITED_API__KEYS", "x@sudo:k")]).contains("unknown scope \"sudo\""));
}

#[test]
fn config_redacted_output_masks_smtp_password() {
    let config = load(
        "[smtp]\nurl = \"smtps://mailer:hunter2@smtp.example.com:465\"\n",
        &[("DATABASE_URL", "postgres://app:pgsecret@db:5432/invited")],
    )
    .unwrap();
    // The real URL is kept for the mailer...
    assert_eq!(
        config.smtp.url.as_deref(),
        Some("smtps://mailer:hunter2@smtp.example.com:465")
    );
    // ...and shown nowhere.
    let redacted = config.redacted_toml();
    assert!(
        redacted.contains(r#"url = "smtps://mailer:***@smtp.example.com:465""#),
        "{redacted}"
    );
    assert!(
        redacted.contains(r#"url = "postgres://app:***@db:5432/invited""#),
        "{redacted}"
    );
    let debug = format!("{config:?}");
    for secret in ["hunter2", "pgsecret"] {
        assert!(!redacted.contains(secret), "{redacted}");
        assert!(!debug.contains(secret), "{debug}");
    }
    // A bad URL is not echoed either.
    let message = load_err("[smtp]\nurl = \"smtp://user:hunter2@\"\n", &[]);
    assert!(
        message.starts_with("invalid configuration: smtp.url: "),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    // An empty SMTP URL means "no SMTP".
    let config = load("", &[("INVITED_SMTP__URL", "")]).unwrap();
    assert_eq!(config.smtp.url, None);
}

#[test]
fn config_redacted_output_reads_back_as_the_same_configuration() {
    let config = load(
        "[mail]\nsend_rate = \"5/10s\"\n[invitations]\nrate_limit = \"5 per 90m\"\n\
         [smtp]\nurl = \"smtp://relay.example.com:2525?tls=required\"\n\
         [delivery]\ninitial_backoff = \"500ms\"\n",
        &[],
    )
    .unwrap();
    let text = config.redacted_toml();
    let again = load(&text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, config, "{text}");
}

/// `mail.from`, the schedule and the default locale are parsed once into
/// their types, and `check-config` still shows them as written (trimmed),
/// normalised and in canonical case, as before they were typed.
#[test]
fn config_keeps_parsed_values_and_shows_them_as_written() {
    let config = load(
        "[mail]\nfrom = \"  Acme Inc. <a@b.example>  \"\n\
         [invitations]\nexpiry_schedule = \"0   */5 * * * *\"\n\
         [templates]\ndefault_locale = \"fr_ca\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(config.mail.from.domain(), "b.example");
    assert_eq!(
        config.mail.from.mailbox().name.as_deref(),
        Some("Acme Inc.")
    );
    assert_eq!(
        config.templates.default_locale,
        Locale::parse("fr-CA").unwrap()
    );
    assert!(
        config
            .invitations
            .expiry_schedule
            .upcoming(chrono::Utc)
            .next()
            .is_some()
    );
    let text = config.redacted_toml();
    for line in [
        "from = \"Acme Inc. <a@b.example>\"",
        "expiry_schedule = \"0 */5 * * * *\"",
        "default_locale = \"fr-CA\"",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    let again = load(&text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, config, "{text}");
}

#[test]
fn config_reads_webhooks_and_nats_and_masks_their_secrets() {
    let config = load(
        "[nats]\nurl = \"nats://bus:natspass@127.0.0.1:4222\"\nsubject_prefix = \"acme.invited\"\n\
         [events]\ninitial_backoff = \"500ms\"\n\
         [[webhooks]]\nurl = \"https://hooks.example.com/invited\"\nsecret = \"whsec-0123456789abcdef\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(config.webhooks.len(), 1);
    assert_eq!(config.webhooks[0].url, "https://hooks.example.com/invited");
    assert_eq!(config.webhooks[0].secret, "whsec-0123456789abcdef");
    assert_eq!(config.nats.subject_prefix, "acme.invited");
    assert_eq!(config.events.initial_backoff, Duration::from_millis(500));
    let redacted = config.redacted_toml();
    let debug = format!("{config:?}");
    for secret in ["whsec-0123456789abcdef", "natspass"] {
        assert!(!redacted.contains(secret), "{redacted}");
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(redacted.contains("[[webhooks.endpoints]]"), "{redacted}");
    assert_eq!(
        config.webhook_policy.disable_after,
        Duration::from_secs(5 * 86_400)
    );
    // R48: the table form, with `disable_after`; and from the environment.
    let config = load(
        "[webhooks]\ndisable_after = \"2h\"\n\
         [[webhooks.endpoints]]\nurl = \"https://hooks.example.com/a\"\nsecret = \"0123456789abcdef\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        config.webhook_policy.disable_after,
        Duration::from_secs(7200)
    );
    assert_eq!(config.webhooks[0].url, "https://hooks.example.com/a");
    let config = load("", &[("INVITED_WEBHOOKS__DISABLE_AFTER", "1d")]).unwrap();
    assert_eq!(
        config.webhook_policy.disable_after,
        Duration::from_secs(86_400)
    );
    assert!(
        load_err("[webhooks]\ndisable_after = \"0s\"\n", &[])
            .starts_with("invalid configuration: webhooks.disable_after"),
    );

    // Defaults: nothing configured, prefix `invited`.
    let config = Config::default();
    assert!(config.webhooks.is_empty());
    assert_eq!(config.nats.url, None);
    assert_eq!(config.nats.subject_prefix, "invited");
    let config = load("", &[("INVITED_NATS__URL", "nats://127.0.0.1:4222")]).unwrap();
    assert_eq!(config.nats.url.as_deref(), Some("nats://127.0.0.1:4222"));

    for (file, key) in [
        (
            "[[webhooks]]\nurl = \"ftp://x\"\nsecret = \"0123456789abcdef\"\n",
            "webhooks[0].url",
        ),
        (
            "[[webhooks]]\nurl = \"https://x.example\"\nsecret = \"short\"\n",
            "webhooks[0].secret",
        ),
        ("[nats]\nurl = \"http://x:4222\"\n", "nats.url"),
        ("[nats]\nsubject_prefix = \"a.*\"\n", "nats.subject_prefix"),
        (
            "[events]\ntimeout = \"30s\"\nlease = \"30s\"\n",
            "events.timeout",
        ),
    ] {
        let message = load_err(file, &[]);
        assert!(
            message.starts_with(&format!("invalid configuration: {key}")),
            "{message}"
        );
        assert!(!message.contains("short\""), "{message}");
    }
}

/// R42: `check-config` and `serve` load the key file; one that is missing,
/// unreadable or not a usable key stops them with a message naming the key
/// and the file. R43: the return path and the listener.
#[test]
fn config_reads_and_checks_deliverability_settings() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dkim-ed25519-sample.pem"
    );
    let dkim = |file: &str| {
        format!(
            "[mail]\nreturn_path = \"bounces+{{id}}@bounce.example.com\"\n\
             [mail.dkim]\ndomain = \"example.com\"\nselector = \"s1\"\nprivate_key_file = \"{file}\"\n\
             [feedback]\nsmtp_listen = \"127.0.0.1:2525\"\n"
        )
    };
    let config = load(&dkim(sample), &[]).unwrap();
    let settings = config.mail.dkim.as_ref().unwrap();
    assert_eq!(settings.key.algorithm(), "ed25519");
    assert_eq!(settings.selector, "s1");
    assert_eq!(
        config.mail.return_path.as_ref().unwrap().domain(),
        "bounce.example.com"
    );
    assert_eq!(
        config.feedback.smtp_listen,
        Some("127.0.0.1:2525".parse().unwrap())
    );
    let shown = config.redacted_toml();
    assert!(shown.contains("[mail.dkim]"), "{shown}");
    assert!(!shown.contains("BEGIN"), "never the key: {shown}");
    assert!(!format!("{config:?}").contains("PRIVATE"));

    let missing = load_err(&dkim("/nonexistent/dkim.pem"), &[]);
    assert!(
        missing.contains("mail.dkim.private_key_file")
            && missing.contains("cannot read /nonexistent/dkim.pem"),
        "{missing}"
    );
    let not_a_key = TempToml::new("this is no key");
    let err = load_err(&dkim(&not_a_key.0.display().to_string()), &[]);
    assert!(
        err.contains("mail.dkim.private_key_file")
            && err.contains("not an RSA or Ed25519 private key"),
        "{err}"
    );
    let err = load_err("[mail.dkim]\ndomain = \"example.com\"\n", &[]);
    assert!(err.contains("mail.dkim.selector: is missing"), "{err}");
    let err = load_err("[feedback]\nsmtp_listen = \"127.0.0.1:2525\"\n", &[]);
    assert!(
        err.contains("feedback.smtp_listen: needs mail.return_path"),
        "{err}"
    );
    let err = load_err("[mail]\nreturn_path = \"bounces@x.example\"\n", &[]);
    assert!(
        err.contains("mail.return_path") && err.contains("{id}"),
        "{err}"
    );
    let err = load_err("", &[("INVITED_FEEDBACK__SMTP_LISTEN", "nowhere")]);
    assert!(
        err.contains("feedback.smtp_listen (from INVITED_FEEDBACK__SMTP_LISTEN)"),
        "{err}"
    );
    let config = load(
        "",
        &[
            ("INVITED_MAIL__RETURN_PATH", "b+{id}@x.example"),
            ("INVITED_MAIL__DKIM__DOMAIN", "x.example"),
            ("INVITED_MAIL__DKIM__SELECTOR", "k"),
            ("INVITED_MAIL__DKIM__PRIVATE_KEY_FILE", sample),
        ],
    )
    .unwrap();
    assert!(config.mail.dkim.is_some());
}

/// R43 a: the providers' keys are parsed at load, named in errors, and
/// never printed; `allowed_cert_hosts` has its default and an env list.
#[test]
fn feedback_provider_keys() {
    let defaults = load("", &[]).unwrap();
    assert_eq!(defaults.feedback.postmark, None);
    assert_eq!(defaults.feedback.sendgrid, None);
    assert_eq!(
        defaults.feedback.ses.allowed_cert_hosts,
        vec![CertHost::parse("sns.*.amazonaws.com").unwrap()]
    );
    assert!(!defaults.feedback.ses.plain_http_certs_for_tests);

    let file = "[feedback.postmark]\nusername = \"pm\"\npassword = \"pm-secret-1\"\n\
                [feedback.mailgun]\nsigning_key = \"key-mailgun-secret-0123\"\n\
                [feedback.resend]\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n";
    let config = load(file, &[]).unwrap();
    assert_eq!(config.feedback.postmark.as_ref().unwrap().username, "pm");
    let shown = config.redacted_toml();
    let debug = format!("{config:?}");
    for secret in ["pm-secret-1", "key-mailgun-secret-0123", "MfKQ9r8G"] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!debug.contains(secret), "{debug}");
    }

    let hosts = load(
        "",
        &[(
            "INVITED_FEEDBACK__SES__ALLOWED_CERT_HOSTS",
            "sns.*.amazonaws.com, sns.example.test",
        )],
    )
    .unwrap();
    assert_eq!(hosts.feedback.ses.allowed_cert_hosts.len(), 2);
    let off = load("[feedback.ses]\nallowed_cert_hosts = []\n", &[]).unwrap();
    assert!(off.feedback.ses.allowed_cert_hosts.is_empty());

    let err = load_err("[feedback.postmark]\nusername = \"pm\"\n", &[]);
    assert!(err.contains("feedback.postmark.password"), "{err}");
    let err = load_err(
        "",
        &[("INVITED_FEEDBACK__SENDGRID__PUBLIC_KEY", "bm90IGEga2V5")],
    );
    assert!(
        err.contains("feedback.sendgrid.public_key (from INVITED_FEEDBACK__SENDGRID__PUBLIC_KEY)"),
        "{err}"
    );
    let err = load_err("[feedback.resend]\nsecret = \"plain\"\n", &[]);
    assert!(
        err.contains("feedback.resend.secret") && err.contains("whsec_"),
        "{err}"
    );
    let err = load_err("[feedback.ses]\nallowed_cert_hosts = [\"sns/evil\"]\n", &[]);
    assert!(err.contains("feedback.ses.allowed_cert_hosts[0]"), "{err}");
}
