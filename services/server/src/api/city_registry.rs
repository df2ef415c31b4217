//! `CityRegistryService`: the corridor cities and their issuer keys.

use std::sync::Arc;

use chrono::Utc;
use corridor_domain::caller::Role;
use corridor_domain::city::CityCode;
use corridor_domain::keys::IssuerSigningKey;
use corridor_proto::v1;
use corridor_proto::v1::city_registry_service_server::CityRegistryService;
use sea_orm::TransactionTrait;
use tonic::{Request, Response, Status};

use super::convert::issuer_key_to_api;
use super::{Idempotency, authenticate};
use crate::error::{ApiError, ApiResult};
use crate::keyring::verifying_from_row;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::cities as city_store;
use crate::store::keys as key_store;

/// The handler.
#[derive(Debug, Clone)]
pub struct CityRegistry {
    state: AppState,
}

impl CityRegistry {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn known_city(&self, field: &str, raw: &str) -> ApiResult<CityCode> {
        let code = CityCode::parse(field, raw)?;
        city_store::get(&self.state.db, code.as_str())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no corridor city {code}")))?;
        Ok(code)
    }

    async fn list_cities(&self) -> ApiResult<v1::ListCitiesResponse> {
        let rows = city_store::all(&self.state.db).await?;
        Ok(v1::ListCitiesResponse {
            cities: rows
                .into_iter()
                .map(|c| v1::City {
                    code: c.code,
                    name_zh: c.name_zh,
                    name_en: c.name_en,
                    province: c.province,
                })
                .collect(),
        })
    }

    async fn get_issuer_keys(
        &self,
        req: v1::GetIssuerKeysRequest,
    ) -> ApiResult<v1::GetIssuerKeysResponse> {
        let code = self.known_city("city", &req.city).await?;
        let rows = key_store::for_city(&self.state.db, code.as_str()).await?;
        let keys = rows
            .iter()
            .map(verifying_from_row)
            .collect::<ApiResult<Vec<_>>>()?;
        let jwks =
            serde_json::json!({ "keys": keys.iter().map(|k| k.to_jwk()).collect::<Vec<_>>() });
        Ok(v1::GetIssuerKeysResponse {
            keys: keys.iter().map(issuer_key_to_api).collect(),
            jwks_json: jwks.to_string(),
        })
    }

    async fn rotate_issuer_key(
        &self,
        req: Request<v1::RotateIssuerKeyRequest>,
    ) -> ApiResult<v1::RotateIssuerKeyResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::CorridorAdmin])?;
        let req = req.into_inner();
        let idem = Idempotency::new(
            &caller,
            &req.request_id,
            "RotateIssuerKey",
            &v1::RotateIssuerKeyRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let code = self.known_city("city", &req.city).await?;
        let now = Utc::now();
        let txn = self.state.db.begin().await?;
        if let Some(replay) = idem.claim(&txn, now).await? {
            return Ok(replay);
        }
        let old = key_store::current(&txn, code.as_str(), key_store::Lock::Update)
            .await?
            .ok_or_else(|| ApiError::FailedPrecondition(format!("{code} has no current key")))?;
        let new_key = IssuerSigningKey::generate(&code, now).map_err(ApiError::internal)?;
        let sealed = new_key
            .seal(self.state.keyring.kek())
            .map_err(ApiError::internal)?;
        key_store::retire(&txn, &old.kid, now).await?;
        let inserted = key_store::insert_current_if_none(
            &txn,
            new_key.kid().to_owned(),
            code.to_string(),
            new_key.public_key().to_vec(),
            sealed,
            now,
        )
        .await?;
        if !inserted {
            return Err(ApiError::Aborted("a concurrent rotation won; retry".into()));
        }
        audit::append(
            &txn,
            NewEvent::by(
                &caller,
                "issuer_key.rotated",
                "city",
                code.to_string(),
                serde_json::json!({ "retired_kid": old.kid, "new_kid": new_key.kid() }),
                now,
            ),
        )
        .await?;
        let mut retired = verifying_from_row(&old)?;
        retired.not_after = Some(now);
        let current = new_key.verifying_key(now);
        let resp = v1::RotateIssuerKeyResponse {
            current_key: Some(issuer_key_to_api(&current)),
            retired_key: Some(issuer_key_to_api(&retired)),
        };
        idem.complete(&txn, &resp).await?;
        txn.commit().await?;
        self.state
            .keyring
            .rotated(&old, now, Arc::new(new_key), now)?;
        tracing::info!(city = %code, retired = %old.kid, "issuer key rotated");
        Ok(resp)
    }
}

#[tonic::async_trait]
impl CityRegistryService for CityRegistry {
    async fn list_cities(
        &self,
        _req: Request<v1::ListCitiesRequest>,
    ) -> Result<Response<v1::ListCitiesResponse>, Status> {
        Ok(Response::new(self.list_cities().await?))
    }

    async fn get_issuer_keys(
        &self,
        req: Request<v1::GetIssuerKeysRequest>,
    ) -> Result<Response<v1::GetIssuerKeysResponse>, Status> {
        Ok(Response::new(self.get_issuer_keys(req.into_inner()).await?))
    }

    async fn rotate_issuer_key(
        &self,
        req: Request<v1::RotateIssuerKeyRequest>,
    ) -> Result<Response<v1::RotateIssuerKeyResponse>, Status> {
        Ok(Response::new(self.rotate_issuer_key(req).await?))
    }
}
