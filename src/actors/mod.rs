//! Actors: thin, supervised shells around the use cases. Postgres is the record;
//! a mailbox never holds work that exists nowhere else, so any actor (or the
//! whole process) may die and the work is picked up again from the rows.
//!
//! ```text
//! RootSupervisor
//!   |-- InvitationRegistry --> InvitationActor (one per live invitation)
//!   |-- Dispatcher ----------> MailerPool (factory of mailer workers)
//! ```

pub mod dispatcher;
pub mod invitation;
pub mod mailer;
pub mod registry;
pub mod supervisor;

pub use registry::InvitationsHandle;
pub use supervisor::{RootSupervisor, SupervisorArgs};
