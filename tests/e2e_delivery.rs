//! Delivery and time, end to end: retries against a real SMTP server on
//! 127.0.0.1 (R27), the send rate and connection bound (R28), the expiry
//! sweep (R11), reminders (R32) and renew (R31), with the daemon in-process;
//! SMTP faults (a connection closed after its 250, an outage, a wrong
//! password) and the circuit breaker; the metrics of a fresh daemon.
//! Every test runs on both stores (`both_stores!`) except three that are
//! Postgres-only by nature: `send_rate_and_pool_size_bound_sending` (it
//! queues its rows with Postgres SQL from `support::outbox`),
//! `concurrent_sweeps_expire_once_and_remind_once` (four replicas, each its
//! own pool, racing on `SKIP LOCKED`) and
//! `a_fresh_daemon_serves_every_counter_at_zero` (a second process, which
//! the SQLite store refuses).

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use invited::service::{Services, Settings};
use invited::store::postgres::PgStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::daemon::{TestDaemon, token_from};
use support::db::ago;
use support::scenario::{brand, invite, of_type, timeline};
use support::smtp_sink::{Reply, SmtpSink};

const WAIT: Duration = Duration::from_secs(30);

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

both_stores! {
    /// R27: 451, 451, then 250: delivered once, three attempts recorded with the
    /// server's replies, and every attempt carried the same Message-ID.
    async fn two_451_then_250_is_delivered_once_after_three_attempts(db: Db) {
        let sink = SmtpSink::start_with(vec![Reply::Transient, Reply::Transient]);
        let d = TestDaemon::start_with(&db, sink, |c| {
            c.delivery.initial_backoff = Duration::from_secs(1);
            c.delivery.max_backoff = Duration::from_secs(1);
        })
        .await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "r@x.example").await;
        let inv = d.eventually(WAIT,
            &format!("/v1/invitations/{id}?actor_user_id=olive"),
            |v| v["delivery"]["status"] == "sent",
        )
        .await;
        assert_eq!(inv["delivery"]["attempts"], 3, "{inv}");

        let delivered = d.sink.messages();
        assert_eq!(delivered.len(), 1, "delivered exactly once");
        let rejected = d.sink.rejected();
        assert_eq!(rejected.len(), 2);
        let ids: HashSet<String> = delivered
            .iter()
            .chain(rejected.iter())
            .map(|m| m.header("Message-ID").unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "one Message-ID on every attempt: {ids:?}");

        let items = timeline(&d, &id).await;
        let attempts = of_type(&items, "delivery_attempt");
        let outcomes: Vec<(&str, u64)> = attempts
            .iter()
            .map(|a| {
                (
                    a["outcome"].as_str().unwrap(),
                    a["smtp_code"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [("transient", 451), ("transient", 451), ("sent", 250)]
        );
        assert!(
            attempts[0]["detail"].as_str().unwrap().contains("4.3.0"),
            "{}",
            attempts[0]
        );
        assert_eq!(of_type(&items, "invitation.sent").len(), 1);
        d.stop().await;
    }
}

both_stores! {
    /// R27: a 550 fails the message after one attempt, for good: delivery
    /// `failed` with the reply, and a `notification.failed` event.
    async fn a_550_fails_after_a_single_attempt(db: Db) {
        let d =
            TestDaemon::start_with(&db, SmtpSink::start_with(vec![Reply::Permanent]), |_| {}).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "r@x.example").await;
        let inv = d.eventually(WAIT,
            &format!("/v1/invitations/{id}?actor_user_id=olive"),
            |v| v["delivery"]["status"] == "failed",
        )
        .await;
        assert_eq!(inv["delivery"]["attempts"], 1, "{inv}");
        let last_error = inv["delivery"]["last_error"].as_str().unwrap();
        assert!(
            last_error.contains("550") && last_error.contains("5.7.1"),
            "{last_error}"
        );
        let items = timeline(&d, &id).await;
        let failed = of_type(&items, "notification.failed");
        assert_eq!(failed.len(), 1, "{items:?}");
        assert_eq!(failed[0]["data"]["smtp_code"], 550);
        let invitation_attempts = |items: &[Value]| {
            of_type(items, "delivery_attempt")
                .into_iter()
                .filter(|a| a["template"] == "member_invitation")
                .count()
        };
        assert_eq!(invitation_attempts(&items), 1);
        // Nothing more is tried. The inviter is told (R44) by an email
        // queued with the failure, so claimed after it: once the sink has
        // that one, a claim after the failure ran and would have taken the
        // failed email again had it stayed due.
        let taken = d.sink.wait_for(1, WAIT).await;
        assert_eq!(taken[0].to, ["olive@brand.example"], "the inviter's notice");
        assert_eq!(invitation_attempts(&timeline(&d, &id).await), 1);
        assert_eq!(
            db.count("SELECT count(*) FROM email_attempts a JOIN email_outbox o ON o.id = a.outbox_id \
                      WHERE o.template = 'member_invitation'").await,
            1
        );
        assert!(
            d.sink.messages().iter().all(|m| m.to.iter().all(|t| !t.contains("r@x.example"))),
            "nothing reached the invitee"
        );
        assert_eq!(d.sink.rejected().len(), 1);
        d.stop().await;
    }
}

both_stores! {
    /// R27: with the SMTP port closed (connection refused: transient), the
    /// message waits; once a server listens there it is delivered, once.
    async fn a_server_down_then_up_gets_the_message_once_it_is_back(db: Db) {
        let port = SmtpSink::closed_port();
        // The harness wants a sink; this one is never used.
        let unused = SmtpSink::start();
        let d = TestDaemon::start_with(&db, unused, |c| {
            c.smtp.url = Some(format!("smtp://127.0.0.1:{port}"));
        })
        .await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "r@x.example").await;
        let path = format!("/v1/invitations/{id}?actor_user_id=olive");
        d.eventually(WAIT, &path, |v| {
            v["delivery"]["status"] == "retrying" && v["delivery"]["attempts"].as_u64() >= Some(1)
        })
        .await;
        let sink = SmtpSink::start_on(port);
        let inv = d.eventually(WAIT, &path, |v| v["delivery"]["status"] == "sent").await;
        let mails = sink.wait_for(1, WAIT).await;
        assert_eq!(mails.len(), 1);
        let attempts = inv["delivery"]["attempts"].as_u64().unwrap();
        assert!(attempts >= 2, "{inv}");
        let items = timeline(&d, &id).await;
        let outcomes: Vec<&str> = of_type(&items, "delivery_attempt")
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes.last(), Some(&"sent"));
        assert!(
            outcomes[..outcomes.len() - 1]
                .iter()
                .all(|o| *o == "transient")
        );
        d.stop().await;
    }
}

/// R28: at most `smtp.pool_size` SMTP transactions at once, whatever the
/// number of workers, and no more than `mail.send_rate` messages a second.
#[sqlx::test(migrations = false)]
async fn send_rate_and_pool_size_bound_sending(pool: PgPool) {
    support::outbox::migrate(&pool).await;
    let d = TestDaemon::start_with(
        &pool,
        SmtpSink::start_slow(Duration::from_millis(150)),
        |c| {
            c.delivery.workers = 8;
            c.smtp.pool_size = 2;
            c.mail.send_rate = invited::config::SendRate {
                count: 4,
                per: Duration::from_secs(1),
            };
        },
    )
    .await;
    let started = tokio::time::Instant::now();
    support::outbox::queue(&pool, 12).await;
    d.sink.wait_for(12, WAIT).await;
    let took = started.elapsed();
    assert!(
        d.sink.max_concurrent() <= 2,
        "{} SMTP transactions at once with pool_size 2",
        d.sink.max_concurrent()
    );
    assert_eq!(d.sink.max_concurrent(), 2, "the pool is used");
    // A burst of 4, then one every 250 ms: the 12th leaves after >= 2 s.
    assert!(
        took >= Duration::from_millis(1900),
        "12 messages at 4/s took only {took:?}"
    );
    d.stop().await;
}

/// R28: the send rate is spent on emails, not on looking at an empty
/// outbox. With 4 tokens an hour and no poll within the test, a daemon idle
/// since it started still has the tokens its first two emails need. (A
/// claim that found nothing used to start the next claim at once: an idle
/// outbox was claimed from in a loop, each claim taking a token, so these
/// emails waited most of an hour.)
#[sqlx::test(migrations = false)]
async fn an_idle_outbox_spends_none_of_the_send_rate(pool: PgPool) {
    support::outbox::migrate(&pool).await;
    let d = TestDaemon::start_with(&pool, SmtpSink::start(), |c| {
        c.delivery.poll_interval = Duration::from_secs(3600);
        c.mail.send_rate = invited::config::SendRate {
            count: 4,
            per: Duration::from_secs(3600),
        };
    })
    .await;
    // The NOTIFY that queuing sends must find the daemon listening.
    support::wait::eventually(WAIT, "the outbox listener is subscribed", || async {
        match count(
            &pool,
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND query ILIKE 'LISTEN%invited_outbox%'",
        )
        .await
        {
            0 => Err("no LISTEN yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    support::outbox::queue(&pool, 2).await;
    d.sink.wait_for(2, WAIT).await;
    d.stop().await;
}

/// R29 with claims ahead of the workers: while no outcome can be committed
/// (another transaction holds `email_attempts`), at most `delivery.workers`
/// emails are ever claimed: a worker is free again once its email is sent,
/// but the email's permit waits for the commit, so what a crash could send
/// twice stays bounded by the setting. Once the commits go through, the
/// rest follow, each sent once.
#[sqlx::test(migrations = false)]
async fn no_more_than_workers_emails_are_claimed_and_not_recorded(pool: PgPool) {
    support::outbox::migrate(&pool).await;
    let d = TestDaemon::start_with(&pool, SmtpSink::start(), |c| {
        c.delivery.workers = 3;
        c.mail.send_rate = invited::config::SendRate {
            count: 1000,
            per: Duration::from_secs(1),
        };
    })
    .await;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE email_attempts IN SHARE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let queued = support::outbox::queue(&pool, 12).await;
    d.sink.wait_for(3, WAIT).await;
    support::wait::eventually(WAIT, "the recorder waits for the lock", || async {
        match count(
            &pool,
            "SELECT count(*) FROM pg_locks WHERE relation = 'email_attempts'::regclass AND NOT granted",
        )
        .await
        {
            0 => Err("no waiting lock".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    // Nothing can be awaited for what must not happen: several poll
    // intervals (200 ms) and NOTIFYs pass, and still only three.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(d.sink.messages().len(), 3, "sent while 3 outcomes wait");
    assert_eq!(support::outbox::count_status(&pool, "sending").await, 3);
    assert_eq!(support::outbox::count_status(&pool, "queued").await, 9);

    blocker.rollback().await.unwrap();
    d.sink.wait_for(12, WAIT).await;
    support::wait::eventually(WAIT, "every outcome recorded", || async {
        match support::outbox::count_status(&pool, "sent").await {
            12 => Ok(()),
            n => Err(format!("{n} sent")),
        }
    })
    .await;
    let received = d.sink.message_ids();
    assert_eq!(received.len(), 12, "each sent once");
    assert_eq!(
        received.into_iter().collect::<HashSet<_>>(),
        queued.into_iter().collect::<HashSet<_>>()
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM email_attempts").await,
        12
    );
    d.stop().await;
}

both_stores! {
    /// R11: with a 2 s ttl and a sweep every second, the invitation becomes
    /// `expired` by itself with one `invitation.expired` event; its token then
    /// answers `token_expired`.
    async fn the_sweep_expires_invitations_on_its_schedule(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            c.invitations.ttl = Duration::from_secs(2);
            c.invitations.reminders = vec![];
            c.invitations.expiry_schedule = "* * * * * *".parse().expect("a schedule");
        })
        .await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "late@x.example").await;
        let token = token_from(&d.sink.wait_for(1, WAIT).await[0].text_body());
        let inv = d.eventually(WAIT,
            &format!("/v1/invitations/{id}?actor_user_id=olive"),
            |v| v["status"] == "expired",
        )
        .await;
        assert_eq!(inv["status"], "expired");
        let items = timeline(&d, &id).await;
        let expired = of_type(&items, "invitation.expired");
        assert_eq!(expired.len(), 1, "{items:?}");
        assert_eq!(expired[0]["from_status"], "pending");
        assert_eq!(expired[0]["to_status"], "expired");
        d.user("late", "late@x.example", "en-US").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token, "user_id": "late"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::GONE, Some("token_expired")),
            "{body}"
        );
        // Later sweeps find nothing more to do.
        let report = d.app.as_ref().unwrap().services.run_chores().await.unwrap();
        assert_eq!(report.expired, 0);
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type = 'invitation.expired'"
            )
            .await,
            1
        );
        d.stop().await;
    }
}

async fn services(pool: &PgPool) -> Services {
    let mut config = invited::config::Config::default();
    config.invitations.reminders = vec![Duration::from_secs(3600), Duration::from_secs(7200)];
    let settings = Settings::from_config(&config).unwrap();
    Services::new(Arc::new(PgStore::from_pool(pool.clone())), settings)
        .await
        .unwrap()
}

/// R11, R32 with several replicas: four "replicas" (each its own pool and
/// services) run the chores at the same time, in small batches; each
/// invitation expires once and each due reminder is queued once. (The
/// daemon itself never sweeps here: `test_config`'s schedule.)
#[sqlx::test(migrations = false)]
async fn concurrent_sweeps_expire_once_and_remind_once(pool: PgPool) {
    let d = TestDaemon::start_with(&pool, SmtpSink::start(), |c| {
        c.invitations.rate_limit.count = 1000;
    })
    .await;
    let b = brand(&d).await;
    let invitees: Vec<Value> = (0..60)
        .map(|i| json!({"email": format!("p{i}@x.example")}))
        .collect();
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            json!({"actor_user_id": "olive", "invitees": invitees}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    d.sink.wait_for(60, WAIT).await;
    // 30 past their expiry; 30 created 90 minutes ago (the 1h reminder is due).
    sqlx::query(
        "UPDATE invitations SET created_at = now() - interval '2 days', expires_at = now() - interval '1 second'
         WHERE email < 'p3'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE invitations SET created_at = now() - interval '90 minutes' WHERE email >= 'p3'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let expiring = count(
        &pool,
        "SELECT count(*) FROM invitations WHERE expires_at < now() AND status = 'pending'",
    )
    .await;
    let reminding = 60 - expiring;

    let mut replicas = Vec::new();
    for _ in 0..4 {
        let replica_pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        replicas.push(services(&replica_pool).await);
    }
    let runs = replicas.iter().map(|s| async move {
        let expired = s.expire_due(3).await.unwrap();
        let reminded = s.queue_due_reminders(3).await.unwrap();
        (expired, reminded)
    });
    let results = futures_join_all(runs).await;
    let expired: u64 = results.iter().map(|r| r.0).sum();
    let reminded: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(expired as i64, expiring);
    assert_eq!(reminded as i64, reminding);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM events WHERE type = 'invitation.expired'"
        )
        .await,
        expiring
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM email_outbox WHERE template = 'reminder'"
        )
        .await,
        reminding
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM (SELECT invitation_id FROM email_outbox WHERE template = 'reminder'
                                   GROUP BY invitation_id HAVING count(*) > 1) dup"
        )
        .await,
        0
    );
    // No reminder for an expired invitation.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM email_outbox o JOIN invitations i ON i.id = o.invitation_id
             WHERE o.template = 'reminder' AND i.status <> 'pending'"
        )
        .await,
        0
    );
    d.stop().await;
}

/// Runs the futures concurrently on this task and collects their outputs.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => outputs[i] = Some(out),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

both_stores! {
    /// R32: each reminder goes out once, carrying the invitation's own working
    /// link; none after acceptance or cancellation; a reminder queued before the
    /// invitation was accepted is withdrawn, not sent.
    async fn each_reminder_is_sent_at_most_once_and_never_after_the_end(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            c.invitations.reminders = vec![Duration::from_secs(3600), Duration::from_secs(7200)];
        })
        .await;
        let chores = || async { d.app.as_ref().unwrap().services.run_chores().await.unwrap() };
        let b = brand(&d).await;
        let id = invite(&d, &b, "rem@x.example").await;
        let first = d.sink.wait_for(1, WAIT).await.remove(0);
        let token = token_from(&first.text_body());

        // Not due yet.
        assert_eq!(chores().await.reminders_queued, 0);
        // One hour later: the first reminder, once, however often the chores run.
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)])
            .await;
        assert_eq!(chores().await.reminders_queued, 1);
        assert_eq!(chores().await.reminders_queued, 0);
        let mails = d.sink.wait_for(2, WAIT).await;
        let reminder = &mails[1];
        assert!(
            reminder.header("Subject").unwrap().starts_with("Reminder:"),
            "{:?}",
            reminder.header("Subject")
        );
        assert_eq!(token_from(&reminder.text_body()), token, "the same link");
        assert_ne!(reminder.header("Message-ID"), first.header("Message-ID"));
        // Two hours: the second, once.
        db.exec("UPDATE invitations SET created_at = $1", &[ago(121 * 60)])
            .await;
        assert_eq!(chores().await.reminders_queued, 1);
        assert_eq!(chores().await.reminders_queued, 0);
        d.sink.wait_for(3, WAIT).await;
        let items = timeline(&d, &id).await;
        assert_eq!(of_type(&items, "invitation.reminder_queued").len(), 2);

        // A cancelled invitation gets no reminder.
        let cancelled = invite(&d, &b, "gone@x.example").await;
        d.sink.wait_for(4, WAIT).await;
        let (status, _) = d
            .post(
                &format!("/v1/invitations/{cancelled}/cancel"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        db.exec(
            "UPDATE invitations SET created_at = $1 WHERE email = 'gone@x.example'",
            &[ago(61 * 60)],
        )
        .await;
        assert_eq!(chores().await.reminders_queued, 0);

        d.stop().await;
    }
}

both_stores! {
    /// R32: a reminder queued while the invitation was pending, whose turn comes
    /// after the invitation was cancelled, is withdrawn (`cancelled`, with an
    /// event), never sent. The SMTP server is unreachable until the cancel, so
    /// the reminder cannot leave before it.
    async fn a_reminder_whose_invitation_ended_is_withdrawn(db: Db) {
        let port = SmtpSink::closed_port();
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            c.smtp.url = Some(format!("smtp://127.0.0.1:{port}"));
            c.invitations.reminders = vec![Duration::from_secs(3600)];
        })
        .await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "rem@x.example").await;
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)])
            .await;
        let report = d.app.as_ref().unwrap().services.run_chores().await.unwrap();
        assert_eq!(report.reminders_queued, 1);
        let status = "SELECT CAST(status AS text) FROM email_outbox WHERE template = 'reminder'";
        db.eventually_first(status, "retrying", WAIT).await;
        let (code, _) = d
            .post(
                &format!("/v1/invitations/{id}/cancel"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(code, StatusCode::OK);
        let sink = SmtpSink::start_on(port);
        db.eventually_first(status, "cancelled", WAIT).await;
        let items = timeline(&d, &id).await;
        let withdrawn = of_type(&items, "notification.cancelled");
        assert_eq!(withdrawn.len(), 1, "{items:?}");
        assert_eq!(withdrawn[0]["data"]["template"], "reminder");
        // The invitation email itself was retrying too and goes out now; the
        // reminder never does.
        sink.wait_for(1, WAIT).await;
        assert!(
            sink.messages()
                .iter()
                .all(|m| !m.header("Subject").unwrap().starts_with("Reminder:")),
        );
        d.stop().await;
    }
}

both_stores! {
    /// R31: renew only what ended unaccepted; the new invitation has a fresh,
    /// working token and a link to the old one, whose token stays dead; renewals
    /// count towards the quota and need `members.invite`.
    async fn renew_gives_a_new_working_token_and_the_old_stays_dead(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            c.invitations.rate_limit.count = 3;
        })
        .await;
        let b = brand(&d).await;
        let old = invite(&d, &b, "again@x.example").await;
        let old_token = token_from(&d.sink.wait_for(1, WAIT).await[0].text_body());
        let renew = |id: &str| format!("/v1/invitations/{id}/renew");

        // Pending: nothing to renew.
        let (status, body) = d
            .post(&renew(&old), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("invalid_transition")),
            "{body}"
        );
        let (status, _) = d
            .post(
                &format!("/v1/invitations/{old}/cancel"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        // Outsiders may not.
        let (status, _) = d
            .post(&renew(&old), json!({"actor_user_id": "stranger"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (status, new) = d
            .post(&renew(&old), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{new}");
        let new_id = new["id"].as_str().unwrap().to_string();
        assert_ne!(new_id, old);
        assert_eq!(new["status"], "pending");
        assert_eq!(new["email"], "again@x.example");
        assert_eq!(new["renewed_from"], old.as_str());
        let mail = d.sink.wait_for(2, WAIT).await.remove(1);
        let new_token = token_from(&mail.text_body());
        assert_ne!(new_token, old_token);

        // The old token stays dead; the new one works.
        d.user("again", "again@x.example", "en-US").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": old_token, "user_id": "again"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("token_used")),
            "{body}"
        );
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": new_token, "user_id": "again"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["invitation"]["id"], new_id.as_str());
        // Accepted: not renewable.
        let (status, body) = d
            .post(&renew(&new_id), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("invalid_transition")),
            "{body}"
        );
        // The old invitation's timeline names its successor.
        let items = timeline(&d, &old).await;
        let renewed = of_type(&items, "invitation.renewed");
        assert_eq!(renewed.len(), 1);
        assert_eq!(renewed[0]["data"]["renewed_to"], new_id.as_str());

        // Quota (3 a day): the original and the renewal used two.
        let second = invite(&d, &b, "decl@x.example").await;
        let decl_token = token_from(&d.sink.wait_for(4, WAIT).await[3].text_body());
        let (status, _) = d
            .post("/v1/invitations/decline", json!({"token": decl_token}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = d
            .post(&renew(&second), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
            "{body}"
        );
        d.stop().await;
    }
}

/// Invites every address of `emails` in one request; returns the ids.
async fn invite_all(d: &TestDaemon, b: &str, emails: &[String]) -> Vec<String> {
    let invitees: Vec<Value> = emails.iter().map(|e| json!({"email": e})).collect();
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            json!({"actor_user_id": "olive", "invitees": invitees}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

both_stores! {
    /// Issue 12 (4): a server that closes each connection right after its
    /// 250. The pooled connection is dead when the next email comes: that
    /// email is still sent at its first attempt, not failed and retried.
    async fn a_connection_closed_after_a_250_does_not_fail_the_next_email(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start_closing_after_ok(), |c| {
            c.delivery.workers = 1;
            c.smtp.pool_size = 1;
        })
        .await;
        let b = brand(&d).await;
        for n in 1..=3 {
            let id = invite(&d, &b, &format!("r{n}@x.example")).await;
            d.eventually(WAIT,
                &format!("/v1/invitations/{id}?actor_user_id=olive"),
                |v| v["delivery"]["status"] != "queued" && v["delivery"]["status"] != "sending",
            )
            .await;
        }
        assert_eq!(d.sink.wait_for(3, WAIT).await.len(), 3);
        assert_eq!(
            db.strings("SELECT outcome FROM email_attempts ORDER BY outcome").await,
            ["sent", "sent", "sent"],
            "one attempt per email, each sent"
        );
        d.stop().await;
    }
}

both_stores! {
    /// Issue 12 (5): the SMTP server is down while 20 emails are queued.
    /// The circuit breaker holds them back: the outage costs the first
    /// claims (at most one per worker) and one probe per interval, not an
    /// attempt per email per backoff; the emails held back are never
    /// attempted; all are delivered once the server is back.
    async fn an_smtp_outage_costs_a_handful_of_attempts(db: Db) {
        const EMAILS: usize = 20;
        const WORKERS: usize = 4;
        let probe = Duration::from_millis(500);
        let outage = Duration::from_secs(3);
        let port = SmtpSink::closed_port();
        let unused = SmtpSink::start();
        let d = TestDaemon::start_with(&db, unused, |c| {
            c.smtp.url = Some(format!("smtp://127.0.0.1:{port}"));
            c.smtp.probe_interval = probe;
            c.delivery.workers = WORKERS as u32;
            c.invitations.rate_limit.count = 1000;
        })
        .await;
        let b = brand(&d).await;
        let emails: Vec<String> = (0..EMAILS).map(|n| format!("o{n}@x.example")).collect();
        let queued = tokio::time::Instant::now();
        let ids = invite_all(&d, &b, &emails).await;
        d.eventually(WAIT,
            &format!("/v1/invitations/{}?actor_user_id=olive", ids[0]),
            |v| v["delivery"]["attempts"].as_u64() >= Some(1),
        )
        .await;
        // The outage itself: the scenario's length, not a wait for a condition.
        tokio::time::sleep(outage).await;
        let failed_attempts = db
            .count("SELECT count(*) FROM email_attempts WHERE outcome = 'transient'")
            .await as usize;
        // The first claims (one per worker), then one probe per interval
        // over the time the server has been down so far.
        let down_for = queued.elapsed();
        let bound = WORKERS + (down_for.as_millis() / probe.as_millis()) as usize + 1;
        assert!(
            failed_attempts <= bound,
            "{failed_attempts} failed attempts for a {down_for:?} outage (at most {bound} expected)"
        );

        let sink = SmtpSink::start_on(port);
        // Back within a few probe intervals of the server's return.
        let mails = sink.wait_for(EMAILS, Duration::from_secs(10)).await;
        assert_eq!(mails.len(), EMAILS);
        for id in &ids {
            d.eventually(WAIT,
                &format!("/v1/invitations/{id}?actor_user_id=olive"),
                |v| v["delivery"]["status"] == "sent",
            )
            .await;
        }
        // Held back, not attempted: most emails have a single attempt, the
        // one that sent them.
        let attempted_during_outage = db
            .count("SELECT count(DISTINCT outbox_id) FROM email_attempts WHERE outcome = 'transient'")
            .await as usize;
        assert!(
            attempted_during_outage <= bound && attempted_during_outage < EMAILS,
            "{attempted_during_outage} of {EMAILS} emails were attempted during the outage"
        );
        d.stop().await;
    }
}

both_stores! {
    /// Issue 12 (7): the server answers `535 5.7.8` to every session (a
    /// wrong password) until its configuration is fixed. That is not the
    /// recipients' refusal: no email is failed, they wait (the breaker
    /// probes), and every one arrives once the server accepts.
    async fn a_wrong_smtp_password_holds_mail_until_it_is_fixed(db: Db) {
        const EMAILS: usize = 5;
        let sink = SmtpSink::start_refusing(535, "5.7.8 Authentication credentials invalid");
        let d = TestDaemon::start_with(&db, sink, |c| {
            c.smtp.probe_interval = Duration::from_millis(300);
            c.invitations.rate_limit.count = 1000;
        })
        .await;
        let b = brand(&d).await;
        let emails: Vec<String> = (0..EMAILS).map(|n| format!("w{n}@x.example")).collect();
        let ids = invite_all(&d, &b, &emails).await;
        // Refused, and refused again by a probe: the email waits, retrying.
        let path = format!("/v1/invitations/{}?actor_user_id=olive", ids[0]);
        let inv = d.eventually(WAIT, &path, |v| {
            v["delivery"]["status"] == "retrying" || v["delivery"]["status"] == "failed"
        })
        .await;
        assert_eq!(inv["delivery"]["status"], "retrying", "{inv}");
        assert!(inv["delivery"]["last_error"].as_str().unwrap().contains("535"), "{inv}");
        let text = d.client().get(d.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let faults = text
            .lines()
            .find(|l| l.starts_with("invited_smtp_config_faults_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no invited_smtp_config_faults_total in:\n{text}"));
        assert!(faults >= 1.0, "{text}");
        assert_eq!(
            db.count("SELECT count(*) FROM email_outbox WHERE status = 'failed'").await,
            0
        );

        d.sink.fix();
        let mails = d.sink.wait_for(EMAILS, WAIT).await;
        assert_eq!(mails.len(), EMAILS);
        for id in &ids {
            let inv = d.eventually(WAIT,
                &format!("/v1/invitations/{id}?actor_user_id=olive"),
                |v| v["delivery"]["status"] == "sent",
            )
            .await;
            assert_eq!(inv["delivery"]["status"], "sent", "{inv}");
        }
        assert_eq!(
            db.count("SELECT count(*) FROM email_outbox WHERE status = 'failed'").await,
            0
        );
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type = 'notification.failed'").await,
            0
        );
        d.stop().await;
    }
}

/// Issue 12 (6): a fresh daemon (its own process, so its own metrics)
/// serves every counter and histogram of docs/operations.md from its first
/// scrape, at 0, with each known label value, so a `rate()` alert sees a
/// series right after a restart. (The `http` ones are labelled by route and
/// status, open-ended: they start with the first request, which this scrape
/// is.) Postgres only: a second process cannot open the SQLite file the
/// harness holds; the metrics do not depend on the store.
#[sqlx::test(migrations = false)]
async fn a_fresh_daemon_serves_every_counter_at_zero(pool: PgPool) {
    {
        let sink = SmtpSink::start();
        let daemon = support::process::DaemonProcess::start(
            &support::daemon::database_url(&pool),
            &sink.url(),
            &[],
        )
        .await;
        let text = reqwest::get(format!("{}/metrics", daemon.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |series: &str| -> Option<f64> {
            text.lines()
                .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse().ok())
        };
        let templates = [
            "member_invitation",
            "invitation_accepted",
            "reminder",
            "partner_invitation",
            "partner_request",
        ];
        let mut expected = vec![
            "invited_rate_limited_total".to_string(),
            "invited_smtp_config_faults_total".to_string(),
        ];
        for kind in ["member", "partner_invite", "partner_request"] {
            expected.push(format!(
                "invited_invitations_created_total{{kind=\"{kind}\"}}"
            ));
            for to in ["accepted", "declined", "cancelled", "expired"] {
                expected.push(format!(
                    "invited_invitation_transitions_total{{kind=\"{kind}\",to=\"{to}\"}}"
                ));
            }
        }
        for template in templates {
            for outcome in ["sent", "transient", "permanent"] {
                expected.push(format!(
                    "invited_email_attempts_total{{template=\"{template}\",outcome=\"{outcome}\"}}"
                ));
            }
            expected.push(format!(
                "invited_email_send_seconds_count{{template=\"{template}\"}}"
            ));
            expected.push(format!(
                "invited_emails_sent_total{{template=\"{template}\",locale=\"en-US\"}}"
            ));
            expected.push(format!(
                "invited_email_failed_total{{template=\"{template}\"}}"
            ));
        }
        for actor in [
            "registry",
            "dispatcher",
            "scheduler",
            "publisher",
            "commands",
            "feedback",
            "invitation",
            "mailer",
        ] {
            expected.push(format!("invited_actor_restarts_total{{actor=\"{actor}\"}}"));
        }
        for kind in [
            "hard_bounce",
            "soft_bounce",
            "complaint",
            "unmatched",
            "malformed",
        ] {
            expected.push(format!(
                "invited_email_feedback_total{{kind=\"{kind}\",source=\"smtp\"}}"
            ));
        }
        for series in &expected {
            assert_eq!(value(series), Some(0.0), "{series} at 0 in:\n{text}");
        }
        // And nothing of the documented table is missing.
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
                .unwrap();
        for row in docs.lines().filter(|l| l.starts_with("| `invited_")) {
            let name = row.split('`').nth(1).unwrap();
            let kind = row.split('|').nth(2).unwrap().trim();
            if name.starts_with("invited_http_") || !matches!(kind, "counter" | "histogram") {
                continue;
            }
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} ({kind}) is missing from a fresh daemon's /metrics:\n{text}"
            );
        }
        drop(daemon);
    }
}
