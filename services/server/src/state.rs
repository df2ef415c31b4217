//! The state every use case shares, and how it is built from [`Settings`].

use std::sync::Arc;

use corridor_domain::caller::IdentityVerifier;
use corridor_domain::holder::HolderHasher;
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::keyring::Keyring;
use crate::paging::PageTokens;
use crate::policy_book::PolicyBook;
use crate::store;
use crate::store::audit::AuditWriter;

/// Shared, cheaply clonable state. The use cases (`app/`) are its methods.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// Issuer keys.
    pub keyring: Arc<Keyring>,
    /// National-ID hasher.
    pub hasher: HolderHasher,
    /// Identity-token verifier.
    pub identity: IdentityVerifier,
    /// Recognition policies.
    pub policies: PolicyBook,
    /// Bearer tokens already validated.
    pub callers: crate::caller_cache::CallerCache,
    /// Failed holder checks.
    pub holder_throttle: crate::throttle::HolderThrottle,
    /// Background audit writer for verifications.
    pub audit: AuditWriter,
    /// Signs and checks page tokens.
    pub page_tokens: PageTokens,
    /// The time the use cases see.
    pub clock: crate::clock::Clock,
    /// Registered credentials in memory, coherent across replicas.
    pub status_cache: Arc<crate::status_cache::StatusCache>,
    /// Slots of the server's capacity, taken after authentication.
    pub admission: crate::admission::Admission,
    /// Batch items in flight across every BatchIssueCredentials call: a
    /// batch holds one admission slot but issues several items at once, so
    /// the database sees at most this many from all batches together.
    pub batch_items: tokio::sync::Semaphore,
    /// Slots for change streams (WatchEvents), held while one is open.
    pub watchers: crate::admission::Admission,
    /// Gives audit events their place in the chain.
    pub sequencer: Arc<crate::sequencer::Sequencer>,
    /// The audit and change-stream settings.
    pub audit_settings: crate::config::AuditSettings,
    /// Status-list entries and built lists (`crate::status_lists`).
    pub status_lists: crate::status_lists::StatusLists,
    /// How long recognition attestations are valid, per city.
    pub attestations: crate::config::AttestationSettings,
}

impl AppState {
    /// The shared parts, for tasks that must not keep them alive.
    pub fn inner(&self) -> Arc<Inner> {
        self.inner.clone()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    /// Checks the configuration, connects, checks that the key-encryption
    /// key opens the keys already there, migrates if configured, creates
    /// missing city keys and loads the keyring. Nothing is written before
    /// every check passed. Returns the state and the audit writer's task,
    /// which ends after the last clone of the state is dropped.
    pub async fn build(settings: &Settings) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let checked = settings.check()?;
        let limits = &settings.limits;
        let db = store::connect_waiting(
            &checked.database_url,
            std::time::Duration::from_millis(limits.db_acquire_timeout_ms),
            std::time::Duration::from_secs(limits.db_startup_wait_seconds),
        )
        .await?;
        crate::keyring::check_kek(&db, &checked.kek).await?;
        if settings.migrate_on_start {
            store::migrate(&db).await?;
        }
        Self::from_checked(db, settings, checked).await
    }

    /// Like [`AppState::build`] on an existing, migrated connection.
    pub async fn from_parts(
        db: DatabaseConnection,
        settings: &Settings,
    ) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let checked = settings.check()?;
        crate::keyring::check_kek(&db, &checked.kek).await?;
        Self::from_checked(db, settings, checked).await
    }

    async fn from_checked(
        db: DatabaseConnection,
        settings: &Settings,
        checked: crate::config::Checked,
    ) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let corridor_key = crate::sequencer::corridor_key(&db, &checked.kek).await?;
        let keyring = Arc::new(Keyring::new(checked.kek));
        let cities: Vec<_> = store::cities::all(&db)
            .await?
            .into_iter()
            .map(|c| c.code)
            .collect();
        keyring
            .bootstrap(&db, &cities)
            .await
            .map_err(|e| anyhow::anyhow!("creating issuer keys: {e}"))?;
        let policies = PolicyBook::new()?;
        policies
            .bootstrap(&db)
            .await
            .map_err(|e| anyhow::anyhow!("loading default policies: {e}"))?;
        let (audit, audit_task) = AuditWriter::spawn(db.clone());
        tokio::spawn(Keyring::refresh_loop(Arc::downgrade(&keyring), db.clone()));
        let hasher = checked.hasher;
        let status_cache = Arc::new(crate::status_cache::StatusCache::new(
            settings.limits.status_cache_entries,
            db.get_database_backend() == sea_orm::DbBackend::Postgres,
        ));
        status_cache.start(&db);
        let sequencer = Arc::new(crate::sequencer::Sequencer::new(
            db.clone(),
            corridor_key,
            settings.audit,
            status_cache.clone(),
        ));
        tokio::spawn(crate::sequencer::Sequencer::run(Arc::downgrade(&sequencer)));
        tokio::spawn(crate::sequencer::Sequencer::prune_loop(Arc::downgrade(
            &sequencer,
        )));
        let state = Self {
            inner: Arc::new(Inner {
                page_tokens: PageTokens::derived_from(&checked.page_token_secret)?,
                db,
                keyring,
                hasher,
                identity: checked.identity,
                policies,
                holder_throttle: Default::default(),
                callers: Default::default(),
                audit,
                clock: crate::clock::Clock::default(),
                status_cache,
                admission: crate::admission::Admission::new(
                    settings.limits.max_concurrent_requests,
                    settings.limits.max_concurrent_per_caller,
                ),
                batch_items: tokio::sync::Semaphore::new(
                    crate::app::credentials::BATCH_ITEMS_IN_FLIGHT,
                ),
                watchers: crate::admission::Admission::new(
                    settings.limits.max_watchers,
                    settings.limits.max_watchers_per_caller,
                ),
                sequencer,
                audit_settings: settings.audit,
                status_lists: crate::status_lists::StatusLists::new(
                    settings.http.base_url(),
                    std::time::Duration::from_secs(u64::from(settings.http.max_age_seconds)),
                ),
                attestations: settings.attestations.clone(),
            }),
        };
        Ok((state, audit_task))
    }
}
