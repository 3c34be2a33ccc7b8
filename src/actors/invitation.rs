//! One actor per live invitation: it runs that invitation's commands one at a
//! time and keeps the invitation as last read. Its state is only a cache: on a
//! restart it reads the invitation again from the database.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::domain::InvitationId;
use crate::service::invitations::{CommandOutcome, InvitationCommand};
use crate::service::{ServiceResult, Services};
use crate::store::InvitationRecord;

pub enum InvitationMsg {
    /// Read the invitation from the database (sent to itself on start).
    Load,
    Execute {
        cmd: InvitationCommand,
        reply: RpcReplyPort<ServiceResult<CommandOutcome>>,
    },
    /// The cached invitation, for tests and diagnostics.
    Inspect(RpcReplyPort<Option<InvitationRecord>>),
    /// Passivation: the registry forgot this actor; stop after what is queued.
    Stop,
    /// Makes the actor panic, to exercise supervision in tests.
    #[cfg(test)]
    Crash,
}

pub struct InvitationActor;

pub struct InvitationArgs {
    pub id: InvitationId,
    pub services: Services,
}

pub struct InvitationState {
    id: InvitationId,
    services: Services,
    cached: Option<InvitationRecord>,
}

impl Actor for InvitationActor {
    type Msg = InvitationMsg;
    type State = InvitationState;
    type Arguments = InvitationArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<InvitationMsg>,
        args: InvitationArgs,
    ) -> Result<InvitationState, ActorProcessingErr> {
        // Loading is a message, not done here, so that the registry spawning us
        // never waits on the database.
        myself.send_message(InvitationMsg::Load)?;
        Ok(InvitationState {
            id: args.id,
            services: args.services,
            cached: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<InvitationMsg>,
        msg: InvitationMsg,
        state: &mut InvitationState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            InvitationMsg::Load => {
                // A failed read leaves the cache empty; commands read the row anyway.
                match state.services.store.get_invitation(state.id).await {
                    Ok(found) => state.cached = found,
                    Err(error) => {
                        tracing::warn!(invitation_id = %state.id, %error, "could not load invitation")
                    }
                }
            }
            InvitationMsg::Execute { cmd, reply } => {
                let result = state.services.execute(state.id, cmd).await;
                if let Ok(outcome) = &result {
                    state.cached = Some(outcome.invitation.clone());
                }
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(result);
            }
            InvitationMsg::Inspect(reply) => {
                let _ = reply.send(state.cached.clone());
            }
            InvitationMsg::Stop => myself.stop(Some("idle".into())),
            #[cfg(test)]
            InvitationMsg::Crash => panic!("invitation actor {} crashed on purpose", state.id),
        }
        Ok(())
    }
}
