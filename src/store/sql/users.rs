//! Users: written on every `PUT /v1/users/{id}`, read by the use cases.

use std::collections::HashMap;

use super::{Arg, Conn, StoredRow as _, rows, text};
use crate::domain::{Email, TimeZone, UserId};
use crate::store::{NewUser, StoreResult, UserRecord};

pub(super) const USER_COLUMNS: &str =
    "user_id, email, display_name, locale, time_zone, created_at, updated_at";

pub(super) async fn upsert(c: &mut impl Conn, user: &NewUser) -> StoreResult<UserRecord> {
    let sql = format!(
        "INSERT INTO users (user_id, email, display_name, locale, time_zone, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $6, coalesce($5, CURRENT_TIMESTAMP), coalesce($5, CURRENT_TIMESTAMP))
         ON CONFLICT (user_id) DO UPDATE
           SET email = excluded.email, display_name = excluded.display_name,
               locale = excluded.locale, time_zone = excluded.time_zone,
               updated_at = excluded.updated_at
         RETURNING {USER_COLUMNS}"
    );
    let at = c.stamp();
    let row = c
        .fetch_one(
            &sql,
            vec![
                text(user.user_id.as_str()),
                text(user.email.as_str()),
                super::opt_text(user.display_name.as_deref()),
                text(user.locale.as_str()),
                Arg::Time(at),
                super::opt_text(user.time_zone.as_ref().map(TimeZone::as_str)),
            ],
        )
        .await?;
    rows::user(&row)
}

pub(super) async fn get(c: &mut impl Conn, id: &UserId) -> StoreResult<Option<UserRecord>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE user_id = $1");
    let row = c.fetch_optional(&sql, vec![text(id.as_str())]).await?;
    row.as_ref().map(rows::user).transpose()
}

/// R41: the time zone of the registered user with `email` (compared in
/// lower case, served by `users_email_lower`), for an email to an address
/// that may or may not be a user's. Of several users with the address, the
/// most recently updated one that has a zone.
pub(super) async fn time_zone_by_email(
    c: &mut impl Conn,
    email: &Email,
) -> StoreResult<Option<TimeZone>> {
    let row = c
        .fetch_optional(
            "SELECT time_zone FROM users
             WHERE lower(email) = $1 AND time_zone IS NOT NULL
             ORDER BY updated_at DESC LIMIT 1",
            vec![text(email.as_str())],
        )
        .await?;
    Ok(match row {
        Some(row) => rows::time_zone(row.text_opt("time_zone")?),
        None => None,
    })
}

/// R41 for many addresses in one statement: per address, the zone of the
/// most recently updated user with it that has one, as
/// [`time_zone_by_email`] answers for one.
pub(super) async fn time_zones_by_email(
    c: &mut impl Conn,
    emails: &[Email],
) -> StoreResult<HashMap<Email, TimeZone>> {
    let mut zones = HashMap::new();
    if emails.is_empty() {
        return Ok(zones);
    }
    let list = super::emails(emails);
    let sql = format!(
        "SELECT lower(email) AS email, time_zone FROM users
         WHERE {} AND time_zone IS NOT NULL
         ORDER BY updated_at DESC",
        c.one_of("lower(email)", "$1", &list)
    );
    let rows = c.fetch_all(&sql, vec![list]).await?;
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        let address = crate::store::stored::email(row.text("email")?)?;
        // The first row of an address is its most recent user's; a zone
        // that no longer parses is no zone, as for one address.
        if seen.insert(address.clone())
            && let Some(zone) = rows::time_zone(row.text_opt("time_zone")?)
        {
            zones.insert(address, zone);
        }
    }
    Ok(zones)
}
