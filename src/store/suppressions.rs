//! The store's part of the suppression list (R45): its records and the
//! [`SuppressionTx`] primitives, which every [`super::StoreTx`] has.
//!
//! Checking an address and listing it must not interleave: a create that
//! found an address free must commit before a suppression of that address
//! can, or see it. Each adapter serialises them per address: SQLite by its
//! one write lock, Postgres by a transaction-scoped advisory lock on the
//! address (shared for the check, exclusive for adding), held to commit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{Email, SuppressionReason};

#[derive(Clone, Debug)]
pub struct NewSuppression {
    pub email: Email,
    pub reason: SuppressionReason,
    /// `api`, or the source of the feedback (`smtp`, a provider).
    pub source: String,
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuppressionRecord {
    pub email: Email,
    pub reason: SuppressionReason,
    pub source: String,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A page of the list: by address, ascending.
#[derive(Clone, Debug, Default)]
pub struct SuppressionQuery {
    /// Only this address.
    pub email: Option<Email>,
    /// Addresses after this one (the cursor).
    pub after: Option<String>,
    pub limit: u32,
}

/// Primitives of one transaction for the suppression list.
#[async_trait]
pub trait SuppressionTx: Send {
    /// The listed ones among `emails`. Holds the addresses against being
    /// listed until this transaction ends (see the module header), so what
    /// it answers stays true up to the commit.
    async fn suppressed_among(&mut self, emails: &[Email]) -> StoreResult<Vec<SuppressionRecord>>;
    /// Lists an address; `false` (and nothing changes) when it already is.
    /// Waits for transactions that checked the address to end.
    async fn add_suppression(&mut self, s: &NewSuppression) -> StoreResult<bool>;
    /// Takes an address off the list; `false` if it was not on it.
    async fn remove_suppression(&mut self, email: &Email) -> StoreResult<bool>;
}
