//! The sequencer: gives every audit event its place in the chain.
//!
//! Events are written in their change's own transaction (an outbox), with
//! an insertion number that is not gapless and not in commit order. The
//! sequencer settles them: in rounds, it takes the events no running
//! transaction can still come before (`store::audit_chain::pending`), in
//! (transaction, insertion) order, gives them the next gapless positions,
//! chains their hashes (`corridor_domain::audit`), signs a checkpoint when
//! one is due, and announces the new head (`seq:<position>` on the change
//! channel) so that watchers wake at once.
//!
//! Every replica runs one. A round locks the single `sequencer_state` row
//! with `SKIP LOCKED`, so while one replica's round runs the others skip
//! theirs: one writer at a time, no leader to elect, and no gap when a
//! replica dies mid-round (its transaction rolls back).

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use corridor_domain::audit::Checkpoint;
use corridor_domain::keys::{CorridorSigningKey, KeyEncryptionKey};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait};

use crate::config::AuditSettings;
use crate::status_cache::StatusCache;
use crate::store::audit_chain::{self as chain, Watermark};

/// Events settled per round at most.
pub const BATCH: u64 = 1000;

/// Loads the corridor key, creating it on first start.
pub async fn corridor_key(
    db: &DatabaseConnection,
    kek: &KeyEncryptionKey,
) -> anyhow::Result<CorridorSigningKey> {
    if chain::corridor_key(db).await?.is_none() {
        let key = CorridorSigningKey::generate(Utc::now())?;
        let sealed = key.seal(kek)?;
        chain::insert_corridor_key(db, key.kid(), key.public_key(), sealed, Utc::now()).await?;
    }
    let (kid, _, sealed) = chain::corridor_key(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the corridor key was not stored"))?;
    CorridorSigningKey::unseal(&kid, &sealed, kek).map_err(|e| {
        anyhow::anyhow!(
            "{e}: secrets.key_encryption_key must be the key that sealed the corridor key; refusing to start"
        )
    })
}

/// The sequencer of one replica.
#[derive(Debug)]
pub struct Sequencer {
    db: DatabaseConnection,
    key: CorridorSigningKey,
    settings: AuditSettings,
    cache: Arc<StatusCache>,
    /// When an idle round last looked whether a timed checkpoint is due.
    idle_checked: std::sync::Mutex<Option<std::time::Instant>>,
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Another replica's round was running.
    Busy,
    /// Settled this many events; the head is now at `head` (-1: not read).
    Settled {
        /// Events given a position.
        count: usize,
        /// The last position.
        head: i64,
    },
}

impl Sequencer {
    /// A sequencer signing checkpoints with `key`.
    pub fn new(
        db: DatabaseConnection,
        key: CorridorSigningKey,
        settings: AuditSettings,
        cache: Arc<StatusCache>,
    ) -> Self {
        Self {
            db,
            key,
            settings,
            cache,
            idle_checked: std::sync::Mutex::new(None),
        }
    }

    /// Whether an idle round should look for a due timed checkpoint (a
    /// few times per interval, not every poll).
    fn idle_check_due(&self) -> bool {
        let every = Duration::from_secs(self.settings.checkpoint_interval_seconds.max(4) / 4);
        let Ok(mut last) = self.idle_checked.lock() else {
            return true;
        };
        match *last {
            Some(t) if t.elapsed() < every => false,
            _ => {
                *last = Some(std::time::Instant::now());
                true
            }
        }
    }

    /// The corridor key's id and public key.
    pub fn public_key(&self) -> (&str, [u8; 32]) {
        (self.key.kid(), self.key.public_key())
    }

    /// One round: settles what can be settled, in one transaction.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<Round, DbErr> {
        let txn = self.db.begin().await?;
        let Some(mark) = chain::lock_watermark(&txn).await? else {
            txn.rollback().await?;
            return Ok(Round::Busy);
        };
        let mut pending = chain::pending(&txn, &mark, BATCH).await?;
        if pending.is_empty() && !self.idle_check_due() {
            txn.commit().await?;
            return Ok(Round::Settled { count: 0, head: -1 });
        }
        let mut heads = chain::heads(&txn, None).await?;
        let mut changed_cities = std::collections::BTreeMap::new();
        for p in &mut pending {
            heads.append(&mut p.event);
            if let (Some(c), Some(ch)) = (&p.event.city, p.event.city_hash) {
                changed_cities.insert(c.clone(), (p.event.position, ch));
            }
        }
        if let Some(last) = pending.last() {
            let next = Watermark {
                txid: last.txid.clone().unwrap_or_else(|| "0".into()),
                seq: last.seq,
            };
            chain::append(&txn, &pending, &next).await?;
            chain::set_city_heads(&txn, &changed_cities).await?;
        }
        // A checkpoint when enough positions or enough time went by.
        if let Some(head) = heads.head
            && heads.position > 0
        {
            let last = chain::checkpoint_at(&txn, None).await?;
            let due = match &last {
                None => true,
                Some(c) => {
                    heads.position > c.position
                        && (heads.position - c.position >= self.settings.checkpoint_every
                            || (now - c.signed_at).num_seconds()
                                >= self.settings.checkpoint_interval_seconds as i64)
                }
            };
            if due {
                let cp = Checkpoint::sign(
                    self.key.signing_key(),
                    self.key.kid(),
                    heads.position,
                    head,
                    now,
                );
                chain::insert_checkpoint(&txn, &cp).await?;
            }
        }
        if !pending.is_empty() && txn.get_database_backend() == DbBackend::Postgres {
            crate::status_cache::notify_in(&txn, &format!("seq:{}", heads.position)).await?;
        }
        txn.commit().await?;
        if !pending.is_empty() {
            self.cache.sequenced(heads.position);
            metrics::counter!("corridor_audit_events_sequenced_total")
                .increment(pending.len() as u64);
        }
        Ok(Round::Settled {
            count: pending.len(),
            head: heads.position,
        })
    }

    /// Runs rounds until the sequencer is dropped: at once while there is
    /// a backlog, else every `sequencer_poll_ms` (a poll, not a wake-up per
    /// commit: under load one round settles what many commits wrote).
    pub async fn run(this: Weak<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let Some(s) = this.upgrade() else { return };
            let poll = Duration::from_millis(s.settings.sequencer_poll_ms.max(1));
            match s.round(Utc::now()).await {
                Ok(Round::Settled { count, .. }) if count as u64 >= BATCH => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    drop(s);
                    tokio::time::sleep(poll).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit sequencer round failed; retrying");
                    drop(s);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Prunes events older than the retention period, hourly, until dropped.
    pub async fn prune_loop(this: Weak<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let Some(s) = this.upgrade() else { return };
            if s.settings.retention_days == 0 {
                continue;
            }
            let cutoff = Utc::now() - chrono::Duration::days(i64::from(s.settings.retention_days));
            if let Err(e) = s.prune(cutoff).await {
                tracing::warn!(error = %e, "audit pruning failed");
            }
        }
    }

    /// Deletes the events that occurred before `cutoff` (a prefix of the
    /// chain; their hashes stay). Returns the last position pruned.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<i64, DbErr> {
        let txn = self.db.begin().await?;
        let through = chain::prune(&txn, cutoff).await?;
        txn.commit().await?;
        Ok(through)
    }

    /// The database this sequencer works on.
    pub fn db(&self) -> &impl ConnectionTrait {
        &self.db
    }
}
