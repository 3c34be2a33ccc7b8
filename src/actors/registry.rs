//! The invitation registry: finds or spawns the actor of an invitation, forwards
//! commands to it, restarts it when it crashes, and stops it when idle.
//!
//! Passivation is decided here, not by the child: the registry forgets the
//! child and then queues `Stop` behind every command it already forwarded, so
//! no command is lost to a stopping actor.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use super::CALL_TIMEOUT;
use super::invitation::{InvitationActor, InvitationArgs, InvitationMsg};
use crate::domain::InvitationId;
use crate::metrics;
use crate::service::invitations::{CommandOutcome, InvitationCommand};
use crate::service::{ServiceError, ServiceResult, Services};
use crate::store::InvitationRecord;

pub enum RegistryMsg {
    Execute {
        id: InvitationId,
        cmd: InvitationCommand,
        reply: RpcReplyPort<ServiceResult<CommandOutcome>>,
    },
    Inspect {
        id: InvitationId,
        reply: RpcReplyPort<Option<InvitationRecord>>,
    },
    /// The live child of an invitation, if any (tests and diagnostics).
    Child {
        id: InvitationId,
        reply: RpcReplyPort<Option<ActorRef<InvitationMsg>>>,
    },
    Stats(RpcReplyPort<RegistryStats>),
    /// Periodic: stop children idle for longer than the idle time.
    Passivate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryStats {
    pub live: usize,
    pub restarts: u64,
}

pub struct InvitationRegistry;

pub struct RegistryArgs {
    pub services: Services,
    pub idle: Duration,
}

struct Child {
    actor: ActorRef<InvitationMsg>,
    last_used: Instant,
}

pub struct RegistryState {
    services: Services,
    idle: Duration,
    children: HashMap<InvitationId, Child>,
    by_actor: HashMap<ActorId, InvitationId>,
    restarts: u64,
}

impl RegistryState {
    fn forget(&mut self, id: InvitationId) -> Option<Child> {
        let child = self.children.remove(&id)?;
        self.by_actor.remove(&child.actor.get_id());
        metrics::actors_live("invitation", self.children.len());
        Some(child)
    }

    async fn child(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: InvitationId,
    ) -> Result<ActorRef<InvitationMsg>, ActorProcessingErr> {
        if let Some(child) = self.children.get_mut(&id) {
            child.last_used = Instant::now();
            return Ok(child.actor.clone());
        }
        let args = InvitationArgs {
            id,
            services: self.services.clone(),
        };
        let (actor, _) =
            Actor::spawn_linked(None, InvitationActor, args, myself.get_cell()).await?;
        self.by_actor.insert(actor.get_id(), id);
        self.children.insert(
            id,
            Child {
                actor: actor.clone(),
                last_used: Instant::now(),
            },
        );
        metrics::actors_live("invitation", self.children.len());
        Ok(actor)
    }
}

impl Actor for InvitationRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RegistryMsg>,
        args: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        let every = (args.idle / 2).max(Duration::from_millis(50));
        myself.send_interval(every, || RegistryMsg::Passivate);
        Ok(RegistryState {
            services: args.services,
            idle: args.idle,
            children: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Execute { id, cmd, reply } => {
                let child = state.child(&myself, id).await?;
                if let Err(error) = child.send_message(InvitationMsg::Execute { cmd, reply }) {
                    // The reply port went down with the message; the caller sees
                    // `unavailable` and may retry.
                    tracing::warn!(invitation_id = %id, %error, "invitation actor refused a command");
                    state.forget(id);
                }
            }
            RegistryMsg::Inspect { id, reply } => {
                let child = state.child(&myself, id).await?;
                let _ = child.send_message(InvitationMsg::Inspect(reply));
            }
            RegistryMsg::Child { id, reply } => {
                let _ = reply.send(state.children.get(&id).map(|c| c.actor.clone()));
            }
            RegistryMsg::Stats(reply) => {
                let _ = reply.send(RegistryStats {
                    live: state.children.len(),
                    restarts: state.restarts,
                });
            }
            RegistryMsg::Passivate => {
                let idle: Vec<InvitationId> = state
                    .children
                    .iter()
                    .filter(|(_, c)| c.last_used.elapsed() >= state.idle)
                    .map(|(id, _)| *id)
                    .collect();
                for id in idle {
                    if let Some(child) = state.forget(id) {
                        let _ = child.actor.send_message(InvitationMsg::Stop);
                    }
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RegistryMsg>,
        _: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        super::stop_children(&myself.get_cell()).await;
        Ok(())
    }

    /// Our own policy (ractor's default would stop the registry when a child
    /// exits): a crashed invitation actor is started again at once and reads
    /// its invitation anew; a stopped one is simply forgotten.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(id) = known_child(state, &cell) else {
                    return Ok(());
                };
                tracing::error!(invitation_id = %id, %error, "invitation actor crashed; restarting it");
                state.forget(id);
                state.restarts += 1;
                metrics::actor_restarted("invitation");
                state.child(&myself, id).await?;
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(id) = known_child(state, &cell) {
                    state.forget(id);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn known_child(state: &RegistryState, cell: &ActorCell) -> Option<InvitationId> {
    state.by_actor.get(&cell.get_id()).copied()
}

/// How the rest of the daemon reaches invitation actors. It looks the registry
/// up by name on every call, so a restarted registry is found again.
#[derive(Clone)]
pub struct InvitationsHandle {
    registry_name: String,
}

impl InvitationsHandle {
    pub fn new(registry_name: String) -> InvitationsHandle {
        InvitationsHandle { registry_name }
    }

    fn registry(&self) -> ServiceResult<ActorRef<RegistryMsg>> {
        ActorRef::where_is(self.registry_name.clone()).ok_or_else(|| {
            ServiceError::Unavailable("the invitation registry is not running".into())
        })
    }

    /// Runs a command through the invitation's actor.
    pub async fn execute(
        &self,
        id: InvitationId,
        cmd: InvitationCommand,
    ) -> ServiceResult<CommandOutcome> {
        let registry = self.registry()?;
        super::ask(&registry, "the invitation actor", CALL_TIMEOUT, |reply| {
            RegistryMsg::Execute { id, cmd, reply }
        })
        .await?
    }

    pub async fn inspect(&self, id: InvitationId) -> ServiceResult<Option<InvitationRecord>> {
        let registry = self.registry()?;
        super::ask(&registry, "the invitation actor", CALL_TIMEOUT, |reply| {
            RegistryMsg::Inspect { id, reply }
        })
        .await
    }

    pub async fn child(&self, id: InvitationId) -> ServiceResult<Option<ActorRef<InvitationMsg>>> {
        let registry = self.registry()?;
        super::ask(&registry, "the invitation registry", CALL_TIMEOUT, |reply| {
            RegistryMsg::Child { id, reply }
        })
        .await
    }

    pub async fn stats(&self) -> ServiceResult<RegistryStats> {
        let registry = self.registry()?;
        super::ask(
            &registry,
            "the invitation registry",
            CALL_TIMEOUT,
            RegistryMsg::Stats,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sqlx::PgPool;

    use super::*;
    use crate::domain::{Email, InvitationStatus, UserId};
    use crate::service::Settings;
    use crate::service::businesses::NewBusinessInput;
    use crate::service::invitations::{CreateInvitations, Invitee};
    use crate::store::postgres::PgStore;

    async fn services(pool: PgPool) -> Services {
        let mut settings = Settings::from_config(&crate::config::Config::default()).unwrap();
        settings.resend_cooldown = Duration::ZERO;
        Services::new(Arc::new(PgStore::from_pool(pool)), settings)
            .await
            .unwrap()
    }

    /// A panicking invitation actor is restarted by the registry (our
    /// supervision policy, not ractor's default stop) and the new actor
    /// rebuilds its state from the database; the registry keeps serving.
    #[sqlx::test(migrations = "./migrations")]
    async fn a_crashed_invitation_actor_is_restarted_with_its_state_rebuilt(pool: PgPool) {
        let s = services(pool).await;
        let owner = UserId::parse("owner").unwrap();
        s.put_user(
            owner.clone(),
            Email::parse("o@x.example").unwrap(),
            None,
            None,
            None,
        )
        .await
        .unwrap();
        let business = s
            .create_business(NewBusinessInput {
                name: "B".into(),
                owner: owner.clone(),
                preset: None,
                seat_limit: None,
                locale: None,
            })
            .await
            .unwrap()
            .id;
        let inv = s
            .create_invitations(CreateInvitations {
                business,
                actor: owner.clone(),
                invitees: vec![Invitee {
                    email: Email::parse("i@x.example").unwrap(),
                    role: None,
                    locale: None,
                }],
                message: None,
                delivery: crate::domain::DeliveryMode::Email,
                ttl: None,
                metadata: crate::domain::Metadata::default(),
            })
            .await
            .unwrap()
            .remove(0);

        let name = format!("test.registry.{}", uuid::Uuid::now_v7());
        let (registry, _) = Actor::spawn(
            Some(name.clone()),
            InvitationRegistry,
            RegistryArgs {
                services: s.clone(),
                idle: Duration::from_secs(600),
            },
        )
        .await
        .unwrap();
        let handle = InvitationsHandle::new(name);

        let cached = handle
            .inspect(inv.id)
            .await
            .unwrap()
            .expect("state loaded from the database");
        assert_eq!(cached.status, InvitationStatus::Pending);
        let first = handle.child(inv.id).await.unwrap().expect("a live actor");

        // Change the row behind the actor's back, then crash the actor.
        let cancelled = s
            .execute(
                inv.id,
                InvitationCommand::Cancel {
                    actor: owner.clone(),
                },
            )
            .await
            .unwrap();
        assert_eq!(cancelled.invitation.status, InvitationStatus::Cancelled);
        first.send_message(InvitationMsg::Crash).unwrap();

        // Wait for the supervision event: the registry reports the restart.
        let mut stats = handle.stats().await.unwrap();
        while stats.restarts == 0 {
            tokio::task::yield_now().await;
            stats = handle.stats().await.unwrap();
        }
        let second = handle.child(inv.id).await.unwrap().expect("restarted");
        assert_ne!(first.get_id(), second.get_id());
        assert_eq!(stats.live, 1);
        let rebuilt = handle
            .inspect(inv.id)
            .await
            .unwrap()
            .expect("state rebuilt");
        assert_eq!(
            rebuilt.status,
            InvitationStatus::Cancelled,
            "read anew from the database"
        );

        // And it still serves commands.
        let again = handle
            .execute(inv.id, InvitationCommand::Resend { actor: owner })
            .await;
        assert!(
            matches!(
                again,
                Err(ServiceError::Domain(
                    crate::domain::DomainError::InvalidTransition { .. }
                ))
            ),
            "{again:?}"
        );
        registry.stop(None);
    }

    /// Idle actors are stopped; the next command starts a fresh one.
    #[sqlx::test(migrations = "./migrations")]
    async fn idle_actors_are_passivated(pool: PgPool) {
        let s = services(pool).await;
        let name = format!("test.registry.{}", uuid::Uuid::now_v7());
        let (registry, _) = Actor::spawn(
            Some(name.clone()),
            InvitationRegistry,
            RegistryArgs {
                services: s,
                // Long enough that the actor is still live when counted just
                // below on a loaded machine (100 ms once passivated it first).
                idle: Duration::from_secs(2),
            },
        )
        .await
        .unwrap();
        let handle = InvitationsHandle::new(name);
        let id = InvitationId::new();
        assert!(handle.inspect(id).await.unwrap().is_none());
        assert_eq!(handle.stats().await.unwrap().live, 1);
        while handle.stats().await.unwrap().live != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(handle.child(id).await.unwrap().is_none());
        registry.stop(None);
    }
}
