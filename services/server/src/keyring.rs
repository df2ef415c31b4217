//! The in-memory issuer keyring, and the one place a city key is generated
//! and sealed ([`Keyring::generate`]).
//!
//! Verifying keys of every city (current and retired) are cached so that a
//! verify needs no database round trip for its key. The cache is refreshed
//! when this replica rotates a key; every [`REFRESH_INTERVAL`] by a background
//! task, off the request path (so a key another replica retired gets its
//! `not_after` here too); and on a miss for an unknown kid (another replica
//! may have rotated), at most once per [`MISS_RELOAD_INTERVAL`] so that
//! tokens with made-up kids cannot turn into a database load.
//!
//! Signing keys are unsealed lazily, per city, and re-read from the database
//! when the city's current kid changed under us.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use corridor_domain::city::CityCode;
use corridor_domain::keys::{IssuerSigningKey, IssuerVerifyingKey, KeyEncryptionKey};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::error::{AppError, AppResult};
use crate::store::keys as key_store;
use corridor_domain::keys::IssuerKeyRecord;

/// Minimum time between two reloads caused by unknown kids.
pub const MISS_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// How often the background task reloads the cache.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Refuses a key-encryption key that does not open every city's current
/// key. Read with plain SQL (no entity) so that it works on a schema older
/// than this binary's, before any migration; a database without the table
/// (a fresh one) has nothing to check.
///
/// Why: a replica started with the wrong KEK answered INTERNAL to every
/// issuance, and a rotation it served sealed the city's new key under the
/// wrong KEK, breaking issuance on every correctly configured replica.
pub async fn check_kek(db: &DatabaseConnection, kek: &KeyEncryptionKey) -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = db.get_database_backend();
    let exists = match backend {
        sea_orm::DbBackend::Postgres => "SELECT to_regclass('issuer_keys') IS NOT NULL AS present",
        _ => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'issuer_keys') AS present"
        }
    };
    let present: bool = match db
        .query_one_raw(Statement::from_string(backend, exists))
        .await?
    {
        Some(row) => row.try_get("", "present")?,
        None => false,
    };
    if !present {
        return Ok(());
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT kid, city_code, sealed_private_key FROM issuer_keys WHERE status = 'current'",
        ))
        .await?;
    for row in rows {
        let kid: String = row.try_get("", "kid")?;
        let city: String = row.try_get("", "city_code")?;
        let sealed: Vec<u8> = row.try_get("", "sealed_private_key")?;
        let code = CityCode::parse("city", &city)
            .map_err(|_| anyhow::anyhow!("issuer key {kid} has a malformed city {city}"))?;
        if IssuerSigningKey::unseal(&kid, code, &sealed, kek).is_err() {
            anyhow::bail!(
                "the configured key-encryption key does not open {city}'s current issuer key {kid}: \
                 secrets.key_encryption_key must be the key that sealed the keys in this database; \
                 refusing to start (nothing was written)"
            );
        }
    }
    // The corridor key (audit checkpoints), once its table exists.
    let corridor = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT to_regclass('corridor_keys') IS NOT NULL AS present"
        }
        _ => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'corridor_keys') AS present"
        }
    };
    let present: bool = match db
        .query_one_raw(Statement::from_string(backend, corridor))
        .await?
    {
        Some(row) => row.try_get("", "present")?,
        None => false,
    };
    if present {
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT kid, sealed_private_key FROM corridor_keys",
            ))
            .await?;
        for row in rows {
            let kid: String = row.try_get("", "kid")?;
            let sealed: Vec<u8> = row.try_get("", "sealed_private_key")?;
            if corridor_domain::keys::CorridorSigningKey::unseal(&kid, &sealed, kek).is_err() {
                anyhow::bail!(
                    "the configured key-encryption key does not open the corridor key {kid}: \
                     secrets.key_encryption_key must be the key that sealed the keys in this database; \
                     refusing to start (nothing was written)"
                );
            }
        }
    }
    Ok(())
}

/// The keyring shared by all use cases.
pub struct Keyring {
    kek: KeyEncryptionKey,
    verifying: RwLock<HashMap<String, Arc<IssuerVerifyingKey>>>,
    signing: RwLock<HashMap<CityCode, Arc<IssuerSigningKey>>>,
    last_miss_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
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

    /// A new key for `city`, valid from `now`, sealed under the KEK: the
    /// signing key and the record to store. Bootstrap and rotation both
    /// come here.
    pub fn generate(
        &self,
        city: &CityCode,
        now: DateTime<Utc>,
    ) -> AppResult<(Arc<IssuerSigningKey>, IssuerKeyRecord)> {
        let key = IssuerSigningKey::generate(city, now).map_err(AppError::internal)?;
        let sealed = key.seal(&self.kek).map_err(AppError::internal)?;
        let record = IssuerKeyRecord {
            kid: key.kid().to_owned(),
            city: city.clone(),
            public_key: key.public_key(),
            sealed_private_key: sealed,
            current: true,
            not_before: now,
            not_after: None,
        };
        Ok((Arc::new(key), record))
    }

    /// Creates a current key for every city that has none ("keys are created
    /// on first start"), then loads all verifying keys.
    pub async fn bootstrap(&self, db: &DatabaseConnection, cities: &[CityCode]) -> AppResult<()> {
        let now = Utc::now();
        for city in cities {
            if key_store::current(db, city, key_store::Lock::None)
                .await?
                .is_some()
            {
                continue;
            }
            let (_, record) = self.generate(city, now)?;
            if key_store::insert_current_if_none(db, &record).await? {
                tracing::info!(city = %city, kid = %record.kid, "created issuer key");
            }
        }
        self.reload(db).await
    }

    /// Replaces the verifying cache with what the database holds.
    pub async fn reload(&self, conn: &impl ConnectionTrait) -> AppResult<()> {
        let rows = key_store::all(conn).await?;
        let map = rows
            .iter()
            .map(|r| (r.kid.clone(), Arc::new(r.verifying())))
            .collect();
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
    ) -> AppResult<Option<Arc<IssuerVerifyingKey>>> {
        let cached = self.cached(kid);
        crate::metrics::cache_lookup("issuer_key", cached.is_some());
        if let Some(k) = cached {
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

    /// Reloads the cache every [`REFRESH_INTERVAL`] while the keyring lives.
    pub async fn refresh_loop(keyring: Weak<Keyring>, db: DatabaseConnection) {
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(keyring) = keyring.upgrade() else {
                break;
            };
            if let Err(e) = keyring.reload(&db).await {
                tracing::warn!(error = %e, "issuer key refresh failed; keeping the cached keys");
            }
        }
    }

    /// The signing key of `row` (the city's current key as just read from
    /// the database), unsealing it if this replica has not yet.
    pub fn signing_for(&self, row: &IssuerKeyRecord) -> AppResult<Arc<IssuerSigningKey>> {
        if let Some(k) = self
            .signing
            .read()
            .ok()
            .and_then(|m| m.get(&row.city).cloned())
            && k.kid() == row.kid
        {
            return Ok(k);
        }
        let key = Arc::new(
            IssuerSigningKey::unseal(
                &row.kid,
                row.city.clone(),
                &row.sealed_private_key,
                &self.kek,
            )
            .map_err(AppError::internal)?,
        );
        if let Ok(mut m) = self.signing.write() {
            m.insert(row.city.clone(), key.clone());
        }
        if let Ok(mut v) = self.verifying.write() {
            v.entry(row.kid.clone())
                .or_insert_with(|| Arc::new(row.verifying()));
        }
        Ok(key)
    }

    /// The signing key this replica last used for `city`, if any. It may
    /// have been retired since by another replica: a signer checks, in the
    /// statement that stores what it signed, that the kid is still current.
    pub fn last_signing(&self, city: &CityCode) -> Option<Arc<IssuerSigningKey>> {
        self.signing.read().ok()?.get(city).cloned()
    }

    /// Records a rotation done by this replica: `retired` (now with its
    /// `not_after`) and the new current key.
    pub fn rotated(
        &self,
        retired: &IssuerKeyRecord,
        new_key: Arc<IssuerSigningKey>,
        new_record: &IssuerKeyRecord,
    ) {
        if let Ok(mut v) = self.verifying.write() {
            v.insert(retired.kid.clone(), Arc::new(retired.verifying()));
            v.insert(new_record.kid.clone(), Arc::new(new_record.verifying()));
        }
        if let Ok(mut m) = self.signing.write() {
            m.insert(new_record.city.clone(), new_key);
        }
    }
}
