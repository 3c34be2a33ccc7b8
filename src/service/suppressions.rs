//! R45: the suppression list through the API: read it, put an address on it
//! by hand, take one off. Feedback puts addresses on it too (`feedback.rs`),
//! and creating invitations checks it (`invitations.rs`), each in its own
//! transaction with the same per-address hold (see `store::suppressions`).

use super::{ServiceResult, Services};
use crate::domain::{DomainError, Email, SuppressionReason};
use crate::store::{NewSuppression, SuppressionQuery, SuppressionRecord};

/// The `source` of an address listed through the API.
pub const API_SOURCE: &str = "api";

impl Services {
    pub async fn list_suppressions(
        &self,
        query: &SuppressionQuery,
    ) -> ServiceResult<Vec<SuppressionRecord>> {
        Ok(self.store.list_suppressions(query).await?)
    }

    /// Lists an address by hand. Listing one already there changes nothing
    /// and answers the entry as it is (its first reason stays).
    pub async fn add_suppression(
        &self,
        email: Email,
        reason: SuppressionReason,
        detail: Option<String>,
    ) -> ServiceResult<SuppressionRecord> {
        let mut tx = self.store.begin().await?;
        let added = tx
            .add_suppression(&NewSuppression {
                email: email.clone(),
                reason,
                source: API_SOURCE.to_owned(),
                detail,
            })
            .await?;
        let record = tx
            .suppressed_among(std::slice::from_ref(&email))
            .await?
            .pop()
            .ok_or_else(|| DomainError::NotFound(format!("suppression of {email}")))?;
        tx.commit().await?;
        if added {
            tracing::info!(email = %record.email, reason = %record.reason, "address suppressed by the API");
        }
        Ok(record)
    }

    /// Takes an address off the list: it can be invited again.
    pub async fn remove_suppression(&self, email: &Email) -> ServiceResult<()> {
        let mut tx = self.store.begin().await?;
        if !tx.remove_suppression(email).await? {
            return Err(
                DomainError::NotFound(format!("{email} is not on the suppression list")).into(),
            );
        }
        tx.commit().await?;
        tracing::info!(%email, "address taken off the suppression list");
        Ok(())
    }
}
