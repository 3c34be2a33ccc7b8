//! Invitations: the rows, the quota and seat reads, and the listings.

use chrono::{DateTime, Utc};

use super::{Arg, Conn, EnumType, StoredRow as _, id, opt_id, opt_text, rows, text};
use crate::domain::{
    BusinessId, Email, InvitationId, InvitationStatus, TokenHash, TokenNonce, UserId,
};
use crate::store::stored::{corrupt, email, grants_json};
use crate::store::{
    AddressConflicts, InvitationQuery, InvitationRecord, InviteeInvitationRecord, InviteeQuery,
    NewInvitation, StoreResult,
};

fn status_arg(status: Option<InvitationStatus>) -> Arg {
    Arg::Enum(EnumType::InvitationStatus, status.map(|s| s.as_str()))
}

pub(crate) async fn get(
    c: &mut impl Conn,
    select: &str,
    invitation: InvitationId,
) -> StoreResult<Option<InvitationRecord>> {
    let sql = format!("{select} WHERE i.id = $1");
    let row = c.fetch_optional(&sql, vec![id(invitation.0)]).await?;
    row.as_ref().map(rows::invitation).transpose()
}

pub(super) async fn by_token(
    c: &mut impl Conn,
    hash: &TokenHash,
) -> StoreResult<Option<InvitationId>> {
    let row = c
        .fetch_optional(
            "SELECT id FROM invitations WHERE token_hash = $1",
            vec![Arg::Bytes(hash.0.clone())],
        )
        .await?;
    row.map(|r| r.uuid("id").map(InvitationId)).transpose()
}

pub(super) async fn list(
    c: &mut impl Conn,
    select: &str,
    q: &InvitationQuery,
) -> StoreResult<Vec<InvitationRecord>> {
    let sql = format!(
        "{select}
         WHERE (CASE WHEN $6 THEN i.partner_business_id = $1 ELSE i.business_id = $1 END)
           AND ($2 IS NULL OR i.status = $2)
           AND ($3 IS NULL OR i.kind = $3)
           AND ($4 IS NULL OR i.id < $4)
         ORDER BY i.id DESC LIMIT $5"
    );
    let rows = c
        .fetch_all(
            &sql,
            vec![
                id(q.business_id.0),
                status_arg(q.status),
                Arg::Enum(EnumType::InvitationKind, q.kind.map(|k| k.as_str())),
                opt_id(q.before.map(|b| b.0)),
                super::limit(q.limit),
                Arg::Bool(q.incoming),
            ],
        )
        .await?;
    rows.iter().map(rows::invitation).collect()
}

/// The invitee's view (R35, R37): the invitation select with `filter`
/// (which may cut it to a page), wrapped so that the business's and the
/// inviter's names and the clock join it alike in both dialects. `$1` is
/// the clock ([`Conn::stamp`]); the filter's own parameters start at `$2`.
fn invitee_sql(select: &str, filter: &str) -> String {
    format!(
        "SELECT x.*, b.name AS business_name, u.display_name AS inviter_display_name,
                coalesce($1, CURRENT_TIMESTAMP) AS read_at
         FROM ({select} {filter}) x
         JOIN businesses b ON b.id = x.business_id
         LEFT JOIN users u ON u.user_id = x.invited_by
         ORDER BY x.id DESC"
    )
}

fn invitee_row(row: &impl super::StoredRow) -> StoreResult<InviteeInvitationRecord> {
    Ok(InviteeInvitationRecord {
        invitation: rows::invitation(row)?,
        business_name: row.text("business_name")?,
        inviter_display_name: row.text_opt("inviter_display_name")?,
        read_at: row.time("read_at")?,
    })
}

pub(super) async fn invitee_one(
    c: &mut impl Conn,
    select: &str,
    invitation: InvitationId,
) -> StoreResult<Option<InviteeInvitationRecord>> {
    one_named(
        c,
        select,
        "WHERE i.id = $2 AND i.kind = 'member'",
        invitation,
    )
    .await
}

/// One invitation of any kind with the same names as the invitee's view,
/// in one statement (the console's invitation page, R49).
pub(super) async fn named(
    c: &mut impl Conn,
    select: &str,
    invitation: InvitationId,
) -> StoreResult<Option<InviteeInvitationRecord>> {
    one_named(c, select, "WHERE i.id = $2", invitation).await
}

async fn one_named(
    c: &mut impl Conn,
    select: &str,
    filter: &str,
    invitation: InvitationId,
) -> StoreResult<Option<InviteeInvitationRecord>> {
    let sql = invitee_sql(select, filter);
    let at = c.stamp();
    let row = c
        .fetch_optional(&sql, vec![Arg::Time(at), id(invitation.0)])
        .await?;
    row.as_ref().map(invitee_row).transpose()
}

/// By address (the partial index `invitations_member_email_lower`), and by
/// the status as of the clock: pending past its expiry is expired (R11).
pub(super) async fn invitee_list(
    c: &mut impl Conn,
    select: &str,
    q: &InviteeQuery,
) -> StoreResult<Vec<InviteeInvitationRecord>> {
    let sql = invitee_sql(
        select,
        "WHERE i.kind = 'member' AND lower(i.email) = $2
           AND ($3 IS NULL
                OR (CASE WHEN i.status = 'pending' AND i.expires_at <= coalesce($1, CURRENT_TIMESTAMP)
                         THEN 'expired' ELSE i.status END) = $3)
           AND ($4 IS NULL OR i.id < $4)
         ORDER BY i.id DESC LIMIT $5",
    );
    let at = c.stamp();
    let rows = c
        .fetch_all(
            &sql,
            vec![
                Arg::Time(at),
                text(q.email.as_str()),
                status_arg(q.status),
                opt_id(q.before.map(|b| b.0)),
                super::limit(q.limit),
            ],
        )
        .await?;
    rows.iter().map(invitee_row).collect()
}

/// What the quota (R8) counts since `$2`: the business's invitations and
/// its invite links (R50: a link takes one unit when created), oldest first.
pub(crate) const QUOTA_TIMES: &str =
    "SELECT created_at FROM invitations WHERE business_id = $1 AND created_at > $2
     UNION ALL
     SELECT created_at FROM invite_links WHERE business_id = $1 AND created_at > $2
     ORDER BY created_at";

pub(super) async fn times_since(
    c: &mut impl Conn,
    business: BusinessId,
    since: DateTime<Utc>,
) -> StoreResult<Vec<DateTime<Utc>>> {
    c.fetch_all(QUOTA_TIMES, vec![id(business.0), Arg::Time(Some(since))])
        .await?
        .iter()
        .map(|row| row.time("created_at"))
        .collect()
}

pub(super) async fn count_pending_members(
    c: &mut impl Conn,
    business: BusinessId,
) -> StoreResult<u32> {
    // Pending by the database clock: one past its expiry no longer holds a seat.
    let at = c.stamp();
    let n = c
        .fetch_one(
            "SELECT count(*) AS n FROM invitations
             WHERE business_id = $1 AND kind = 'member' AND status = 'pending'
               AND expires_at > coalesce($2, CURRENT_TIMESTAMP)",
            vec![id(business.0), Arg::Time(at)],
        )
        .await?
        .int("n")?;
    Ok(n as u32)
}

/// [`StoreTx::address_conflicts`](crate::store::StoreTx::address_conflicts):
/// the addresses that conflict, one row each, and the two seat counts, as
/// rows of one `UNION ALL` (`what` says which). Members' addresses are
/// compared in lower case (`users_email_lower`), invitations' as stored
/// (lower case when parsed); pending is the status, as the unique index
/// `invitations_one_pending_per_address` sees it, while the seat count
/// leaves out what is past its expiry (R9).
pub(super) async fn address_conflicts(
    c: &mut impl Conn,
    business: BusinessId,
    emails: &[Email],
) -> StoreResult<AddressConflicts> {
    let list = super::emails(emails);
    let sql = format!(
        "SELECT 'member' AS what, lower(u.email) AS email, 0 AS n
           FROM members m JOIN users u ON u.user_id = m.user_id
          WHERE m.business_id = $1 AND {members}
         UNION ALL
         SELECT 'pending', i.email, 0 FROM invitations i
          WHERE i.business_id = $1 AND i.kind = 'member' AND i.status = 'pending' AND {pending}
         UNION ALL
         SELECT 'member_count', NULL, count(*) FROM members WHERE business_id = $1
         UNION ALL
         SELECT 'pending_count', NULL, count(*) FROM invitations
          WHERE business_id = $1 AND kind = 'member' AND status = 'pending'
            AND expires_at > coalesce($3, CURRENT_TIMESTAMP)",
        members = c.one_of("lower(u.email)", "$2", &list),
        pending = c.one_of("i.email", "$2", &list),
    );
    let at = c.stamp();
    let rows = c
        .fetch_all(&sql, vec![id(business.0), list, Arg::Time(at)])
        .await?;
    let mut out = AddressConflicts::default();
    for row in &rows {
        let what = row.text("what")?;
        match what.as_str() {
            "member" => {
                out.members.insert(email(row.text("email")?)?);
            }
            "pending" => {
                out.pending.insert(email(row.text("email")?)?);
            }
            "member_count" => out.member_count = row.int("n")? as u32,
            "pending_count" => out.pending_count = row.int("n")? as u32,
            other => return Err(corrupt("address conflict", other)),
        }
    }
    Ok(out)
}

pub(super) async fn has_pending(
    c: &mut impl Conn,
    business: BusinessId,
    email: &Email,
) -> StoreResult<bool> {
    c.fetch_one(
        "SELECT EXISTS (SELECT 1 FROM invitations
                        WHERE business_id = $1 AND email = $2 AND kind = 'member' AND status = 'pending') AS found",
        vec![id(business.0), text(email.as_str())],
    )
    .await?
    .flag("found")
}

pub(super) async fn pending_partner_between(
    c: &mut impl Conn,
    a: BusinessId,
    b: BusinessId,
) -> StoreResult<bool> {
    c.fetch_one(
        "SELECT EXISTS (SELECT 1 FROM invitations
                        WHERE kind <> 'member' AND status = 'pending'
                          AND ((business_id = $1 AND partner_business_id = $2)
                            OR (business_id = $2 AND partner_business_id = $1))) AS found",
        vec![id(a.0), id(b.0)],
    )
    .await?
    .flag("found")
}

/// The insert of invitations, up to its `VALUES`; each row is
/// [`insert_row`].
pub(crate) const INSERT: &str =
    "INSERT INTO invitations (id, business_id, kind, invited_by, email, partner_business_id, role, message,
                              locale, grants, token_hash, token_nonce, status, created_at, expires_at,
                              updated_at, renewed_from, delivery_mode, metadata, source_domain)
     VALUES";

/// One invitation's values for [`INSERT`]: pending, last updated when
/// created.
pub(crate) fn insert_row(i: &NewInvitation) -> Vec<Arg> {
    vec![
        id(i.id.0),
        id(i.business_id.0),
        Arg::Enum(EnumType::InvitationKind, Some(i.kind.as_str())),
        text(i.invited_by.as_str()),
        opt_text(i.email.as_ref().map(|e| e.as_str())),
        opt_id(i.partner_business_id.map(|b| b.0)),
        opt_text(i.role.as_ref().map(|r| r.as_str())),
        opt_text(i.message.as_deref()),
        text(i.locale.as_str()),
        Arg::Json(grants_json(&i.grants)),
        Arg::Bytes(i.token_hash.0.clone()),
        Arg::Bytes(i.token_nonce.0.clone()),
        status_arg(Some(InvitationStatus::Pending)),
        Arg::Time(Some(i.created_at)),
        Arg::Time(Some(i.expires_at)),
        Arg::Time(Some(i.created_at)),
        opt_id(i.renewed_from.map(|r| r.0)),
        text(i.delivery_mode.as_str()),
        Arg::Json(i.metadata.to_value()),
        opt_text(i.source_domain.as_ref().map(|d| d.as_str())),
    ]
}

pub(super) async fn insert(c: &mut impl Conn, i: &NewInvitation) -> StoreResult<()> {
    super::insert_rows(c, INSERT, vec![insert_row(i)]).await
}

pub(super) async fn set_status(
    c: &mut impl Conn,
    invitation: InvitationId,
    status: InvitationStatus,
    accepted_by: Option<&UserId>,
) -> StoreResult<DateTime<Utc>> {
    let at = c.stamp();
    c.fetch_one(
        "UPDATE invitations SET status = $2, updated_at = coalesce($4, CURRENT_TIMESTAMP),
             accepted_at  = CASE WHEN $2 = 'accepted'  THEN coalesce($4, CURRENT_TIMESTAMP) END,
             accepted_by  = CASE WHEN $2 = 'accepted'  THEN $3 END,
             declined_at  = CASE WHEN $2 = 'declined'  THEN coalesce($4, CURRENT_TIMESTAMP) END,
             cancelled_at = CASE WHEN $2 = 'cancelled' THEN coalesce($4, CURRENT_TIMESTAMP) END,
             expired_at   = CASE WHEN $2 = 'expired'   THEN coalesce($4, CURRENT_TIMESTAMP) END
         WHERE id = $1
         RETURNING updated_at",
        vec![
            id(invitation.0),
            status_arg(Some(status)),
            opt_text(accepted_by.map(|u| u.as_str())),
            Arg::Time(at),
        ],
    )
    .await?
    .time("updated_at")
}

/// R46: a corrected address with a new token (hash and nonce), so the old
/// token stops working with this write. `created_at` is left alone: the
/// invitation keeps its place in the quota window (R8).
pub(super) async fn correct_address(
    c: &mut impl Conn,
    invitation: InvitationId,
    email: &Email,
    hash: &TokenHash,
    nonce: &TokenNonce,
) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        "UPDATE invitations SET email = $2, token_hash = $3, token_nonce = $4,
             updated_at = coalesce($5, CURRENT_TIMESTAMP)
         WHERE id = $1",
        vec![
            id(invitation.0),
            text(email.as_str()),
            Arg::Bytes(hash.0.clone()),
            Arg::Bytes(nonce.0.clone()),
            Arg::Time(at),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn last_invitation_email_at(
    c: &mut impl Conn,
    invitation: InvitationId,
) -> StoreResult<Option<DateTime<Utc>>> {
    // On SQLite, max() over RFC 3339 text in one format is the latest time.
    // An email that failed or was withdrawn never reached the invitee and
    // does not count (issue 12, item 9); one sent or still on its way does,
    // from when it was queued, so resends cannot pile up behind a slow one.
    c.fetch_one(
        "SELECT max(created_at) AS latest FROM email_outbox
         WHERE invitation_id = $1 AND template IN ('member_invitation', 'partner_invitation', 'partner_request')
           AND status NOT IN ('failed', 'cancelled')",
        vec![id(invitation.0)],
    )
    .await?
    .time_opt("latest")
}
