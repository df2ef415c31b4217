//! The audit trail: append-only events of who did what, when.
//!
//! Changes (issuance, status changes, key rotations) append their event with
//! [`append`] inside the transaction of the change, so an event exists if and
//! only if the change committed. Verifications change nothing, so they have
//! no transaction to join: they go through [`AuditWriter`], which batches
//! events into multi-row inserts off the request path (a verify stays at one
//! database round trip) and flushes what it holds on shutdown.
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
        }
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
        ..Default::default()
    }
}

/// Appends one event on `conn` (a transaction, normally).
pub async fn append(conn: &impl ConnectionTrait, ev: NewEvent) -> Result<(), DbErr> {
    audit_event::Entity::insert(active(ev))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Appends several events in one statement.
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
    pub async fn record(&self, ev: NewEvent) {
        if self.tx.send(ev).await.is_err() {
            tracing::error!("audit writer is gone; an event was not recorded");
        }
    }
}

async fn run(db: DatabaseConnection, mut rx: mpsc::Receiver<NewEvent>) {
    let mut buf = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut buf, BATCH).await > 0 {
        let batch = std::mem::take(&mut buf);
        let mut attempt = 0u32;
        loop {
            match append_many(&db, batch.clone()).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "audit batch insert failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, events = batch.len(), "audit batch lost");
                    break;
                }
            }
        }
    }
}
