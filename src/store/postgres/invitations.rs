//! The invitation statements only Postgres has: a whole create's
//! invitations in one `UNNEST` insert.

use super::PgTx;
use super::conn::Bounded as _;
use crate::store::stored::grants_json;
use crate::store::{NewInvitation, StoreResult};

/// Several invitations in one statement, each as `sql::invitations::insert`
/// writes one: pending, `updated_at` its `created_at`. One statement text
/// however many rows, so one prepared statement serves every create.
pub(super) async fn insert_invitations(tx: &mut PgTx, all: &[NewInvitation]) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO invitations (id, business_id, kind, invited_by, email, partner_business_id, role, message,
                                  locale, grants, token_hash, token_nonce, status, created_at, expires_at,
                                  updated_at, renewed_from, delivery_mode, metadata, source_domain)
         SELECT id, business_id, kind::invitation_kind, invited_by, email, partner_business_id, role, message,
                locale, grants, token_hash, token_nonce, 'pending', created_at, expires_at,
                created_at, renewed_from, delivery_mode, metadata, source_domain
           FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::text[],
                       $8::text[], $9::text[], $10::jsonb[], $11::bytea[], $12::bytea[], $13::timestamptz[],
                       $14::timestamptz[], $15::uuid[], $16::text[], $17::jsonb[], $18::text[])
                AS i(id, business_id, kind, invited_by, email, partner_business_id, role, message, locale,
                     grants, token_hash, token_nonce, created_at, expires_at, renewed_from, delivery_mode,
                     metadata, source_domain)",
    )
    .bind(all.iter().map(|i| i.id.0).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.business_id.0).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.kind.as_str()).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.invited_by.as_str()).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.email.as_ref().map(|e| e.as_str())).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.partner_business_id.map(|b| b.0)).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.role.as_ref().map(|r| r.as_str())).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.message.as_deref()).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.locale.as_str()).collect::<Vec<_>>())
    .bind(all.iter().map(|i| grants_json(&i.grants)).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.token_hash.0.as_slice()).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.token_nonce.0.as_slice()).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.created_at).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.expires_at).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.renewed_from.map(|r| r.0)).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.delivery_mode.as_str()).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.metadata.to_value()).collect::<Vec<_>>())
    .bind(all.iter().map(|i| i.source_domain.as_ref().map(|d| d.as_str())).collect::<Vec<_>>())
    .execute(&mut *tx.tx)
    .bounded()
    .await?;
    Ok(())
}
