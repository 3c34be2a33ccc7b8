//! Users: written on every `PUT /v1/users/{id}`, read by the use cases.

use super::{Arg, Conn, rows, text};
use crate::domain::UserId;
use crate::store::{NewUser, StoreResult, UserRecord};

const USER_COLUMNS: &str = "user_id, email, display_name, locale, created_at, updated_at";

pub(super) async fn upsert(c: &mut impl Conn, user: &NewUser) -> StoreResult<UserRecord> {
    let sql = format!(
        "INSERT INTO users (user_id, email, display_name, locale, created_at, updated_at)
         VALUES ($1, $2, $3, $4, coalesce($5, CURRENT_TIMESTAMP), coalesce($5, CURRENT_TIMESTAMP))
         ON CONFLICT (user_id) DO UPDATE
           SET email = excluded.email, display_name = excluded.display_name,
               locale = excluded.locale, updated_at = excluded.updated_at
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
