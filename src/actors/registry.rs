//! The invitation registry: finds or spawns the actor of an invitation, forwards
//! commands to it, restarts it when it crashes, and stops it when idle.
//!
//! An actor exists only for an invitation that exists: for an id without a
//! live actor the registry reads the invitation first (one primary-key read,
//! in a task, so the registry's mailbox never waits on the database; the
//! commands for that id wait in order meanwhile). Found, the actor starts
//! with the row it was read with; not found, each waiting command is answered
//! `NotFound` (`404`) and nothing is spawned.
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
use crate::domain::{DomainError, InvitationId};
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
    /// The actor's cached invitation (diagnostics; `invited-bench` uses it to
    /// start actors). `None` for an invitation that does not exist.
    Inspect {
        id: InvitationId,
        reply: RpcReplyPort<Option<InvitationRecord>>,
    },
    Stats(RpcReplyPort<RegistryStats>),
    /// Periodic: stop children idle for longer than the idle time.
    Passivate,
    /// The store's answer for an id the registry had no actor for (boxed:
    /// every message is as large as the largest).
    Looked {
        id: InvitationId,
        found: Box<Result<Option<InvitationRecord>, String>>,
    },
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

/// A request for an invitation being looked up.
enum Waiting {
    Execute {
        cmd: InvitationCommand,
        reply: RpcReplyPort<ServiceResult<CommandOutcome>>,
    },
    Inspect(RpcReplyPort<Option<InvitationRecord>>),
}

pub struct RegistryState {
    services: Services,
    idle: Duration,
    children: HashMap<InvitationId, Child>,
    by_actor: HashMap<ActorId, InvitationId>,
    /// Requests for ids being looked up, in arrival order.
    waiting: HashMap<InvitationId, Vec<Waiting>>,
    restarts: u64,
}

impl RegistryState {
    fn forget(&mut self, id: InvitationId) -> Option<Child> {
        let child = self.children.remove(&id)?;
        self.by_actor.remove(&child.actor.get_id());
        metrics::actors_live("invitation", self.children.len());
        Some(child)
    }

    /// The live actor of `id`, if any, marked as used.
    fn live(&mut self, id: InvitationId) -> Option<ActorRef<InvitationMsg>> {
        let child = self.children.get_mut(&id)?;
        child.last_used = Instant::now();
        Some(child.actor.clone())
    }

    /// Starts the actor of an invitation known to exist (`loaded`: as just
    /// read; `None`: the actor reads it itself).
    async fn spawn_child(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: InvitationId,
        loaded: Option<InvitationRecord>,
    ) -> Result<ActorRef<InvitationMsg>, ActorProcessingErr> {
        if let Some(actor) = self.live(id) {
            return Ok(actor);
        }
        let args = InvitationArgs {
            id,
            services: self.services.clone(),
            loaded,
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

    /// Hands a request to the live actor of `id`, or queues it behind a
    /// lookup of `id` (started if none is under way).
    fn route(&mut self, myself: &ActorRef<RegistryMsg>, id: InvitationId, request: Waiting) {
        if let Some(actor) = self.live(id) {
            self.forward(id, &actor, request);
            return;
        }
        if let Some(queue) = self.waiting.get_mut(&id) {
            queue.push(request);
            return;
        }
        self.waiting.insert(id, vec![request]);
        let store = self.services.store.clone();
        let me = myself.clone();
        // Short-lived: one read, then it reports back and ends.
        tokio::spawn(async move {
            let found = match super::unwound(store.get_invitation(id)).await {
                Ok(found) => found.map_err(|e| e.to_string()),
                Err(panic) => Err(format!("the lookup panicked: {panic}")),
            };
            let found = Box::new(found);
            let _ = me.send_message(RegistryMsg::Looked { id, found });
        });
    }

    fn forward(&mut self, id: InvitationId, actor: &ActorRef<InvitationMsg>, request: Waiting) {
        let sent = match request {
            Waiting::Execute { cmd, reply } => {
                actor.send_message(InvitationMsg::Execute { cmd, reply })
            }
            Waiting::Inspect(reply) => actor.send_message(InvitationMsg::Inspect(reply)),
        };
        if let Err(error) = sent {
            // The reply port went down with the message; the caller sees
            // `unavailable` and may retry.
            tracing::warn!(invitation_id = %id, %error, "invitation actor refused a request");
            self.forget(id);
        }
    }

    /// The lookup of `id` answered: start its actor and hand it what waited,
    /// or answer each `NotFound` without starting anything.
    async fn looked(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: InvitationId,
        found: Result<Option<InvitationRecord>, String>,
    ) -> Result<(), ActorProcessingErr> {
        let waiting = self.waiting.remove(&id).unwrap_or_default();
        match found {
            Ok(Some(record)) => {
                let actor = self.spawn_child(myself, id, Some(record)).await?;
                for request in waiting {
                    self.forward(id, &actor, request);
                }
            }
            Ok(None) => {
                for request in waiting {
                    match request {
                        Waiting::Execute { reply, .. } => {
                            let _ = reply.send(Err(ServiceError::Domain(DomainError::NotFound(
                                format!("invitation {id}"),
                            ))));
                        }
                        Waiting::Inspect(reply) => {
                            let _ = reply.send(None);
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(invitation_id = %id, %error, "could not look an invitation up");
                for request in waiting {
                    match request {
                        Waiting::Execute { reply, .. } => {
                            let _ = reply.send(Err(ServiceError::Unavailable(format!(
                                "reading invitation {id}: {error}"
                            ))));
                        }
                        // Dropped: the caller sees `unavailable`.
                        Waiting::Inspect(_) => {}
                    }
                }
            }
        }
        Ok(())
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
            waiting: HashMap::new(),
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
                state.route(&myself, id, Waiting::Execute { cmd, reply });
            }
            RegistryMsg::Inspect { id, reply } => {
                state.route(&myself, id, Waiting::Inspect(reply));
            }
            RegistryMsg::Looked { id, found } => state.looked(&myself, id, *found).await?,
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
                // It existed a moment ago: no lookup, it reads itself anew.
                state.spawn_child(&myself, id, None).await?;
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
    use crate::actors::invitation::faults;
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

    /// A business with one pending invitation: its owner and the invitation.
    async fn invitation(s: &Services) -> (UserId, InvitationRecord) {
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
        (owner, inv)
    }

    async fn registry(s: &Services, idle: Duration) -> (ActorRef<RegistryMsg>, InvitationsHandle) {
        let name = format!("test.registry.{}", uuid::Uuid::now_v7());
        let (registry, _) = Actor::spawn(
            Some(name.clone()),
            InvitationRegistry,
            RegistryArgs {
                services: s.clone(),
                idle,
            },
        )
        .await
        .unwrap();
        (registry, InvitationsHandle::new(name))
    }

    /// A panicking invitation actor is restarted by the registry (our
    /// supervision policy, not ractor's default stop) and the new actor
    /// rebuilds its state from the database; the registry keeps serving.
    #[sqlx::test(migrations = "./migrations")]
    async fn a_crashed_invitation_actor_is_restarted_with_its_state_rebuilt(pool: PgPool) {
        let s = services(pool).await;
        let (owner, inv) = invitation(&s).await;
        let (registry, handle) = registry(&s, Duration::from_secs(600)).await;

        let cached = handle
            .inspect(inv.id)
            .await
            .unwrap()
            .expect("state loaded from the database");
        assert_eq!(cached.status, InvitationStatus::Pending);
        assert_eq!(handle.stats().await.unwrap().live, 1);

        // Change the row behind the actor's back, then crash the actor on its
        // next message.
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
        faults::crash_next(inv.id);
        assert!(
            matches!(
                handle.inspect(inv.id).await,
                Err(ServiceError::Unavailable(_))
            ),
            "the crash drops the request it was taking"
        );

        // Wait for the supervision event: the registry reports the restart.
        let mut stats = handle.stats().await.unwrap();
        while stats.restarts == 0 {
            tokio::task::yield_now().await;
            stats = handle.stats().await.unwrap();
        }
        assert_eq!(stats.live, 1, "restarted at once");
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

    /// An actor exists only for an invitation that exists: a command (or an
    /// inspection) for an unknown id is answered `NotFound` (`None`) and
    /// starts no actor, however often it is repeated; a real one starts its
    /// actor once.
    #[sqlx::test(migrations = "./migrations")]
    async fn no_actor_is_spawned_for_an_invitation_that_does_not_exist(pool: PgPool) {
        let s = services(pool).await;
        let (owner, inv) = invitation(&s).await;
        let (registry, handle) = registry(&s, Duration::from_secs(600)).await;

        let unknown = InvitationId::new();
        let answers = futures::future::join_all((0..5).map(|_| {
            handle.execute(
                unknown,
                InvitationCommand::Cancel {
                    actor: owner.clone(),
                },
            )
        }))
        .await;
        for answer in answers {
            assert!(
                matches!(answer, Err(ServiceError::Domain(DomainError::NotFound(_)))),
                "{answer:?}"
            );
        }
        assert!(handle.inspect(unknown).await.unwrap().is_none());
        assert_eq!(
            handle.stats().await.unwrap(),
            RegistryStats {
                live: 0,
                restarts: 0
            },
            "nothing spawned for an unknown id"
        );

        let cancelled = handle
            .execute(inv.id, InvitationCommand::Cancel { actor: owner })
            .await
            .unwrap();
        assert_eq!(cancelled.invitation.status, InvitationStatus::Cancelled);
        assert_eq!(handle.stats().await.unwrap().live, 1);
        registry.stop(None);
    }

    /// Idle actors are stopped; the next command starts a fresh one.
    #[sqlx::test(migrations = "./migrations")]
    async fn idle_actors_are_passivated(pool: PgPool) {
        let s = services(pool).await;
        let (_, inv) = invitation(&s).await;
        // Long enough that the actor is still live when counted just below
        // on a loaded machine (100 ms once passivated it first).
        let (registry, handle) = registry(&s, Duration::from_secs(2)).await;
        assert!(handle.inspect(inv.id).await.unwrap().is_some());
        assert_eq!(handle.stats().await.unwrap().live, 1);
        while handle.stats().await.unwrap().live != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(handle.inspect(inv.id).await.unwrap().is_some());
        assert_eq!(handle.stats().await.unwrap().live, 1, "started afresh");
        registry.stop(None);
    }
}
