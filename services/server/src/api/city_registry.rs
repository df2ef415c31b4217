//! `CityRegistryService`: the corridor cities and their issuer keys.

use corridor_domain::RequestId;
use corridor_domain::authz::Rpc;
use corridor_domain::city::CityCode;
use corridor_domain::error::AllOk;
use corridor_domain::status_list::Purpose;
use corridor_proto::v1;
use corridor_proto::v1::city_registry_service_server::CityRegistryService;
use tonic::{Request, Response, Status};

use super::authenticate;
use super::convert::published_key_to_api;
use crate::app::registry::RotateIssuerKey;
use crate::error::AppError;
use crate::state::AppState;

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
}

#[tonic::async_trait]
impl CityRegistryService for CityRegistry {
    async fn list_cities(
        &self,
        _req: Request<v1::ListCitiesRequest>,
    ) -> Result<Response<v1::ListCitiesResponse>, Status> {
        let _slot = super::admit_anonymous(&self.state)?;
        let cities = self.state.list_cities().await?;
        Ok(Response::new(v1::ListCitiesResponse {
            cities: cities
                .into_iter()
                .map(|c| v1::City {
                    code: c.code.to_string(),
                    name_zh: c.name_zh,
                    name_en: c.name_en,
                    province: c.province,
                })
                .collect(),
        }))
    }

    async fn list_qualification_categories(
        &self,
        _req: Request<v1::ListQualificationCategoriesRequest>,
    ) -> Result<Response<v1::ListQualificationCategoriesResponse>, Status> {
        use corridor_domain::qualification::Category;
        let _slot = super::admit_anonymous(&self.state)?;
        let categories = Category::ALL
            .into_iter()
            .map(|c| {
                let (name_zh, name_en) = c.names();
                v1::QualificationCategoryInfo {
                    category: super::convert::category_to_api(c).into(),
                    name_zh: name_zh.into(),
                    name_en: name_en.into(),
                    levels: c
                        .level_names()
                        .iter()
                        .map(|(level, zh, en)| v1::LevelName {
                            level: i32::from(*level),
                            name_zh: (*zh).into(),
                            name_en: (*en).into(),
                        })
                        .collect(),
                    known_series: c.known_series().iter().map(|s| (*s).into()).collect(),
                }
            })
            .collect();
        Ok(Response::new(v1::ListQualificationCategoriesResponse {
            categories,
        }))
    }

    async fn get_issuer_keys(
        &self,
        req: Request<v1::GetIssuerKeysRequest>,
    ) -> Result<Response<v1::GetIssuerKeysResponse>, Status> {
        let _slot = super::admit_anonymous(&self.state)?;
        let city = CityCode::parse("city", &req.get_ref().city).map_err(AppError::from)?;
        let keys = self.state.issuer_keys(&city).await?;
        let jwks = crate::app::registry::jwks(&keys);
        Ok(Response::new(v1::GetIssuerKeysResponse {
            keys: keys.iter().map(published_key_to_api).collect(),
            jwks_json: jwks.to_string(),
        }))
    }

    async fn get_status_list(
        &self,
        req: Request<v1::GetStatusListRequest>,
    ) -> Result<Response<v1::GetStatusListResponse>, Status> {
        let _slot = super::admit_anonymous(&self.state)?;
        let r = req.get_ref();
        let purpose = match v1::StatusPurpose::try_from(r.purpose) {
            Ok(v1::StatusPurpose::Revocation) => Ok(Purpose::Revocation),
            Ok(v1::StatusPurpose::Suspension) => Ok(Purpose::Suspension),
            _ => Err(corridor_domain::Violations::one(
                "purpose",
                "must be STATUS_PURPOSE_REVOCATION or STATUS_PURPOSE_SUSPENSION",
            )),
        };
        let (city, purpose) = (CityCode::parse("city", &r.city), purpose)
            .all_ok()
            .map_err(AppError::from)?;
        let built = self.state.status_list(&city, r.list, purpose).await?;
        Ok(Response::new(v1::GetStatusListResponse {
            status_list_credential: built.jwt,
            max_age_seconds: u32::try_from(self.state.status_lists.max_age().as_secs())
                .unwrap_or(u32::MAX),
        }))
    }

    async fn rotate_issuer_key(
        &self,
        req: Request<v1::RotateIssuerKeyRequest>,
    ) -> Result<Response<v1::RotateIssuerKeyResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::RotateIssuerKey)?;
        let r = req.get_ref();
        let (request_id, city) = (
            RequestId::parse(&r.request_id),
            CityCode::parse("city", &r.city),
        )
            .all_ok()
            .map_err(AppError::from)?;
        let rotation = self
            .state
            .rotate_issuer_key(&caller, RotateIssuerKey { request_id, city })
            .await?;
        Ok(Response::new(v1::RotateIssuerKeyResponse {
            current_key: Some(published_key_to_api(&rotation.current)),
            retired_key: Some(published_key_to_api(&rotation.retired)),
        }))
    }
}
