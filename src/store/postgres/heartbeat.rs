//! The process heartbeat: how one replica tells that another died while it
//! held emails (docs/operations.md, "Recovery after a crash").
//!
//! Each store beats its row in `process_heartbeats` every [`BEAT_EVERY`],
//! by the database's clock; a claim records the store's instance id as the
//! lease owner. An email `sending` under an owner whose beat is older than
//! [`DEAD_AFTER`] (or whose row is gone: a clean shutdown deletes it) is
//! claimable at once, however long its lease still runs. The lease stays
//! the bound for a live owner's slow SMTP exchange.
//!
//! Two live processes never send one email at once because a claim only
//! succeeds while the claimer's own beat is fresher than [`CLAIM_IF_BEAT_WITHIN`]
//! (half of `DEAD_AFTER`): an email is taken from an owner only after that
//! owner missed five beats in a row, that is after it could not reach the
//! database for 10 s. Such a process cannot record its outcomes either; its
//! sends in flight may then go out twice, the at-least-once duplicate a
//! crash already admits (ARCHITECTURE.md).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::OrStore as _;
use crate::store::StoreResult;

/// How often a process beats.
pub(super) const BEAT_EVERY: Duration = Duration::from_secs(2);
/// A process whose beat is older than this counts as dead (five missed beats).
pub(super) const DEAD_AFTER: Duration = Duration::from_secs(10);
/// A claim needs the claimer's own beat at most this old.
pub(super) const CLAIM_IF_BEAT_WITHIN: Duration = Duration::from_secs(5);

/// Rows of processes gone for a day are deleted by the beats of the others
/// (absent and stale mean the same to a claim).
const BEAT: &str = "
    WITH forgotten AS (
        DELETE FROM process_heartbeats WHERE beat_at < now() - interval '1 day'
    )
    INSERT INTO process_heartbeats (instance_id, started_at, beat_at) VALUES ($1, now(), now())
    ON CONFLICT (instance_id) DO UPDATE SET beat_at = now()";

/// One store's heartbeat: its instance id and the task that beats.
pub(super) struct Heartbeat {
    pub(super) instance: Uuid,
    /// When this process last saw a beat of its own commit.
    last: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts beating at once; must be called inside a tokio runtime.
    pub(super) fn start(pool: PgPool) -> Heartbeat {
        let instance = Uuid::now_v7();
        let last = Arc::new(Mutex::new(None));
        let task = tokio::spawn(beat_until_closed(pool, instance, last.clone()));
        Heartbeat {
            instance,
            last,
            task,
        }
    }

    /// Beats now unless a beat landed recently, so a claim never runs on a
    /// beat about to look stale (the claim re-checks it by the database's
    /// clock).
    pub(super) async fn fresh(&self, pool: &PgPool) -> StoreResult<()> {
        let recent = self
            .last
            .lock()
            .expect("heartbeat clock")
            .is_some_and(|at| at.elapsed() < BEAT_EVERY * 2);
        if !recent {
            beat(pool, self.instance, &self.last).await?;
        }
        Ok(())
    }

    /// A clean stop: our row goes, so whatever we still held is claimable
    /// by the others at once. Bounded: the database may be gone.
    pub(super) async fn stop(&self, pool: &PgPool) {
        self.task.abort();
        let gone = sqlx::query("DELETE FROM process_heartbeats WHERE instance_id = $1")
            .bind(self.instance)
            .execute(pool);
        if let Err(error) = tokio::time::timeout(BEAT_EVERY, gone)
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut))
        {
            tracing::debug!(%error, "could not delete this process's heartbeat");
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn beat(pool: &PgPool, instance: Uuid, last: &Mutex<Option<Instant>>) -> StoreResult<()> {
    beat_once(pool, instance, last).await.st()
}

async fn beat_once(
    pool: &PgPool,
    instance: Uuid,
    last: &Mutex<Option<Instant>>,
) -> Result<(), sqlx::Error> {
    let started = Instant::now();
    sqlx::query(BEAT).bind(instance).execute(pool).await?;
    *last.lock().expect("heartbeat clock") = Some(started);
    Ok(())
}

/// The database has no `process_heartbeats` table yet: the store beats
/// from the moment it is opened, and `migrate` may not have run (or be
/// running). Not worth a warning; the next beat after the migration lands.
fn not_migrated_yet(error: &sqlx::Error) -> bool {
    const UNDEFINED_TABLE: &str = "42P01";
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == UNDEFINED_TABLE)
}

/// [`beat_forever`], started again should it ever panic: a heartbeat lost
/// silently would let the other replicas take this process's emails. The
/// task belongs to the store (aborted when it is dropped), not to the actor
/// tree: stores without a daemon beat too.
async fn beat_until_closed(pool: PgPool, instance: Uuid, last: Arc<Mutex<Option<Instant>>>) {
    use futures::FutureExt as _;
    loop {
        let beating =
            std::panic::AssertUnwindSafe(beat_forever(pool.clone(), instance, last.clone()));
        if beating.catch_unwind().await.is_ok() {
            return;
        }
        tracing::error!("the heartbeat task panicked; starting it again");
        tokio::time::sleep(BEAT_EVERY).await;
    }
}

async fn beat_forever(pool: PgPool, instance: Uuid, last: Arc<Mutex<Option<Instant>>>) {
    let mut tick = tokio::time::interval(BEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        // Each beat bounded by the interval: a hung connection must not
        // hold up the next one.
        match tokio::time::timeout(BEAT_EVERY, beat_once(&pool, instance, &last)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) if not_migrated_yet(&error) => {
                tracing::debug!(%error, "no heartbeat yet: the schema is not migrated")
            }
            Ok(Err(error)) => tracing::warn!(%error, "could not write this process's heartbeat"),
            Err(_) => {
                tracing::warn!("this process's heartbeat did not commit within {BEAT_EVERY:?}")
            }
        }
    }
}
