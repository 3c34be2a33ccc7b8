//! The side-by-side figures of issue 17: invited as a team would run it
//! (the default configuration, PostgreSQL), sending to an SMTP sink that is
//! not ours (postfix's `smtp-sink`, started by `scripts/bench-compare`,
//! which runs graphile-worker against the same sink and database server).
//!
//! Both figures read their times from the database clock: an email's
//! latency is `sent_at - created_at` of its outbox row (`created_at` is the
//! creating transaction's time, a little before its commit; `sent_at` is
//! stamped when the outcome after the sink's 250 is recorded), so the client
//! and the daemon never compare clocks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use invited::app::RunningApp;
use invited::config::{ApiKey, Config, RateLimit, SendRate};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::util::{self, summary};
use crate::{API_KEY, Api, bulk_users, pool, wait_progress};

/// Invitations per bulk request in the burst, as the issue sets it.
const PER_REQUEST: u64 = 100;
/// Client threads sending the bulk requests.
const BURST_CLIENTS: usize = 4;
/// Businesses in the paced run: R8's default quota is 5 per business.
const QUOTA: u64 = 5;
/// Creates per second of the paced run, as the issue sets it.
const PACED_RATE: u64 = 50;

/// Settings a run may change from their defaults (`--versus-workers`,
/// `--versus-smtp-pool`); none by default, as the issue measures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tuning {
    pub workers: Option<u32>,
    pub smtp_pool: Option<u32>,
}

/// The daemon's configuration: the defaults, with the benchmark database,
/// the sink, a send rate that does not cap the figure, and the links the
/// configuration requires. `quota` raises R8's limit (the burst sends 100
/// invitations per request to one business; the default is 5 per 24 h).
fn config(
    database_url: &str,
    sink: &str,
    quota: Option<u32>,
    tuning: Tuning,
) -> anyhow::Result<Config> {
    let mut config = Config::default();
    if let Some(workers) = tuning.workers {
        config.delivery.workers = workers;
    }
    if let Some(pool) = tuning.smtp_pool {
        config.smtp.pool_size = pool;
    }
    eprintln!(
        "versus: delivery.workers={} smtp.pool_size={} (defaults unless --versus-workers/--versus-smtp-pool)",
        config.delivery.workers, config.smtp.pool_size
    );
    config.database.url = database_url.to_string();
    config.api.listen = "127.0.0.1:0".parse()?;
    config.smtp.url = Some(format!("smtp://{sink}"));
    config.mail.send_rate = SendRate {
        count: 1_000_000,
        per: Duration::from_secs(1),
    };
    config.mail.from = "Invitations <bench@bench.example>".parse()?;
    config.links.accept_url = crate::ACCEPT_URL.to_string();
    if let Some(count) = quota {
        config.invitations.rate_limit = RateLimit {
            count,
            window: Duration::from_secs(24 * 3600),
        };
    }
    Ok(config)
}

/// What one figure measured, printed as one line of JSON beside
/// graphile-worker's (same keys).
struct Figure {
    name: &'static str,
    emails: u64,
    seconds: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
}

impl Figure {
    fn print(&self) {
        let mut line = json!({
            "side": "invited",
            "figure": self.name,
            "emails": self.emails,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        });
        if let Some(seconds) = self.seconds {
            line["seconds"] = json!(seconds);
            line["emails_per_s"] = json!(self.emails as f64 / seconds);
        }
        println!("{line}");
    }
}

/// Starts the daemon on a fresh database with `owners` businesses.
async fn start(
    database_url: &str,
    config: &Config,
    owners: u64,
) -> anyhow::Result<(RunningApp, Api, PgPool, Vec<String>)> {
    util::recreate_database(database_url).await?;
    let app = RunningApp::start(config, vec![ApiKey::from_plaintext("bench", API_KEY)]).await?;
    let api = Api::new(app.addr);
    let db = pool(database_url, 2).await?;
    bulk_users(&db, "owner", owners).await?;
    let businesses = futures::stream::iter(0..owners)
        .map(|i| {
            let api = api.clone();
            async move {
                api.business(&format!("Business {i}"), &format!("owner{i}"))
                    .await
            }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    Ok((app, api, db, businesses))
}

/// Waits until `n` emails are sent, then reads their latencies (ms) from the
/// outbox, and the span from `since` (database clock) to the last one.
async fn sent_latencies(
    db: &PgPool,
    n: u64,
    since: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(f64, f64, f64)> {
    wait_progress("emails sent", Duration::from_secs(60), async || {
        let sent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE status = 'sent'")
                .fetch_one(db)
                .await?;
        Ok((sent as u64, n))
    })
    .await?;
    let (p50, p99, span): (f64, f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)) * 1000,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)) * 1000,
                extract(epoch FROM max(sent_at) - $1)::float8
         FROM email_outbox WHERE status = 'sent'",
    )
    .bind(since)
    .fetch_one(db)
    .await?;
    Ok((p50, p99, span))
}

async fn database_now(db: &PgPool) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(db)
        .await?)
}

/// End to end burst: `total` invitations created through the bulk API
/// (requests of 100, 4 clients) and delivered to the sink.
pub async fn burst(
    database_url: &str,
    sink: &str,
    total: u64,
    tuning: Tuning,
) -> anyhow::Result<()> {
    let requests = total.div_ceil(PER_REQUEST);
    println!(
        "\n== invited, end to end burst: {total} invitations in {requests} bulk requests of \
         {PER_REQUEST}, {BURST_CLIENTS} clients, sink {sink}"
    );
    let config = config(database_url, sink, Some(PER_REQUEST as u32), tuning)?;
    let (app, api, db, businesses) = start(database_url, &config, requests).await?;
    let since = database_now(&db).await?;
    let started = Instant::now();
    let creates: Vec<Duration> = futures::stream::iter(businesses.into_iter().enumerate())
        .map(|(b, business)| {
            let api = api.clone();
            async move {
                let invitees: Vec<Value> = (0..PER_REQUEST)
                    .map(|i| json!({"email": format!("b{b}i{i}@bench.example")}))
                    .collect();
                let t0 = Instant::now();
                api.send(
                    reqwest::Method::POST,
                    &format!("/v1/businesses/{business}/invitations"),
                    json!({"actor_user_id": format!("owner{b}"), "invitees": invitees}),
                )
                .await?;
                anyhow::Ok(t0.elapsed())
            }
        })
        .buffer_unordered(BURST_CLIENTS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let created = started.elapsed().as_secs_f64();
    let (p50, p99, span) = sent_latencies(&db, requests * PER_REQUEST, since).await?;
    println!(
        "created in {created:.2} s; {}",
        summary("bulk POST (HTTP)", creates)
    );
    Figure {
        name: "burst",
        emails: requests * PER_REQUEST,
        seconds: Some(span),
        p50_ms: p50,
        p99_ms: p99,
    }
    .print();
    db.close().await;
    app.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Paced creates: 50 single-invitee requests a second for `secs` seconds,
/// each to the next business in turn, with the default quota.
pub async fn paced(
    database_url: &str,
    sink: &str,
    secs: u64,
    tuning: Tuning,
) -> anyhow::Result<()> {
    let rate = PACED_RATE;
    let total = rate * secs;
    let owners = total.div_ceil(QUOTA);
    println!(
        "\n== invited, paced: {rate} creates/s for {secs} s, one invitation per request, sink {sink}"
    );
    let config = config(database_url, sink, None, tuning)?;
    let (app, api, db, businesses) = start(database_url, &config, owners).await?;
    let businesses = Arc::new(businesses);
    let since = database_now(&db).await?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let (api, businesses) = (api.clone(), businesses.clone());
        let slot = i % owners;
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            api.invite(
                &businesses[slot as usize],
                &format!("owner{slot}"),
                &format!("p{i}@bench.example"),
            )
            .await
            .with_context(|| format!("paced create {i}"))?;
            anyhow::Ok(t0.elapsed())
        }));
    }
    let mut creates = Vec::with_capacity(total as usize);
    for handle in handles {
        creates.push(handle.await??);
    }
    let (p50, p99, _) = sent_latencies(&db, total, since).await?;
    println!("{}", summary("POST create (HTTP)", creates));
    Figure {
        name: "paced",
        emails: total,
        seconds: None,
        p50_ms: p50,
        p99_ms: p99,
    }
    .print();
    db.close().await;
    app.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
