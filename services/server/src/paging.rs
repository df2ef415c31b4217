//! AIP-style pagination shared by the List use cases: a page size with a
//! default and a cap, and opaque page tokens.
//!
//! A page token carries the keyset cursor of the last row returned and a
//! fingerprint of the listing's filters, and is signed (HMAC-SHA256 under a
//! key derived from the server's secrets). So a token is refused with other
//! filters instead of silently paging a different listing, and a client
//! cannot forge one: a cursor with a date out of the database's range, say,
//! never reaches a query.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corridor_domain::Violations;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// A requested page size: 0 means `default`, larger than `max` is capped,
/// negative is refused.
pub fn page_size(raw: i32, default: u64, max: u64) -> Result<u64, Violations> {
    match raw {
        0 => Ok(default),
        n if n < 0 => Err(Violations::one("page_size", "must not be negative")),
        n => Ok(u64::try_from(n).unwrap_or(max).min(max)),
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page; empty on the last page.
    pub next_page_token: String,
}

/// Signs and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(<key redacted>)")
    }
}

#[derive(Serialize, Deserialize)]
struct Token<C> {
    c: C,
    f: String,
}

const MAC_LEN: usize = 16;

impl PageTokens {
    /// Page tokens keyed by a key derived from `secret` (a server secret
    /// used for nothing else under this label).
    pub fn derived_from(secret: &[u8]) -> anyhow::Result<Self> {
        let mut kdf = Hmac::<Sha256>::new_from_slice(secret)?;
        kdf.update(b"g60 page tokens v1");
        let key = kdf.finalize().into_bytes();
        Ok(Self {
            mac: Hmac::<Sha256>::new_from_slice(&key)?,
        })
    }

    fn tag(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// Decodes a page token made for the listing with filters `filters`.
    pub fn decode<C: DeserializeOwned>(
        &self,
        raw: &str,
        filters: &impl std::fmt::Debug,
    ) -> Result<Option<C>, Violations> {
        if raw.is_empty() {
            return Ok(None);
        }
        let bad = || Violations::one("page_token", "not a page token of this listing");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        if bytes.len() <= MAC_LEN {
            return Err(bad());
        }
        let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut m = self.mac.clone();
        m.update(body);
        m.verify_truncated_left(tag).map_err(|_| bad())?;
        let tok: Token<C> = serde_json::from_slice(body).map_err(|_| bad())?;
        if tok.f != fingerprint(filters) {
            return Err(Violations::one(
                "page_token",
                "the filters differ from the ones the token was made for",
            ));
        }
        Ok(Some(tok.c))
    }

    /// Cuts `rows` (fetched with `limit + 1`) to one page and makes the
    /// token of the next page from the last row's cursor.
    pub fn page<T, C: Serialize>(
        &self,
        mut rows: Vec<T>,
        limit: u64,
        filters: &impl std::fmt::Debug,
        cursor: impl Fn(&T) -> C,
    ) -> AppResult<Page<T>> {
        let more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => {
                let mut body = serde_json::to_vec(&Token {
                    c: cursor(last),
                    f: fingerprint(filters),
                })
                .map_err(AppError::internal)?;
                let tag = self.tag(&body);
                body.extend_from_slice(&tag);
                URL_SAFE_NO_PAD.encode(body)
            }
            _ => String::new(),
        };
        Ok(Page {
            items: rows,
            next_page_token,
        })
    }
}

/// A short fingerprint of a listing's filters.
fn fingerprint(filters: &impl std::fmt::Debug) -> String {
    hex::encode(&Sha256::digest(format!("{filters:?}"))[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_cannot_be_forged() {
        let t = PageTokens::derived_from(&[7; 32]).unwrap_or_else(|_| unreachable!());
        let page = t
            .page(vec![1, 2, 3], 2, &"filters", |n: &i32| *n)
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(page.items, [1, 2]);
        let next: Option<i32> = t.decode(&page.next_page_token, &"filters").ok().flatten();
        assert_eq!(next, Some(2));
        // Other filters.
        assert!(t.decode::<i32>(&page.next_page_token, &"other").is_err());
        // Another server's key.
        let other = PageTokens::derived_from(&[8; 32]).unwrap_or_else(|_| unreachable!());
        assert!(
            other
                .decode::<i32>(&page.next_page_token, &"filters")
                .is_err()
        );
        // A forged cursor with a valid-looking body but no key.
        let forged = URL_SAFE_NO_PAD.encode(
            br#"{"c":["-200000-01-01T00:00:00Z","00000000-0000-0000-0000-000000000000"],"f":"x"}0123456789abcdef"#,
        );
        assert!(t.decode::<(String, String)>(&forged, &"filters").is_err());
        assert!(t.decode::<i32>("!!!", &"filters").is_err());
        // The last page has no token.
        let last = t
            .page(vec![1], 2, &"filters", |n: &i32| *n)
            .unwrap_or_else(|_| unreachable!());
        assert!(last.next_page_token.is_empty());
        assert_eq!(page_size(0, 50, 500), Ok(50));
        assert_eq!(page_size(900, 50, 500), Ok(500));
        assert!(page_size(-1, 50, 500).is_err());
    }
}

#[cfg(test)]
mod properties {
    //! Page tokens: any text is answered (a cursor or a field violation),
    //! a token reads back as the cursor it was made from, and no change to
    //! a token's bytes is accepted as another cursor.

    use super::*;
    use proptest::prelude::*;

    fn tokens() -> PageTokens {
        PageTokens::derived_from(&[7; 32]).unwrap_or_else(|_| unreachable!())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_text_is_a_cursor_or_a_field_violation(raw in "\\PC{0,200}") {
            if let Err(v) = tokens().decode::<(i64, String)>(&raw, &"filters") {
                prop_assert_eq!(v.0[0].field.as_str(), "page_token");
            }
        }

        #[test]
        fn tokens_read_back_and_resist_any_byte_change(
            cursor in (any::<i64>(), "\\PC{0,40}"),
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let t = tokens();
            let page = t
                .page(vec![cursor.clone(), cursor.clone()], 1, &"filters", |c| c.clone())
                .unwrap_or_else(|_| unreachable!());
            let back: Option<(i64, String)> = t
                .decode(&page.next_page_token, &"filters")
                .unwrap_or_else(|_| unreachable!());
            prop_assert_eq!(back, Some(cursor));
            let mut bytes = URL_SAFE_NO_PAD
                .decode(&page.next_page_token)
                .unwrap_or_else(|_| unreachable!());
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            let altered = URL_SAFE_NO_PAD.encode(bytes);
            prop_assert!(t.decode::<(i64, String)>(&altered, &"filters").is_err());
        }
    }
}
