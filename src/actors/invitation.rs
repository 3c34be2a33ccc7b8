//! One actor per live invitation: it runs that invitation's commands one at a
//! time and keeps the invitation as last read. Its state is only a cache: on a
//! restart it reads the invitation again from the database. The registry
//! starts one only for an invitation it found in the store.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::domain::InvitationId;
use crate::service::invitations::{CommandOutcome, InvitationCommand};
use crate::service::{ServiceResult, Services};
use crate::store::InvitationRecord;

pub enum InvitationMsg {
    /// Read the invitation from the database (sent to itself on a start
    /// without it: a restart after a crash).
    Load,
    Execute {
        cmd: InvitationCommand,
        reply: RpcReplyPort<ServiceResult<CommandOutcome>>,
    },
    /// The cached invitation, for diagnostics (`invited-bench` starts actors
    /// with it).
    Inspect(RpcReplyPort<Option<InvitationRecord>>),
    /// Passivation: the registry forgot this actor; stop after what is queued.
    Stop,
}

pub struct InvitationActor;

pub struct InvitationArgs {
    pub id: InvitationId,
    pub services: Services,
    /// The invitation as the registry just read it, if it did.
    pub loaded: Option<InvitationRecord>,
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
        if args.loaded.is_none() {
            myself.send_message(InvitationMsg::Load)?;
        }
        Ok(InvitationState {
            id: args.id,
            services: args.services,
            cached: args.loaded,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<InvitationMsg>,
        msg: InvitationMsg,
        state: &mut InvitationState,
    ) -> Result<(), ActorProcessingErr> {
        #[cfg(test)]
        faults::maybe_crash(state.id);
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
        }
        Ok(())
    }
}

/// Fault injection for tests, kept out of the message enum: the actor of an
/// invitation named here panics on the next message it takes.
#[cfg(test)]
pub(crate) mod faults {
    use std::sync::Mutex;

    use crate::domain::InvitationId;

    static CRASH_NEXT: Mutex<Vec<InvitationId>> = Mutex::new(Vec::new());

    /// The actor of `id` panics on its next message.
    pub(crate) fn crash_next(id: InvitationId) {
        CRASH_NEXT.lock().unwrap().push(id);
    }

    pub(super) fn maybe_crash(id: InvitationId) {
        let crash = {
            let mut ids = CRASH_NEXT.lock().unwrap();
            let before = ids.len();
            ids.retain(|i| *i != id);
            ids.len() != before
        };
        if crash {
            panic!("invitation actor {id} crashed on purpose");
        }
    }
}
