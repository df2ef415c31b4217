//! A cache of validated bearer tokens.
//!
//! A system calling the service reuses one identity token for many requests
//! until it expires. Checking its EdDSA signature on every request would cost
//! as much as the credential check a verify exists for, so a token that
//! validated is remembered, by the SHA-256 of its exact bytes, until its own
//! `exp`. A different or tampered token has different bytes and is validated
//! in full; a refused token is never cached. The cache is bounded: when it is
//! full it drops the expired entries, and if that is not enough, all of them.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::Utc;
use corridor_domain::caller::Caller;
use sha2::{Digest, Sha256};

/// Most tokens remembered.
pub const CAPACITY: usize = 10_000;

/// Validated tokens and when they expire.
#[derive(Debug, Default)]
pub struct CallerCache {
    entries: RwLock<HashMap<[u8; 32], (Caller, i64)>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl CallerCache {
    /// The caller of a token validated before, while it has not expired.
    pub fn get(&self, token: &str) -> Option<Caller> {
        let now = Utc::now().timestamp();
        let map = self.entries.read().ok()?;
        map.get(&key(token))
            .filter(|(_, exp)| now < *exp)
            .map(|(c, _)| c.clone())
    }

    /// Remembers a validated token until `exp`.
    pub fn put(&self, token: &str, caller: Caller, exp: i64) {
        let Ok(mut map) = self.entries.write() else {
            return;
        };
        if map.len() >= CAPACITY {
            let now = Utc::now().timestamp();
            map.retain(|_, (_, e)| now < *e);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key(token), (caller, exp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            subject: "s".into(),
            city: None,
            roles: Vec::new(),
        }
    }

    #[test]
    fn remembers_until_expiry_only() {
        let c = CallerCache::default();
        let now = Utc::now().timestamp();
        c.put("good", caller(), now + 60);
        c.put("old", caller(), now - 1);
        assert_eq!(c.get("good"), Some(caller()));
        assert_eq!(c.get("old"), None);
        assert_eq!(c.get("goodX"), None);
    }

    #[test]
    fn stays_bounded() {
        let c = CallerCache::default();
        let exp = Utc::now().timestamp() + 60;
        for i in 0..CAPACITY + 5 {
            c.put(&format!("t{i}"), caller(), exp);
        }
        let n = c.entries.read().map(|m| m.len()).unwrap_or(0);
        assert!(n <= CAPACITY, "{n}");
    }
}
