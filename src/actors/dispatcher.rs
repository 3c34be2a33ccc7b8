//! The dispatcher: claims due emails from the outbox (a lease, committed before
//! any network call) and hands each to an idle mailer worker (through the
//! mailers' factory, which it supervises). It wakes on
//! Postgres NOTIFY from the transaction that queued the mail, and polls as a
//! fallback, so a lost notification only delays mail by one poll interval.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::mailer::{Mailers, MailersMsg};
use crate::mail::Admission;
use crate::metrics;
use crate::service::delivery::Delivery;

pub enum DispatcherMsg {
    /// Look for due mail.
    Wake,
    /// A worker finished its email (or crashed on it).
    Done,
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
    mailers: ActorRef<MailersMsg>,
    /// Workers of the factory.
    workers: usize,
    /// Workers without an email.
    idle: usize,
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

impl Actor for Dispatcher {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = DispatcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DispatcherMsg>,
        args: DispatcherArgs,
    ) -> Result<DispatcherState, ActorProcessingErr> {
        let (mailers, _) = Actor::spawn_linked(
            None,
            Mailers::default(),
            super::mailer::mailers(args.workers, args.delivery.clone(), myself.clone()),
            myself.get_cell(),
        )
        .await?;
        metrics::actors_live("mailer", args.workers);
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
            mailers,
            workers: args.workers,
            idle: args.workers,
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
            DispatcherMsg::Done => {
                state.idle = (state.idle + 1).min(state.workers);
                if state.more_due && !state.claim_pending {
                    state.claim_pending = true;
                    myself.send_message(DispatcherMsg::Wake)?;
                }
                return Ok(());
            }
        }
        if state.idle == 0 {
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
        let room = if state.more_due { state.idle } else { 1 }.min(room_cap);
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
            state.idle -= 1;
            if let Err(error) = super::mailer::send(&state.mailers, email) {
                // Its lease brings the email back; the factory is gone, and
                // the dispatcher with it (below).
                tracing::warn!(%error, "the mailers are unavailable");
            }
        }
        if state.more_due && state.idle > 0 {
            myself.send_message(DispatcherMsg::Wake)?;
        }
        Ok(())
    }

    /// The factory replaces crashed workers itself; should the factory
    /// itself exit, the dispatcher fails with it and the root restarts both.
    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<DispatcherMsg>,
        event: SupervisionEvent,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error)
                if cell.get_id() == state.mailers.get_id() =>
            {
                Err(format!("the mailers' factory failed: {error}").into())
            }
            SupervisionEvent::ActorTerminated(cell, _, reason)
                if cell.get_id() == state.mailers.get_id() =>
            {
                Err(format!("the mailers' factory stopped: {reason:?}").into())
            }
            _ => Ok(()),
        }
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
