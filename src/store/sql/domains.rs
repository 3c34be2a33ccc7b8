//! Domain claims (R52): their statements and [`DomainTx`] for every
//! adapter.

use async_trait::async_trait;

use super::{Arg, SqlTx, StoredRow, id, text};
use crate::domain::{BusinessId, DomainMode, MailDomain, PublicBusinessId, VerificationValue};
use crate::store::stored::{corrupt, user_id};
use crate::store::{DomainClaimRecord, DomainSuggestion, DomainTx, NewDomainClaim, StoreResult};

const COLUMNS: &str = "business_id, domain, mode, txt_value, claimed_by, verified_at, created_at";

fn stored_domain(raw: String) -> StoreResult<MailDomain> {
    MailDomain::from_stored(&raw).ok_or_else(|| corrupt("domain", &raw))
}

fn record(row: &impl StoredRow) -> StoreResult<DomainClaimRecord> {
    let mode = row.text("mode")?;
    Ok(DomainClaimRecord {
        business_id: BusinessId(row.uuid("business_id")?),
        domain: stored_domain(row.text("domain")?)?,
        mode: DomainMode::parse(&mode).ok_or_else(|| corrupt("domain mode", &mode))?,
        txt_value: VerificationValue::from_stored(row.text("txt_value")?),
        claimed_by: user_id(row.text("claimed_by")?)?,
        verified_at: row.time_opt("verified_at")?,
        created_at: row.time("created_at")?,
    })
}

#[async_trait]
impl<T: SqlTx> DomainTx for T {
    async fn insert_domain_claim(&mut self, c: &NewDomainClaim) -> StoreResult<DomainClaimRecord> {
        let at = self.stamp();
        let sql = format!(
            "INSERT INTO business_domains (business_id, domain, mode, txt_value, claimed_by, created_at)
             VALUES ($1, $2, $3, $4, $5, coalesce($6, CURRENT_TIMESTAMP))
             RETURNING {COLUMNS}"
        );
        let row = self
            .fetch_one(
                &sql,
                vec![
                    id(c.business_id.0),
                    text(c.domain.as_str()),
                    text(c.mode.as_str()),
                    text(c.txt_value.as_str()),
                    text(c.claimed_by.as_str()),
                    Arg::Time(at),
                ],
            )
            .await?;
        record(&row)
    }

    async fn get_domain_claim(
        &mut self,
        business: BusinessId,
        domain: &MailDomain,
    ) -> StoreResult<Option<DomainClaimRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM business_domains WHERE business_id = $1 AND domain = $2"
        );
        self.fetch_optional(&sql, vec![id(business.0), text(domain.as_str())])
            .await?
            .as_ref()
            .map(record)
            .transpose()
    }

    async fn list_domain_claims(
        &mut self,
        business: BusinessId,
    ) -> StoreResult<Vec<DomainClaimRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM business_domains WHERE business_id = $1 ORDER BY domain"
        );
        self.fetch_all(&sql, vec![id(business.0)])
            .await?
            .iter()
            .map(record)
            .collect()
    }

    async fn verified_domain(
        &mut self,
        domain: &MailDomain,
    ) -> StoreResult<Option<DomainClaimRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM business_domains WHERE domain = $1 AND verified_at IS NOT NULL"
        );
        self.fetch_optional(&sql, vec![text(domain.as_str())])
            .await?
            .as_ref()
            .map(record)
            .transpose()
    }

    async fn mark_domain_verified(
        &mut self,
        business: BusinessId,
        domain: &MailDomain,
        txt_value: &VerificationValue,
    ) -> StoreResult<Option<DomainClaimRecord>> {
        let at = self.stamp();
        let sql = format!(
            "UPDATE business_domains SET verified_at = coalesce(verified_at, $4, CURRENT_TIMESTAMP)
             WHERE business_id = $1 AND domain = $2 AND txt_value = $3
             RETURNING {COLUMNS}"
        );
        self.fetch_optional(
            &sql,
            vec![
                id(business.0),
                text(domain.as_str()),
                text(txt_value.as_str()),
                Arg::Time(at),
            ],
        )
        .await?
        .as_ref()
        .map(record)
        .transpose()
    }

    async fn delete_domain_claim(
        &mut self,
        business: BusinessId,
        domain: &MailDomain,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM business_domains WHERE business_id = $1 AND domain = $2",
                vec![id(business.0), text(domain.as_str())],
            )
            .await?;
        Ok(n == 1)
    }

    async fn domain_suggestions(
        &mut self,
        domain: &MailDomain,
        user: &crate::domain::UserId,
    ) -> StoreResult<Vec<DomainSuggestion>> {
        let rows = self
            .fetch_all(
                "SELECT b.id, b.public_id, b.name, d.domain
                 FROM business_domains d JOIN businesses b ON b.id = d.business_id
                 WHERE d.domain = $1 AND d.verified_at IS NOT NULL AND d.mode = 'suggest'
                   AND NOT EXISTS (SELECT 1 FROM members m
                                   WHERE m.business_id = d.business_id AND m.user_id = $2)
                 ORDER BY b.name, b.id",
                vec![text(domain.as_str()), text(user.as_str())],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let public_id = row.text("public_id")?;
                Ok(DomainSuggestion {
                    business_id: BusinessId(row.uuid("id")?),
                    public_id: PublicBusinessId::parse(&public_id)
                        .map_err(|_| corrupt("business id", &public_id))?,
                    business_name: row.text("name")?,
                    domain: stored_domain(row.text("domain")?)?,
                })
            })
            .collect()
    }
}
