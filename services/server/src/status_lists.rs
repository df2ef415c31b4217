//! W3C Bitstring Status Lists: handing out entries, and building each
//! city's signed list credentials (`docs/DESIGN.md`, "Offline
//! verification").
//!
//! - **Entries.** A credential (in its issuing city's lists) and a
//!   recognition (in its target city's) take the next position of the
//!   city's counter; the domain turns it into a list number and a keyed,
//!   order-hiding index. A replica reserves [`BLOCK`] positions at a time in
//!   one short statement of its own, so an issuance costs no extra round
//!   trip and no lock on a hot row. Positions of a block a replica never
//!   used (it stopped) stay clear bits: nothing refers to them.
//! - **Lists.** A list credential is built on request from the rows whose
//!   bit is set (an index on exactly those), signed with the city's current
//!   key, and kept until a status change is seen (the status cache's
//!   generation moves on every change notice, from any replica) or for
//!   `http.max_age_seconds`. A replica that cannot trust its change feed
//!   builds every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corridor_domain::city::CityCode;
use corridor_domain::status_list::{Bitstring, LIST_SIZE, Permutation, Purpose, StatusEntry};
use corridor_domain::vc::{self, StatusListClaims, StatusListEntry};
use sea_orm::DatabaseConnection;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::keys::{self as key_store, Lock};
use crate::store::status_lists as store;

/// Positions a replica reserves at a time.
pub const BLOCK: u64 = 256;

#[derive(Debug, Default)]
struct Block {
    next: u64,
    end: u64,
    permutation: Option<Permutation>,
}

/// A built list credential.
#[derive(Debug, Clone)]
pub struct BuiltList {
    /// The signed `BitstringStatusListCredential` (VC-JWT).
    pub jwt: String,
    /// Its bits.
    pub bits: Arc<Bitstring>,
    /// When built.
    pub built: Instant,
    /// The status cache's generation when the build started.
    generation: u64,
}

impl BuiltList {
    /// How much of `max_age` is left: what a client may still cache it for
    /// (its signed `validUntil` is `built + max_age`).
    pub fn remaining(&self, max_age: Duration) -> Duration {
        max_age.saturating_sub(self.built.elapsed())
    }
}

/// Lists built at once by this replica (each a database read of up to a
/// list's set bits): requests beyond wait, then usually find the list built.
pub const CONCURRENT_BUILDS: usize = 2;

/// Entry allocation and built lists of this replica.
#[derive(Debug)]
pub struct StatusLists {
    base_url: Option<String>,
    max_age: Duration,
    blocks: Mutex<HashMap<CityCode, Arc<tokio::sync::Mutex<Block>>>>,
    built: Mutex<HashMap<(CityCode, u32, Purpose), BuiltList>>,
    builds: tokio::sync::Semaphore,
}

impl StatusLists {
    /// Lists published under `base_url` (none: credentials carry no
    /// status), cached by clients for `max_age`.
    pub fn new(base_url: Option<String>, max_age: Duration) -> Self {
        Self {
            base_url,
            max_age,
            blocks: Mutex::default(),
            built: Mutex::default(),
            builds: tokio::sync::Semaphore::new(CONCURRENT_BUILDS),
        }
    }

    /// How long clients may cache a list.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The next entry of `city`'s lists, or none when lists are not
    /// published. Uses `db` itself, outside any transaction: call it
    /// before opening one (under SQLite the pool has one connection).
    /// `known` runs before a block is reserved, to refuse an unknown city
    /// before anything is written for it.
    pub async fn allocate(
        &self,
        db: &DatabaseConnection,
        city: &CityCode,
        known: impl AsyncFnOnce() -> AppResult<()>,
    ) -> AppResult<Option<StatusEntry>> {
        if self.base_url.is_none() {
            return Ok(None);
        }
        let block = {
            let mut blocks = self
                .blocks
                .lock()
                .map_err(|_| AppError::internal("status list allocation poisoned"))?;
            blocks.entry(city.clone()).or_default().clone()
        };
        let mut b = block.lock().await;
        if b.next >= b.end || b.permutation.is_none() {
            known().await?;
            let key = corridor_domain::status_list::new_key().map_err(AppError::internal)?;
            let r = store::reserve(db, city, BLOCK, &key).await?;
            b.permutation = Some(Permutation::new(&r.key).map_err(AppError::internal)?);
            b.next = r.start;
            b.end = r.end;
        }
        let position = b.next;
        b.next += 1;
        Ok(b.permutation.as_ref().map(|p| p.entry(position)))
    }

    /// The `credentialStatus` entries of `entry` in `city`'s lists.
    pub fn entries(&self, city: &CityCode, entry: Option<StatusEntry>) -> Vec<StatusListEntry> {
        match (&self.base_url, entry) {
            (Some(base), Some(e)) => StatusListEntry::for_entry(base, city, e),
            _ => Vec::new(),
        }
    }

    fn cached(&self, key: &(CityCode, u32, Purpose), generation: u64) -> Option<BuiltList> {
        let built = self.built.lock().ok()?;
        built
            .get(key)
            .filter(|b| b.generation == generation && b.built.elapsed() < self.max_age)
            .cloned()
    }
}

impl AppState {
    /// The signed status list `list` of `city` for `purpose`. NOT_FOUND for
    /// an unknown city or a list not started yet; FAILED_PRECONDITION when
    /// lists are not published (no `http.public_url` or `http.listen`).
    pub async fn status_list(
        &self,
        city: &CityCode,
        list: u32,
        purpose: Purpose,
    ) -> AppResult<BuiltList> {
        let Some(base) = self.status_lists.base_url.clone() else {
            return Err(AppError::FailedPrecondition(
                "STATUS_LISTS_NOT_PUBLISHED",
                "this server publishes no status lists (http.listen and http.public_url are unset)"
                    .into(),
            ));
        };
        self.known_city(city, "city").await?;
        let key = (city.clone(), list, purpose);
        let generation = self.status_cache.generation();
        let trusted = self.status_cache.fresh();
        if trusted && let Some(b) = self.status_lists.cached(&key, generation) {
            return Ok(b);
        }
        let _build = self
            .status_lists
            .builds
            .acquire()
            .await
            .map_err(|_| AppError::internal("status list builds closed"))?;
        // Another request may have built it while this one waited.
        let generation = self.status_cache.generation();
        let trusted = self.status_cache.fresh();
        if trusted && let Some(b) = self.status_lists.cached(&key, generation) {
            return Ok(b);
        }
        let positions = store::positions(&self.db, city).await?;
        if u64::from(list) * u64::from(LIST_SIZE) >= positions {
            return Err(AppError::NotFound(format!(
                "{city} has no status list {list} yet"
            )));
        }
        let mut bits = Bitstring::new();
        for i in store::set_indexes(&self.db, city, list, purpose).await? {
            bits.set(i);
        }
        let row = key_store::current(&self.db, city, Lock::None)
            .await?
            .ok_or_else(|| AppError::Aborted(format!("{city}'s key is being rotated; retry")))?;
        let signing = self.keyring.signing_for(&row)?;
        let max_age_ms = u64::try_from(self.status_lists.max_age.as_millis()).unwrap_or(u64::MAX);
        let jwt = vc::sign_status_list(
            &signing,
            &StatusListClaims {
                city: city.clone(),
                url: vc::status_list_url(&base, city, list, purpose),
                purpose,
                encoded_list: bits.encode(),
                issued_at: self.clock.now(),
                ttl_ms: max_age_ms,
            },
        )
        .map_err(AppError::internal)?;
        let built = BuiltList {
            jwt,
            bits: Arc::new(bits),
            built: Instant::now(),
            generation,
        };
        if trusted && let Ok(mut map) = self.status_lists.built.lock() {
            map.insert(key, built.clone());
        }
        Ok(built)
    }
}
