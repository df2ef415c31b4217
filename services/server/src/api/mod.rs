//! The gRPC handlers, one module per service. Handlers are thin: they
//! authenticate the caller, parse the request into domain types, check the
//! caller's role and city, call the store inside a transaction, and map the
//! result. Shared plumbing (authentication, idempotency, conversions) is here.

pub mod city_registry;
pub mod convert;
pub mod credentials;
pub mod paging;
pub mod policy;
pub mod recognition;
pub mod verification;

use chrono::{DateTime, Utc};
use corridor_domain::Violations;
use corridor_domain::caller::Caller;
use prost::Message;
use sea_orm::DatabaseTransaction;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::request_log::{self, Claim};

/// Authenticates the caller from `authorization: Bearer <JWT>`.
pub fn authenticate<T>(state: &AppState, req: &tonic::Request<T>) -> ApiResult<Caller> {
    let header = req
        .metadata()
        .get("authorization")
        .ok_or(ApiError::Unauthenticated)?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthenticated)?
        .trim();
    if let Some(caller) = state.callers.get(token) {
        return Ok(caller);
    }
    let (caller, exp) = state.identity.verify_until(token).map_err(|e| {
        // The reason is for operators; the client learns only that it failed.
        tracing::info!(reason = %e, "identity token refused");
        ApiError::Unauthenticated
    })?;
    state.callers.put(token, caller.clone(), exp);
    Ok(caller)
}

/// Checks a client request id: 1 to 128 printable ASCII characters.
pub fn parse_request_id(raw: &str) -> Result<(), Violations> {
    if (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Violations::one(
            "request_id",
            "a request id of 1 to 128 printable ASCII characters is required",
        ))
    }
}

/// The idempotency key of a mutating request.
#[derive(Debug)]
pub struct Idempotency {
    caller: String,
    request_id: String,
    operation: &'static str,
    payload_hash: String,
}

impl Idempotency {
    /// Validates `request_id` and fingerprints `payload` (the request with its
    /// request id cleared) for `operation`.
    pub fn new(
        caller: &Caller,
        request_id: &str,
        operation: &'static str,
        payload: &impl Message,
    ) -> ApiResult<Self> {
        parse_request_id(request_id)?;
        let mut h = Sha256::new();
        h.update(operation.as_bytes());
        h.update([0]);
        h.update(payload.encode_to_vec());
        Ok(Self {
            caller: caller.subject.clone(),
            request_id: request_id.to_owned(),
            operation,
            payload_hash: hex::encode(h.finalize()),
        })
    }

    /// Claims the request id in `txn`. `Some(response)` means this is a
    /// retry of a completed request: answer with that response and roll back.
    pub async fn claim<R: Message + Default>(
        &self,
        txn: &DatabaseTransaction,
        now: DateTime<Utc>,
    ) -> ApiResult<Option<R>> {
        let claim = request_log::claim(
            txn,
            &self.caller,
            &self.request_id,
            self.operation,
            &self.payload_hash,
            now,
        )
        .await?;
        match claim {
            Claim::Claimed => Ok(None),
            Claim::Existing(row)
                if row.operation == self.operation && row.payload_hash == self.payload_hash =>
            {
                let resp = R::decode(row.response.as_slice()).map_err(ApiError::internal)?;
                Ok(Some(resp))
            }
            Claim::Existing(_) => Err(ApiError::AlreadyExists(format!(
                "request_id {} was already used for a different request",
                self.request_id
            ))),
        }
    }

    /// Stores the response of the claimed request, in the same transaction.
    pub async fn complete(&self, txn: &DatabaseTransaction, resp: &impl Message) -> ApiResult<()> {
        request_log::complete(txn, &self.caller, &self.request_id, resp.encode_to_vec()).await?;
        Ok(())
    }
}
