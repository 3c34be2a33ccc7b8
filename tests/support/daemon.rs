//! Starts the real daemon in-process on port 0, against a fresh database (a
//! Postgres one from `#[sqlx::test]`, or a [`Db`] of either store) and a real
//! SMTP sink on 127.0.0.1, and talks to it over HTTP like an app would.

use std::time::Duration;

use invited::app::RunningApp;
use invited::config::{ApiKey, Config, Scope};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use super::db::Db;
use super::smtp_sink::SmtpSink;

/// What a daemon can be started on: a `#[sqlx::test]` pool or a [`Db`].
pub trait DaemonDb {
    fn database_url(&self) -> String;
}

impl DaemonDb for PgPool {
    fn database_url(&self) -> String {
        database_url(self)
    }
}

impl DaemonDb for Db {
    fn database_url(&self) -> String {
        self.url()
    }
}

pub const API_KEY: &str = "test-key-0123456789abcdef";
/// A key with the `read` scope only (R47), named `support`.
pub const READ_KEY: &str = "read-key-0123456789abcdef";
/// A key with the `admin` scope (R47), named `operator`.
pub const ADMIN_KEY: &str = "admin-key-0123456789abcdef";
pub const ACCEPT_URL: &str = "https://app.example.test/invitations/accept?token={token}";

pub struct TestDaemon {
    pub app: Option<RunningApp>,
    pub base: String,
    pub sink: SmtpSink,
    pub db_url: String,
    client: reqwest::Client,
}

/// The URL of the database a `#[sqlx::test]` pool points at.
pub fn database_url(pool: &PgPool) -> String {
    let db = pool
        .connect_options()
        .get_database()
        .unwrap_or("postgres")
        .to_string();
    format!("postgres://postgres@127.0.0.1:5432/{db}")
}

/// A configuration for tests: port 0, the sink, fast polling, real templates.
pub fn test_config(db_url: &str, smtp_url: &str) -> Config {
    let mut config = Config::default();
    config.database.url = db_url.to_string();
    config.database.max_connections = 5;
    config.api.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp.url = Some(smtp_url.to_string());
    config.smtp.timeout = Duration::from_secs(5);
    config.links.accept_url = ACCEPT_URL.to_string();
    config.templates.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into();
    config.delivery.poll_interval = Duration::from_millis(200);
    config.delivery.initial_backoff = Duration::from_secs(1);
    config.delivery.max_backoff = Duration::from_secs(2);
    // Tests run the chores themselves (`Services::run_chores`) and count
    // what they did; the default sweep, every minute at second 0, would
    // take a share whenever a test crosses a minute. A test that wants the
    // schedule sets one.
    config.invitations.expiry_schedule = "0 0 0 1 1 * 2099".parse().expect("a schedule");
    config.mail.from = "Invitations <pinbot@info.example.test>"
        .parse()
        .expect("a sender");
    config
}

impl TestDaemon {
    pub async fn start(pool: &(impl DaemonDb + ?Sized)) -> TestDaemon {
        TestDaemon::start_with(pool, SmtpSink::start(), |_| {}).await
    }

    pub async fn start_with(
        pool: &(impl DaemonDb + ?Sized),
        sink: SmtpSink,
        configure: impl FnOnce(&mut Config),
    ) -> TestDaemon {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Warnings and errors show in a failing test's output (RUST_LOG wins).
        invited::telemetry::init(invited::config::LogFormat::Pretty, "warn");
        let db_url = pool.database_url();
        let mut config = test_config(&db_url, &sink.url());
        configure(&mut config);
        let keys = vec![
            ApiKey::from_plaintext("test", API_KEY),
            ApiKey::from_plaintext("support", READ_KEY).with_scope(Scope::Read),
            ApiKey::from_plaintext("operator", ADMIN_KEY).with_scope(Scope::Admin),
        ];
        let app = RunningApp::start(&config, keys)
            .await
            .expect("the daemon starts");
        let base = format!("http://{}", app.addr);
        TestDaemon {
            app: Some(app),
            base,
            sink,
            db_url,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        self.send_as(API_KEY, req).await
    }

    /// [`TestDaemon::send`] with another API key.
    pub async fn send_as(&self, key: &str, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.bearer_auth(key).send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.put(self.url(path)).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.patch(self.url(path)).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.delete(self.url(path))).await
    }

    /// Polls GET `path` until `check` holds (delivery is asynchronous), at
    /// most `timeout`; returns the body that satisfied it.
    pub async fn eventually(
        &self,
        timeout: Duration,
        path: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        super::wait::eventually(timeout, &format!("a condition on {path}"), || async {
            let (status, body) = self.get(path).await;
            if status == StatusCode::OK && check(&body) {
                Ok(body)
            } else {
                Err(format!("{status} {body}"))
            }
        })
        .await
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Registers a user with the daemon.
    pub async fn user(&self, id: &str, email: &str, locale: &str) {
        let (status, body) = self
            .put(
                &format!("/v1/users/{id}"),
                serde_json::json!({"email": email, "display_name": id, "locale": locale}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "PUT user {id}: {body}");
    }

    /// Creates a business owned by `owner` and returns its internal id.
    pub async fn business(&self, name: &str, owner: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/businesses",
                serde_json::json!({"name": name, "owner_user_id": owner}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "POST business: {body}");
        body["id"].as_str().expect("business id").to_string()
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// Pulls the token out of an accept link in an email body.
pub fn token_from(body: &str) -> String {
    let start = body.find("token=").expect("an accept link with a token") + "token=".len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}
