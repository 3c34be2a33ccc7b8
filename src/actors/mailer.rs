//! The mailer workers: a ractor factory of `delivery.workers` workers, each
//! sending one claimed email at a time and telling the dispatcher when it is
//! free again. The SMTP exchange happens here, never in the dispatcher, so a
//! slow server only ever holds one worker. The factory replaces a worker that
//! crashes; the email it held comes back when its lease ends.

use std::sync::Arc;

use ractor::factory::{
    Factory, FactoryArguments, FactoryMessage, Job, Worker, WorkerId, queues, routing,
    worker_builder,
};
use ractor::{ActorProcessingErr, ActorRef};
use tracing::Instrument as _;

use super::dispatcher::DispatcherMsg;
use crate::metrics;
use crate::service::delivery::Delivery;
use crate::store::ClaimedEmail;

pub enum MailerMsg {
    Send(Box<ClaimedEmail>),
}

/// The factory's messages: jobs of one key (any worker may take any email).
pub type MailersMsg = FactoryMessage<(), MailerMsg>;

/// The factory of mailer workers: the dispatcher hands it only as many
/// emails as workers are free (a lease must not run while an email waits in
/// a queue), so its queue stays empty and an email goes to an idle worker.
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
    dispatcher: ActorRef<DispatcherMsg>,
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
                dispatcher: dispatcher.clone(),
            };
            (MailerWorker, args)
        })))
        .queue(Default::default())
        .router(Default::default())
        .num_initial_workers(workers)
        .build()
}

/// Hands an email to the factory.
pub fn send(mailers: &ActorRef<MailersMsg>, email: ClaimedEmail) -> Result<(), String> {
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
    pub dispatcher: ActorRef<DispatcherMsg>,
}

pub struct MailerState {
    delivery: Arc<Delivery>,
    dispatcher: ActorRef<DispatcherMsg>,
}

/// Tells the dispatcher that a worker is free again when dropped: after the
/// email, and also when the send panics (dropped while unwinding; the
/// factory replaces the worker), so its count of free workers stays true.
struct Free(ActorRef<DispatcherMsg>);

impl Drop for Free {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("a mailer worker crashed; the factory replaces it");
            metrics::actor_restarted("mailer");
        }
        // The dispatcher may be restarting; it starts with every worker free.
        let _ = self.0.send_message(DispatcherMsg::Done);
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
            dispatcher: args.dispatcher,
        })
    }

    async fn handle(
        &self,
        _: WorkerId,
        _: &ActorRef<MailersMsg>,
        Job { msg, .. }: Job<(), MailerMsg>,
        state: &mut MailerState,
    ) -> Result<(), ActorProcessingErr> {
        let _free = Free(state.dispatcher.clone());
        let MailerMsg::Send(email) = msg;
        let span = tracing::info_span!("deliver", email_id = %email.id, business_id = %email.business_id,
            invitation_id = ?email.invitation_id.map(|i| i.0), template = %email.template);
        // `instrument`, not `enter`: the attempt awaits the recorder (another
        // task), and an entered guard does not follow the future to the
        // thread it resumes on, so its lines would lose the span's fields.
        async {
            match state.delivery.deliver(&email).await {
                Ok(outcome) => tracing::debug!(
                    ?outcome,
                    attempt = email.attempts,
                    "delivery attempt recorded"
                ),
                // The lease runs out and another attempt follows: nothing is dropped.
                Err(error) => {
                    tracing::warn!(%error, "could not record a delivery attempt; the lease will retry it")
                }
            }
        }
        .instrument(span)
        .await;
        Ok(())
    }
}
