//! The registry's records in memory, kept coherent across replicas, so that
//! a verify makes no database round trip.
//!
//! # The promise
//!
//! A status change (suspension, reinstatement, revocation) acknowledged to
//! its caller before a VerifyCredential starts is seen by that verify, on
//! every replica. A replica that cannot prove its cache is current reads the
//! database instead of guessing. (`docs/DESIGN.md`, "Consistency", says the
//! same for clients.)
//!
//! # How
//!
//! - Every replica LISTENs on one Postgres channel. A status change
//!   NOTIFYs `inv:<credential>:<origin>:<nonce>` inside its own transaction
//!   (a policy publication `pol:<city>:<origin>:<nonce>`, for the schedule
//!   of a city's policy versions, kept here too),
//!   so the notice exists exactly when the change committed, and Postgres
//!   delivers notices to each listener in commit order.
//! - On a notice, a replica drops the credential from its cache and
//!   answers `ack:<replica>:<nonce>`.
//! - Every [`PROBE_EVERY`] a replica NOTIFYs `probe:<replica>:<n>` and
//!   notes when it sent it. When its own probe comes back on its listener,
//!   every change committed before the probe has come back too, so the
//!   cache is current as of the sending time: it is trusted until
//!   `sent + LEASE`. A replica whose probes stop coming back (listener
//!   down, database slow) stops using its cache within [`LEASE`].
//! - The replica that made the change, after its commit and before it
//!   answers, waits until its own notice has come back (then it has seen
//!   every probe committed before the change, so it knows every replica
//!   that may trust a cache without the change), then until every live peer
//!   (one whose probe it saw within [`LEASE`]) has acknowledged; or until
//!   [`LEASE`] + [`FENCE_MARGIN`] have passed. In the second case a silent peer has, by its own lease, stopped
//!   trusting a cache that may miss the change. Either way, once the caller
//!   has its answer, no replica serves the old status.
//! - A read that raced a change could put a stale record back after the
//!   change's notice dropped it: every notice (and every lost connection)
//!   bumps a generation, and a record read from the database is cached only
//!   if the generation did not move during the read.
//! - A lost listener connection empties the cache and forgets unanswered
//!   probes: notices sent while it was down are gone, so nothing older than
//!   the reconnection is trusted.
//!
//! With SQLite (`--dev`, one process) there is no LISTEN: the cache is
//! trusted and dropped locally, which is exact for a single process.
//!
//! The cache is bounded ([`Settings`](crate::config::Settings)
//! `limits.status_cache_entries`): when full, an eighth of it is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use corridor_domain::credential::Credential;
use sea_orm::sqlx::postgres::{PgListener, PgPool};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use uuid::Uuid;

/// The notification channel.
pub const CHANNEL: &str = "corridor_changes";
/// How long a replica trusts its cache after the sending time of its last
/// probe that came back.
pub const LEASE: Duration = Duration::from_millis(1000);
/// How often a replica probes.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Slack for clock rate differences between replicas, on top of [`LEASE`].
pub const FENCE_MARGIN: Duration = Duration::from_millis(250);

/// Hit and miss counts, for metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: AtomicU64,
    /// Lookups that went to the database.
    pub misses: AtomicU64,
}

/// The cache of registered credentials.
#[derive(Debug)]
pub struct StatusCache {
    replica: String,
    capacity: usize,
    listening: bool,
    entries: RwLock<HashMap<Uuid, Arc<Credential>>>,
    schedules: RwLock<HashMap<String, Arc<Schedule>>>,
    generation: AtomicU64,
    fresh_until: Mutex<Option<Instant>>,
    probes: Mutex<VecDeque<(u64, Instant)>>,
    next_probe: AtomicU64,
    peers: Mutex<HashMap<String, Instant>>,
    waiters: Mutex<HashMap<String, Waiter>>,
    acked: tokio::sync::Notify,
    /// Fault injection for tests: a delay before each notice is handled
    /// (a slow or stalled replica). Zero in production.
    notice_delay_ms: AtomicU64,
    /// Hits and misses.
    pub stats: CacheStats,
    /// The newest audit position announced (by any replica's sequencer).
    sequenced: tokio::sync::watch::Sender<i64>,
}

/// What a change is about: a credential's record, or a city's schedule of
/// policy versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A credential.
    Credential(Uuid),
    /// A city's policy versions.
    Policy(String),
}

/// The versions of a city's policy and when each takes effect.
pub type Schedule = Vec<(i32, chrono::DateTime<chrono::Utc>)>;

/// What a fence has heard so far.
#[derive(Debug, Default, Clone)]
struct Waiter {
    /// Its own notice came back.
    echoed: bool,
    /// Replicas that acknowledged it.
    acks: HashSet<String>,
}

/// A status change's wait for the other replicas, registered before its
/// commit so that no acknowledgement is missed.
#[derive(Debug)]
pub struct Fence {
    cache: Arc<StatusCache>,
    nonce: String,
    /// The notice to NOTIFY in the change's transaction.
    pub notice: String,
    subject: Subject,
}

impl StatusCache {
    /// A cache of at most `capacity` records. `listening`: records are kept
    /// coherent through Postgres notifications (else one process, SQLite).
    pub fn new(capacity: usize, listening: bool) -> Self {
        Self {
            replica: Uuid::new_v4().simple().to_string()[..12].to_owned(),
            capacity: capacity.max(1),
            listening,
            entries: RwLock::new(HashMap::new()),
            schedules: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            fresh_until: Mutex::new(None),
            probes: Mutex::new(VecDeque::new()),
            next_probe: AtomicU64::new(0),
            peers: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            acked: tokio::sync::Notify::new(),
            notice_delay_ms: AtomicU64::new(0),
            stats: CacheStats::default(),
            sequenced: tokio::sync::watch::channel(0).0,
        }
    }

    /// Makes this replica handle each notice `delay` late (tests only: a
    /// slow or stalled replica).
    #[cfg(feature = "testing")]
    pub fn delay_notices(&self, delay: Duration) {
        self.notice_delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// This replica's id on the channel.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether the cache may answer now.
    pub fn fresh(&self) -> bool {
        if !self.listening {
            return true;
        }
        self.fresh_until
            .lock()
            .ok()
            .and_then(|f| *f)
            .is_some_and(|until| Instant::now() < until)
    }

    /// A cached record, if the cache may answer.
    pub fn get(&self, id: Uuid) -> Option<Arc<Credential>> {
        if !self.fresh() {
            return None;
        }
        let hit = self.entries.read().ok()?.get(&id).cloned();
        let counter = if hit.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_lookup("status", hit.is_some());
        hit
    }

    /// The generation before a database read (see [`StatusCache::insert`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches a record read from the database while the generation was
    /// `read_at`; nothing happens if a change notice (or a lost connection)
    /// came in since, as the record may predate it.
    pub fn insert(&self, record: Arc<Credential>, read_at: u64) {
        if !self.fresh() {
            return;
        }
        let Ok(mut map) = self.entries.write() else {
            return;
        };
        // Checked under the write lock: an invalidation takes it too.
        if self.generation.load(Ordering::Acquire) != read_at {
            return;
        }
        if map.len() >= self.capacity {
            let drop_n = (self.capacity / 8).max(1);
            let victims: Vec<Uuid> = map.keys().take(drop_n).copied().collect();
            for v in victims {
                map.remove(&v);
            }
        }
        map.insert(record.id, record);
    }

    /// Drops a record (a change to it committed).
    pub fn invalidate(&self, id: Uuid) {
        if let Ok(mut map) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.remove(&id);
        }
    }

    /// A city's policy schedule, if the cache may answer.
    pub fn schedule(&self, city: &str) -> Option<Arc<Schedule>> {
        if !self.fresh() {
            return None;
        }
        self.schedules.read().ok()?.get(city).cloned()
    }

    /// Caches a schedule read while the generation was `read_at`.
    pub fn insert_schedule(&self, city: &str, schedule: Schedule, read_at: u64) {
        if !self.fresh() {
            return;
        }
        if let Ok(mut map) = self.schedules.write()
            && self.generation.load(Ordering::Acquire) == read_at
        {
            map.insert(city.to_owned(), Arc::new(schedule));
        }
    }

    /// Drops whatever `subject` names.
    fn invalidate_subject(&self, subject: &Subject) {
        match subject {
            Subject::Credential(id) => self.invalidate(*id),
            Subject::Policy(city) => {
                if let Ok(mut map) = self.schedules.write() {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    map.remove(city);
                }
            }
        }
    }

    /// The listener lost its connection: notices may be gone. Forget
    /// everything, trust nothing until a new probe comes back.
    fn lost(&self) {
        if let Ok(mut map) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.clear();
        }
        if let Ok(mut map) = self.schedules.write() {
            map.clear();
        }
        if let Ok(mut f) = self.fresh_until.lock() {
            *f = None;
        }
        if let Ok(mut p) = self.probes.lock() {
            p.clear();
        }
    }

    /// Registers the wait of a change to `credential`, before its commit.
    pub fn fence(self: &Arc<Self>, credential: Uuid) -> Fence {
        self.fence_for(Subject::Credential(credential))
    }

    /// Registers the wait of a change to `subject`, before its commit.
    pub fn fence_for(self: &Arc<Self>, subject: Subject) -> Fence {
        let nonce = Uuid::new_v4().simple().to_string();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(nonce.clone(), Waiter::default());
        }
        let notice = match &subject {
            Subject::Credential(id) => format!("inv:{id}:{}:{nonce}", self.replica),
            Subject::Policy(city) => format!("pol:{city}:{}:{nonce}", self.replica),
        };
        Fence {
            notice,
            cache: self.clone(),
            nonce,
            subject,
        }
    }

    fn live_peers(&self) -> HashSet<String> {
        let now = Instant::now();
        self.peers
            .lock()
            .map(|p| {
                p.iter()
                    .filter(|(r, seen)| **r != self.replica && now.duration_since(**seen) < LEASE)
                    .map(|(r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records that the audit chain reached `position` (a sequencer's
    /// announcement, from this replica or through the channel).
    pub fn sequenced(&self, position: i64) {
        self.sequenced.send_if_modified(|p| {
            if position > *p {
                *p = position;
                true
            } else {
                false
            }
        });
    }

    /// Announcements of new audit positions, for change-stream watchers.
    pub fn watch_sequence(&self) -> tokio::sync::watch::Receiver<i64> {
        self.sequenced.subscribe()
    }

    /// Handles one notice from the channel.
    fn on_notice(&self, payload: &str) -> Option<String> {
        let mut parts = payload.split(':');
        match parts.next()? {
            "seq" => {
                let position: i64 = parts.next()?.parse().ok()?;
                self.sequenced(position);
                None
            }
            kind @ ("inv" | "pol") => {
                let key = parts.next()?;
                let subject = if kind == "inv" {
                    Subject::Credential(Uuid::parse_str(key).ok()?)
                } else {
                    Subject::Policy(key.to_owned())
                };
                let origin = parts.next()?;
                let nonce = parts.next()?;
                self.invalidate_subject(&subject);
                if origin == self.replica {
                    if let Ok(mut w) = self.waiters.lock()
                        && let Some(waiter) = w.get_mut(nonce)
                    {
                        waiter.echoed = true;
                    }
                    self.acked.notify_waiters();
                    return None;
                }
                Some(format!("ack:{}:{nonce}", self.replica))
            }
            "ack" => {
                let replica = parts.next()?;
                let nonce = parts.next()?;
                if let Ok(mut w) = self.waiters.lock()
                    && let Some(waiter) = w.get_mut(nonce)
                {
                    waiter.acks.insert(replica.to_owned());
                }
                self.acked.notify_waiters();
                None
            }
            "probe" => {
                let replica = parts.next()?;
                let n: u64 = parts.next()?.parse().ok()?;
                if let Ok(mut p) = self.peers.lock() {
                    p.insert(replica.to_owned(), Instant::now());
                }
                if replica == self.replica
                    && let Ok(mut pending) = self.probes.lock()
                {
                    while let Some(&(m, sent)) = pending.front() {
                        if m > n {
                            break;
                        }
                        pending.pop_front();
                        if m == n
                            && let Ok(mut f) = self.fresh_until.lock()
                        {
                            *f = Some(sent + LEASE);
                        }
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// Starts the listener and the prober (Postgres only). Both end when the
    /// cache is dropped.
    pub fn start(self: &Arc<Self>, db: &DatabaseConnection) {
        if !self.listening {
            return;
        }
        let pool = db.get_postgres_connection_pool().clone();
        tokio::spawn(listen(Arc::downgrade(self), pool.clone()));
        tokio::spawn(probe(Arc::downgrade(self), pool));
    }
}

impl StatusCache {
    /// For a replayed status change, whose first answer may never have
    /// waited: drops the record here and waits until every replica's lease
    /// covers the change.
    pub async fn wait_out_lease(&self, credential: Uuid) {
        self.wait_out_lease_for(Subject::Credential(credential))
            .await;
    }

    /// [`StatusCache::wait_out_lease`] for any subject.
    pub async fn wait_out_lease_for(&self, subject: Subject) {
        self.invalidate_subject(&subject);
        if self.listening {
            tokio::time::sleep(LEASE + FENCE_MARGIN).await;
        }
    }
}

impl Fence {
    /// After the change committed: drops the record here, then waits until
    /// every live peer acknowledged or the lease ran out (see the module docs).
    pub async fn wait(self) {
        self.cache.invalidate_subject(&self.subject);
        if !self.cache.listening {
            return;
        }
        let deadline = Instant::now() + LEASE + FENCE_MARGIN;
        loop {
            let notified = self.cache.acked.notified();
            let heard = self
                .cache
                .waiters
                .lock()
                .ok()
                .and_then(|w| w.get(&self.nonce).cloned())
                .unwrap_or_default();
            if heard.echoed && self.cache.live_peers().is_subset(&heard.acks) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(subject = ?self.subject, "a replica did not acknowledge a change; waited out its lease");
                return;
            }
            // Wake on the next acknowledgement, or re-check peers soon.
            let _ = tokio::time::timeout((deadline - now).min(PROBE_EVERY), notified).await;
        }
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        if let Ok(mut w) = self.cache.waiters.lock() {
            w.remove(&self.nonce);
        }
    }
}

/// NOTIFYs `payload` on the channel, outside any transaction.
async fn notify(pool: &PgPool, payload: &str) -> Result<(), sea_orm::sqlx::Error> {
    sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(pool)
        .await
        .map(|_| ())
}

/// NOTIFYs `notice` inside `txn` (delivered when it commits).
pub async fn notify_in(txn: &impl ConnectionTrait, notice: &str) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), notice.into()],
    ))
    .await
    .map(|_| ())
}

async fn listen(cache: Weak<StatusCache>, pool: PgPool) {
    let mut backoff = Duration::from_millis(100);
    'connect: loop {
        let Some(c) = cache.upgrade() else { return };
        c.lost();
        drop(c);
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "change listener cannot connect; verifies read the database");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        listener.ignore_pool_close_event(true);
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "change listener cannot LISTEN");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        tracing::debug!("change listener connected");
        loop {
            // A connection that stays silent longer than a few leases is
            // replaced: probes alone come every PROBE_EVERY.
            let next = tokio::time::timeout(LEASE * 3, listener.try_recv()).await;
            let Some(c) = cache.upgrade() else { return };
            match next {
                Ok(Ok(Some(n))) => {
                    let delay = c.notice_delay_ms.load(Ordering::Relaxed);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    if let Some(ack) = c.on_notice(n.payload()) {
                        let pool = pool.clone();
                        tokio::spawn(async move {
                            if let Err(e) = notify(&pool, &ack).await {
                                tracing::debug!(error = %e, "acknowledgement not sent");
                            }
                        });
                    }
                }
                Ok(Ok(None)) => {
                    tracing::warn!("change listener lost its connection; reconnecting");
                    continue 'connect;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "change listener failed; reconnecting");
                    tokio::time::sleep(backoff).await;
                    continue 'connect;
                }
                Err(_) => {
                    tracing::warn!(
                        "change listener heard nothing, not even its probes; reconnecting"
                    );
                    continue 'connect;
                }
            }
        }
    }
}

async fn probe(cache: Weak<StatusCache>, pool: PgPool) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = cache.upgrade() else { return };
        let n = c.next_probe.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = c.probes.lock() {
            p.push_back((n, Instant::now()));
            // Unanswered probes are not kept for ever.
            while p.len() > 64 {
                p.pop_front();
            }
        }
        let payload = format!("probe:{}:{n}", c.replica);
        drop(c);
        if let Err(e) = notify(&pool, &payload).await {
            tracing::debug!(error = %e, "probe not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use corridor_domain::city::CityCode;
    use corridor_domain::credential::{Status, ValidityWindow};
    use corridor_domain::holder::HolderHash;
    use corridor_domain::qualification::{Category, Qualification};

    fn record() -> Arc<Credential> {
        let now = Utc::now();
        let (Ok(city), Ok(q)) = (
            CityCode::parse("c", "hangzhou"),
            Qualification::parse("q", Some(Category::SkillLevel), "electrician", 3, "t"),
        ) else {
            unreachable!()
        };
        Arc::new(Credential {
            id: Uuid::now_v7(),
            issuer_city: city,
            qualification: q,
            holder_name: "n".into(),
            holder_hash: HolderHash::from_stored("h".into()),
            window: ValidityWindow {
                from: now,
                until: None,
            },
            status: Status::Active,
            status_reason: None,
            kid: "k".into(),
            token: "t".into(),
            issued_by: "s".into(),
            issued_at: now,
            updated_at: now,
            status_entry: None,
        })
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_cached() {
        let c = StatusCache::new(10, false);
        let r = record();
        let before = c.generation();
        c.invalidate(r.id);
        c.insert(r.clone(), before);
        assert!(c.get(r.id).is_none());
        c.insert(r.clone(), c.generation());
        assert!(c.get(r.id).is_some());
    }

    #[test]
    fn trusted_only_while_its_own_probe_came_back_within_the_lease() {
        let c = StatusCache::new(10, true);
        let r = record();
        c.insert(r.clone(), c.generation());
        assert!(c.get(r.id).is_none(), "not fresh before any probe");
        c.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((0, Instant::now()));
        let me = c.replica.clone();
        assert_eq!(c.on_notice(&format!("probe:{me}:0")), None);
        assert!(c.fresh());
        c.insert(r.clone(), c.generation());
        assert!(c.get(r.id).is_some());
        // Another replica's change: dropped here and acknowledged.
        assert_eq!(
            c.on_notice(&format!("inv:{}:other:n1", r.id)),
            Some(format!("ack:{me}:n1"))
        );
        assert!(c.get(r.id).is_none());
        // A probe sent long ago that only now comes back trusts nothing.
        c.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((1, Instant::now() - LEASE * 2));
        c.on_notice(&format!("probe:{me}:1"));
        assert!(!c.fresh());
        // A lost connection forgets pending probes and records.
        c.lost();
        assert!(!c.fresh());
    }

    #[test]
    fn bounded() {
        let c = StatusCache::new(16, false);
        for _ in 0..100 {
            c.insert(record(), c.generation());
        }
        let n = c.entries.read().map(|m| m.len()).unwrap_or(0);
        assert!(n <= 16, "{n}");
    }
}
