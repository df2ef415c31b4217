//! The audit trail read back: listing it, its checkpoints, checking the
//! chain (the same `corridor_domain::audit::verify` as the offline
//! `corridor audit verify`), and the change stream (WatchEvents).
//!
//! The stream reads the chain, not a queue: a watcher keeps its own cursor
//! (the last position it was sent), reads forward from it in pages, and
//! waits for the sequencer's announcement (`seq:<position>` through the
//! change channel, `crate::status_cache`) or one second, whichever comes
//! first, so a lost notification connection only slows it down. Events go
//! through a small bounded channel: a slow reader stops the reading, it
//! never piles events up in memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use corridor_domain::Violations;
use corridor_domain::audit::{self as chain_rules, Break, ChainedEvent, Checkpoint, Hash};
use corridor_domain::authz;
use corridor_domain::caller::Caller;
use corridor_domain::city::CityCode;
use tokio::sync::mpsc;

use crate::error::{AppError, AppResult};
use crate::paging::Page;
use crate::state::AppState;
use crate::store::audit_chain::{self as chain, Filter};

/// The actions of changes (what WatchEvents streams).
pub const CHANGE_ACTIONS: [&str; 11] = [
    "credential.issued",
    "credential.suspended",
    "credential.reinstated",
    "credential.revoked",
    "recognition.decided",
    "recognition.redecided",
    "recognition.suspended",
    "recognition.restored",
    "recognition.voided",
    "policy.published",
    "issuer_key.rotated",
];

/// The action of a verification: audited and chained, not a change.
pub const VERIFIED: &str = "credential.verified";

/// Positions checked per VerifyAuditChain call at most.
pub const MAX_VERIFY_SPAN: i64 = 1_000_000;

/// Events read per page while verifying or streaming.
const CHUNK: u64 = 2_000;

/// Events in flight to one watcher at most (its back-pressure).
const WATCH_BUFFER: usize = 64;

/// ListAuditEvents.
#[derive(Debug)]
pub struct ListAudit {
    /// Events that concern this city.
    pub city: Option<CityCode>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this subject.
    pub subject_id: Option<String>,
    /// Events after this position.
    pub after: i64,
    /// Page size.
    pub page_size: u64,
    /// A previous page's token.
    pub page_token: String,
}

/// GetCheckpoint's answer.
#[derive(Debug)]
pub struct CheckpointView {
    /// The checkpoint, once one was signed.
    pub checkpoint: Option<Checkpoint>,
    /// The corridor key's id.
    pub kid: String,
    /// The corridor key.
    pub public_key: [u8; 32],
    /// The chain's last position now.
    pub head_position: i64,
}

/// VerifyAuditChain's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The last position checked.
    pub verified_through: i64,
    /// The first break, if any.
    pub broken: Option<Break>,
    /// Checkpoints checked.
    pub checkpoints_checked: i64,
}

/// WatchEvents.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Start after this position (0: from the oldest kept).
    pub after: i64,
    /// Only events that concern this city.
    pub city: Option<CityCode>,
    /// Only these actions (empty: every change).
    pub actions: Vec<String>,
    /// Only this subject.
    pub subject_id: Option<String>,
}

/// One message of the change stream.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// The next event.
    Event(Box<ChainedEvent>),
    /// Nothing new lately; the stream has looked up to `head`.
    KeepAlive {
        /// The newest position looked at.
        head: i64,
        /// When it was sent.
        at: DateTime<Utc>,
    },
}

impl AppState {
    /// Lists audit events in position order.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        cmd: ListAudit,
    ) -> AppResult<Page<ChainedEvent>> {
        authz::read_audit(caller)?;
        let filters = (
            "audit",
            cmd.city.as_ref().map(|c| c.to_string()),
            &cmd.action,
            &cmd.subject_id,
            cmd.after,
        );
        let cursor: Option<i64> = self.page_tokens.decode(&cmd.page_token, &filters)?;
        let after = cursor.unwrap_or(cmd.after).max(cmd.after);
        let filter = Filter {
            city: cmd.city.as_ref().map(|c| c.to_string()),
            actions: cmd.action.iter().cloned().collect(),
            except_actions: Vec::new(),
            subject_id: cmd.subject_id.clone(),
        };
        let rows = chain::read(&self.db, after, i64::MAX, &filter, cmd.page_size + 1).await?;
        self.page_tokens
            .page(rows, cmd.page_size, &filters, |e| e.position)
    }

    /// The latest checkpoint, or the first at or after `position` (> 0).
    pub async fn get_checkpoint(
        &self,
        caller: &Caller,
        position: i64,
    ) -> AppResult<CheckpointView> {
        authz::read_audit(caller)?;
        if position < 0 {
            return Err(Violations::one("position", "must not be negative").into());
        }
        let checkpoint = chain::checkpoint_at(&self.db, (position > 0).then_some(position)).await?;
        let (kid, public_key) = self.sequencer.public_key();
        Ok(CheckpointView {
            checkpoint,
            kid: kid.to_owned(),
            public_key,
            head_position: chain::head_position(&self.db).await?,
        })
    }

    /// Recomputes the chain over `[from, to]` (0: the start, the head) from
    /// the stored events, and checks the checkpoints in it.
    pub async fn verify_audit_chain(
        &self,
        caller: &Caller,
        from: i64,
        to: i64,
    ) -> AppResult<ChainReport> {
        authz::read_audit(caller)?;
        let mut v = corridor_domain::error::Collector::default();
        if from < 0 {
            v.push("from_position", "must not be negative");
        }
        if to < 0 {
            v.push("to_position", "must not be negative");
        }
        if to > 0 && from > to {
            v.push("to_position", "must not be before from_position");
        }
        v.finish()?;
        let head = chain::head_position(&self.db).await?;
        let pruned = chain::pruned_through(&self.db).await?;
        let from = from.max(1);
        if from <= pruned {
            return Err(AppError::FailedPrecondition(
                "EVENTS_PRUNED",
                format!(
                    "events through position {pruned} were pruned (retention); verify from {} (their chain hashes are kept, so the rest verifies from there)",
                    pruned + 1
                ),
            ));
        }
        let to = if to == 0 { head } else { to.min(head) };
        if to - from + 1 > MAX_VERIFY_SPAN {
            return Err(Violations::one(
                "to_position",
                format!("at most {MAX_VERIFY_SPAN} positions per call"),
            )
            .into());
        }
        let keys = chain::corridor_public_keys(&self.db).await?;
        let report = verify_range(&self.db, from, to, &keys).await?;
        // A checkpoint beyond the head: the newest events were removed.
        if report.broken.is_none()
            && to == head
            && let Some(c) = chain::checkpoint_at(&self.db, None).await?
            && c.position > head
        {
            return Ok(ChainReport {
                verified_through: head,
                broken: Some(Break {
                    position: head + 1,
                    reason: format!(
                        "sequence {} is missing: a signed checkpoint covers up to {}",
                        head + 1,
                        c.position
                    ),
                }),
                checkpoints_checked: report.checkpoints_checked,
            });
        }
        Ok(report)
    }

    /// Starts a change stream. Authorization, the filters and the resume
    /// point are checked before it starts; then events (and keep-alives)
    /// arrive on the returned channel until the receiver is dropped or the
    /// caller's token expires (`valid_until`, Unix seconds). The ticket is
    /// the stream's watcher slot: hold it as long as the stream.
    pub async fn watch_events(
        &self,
        caller: &Caller,
        cmd: Watch,
        valid_until: i64,
    ) -> AppResult<(
        mpsc::Receiver<AppResult<WatchItem>>,
        crate::admission::Ticket,
    )> {
        let scope = authz::watch_events(caller, cmd.city.as_ref())?;
        let mut v = corridor_domain::error::Collector::default();
        if cmd.after < 0 {
            v.push("after_sequence", "must not be negative");
        }
        for (i, a) in cmd.actions.iter().enumerate() {
            if !CHANGE_ACTIONS.contains(&a.as_str()) {
                v.push(
                    format!("actions[{i}]"),
                    format!("not a change: one of {}", CHANGE_ACTIONS.join(", ")),
                );
            }
        }
        v.finish()?;
        let pruned = chain::pruned_through(&self.db).await?;
        if cmd.after > 0 && cmd.after < pruned {
            return Err(AppError::FailedPrecondition(
                "EVENTS_PRUNED",
                format!(
                    "events through sequence {pruned} were pruned (retention); the oldest kept is {}: resume from there or re-read the current state",
                    pruned + 1
                ),
            ));
        }
        let filter = Filter {
            city: scope.map(|c| c.to_string()),
            actions: cmd.actions.clone(),
            except_actions: vec![VERIFIED.to_owned()],
            subject_id: cmd.subject_id.clone(),
        };
        let ticket = self.watchers.admit(caller)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let state = self.inner();
        let start = cmd.after.max(pruned);
        let keepalive = Duration::from_secs(self.audit_settings.keepalive_seconds.max(1));
        tokio::spawn(async move {
            stream(state, filter, start, keepalive, valid_until, tx).await;
        });
        Ok((rx, ticket))
    }
}

/// Feeds one watcher until it goes away.
async fn stream(
    state: std::sync::Arc<crate::state::Inner>,
    filter: Filter,
    mut cursor: i64,
    keepalive: Duration,
    valid_until: i64,
    tx: mpsc::Sender<AppResult<WatchItem>>,
) {
    let mut announced = state.status_cache.watch_sequence();
    let mut last_sent = Instant::now();
    metrics::gauge!("corridor_watchers").increment(1.0);
    loop {
        if Utc::now().timestamp() >= valid_until {
            let _ = tx.send(Err(AppError::Unauthenticated)).await;
            break;
        }
        let read = async {
            let head = chain::head_position(&state.db).await?;
            let rows = if head > cursor {
                chain::read(&state.db, cursor, head, &filter, CHUNK).await?
            } else {
                Vec::new()
            };
            Ok::<_, sea_orm::DbErr>((head, rows))
        };
        match read.await {
            Ok((head, rows)) => {
                let full = rows.len() as u64 >= CHUNK;
                for e in rows {
                    let position = e.position;
                    if tx.send(Ok(WatchItem::Event(Box::new(e)))).await.is_err() {
                        metrics::gauge!("corridor_watchers").decrement(1.0);
                        return;
                    }
                    cursor = position;
                    last_sent = Instant::now();
                }
                if full {
                    continue;
                }
                // Everything up to the head that matches was sent.
                cursor = cursor.max(head);
            }
            Err(e) => {
                tracing::warn!(error = %e, "change stream read failed; retrying");
            }
        }
        // Wait for the sequencer's announcement, or re-read anyway.
        tokio::select! {
            _ = announced.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tx.closed() => break,
        }
        if last_sent.elapsed() >= keepalive {
            let ka = WatchItem::KeepAlive {
                head: cursor,
                at: Utc::now(),
            };
            if tx.send(Ok(ka)).await.is_err() {
                break;
            }
            last_sent = Instant::now();
        }
    }
    metrics::gauge!("corridor_watchers").decrement(1.0);
}

/// Checks positions `[from, to]` of the stored chain: every event against
/// its hashes (from the heads before `from`), and every checkpoint in the
/// range against the corridor keys `keys` and the stored hash it names.
pub async fn verify_range(
    db: &impl sea_orm::ConnectionTrait,
    from: i64,
    to: i64,
    keys: &BTreeMap<String, [u8; 32]>,
) -> AppResult<ChainReport> {
    let mut heads = chain::heads(db, Some(from)).await?;
    if heads.position != from - 1 {
        return Ok(ChainReport {
            verified_through: from - 1,
            broken: Some(Break {
                position: from - 1,
                reason: format!("position {} is missing from the chain", from - 1),
            }),
            checkpoints_checked: 0,
        });
    }
    let checkpoints = chain::checkpoints(db, from, to).await?;
    let wanted: std::collections::BTreeSet<i64> = checkpoints.iter().map(|c| c.position).collect();
    let mut at: BTreeMap<i64, Hash> = BTreeMap::new();
    let mut after = from - 1;
    while after < to {
        let through = (after + CHUNK as i64).min(to);
        let events = chain::read(db, after, through, &Filter::default(), CHUNK).await?;
        let complete = events.last().map(|e| e.position) == Some(through);
        if let Err(b) = chain_rules::verify(&mut heads, &events) {
            return Ok(report(b));
        }
        for e in &events {
            if wanted.contains(&e.position) {
                at.insert(e.position, e.hash);
            }
        }
        if !complete {
            // The next position is missing (its event or its chain row).
            let missing = heads.position + 1;
            return Ok(report(Break {
                position: missing,
                reason: format!(
                    "position {missing} is missing: its event was deleted or its chain row removed"
                ),
            }));
        }
        after = through;
    }
    for c in &checkpoints {
        let Some(public) = keys.get(&c.kid) else {
            return Ok(report(Break {
                position: c.position,
                reason: format!(
                    "the checkpoint at {} names an unknown key {}",
                    c.position, c.kid
                ),
            }));
        };
        if let Err(b) = chain_rules::verify_checkpoints(std::slice::from_ref(c), public, |p| {
            at.get(&p).copied()
        }) {
            return Ok(report(b));
        }
    }
    Ok(ChainReport {
        verified_through: to.max(from - 1),
        broken: None,
        checkpoints_checked: checkpoints.len() as i64,
    })
}

fn report(b: Break) -> ChainReport {
    ChainReport {
        verified_through: b.position - 1,
        broken: Some(b),
        checkpoints_checked: 0,
    }
}
