//! The benchmark of issue 7: delivery, the invitation lifecycle over HTTP,
//! the operator console beside the API's reads (issue 15), memory, and the
//! ceilings of the machine (Postgres commits, the bare SMTP client, and
//! `pgbench` doing a lifecycle's writes, issue 17), in one run, against a
//! real Postgres and a real SMTP sink on 127.0.0.1 that this binary starts
//! itself.
//!
//! `cargo run --release --bin invited-bench -- --help`

#[path = "bench/console.rs"]
mod console;
#[path = "bench/pgbench.rs"]
mod pgbench;
#[path = "bench/sink.rs"]
mod sink;
#[path = "bench/util.rs"]
mod util;
#[path = "bench/versus.rs"]
mod versus;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt as _;
use invited::app::RunningApp;
use invited::config::{ApiKey, Config, Scope, SendRate};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use sink::{Mode, Sink};
use util::{rss_kib, summary};

/// The daemon's allocator (see `src/main.rs`): the daemon runs in this
/// process, so it is measured with the allocator it ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const API_KEY: &str = "bench-key-0123456789abcdef";
/// An `admin` key (R47), for what the console part sets up through the API
/// (webhook endpoints).
const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";
const ACCEPT_URL: &str = "https://app.example.test/invitations/accept?token={token}";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "invited-bench",
    about = "Benchmark of invited: delivery, lifecycle over HTTP, memory, and the machine's ceiling (issue 7)"
)]
struct Args {
    /// The benchmark database; it is dropped and created again (several times) by each run.
    /// `sslmode=disable`: on loopback, TLS (which sqlx and Debian's Postgres
    /// otherwise negotiate) only costs CPU on both ends.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/invited_bench?sslmode=disable"
    )]
    database_url: String,
    /// Emails queued at once for the delivery benchmark.
    #[arg(long, default_value_t = 10_000)]
    emails: u64,
    /// Concurrent HTTP clients (and connections of the Postgres ceiling).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Lifecycles (create, email, accept, accepted email) over all clients.
    #[arg(long, default_value_t = 10_000)]
    lifecycles: u64,
    /// Creates per second of the paced create run.
    #[arg(long, default_value_t = 500)]
    paced_rate: u64,
    /// Seconds of the paced create run.
    #[arg(long, default_value_t = 10)]
    paced_secs: u64,
    /// Pending invitation counts at which resident memory is read.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100_000u64, 1_000_000])]
    pending: Vec<u64>,
    /// Live invitation actors spawned to measure memory per actor.
    #[arg(long, default_value_t = 10_000)]
    actors: u64,
    /// `delivery.workers` of the daemon: emails claimed and not yet recorded
    /// at once (waiting for a worker, sending, or waiting for the commit of
    /// the outcome), and the mailer workers.
    #[arg(long, default_value_t = 256)]
    workers: u32,
    /// `smtp.pool_size` of the daemon (and the bare client's connections).
    #[arg(long, default_value_t = 16)]
    smtp_pool: u32,
    /// `database.max_connections` of the daemon.
    #[arg(long, default_value_t = 40)]
    db_connections: u32,
    /// Seconds of the Postgres insert ceiling.
    #[arg(long, default_value_t = 5)]
    ceiling_secs: u64,
    /// Seconds of the pgbench lifecycle ceiling (part 5).
    #[arg(long, default_value_t = 10)]
    pgbench_secs: u64,
    /// The pgbench script of a lifecycle's writes (part 5).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-lifecycle.pgbench"))]
    pgbench_script: std::path::PathBuf,
    /// Console part (2b): rounds one request at a time (each round asks
    /// every page and every API route once).
    #[arg(long, default_value_t = 200)]
    console_rounds: usize,
    /// Console part: clients asking at once.
    #[arg(long, default_value_t = 8)]
    console_clients: usize,
    /// Console part: rounds of each of those clients.
    #[arg(long, default_value_t = 25)]
    console_concurrent_rounds: usize,
    /// Console part: failed emails added for the failed-deliveries page.
    #[arg(long, default_value_t = 500)]
    console_failed: u64,
    /// Console part: suppressed addresses added for the suppressions page.
    #[arg(long, default_value_t = 1_000)]
    console_suppressions: u64,
    /// Small sizes everywhere (a smoke run of a minute or so).
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    skip_delivery: bool,
    #[arg(long)]
    skip_lifecycle: bool,
    #[arg(long)]
    skip_memory: bool,
    #[arg(long)]
    skip_ceiling: bool,
    /// Skip the console part (2b; it runs inside the lifecycle part).
    #[arg(long)]
    skip_console: bool,
    /// Skip the pgbench lifecycle ceiling (part 5).
    #[arg(long)]
    skip_pgbench: bool,
    /// Experiment, not a configuration: disable the `events_commit_order`
    /// trigger in the benchmark database, to measure what the commit
    /// numbering of events costs. Event sinks would then miss events; the
    /// benchmark configures none.
    #[arg(long)]
    experiment_no_commit_order: bool,
    /// Only the side-by-side figures of issue 17 (`scripts/bench-compare`
    /// runs them beside graphile-worker): the end to end burst and the paced
    /// creates, sending to the SMTP sink at this `host:port`.
    #[arg(long, value_name = "HOST:PORT")]
    versus_sink: Option<String>,
    /// With `--versus-sink`: which figure, `burst` or `paced`.
    #[arg(long, default_value = "burst", value_parser = ["burst", "paced"])]
    versus: String,
    /// With `--versus-sink`: invitations of the burst (in requests of 100).
    #[arg(long, default_value_t = 10_000)]
    versus_burst: u64,
    /// With `--versus-sink`: `delivery.workers` instead of its default (to
    /// show what a default costs; the figures use the defaults).
    #[arg(long)]
    versus_workers: Option<u32>,
    /// With `--versus-sink`: `smtp.pool_size` instead of its default.
    #[arg(long)]
    versus_smtp_pool: Option<u32>,
    /// Internal: run only the daemon, driven over stdin (memory benchmark).
    #[arg(long, hide = true)]
    child_daemon: bool,
    /// Internal: the sink of the child daemon.
    #[arg(long, hide = true)]
    smtp_url: Option<String>,
}

impl Args {
    fn apply_quick(&mut self) {
        if self.quick {
            self.emails = 1_000;
            self.lifecycles = 500;
            self.paced_secs = 2;
            self.pending = vec![10_000, 100_000];
            self.actors = 1_000;
            self.ceiling_secs = 2;
            self.pgbench_secs = 3;
            self.console_rounds = 20;
            self.console_concurrent_rounds = 3;
            self.console_failed = 50;
            self.console_suppressions = 100;
        }
    }
}

fn bench_config(args: &Args, smtp_url: &str, actor_idle: Duration) -> Config {
    let mut config = Config::default();
    config.database.url = args.database_url.clone();
    config.database.max_connections = args.db_connections;
    config.api.listen = "127.0.0.1:0".parse().expect("an address");
    config.smtp.url = Some(smtp_url.to_string());
    config.smtp.pool_size = args.smtp_pool;
    config.smtp.timeout = Duration::from_secs(10);
    config.mail.send_rate = SendRate {
        count: 1_000_000,
        per: Duration::from_secs(1),
    };
    config.mail.from = "Invitations <bench@bench.example>"
        .parse()
        .expect("a sender");
    config.delivery.workers = args.workers;
    config.links.accept_url = ACCEPT_URL.to_string();
    config.templates.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into();
    config.invitations.actor_idle = actor_idle;
    config
}

fn print_config(config: &Config) {
    println!(
        "daemon configuration: delivery.workers={} smtp.pool_size={} mail.send_rate={}/{:?} \
         database.max_connections={} delivery.poll_interval={:?} delivery.lease={:?} \
         invitations.rate_limit={} per {:?} invitations.actor_idle={:?} log.filter=warn",
        config.delivery.workers,
        config.smtp.pool_size,
        config.mail.send_rate.count,
        config.mail.send_rate.per,
        config.database.max_connections,
        config.delivery.poll_interval,
        config.delivery.lease,
        config.invitations.rate_limit.count,
        config.invitations.rate_limit.window,
        config.invitations.actor_idle,
    );
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(addr: std::net::SocketAddr) -> Api {
        Api {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .tcp_nodelay(true)
                .build()
                .expect("an HTTP client"),
            base: format!("http://{addr}"),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let resp = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok(value)
    }

    async fn business(&self, name: &str, owner: &str) -> anyhow::Result<String> {
        let body = self
            .send(
                reqwest::Method::POST,
                "/v1/businesses",
                json!({"name": name, "owner_user_id": owner}),
            )
            .await?;
        Ok(body["id"].as_str().context("business id")?.to_string())
    }

    async fn invite(&self, business: &str, actor: &str, email: &str) -> anyhow::Result<String> {
        let body = self
            .send(
                reqwest::Method::POST,
                &format!("/v1/businesses/{business}/invitations"),
                json!({"actor_user_id": actor, "invitees": [{"email": email}]}),
            )
            .await?;
        Ok(body["items"][0]["id"]
            .as_str()
            .context("invitation id")?
            .to_string())
    }
}

/// Users as `PUT /v1/users/{id}` writes them (one upsert into `users`, no
/// event), `<prefix><i>` with `<prefix><i>@bench.example`, in one statement.
async fn bulk_users(pool: &PgPool, prefix: &str, n: u64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO users (user_id, email, display_name, locale)
         SELECT $1 || g, $1 || g || '@bench.example', $1 || g, 'en-US'
         FROM generate_series(0, $2 - 1) g",
    )
    .bind(prefix)
    .bind(n as i64)
    .execute(pool)
    .await?;
    Ok(())
}

async fn pool(url: &str, n: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(n)
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))
}

async fn start_daemon(args: &Args, config: &Config) -> anyhow::Result<RunningApp> {
    let keys = vec![
        ApiKey::from_plaintext("bench", API_KEY),
        ApiKey::from_plaintext("bench-admin", ADMIN_KEY).with_scope(Scope::Admin),
    ];
    let app = RunningApp::start(config, keys).await?;
    if args.experiment_no_commit_order {
        let db = pool(&args.database_url, 1).await?;
        sqlx::query("ALTER TABLE events DISABLE TRIGGER events_commit_order")
            .execute(&db)
            .await?;
        db.close().await;
        println!("EXPERIMENT: events_commit_order trigger disabled");
    }
    Ok(app)
}

/// Waits for `f` to hold, failing when nothing changes for `stall`.
async fn wait_progress(
    what: &str,
    stall: Duration,
    mut f: impl AsyncFnMut() -> anyhow::Result<(u64, u64)>,
) -> anyhow::Result<()> {
    let mut last = (u64::MAX, Instant::now());
    loop {
        let (have, want) = f().await?;
        if have >= want {
            return Ok(());
        }
        if have != last.0 {
            last = (have, Instant::now());
        } else if last.1.elapsed() > stall {
            anyhow::bail!("{what}: stuck at {have} of {want}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------- delivery

/// Delivery: `n` invitation emails queued in one transaction, then delivered
/// by the daemon. Returns emails/s.
async fn delivery(args: &Args, sink: &Arc<Sink>) -> anyhow::Result<f64> {
    println!(
        "\n== 1. Delivery: {} invitation emails queued at once",
        args.emails
    );
    util::recreate_database(&args.database_url).await?;
    sink.set_mode(Mode::Route);
    let config = bench_config(args, &sink.url(), Duration::from_secs(60));
    print_config(&config);
    let app = start_daemon(args, &config).await?;
    let api = Api::new(app.addr);
    let db = pool(&args.database_url, 4).await?;
    bulk_users(&db, "owner", 1).await?;
    let business = api.business("Bench & Co", "owner0").await?;
    // The seed: one invitation through the real create path; its rows are the
    // pattern of the bulk ones.
    let seed = api
        .invite(&business, "owner0", "seed@bench.example")
        .await?;
    let mail = tokio::time::timeout(Duration::from_secs(30), sink.next_for("seed@bench.example"))
        .await
        .context("the seed email did not arrive")??;
    anyhow::ensure!(
        util::token_from(&mail.data).is_some(),
        "no token in the seed email"
    );
    wait_progress("seed recorded", Duration::from_secs(30), async || {
        let sent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE status = 'sent'")
                .fetch_one(&db)
                .await?;
        Ok((sent as u64, 1))
    })
    .await?;

    sink.set_mode(Mode::Stamp);
    sink.take_stamps();
    let before = sink.count();
    let seed_id: uuid::Uuid = seed.parse()?;
    // Exactly the rows the create path writes for each invitation (invitation,
    // its events but `invitation.sent`, its outbox row with the context of its
    // own address and nonce and a fresh Message-ID), cloned from the seed.
    // Each outbox row gets its own `clock_timestamp()` as creation and due
    // time, as rows written by separate create transactions would.
    let queued_at = Instant::now();
    let mut tx = db.begin().await?;
    let (emails, events): (i64, i64) = sqlx::query_as(
        "WITH t AS (SELECT * FROM invitations WHERE id = $1),
         src AS (SELECT g, gen_random_uuid() AS id, 'bulk' || g || '@bench.example' AS email,
                        decode(md5(g::text || random()::text), 'hex') AS nonce
                 FROM generate_series(1, $2) g),
         inv AS (INSERT INTO invitations (id, business_id, kind, invited_by, email, role, message,
                        locale, grants, token_hash, token_nonce, status, created_at, expires_at, updated_at)
                 SELECT src.id, t.business_id, t.kind, t.invited_by, src.email, t.role, t.message,
                        t.locale, t.grants, sha256(src.nonce), src.nonce, 'pending', now(),
                        now() + (t.expires_at - t.created_at), now()
                 FROM t, src
                 RETURNING id, email, token_nonce),
         ob AS (INSERT INTO email_outbox (id, business_id, invitation_id, template, locale, recipient,
                        recipient_name, context, message_id, created_at, available_at, updated_at)
                SELECT gen_random_uuid(), o.business_id, inv.id, o.template, o.locale, inv.email,
                       o.recipient_name,
                       o.context || jsonb_build_object('recipient_email', inv.email,
                                                       '_token_nonce', encode(inv.token_nonce, 'hex')),
                       '<' || gen_random_uuid() || substring(o.message_id from '@.*$'),
                       clock_timestamp(), clock_timestamp(), clock_timestamp()
                FROM inv, email_outbox o
                WHERE o.invitation_id = $1 AND o.template = 'member_invitation'
                RETURNING 1),
         ev AS (INSERT INTO events (id, business_id, invitation_id, type, actor_user_id,
                        from_status, to_status, data, occurred_at)
                SELECT gen_random_uuid(), e.business_id, inv.id, e.type, e.actor_user_id,
                       e.from_status, e.to_status, e.data, now()
                FROM inv, events e
                WHERE e.invitation_id = $1 AND e.type <> 'invitation.sent'
                RETURNING 1)
         SELECT (SELECT count(*) FROM ob), (SELECT count(*) FROM ev)",
    )
    .bind(seed_id)
    .bind(args.emails as i64)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify('invited_outbox', '')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let committed = Instant::now();
    let committed_wall = SystemTime::now();
    println!(
        "queued {emails} outbox rows and {events} events in one transaction of {:.0} ms",
        (committed - queued_at).as_secs_f64() * 1000.0
    );
    anyhow::ensure!(emails as u64 == args.emails, "queued {emails} emails");

    let want = before + args.emails;
    wait_progress(
        "emails accepted by the sink",
        Duration::from_secs(60),
        async || Ok((sink.count(), want)),
    )
    .await?;
    let all_accepted = committed.elapsed();
    wait_progress("outcomes recorded", Duration::from_secs(60), async || {
        let sent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE status = 'sent'")
                .fetch_one(&db)
                .await?;
        Ok((sent as u64, args.emails + 1))
    })
    .await?;
    let all_recorded = committed.elapsed();

    let stamps: std::collections::HashMap<String, SystemTime> =
        sink.take_stamps().into_iter().collect();
    let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT message_id, created_at FROM email_outbox WHERE invitation_id <> $1")
            .bind(seed_id)
            .fetch_all(&db)
            .await?;
    let mut from_created = Vec::with_capacity(rows.len());
    let mut from_commit = Vec::with_capacity(rows.len());
    let mut last = committed_wall;
    for (message_id, created_at) in &rows {
        let Some(at) = stamps.get(message_id) else {
            anyhow::bail!("{message_id} was never received");
        };
        last = last.max(*at);
        let created: SystemTime = (*created_at).into();
        from_created.push(at.duration_since(created).unwrap_or_default());
        from_commit.push(at.duration_since(committed_wall).unwrap_or_default());
    }
    let span = last
        .duration_since(committed_wall)
        .unwrap_or_default()
        .as_secs_f64();
    let rate = args.emails as f64 / span;
    println!(
        "all {} accepted by the sink {:.3} s after the commit, all outcomes recorded after {:.3} s",
        args.emails,
        all_accepted.as_secs_f64(),
        all_recorded.as_secs_f64()
    );
    println!("delivery rate: {rate:.0} emails/s (commit to the last 250)");
    println!("{}", summary("enqueue (created_at) -> 250", from_created));
    println!("{}", summary("commit -> 250", from_commit));
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM email_attempts")
        .fetch_one(&db)
        .await?;
    println!(
        "email_attempts rows: {attempts}; sink messages this phase: {}",
        sink.count() - before
    );
    db.close().await;
    app.shutdown(Duration::from_secs(10)).await;
    Ok(rate)
}

// --------------------------------------------------------------- lifecycle

#[derive(Default)]
struct Lat {
    create: Vec<Duration>,
    invitation_email: Vec<Duration>,
    accept: Vec<Duration>,
    accepted_email: Vec<Duration>,
    lifecycle: Vec<Duration>,
}

/// Returns lifecycles/s.
async fn lifecycle(args: &Args, sink: &Arc<Sink>) -> anyhow::Result<f64> {
    let clients = args.clients.max(1);
    let per_client = args.lifecycles.div_ceil(clients as u64);
    let biz_per_client = per_client.div_ceil(5);
    let paced_total = args.paced_rate * args.paced_secs;
    let paced_biz = paced_total.div_ceil(5);
    println!(
        "\n== 2. Lifecycle over HTTP: {clients} clients x {per_client} lifecycles, {} businesses; \
         then {} creates/s for {} s",
        clients as u64 * biz_per_client,
        args.paced_rate,
        args.paced_secs
    );
    util::recreate_database(&args.database_url).await?;
    sink.set_mode(Mode::Route);
    let config = bench_config(args, &sink.url(), Duration::from_secs(60));
    print_config(&config);
    let app = start_daemon(args, &config).await?;
    let api = Api::new(app.addr);
    let db = pool(&args.database_url, 4).await?;
    let owners = clients as u64 * biz_per_client + paced_biz;
    bulk_users(&db, "owner", owners).await?;
    for c in 0..clients {
        bulk_users(&db, &format!("c{c}x"), per_client).await?;
    }
    let setup = Instant::now();
    let businesses: Vec<String> = futures::stream::iter(0..owners)
        .map(|i| {
            let api = api.clone();
            async move {
                api.business(&format!("Business {i}"), &format!("owner{i}"))
                    .await
            }
        })
        .buffered(clients)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!(
        "setup: {owners} businesses over HTTP in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (api, sink) = (api.clone(), sink.clone());
        let mine: Vec<String> =
            businesses[c * biz_per_client as usize..(c + 1) * biz_per_client as usize].to_vec();
        tasks.push(tokio::spawn(async move {
            let mut lat = Lat::default();
            for k in 0..per_client {
                let j = (k / 5) as usize;
                let owner_index = c as u64 * biz_per_client + j as u64;
                let owner_email = format!("owner{owner_index}@bench.example");
                let user = format!("c{c}x{k}");
                let email = format!("{user}@bench.example");
                let t0 = Instant::now();
                api.invite(&mine[j], &format!("owner{owner_index}"), &email)
                    .await?;
                let t1 = Instant::now();
                let mail = sink.next_for(&email).await?;
                let t2 = Instant::now();
                let token = util::token_from(&mail.data).context("no token in the email")?;
                api.send(
                    reqwest::Method::POST,
                    "/v1/invitations/accept",
                    json!({"token": token, "user_id": user}),
                )
                .await?;
                let t3 = Instant::now();
                let accepted = sink.next_for(&owner_email).await?;
                let t4 = Instant::now();
                let subject = sink::header(&accepted.data, b"subject").unwrap_or_default();
                anyhow::ensure!(
                    subject == "Invitation accepted",
                    "unexpected email {subject:?}"
                );
                lat.create.push(t1 - t0);
                lat.invitation_email.push(t2 - t1);
                lat.accept.push(t3 - t2);
                lat.accepted_email.push(t4 - t3);
                lat.lifecycle.push(t4 - t0);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Lat::default();
    for task in tasks {
        let lat = task.await??;
        all.create.extend(lat.create);
        all.invitation_email.extend(lat.invitation_email);
        all.accept.extend(lat.accept);
        all.accepted_email.extend(lat.accepted_email);
        all.lifecycle.extend(lat.lifecycle);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = all.lifecycle.len();
    let rate = n as f64 / elapsed;
    println!("lifecycles: {n} in {elapsed:.2} s = {rate:.0} lifecycles/s");
    println!("{}", summary("POST create (HTTP)", all.create));
    println!(
        "{}",
        summary("create -> invitation email", all.invitation_email)
    );
    println!("{}", summary("POST accept (HTTP)", all.accept));
    println!(
        "{}",
        summary("accept -> accepted email", all.accepted_email)
    );
    println!("{}", summary("whole lifecycle", all.lifecycle));
    let (accepted, members): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM invitations WHERE status = 'accepted'),
                (SELECT count(*) FROM members WHERE role <> 'owner')",
    )
    .fetch_one(&db)
    .await?;
    println!("check: {accepted} accepted invitations, {members} new members in the database");

    // Paced creates: open loop, one create every 1/rate s, emails flowing.
    sink.set_mode(Mode::Count);
    let paced_businesses = businesses[clients * biz_per_client as usize..].to_vec();
    let first_owner = clients as u64 * biz_per_client;
    let lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        paced_total as usize,
    )));
    let failures = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.paced_rate as f64));
    let mut handles = Vec::with_capacity(paced_total as usize);
    let paced_start = Instant::now();
    for i in 0..paced_total {
        tick.tick().await;
        let (api, lat, failures) = (api.clone(), lat.clone(), failures.clone());
        // Round robin: a business's 5 creates come `paced_biz` ticks apart.
        // Five in a row on one business (2 ms apart at 500/s) queued each
        // create behind the business lock of the one before (R8 serialises
        // creates per business), which measured that queue, not a create.
        let slot = i % paced_biz;
        let business = paced_businesses[slot as usize].clone();
        let owner = format!("owner{}", first_owner + slot);
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            match api
                .invite(&business, &owner, &format!("p{i}@bench.example"))
                .await
            {
                Ok(_) => lat.lock().expect("lock").push(t0.elapsed()),
                Err(error) => {
                    if failures.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("paced create failed: {error:#}");
                    }
                }
            }
        }));
    }
    for handle in handles {
        handle.await?;
    }
    let offered = paced_start.elapsed().as_secs_f64();
    let lat = std::mem::take(&mut *lat.lock().expect("lock"));
    println!(
        "paced: {paced_total} creates offered over {offered:.2} s ({:.0}/s), {} failed",
        paced_total as f64 / offered,
        failures.load(Ordering::Relaxed)
    );
    println!("{}", summary("POST create at paced rate", lat));
    if !args.skip_console {
        console::console(args, &api.base, &db).await?;
    }
    db.close().await;
    app.shutdown(Duration::from_secs(10)).await;
    Ok(rate)
}

// ------------------------------------------------------------------ memory

struct Child {
    process: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    async fn ask(&mut self, command: &str) -> anyhow::Result<String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        self.stdin.flush().await?;
        self.lines
            .next_line()
            .await?
            .context("the child daemon ended")
    }

    async fn rss(&mut self) -> anyhow::Result<(f64, f64)> {
        let pid = self.process.id().context("child pid")?;
        let (rss, hwm) = rss_kib(pid);
        Ok((rss as f64 / 1024.0, hwm as f64 / 1024.0))
    }
}

async fn memory(args: &Args, sink: &Arc<Sink>) -> anyhow::Result<()> {
    println!(
        "\n== 3. Memory: the daemon alone in a child process (this binary with --child-daemon), RSS from /proc/<pid>/status"
    );
    util::recreate_database(&args.database_url).await?;
    sink.set_mode(Mode::Count);
    let exe = std::env::current_exe()?;
    let mut process = tokio::process::Command::new(exe)
        .arg("--child-daemon")
        .arg("--database-url")
        .arg(&args.database_url)
        .arg("--smtp-url")
        .arg(sink.url())
        .arg("--workers")
        .arg(args.workers.to_string())
        .arg("--smtp-pool")
        .arg(args.smtp_pool.to_string())
        .arg("--db-connections")
        .arg(args.db_connections.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = process.stdin.take().context("stdin")?;
    let stdout = process.stdout.take().context("stdout")?;
    let mut child = Child {
        process,
        stdin,
        lines: BufReader::new(stdout).lines(),
    };
    let ready = child.lines.next_line().await?.context("child ended")?;
    let addr: std::net::SocketAddr = ready
        .strip_prefix("ready ")
        .context("child did not start")?
        .parse()?;
    let api = Api::new(addr);
    let db = pool(&args.database_url, 4).await?;
    bulk_users(&db, "owner", 1).await?;
    let business = api.business("Memory & Co", "owner0").await?;
    let seed: uuid::Uuid = api
        .invite(&business, "owner0", "seed@bench.example")
        .await?
        .parse()?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (idle, _) = child.rss().await?;
    println!("idle daemon (1 invitation): {idle:.1} MiB resident");

    let mut have = 1u64;
    let mut targets = args.pending.clone();
    targets.sort();
    for target in targets {
        let load = Instant::now();
        while have < target {
            let batch = (target - have).min(100_000);
            // Pending member invitations like the seed, each with its own
            // address, nonce and token hash (no outbox rows: already sent).
            sqlx::query(
                "INSERT INTO invitations (id, business_id, kind, invited_by, email, role, message,
                        locale, grants, token_hash, token_nonce, status, created_at, expires_at, updated_at)
                 SELECT gen_random_uuid(), t.business_id, t.kind, t.invited_by, 'm' || g || '@bench.example',
                        t.role, t.message, t.locale, t.grants, sha256(s.nonce), s.nonce, 'pending',
                        now(), t.expires_at, now()
                 FROM invitations t,
                      LATERAL (SELECT g, decode(md5(g::text || random()::text), 'hex') AS nonce
                               FROM generate_series($2, $3) g) s
                 WHERE t.id = $1",
            )
            .bind(seed)
            .bind(have as i64)
            .bind((have + batch - 1) as i64)
            .execute(&db)
            .await?;
            have += batch;
        }
        let loaded = load.elapsed();
        // A chores pass (expiry sweep, reminders) and a gauge sample over them.
        let chores = Instant::now();
        let answer = child.ask("chores").await?;
        let chores = chores.elapsed();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let (rss, hwm) = child.rss().await?;
        println!(
            "{have:>9} pending invitations: {rss:.1} MiB resident (peak {hwm:.1} MiB); \
             loaded in {:.1} s; chores pass {:.2} s ({answer})",
            loaded.as_secs_f64(),
            chores.as_secs_f64()
        );
    }

    let (before, _) = child.rss().await?;
    let t = Instant::now();
    let answer = child.ask(&format!("spawn {}", args.actors)).await?;
    let spawned = t.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, _) = child.rss().await?;
    let live: f64 = answer
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    println!(
        "live invitation actors: {answer} in {:.2} s; RSS {before:.1} -> {after:.1} MiB = {:.2} KiB per live actor",
        spawned.as_secs_f64(),
        (after - before) * 1024.0 / live
    );
    let _ = child.ask("quit").await;
    let _ = child.process.wait().await;
    db.close().await;
    Ok(())
}

/// The daemon alone, for the memory benchmark: answers `rss`, `chores`,
/// `spawn N` and `quit`, one line each, on stdin/stdout.
async fn child_daemon(args: &Args) -> anyhow::Result<()> {
    let smtp = args.smtp_url.clone().context("--smtp-url")?;
    let config = bench_config(args, &smtp, Duration::from_secs(3600));
    let app = start_daemon(args, &config).await?;
    let db = pool(&args.database_url, 1).await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("ready {}\n", app.addr).as_bytes())
        .await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        let answer = match words.next() {
            Some("chores") => match app.services.run_chores().await {
                Ok(report) => format!("{report:?}"),
                Err(error) => format!("chores failed: {error}"),
            },
            Some("spawn") => {
                let n: i64 = words.next().unwrap_or("0").parse()?;
                let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                    "SELECT id FROM invitations WHERE status = 'pending' LIMIT $1",
                )
                .bind(n)
                .fetch_all(&db)
                .await?;
                let handle = app.invitations.clone();
                let ok = futures::stream::iter(ids)
                    .map(|id| {
                        let handle = handle.clone();
                        async move {
                            handle
                                .inspect(invited::domain::InvitationId(id))
                                .await
                                .ok()
                                .flatten()
                                .is_some()
                        }
                    })
                    .buffer_unordered(64)
                    .filter(|ok| std::future::ready(*ok))
                    .count()
                    .await;
                let live = app.invitations.stats().await.map_or(0, |s| s.live);
                format!("inspected {ok}, live actors {live}")
            }
            Some("quit") => break,
            _ => "?".to_string(),
        };
        out.write_all(format!("{answer}\n").as_bytes()).await?;
        out.flush().await?;
    }
    db.close().await;
    app.shutdown(Duration::from_secs(10)).await;
    out.write_all(b"bye\n").await?;
    Ok(())
}

// ----------------------------------------------------------------- ceiling

async fn ceiling(args: &Args, sink: &Arc<Sink>) -> anyhow::Result<()> {
    println!("\n== 4. Ceiling (no daemon)");
    util::recreate_database(&args.database_url).await?;
    let db = pool(&args.database_url, args.clients as u32).await?;
    let (fsync, sync_commit): (String, String) =
        sqlx::query_as("SELECT current_setting('fsync'), current_setting('synchronous_commit')")
            .fetch_one(&db)
            .await?;
    sqlx::query(
        "CREATE TABLE bench_ceiling (id uuid PRIMARY KEY, payload text NOT NULL,
                                     at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&db)
    .await?;
    // At the benchmark's concurrency, and on one connection: commits that
    // cannot share a WAL flush (the event-writing commits of the daemon are
    // numbered one at a time under an advisory lock held through the flush).
    for connections in [args.clients, 1] {
        let count = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(args.ceiling_secs);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (db, count) = (db.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    sqlx::query("INSERT INTO bench_ceiling (id, payload) VALUES ($1, $2)")
                        .bind(uuid::Uuid::now_v7())
                        .bind("a payload of about the size of a small row")
                        .execute(&db)
                        .await?;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let n = count.load(Ordering::Relaxed);
        println!(
            "Postgres single-row INSERT commits: {n} in {elapsed:.2} s = {:.0} commits/s \
             ({connections} connections, fsync={fsync}, synchronous_commit={sync_commit})",
            n as f64 / elapsed,
        );
    }
    db.close().await;

    // The sink from a bare lettre client: the same message bytes, the same
    // number of connections as smtp.pool_size.
    use lettre::AsyncTransport as _;
    sink.set_mode(Mode::Count);
    let raw = sink.sample.get().cloned().unwrap_or_else(|| {
        b"From: a@bench.example\r\nTo: b@bench.example\r\nSubject: x\r\n\r\nhello\r\n".to_vec()
    });
    let transport =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(sink.port)
            .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(args.smtp_pool))
            .build();
    let envelope = lettre::address::Envelope::new(
        Some("bench@bench.example".parse()?),
        vec!["bare@bench.example".parse()?],
    )?;
    let n = args.emails;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.smtp_pool {
        let (transport, envelope, raw, next) = (
            transport.clone(),
            envelope.clone(),
            raw.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                transport.send_raw(&envelope, &raw).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "sink from a bare lettre client: {n} messages of {} bytes in {elapsed:.2} s = {:.0} emails/s \
         ({} connections)",
        raw.len(),
        n as f64 / elapsed,
        args.smtp_pool
    );

    // The same with TCP_NODELAY on the client socket (lettre's own connect
    // leaves Nagle on): one lettre connection per task over a TcpStream we
    // opened ourselves.
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.smtp_pool {
        let (envelope, raw, next, port) = (envelope.clone(), raw.clone(), next.clone(), sink.port);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            let mut conn =
                lettre::transport::smtp::client::AsyncSmtpConnection::connect_with_transport(
                    Box::new(stream),
                    &lettre::transport::smtp::extension::ClientId::default(),
                )
                .await?;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                conn.send(&envelope, &raw).await?;
            }
            conn.quit().await?;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "sink from bare lettre connections with TCP_NODELAY: {n} messages in {elapsed:.2} s = {:.0} emails/s \
         ({} connections)",
        n as f64 / elapsed,
        args.smtp_pool
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.apply_quick();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // sqlx warns of slow statements: the bulk loads are slow on purpose.
    invited::telemetry::init(invited::config::LogFormat::Pretty, "warn,sqlx::query=error");
    if args.child_daemon {
        return child_daemon(&args).await;
    }
    if let Some(sink) = &args.versus_sink {
        let tuning = versus::Tuning {
            workers: args.versus_workers,
            smtp_pool: args.versus_smtp_pool,
        };
        return match args.versus.as_str() {
            "paced" => versus::paced(&args.database_url, sink, args.paced_secs, tuning).await,
            _ => versus::burst(&args.database_url, sink, args.versus_burst, tuning).await,
        };
    }
    println!(
        "invited-bench {:?}",
        std::env::args().skip(1).collect::<Vec<_>>()
    );
    println!(
        "sizes: emails={} clients={} lifecycles={} paced={}/s x {} s pending={:?} actors={} \
         console: rounds={} clients={}x{} failed={} suppressions={} pgbench={} s",
        args.emails,
        args.clients,
        args.lifecycles,
        args.paced_rate,
        args.paced_secs,
        args.pending,
        args.actors,
        args.console_rounds,
        args.console_clients,
        args.console_concurrent_rounds,
        args.console_failed,
        args.console_suppressions,
        args.pgbench_secs,
    );
    let sink = Sink::start().await?;
    println!("SMTP sink on {}", sink.url());
    let total = Instant::now();
    if !args.skip_delivery {
        delivery(&args, &sink).await?;
    }
    let mut lifecycles_per_s = None;
    if !args.skip_lifecycle {
        lifecycles_per_s = Some(lifecycle(&args, &sink).await?);
    }
    if !args.skip_memory {
        memory(&args, &sink).await?;
    }
    if !args.skip_ceiling {
        ceiling(&args, &sink).await?;
    }
    if !args.skip_pgbench {
        pgbench::ceiling(&args, lifecycles_per_s).await?;
    }
    println!("\ntotal {:.1} s", total.elapsed().as_secs_f64());
    Ok(())
}
