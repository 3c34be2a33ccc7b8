//! The dispatcher: claims due emails from the outbox (a lease, committed before
//! any network call) and hands each to an idle mailer worker. It wakes on
//! Postgres NOTIFY from the transaction that queued the mail, and polls as a
//! fallback, so a lost notification only delays mail by one poll interval.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::mailer::{MailerArgs, MailerMsg, MailerWorker};
use crate::mail::Admission;
use crate::metrics;
use crate::service::delivery::Delivery;

pub enum DispatcherMsg {
    /// Look for due mail.
    Wake,
    /// A worker finished its email.
    Done { worker: usize },
    /// The send rate lets the next email go.
    RateReady,
    /// The SMTP circuit breaker lets a probe through.
    ProbeReady,
}

pub struct Dispatcher;

pub struct DispatcherArgs {
    pub delivery: Arc<Delivery>,
    pub workers: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
}

pub struct DispatcherState {
    delivery: Arc<Delivery>,
    lease: Duration,
    workers: Vec<ActorRef<MailerMsg>>,
    idle: Vec<usize>,
    /// The last claim filled every idle worker: more mail is probably due.
    more_due: bool,
    /// A `RateReady` is on its way.
    rate_wake_pending: bool,
    /// A `ProbeReady` is on its way.
    probe_wake_pending: bool,
    /// A `Wake` is on its way from a `Done`: the claim waits for it, so the
    /// `Done`s already in the mailbox free their workers first and one claim
    /// fills them all. Claiming on each `Done` took one email per claim (one
    /// commit each) when workers finish one by one: 149 emails/s for a
    /// 10,000 burst (BENCHMARKS.md).
    claim_pending: bool,
    /// Owned tasks ([`super::spawn_owned`]): the NOTIFY listener and the
    /// delivery recorder's lanes, which the workers record through.
    listener: tokio::task::JoinHandle<()>,
    recorder: tokio::task::JoinHandle<()>,
}

async fn spawn_worker(
    myself: &ActorRef<DispatcherMsg>,
    delivery: &Arc<Delivery>,
    index: usize,
) -> Result<ActorRef<MailerMsg>, ActorProcessingErr> {
    let args = MailerArgs {
        index,
        delivery: delivery.clone(),
        dispatcher: myself.clone(),
    };
    let (worker, _) = Actor::spawn_linked(None, MailerWorker, args, myself.get_cell()).await?;
    Ok(worker)
}

impl Actor for Dispatcher {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = DispatcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DispatcherMsg>,
        args: DispatcherArgs,
    ) -> Result<DispatcherState, ActorProcessingErr> {
        let mut workers = Vec::with_capacity(args.workers);
        for index in 0..args.workers {
            workers.push(spawn_worker(&myself, &args.delivery, index).await?);
        }
        metrics::actors_live("mailer", workers.len());
        myself.send_interval(args.poll_interval, || DispatcherMsg::Wake);
        let recorder = super::spawn_owned(
            myself.get_cell(),
            "recorder",
            args.delivery.recorder.lanes(),
        );
        let listener = super::spawn_owned(
            myself.get_cell(),
            "outbox listener",
            listen(myself.clone(), args.delivery.clone(), args.poll_interval),
        );
        myself.send_message(DispatcherMsg::Wake)?;
        Ok(DispatcherState {
            delivery: args.delivery,
            lease: args.lease,
            idle: (0..workers.len()).rev().collect(),
            workers,
            more_due: false,
            rate_wake_pending: false,
            probe_wake_pending: false,
            claim_pending: false,
            listener,
            recorder,
        })
    }

    /// Stop claiming, then let each worker finish the email it holds (and
    /// record it: the recorder's lanes stop last).
    async fn post_stop(
        &self,
        myself: ActorRef<DispatcherMsg>,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        super::stop_children(&myself.get_cell()).await;
        state.recorder.abort();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<DispatcherMsg>,
        msg: DispatcherMsg,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DispatcherMsg::Wake => state.claim_pending = false,
            DispatcherMsg::RateReady => state.rate_wake_pending = false,
            DispatcherMsg::ProbeReady => state.probe_wake_pending = false,
            DispatcherMsg::Done { worker } => {
                if !state.idle.contains(&worker) {
                    state.idle.push(worker);
                }
                if state.more_due && !state.claim_pending {
                    state.claim_pending = true;
                    myself.send_message(DispatcherMsg::Wake)?;
                }
                return Ok(());
            }
        }
        if state.idle.is_empty() {
            return Ok(());
        }
        // While the SMTP transport is down (the circuit breaker is open),
        // nothing is claimed but one probe per interval: the emails held
        // back stay in the outbox, unattempted, until the probe succeeds.
        let room_cap = match state.delivery.mailer.admit() {
            Admission::Send => usize::MAX,
            Admission::Probe => 1,
            Admission::WaitUntil(at) => {
                if !state.probe_wake_pending {
                    state.probe_wake_pending = true;
                    let wait = at.saturating_duration_since(std::time::Instant::now());
                    myself.send_after(wait, || DispatcherMsg::ProbeReady);
                }
                return Ok(());
            }
        };
        // One token of `mail.send_rate` per email, taken before the claim: an
        // email never waits for its turn while its lease runs. A token is only
        // lost when the outbox turns out to be emptier than hoped; after a
        // short claim the next one asks for a single email, so an idle outbox
        // costs at most one token per wake-up.
        let room = if state.more_due { state.idle.len() } else { 1 }.min(room_cap);
        let mut want = 0u32;
        while (want as usize) < room {
            match state.delivery.send_rate.check() {
                Ok(()) => want += 1,
                Err(not_until) => {
                    if !state.rate_wake_pending {
                        state.rate_wake_pending = true;
                        let wait = not_until.wait_time_from(governor::clock::Clock::now(
                            &governor::clock::DefaultClock::default(),
                        ));
                        myself.send_after(wait, || DispatcherMsg::RateReady);
                    }
                    break;
                }
            }
        }
        if want == 0 {
            return Ok(());
        }
        let claimed = match state
            .delivery
            .services
            .store
            .claim_emails(want, state.lease)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                // The poll tries again; the database may be restarting.
                tracing::warn!(%error, "could not claim outbox emails");
                return Ok(());
            }
        };
        state.more_due = claimed.len() as u32 == want;
        for email in claimed {
            let worker = state.idle.pop().expect("claimed no more than idle workers");
            if let Err(error) = state.workers[worker].send_message(MailerMsg::Send(Box::new(email)))
            {
                // Its lease brings the email back; the worker is restarted by
                // the supervision event.
                tracing::warn!(%error, worker, "mailer worker unavailable");
            }
        }
        if state.more_due && !state.idle.is_empty() {
            myself.send_message(DispatcherMsg::Wake)?;
        }
        Ok(())
    }

    /// A crashed worker is replaced; the email it held comes back when its
    /// lease ends.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<DispatcherMsg>,
        event: SupervisionEvent,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, error) = event
            && let Some(index) = state
                .workers
                .iter()
                .position(|w| w.get_id() == cell.get_id())
        {
            tracing::error!(%error, worker = index, "mailer worker crashed; restarting it");
            metrics::actor_restarted("mailer");
            state.workers[index] = spawn_worker(&myself, &state.delivery, index).await?;
            if !state.idle.contains(&index) {
                state.idle.push(index);
            }
        }
        Ok(())
    }
}

/// Forwards NOTIFY wake-ups to the dispatcher; re-subscribes after a dropped
/// connection. Ends when the dispatcher is gone.
async fn listen(
    dispatcher: ActorRef<DispatcherMsg>,
    delivery: Arc<Delivery>,
    retry_every: Duration,
) {
    loop {
        match delivery.services.store.subscribe_outbox().await {
            Ok(mut wakeups) => {
                while wakeups.next().await.is_ok() {
                    if dispatcher.send_message(DispatcherMsg::Wake).is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "outbox notifications unavailable; polling"),
        }
        tokio::time::sleep(retry_every).await;
    }
}
