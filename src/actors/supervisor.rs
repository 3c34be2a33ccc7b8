//! The root supervisor. Its policy, not ractor's default (which stops a
//! supervisor when any child exits): a child that crashes, or stops on its
//! own, is started again after a backoff, within a restart budget; past the
//! budget the root stops itself and the process exits non-zero, so the
//! service manager restarts it whole.
//!
//! Every child goes through one path: a [`ChildSpec`] says how to start it,
//! and the root starts, watches and restarts all of them alike (actors, and
//! the tasks wrapped in a [`TaskActor`]).
//!
//! - **Budget**: at most `max_restarts` restarts, all children together,
//!   within any `window` (10 a minute).
//! - **Backoff**: a child's restart waits `initial_backoff` (100 ms), doubled
//!   for each earlier restart of the same child within the window, at most
//!   `max_backoff` (5 s); a child that has run quietly for a window starts
//!   again from `initial_backoff`. The root keeps serving its other children
//!   while one waits.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};

use super::dispatcher::{Dispatcher, DispatcherArgs};
use super::publisher::{Publisher, PublisherArgs};
use super::registry::{InvitationRegistry, RegistryArgs};
use super::scheduler::{Scheduler, SchedulerArgs};
use super::task::{SupervisedTask, TaskActor};
use crate::metrics;
use crate::service::Services;
use crate::service::delivery::Delivery;

/// When the root restarts a child, and when it gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: usize,
    pub window: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 10,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RestartPolicy {
    /// The wait before a restart that follows `earlier` restarts of the
    /// same child within the window.
    pub fn backoff(&self, earlier: usize) -> Duration {
        let factor = 1u32.checked_shl(earlier.min(31) as u32).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

type Start =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// One child of the root: its name (in logs, and the `actor` label of
/// `invited_actor_restarts_total`) and how to start it afresh.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: &'static str,
    start: Start,
}

impl ChildSpec {
    /// A child started by `start`, given the supervisor to link to.
    pub fn new<F>(
        name: &'static str,
        start: impl Fn(ActorCell) -> F + Send + Sync + 'static,
    ) -> ChildSpec
    where
        F: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        ChildSpec {
            name,
            start: Arc::new(
                move |supervisor| -> BoxFuture<'static, Result<ActorCell, SpawnErr>> {
                    Box::pin(start(supervisor))
                },
            ),
        }
    }

    /// An actor built afresh by `make` at each start, registered under
    /// `registered` if given (a restarted actor takes the name again).
    pub fn actor<A: Actor>(
        name: &'static str,
        registered: Option<String>,
        make: impl Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    ) -> ChildSpec {
        let make = Arc::new(make);
        ChildSpec::new(name, move |supervisor| {
            let (actor, args) = make();
            let registered = registered.clone();
            async move {
                let (actor, _) = Actor::spawn_linked(registered, actor, args, supervisor).await?;
                Ok(actor.get_cell())
            }
        })
    }

    /// A long-running task, run by a [`TaskActor`].
    pub fn task(task: SupervisedTask) -> ChildSpec {
        ChildSpec::actor(task.name, None, move || (TaskActor, task.clone()))
    }
}

/// What the root supervises, in start order, and how.
pub struct Tree {
    pub children: Vec<ChildSpec>,
    pub policy: RestartPolicy,
}

pub struct RootSupervisor;

/// The daemon's actor tree as `app.rs` configures it; [`SupervisorArgs::tree`]
/// turns it into the root's children.
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
    /// about (`app.rs`): the delivery recorder, the gauge sampler, the HTTP
    /// server, the NATS command consumer, the feedback listener.
    pub tasks: Vec<SupervisedTask>,
}

impl SupervisorArgs {
    /// The registry, dispatcher, scheduler and publisher, then the tasks
    /// (last: a task may call into the actors, as commands reach the
    /// registry through the HTTP router).
    pub fn tree(self) -> Tree {
        let mut children = Vec::new();
        let (services, idle) = (self.services.clone(), self.actor_idle);
        children.push(ChildSpec::actor(
            "registry",
            Some(self.registry_name.clone()),
            move || {
                let args = RegistryArgs {
                    services: services.clone(),
                    idle,
                };
                (InvitationRegistry, args)
            },
        ));
        let (delivery, workers, lease, poll_interval) = (
            self.delivery.clone(),
            self.workers,
            self.lease,
            self.poll_interval,
        );
        children.push(ChildSpec::actor("dispatcher", None, move || {
            let args = DispatcherArgs {
                delivery: delivery.clone(),
                workers,
                lease,
                poll_interval,
            };
            (Dispatcher, args)
        }));
        let (services, schedule) = (self.services.clone(), self.schedule.clone());
        children.push(ChildSpec::actor("scheduler", None, move || {
            let args = SchedulerArgs {
                services: services.clone(),
                schedule: schedule.clone(),
            };
            (Scheduler, args)
        }));
        if let Some(publisher) = self.publisher {
            children.push(ChildSpec::actor("publisher", None, move || {
                (Publisher, publisher.clone())
            }));
        }
        children.extend(self.tasks.into_iter().map(ChildSpec::task));
        Tree {
            children,
            policy: RestartPolicy::default(),
        }
    }
}

pub enum SupervisorMsg {
    /// A child's backoff has ended: start it again.
    Restart(usize),
}

pub struct SupervisorState {
    children: Vec<ChildSpec>,
    policy: RestartPolicy,
    /// The running actor of each child, `None` while it waits for a restart.
    live: Vec<Option<ActorCell>>,
    /// Every restart within the window, any child: the budget.
    restarts: Vec<Instant>,
    /// Each child's restarts within the window: its backoff.
    recent: Vec<Vec<Instant>>,
}

impl SupervisorState {
    /// Counts a restart of child `i` and schedules it after its backoff, or
    /// stops the root when the budget is spent.
    fn schedule_restart(&mut self, myself: &ActorRef<SupervisorMsg>, i: usize, why: &str) {
        let name = self.children[i].name;
        let window = self.policy.window;
        self.restarts.retain(|t| t.elapsed() < window);
        if self.restarts.len() >= self.policy.max_restarts {
            tracing::error!(why, child = name, "too many restarts; stopping the daemon");
            myself.stop(Some("restart budget exhausted".into()));
            return;
        }
        let now = Instant::now();
        self.restarts.push(now);
        let recent = &mut self.recent[i];
        recent.retain(|t| t.elapsed() < window);
        let wait = self.policy.backoff(recent.len());
        recent.push(now);
        tracing::error!(
            why,
            child = name,
            wait_ms = wait.as_millis() as u64,
            "a supervised child exited; restarting it"
        );
        metrics::actor_restarted(name);
        myself.send_after(wait, move || SupervisorMsg::Restart(i));
    }
}

impl Actor for RootSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Tree;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        tree: Tree,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut live = Vec::with_capacity(tree.children.len());
        for child in &tree.children {
            live.push(Some((child.start)(myself.get_cell()).await?));
        }
        Ok(SupervisorState {
            recent: vec![Vec::new(); tree.children.len()],
            children: tree.children,
            policy: tree.policy,
            live,
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

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg::Restart(i) = msg;
        if state.live[i].is_some() {
            return Ok(());
        }
        match (state.children[i].start)(myself.get_cell()).await {
            Ok(cell) => state.live[i] = Some(cell),
            // A child that cannot start counts as another exit.
            Err(error) => state.schedule_restart(&myself, i, &format!("start failed: {error}")),
        }
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
        let Some(i) = state
            .live
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.get_id() == cell.get_id()))
        else {
            return Ok(());
        };
        state.live[i] = None;
        state.schedule_restart(&myself, i, &why);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A child that notes when it starts and fails at once.
    struct Crashing;

    impl Actor for Crashing {
        type Msg = ();
        type State = ();
        type Arguments = Arc<Mutex<Vec<Instant>>>;

        async fn pre_start(
            &self,
            myself: ActorRef<()>,
            starts: Self::Arguments,
        ) -> Result<(), ActorProcessingErr> {
            starts.lock().unwrap().push(Instant::now());
            myself.send_message(())?;
            Ok(())
        }

        async fn handle(
            &self,
            _: ActorRef<()>,
            _: (),
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            Err("crashed on purpose".into())
        }
    }

    /// A child that runs quietly.
    struct Quiet;

    impl Actor for Quiet {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let policy = RestartPolicy::default();
        let ms = |n| policy.backoff(n).as_millis();
        assert_eq!(
            (0..8).map(ms).collect::<Vec<_>>(),
            [100, 200, 400, 800, 1600, 3200, 5000, 5000]
        );
        assert_eq!(policy.backoff(usize::MAX), policy.max_backoff);
    }

    /// A child that keeps crashing is started again after a backoff that
    /// doubles each time, while its sibling runs on; once the budget is
    /// spent the root stops (and `invited serve` exits).
    #[tokio::test]
    async fn a_crashing_child_is_restarted_with_backoff_until_the_budget_stops_the_root() {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let policy = RestartPolicy {
            max_restarts: 4,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(40),
            max_backoff: Duration::from_secs(1),
        };
        let quiet_name = format!("test.quiet.{}", uuid::Uuid::now_v7());
        let tree = Tree {
            children: vec![
                ChildSpec::actor("quiet", Some(quiet_name.clone()), || (Quiet, ())),
                ChildSpec::actor("crashing", None, {
                    let starts = starts.clone();
                    move || (Crashing, starts.clone())
                }),
            ],
            policy,
        };
        let (root, done) = Actor::spawn(None, RootSupervisor, tree).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), done)
            .await
            .expect("the root stops once the budget is spent")
            .unwrap();
        assert_eq!(root.get_status(), ractor::ActorStatus::Stopped);

        let starts = starts.lock().unwrap().clone();
        assert_eq!(starts.len(), 5, "the first start and four restarts");
        for (k, pair) in starts.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= policy.backoff(k),
                "restart {k} came after {gap:?}, before its backoff {:?}",
                policy.backoff(k)
            );
        }
        assert!(
            ActorRef::<()>::where_is(quiet_name).is_none(),
            "the siblings stop with the root"
        );
    }

    /// A child that fails to start is retried with the same backoff and
    /// budget.
    #[tokio::test]
    async fn a_child_that_cannot_start_spends_the_budget() {
        let tries = Arc::new(Mutex::new(0usize));
        let counted = tries.clone();
        let tree = Tree {
            children: vec![ChildSpec::new("stubborn", move |supervisor| {
                let counted = counted.clone();
                async move {
                    let n = {
                        let mut n = counted.lock().unwrap();
                        *n += 1;
                        *n
                    };
                    if n == 1 {
                        let (quiet, _) = Actor::spawn_linked(None, Quiet, (), supervisor).await?;
                        // Stops on its own at once: an unexpected exit.
                        quiet.stop(None);
                        return Ok(quiet.get_cell());
                    }
                    Err(SpawnErr::StartupFailed("cannot start".into()))
                }
            })],
            policy: RestartPolicy {
                max_restarts: 3,
                window: Duration::from_secs(60),
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
            },
        };
        let (_, done) = Actor::spawn(None, RootSupervisor, tree).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), done)
            .await
            .expect("the root stops once the budget is spent")
            .unwrap();
        assert_eq!(*tries.lock().unwrap(), 4);
    }
}
