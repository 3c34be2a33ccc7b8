//! The event publisher: one per process, driving one [`SinkPublisher`] per
//! sink: each configured webhook, NATS, and each enabled webhook endpoint of
//! the API (R48). Each sink's pass runs in a spawned task that reports back,
//! so a slow webhook never blocks the mailbox or the other sinks. It wakes
//! on the NOTIFY of every transaction that wrote events (or changed an
//! endpoint), polls as a fallback, and wakes a failed sink when its backoff
//! ends. On every wake-up it reloads the endpoints of the API (in a task)
//! and adds, replaces or drops their sinks. The cursor rows are the record:
//! a crash loses nothing, the next holder of the sink's lease carries on
//! from the cursor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::events::publisher::{Outcome, SinkPublisher};
use crate::metrics;
use crate::store::{Store, WebhookEndpointRecord, endpoint_sink};

pub enum PublisherMsg {
    /// Events may have committed, or endpoints changed: look at every sink.
    Wake,
    /// A sink's backoff has ended.
    WakeSink(String),
    /// A sink's pass ended.
    Done(String, Result<Outcome, String>),
    /// The endpoints of the API as the store has them now.
    Endpoints(Vec<WebhookEndpointRecord>),
    /// Reading the endpoints failed (the database may be restarting).
    EndpointsFailed(String),
}

pub struct Publisher;

/// Builds the publisher of an endpoint of the API; `None` if its sink cannot
/// be built (logged).
pub type EndpointPublisher =
    Arc<dyn Fn(&WebhookEndpointRecord) -> Option<Arc<SinkPublisher>> + Send + Sync>;

#[derive(Clone)]
pub struct PublisherArgs {
    pub store: Arc<dyn Store>,
    /// The configured sinks.
    pub sinks: Vec<Arc<SinkPublisher>>,
    pub endpoints: EndpointPublisher,
    pub poll_interval: Duration,
}

struct SinkState {
    publisher: Arc<SinkPublisher>,
    /// For an endpoint of the API, the `updated_at` its sink was built
    /// from; `None` for a configured sink.
    version: Option<DateTime<Utc>>,
    running: Option<JoinHandle<()>>,
    /// A wake-up came during the pass: run again after it.
    again: bool,
    /// No attempt before this (a failed delivery's backoff).
    not_before: Option<Instant>,
}

impl SinkState {
    fn new(publisher: Arc<SinkPublisher>, version: Option<DateTime<Utc>>) -> SinkState {
        SinkState {
            publisher,
            version,
            running: None,
            again: false,
            not_before: None,
        }
    }
}

pub struct PublisherState {
    store: Arc<dyn Store>,
    endpoints: EndpointPublisher,
    sinks: BTreeMap<String, SinkState>,
    /// A reload of the endpoints is under way.
    reloading: bool,
    /// A wake-up came during the reload: reload again after it.
    reload_again: bool,
    /// Endpoint sinks a pass found disabled, with the version they ran: a
    /// reload read before the disable committed must not bring them back.
    retired: BTreeMap<String, Option<DateTime<Utc>>>,
    listener: JoinHandle<()>,
}

impl Publisher {
    fn kick(myself: &ActorRef<PublisherMsg>, state: &mut PublisherState, name: &str) {
        let Some(sink) = state.sinks.get_mut(name) else {
            return;
        };
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
        let name = name.to_string();
        sink.running = Some(tokio::spawn(async move {
            // A pass that panics reports it like a failed one: the sink is
            // not left marked as running forever.
            let outcome = match super::unwound(publisher.run_once()).await {
                Ok(outcome) => outcome.map_err(|e| e.to_string()),
                Err(panic) => Err(format!("the pass panicked: {panic}")),
            };
            let _ = me.send_message(PublisherMsg::Done(name, outcome));
        }));
    }

    fn reload(myself: &ActorRef<PublisherMsg>, state: &mut PublisherState) {
        if state.reloading {
            state.reload_again = true;
            return;
        }
        state.reloading = true;
        state.reload_again = false;
        let store = state.store.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let msg = match super::unwound(store.webhook_endpoints()).await {
                Ok(Ok(endpoints)) => PublisherMsg::Endpoints(endpoints),
                Ok(Err(error)) => PublisherMsg::EndpointsFailed(error.to_string()),
                Err(panic) => PublisherMsg::EndpointsFailed(format!("panicked: {panic}")),
            };
            let _ = me.send_message(msg);
        });
    }

    /// Drops a sink and gives its lease up once a pass under way has ended.
    /// The pass is not cut off: it reads its endpoint after its events, so it
    /// sends nothing to an endpoint paused or deleted before that, and
    /// stopping it between a delivery and the cursor's move would only send
    /// that event twice (or leave a deleted endpoint's cursor behind).
    fn drop_sink(state: &mut PublisherState, name: &str) {
        if let Some(mut sink) = state.sinks.remove(name) {
            let running = sink.running.take();
            let publisher = sink.publisher;
            tokio::spawn(async move {
                if let Some(task) = running {
                    let _ = task.await;
                }
                publisher.release().await;
            });
        }
    }

    /// Makes the endpoint sinks those of the enabled `endpoints`.
    fn reconcile(
        myself: &ActorRef<PublisherMsg>,
        state: &mut PublisherState,
        endpoints: Vec<WebhookEndpointRecord>,
    ) {
        let enabled: BTreeMap<String, WebhookEndpointRecord> = endpoints
            .into_iter()
            .filter(|e| !e.disabled)
            .map(|e| (endpoint_sink(e.id), e))
            .collect();
        // A retired sink stays away while the store still shows the version
        // it ran (a read from before its disable); any other version (the
        // disable itself, or a later re-enable) settles it.
        state.retired.retain(|name, version| {
            enabled
                .get(name)
                .is_some_and(|e| Some(e.updated_at) == *version)
        });
        let gone: Vec<String> = state
            .sinks
            .iter()
            .filter(|(name, sink)| sink.version.is_some() && !enabled.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            Publisher::drop_sink(state, &name);
        }
        for (name, endpoint) in enabled {
            if state.retired.contains_key(&name) {
                continue;
            }
            let current = state.sinks.get(&name).and_then(|s| s.version);
            if current == Some(endpoint.updated_at) {
                continue;
            }
            let Some(publisher) = (state.endpoints)(&endpoint) else {
                continue;
            };
            match state.sinks.get_mut(&name) {
                // Changed (URL, filter, secret, re-enabled): the next pass
                // uses the new sink; one under way finishes with the old.
                Some(sink) => {
                    sink.publisher = publisher;
                    sink.version = Some(endpoint.updated_at);
                    sink.not_before = None;
                }
                None => {
                    state.sinks.insert(
                        name.clone(),
                        SinkState::new(publisher, Some(endpoint.updated_at)),
                    );
                }
            }
            Publisher::kick(myself, state, &name);
        }
        metrics::actors_live("publisher", state.sinks.len());
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
        let listener = super::spawn_owned(
            myself.get_cell(),
            "events listener",
            listen(myself.clone(), args.store.clone(), args.poll_interval),
        );
        myself.send_message(PublisherMsg::Wake)?;
        Ok(PublisherState {
            store: args.store,
            endpoints: args.endpoints,
            sinks: args
                .sinks
                .into_iter()
                .map(|publisher| {
                    (
                        publisher.name().to_string(),
                        SinkState::new(publisher, None),
                    )
                })
                .collect(),
            reloading: false,
            reload_again: false,
            retired: BTreeMap::new(),
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
        for sink in state.sinks.values_mut() {
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
                let names: Vec<String> = state.sinks.keys().cloned().collect();
                for name in names {
                    Publisher::kick(&myself, state, &name);
                }
                Publisher::reload(&myself, state);
            }
            PublisherMsg::WakeSink(name) => Publisher::kick(&myself, state, &name),
            PublisherMsg::Endpoints(endpoints) => {
                state.reloading = false;
                Publisher::reconcile(&myself, state, endpoints);
                if state.reload_again {
                    Publisher::reload(&myself, state);
                }
            }
            PublisherMsg::EndpointsFailed(error) => {
                // The poll tries again.
                tracing::debug!(%error, "could not read the webhook endpoints");
                state.reloading = false;
                state.reload_again = false;
            }
            PublisherMsg::Done(name, outcome) => {
                let Some(sink) = state.sinks.get_mut(&name) else {
                    return Ok(());
                };
                sink.running = None;
                match outcome {
                    Ok(Outcome::More) => Publisher::kick(&myself, state, &name),
                    Ok(Outcome::Idle) => {
                        if sink.again {
                            Publisher::kick(&myself, state, &name);
                        }
                    }
                    Ok(Outcome::RetryAfter(wait)) => {
                        // Wake-ups before then are ignored, so this is the
                        // only timer of this backoff.
                        sink.not_before = Some(Instant::now() + wait);
                        let wake = name.clone();
                        myself.send_after(wait, move || PublisherMsg::WakeSink(wake));
                        sink.again = false;
                    }
                    // Another replica delivers for this sink; the poll checks
                    // whether its lease is still alive. A wake-up during the
                    // pass (a replay dropping the lease) is served at once.
                    Ok(Outcome::NotOurs) => {
                        if sink.again {
                            Publisher::kick(&myself, state, &name);
                        }
                    }
                    // Stop at once; the reload the store's wake-up brings
                    // would drop it too.
                    Ok(Outcome::Disabled) => {
                        let version = sink.version;
                        state.retired.insert(name.clone(), version);
                        Publisher::drop_sink(state, &name);
                    }
                    Err(error) => {
                        // The database may be restarting: the poll tries again.
                        tracing::warn!(sink = %name, %error, "event publishing paused");
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
