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

pub mod audit;
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
use crate::store::audit::NewEvent;
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
    pub(crate) fn payload_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.operation.as_bytes());
        h.update([0]);
        h.update(canonical(&self.fingerprint).as_bytes());
        hex::encode(h.finalize())
    }
}

/// JSON with every object's keys sorted: the same request gives the same
/// bytes whatever order its fields were written in (serde_json keeps
/// insertion order here, as a dependency enables `preserve_order`).
fn canonical(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn fingerprints_do_not_depend_on_field_order() {
        let a = serde_json::json!({"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": null}});
        let b = serde_json::json!({"a": {"x": null, "y": [1, {"p": 3, "q": 2}]}, "b": 1});
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&serde_json::json!({"b": 2})));
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
            // Answers stored before this format (protobuf bytes) cannot be
            // compared or replayed; say so rather than "a different request".
            Claim::Existing(row) if !row.response.starts_with(b"{") => {
                return Err(AppError::FailedPrecondition(
                    "ANSWER_NOT_REPLAYABLE",
                    format!(
                        "request_id {} was answered by an earlier version of the service, whose answer cannot be replayed; look the result up (Get/List) before retrying with a new request id",
                        key.request_id.as_str()
                    ),
                ));
            }
            Claim::Existing(row) if row.operation == key.operation && row.payload_hash == hash => {
                // A retry of a completed request: its answer, and nothing else.
                return serde_json::from_slice(&row.response).map_err(|e| {
                    AppError::internal(format!(
                        "the stored answer of request_id {} no longer reads: {e}",
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
            crate::store::audit::append(&txn, ev).await?;
        }
        let stored = serde_json::to_vec(&result).map_err(AppError::internal)?;
        request_log::complete(&txn, &caller.subject, key.request_id.as_str(), stored).await?;
        txn.commit().await?;
        Ok(result)
    }
}
