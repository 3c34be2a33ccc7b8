//! The composition root: builds the store, templates, mailer, use cases, actor
//! tree and HTTP server from one `Config`, and owns the one shutdown path.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

use crate::actors::publisher::{EndpointPublisher, PublisherArgs};
use crate::actors::supervisor::SupervisorMsg;
use crate::actors::task::SupervisedTask;
use crate::actors::{InvitationsHandle, RootSupervisor, SupervisorArgs};
use crate::config::{ApiKey, Config};
use crate::domain::retry::RetryPolicy;
use crate::events::bus::Bus;
use crate::events::publisher::SinkPublisher;
use crate::events::sinks::{NatsSink, Sink, WebhookSink};
use crate::http::{HttpState, router};
use crate::ingress::nats::Commands;
use crate::mail::{Mailer, MailerConfig, Templates};
use crate::service::delivery::Delivery;
use crate::service::{Services, Settings};
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::{ProcessLock, SqliteStore};

/// A running daemon.
pub struct RunningApp {
    pub addr: SocketAddr,
    /// Where the inbound SMTP listener for bounces and complaints listens
    /// (`feedback.smtp_listen`, R43 b), if it runs.
    pub feedback_addr: Option<SocketAddr>,
    pub services: Services,
    pub invitations: InvitationsHandle,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: tokio::task::JoinHandle<()>,
    /// Keeps other processes off an SQLite file until this app is dropped.
    _db_lock: Option<ProcessLock>,
    stop_http: watch::Sender<bool>,
    /// The HTTP server. Not a child of the supervisor: it stops first, and
    /// lets requests in flight finish, before the actors they call stop. It
    /// runs until told to stop (a panic in a handler loses that request's
    /// connection only); should it end anyway, [`RunningApp::stopped`] says
    /// so and `invited serve` exits non-zero.
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// How often the gauges (queue depths, pending invitations, pool) are read.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Reads the gauges that no event updates: what is waiting in the database.
/// `sinks` are the configured event sinks as (cursor name, channel).
async fn sample_gauges(
    store: Arc<dyn crate::store::Store>,
    every: Duration,
    sinks: Vec<(String, &'static str)>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match store.stats().await {
            Ok(stats) => {
                crate::metrics::outbox("email", stats.email_depth, stats.email_oldest_age_seconds);
                for kind in ["member", "partner_invite", "partner_request"] {
                    let n = stats
                        .pending
                        .iter()
                        .find(|(k, _)| k == kind)
                        .map_or(0, |(_, n)| *n);
                    crate::metrics::invitations_pending(kind, n);
                }
                crate::metrics::db_pool(stats.pool_active, stats.pool_idle);
                crate::metrics::suppressions(stats.suppressions);
                // Per channel: the events waiting summed over its sinks, and
                // the oldest wait among them. A cursor of a sink no longer
                // configured is left out; the webhook endpoints of the API
                // (R48) count under `webhook`.
                for channel in ["webhook", "nats"] {
                    let (mut depth, mut age) = (0u64, 0f64);
                    for lag in &stats.events {
                        let endpoint = channel == "webhook" && lag.sink.starts_with("endpoint:");
                        if endpoint || sinks.iter().any(|(n, c)| *c == channel && *n == lag.sink) {
                            depth += lag.depth;
                            age = age.max(lag.oldest_age_seconds);
                        }
                    }
                    crate::metrics::outbox(channel, depth, age);
                }
            }
            Err(error) => tracing::debug!(%error, "could not sample gauges"),
        }
    }
}

/// Outbound events and inbound commands (R17, docs/events.md): one sink per webhook
/// and one for NATS, fed by the publisher, which also runs the webhook
/// endpoints of the API (R48) and so always starts; and, with NATS, the command
/// consumer, which runs commands through the HTTP router as the caller
/// `nats` (so it needs no API key), supervised by the actor tree as a task
/// it knows nothing else about.
async fn events_wiring(
    config: &Config,
    services: &Services,
    invitations: &InvitationsHandle,
) -> anyhow::Result<(Option<PublisherArgs>, Option<SupervisedTask>)> {
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    for webhook in &config.webhooks {
        let sink = WebhookSink::new(&webhook.url, &webhook.secret, config.events.timeout)
            .map_err(|e| anyhow::anyhow!("webhook: {e}"))?;
        sinks.push(Arc::new(sink));
    }
    let mut commands = None;
    if let Some(url) = &config.nats.url {
        let bus = Bus::connect(url, &config.nats.subject_prefix, config.events.timeout)
            .await
            .context("connecting to NATS")?;
        sinks.push(Arc::new(NatsSink::new(bus.clone())));
        let state = HttpState {
            services: services.clone(),
            invitations: invitations.clone(),
            api_keys: Arc::new(Vec::new()),
            max_body: config.api.max_body,
            request_timeout: config.api.request_timeout,
            feedback: Arc::default(),
        };
        let consumer = Arc::new(Commands {
            bus,
            router: router(state),
            store: services.store.clone(),
            max_body: config.api.max_body,
        });
        commands = Some(SupervisedTask::new("commands", move || {
            Box::pin(consumer.clone().run())
        }));
    }
    // Always: endpoints may be added through the API at any time (R48).
    let owner = uuid::Uuid::now_v7();
    let retry = RetryPolicy {
        initial_backoff: config.events.initial_backoff,
        max_backoff: config.events.max_backoff,
        give_up_after: Duration::MAX,
    };
    let lease = config.events.lease;
    let timeout = config.events.timeout;
    let disable_after = config.webhook_policy.disable_after;
    let store = services.store.clone();
    let publisher_of = {
        let store = store.clone();
        move |sink: Arc<dyn Sink>| {
            Arc::new(SinkPublisher {
                store: store.clone(),
                sink,
                owner,
                lease,
                retry,
                batch: 100,
                disable_after,
            })
        }
    };
    let endpoints: EndpointPublisher = {
        let publisher_of = publisher_of.clone();
        Arc::new(
            move |endpoint| match WebhookSink::for_endpoint(endpoint, timeout) {
                Ok(sink) => Some(publisher_of(Arc::new(sink))),
                Err(error) => {
                    tracing::warn!(endpoint = %endpoint.id, %error, "cannot deliver to a webhook endpoint");
                    None
                }
            },
        )
    };
    let publisher = PublisherArgs {
        store,
        sinks: sinks.into_iter().map(publisher_of).collect(),
        endpoints,
        poll_interval: config.events.poll_interval,
    };
    Ok((Some(publisher), commands))
}

/// The inbound SMTP listener for bounces and complaints (R43 b), when
/// `feedback.smtp_listen` is set: bound here, so a port in use stops the
/// start, and served by a task the actor tree supervises (a restart serves
/// the same socket).
fn feedback_wiring(
    config: &Config,
    services: &Services,
) -> anyhow::Result<(Option<SupervisedTask>, Option<SocketAddr>)> {
    let (Some(listen), Some(return_path)) = (config.feedback.smtp_listen, &config.mail.return_path)
    else {
        return Ok((None, None));
    };
    let socket = std::net::TcpListener::bind(listen)
        .with_context(|| format!("binding feedback.smtp_listen {listen}"))?;
    let addr = socket.local_addr()?;
    let listener = Arc::new(crate::ingress::smtp::FeedbackListener {
        services: services.clone(),
        return_path: return_path.clone(),
    });
    tracing::info!(%addr, domain = return_path.domain(), "listening for bounces and complaints over SMTP");
    let task = SupervisedTask::new("feedback", move || {
        let listener = listener.clone();
        match socket.try_clone() {
            Ok(socket) => Box::pin(listener.run(socket)),
            Err(error) => Box::pin(async move {
                panic!("the feedback listener's socket cannot be shared: {error}")
            }),
        }
    });
    Ok((Some(task), Some(addr)))
}

/// Applies the migrations this build ships (`invited migrate`).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let (store, _lock) = open_store(config).await?;
    store.close().await;
    Ok(())
}

/// The store `database.url` names, created if missing and migrated: the
/// embedded SQLite adapter for `sqlite:` URLs (with the lock that keeps a
/// second process off the file), Postgres otherwise.
async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Option<ProcessLock>)> {
    let url = &config.database.url;
    if url.starts_with("sqlite:") {
        let lock = SqliteStore::lock_file(url)?;
        let store = SqliteStore::connect(url, config.database.max_connections).await?;
        store
            .migrate()
            .await
            .with_context(|| format!("opening the SQLite database {url}"))?;
        tracing::info!(
            database = %crate::store::sqlite::describe(url),
            "embedded SQLite database (one process only; several replicas need PostgreSQL)"
        );
        return Ok((Arc::new(store), Some(lock)));
    }
    PgStore::ensure_database(url)
        .await
        .context("connecting to the database")?;
    let store = PgStore::connect(url, config.database.max_connections).await?;
    // Every replica may run this: sqlx takes an advisory lock around it.
    store.migrate().await.context("applying migrations")?;
    Ok((Arc::new(store), None))
}

impl RunningApp {
    /// Starts everything and binds the HTTP listener (port 0 picks a free one).
    pub async fn start(config: &Config, api_keys: Vec<ApiKey>) -> anyhow::Result<RunningApp> {
        let (store, db_lock) = open_store(config).await?;
        let settings = Settings::from_config(config)?;
        let services = Services::new(store, settings)
            .await
            .context("reading the token key")?;

        let templates = Templates::load_or_embedded(
            &config.templates.dir,
            config.templates.default_locale.as_str(),
        )
        .with_context(|| format!("loading templates from {}", config.templates.dir.display()))?;
        // The same check as `invited templates check`: a template it rejects
        // would fail every email of its locale, so the process does not start.
        templates
            .check_report()
            .map_err(|report| anyhow::anyhow!("the templates do not pass the check:\n{report}"))?;
        if templates.is_embedded() {
            tracing::info!(
                "templates.dir {} does not exist: using the templates built into the binary",
                config.templates.dir.display()
            );
        }
        let mailer = Mailer::new(MailerConfig {
            smtp_url: config.smtp.url.clone(),
            pool_size: config.smtp.pool_size,
            timeout: config.smtp.timeout,
            probe_interval: config.smtp.probe_interval,
            outbox_dir: config.mail.outbox_dir.clone(),
        })?;
        if config.smtp.url.is_none() {
            tracing::info!(
                outbox_dir = %config.mail.outbox_dir.display(),
                "no SMTP server configured (smtp.url): every email is written as an .eml file into {}",
                config.mail.outbox_dir.display()
            );
        }
        tracing::info!(target = %mailer.target(), "mail transport ready");
        let delivery = Arc::new(Delivery {
            services: services.clone(),
            templates: Arc::new(templates),
            mailer,
            from: config.mail.from.clone(),
            return_path: config.mail.return_path.clone(),
            dkim: config.mail.dkim.clone().map(crate::mail::DkimSigner::new),
            accept_url: config.links.accept_url.clone(),
            decline_url: config.links.decline_url.clone(),
            partner_url: config.links.partner_url.clone(),
            brand: config.mail.brand(),
            reply_to_inviter: config.mail.reply_to_inviter,
            retry: RetryPolicy {
                initial_backoff: config.delivery.initial_backoff,
                max_backoff: config.delivery.max_backoff,
                give_up_after: config.delivery.give_up_after,
            },
            send_rate: Arc::new(crate::service::delivery::send_limiter(
                config.mail.send_rate,
            )),
            // Its lanes run as a task of the dispatcher.
            recorder: crate::service::delivery::Recorder::new(services.clone()),
        });
        let schedule = config.invitations.expiry_schedule.clone();

        let registry_name = format!("invited.registry.{}", uuid::Uuid::now_v7());
        let invitations = InvitationsHandle::new(registry_name.clone());
        let (publisher, commands) = events_wiring(config, &services, &invitations).await?;
        let (feedback, feedback_addr) = feedback_wiring(config, &services)?;
        let sinks: Vec<(String, &'static str)> = publisher
            .iter()
            .flat_map(|p| &p.sinks)
            .map(|s| (s.sink.name().to_string(), s.sink.channel()))
            .collect();
        crate::metrics::install();
        let gauges = {
            let store = services.store.clone();
            SupervisedTask::new("gauges", move || {
                Box::pin(sample_gauges(store.clone(), SAMPLE_EVERY, sinks.clone()))
            })
        };
        let (supervisor, supervisor_handle) = Actor::spawn(
            None,
            RootSupervisor,
            SupervisorArgs {
                services: services.clone(),
                delivery,
                registry_name,
                actor_idle: config.invitations.actor_idle,
                workers: config.delivery.workers as usize,
                lease: config.delivery.lease,
                poll_interval: config.delivery.poll_interval,
                schedule,
                publisher,
                tasks: std::iter::once(gauges)
                    .chain(commands)
                    .chain(feedback)
                    .collect(),
            }
            .tree(),
        )
        .await
        .context("starting the actor tree")?;
        let supervisor_done = tokio::spawn(async move {
            let _ = supervisor_handle.await;
        });

        let state = HttpState {
            services: services.clone(),
            invitations: invitations.clone(),
            api_keys: Arc::new(api_keys),
            max_body: config.api.max_body,
            request_timeout: config.api.request_timeout,
            feedback: Arc::new(crate::http::feedback_providers(&config.feedback)),
        };
        let listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .with_context(|| format!("binding {}", config.api.listen))?;
        let addr = listener.local_addr()?;
        let (stop_http, mut stopped) = watch::channel(false);
        let server = tokio::spawn(async move {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(%addr, "invited is serving");
        Ok(RunningApp {
            addr,
            feedback_addr,
            services,
            invitations,
            supervisor,
            supervisor_done,
            _db_lock: db_lock,
            stop_http,
            server,
        })
    }

    /// Resolves when the actor tree stopped by itself (restart budget
    /// spent), or the HTTP server ended without being told to.
    pub async fn stopped(&mut self) {
        tokio::select! {
            _ = &mut self.supervisor_done => {}
            ended = &mut self.server => {
                tracing::error!(?ended, "the HTTP server stopped by itself");
            }
        }
    }

    /// The one shutdown path: stop taking requests, let requests in flight
    /// finish, then stop the actors (a send cut off here is retried from its
    /// lease by the next process).
    ///
    /// `deadline` bounds the whole of it, whatever the database does
    /// (issue 12, item 1: closing a half-open connection waited for minutes);
    /// closing the database gets what is left, at least a second.
    pub async fn shutdown(self, deadline: Duration) {
        let end = tokio::time::Instant::now() + deadline;
        let _ = self.stop_http.send(true);
        if !self.server.is_finished() {
            let _ = tokio::time::timeout_at(end, self.server).await;
        }
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let _ = self
            .supervisor
            .stop_and_wait(Some("shutdown".into()), Some(left))
            .await;
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let closing = self.services.store.close();
        if tokio::time::timeout(left.max(Duration::from_secs(1)), closing)
            .await
            .is_err()
        {
            tracing::warn!("the database connections did not close in time; leaving them");
        }
    }
}

/// Loads the configuration for a command, naming the file in errors.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}
