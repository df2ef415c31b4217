//! The use cases: what the service does, whoever asks (gRPC, the sample
//! data of `--dev`, a future CLI or bulk import). One module per capability;
//! each use case is a method of [`AppState`] that takes the [`Caller`] and a
//! parsed command, checks authorization first (`corridor_domain::authz`),
//! and returns domain results. Nothing here knows tonic or protobuf.
//!
//! Every change goes through [`AppState::mutate`], the one mutating
//! sequence: authorize (locking the subject row where the check needs it),
//! claim the request id, replay a completed request's stored answer, do the
//! work, append its audit events, store the answer, commit. Authorization
//! comes before the replay, so a stored answer only ever goes to a caller
//! who may act now.

pub mod credentials;
pub mod policy;
pub mod recognition;
pub mod registry;
pub mod verification;

use chrono::DateTime;
use corridor_domain::RequestId;
use corridor_domain::caller::Caller;
use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::request_log::{self, Claim};

/// The idempotency key of a mutating request: the operation, the client's
/// request id, and a fingerprint of what was asked.
#[derive(Debug)]
pub struct Idempotent<'a> {
    /// The operation (RPC) name.
    pub operation: &'static str,
    /// The client's request id.
    pub request_id: &'a RequestId,
    /// What the request asks, without its request id, personal data only
    /// as keyed hashes. A retry must ask the same to get the stored answer.
    pub fingerprint: serde_json::Value,
}

impl Idempotent<'_> {
    fn payload_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.operation.as_bytes());
        h.update([0]);
        // serde_json maps are ordered by key: the same request, the same bytes.
        h.update(self.fingerprint.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

/// What the work of a mutation produced: its answer and the audit events to
/// append in the same transaction.
#[derive(Debug)]
pub struct Done<R> {
    /// The answer, stored for replays.
    pub result: R,
    /// Audit events, appended in order.
    pub events: Vec<NewEvent>,
}

impl AppState {
    /// The one mutating sequence (see the module docs). `authorize` runs
    /// first in the transaction and hands what it read (a locked row) to
    /// `work`; `now` is the time of the request.
    pub(crate) async fn mutate<T, R>(
        &self,
        caller: &Caller,
        key: Idempotent<'_>,
        authorize: impl AsyncFnOnce(&DatabaseTransaction) -> AppResult<T>,
        work: impl AsyncFnOnce(&DatabaseTransaction, T, DateTime<chrono::Utc>) -> AppResult<Done<R>>,
    ) -> AppResult<R>
    where
        R: Serialize + DeserializeOwned,
    {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        let ctx = authorize(&txn).await?;
        let hash = key.payload_hash();
        let claim = request_log::claim(
            &txn,
            &caller.subject,
            key.request_id.as_str(),
            key.operation,
            &hash,
            now,
        )
        .await?;
        match claim {
            Claim::Claimed => {}
            Claim::Existing(row) if row.operation == key.operation && row.payload_hash == hash => {
                // A retry of a completed request: its answer, and nothing else.
                return serde_json::from_slice(&row.response).map_err(|_| {
                    AppError::FailedPrecondition(format!(
                        "request_id {} was answered by an earlier version of the service; use a new request id",
                        key.request_id.as_str()
                    ))
                });
            }
            Claim::Existing(_) => {
                return Err(AppError::AlreadyExists(format!(
                    "request_id {} was already used for a different request",
                    key.request_id.as_str()
                )));
            }
        }
        let Done { result, events } = work(&txn, ctx, now).await?;
        for ev in events {
            audit::append(&txn, ev).await?;
        }
        let stored = serde_json::to_vec(&result).map_err(AppError::internal)?;
        request_log::complete(&txn, &caller.subject, key.request_id.as_str(), stored).await?;
        txn.commit().await?;
        Ok(result)
    }
}
