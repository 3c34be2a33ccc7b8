//! The database going away under load: while Postgres is down `/readyz` is
//! 503 and the daemon keeps trying; when it is back the work resumes without
//! a restart and every message is delivered.
//!
//! This stops the machine's shared Postgres server, so everything else using
//! it at that moment fails. It is the only test of this binary (cargo runs
//! test binaries one after another, so nothing else of the same `cargo test`
//! runs meanwhile), and it holds a file lock so that two runs of it never
//! overlap. Run it alone with `cargo test --test pg_restart`.

mod support;

use std::process::Command;
use std::time::Duration;

use sqlx::PgPool;
use support::daemon::TestDaemon;
use support::outbox;
use support::smtp_sink::SmtpSink;

const WAIT: Duration = Duration::from_secs(90);
const LOCK: &str = "/tmp/invited-pg-restart.lock";

fn pg_ctl(action: &str) {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a local PostgreSQL cluster under /etc/postgresql")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a PostgreSQL version");
    let mut cmd = Command::new("pg_ctlcluster");
    cmd.args(["--skip-systemctl-redirect", &version, "main", action]);
    if action == "stop" {
        cmd.args(["-m", "fast"]);
    }
    let status = cmd.status().expect("run pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action}: {status}");
}

fn pg_is_ready() -> bool {
    Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Brings Postgres back even if the test panics while it is down.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        if !pg_is_ready() {
            let _ = std::panic::catch_unwind(|| pg_ctl("start"));
        }
    }
}

async fn readyz(d: &TestDaemon) -> u16 {
    match d
        .client()
        .get(d.url("/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(resp) => resp.status().as_u16(),
        Err(_) => 0,
    }
}

async fn until_readyz(d: &TestDaemon, want: u16) {
    support::wait::eventually(WAIT, &format!("/readyz answering {want}"), || async {
        let got = readyz(d).await;
        if got == want {
            Ok(())
        } else {
            Err(format!("/readyz stayed {got}, waited for {want}"))
        }
    })
    .await;
}

#[sqlx::test(migrations = false)]
async fn postgres_restarted_under_load_then_every_message_is_delivered(pool: PgPool) {
    const N: usize = 200;
    let lock = std::fs::File::create(LOCK).expect("create the lock file");
    lock.lock().expect("take the Postgres restart lock");

    outbox::migrate(&pool).await;
    let d = TestDaemon::start_with(
        &pool,
        SmtpSink::start_slow(Duration::from_millis(50)),
        |c| {
            c.delivery.workers = 4;
            c.smtp.pool_size = 4;
            c.delivery.lease = Duration::from_secs(3);
            c.mail.send_rate = invited::config::SendRate {
                count: 1000,
                per: Duration::from_secs(1),
            };
        },
    )
    .await;
    assert_eq!(readyz(&d).await, 200);
    let queued = outbox::queue(&pool, N).await;
    d.sink.wait_for(20, WAIT).await;

    let restart = Restart;
    pg_ctl("stop");
    until_readyz(&d, 503).await;
    let during = d.sink.messages().len();
    pg_ctl("start");
    support::wait::eventually(WAIT, "Postgres coming back", || async {
        if pg_is_ready() {
            Ok(())
        } else {
            Err("Postgres did not come back: pg_isready fails".to_string())
        }
    })
    .await;
    drop(restart);
    until_readyz(&d, 200).await;

    // The same process, no restart: the rest goes out.
    support::wait::eventually(
        WAIT,
        "every message delivered after the restart",
        || async {
            let left: Result<i64, _> =
                sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE status <> 'sent'")
                    .fetch_one(&pool)
                    .await;
            match left {
                Ok(0) => Ok(()),
                _ => Err(format!(
                    "not every message was delivered after the restart: {left:?} left"
                )),
            }
        },
    )
    .await;
    let received = d.sink.message_ids();
    let distinct: std::collections::HashSet<&str> = received.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), N, "every message delivered");
    assert_eq!(
        distinct,
        queued.iter().map(String::as_str).collect(),
        "exactly the queued ones"
    );
    assert!(
        during < N,
        "the outage happened under load ({during} of {N} sent before)"
    );
    d.stop().await;
}
