//! The database network going silent (issue 12, item 1 and the readiness
//! bound of item 2): the real `invited` binary reaches Postgres through a TCP
//! proxy that can blackhole the traffic (sockets open, nothing forwarded, no
//! RST), the way a dead switch or a dropping firewall looks.
//!
//! - `/readyz` answers 503 within a second while the database is silent, and
//!   200 again once it is back;
//! - SIGTERM ends the process within the shutdown deadline (30 s) whatever
//!   the database does: while silent, and after a 20 s silence that healed
//!   (the case where `UNLISTEN *` held the shutdown for minutes);
//! - a second SIGTERM during that shutdown exits at once.
//!
//! Postgres-only by nature: SQLite has no network to lose. Each test has
//! its own database and its own proxy, so they run side by side with the
//! rest of the suite; the shared server itself is never touched.

mod support;

use std::time::{Duration, Instant};

use sqlx::PgPool;
use support::outbox;
use support::process::DaemonProcess;
use support::smtp_sink::SmtpSink;
use support::tcp_proxy::TcpProxy;

/// The shutdown deadline `invited serve` gives itself (`src/main.rs`).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
/// Time for the process to start its shutdown and to exit after it, on a
/// loaded machine.
const EXIT_MARGIN: Duration = Duration::from_secs(5);
/// The readiness rule (issue 12, item 2): an answer within a second.
const READY_WITHIN: Duration = Duration::from_secs(1);
/// How long to wait for a condition that comes by itself.
const WAIT: Duration = Duration::from_secs(60);

/// How soon a second signal ends the process ("at once", on a loaded
/// machine; far below the shutdown deadline it cuts short).
const SECOND_SIGNAL_EXIT: Duration = Duration::from_secs(5);

/// Waits until the daemon's log has a line containing `text`.
async fn until_logged(daemon: &DaemonProcess, text: &str) {
    support::wait::eventually(WAIT, &format!("a log line with {text:?}"), || async {
        let log = daemon.log();
        if log.contains(text) {
            Ok(())
        } else {
            Err(format!("never logged {text:?}:\n{log}"))
        }
    })
    .await;
}

/// A daemon on a fresh, migrated database, reached through a proxy.
async fn daemon_behind_proxy(pool: &PgPool) -> (DaemonProcess, TcpProxy, SmtpSink) {
    outbox::migrate(pool).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap());
    let db = pool
        .connect_options()
        .get_database()
        .expect("a test database")
        .to_string();
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port());
    let sink = SmtpSink::start();
    let daemon = DaemonProcess::start(&url, &sink.url(), &[]).await;
    until_readyz(&daemon, 200).await;
    (daemon, proxy, sink)
}

/// `GET /readyz`: the status (0 for no answer within 10 s) and how long it took.
async fn readyz(daemon: &DaemonProcess) -> (u16, Duration) {
    let started = Instant::now();
    let status = match reqwest::Client::new()
        .get(format!("{}/readyz", daemon.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(resp) => resp.status().as_u16(),
        Err(_) => 0,
    };
    (status, started.elapsed())
}

/// Waits until `/readyz` answers `want`.
async fn until_readyz(daemon: &DaemonProcess, want: u16) {
    support::wait::eventually(WAIT, &format!("/readyz answering {want}"), || async {
        let (got, _) = readyz(daemon).await;
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "/readyz stayed {got}, waited for {want}:\n{}",
                daemon.log()
            ))
        }
    })
    .await;
}

/// SIGTERM, then the time until the process is gone, asserted within the
/// shutdown deadline.
async fn terminate_within_deadline(daemon: &mut DaemonProcess) -> Duration {
    let started = Instant::now();
    daemon.terminate();
    let status = daemon.wait_exit(SHUTDOWN_DEADLINE + EXIT_MARGIN).await;
    let took = started.elapsed();
    assert!(
        status.code().is_some(),
        "the daemon exited by itself, not by a signal: {status:?}:\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("shutting down"),
        "the SIGTERM started the shutdown:\n{}",
        daemon.log()
    );
    eprintln!("SIGTERM to exit: {took:?} ({status:?})");
    took
}

/// Blackholed: every probe answers 503 within a second, for as long as it
/// lasts (several probes over a few seconds, once the pool's connections are
/// all stuck); healed: 200 again, without a restart.
#[sqlx::test(migrations = false)]
async fn readyz_answers_503_within_a_second_while_blackholed_and_200_once_healed(pool: PgPool) {
    let (daemon, proxy, _sink) = daemon_behind_proxy(&pool).await;

    proxy.blackhole();
    let mut slowest = Duration::ZERO;
    // Fixed count: the blackhole is held for about 20 probes (a few seconds),
    // long enough for the daemon's own polling to have hung on every pooled
    // connection.
    for probe in 0..20 {
        let (status, took) = readyz(&daemon).await;
        assert_eq!(
            status,
            503,
            "probe {probe}: /readyz answers 503 while the database is silent:\n{}",
            daemon.log()
        );
        assert!(
            took < READY_WITHIN,
            "probe {probe}: /readyz took {took:?}, the rule is {READY_WITHIN:?}"
        );
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("slowest /readyz while blackholed: {slowest:?}");

    proxy.heal();
    let healed = Instant::now();
    until_readyz(&daemon, 200).await;
    eprintln!("/readyz 200 again {:?} after healing", healed.elapsed());
}

/// SIGTERM while the database is silent: the shutdown cannot close its
/// connections politely and must not wait for them past its deadline.
#[sqlx::test(migrations = false)]
async fn sigterm_while_blackholed_exits_within_the_shutdown_deadline(pool: PgPool) {
    let (mut daemon, proxy, _sink) = daemon_behind_proxy(&pool).await;

    proxy.blackhole();
    // The daemon's next database round trip (its 200 ms poll, its heartbeat)
    // is stuck once a probe sees it.
    until_readyz(&daemon, 503).await;
    let took = terminate_within_deadline(&mut daemon).await;
    assert!(took <= SHUTDOWN_DEADLINE + EXIT_MARGIN, "took {took:?}");
}

/// A second SIGTERM while the first shutdown waits on a silent database
/// exits at once (status 1), without waiting for the deadline.
#[sqlx::test(migrations = false)]
async fn a_second_sigterm_exits_at_once_while_the_shutdown_waits(pool: PgPool) {
    let (mut daemon, proxy, _sink) = daemon_behind_proxy(&pool).await;

    proxy.blackhole();
    until_readyz(&daemon, 503).await;
    daemon.terminate();
    until_logged(&daemon, "shutting down").await;
    let started = Instant::now();
    daemon.terminate();
    let status = daemon.wait_exit(SECOND_SIGNAL_EXIT).await;
    eprintln!(
        "second SIGTERM to exit: {:?} ({status:?})",
        started.elapsed()
    );
    assert_eq!(
        status.code(),
        Some(1),
        "the second signal ends the process with status 1:\n{}",
        daemon.log()
    );
}

/// The case: the database silent for 20 s, then back, then SIGTERM.
/// Connections that hung meanwhile (`UNLISTEN *` on closing waited 60 s and
/// more) must not hold the exit past the deadline.
///
/// A proxy in user space forwards what it held as soon as it heals, so the
/// connections recover at once here; what a real network adds (the kernel's
/// retransmission backoff keeping a connection silent long after the link is
/// back) is what the blackholed SIGTERM above stands for. This one guards
/// the recovery path: the outage must leave nothing behind that holds the exit.
#[sqlx::test(migrations = false)]
async fn sigterm_after_a_healed_20s_blackhole_exits_within_the_shutdown_deadline(pool: PgPool) {
    let (mut daemon, proxy, _sink) = daemon_behind_proxy(&pool).await;
    // Mail in the outbox, so that the dispatchers and the listener are busy
    // with the database when it goes silent.
    outbox::queue(&pool, 3).await;

    proxy.blackhole();
    until_readyz(&daemon, 503).await;
    // A fixed hold: the duration of the outage is the scenario.
    tokio::time::sleep(Duration::from_secs(20)).await;
    proxy.heal();

    let took = terminate_within_deadline(&mut daemon).await;
    assert!(took <= SHUTDOWN_DEADLINE + EXIT_MARGIN, "took {took:?}");
}
