//! A mailer worker: sends one claimed email at a time and tells the dispatcher
//! when it is free again. The SMTP exchange happens here, never in the
//! dispatcher, so a slow server only ever holds one worker.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument as _;

use super::dispatcher::DispatcherMsg;
use crate::service::delivery::Delivery;
use crate::store::ClaimedEmail;

pub enum MailerMsg {
    Send(Box<ClaimedEmail>),
}

pub struct MailerWorker;

pub struct MailerArgs {
    pub index: usize,
    pub delivery: Arc<Delivery>,
    pub dispatcher: ActorRef<DispatcherMsg>,
}

pub struct MailerState {
    index: usize,
    delivery: Arc<Delivery>,
    dispatcher: ActorRef<DispatcherMsg>,
}

impl Actor for MailerWorker {
    type Msg = MailerMsg;
    type State = MailerState;
    type Arguments = MailerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<MailerMsg>,
        args: MailerArgs,
    ) -> Result<MailerState, ActorProcessingErr> {
        Ok(MailerState {
            index: args.index,
            delivery: args.delivery,
            dispatcher: args.dispatcher,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<MailerMsg>,
        msg: MailerMsg,
        state: &mut MailerState,
    ) -> Result<(), ActorProcessingErr> {
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
        // The dispatcher may be restarting; it finds its workers idle again.
        let _ = state.dispatcher.send_message(DispatcherMsg::Done {
            worker: state.index,
        });
        Ok(())
    }
}
