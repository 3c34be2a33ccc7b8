//! The scheduler: runs the time-driven chores of `service::chores` (expiry
//! sweep, reminders, idempotency-key purge) at each time of
//! `invitations.expiry_schedule`. Every replica runs one; the chores are
//! written so that running them concurrently changes nothing twice.
//!
//! Tests run the chores without waiting for the clock by calling
//! `Services::run_chores` directly: no message exists for them alone.

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::service::Services;
use crate::service::chores::ChoreReport;

pub enum SchedulerMsg {
    /// The schedule came due.
    Tick,
}

pub struct Scheduler;

pub struct SchedulerArgs {
    pub services: Services,
    pub schedule: cron::Schedule,
}

pub struct SchedulerState {
    services: Services,
    schedule: cron::Schedule,
}

/// Sends `Tick` at the next time of the schedule. A tick that arrives late
/// (chores took longer than the gap) is followed by the next future time, so
/// ticks never pile up.
fn schedule_next(myself: &ActorRef<SchedulerMsg>, schedule: &cron::Schedule) {
    let now = Utc::now();
    if let Some(next) = schedule.after(&now).next() {
        let wait = (next - now).to_std().unwrap_or_default();
        myself.send_after(wait, || SchedulerMsg::Tick);
    } else {
        tracing::warn!("the expiry schedule has no future time; chores stop");
    }
}

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        args: SchedulerArgs,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        schedule_next(&myself, &args.schedule);
        Ok(SchedulerState {
            services: args.services,
            schedule: args.schedule,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SchedulerMsg::Tick => {
                // The chores are this actor's only work, so running them here
                // (not in a task) is what keeps two runs from overlapping.
                match state.services.run_chores().await {
                    Ok(report) if report != ChoreReport::default() => {
                        tracing::info!(?report, "scheduled chores done")
                    }
                    Ok(_) => {}
                    // The database may be restarting: the next tick tries again.
                    Err(error) => tracing::warn!(%error, "scheduled chores failed"),
                }
                schedule_next(&myself, &state.schedule);
            }
        }
        Ok(())
    }
}
