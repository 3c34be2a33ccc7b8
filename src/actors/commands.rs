//! The command consumer's supervised shell: it owns the task that pulls
//! commands from JetStream ([`crate::commands::Commands::run`]), which
//! reconnects by itself; if that task ever ends (a panic), the actor fails
//! and the root supervisor starts it again. Unacknowledged commands are
//! redelivered by JetStream, so nothing is lost with the task.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::{AbortHandle, JoinHandle};

use crate::commands::Commands;

pub enum CommandConsumerMsg {
    /// The consuming task ended.
    Ended(String),
}

pub struct CommandConsumer;

pub struct CommandConsumerState {
    consumer: AbortHandle,
    watcher: JoinHandle<()>,
}

impl Actor for CommandConsumer {
    type Msg = CommandConsumerMsg;
    type State = CommandConsumerState;
    type Arguments = Arc<Commands>;

    async fn pre_start(
        &self,
        myself: ActorRef<CommandConsumerMsg>,
        commands: Arc<Commands>,
    ) -> Result<CommandConsumerState, ActorProcessingErr> {
        let consumer = tokio::spawn(commands.run());
        let abort = consumer.abort_handle();
        let watcher = tokio::spawn(async move {
            let outcome = consumer.await;
            let why = match outcome {
                Ok(()) => "the consumer returned".to_string(),
                Err(error) => format!("the consumer failed: {error}"),
            };
            let _ = myself.send_message(CommandConsumerMsg::Ended(why));
        });
        Ok(CommandConsumerState {
            consumer: abort,
            watcher,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<CommandConsumerMsg>,
        state: &mut CommandConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        state.watcher.abort();
        state.consumer.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<CommandConsumerMsg>,
        msg: CommandConsumerMsg,
        _: &mut CommandConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CommandConsumerMsg::Ended(why) => Err(why.into()),
        }
    }
}
