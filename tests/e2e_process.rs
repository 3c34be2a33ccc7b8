//! The real `invited` binary as separate processes on one database: SIGTERM,
//! `kill -9` in the middle of sending, and two replicas sharing the outbox.
//! Configured only through `INVITED_*` variables and `DATABASE_URL`, like a
//! service manager would.
//!
//! Postgres-only by nature: several processes on one database is what
//! SQLite refuses (see `e2e_embedded.rs`).

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::PgPool;
use support::daemon::database_url;
use support::outbox;
use support::process::DaemonProcess;
use support::smtp_sink::SmtpSink;

const WAIT: Duration = Duration::from_secs(60);

/// Waits until `sql` (a count) returns `want`.
async fn until_count(pool: &PgPool, sql: &'static str, want: i64) {
    support::wait::eventually(WAIT, &format!("{sql} returning {want}"), || async {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        if n == want {
            Ok(())
        } else {
            Err(format!("{sql}: {n}, waited for {want}"))
        }
    })
    .await;
}

/// Waits until the sink reports `n` sends in progress at once.
async fn until_in_flight(sink: &SmtpSink, n: usize) {
    support::wait::eventually(WAIT, &format!("{n} sends in flight at once"), || async {
        let seen = sink.in_flight();
        if seen >= n {
            Ok(())
        } else {
            Err(format!("{seen} in flight, never {n}"))
        }
    })
    .await;
}

fn tally(ids: &[String]) -> HashMap<&str, usize> {
    let mut seen = HashMap::new();
    for id in ids {
        *seen.entry(id.as_str()).or_insert(0) += 1;
    }
    seen
}

/// SIGTERM: intake stops, the sends in flight finish and are recorded, the
/// process exits 0, and nothing is left `sending`.
#[sqlx::test(migrations = false)]
async fn sigterm_lets_sends_in_flight_finish_and_exits_0(pool: PgPool) {
    outbox::migrate(&pool).await;
    let sink = SmtpSink::start_slow(Duration::from_secs(2));
    let mut daemon = DaemonProcess::start(
        &database_url(&pool),
        &sink.url(),
        &[
            ("INVITED_DELIVERY__WORKERS", "2"),
            ("INVITED_SMTP__POOL_SIZE", "2"),
        ],
    )
    .await;
    outbox::queue(&pool, 4).await;
    until_in_flight(&sink, 2).await;
    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        daemon.log()
    );
    assert_eq!(sink.messages().len(), 2, "the two in flight were delivered");
    assert_eq!(outbox::count_status(&pool, "sent").await, 2, "and recorded");
    assert_eq!(outbox::count_status(&pool, "sending").await, 0);
    assert_eq!(
        outbox::count_status(&pool, "queued").await,
        2,
        "not taken after SIGTERM"
    );
}

/// `kill -9` with messages queued and some in flight, then a new process:
/// every message is delivered, and a message arrives twice only if it was
/// `sending` (claimed, mid-send) at the kill.
#[sqlx::test(migrations = false)]
async fn kill_9_mid_send_loses_nothing_and_duplicates_only_what_was_in_flight(pool: PgPool) {
    const N: usize = 40;
    outbox::migrate(&pool).await;
    let sink = SmtpSink::start_slow(Duration::from_millis(300));
    let env = [
        ("INVITED_DELIVERY__WORKERS", "4"),
        ("INVITED_SMTP__POOL_SIZE", "4"),
        ("INVITED_DELIVERY__LEASE", "2s"),
    ];
    let db = database_url(&pool);
    let mut first = DaemonProcess::start(&db, &sink.url(), &env).await;
    let queued = outbox::queue(&pool, N).await;
    sink.wait_for(8, WAIT).await;
    until_in_flight(&sink, 1).await;
    first.kill_9();

    let in_flight: HashSet<String> =
        sqlx::query_scalar("SELECT message_id FROM email_outbox WHERE status = 'sending'")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert!(!in_flight.is_empty(), "the kill caught sends in flight");
    assert!(in_flight.len() <= 4, "no more in flight than workers");
    assert!(
        outbox::count_status(&pool, "queued").await > 0,
        "the kill left queued messages"
    );

    let _second = DaemonProcess::start(&db, &sink.url(), &env).await;
    until_count(
        &pool,
        "SELECT count(*) FROM email_outbox WHERE status <> 'sent'",
        0,
    )
    .await;

    let received = sink.message_ids();
    let seen = tally(&received);
    let expected: HashSet<&str> = queued.iter().map(String::as_str).collect();
    assert_eq!(
        seen.keys().copied().collect::<HashSet<_>>(),
        expected,
        "every message delivered, none lost"
    );
    for (id, n) in &seen {
        if *n > 1 {
            assert_eq!(*n, 2, "{id} delivered {n} times");
            assert!(
                in_flight.contains(*id),
                "{id} was duplicated but was not in flight at the kill"
            );
        }
    }
    assert!(received.len() - N <= in_flight.len());
}

/// Two processes on one database, 1,000 queued messages: each delivered
/// exactly once (`SKIP LOCKED` claims, no lease lapses in normal operation).
#[sqlx::test(migrations = false)]
async fn two_processes_deliver_1000_messages_exactly_once(pool: PgPool) {
    const N: usize = 1000;
    outbox::migrate(&pool).await;
    let sink = SmtpSink::start();
    let db = database_url(&pool);
    let env = [
        ("INVITED_DELIVERY__WORKERS", "8"),
        ("INVITED_SMTP__POOL_SIZE", "4"),
        ("INVITED_MAIL__SEND_RATE", "100000/s"),
    ];
    let _a = DaemonProcess::start(&db, &sink.url(), &env).await;
    let _b = DaemonProcess::start(&db, &sink.url(), &env).await;
    // Both are up and listening before the work appears.
    let queued = outbox::queue(&pool, N).await;
    until_count(
        &pool,
        "SELECT count(*) FROM email_outbox WHERE status = 'sent'",
        N as i64,
    )
    .await;
    let received = sink.message_ids();
    let distinct: HashSet<&str> = received.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), N, "distinct Message-IDs");
    assert_eq!(received.len(), N, "total received: none twice");
    assert_eq!(
        distinct,
        queued.iter().map(String::as_str).collect::<HashSet<_>>()
    );
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM email_attempts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, N as i64, "one attempt each");
}

/// Issue 12, item 3: `kill -9` while every worker holds an email, with the
/// default lease (60 s) and poll interval: a replacement sends every email
/// that was in flight within 15 s of starting. The dead process's heartbeat
/// stopped, so its leases are taken over without waiting for them to lapse
/// (docs/operations.md, "Recovery after a crash").
#[sqlx::test(migrations = false)]
async fn after_kill_9_a_replacement_sends_what_was_in_flight_within_15_s(pool: PgPool) {
    const N: usize = 8;
    outbox::migrate(&pool).await;
    // The first process's SMTP server never answers a message: whatever it
    // claimed is still `sending` when it is killed.
    let stalled = SmtpSink::start_slow(Duration::from_secs(120));
    let sink = SmtpSink::start();
    let defaults = [("INVITED_DELIVERY__POLL_INTERVAL", "1s")];
    let db = database_url(&pool);
    let mut first = DaemonProcess::start(&db, &stalled.url(), &defaults).await;
    let queued = outbox::queue(&pool, N).await;
    until_count(
        &pool,
        "SELECT count(*) FROM email_outbox WHERE status = 'sending'",
        N as i64,
    )
    .await;
    until_in_flight(&stalled, 1).await;
    first.kill_9();

    let _second = DaemonProcess::start(&db, &sink.url(), &defaults).await;
    let started = tokio::time::Instant::now();
    sink.wait_for(N, Duration::from_secs(15)).await;
    assert!(started.elapsed() <= Duration::from_secs(15));
    assert_eq!(
        sink.message_ids().into_iter().collect::<HashSet<_>>(),
        queued.into_iter().collect::<HashSet<_>>(),
        "every email that was in flight arrived"
    );
    assert!(
        stalled.messages().is_empty(),
        "none went out before the kill"
    );
}

/// Issue 12, item 1: a second SIGTERM exits at once, while the first one's
/// shutdown still waits for sends in flight (here on an SMTP server that
/// never answers; the daemon would otherwise wait for `smtp.timeout`).
#[sqlx::test(migrations = false)]
async fn a_second_sigterm_exits_at_once(pool: PgPool) {
    outbox::migrate(&pool).await;
    let stalled = SmtpSink::start_slow(Duration::from_secs(120));
    let mut daemon = DaemonProcess::start(
        &database_url(&pool),
        &stalled.url(),
        &[("INVITED_SMTP__TIMEOUT", "60s")],
    )
    .await;
    outbox::queue(&pool, 2).await;
    until_in_flight(&stalled, 1).await;
    daemon.terminate();
    support::wait::eventually(WAIT, "the shutdown line in the log", || async {
        let log = daemon.log();
        if log.contains("shutting down") {
            Ok(())
        } else {
            Err(format!("no shutdown line:\n{log}"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        daemon.try_status().is_none(),
        "the first SIGTERM waits for the sends in flight"
    );
    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(3)).await;
    assert!(!status.success(), "{status:?}");
}
