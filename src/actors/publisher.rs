//! The event publisher: one per process, driving one [`SinkPublisher`] per
//! configured sink (each webhook, NATS). Each sink's pass runs in a spawned
//! task that reports back, so a slow webhook never blocks the mailbox or the
//! other sinks. It wakes on the NOTIFY of every transaction that wrote
//! events, polls as a fallback, and wakes a failed sink when its backoff ends.
//! The cursor rows are the record: a crash loses nothing, the next holder of
//! the sink's lease carries on from the cursor.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::events::publisher::{Outcome, SinkPublisher};
use crate::metrics;
use crate::store::Store;

pub enum PublisherMsg {
    /// Events may have committed: look at every sink.
    Wake,
    /// A sink's backoff has ended.
    WakeSink(usize),
    /// A sink's pass ended.
    Done(usize, Result<Outcome, String>),
}

pub struct Publisher;

#[derive(Clone)]
pub struct PublisherArgs {
    pub store: Arc<dyn Store>,
    pub sinks: Vec<Arc<SinkPublisher>>,
    pub poll_interval: Duration,
}

struct SinkState {
    publisher: Arc<SinkPublisher>,
    running: Option<JoinHandle<()>>,
    /// A wake-up came during the pass: run again after it.
    again: bool,
    /// No attempt before this (a failed delivery's backoff).
    not_before: Option<Instant>,
}

pub struct PublisherState {
    sinks: Vec<SinkState>,
    listener: JoinHandle<()>,
}

impl Publisher {
    fn kick(myself: &ActorRef<PublisherMsg>, state: &mut PublisherState, index: usize) {
        let sink = &mut state.sinks[index];
        if sink.running.is_some() {
            sink.again = true;
            return;
        }
        if sink.not_before.is_some_and(|t| t > Instant::now()) {
            return;
        }
        sink.not_before = None;
        sink.again = false;
        let publisher = sink.publisher.clone();
        let me = myself.clone();
        sink.running = Some(tokio::spawn(async move {
            let outcome = publisher.run_once().await.map_err(|e| e.to_string());
            let _ = me.send_message(PublisherMsg::Done(index, outcome));
        }));
    }
}

impl Actor for Publisher {
    type Msg = PublisherMsg;
    type State = PublisherState;
    type Arguments = PublisherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PublisherMsg>,
        args: PublisherArgs,
    ) -> Result<PublisherState, ActorProcessingErr> {
        metrics::actors_live("publisher", args.sinks.len());
        myself.send_interval(args.poll_interval, || PublisherMsg::Wake);
        let listener = tokio::spawn(listen(myself.clone(), args.store, args.poll_interval));
        myself.send_message(PublisherMsg::Wake)?;
        Ok(PublisherState {
            sinks: args
                .sinks
                .into_iter()
                .map(|publisher| SinkState {
                    publisher,
                    running: None,
                    again: false,
                    not_before: None,
                })
                .collect(),
            listener,
        })
    }

    /// Stops every pass (an event cut off mid-delivery is sent again from the
    /// cursor, at least once) and gives the leases up for the other replicas.
    async fn post_stop(
        &self,
        _: ActorRef<PublisherMsg>,
        state: &mut PublisherState,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        for sink in &mut state.sinks {
            if let Some(task) = sink.running.take() {
                task.abort();
                let _ = task.await;
            }
            sink.publisher.release().await;
        }
        metrics::actors_live("publisher", 0);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<PublisherMsg>,
        msg: PublisherMsg,
        state: &mut PublisherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PublisherMsg::Wake => {
                for index in 0..state.sinks.len() {
                    Publisher::kick(&myself, state, index);
                }
            }
            PublisherMsg::WakeSink(index) => {
                if index < state.sinks.len() {
                    Publisher::kick(&myself, state, index);
                }
            }
            PublisherMsg::Done(index, outcome) => {
                let Some(sink) = state.sinks.get_mut(index) else {
                    return Ok(());
                };
                sink.running = None;
                match outcome {
                    Ok(Outcome::More) => Publisher::kick(&myself, state, index),
                    Ok(Outcome::Idle) => {
                        if sink.again {
                            Publisher::kick(&myself, state, index);
                        }
                    }
                    Ok(Outcome::RetryAfter(wait)) => {
                        // Wake-ups before then are ignored, so this is the
                        // only timer of this backoff.
                        sink.not_before = Some(Instant::now() + wait);
                        myself.send_after(wait, move || PublisherMsg::WakeSink(index));
                        sink.again = false;
                    }
                    // Another replica delivers for this sink; the poll checks
                    // whether its lease is still alive.
                    Ok(Outcome::NotOurs) => sink.again = false,
                    Err(error) => {
                        // The database may be restarting: the poll tries again.
                        tracing::warn!(sink = sink.publisher.name(), %error, "event publishing paused");
                        sink.again = false;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Forwards NOTIFY wake-ups; re-subscribes after a dropped connection. Ends
/// when the publisher is gone.
async fn listen(publisher: ActorRef<PublisherMsg>, store: Arc<dyn Store>, retry_every: Duration) {
    loop {
        match store.subscribe_events().await {
            Ok(mut wakeups) => {
                while wakeups.next().await.is_ok() {
                    if publisher.send_message(PublisherMsg::Wake).is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "event notifications unavailable; polling"),
        }
        tokio::time::sleep(retry_every).await;
    }
}
