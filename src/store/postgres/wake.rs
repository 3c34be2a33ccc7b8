//! Wake-ups of the Postgres adapter, sent after the commit, never from inside
//! the transaction.
//!
//! Why not `NOTIFY` in the writing transaction: Postgres serialises every
//! commit that has a pending notification, cluster-wide, from just before the
//! commit until after its WAL flush (`PreCommit_Notify` takes a database-object
//! lock for queue order). Creates, accepts and delivery outcomes all queued
//! mail or wrote events, so none of them could share a flush: commits took
//! turns at the disk's serial rate (BENCHMARKS.md).
//!
//! Instead, after a commit that queued mail or wrote events:
//! - this process is woken at once through a `watch` counter (as the SQLite
//!   adapter does), so its dispatcher and publisher never wait for a poll;
//! - other replicas get a `NOTIFY` from a separate statement of its own,
//!   coalesced (one in flight; commits meanwhile fold into the next). It
//!   writes no WAL, so it does not wait for a flush while it holds that lock.
//!   Its payload is this process's id, so its own listeners skip it.
//!
//! A crash between the commit and that `NOTIFY` loses only the wake-up: other
//! replicas find the work on their next poll, as they would after a dropped
//! notification.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::OrStore as _;
use crate::store::{StoreError, StoreResult, Wakeups};

/// What somebody waits for: new mail in the outbox, or new events.
#[derive(Clone, Copy, Debug)]
pub(super) enum Channel {
    Outbox,
    Events,
}

impl Channel {
    const ALL: [Channel; 2] = [Channel::Outbox, Channel::Events];

    /// The NOTIFY channel that wakes other replicas' dispatchers or publishers.
    fn name(self) -> &'static str {
        match self {
            Channel::Outbox => "invited_outbox",
            Channel::Events => "invited_events",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The channels a transaction wrote to: woken after its commit.
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct Wrote(u8);

impl Wrote {
    pub(super) fn add(&mut self, channel: Channel) {
        self.0 |= channel.bit();
    }
}

/// The signals of one store (one process's pool).
pub(super) struct Signals {
    /// Our id, the payload of our NOTIFYs.
    instance: String,
    /// This process's subscribers, one counter per channel (by `Channel as usize`).
    local: [watch::Sender<u64>; 2],
    /// Channels other replicas still have to be told about (`Channel::bit`s).
    untold: Arc<AtomicU8>,
    /// Wakes the task that tells them; full means it is already due to run.
    tell: mpsc::Sender<()>,
}

impl Signals {
    /// Starts the task that notifies other replicas; it ends with the store.
    pub(super) fn start(pool: PgPool) -> Signals {
        let instance = Uuid::now_v7().to_string();
        let untold = Arc::new(AtomicU8::new(0));
        let (tell, rx) = mpsc::channel(1);
        let (told, uninformed) = (instance.clone(), untold.clone());
        tokio::spawn(async move {
            use futures::FutureExt as _;
            let mut rx = rx;
            // Started again should it ever panic (other replicas would only
            // poll); it belongs to the store, not to the actor tree.
            loop {
                let telling = tell_replicas(&pool, &told, &uninformed, &mut rx);
                if std::panic::AssertUnwindSafe(telling)
                    .catch_unwind()
                    .await
                    .is_ok()
                {
                    return;
                }
                tracing::error!("the task notifying other replicas panicked; starting it again");
            }
        });
        Signals {
            instance,
            local: [watch::channel(0).0, watch::channel(0).0],
            untold,
            tell,
        }
    }

    /// After a commit.
    pub(super) fn committed(&self, wrote: Wrote) {
        if wrote.0 == 0 {
            return;
        }
        for channel in Channel::ALL {
            if wrote.0 & channel.bit() != 0 {
                self.local[channel as usize].send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        self.untold.fetch_or(wrote.0, Ordering::AcqRel);
        let _ = self.tell.try_send(());
    }

    /// Wake-ups on `channel`: our own commits, and other replicas' NOTIFYs.
    pub(super) async fn subscribe(
        &self,
        pool: &PgPool,
        channel: Channel,
    ) -> StoreResult<Box<dyn Wakeups>> {
        let local = self.local[channel as usize].subscribe();
        let mut listener = PgListener::connect_with(pool).await.st()?;
        listener.listen(channel.name()).await.st()?;
        // The listener runs in a task of its own, so waiting on both sources
        // never cancels a read from its connection halfway.
        let (remote_tx, remote) = mpsc::channel(1);
        let instance = self.instance.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(n) if n.payload() == instance => {}
                    // Full: a wake-up is already waiting to be taken.
                    Ok(_) => {
                        let _ = remote_tx.try_send(Ok(()));
                    }
                    Err(e) => {
                        let _ = remote_tx.send(Err(super::map_err(e))).await;
                        return;
                    }
                }
            }
        });
        Ok(Box::new(PgWakeups {
            local,
            remote,
            task,
        }))
    }
}

/// Sends the coalesced NOTIFYs until the store is dropped.
async fn tell_replicas(
    pool: &PgPool,
    instance: &str,
    untold: &AtomicU8,
    rx: &mut mpsc::Receiver<()>,
) {
    while rx.recv().await.is_some() {
        let bits = untold.swap(0, Ordering::AcqRel);
        let channels: Vec<&str> = Channel::ALL
            .into_iter()
            .filter(|c| bits & c.bit() != 0)
            .map(Channel::name)
            .collect();
        if channels.is_empty() {
            continue;
        }
        let told = sqlx::query("SELECT pg_notify(c, $2) FROM unnest($1::text[]) c")
            .bind(&channels)
            .bind(instance)
            .execute(pool)
            .await;
        if let Err(error) = told {
            // Other replicas poll; the pool may be closing.
            tracing::debug!(%error, "could not notify other replicas");
        }
    }
}

struct PgWakeups {
    local: watch::Receiver<u64>,
    remote: mpsc::Receiver<StoreResult<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PgWakeups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl Wakeups for PgWakeups {
    async fn next(&mut self) -> StoreResult<()> {
        tokio::select! {
            changed = self.local.changed() => {
                changed.map_err(|_| StoreError::Unavailable("store closed".into()))
            }
            remote = self.remote.recv() => {
                remote.unwrap_or_else(|| Err(StoreError::Unavailable("notifications ended".into())))
            }
        }
    }
}
