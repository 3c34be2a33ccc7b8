//! The mailer workers: a ractor factory of `delivery.workers` workers, each
//! sending one claimed email at a time and handing its outcome to the
//! recorder, without waiting for the commit: the email's permit (see
//! `dispatcher`) goes along with the outcome and returns to the dispatcher
//! once the outcome is committed. The SMTP exchange happens here, never in
//! the dispatcher, so a slow server only ever holds one worker. The factory
//! replaces a worker that crashes; the email it held comes back when its
//! lease ends.

use std::sync::Arc;

use ractor::factory::{
    Factory, FactoryArguments, FactoryMessage, Job, Worker, WorkerId, queues, routing,
    worker_builder,
};
use ractor::{ActorProcessingErr, ActorRef};
use tracing::Instrument as _;

use super::dispatcher::Leased;
use crate::metrics;
use crate::service::delivery::Delivery;

pub enum MailerMsg {
    Send(Box<Leased>),
}

/// The factory's messages: jobs of one key (any worker may take any email).
pub type MailersMsg = FactoryMessage<(), MailerMsg>;

/// The factory of mailer workers: the dispatcher holds at most as many
/// emails (sending or being recorded) as there are workers, and a worker is
/// busy only with an email it sends, so the factory's queue stays empty and
/// an email goes to an idle worker at once (a lease must not run while an
/// email waits in a queue).
pub type Mailers = Factory<
    (),
    MailerMsg,
    MailerArgs,
    MailerWorker,
    routing::QueuerRouting<(), MailerMsg>,
    queues::DefaultQueue<(), MailerMsg>,
>;

/// The factory's arguments for `workers` workers.
pub fn mailers(
    workers: usize,
    delivery: Arc<Delivery>,
) -> FactoryArguments<
    (),
    MailerMsg,
    MailerArgs,
    MailerWorker,
    routing::QueuerRouting<(), MailerMsg>,
    queues::DefaultQueue<(), MailerMsg>,
> {
    FactoryArguments::builder()
        .worker_builder(Box::new(worker_builder(move |_: WorkerId| {
            let args = MailerArgs {
                delivery: delivery.clone(),
            };
            (MailerWorker, args)
        })))
        .queue(Default::default())
        .router(Default::default())
        .num_initial_workers(workers)
        .build()
}

/// Hands an email to the factory.
pub fn send(mailers: &ActorRef<MailersMsg>, email: Leased) -> Result<(), String> {
    mailers
        .cast(FactoryMessage::Dispatch(Job::new(
            (),
            MailerMsg::Send(Box::new(email)),
        )))
        .map_err(|e| e.to_string())
}

pub struct MailerWorker;

pub struct MailerArgs {
    pub delivery: Arc<Delivery>,
}

pub struct MailerState {
    delivery: Arc<Delivery>,
}

/// Counts a worker that panics (dropped while unwinding; the factory
/// replaces the worker). The email's permit, dropped with it, returns to the
/// dispatcher; the email returns when its lease lapses.
struct Crashed;

impl Drop for Crashed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("a mailer worker crashed; the factory replaces it");
            metrics::actor_restarted("mailer");
        }
    }
}

impl Worker for MailerWorker {
    type Key = ();
    type Message = MailerMsg;
    type Arguments = MailerArgs;
    type State = MailerState;

    async fn pre_start(
        &self,
        _: WorkerId,
        _: &ActorRef<MailersMsg>,
        args: MailerArgs,
    ) -> Result<MailerState, ActorProcessingErr> {
        Ok(MailerState {
            delivery: args.delivery,
        })
    }

    async fn handle(
        &self,
        _: WorkerId,
        _: &ActorRef<MailersMsg>,
        Job { msg, .. }: Job<(), MailerMsg>,
        state: &mut MailerState,
    ) -> Result<(), ActorProcessingErr> {
        let _crashed = Crashed;
        let MailerMsg::Send(leased) = msg;
        let Leased { email, permit } = *leased;
        let span = tracing::info_span!("deliver", email_id = %email.id, business_id = %email.business_id,
            invitation_id = ?email.invitation_id.map(|i| i.0), template = %email.template);
        let attempt = email.attempts;
        let recorded_span = span.clone();
        // `instrument`, not `enter`: the send awaits the SMTP server (and a
        // reminder's check the database), and an entered guard does not follow the future to the thread it
        // resumes on, so its lines would lose the span's fields.
        state
            .delivery
            .deliver(&email, move |recorded| {
                let _in = recorded_span.enter();
                match recorded {
                    Ok(outcome) => {
                        tracing::debug!(?outcome, attempt, "delivery attempt recorded")
                    }
                    // The lease runs out and another attempt follows: nothing is dropped.
                    Err(error) => {
                        tracing::warn!(%error, "could not record a delivery attempt; the lease will retry it")
                    }
                }
                // Only now, committed (or given up to its lease), may another
                // email be claimed in its place.
                drop(permit);
            })
            .instrument(span)
            .await;
        Ok(())
    }
}
