//! The root supervisor. Its policy, not ractor's default (which stops a
//! supervisor when any child exits): a crashed child is started again, up to
//! `MAX_RESTARTS` within `RESTART_WINDOW`; past that the root stops itself and
//! the process exits non-zero, so the service manager restarts it whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::dispatcher::{Dispatcher, DispatcherArgs, DispatcherMsg};
use super::publisher::{Publisher, PublisherArgs, PublisherMsg};
use super::registry::{InvitationRegistry, RegistryArgs, RegistryMsg};
use super::scheduler::{Scheduler, SchedulerArgs, SchedulerMsg};
use super::task::{SupervisedTask, TaskActor, TaskMsg};
use crate::metrics;
use crate::service::Services;
use crate::service::delivery::Delivery;

const MAX_RESTARTS: usize = 10;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

pub struct RootSupervisor;

#[derive(Clone)]
pub struct SupervisorArgs {
    pub services: Services,
    pub delivery: Arc<Delivery>,
    /// The registry's actor name (unique per daemon instance, so several can
    /// run in one test process).
    pub registry_name: String,
    pub actor_idle: Duration,
    pub workers: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    /// `invitations.expiry_schedule`: when the scheduler runs its chores.
    pub schedule: cron::Schedule,
    /// The event publisher (R17, R48); always present since webhook endpoints
    /// can be added through the API.
    pub publisher: Option<PublisherArgs>,
    /// Tasks supervised beside the actors, which the actors know nothing
    /// about: the NATS command consumer when `nats.url` is set (`app.rs`).
    pub tasks: Vec<SupervisedTask>,
}

pub enum SupervisorMsg {}

pub struct SupervisorState {
    args: SupervisorArgs,
    registry: ActorRef<RegistryMsg>,
    dispatcher: ActorRef<DispatcherMsg>,
    scheduler: ActorRef<SchedulerMsg>,
    publisher: Option<ActorRef<PublisherMsg>>,
    /// One per `args.tasks`, in the same order.
    tasks: Vec<ActorRef<TaskMsg>>,
    restarts: Vec<Instant>,
}

async fn spawn_publisher(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
) -> Result<Option<ActorRef<PublisherMsg>>, ActorProcessingErr> {
    let Some(publisher_args) = args.publisher.clone() else {
        return Ok(None);
    };
    let (publisher, _) =
        Actor::spawn_linked(None, Publisher, publisher_args, myself.get_cell()).await?;
    Ok(Some(publisher))
}

async fn spawn_task(
    myself: &ActorRef<SupervisorMsg>,
    task: &SupervisedTask,
) -> Result<ActorRef<TaskMsg>, ActorProcessingErr> {
    let (actor, _) = Actor::spawn_linked(None, TaskActor, task.clone(), myself.get_cell()).await?;
    Ok(actor)
}

async fn spawn_registry(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
) -> Result<ActorRef<RegistryMsg>, ActorProcessingErr> {
    let registry_args = RegistryArgs {
        services: args.services.clone(),
        idle: args.actor_idle,
    };
    let (registry, _) = Actor::spawn_linked(
        Some(args.registry_name.clone()),
        InvitationRegistry,
        registry_args,
        myself.get_cell(),
    )
    .await?;
    Ok(registry)
}

async fn spawn_dispatcher(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
) -> Result<ActorRef<DispatcherMsg>, ActorProcessingErr> {
    let dispatcher_args = DispatcherArgs {
        delivery: args.delivery.clone(),
        workers: args.workers,
        lease: args.lease,
        poll_interval: args.poll_interval,
    };
    let (dispatcher, _) =
        Actor::spawn_linked(None, Dispatcher, dispatcher_args, myself.get_cell()).await?;
    Ok(dispatcher)
}

async fn spawn_scheduler(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
) -> Result<ActorRef<SchedulerMsg>, ActorProcessingErr> {
    let scheduler_args = SchedulerArgs {
        services: args.services.clone(),
        schedule: args.schedule.clone(),
    };
    let (scheduler, _) =
        Actor::spawn_linked(None, Scheduler, scheduler_args, myself.get_cell()).await?;
    Ok(scheduler)
}

impl Actor for RootSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let registry = spawn_registry(&myself, &args).await?;
        let dispatcher = spawn_dispatcher(&myself, &args).await?;
        let scheduler = spawn_scheduler(&myself, &args).await?;
        let publisher = spawn_publisher(&myself, &args).await?;
        // Last: a task may call into the actors above (commands reach the
        // registry through the HTTP router).
        let mut tasks = Vec::with_capacity(args.tasks.len());
        for task in &args.tasks {
            tasks.push(spawn_task(&myself, task).await?);
        }
        Ok(SupervisorState {
            args,
            registry,
            dispatcher,
            scheduler,
            publisher,
            tasks,
            restarts: Vec::new(),
        })
    }

    /// ractor does not stop children with their supervisor: the tree is
    /// stopped from the top, each level waiting for the one below.
    async fn post_stop(
        &self,
        myself: ActorRef<SupervisorMsg>,
        _: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        super::stop_children(&myself.get_cell()).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why): (ActorCell, String) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            // A child that stops on its own is as unexpected as a crash.
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        state.restarts.retain(|t| t.elapsed() < RESTART_WINDOW);
        if state.restarts.len() >= MAX_RESTARTS {
            tracing::error!(why, "too many restarts; stopping the daemon");
            myself.stop(Some("restart budget exhausted".into()));
            return Ok(());
        }
        state.restarts.push(Instant::now());
        if cell.get_id() == state.registry.get_id() {
            tracing::error!(why, "invitation registry exited; restarting it");
            metrics::actor_restarted("registry");
            state.registry = spawn_registry(&myself, &state.args).await?;
        } else if cell.get_id() == state.dispatcher.get_id() {
            tracing::error!(why, "dispatcher exited; restarting it");
            metrics::actor_restarted("dispatcher");
            state.dispatcher = spawn_dispatcher(&myself, &state.args).await?;
        } else if cell.get_id() == state.scheduler.get_id() {
            tracing::error!(why, "scheduler exited; restarting it");
            metrics::actor_restarted("scheduler");
            state.scheduler = spawn_scheduler(&myself, &state.args).await?;
        } else if state
            .publisher
            .as_ref()
            .is_some_and(|p| p.get_id() == cell.get_id())
        {
            tracing::error!(why, "event publisher exited; restarting it");
            metrics::actor_restarted("publisher");
            state.publisher = spawn_publisher(&myself, &state.args).await?;
        } else if let Some(i) = state.tasks.iter().position(|t| t.get_id() == cell.get_id()) {
            let task = &state.args.tasks[i];
            tracing::error!(
                why,
                task = task.name,
                "supervised task exited; restarting it"
            );
            metrics::actor_restarted(task.name);
            state.tasks[i] = spawn_task(&myself, task).await?;
        }
        Ok(())
    }
}
