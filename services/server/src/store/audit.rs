//! The audit trail: append-only events of who did what, when.
//!
//! Changes (issuance, status changes, key rotations) append their event with
//! [`append`] inside the transaction of the change, so an event exists if and
//! only if the change committed. Verifications change nothing, so they have
//! no transaction to join: they go through [`AuditWriter`], which batches
//! events off the request path (a verify makes no database round trip for
//! its event) and flushes what it holds on shutdown. On Postgres a batch is
//! one `COPY`, the cheapest way in for many rows, and up to [`WRITERS`]
//! batches are in flight at once (each on its own connection): one writer
//! waiting on its commit capped verifies at the rate one connection could
//! append, about half what the server answers. Batches may commit out of
//! queue order; the sequencer orders events by their transaction
//! (docs/DESIGN.md, Audit), so the trail stays gapless either way.
//!
//! Failures: while the database is unreachable the writer keeps its batch
//! and retries with backoff (the bounded queue then slows verifies down
//! rather than dropping events). When a batch is refused for its content,
//! each event is written on its own, so one bad event never costs the
//! others; only an event that is refused alone is dropped, and logged.
//!
//! Events never carry a national ID, in clear or hashed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use corridor_domain::caller::Caller;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::entities::audit_event;

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Caller subject.
    pub actor: String,
    /// Caller city.
    pub actor_city: Option<String>,
    /// What happened, e.g. `credential.issued`.
    pub action: &'static str,
    /// Kind of subject, e.g. `credential`.
    pub subject_type: &'static str,
    /// Subject id.
    pub subject_id: String,
    /// Details (no personal data).
    pub detail: serde_json::Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The city it belongs to (its per-city chain; who may watch it).
    pub city: Option<String>,
    /// Another city it concerns (a recognition's source city).
    pub other_city: Option<String>,
}

impl NewEvent {
    /// An event done by `caller`.
    pub fn by(
        caller: &Caller,
        action: &'static str,
        subject_type: &'static str,
        subject_id: impl ToString,
        detail: serde_json::Value,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            actor: caller.subject.clone(),
            actor_city: caller.city.as_ref().map(|c| c.to_string()),
            action,
            subject_type,
            subject_id: subject_id.to_string(),
            detail,
            occurred_at,
            city: caller.city.as_ref().map(|c| c.to_string()),
            other_city: None,
        }
    }

    /// The same event, belonging to `city` (and concerning `other`).
    pub fn concerning(mut self, city: impl ToString, other: Option<String>) -> Self {
        self.city = Some(city.to_string());
        self.other_city = other;
        self
    }
}

fn active(ev: NewEvent) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        occurred_at: Set(ev.occurred_at),
        actor: Set(ev.actor),
        actor_city: Set(ev.actor_city),
        action: Set(ev.action.to_owned()),
        subject_type: Set(ev.subject_type.to_owned()),
        subject_id: Set(ev.subject_id),
        detail: Set(ev.detail.to_string()),
        city: Set(ev.city),
        other_city: Set(ev.other_city),
        ..Default::default()
    }
}

/// Appends one event on `conn` (a transaction, normally).
#[tracing::instrument(skip_all, name = "db.audit.append")]
pub async fn append(conn: &impl ConnectionTrait, ev: NewEvent) -> Result<(), DbErr> {
    audit_event::Entity::insert(active(ev))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Appends several events in one statement.
#[tracing::instrument(skip_all, name = "db.audit.append_many")]
pub async fn append_many(conn: &impl ConnectionTrait, evs: Vec<NewEvent>) -> Result<(), DbErr> {
    if evs.is_empty() {
        return Ok(());
    }
    audit_event::Entity::insert_many(evs.into_iter().map(active))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Most events one batch insert carries.
const BATCH: usize = 256;

/// Most batches being written at once.
pub const WRITERS: usize = 4;

/// How long a batch that is not full waits for more events before it is
/// written. Each batch costs the server a few round trips and the
/// database a commit whatever its size; without the wait, once a `COPY`
/// took a millisecond instead of the 45 ms that sqlx's missing
/// `TCP_NODELAY` had cost (vendor/README.md), batches under load shrank to
/// a few events (1,317 commits/s under R1 against 202 with the wait) and
/// verifies got 1-15 % slower.
pub const LINGER: Duration = Duration::from_millis(10);

/// Sends events to the background batch writer.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<NewEvent>,
}

impl AuditWriter {
    /// Starts the writer task. It ends, after flushing, once every
    /// `AuditWriter` clone is dropped.
    pub fn spawn(db: DatabaseConnection) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(8192);
        let handle = tokio::spawn(run(db, rx));
        (Self { tx }, handle)
    }

    /// Queues an event. Waits when the queue is full (back-pressure rather
    /// than dropping audit events).
    #[tracing::instrument(skip_all, name = "db.audit.record")]
    pub async fn record(&self, ev: NewEvent) {
        if self.tx.send(ev).await.is_err() {
            tracing::error!("audit writer is gone; an event was not recorded");
        }
    }
}

/// Takes batches off the queue while fewer than [`WRITERS`] (one on
/// SQLite) are being written, each filled for at most [`LINGER`]; once the
/// queue is closed, writes what it holds and waits for every batch in flight.
async fn run(db: DatabaseConnection, mut rx: mpsc::Receiver<NewEvent>) {
    // SQLite (`--dev`) has one connection: a second writer would only queue.
    let writers = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => WRITERS,
        _ => 1,
    };
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while let Some(r) = in_flight.try_join_next() {
            joined(r);
        }
        while in_flight.len() >= writers
            && let Some(r) = in_flight.join_next().await
        {
            joined(r);
        }
        let mut batch = Vec::with_capacity(BATCH);
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            break;
        }
        // Fill the batch for at most LINGER; a closed queue ends the wait.
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(until, rx.recv_many(&mut batch, room)).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let db = db.clone();
        in_flight.spawn(async move { write_batch(&db, batch).await });
    }
    while let Some(r) = in_flight.join_next().await {
        joined(r);
    }
}

/// Logs a batch writer that panicked (`write_batch` itself never fails).
fn joined(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "an audit batch writer failed; its events were not recorded");
    }
}

/// Writes one batch, retrying while the database is unreachable and
/// isolating events when the batch is refused for its content.
async fn write_batch(db: &DatabaseConnection, batch: Vec<NewEvent>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match copy_many(db, &batch).await {
            Ok(()) => return,
            Err(e) if super::is_unavailable(&e) => {
                tracing::warn!(error = %e, events = batch.len(), "audit batch waits for the database");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::warn!(error = %e, events = batch.len(), "audit batch refused; writing its events one by one");
                for ev in batch {
                    let action = ev.action;
                    if let Err(e) = append(db, ev).await {
                        tracing::error!(error = %e, action, "audit event dropped: refused on its own");
                    }
                }
                return;
            }
        }
    }
}

/// Appends events with one `COPY` (Postgres), else one multi-row insert.
#[tracing::instrument(skip_all, name = "db.audit.copy_many")]
pub async fn copy_many(db: &DatabaseConnection, evs: &[NewEvent]) -> Result<(), DbErr> {
    if evs.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return append_many(db, evs.to_vec()).await;
    }
    use sea_orm::sqlx::postgres::PgPoolCopyExt;
    let mut data = String::with_capacity(evs.len() * 200);
    for ev in evs {
        copy_row(&mut data, ev);
    }
    let err = |e: sea_orm::sqlx::Error| DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into()));
    let pool = db.get_postgres_connection_pool();
    let mut copy = pool
        .copy_in_raw(
            "COPY audit_events (occurred_at, actor, actor_city, action, subject_type, subject_id, detail, city, other_city) FROM STDIN",
        )
        .await
        .map_err(err)?;
    copy.send(data.into_bytes()).await.map_err(err)?;
    copy.finish().await.map_err(err)?;
    Ok(())
}

/// One row of COPY's text format: tab-separated, `\N` for NULL, with
/// backslash, tab, newline and carriage return escaped. A NUL character
/// cannot be in a Postgres text value: it becomes U+FFFD.
fn copy_row(out: &mut String, ev: &NewEvent) {
    fn field(out: &mut String, v: &str) {
        for ch in v.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\0' => out.push('\u{FFFD}'),
                c => out.push(c),
            }
        }
    }
    out.push_str(&ev.occurred_at.to_rfc3339());
    out.push('\t');
    field(out, &ev.actor);
    out.push('\t');
    match &ev.actor_city {
        Some(c) => field(out, c),
        None => out.push_str("\\N"),
    }
    out.push('\t');
    field(out, ev.action);
    out.push('\t');
    field(out, ev.subject_type);
    out.push('\t');
    field(out, &ev.subject_id);
    out.push('\t');
    field(out, &ev.detail.to_string());
    for c in [&ev.city, &ev.other_city] {
        out.push('\t');
        match c {
            Some(c) => field(out, c),
            None => out.push_str("\\N"),
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_what_copy_reads_specially() {
        let ev = NewEvent {
            actor: "a\tb\\c\nd\0e".into(),
            actor_city: None,
            action: "credential.verified",
            subject_type: "credential",
            subject_id: "x".into(),
            detail: serde_json::json!({"k": "v"}),
            occurred_at: DateTime::<Utc>::UNIX_EPOCH,
            city: Some("hefei".into()),
            other_city: None,
        };
        let mut out = String::new();
        copy_row(&mut out, &ev);
        assert_eq!(
            out,
            "1970-01-01T00:00:00+00:00\ta\\tb\\\\c\\nd\u{FFFD}e\t\\N\tcredential.verified\tcredential\tx\t{\"k\":\"v\"}\thefei\t\\N\n"
        );
    }
}
