//! List paging: `?limit=` (default 50, at most 500) and the opaque `?cursor=`,
//! which is the base64url of the last item's key. Opaque so that clients pass
//! it back untouched and the key behind it may change.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// `?limit=`, checked.
pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::validation(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

pub fn encode_cursor(key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The key inside a cursor; `check` refuses keys that decode but cannot be
/// one of ours. Junk is `422` naming `cursor`.
pub fn decode_cursor<T>(raw: &str, check: impl FnOnce(&[u8]) -> Option<T>) -> Result<T, ApiError> {
    // No cursor this API returns is empty; an empty key would read as "from
    // the start" for lists keyed by text.
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .filter(|bytes| !bytes.is_empty())
        .and_then(|bytes| check(&bytes))
        .ok_or_else(|| ApiError::validation("cursor", "not a cursor this API returned"))
}

/// The cursor of a page's last item, or `None` when the page is not full (a
/// shorter page is the last one).
pub fn next_cursor<T>(items: &[T], limit: u32, key: impl FnOnce(&T) -> Vec<u8>) -> Option<String> {
    if items.len() < limit as usize {
        return None;
    }
    items.last().map(|last| encode_cursor(&key(last)))
}

/// A page of a list that comes whole from the store, keyed by a time-ordered
/// (v7) UUID: the items after the cursor's id, in id order (creation order),
/// at most `limit`, and the cursor of the next page.
pub fn page_by_id<T>(
    mut items: Vec<T>,
    id: impl Fn(&T) -> uuid::Uuid,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = parse_limit(limit)?;
    let after = cursor
        .map(|raw| decode_cursor(raw, |bytes| uuid::Uuid::from_slice(bytes).ok()))
        .transpose()?;
    items.sort_by_key(&id);
    let page: Vec<T> = items
        .into_iter()
        .filter(|item| after.is_none_or(|after| id(item) > after))
        .take(limit as usize)
        .collect();
    let next = next_cursor(&page, limit, |last| id(last).as_bytes().to_vec());
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    /// Issue 12, item 16: lists that came whole are cut into pages too.
    #[test]
    fn pages_by_id_walk_the_whole_list_once() {
        let ids: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
        let mut shuffled = ids.clone();
        shuffled.reverse();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) =
                page_by_id(shuffled.clone(), |u| *u, Some("3"), cursor.as_deref()).unwrap();
            assert!(page.len() <= 3);
            seen.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        assert!(page_by_id(ids.clone(), |u| *u, Some("0"), None).is_err());
        assert!(page_by_id(ids, |u| *u, None, Some("!!")).is_err());
    }

    fn uuid_key(bytes: &[u8]) -> Option<Uuid> {
        Uuid::from_slice(bytes).ok()
    }

    #[test]
    fn limits_default_and_stay_in_range() {
        assert_eq!(parse_limit(None).unwrap(), 50);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("500")).unwrap(), 500);
        for bad in ["0", "501", "-1", "ten", ""] {
            let e = parse_limit(Some(bad)).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.errors[0].field.as_str()),
                (422, "limit"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_cursor_round_trips() {
        let id = Uuid::now_v7();
        let cursor = encode_cursor(id.as_bytes());
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode_cursor(&cursor, uuid_key).unwrap(), id);
    }

    #[test]
    fn a_junk_cursor_is_422_naming_cursor() {
        for junk in ["!!!", "not base64 at all", "YWJj", ""] {
            let e = decode_cursor(junk, uuid_key).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (422, "validation_failed"),
                "{junk:?}"
            );
            assert_eq!(e.errors[0].field, "cursor");
        }
    }

    #[test]
    fn only_a_full_page_has_a_next_cursor() {
        let key = |n: &u8| vec![*n];
        assert_eq!(next_cursor(&[1u8, 2], 3, key), None);
        assert_eq!(next_cursor(&[1u8, 2, 3], 3, key), Some(encode_cursor(&[3])));
        assert_eq!(next_cursor::<u8>(&[], 3, key), None);
    }
}
