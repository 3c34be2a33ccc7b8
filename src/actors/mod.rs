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

/// How long stopping children may take: in-flight sends finish within it.
pub const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// ractor does not stop children with their parent, so each supervising
/// actor stops and awaits its own in `post_stop`: the tree stops from the top.
pub(crate) async fn stop_children(cell: &ractor::ActorCell) {
    cell.stop_children_and_wait(Some("shutdown".into()), Some(STOP_DEADLINE))
        .await;
}
