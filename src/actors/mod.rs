//! Actors: thin, supervised shells around the use cases. Postgres is the record;
//! a mailbox never holds work that exists nowhere else, so any actor (or the
//! whole process) may die and the work is picked up again from the rows.
//!
//! ```text
//! RootSupervisor (restart budget 10/min, backoff 100 ms doubling to 5 s)
//!   |-- InvitationRegistry --> InvitationActor (one per existing invitation
//!   |                          with recent commands)
//!   |-- Dispatcher ----------> factory of MailerWorker x delivery.workers
//!   |     owns: the outbox NOTIFY listener, the delivery recorder's lanes
//!   |-- Scheduler: expiry sweep, reminders, idempotency purge (cron)
//!   |-- Publisher: events to each webhook and NATS, one cursor per sink (R17)
//!   |     owns: the events NOTIFY listener, one pass task per busy sink
//!   |-- TaskActor x tasks: long-running tasks wired in by app.rs (the gauge
//!       sampler; the NATS command consumer and the feedback SMTP listener
//!       when configured), restarted if they ever end
//! ```
//!
//! A task an actor owns ([`spawn_owned`]) that panics stops its owner, which
//! its supervisor restarts; every call into an actor has a timeout
//! ([`ask`]).
//!
//! The actors depend on the use cases, the store and the event sinks, never
//! on `http` or `ingress`, which call them (see `module_graph`).

pub mod dispatcher;
pub mod invitation;
pub mod mailer;
pub mod publisher;
pub mod registry;
pub mod scheduler;
pub mod supervisor;
pub mod task;

pub use registry::InvitationsHandle;
pub use supervisor::{RootSupervisor, SupervisorArgs};

/// How long a caller waits for an actor's answer, a command's transaction
/// included. Below `api.request_timeout`'s default, so a stuck actor is named
/// in the log before the request as a whole gives up.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Asks `actor` and waits at most `timeout` for the answer. No answer in
/// time, or an actor gone, is `ServiceError::Unavailable` (`503 unavailable`
/// over HTTP), never a caller hung on a stuck actor. The actor may still act
/// on the message later: every command it runs is safe to repeat (R36).
pub(crate) async fn ask<M, T>(
    actor: &ractor::ActorRef<M>,
    what: &str,
    timeout: std::time::Duration,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
) -> crate::service::ServiceResult<T>
where
    M: ractor::Message,
    T: Send + 'static,
{
    use crate::service::ServiceError;
    match actor.call(msg, Some(timeout)).await {
        Ok(ractor::rpc::CallResult::Success(answer)) => Ok(answer),
        Ok(ractor::rpc::CallResult::Timeout) => Err(ServiceError::Unavailable(format!(
            "{what} did not answer within {}",
            crate::config::format_duration(timeout)
        ))),
        Ok(ractor::rpc::CallResult::SenderError) => Err(ServiceError::Unavailable(format!(
            "{what} stopped before answering"
        ))),
        Err(error) => Err(ServiceError::Unavailable(format!("{what}: {error}"))),
    }
}

/// Runs `work`, turning a panic into `Err` with its message, so that the
/// task running it can report it instead of vanishing.
pub(crate) async fn unwound<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into())
        })
}

/// Spawns a long-lived task owned by the actor `owner`, which keeps the
/// handle and aborts it when it stops. If the task panics, the owner is
/// stopped with the panic as the reason: its supervisor sees the exit and
/// restarts it (with its backoff and budget), and the restarted owner starts
/// the task again. A task that returns (its owner is gone) ends quietly.
pub(crate) fn spawn_owned(
    owner: ractor::ActorCell,
    name: &'static str,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(panic) = unwound(work).await {
            tracing::error!(task = name, %panic, "an actor's task panicked; restarting the actor");
            owner.stop(Some(format!("{name} panicked: {panic}")));
        }
    })
}

/// How long stopping children may take: in-flight sends finish within it.
pub const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// ractor does not stop children with their parent, so each supervising
/// actor stops and awaits its own in `post_stop`: the tree stops from the top.
pub(crate) async fn stop_children(cell: &ractor::ActorCell) {
    cell.stop_children_and_wait(Some("shutdown".into()), Some(STOP_DEADLINE))
        .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    use super::ask;
    use super::supervisor::{ChildSpec, RestartPolicy, RootSupervisor, Tree};
    use super::task::SupervisedTask;
    use crate::service::ServiceError;

    /// Keeps every reply port and never answers.
    struct Silent;

    impl Actor for Silent {
        type Msg = RpcReplyPort<()>;
        type State = Vec<RpcReplyPort<()>>;
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<Self::Msg>,
            _: (),
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(Vec::new())
        }

        async fn handle(
            &self,
            _: ActorRef<Self::Msg>,
            reply: RpcReplyPort<()>,
            kept: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            kept.push(reply);
            Ok(())
        }
    }

    /// Runs of an owner actor; the first run's task panics.
    struct Owner;

    impl Actor for Owner {
        type Msg = ();
        type State = tokio::task::JoinHandle<()>;
        type Arguments = Arc<AtomicUsize>;

        async fn pre_start(
            &self,
            myself: ActorRef<()>,
            runs: Arc<AtomicUsize>,
        ) -> Result<Self::State, ActorProcessingErr> {
            let run = runs.fetch_add(1, Ordering::SeqCst);
            Ok(super::spawn_owned(
                myself.get_cell(),
                "test task",
                async move {
                    if run == 0 {
                        panic!("the owned task fails");
                    }
                    std::future::pending::<()>().await
                },
            ))
        }

        async fn post_stop(
            &self,
            _: ActorRef<()>,
            task: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            task.abort();
            Ok(())
        }
    }

    fn fast() -> RestartPolicy {
        RestartPolicy {
            initial_backoff: Duration::from_millis(10),
            ..RestartPolicy::default()
        }
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A panic in a task an actor owns is not lost: the actor stops, the
    /// root restarts it, and the restarted actor runs the task again.
    #[tokio::test]
    async fn a_panic_in_an_owned_task_restarts_its_actor() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let tree = Tree {
            children: vec![ChildSpec::actor("owner", None, move || {
                (Owner, counted.clone())
            })],
            policy: fast(),
        };
        let (root, _) = Actor::spawn(None, RootSupervisor, tree).await.unwrap();
        until("the owner's restart", || runs.load(Ordering::SeqCst) == 2).await;
        root.stop_and_wait(None, None).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2, "restarted once, then calm");
    }

    /// A supervised task that panics (or returns) is started again.
    #[tokio::test]
    async fn a_supervised_task_that_panics_is_started_again() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let task = SupervisedTask::new("test", move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if run < 2 {
                    panic!("the task fails");
                }
                std::future::pending::<()>().await
            })
        });
        let tree = Tree {
            children: vec![ChildSpec::task(task)],
            policy: fast(),
        };
        let (root, _) = Actor::spawn(None, RootSupervisor, tree).await.unwrap();
        until("two restarts", || runs.load(Ordering::SeqCst) == 3).await;
        root.stop_and_wait(None, None).await.unwrap();
    }

    /// A call to an actor that never answers ends at its timeout as
    /// `Unavailable`, naming the actor; a call to a stopped one at once.
    #[tokio::test]
    async fn a_call_to_a_stuck_actor_times_out_as_unavailable() {
        let (silent, handle) = Actor::spawn(None, Silent, ()).await.unwrap();
        let started = Instant::now();
        let answer = ask(
            &silent,
            "the silent actor",
            Duration::from_millis(100),
            |r| r,
        )
        .await;
        let elapsed = started.elapsed();
        match answer {
            Err(ServiceError::Unavailable(why)) => {
                assert!(why.contains("the silent actor did not answer"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(elapsed >= Duration::from_millis(100) && elapsed < Duration::from_secs(5));

        silent.stop(None);
        handle.await.unwrap();
        let answer = ask(&silent, "the silent actor", Duration::from_secs(5), |r| r).await;
        assert!(
            matches!(answer, Err(ServiceError::Unavailable(_))),
            "{answer:?}"
        );
    }
}
