//! AIP-style pagination shared by the List RPCs: `page_size` with a default
//! and a cap, and opaque `page_token`s that carry the keyset cursor of the
//! last row and a fingerprint of the filters, so that a token is refused
//! with other filters instead of silently paging a different listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corridor_domain::Violations;
use corridor_domain::error::Collector;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};

/// `page_size`: 0 means `default`, larger than `max` is capped, negative is refused.
pub fn page_size(errs: &mut Collector, raw: i32, default: u64, max: u64) -> u64 {
    match raw {
        0 => default,
        n if n < 0 => {
            errs.push("page_size", "must not be negative");
            default
        }
        n => u64::try_from(n).unwrap_or(max).min(max),
    }
}

/// A short fingerprint of a listing's filters.
pub fn fingerprint(filters: &impl std::fmt::Debug) -> String {
    hex::encode(&Sha256::digest(format!("{filters:?}"))[..8])
}

#[derive(Serialize, Deserialize)]
struct Token<C> {
    c: C,
    f: String,
}

/// Decodes a page token made for the listing with `fingerprint`.
pub fn decode<C: DeserializeOwned>(raw: &str, fingerprint: &str) -> Result<Option<C>, Violations> {
    if raw.is_empty() {
        return Ok(None);
    }
    let tok: Token<C> = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Violations::one("page_token", "not a page token of this listing"))?;
    if tok.f != fingerprint {
        return Err(Violations::one(
            "page_token",
            "the filters differ from the ones the token was made for",
        ));
    }
    Ok(Some(tok.c))
}

/// Cuts `rows` (fetched with `limit + 1`) to one page and makes the token of
/// the next page from the last row's cursor (empty on the last page).
pub fn page<T, C: Serialize>(
    mut rows: Vec<T>,
    limit: u64,
    fingerprint: &str,
    cursor: impl Fn(&T) -> C,
) -> ApiResult<(Vec<T>, String)> {
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = match (more, rows.last()) {
        (true, Some(last)) => URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Token {
                c: cursor(last),
                f: fingerprint.to_owned(),
            })
            .map_err(ApiError::internal)?,
        ),
        _ => String::new(),
    };
    Ok((rows, next))
}
