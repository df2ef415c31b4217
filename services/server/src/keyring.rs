//! The in-memory issuer keyring.
//!
//! Verifying keys of every city (current and retired) are cached so that a
//! verify needs no database round trip for its key. The cache is refreshed
//! when this replica rotates a key; every [`REFRESH_INTERVAL`] by a background
//! task, off the request path (so a key another replica retired gets its
//! `not_after` here too); and on a miss for
//! an unknown kid (another replica may have rotated), at most once per
//! [`MISS_RELOAD_INTERVAL`] so that tokens with made-up kids cannot turn into
//! a database load.
//!
//! Signing keys are unsealed lazily, per city, and re-read from the database
//! when the city's current kid changed under us.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use corridor_domain::city::CityCode;
use corridor_domain::keys::{IssuerSigningKey, IssuerVerifyingKey, KeyEncryptionKey};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::error::{ApiError, ApiResult};
use crate::store::entities::issuer_key;
use crate::store::keys as key_store;

/// Minimum time between two reloads caused by unknown kids.
pub const MISS_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// How often the background task reloads the cache.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// The keyring shared by all handlers.
pub struct Keyring {
    kek: KeyEncryptionKey,
    verifying: RwLock<HashMap<String, Arc<IssuerVerifyingKey>>>,
    signing: RwLock<HashMap<String, Arc<IssuerSigningKey>>>,
    last_miss_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
}

fn city(code: &str) -> ApiResult<CityCode> {
    CityCode::parse("city", code).map_err(|_| ApiError::internal(format!("bad stored city {code}")))
}

/// Builds a verifying key from a stored row.
pub fn verifying_from_row(row: &issuer_key::Model) -> ApiResult<IssuerVerifyingKey> {
    IssuerVerifyingKey::from_stored(
        row.kid.clone(),
        city(&row.city_code)?,
        &row.public_key,
        row.not_before,
        row.not_after,
    )
    .map_err(ApiError::internal)
}

impl Keyring {
    /// An empty keyring sealing and unsealing with `kek`.
    pub fn new(kek: KeyEncryptionKey) -> Self {
        Self {
            kek,
            verifying: RwLock::new(HashMap::new()),
            signing: RwLock::new(HashMap::new()),
            last_miss_reload: tokio::sync::Mutex::new(None),
        }
    }

    /// The key-encryption key.
    pub fn kek(&self) -> &KeyEncryptionKey {
        &self.kek
    }

    /// Creates a current key for every city that has none ("keys are created
    /// on first start"), then loads all verifying keys.
    pub async fn bootstrap(&self, db: &DatabaseConnection, city_codes: &[String]) -> ApiResult<()> {
        let now = Utc::now();
        for code in city_codes {
            if key_store::current(db, code, key_store::Lock::None)
                .await?
                .is_some()
            {
                continue;
            }
            let key = IssuerSigningKey::generate(&city(code)?, now).map_err(ApiError::internal)?;
            let sealed = key.seal(&self.kek).map_err(ApiError::internal)?;
            let inserted = key_store::insert_current_if_none(
                db,
                key.kid().to_owned(),
                code.clone(),
                key.public_key().to_vec(),
                sealed,
                now,
            )
            .await?;
            if inserted {
                tracing::info!(city = %code, kid = key.kid(), "created issuer key");
            }
        }
        self.reload(db).await
    }

    /// Replaces the verifying cache with what the database holds.
    pub async fn reload(&self, conn: &impl ConnectionTrait) -> ApiResult<()> {
        let rows = key_store::all(conn).await?;
        let mut map = HashMap::with_capacity(rows.len());
        for row in &rows {
            map.insert(row.kid.clone(), Arc::new(verifying_from_row(row)?));
        }
        if let Ok(mut v) = self.verifying.write() {
            *v = map;
        }
        Ok(())
    }

    /// A cached verifying key.
    pub fn cached(&self, kid: &str) -> Option<Arc<IssuerVerifyingKey>> {
        self.verifying.read().ok()?.get(kid).cloned()
    }

    /// A verifying key, reloading the cache on a miss (rate-limited).
    /// Periodic refreshes happen off the request path ([`Keyring::refresh_loop`]),
    /// so a verify whose key is cached makes no database round trip for it.
    pub async fn verifying(
        &self,
        db: &DatabaseConnection,
        kid: &str,
    ) -> ApiResult<Option<Arc<IssuerVerifyingKey>>> {
        if let Some(k) = self.cached(kid) {
            return Ok(Some(k));
        }
        let mut last = self.last_miss_reload.lock().await;
        // Another task may have reloaded while we waited for the lock.
        if let Some(k) = self.cached(kid) {
            return Ok(Some(k));
        }
        if last.is_some_and(|t| t.elapsed() < MISS_RELOAD_INTERVAL) {
            return Ok(None);
        }
        *last = Some(Instant::now());
        self.reload(db).await?;
        Ok(self.cached(kid))
    }

    /// Reloads the cache every [`REFRESH_INTERVAL`] while `state` lives.
    pub async fn refresh_loop(state: std::sync::Weak<crate::state::Inner>) {
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else { break };
            if let Err(e) = state.keyring.reload(&state.db).await {
                tracing::warn!(error = %e, "issuer key refresh failed; keeping the cached keys");
            }
        }
    }

    /// The signing key for `row` (the city's current key as just read from
    /// the database), unsealing it if this replica has not yet.
    pub fn signing_for(&self, row: &issuer_key::Model) -> ApiResult<Arc<IssuerSigningKey>> {
        if let Some(k) = self
            .signing
            .read()
            .ok()
            .and_then(|m| m.get(&row.city_code).cloned())
            && k.kid() == row.kid
        {
            return Ok(k);
        }
        let key = Arc::new(
            IssuerSigningKey::unseal(
                &row.kid,
                city(&row.city_code)?,
                &row.sealed_private_key,
                &self.kek,
            )
            .map_err(ApiError::internal)?,
        );
        if let Ok(mut m) = self.signing.write() {
            m.insert(row.city_code.clone(), key.clone());
        }
        if let Ok(mut v) = self.verifying.write() {
            v.entry(row.kid.clone())
                .or_insert_with(|| Arc::new(key.verifying_key(row.not_before)));
        }
        Ok(key)
    }

    /// Records a rotation done by this replica.
    pub fn rotated(
        &self,
        retired: &issuer_key::Model,
        retired_at: DateTime<Utc>,
        new_key: Arc<IssuerSigningKey>,
        new_not_before: DateTime<Utc>,
    ) -> ApiResult<()> {
        let mut old = verifying_from_row(retired)?;
        old.not_after = Some(retired_at);
        if let Ok(mut v) = self.verifying.write() {
            v.insert(old.kid.clone(), Arc::new(old));
            v.insert(
                new_key.kid().to_owned(),
                Arc::new(new_key.verifying_key(new_not_before)),
            );
        }
        if let Ok(mut m) = self.signing.write() {
            m.insert(retired.city_code.clone(), new_key);
        }
        Ok(())
    }
}
