//! The trusted issuer registry: the corridor's cities and their keys.

use chrono::{DateTime, Utc};
use corridor_domain::RequestId;
use corridor_domain::authz;
use corridor_domain::caller::Caller;
use corridor_domain::city::CityCode;
use corridor_domain::keys::IssuerVerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Done, Idempotent};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::audit::NewEvent;
use crate::store::cities::{self as city_store, City};
use crate::store::keys::{self as key_store, Lock};

/// A public issuer key and its signing window, as the registry publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// Key id.
    pub kid: String,
    /// Owning city.
    pub city: CityCode,
    /// JWK `x`: base64url of the raw Ed25519 public key.
    pub x: String,
    /// Start of the signing window.
    pub not_before: DateTime<Utc>,
    /// End of the signing window (retired keys).
    pub not_after: Option<DateTime<Utc>>,
    /// The key as a JWK (RFC 8037), `nbf`/`exp` for its window.
    pub jwk: serde_json::Value,
}

impl From<&IssuerVerifyingKey> for PublishedKey {
    fn from(k: &IssuerVerifyingKey) -> Self {
        Self {
            kid: k.kid.clone(),
            city: k.city.clone(),
            x: k.x(),
            not_before: k.not_before,
            not_after: k.not_after,
            jwk: k.to_jwk(),
        }
    }
}

/// `keys` as a JSON Web Key Set (RFC 7517): what GetIssuerKeys and the
/// HTTP port publish.
pub fn jwks(keys: &[PublishedKey]) -> serde_json::Value {
    json!({ "keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() })
}

/// The answer to a rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rotation {
    /// The new current key.
    pub current: PublishedKey,
    /// The key it replaced, now retired.
    pub retired: PublishedKey,
}

/// RotateIssuerKey.
#[derive(Debug)]
pub struct RotateIssuerKey {
    /// For idempotent retries.
    pub request_id: RequestId,
    /// The city.
    pub city: CityCode,
}

impl AppState {
    /// Every corridor city.
    pub async fn list_cities(&self) -> AppResult<Vec<City>> {
        Ok(city_store::all(&self.db).await?)
    }

    /// A city's keys, current first, with retired keys and their windows.
    pub async fn issuer_keys(&self, city: &CityCode) -> AppResult<Vec<PublishedKey>> {
        self.known_city(city, "city").await?;
        let rows = key_store::for_city(&self.db, city).await?;
        Ok(rows
            .iter()
            .map(|r| PublishedKey::from(&r.verifying()))
            .collect())
    }

    /// Retires a city's current key and makes a new one current.
    pub async fn rotate_issuer_key(
        &self,
        caller: &Caller,
        cmd: RotateIssuerKey,
    ) -> AppResult<Rotation> {
        authz::rotate_issuer_key(caller)?;
        let city = &cmd.city;
        self.known_city(city, "city").await?;
        let key = Idempotent {
            operation: "RotateIssuerKey",
            request_id: &cmd.request_id,
            fingerprint: json!({ "city": city }),
        };
        let mut rotated = None;
        let rotation = self
            .mutate(caller, key, async |_| Ok(()), async |txn, (), now| {
                // Locked FOR UPDATE: signers hold it FOR SHARE, so the
                // retirement waits for credentials being signed with it.
                let old = key_store::current(txn, city, Lock::Update)
                    .await?
                    .ok_or_else(|| {
                        AppError::FailedPrecondition(
                            "NO_CURRENT_KEY",
                            format!("{city} has no current key"),
                        )
                    })?;
                // Never seal a new key under a KEK that cannot open the ones
                // already there (a misconfigured replica would lock every
                // other replica out of the city's signing key).
                self.keyring.signing_for(&old).map_err(|_| {
                    AppError::FailedPrecondition(
                        "KEY_ENCRYPTION_KEY_MISMATCH",
                        format!(
                        "this replica's key-encryption key does not open {city}'s current key; not rotating"
                    ),
                    )
                })?;
                let (new_key, record) = self.keyring.generate(city, now)?;
                key_store::retire(txn, &old.kid, now).await?;
                if !key_store::insert_current_if_none(txn, &record).await? {
                    return Err(AppError::Aborted(
                        "a concurrent rotation won; retry".into(),
                    ));
                }
                let retired = corridor_domain::keys::IssuerKeyRecord {
                    current: false,
                    not_after: Some(now),
                    ..old
                };
                let event = NewEvent::by(
                    caller,
                    "issuer_key.rotated",
                    "city",
                    city,
                    json!({ "retired_kid": retired.kid, "new_kid": record.kid }),
                    now,
                )
                .concerning(city, None);
                let result = Rotation {
                    current: PublishedKey::from(&record.verifying()),
                    retired: PublishedKey::from(&retired.verifying()),
                };
                rotated = Some((retired, new_key, record));
                Ok(Done {
                    result,
                    events: vec![event],
                })
            })
            .await?;
        // Committed: this replica signs with the new key from now on.
        if let Some((retired, new_key, record)) = rotated {
            self.keyring.rotated(&retired, new_key, &record);
            tracing::info!(city = %city, retired = %retired.kid, "issuer key rotated");
        }
        Ok(rotation)
    }
}
