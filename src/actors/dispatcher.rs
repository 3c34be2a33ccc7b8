//! The dispatcher: claims due emails from the outbox (a lease, committed before
//! any network call) and hands each to an idle mailer worker (through the
//! mailers' factory, which it supervises). It wakes on
//! Postgres NOTIFY from the transaction that queued the mail, and polls as a
//! fallback, so a lost notification only delays mail by one poll interval.
//!
//! Claims run ahead of the workers: each is a short task of its own (at most
//! [`CLAIMS_IN_FLIGHT`] at once), so the next claim is on its way while the
//! emails of the last one are being sent and recorded. What bounds the
//! emails in flight is a semaphore of `delivery.workers` permits: one is
//! taken per email before its claim and returned only once its outcome is
//! committed (it travels with the email to its worker and on to the
//! recorder), so at most `delivery.workers` emails are ever claimed and not
//! yet recorded, the ones a crash could send twice. Why: claiming one batch
//! at a time (9-12 ms a claim under load) while each worker waited for its
//! outcome's commit (~17 ms) held delivery at ~3,500 emails/s with workers
//! idle between claims (BENCHMARKS.md).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::mailer::{Mailers, MailersMsg};
use crate::mail::Admission;
use crate::metrics;
use crate::service::delivery::Delivery;
use crate::store::ClaimedEmail;

/// Claims on their way at once. Two: one in flight while the emails of the
/// previous one are handed out; more would only split the free permits into
/// smaller claims (and on SQLite claims take the one write lock in turn).
pub const CLAIMS_IN_FLIGHT: usize = 2;

pub enum DispatcherMsg {
    /// Look for due mail.
    Wake,
    /// An email's outcome was committed (or will be retried by its lease):
    /// its permit is free.
    Freed,
    /// A claim ended; what it claimed waits in the claimed buffer. `more_due`:
    /// it got every email it asked for, so more are probably due.
    Claimed { more_due: bool },
    /// A claim task panicked: the dispatcher fails and is restarted.
    ClaimPanicked(String),
    /// The send rate lets the next email go.
    RateReady,
    /// The SMTP circuit breaker lets a probe through.
    ProbeReady,
}

/// A claimed email with its permit: the permit returns (and the dispatcher
/// hears of it) when this is dropped, which the worker leaves to the
/// recorder's commit of the outcome.
pub struct Leased {
    pub email: ClaimedEmail,
    pub permit: Permit,
}

/// One of the dispatcher's `delivery.workers` permits.
pub struct Permit {
    _permit: OwnedSemaphorePermit,
    dispatcher: ActorRef<DispatcherMsg>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        // The dispatcher may be restarting; it starts with every permit free.
        let _ = self.dispatcher.send_message(DispatcherMsg::Freed);
    }
}

/// Emails claimed and not yet handed to a worker: filled by the claim
/// tasks, emptied by the dispatcher, released to the outbox at shutdown.
type Claimed = Arc<Mutex<Vec<Leased>>>;

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
    /// `delivery.workers`: the permits, and the workers of the factory.
    workers: usize,
    /// One permit per email claimed and not yet recorded.
    permits: Arc<Semaphore>,
    claimed: Claimed,
    /// Claims started and not yet reported back (`Claimed`).
    in_flight: usize,
    /// Their tasks, awaited at shutdown (finished ones are dropped as new
    /// ones start).
    claims: Vec<tokio::task::JoinHandle<()>>,
    /// The last claim got every email it asked for: more mail is probably due.
    more_due: bool,
    /// A wake-up (NOTIFY, the poll, or a `Freed` batch) asked for a claim
    /// that has not started yet (permits, claims in flight, the send rate
    /// or the breaker held it back). With neither this nor `more_due` no
    /// claim starts: a claim that found the outbox empty ends the search
    /// until the next wake-up, where it used to start the next claim at
    /// once, an endless loop of empty claims on an idle outbox, each taking
    /// a token of `mail.send_rate` that a real email then waited for.
    looking: bool,
    /// A `RateReady` is on its way.
    rate_wake_pending: bool,
    /// A `ProbeReady` is on its way.
    probe_wake_pending: bool,
    /// A `Wake` is on its way from a `Freed`: the claim waits for it, so the
    /// `Freed`s already in the mailbox (a recorder batch frees many permits
    /// at once) go first and one claim takes them all. Claiming on each
    /// freed worker took one email per claim (one commit each) when workers
    /// finish one by one: 149 emails/s for a 10,000 burst (BENCHMARKS.md).
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
            super::mailer::mailers(args.workers, args.delivery.clone()),
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
            permits: Arc::new(Semaphore::new(args.workers)),
            claimed: Claimed::default(),
            in_flight: 0,
            claims: Vec::new(),
            more_due: false,
            looking: false,
            rate_wake_pending: false,
            probe_wake_pending: false,
            claim_pending: false,
            listener,
            recorder,
        })
    }

    /// Stop claiming and hand back what was claimed and not yet sent; let
    /// each worker finish the email it holds; wait until every outcome is
    /// committed (every permit back), and only then stop the recorder's
    /// lanes.
    async fn post_stop(
        &self,
        myself: ActorRef<DispatcherMsg>,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        for claim in state.claims.drain(..) {
            // A claim is one statement, bounded by the store's own limits.
            let _ = tokio::time::timeout(super::STOP_DEADLINE, claim).await;
        }
        release(&state.delivery, &state.claimed).await;
        super::stop_children(&myself.get_cell()).await;
        let everything = u32::try_from(state.workers).unwrap_or(u32::MAX);
        tokio::select! {
            _ = state.permits.acquire_many(everything) => {}
            // The lanes panicked (which is why we stop): the outcomes they
            // left stay queued for the lanes of the restarted dispatcher.
            _ = &mut state.recorder => {}
            _ = tokio::time::sleep(super::STOP_DEADLINE) => tracing::warn!(
                "delivery outcomes still unrecorded at shutdown; their leases will retry them"
            ),
        }
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
            DispatcherMsg::Wake => {
                state.claim_pending = false;
                state.looking = true;
            }
            DispatcherMsg::RateReady => state.rate_wake_pending = false,
            DispatcherMsg::ProbeReady => state.probe_wake_pending = false,
            DispatcherMsg::Freed => {
                if (state.more_due || state.looking) && !state.claim_pending {
                    state.claim_pending = true;
                    myself.send_message(DispatcherMsg::Wake)?;
                }
                return Ok(());
            }
            DispatcherMsg::Claimed { more_due } => {
                state.in_flight = state.in_flight.saturating_sub(1);
                state.more_due = more_due;
                let claimed = std::mem::take(&mut *lock(&state.claimed));
                for email in claimed {
                    if let Err(error) = super::mailer::send(&state.mailers, email) {
                        // Its lease brings the email back; the factory is
                        // gone, and the dispatcher with it (below).
                        tracing::warn!(%error, "the mailers are unavailable");
                    }
                }
            }
            DispatcherMsg::ClaimPanicked(panic) => {
                return Err(format!("a claim panicked: {panic}").into());
            }
        }
        self.start_claim(myself, state)
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

impl Dispatcher {
    /// Starts a claim for as many emails as permits are free (one while the
    /// outbox looked empty), unless enough claims are on their way already
    /// or nothing asks for one (see `looking`).
    fn start_claim(
        &self,
        myself: ActorRef<DispatcherMsg>,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.more_due && !state.looking {
            return Ok(());
        }
        let free = state.permits.available_permits();
        if free == 0 || state.in_flight >= CLAIMS_IN_FLIGHT {
            // A `Freed` or a `Claimed` comes back and claims then.
            return Ok(());
        }
        if state.more_due && free < claim_floor(state.workers) {
            // Enough emails are in flight to keep the connections busy: wait
            // for their outcomes to free a batch worth a claim (see
            // `claim_floor`); the `Freed` that completes it claims.
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
        let room = if state.more_due { free } else { 1 }.min(room_cap);
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
        // Only this actor takes permits, and `want` <= `free`.
        let permits = state
            .permits
            .clone()
            .try_acquire_many_owned(want)
            .map_err(|e| format!("the dispatcher's permits: {e}"))?;
        state.claims.retain(|claim| !claim.is_finished());
        state.in_flight += 1;
        state.looking = false;
        state.claims.push(tokio::spawn(claim_task(
            myself.clone(),
            state.delivery.clone(),
            state.claimed.clone(),
            permits,
            want,
            state.lease,
        )));
        Ok(())
    }
}

/// The fewest emails a claim asks for while more are due: a quarter of
/// `delivery.workers`. Every claim and every batch of outcomes is one
/// statement whose fixed cost (planning, checks, index upkeep set-up, a
/// commit) is paid per statement, not per email. Claiming whatever permits
/// the last recorded batch freed fed back into itself: claims of 8 emails
/// freed permits 6 at a time, so the next claims were as small again, and
/// 10,000 emails took ~1,300 claims and ~1,600 outcome batches
/// (pg_stat_statements, BENCHMARKS.md). Waiting for a quarter of the
/// permits never idles a connection: three quarters of the workers' emails
/// are still being sent or recorded, and each outcome recorded frees its
/// permit, so the floor is always reached. An idle outbox is not affected:
/// the first claim after a wake-up asks for one email whatever is free.
fn claim_floor(workers: usize) -> usize {
    (workers / 4).max(1)
}

/// One claim, a short task that reports back to the dispatcher (a panic
/// included): the emails it got go into the claimed buffer, each with one of
/// `permits`; the permits it did not use return at once. Should the
/// dispatcher be gone, the emails are handed back to the outbox.
async fn claim_task(
    dispatcher: ActorRef<DispatcherMsg>,
    delivery: Arc<Delivery>,
    claimed: Claimed,
    mut permits: OwnedSemaphorePermit,
    want: u32,
    lease: Duration,
) {
    let work = async {
        let emails = match delivery.services.store.claim_emails(want, lease).await {
            Ok(emails) => emails,
            Err(error) => {
                // The poll tries again; the database may be restarting.
                tracing::warn!(%error, "could not claim outbox emails");
                return false;
            }
        };
        let more_due = emails.len() as u32 == want;
        let mut buffer = lock(&claimed);
        for email in emails {
            let Some(permit) = permits.split(1) else {
                break;
            };
            buffer.push(Leased {
                email,
                permit: Permit {
                    _permit: permit,
                    dispatcher: dispatcher.clone(),
                },
            });
        }
        more_due
    };
    let report = match super::unwound(work).await {
        Ok(more_due) => DispatcherMsg::Claimed { more_due },
        Err(panic) => DispatcherMsg::ClaimPanicked(panic),
    };
    if dispatcher.send_message(report).is_err() {
        release(&delivery, &claimed).await;
    }
}

/// Hands the claimed buffer's emails back to the outbox (shutdown): no
/// email waits out its lease for a send that never began.
async fn release(delivery: &Delivery, claimed: &Claimed) {
    let emails = std::mem::take(&mut *lock(claimed));
    if emails.is_empty() {
        return;
    }
    let ids: Vec<uuid::Uuid> = emails.iter().map(|leased| leased.email.id).collect();
    match delivery.services.store.release_emails(&ids).await {
        Ok(()) => tracing::info!(
            emails = ids.len(),
            "claimed emails handed back to the outbox"
        ),
        Err(error) => {
            tracing::warn!(%error, emails = ids.len(), "could not hand claimed emails back; their leases will")
        }
    }
}

/// The buffer's lock; nothing panics while holding it, but a poisoned lock
/// still holds good emails.
fn lock(claimed: &Claimed) -> std::sync::MutexGuard<'_, Vec<Leased>> {
    claimed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
