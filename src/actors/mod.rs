//! Actors: thin, supervised shells around the use cases. Postgres is the record;
//! a mailbox never holds work that exists nowhere else, so any actor (or the
//! whole process) may die and the work is picked up again from the rows.
//!
//! ```text
//! RootSupervisor
//!   |-- InvitationRegistry --> InvitationActor (one per live invitation)
//!   |-- Dispatcher ----------> MailerWorker x delivery.workers
//!   |-- Scheduler: expiry sweep, reminders, idempotency purge (cron)
//!   |-- Publisher: events to each webhook and NATS, one cursor per sink (R17)
//!   |-- TaskActor x tasks: long-running tasks wired in by app.rs (the
//!       NATS command consumer), restarted if they ever end
//! ```
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
    use std::time::{Duration, Instant};

    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    use super::ask;
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

    /// A call to an actor that never answers ends at its timeout as
    /// `Unavailable`, naming the actor; a call to a stopped one at once.
    #[tokio::test]
    async fn a_call_to_a_stuck_actor_times_out_as_unavailable() {
        let (silent, handle) = Actor::spawn(None, Silent, ()).await.unwrap();
        let started = Instant::now();
        let answer = ask(&silent, "the silent actor", Duration::from_millis(100), |r| r).await;
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
