//! A supervised shell around a long-running task the actors know nothing
//! about (the gauge sampler, the NATS command consumer, the feedback
//! listener, wired in by `app.rs`): the task is expected to run until the
//! process stops, handling its own failures; if it ever ends (or panics),
//! the actor fails and the root supervisor starts it again, with the same
//! backoff and restart budget as the actors. The task owns no work that
//! exists nowhere else (unacknowledged commands are redelivered by
//! JetStream), so nothing is lost with it.

use std::sync::Arc;

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

/// What to run, and the name it is logged and counted under
/// (`invited_actor_restarts_total{actor=…}`).
#[derive(Clone)]
pub struct SupervisedTask {
    pub name: &'static str,
    /// Starts the task afresh; called again after each restart.
    pub start: Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
}

impl SupervisedTask {
    pub fn new(
        name: &'static str,
        start: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> SupervisedTask {
        SupervisedTask {
            name,
            start: Arc::new(start),
        }
    }
}

pub enum TaskMsg {
    /// The task ended.
    Ended(String),
}

pub struct TaskActor;

pub struct TaskState {
    /// The task, which reports its own end (one spawned task, no watcher).
    task: JoinHandle<()>,
}

impl Actor for TaskActor {
    type Msg = TaskMsg;
    type State = TaskState;
    type Arguments = SupervisedTask;

    async fn pre_start(
        &self,
        myself: ActorRef<TaskMsg>,
        task: SupervisedTask,
    ) -> Result<TaskState, ActorProcessingErr> {
        let work = (task.start)();
        let running = tokio::spawn(async move {
            let why = match super::unwound(work).await {
                Ok(()) => format!("{} returned", task.name),
                Err(panic) => format!("{} panicked: {panic}", task.name),
            };
            let _ = myself.send_message(TaskMsg::Ended(why));
        });
        Ok(TaskState { task: running })
    }

    async fn post_stop(
        &self,
        _: ActorRef<TaskMsg>,
        state: &mut TaskState,
    ) -> Result<(), ActorProcessingErr> {
        state.task.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<TaskMsg>,
        msg: TaskMsg,
        _: &mut TaskState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TaskMsg::Ended(why) => Err(why.into()),
        }
    }
}
