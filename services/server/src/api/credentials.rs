//! `CredentialService`: issuing and managing a city's credentials.

use chrono::{DateTime, SubsecRound, Utc};
use corridor_domain::caller::{Caller, Role};
use corridor_domain::city::CityCode;
use corridor_domain::credential::{
    Status, Transition, ValidityWindow, parse_holder_name, parse_reason,
};
use corridor_domain::error::Collector;
use corridor_domain::holder::NationalId;
use corridor_domain::vc::{self, CredentialClaims};
use corridor_proto::v1;
use corridor_proto::v1::credential_service_server::CredentialService;
use sea_orm::TransactionTrait;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use super::convert::{
    category_from_api, credential_to_api, from_ts, parse_id, qualification_from_api, row_status,
    status_from_api,
};
use super::{Idempotency, authenticate, paging, parse_request_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::credentials::{self as cred_store, Cursor, Filter};
use crate::store::entities::credential;
use crate::store::keys as key_store;
use crate::store::recognitions as rec_store;

/// Default page size of ListCredentials.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page size of ListCredentials; larger requests are capped.
pub const MAX_PAGE_SIZE: u64 = 500;

/// The handler.
#[derive(Debug, Clone)]
pub struct Credentials {
    state: AppState,
}

/// May `caller` read credentials of `city`?
fn may_read(caller: &Caller, city: &str) -> ApiResult<()> {
    if caller.has(Role::Auditor) || caller.has(Role::CorridorAdmin) {
        return Ok(());
    }
    let code = CityCode::parse("issuer_city", city)?;
    caller.require_in_city(Role::Issuer, &code)?;
    Ok(())
}

impl Credentials {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn issue(
        &self,
        req: Request<v1::IssueCredentialRequest>,
    ) -> ApiResult<v1::IssueCredentialResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::Issuer])?;
        let req = req.into_inner();

        let mut errs = Collector::default();
        let city = errs.take(CityCode::parse("issuer_city", &req.issuer_city));
        let qualification = errs.take(qualification_from_api(
            "qualification",
            req.qualification.as_ref(),
        ));
        let holder_name = errs.take(parse_holder_name("holder_name", &req.holder_name));
        let national_id = errs.take(NationalId::parse(
            "holder_national_id",
            &req.holder_national_id,
        ));
        let valid_from = errs.take(from_ts("valid_from", req.valid_from.as_ref()));
        let valid_until = errs.take(from_ts("valid_until", req.valid_until.as_ref()));
        let now = Utc::now().trunc_subsecs(0);
        let window = match (valid_from, valid_until) {
            (Some(from), Some(until)) => errs.take(ValidityWindow::parse(
                from.unwrap_or(now),
                until,
                "valid_until",
            )),
            _ => None,
        };
        errs.take(parse_request_id(&req.request_id));
        errs.finish()?;
        let (Some(city), Some(qualification), Some(holder_name), Some(national_id), Some(window)) =
            (city, qualification, holder_name, national_id, window)
        else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        caller.require_in_city(Role::Issuer, &city)?;
        let holder_hash = self.state.hasher.hash(&national_id);

        // The fingerprint must not contain the national ID: hash it keyed.
        let fingerprint = v1::IssueCredentialRequest {
            request_id: String::new(),
            holder_national_id: holder_hash.as_str().to_owned(),
            ..req.clone()
        };
        let idem = Idempotency::new(&caller, &req.request_id, "IssueCredential", &fingerprint)?;

        let txn = self.state.db.begin().await?;
        if let Some(replay) = idem.claim(&txn, now).await? {
            return Ok(replay);
        }
        let key_row = key_store::current(&txn, city.as_str(), key_store::Lock::Share)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no corridor city {city}")))?;
        let key = self.state.keyring.signing_for(&key_row)?;
        let claims = CredentialClaims {
            id: Uuid::now_v7(),
            issuer_city: city.clone(),
            qualification,
            holder_name,
            window,
            issued_at: now,
        };
        let token = vc::sign(&key, &claims).map_err(ApiError::internal)?;
        let q = &claims.qualification;
        let row = credential::Model {
            id: claims.id,
            issuer_city: city.to_string(),
            category: q.category().as_str().to_owned(),
            series: q.series().to_owned(),
            level: i32::from(q.level()),
            title: q.title().to_owned(),
            holder_name: claims.holder_name.clone(),
            holder_hash: holder_hash.as_str().to_owned(),
            valid_from: window.from,
            valid_until: window.until,
            status: Status::Active.as_str().to_owned(),
            status_reason: None,
            kid: key.kid().to_owned(),
            token,
            issued_by: caller.subject.clone(),
            issued_at: now,
            updated_at: now,
        };
        cred_store::insert(&txn, row.clone()).await?;
        audit::append(
            &txn,
            NewEvent::by(
                &caller,
                "credential.issued",
                "credential",
                row.id,
                serde_json::json!({
                    "issuer_city": row.issuer_city,
                    "category": row.category,
                    "series": row.series,
                    "level": row.level,
                    "kid": row.kid,
                }),
                now,
            ),
        )
        .await?;
        let resp = v1::IssueCredentialResponse {
            credential: Some(credential_to_api(&row)?),
        };
        idem.complete(&txn, &resp).await?;
        txn.commit().await?;
        tracing::info!(credential = %row.id, city = %row.issuer_city, "credential issued");
        Ok(resp)
    }

    async fn get(
        &self,
        req: Request<v1::GetCredentialRequest>,
    ) -> ApiResult<v1::GetCredentialResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::Issuer, Role::Auditor, Role::CorridorAdmin])?;
        let id = parse_id("id", &req.get_ref().id)?;
        let row = cred_store::get(&self.state.db, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no credential {id}")))?;
        // Someone else's credential is answered like a missing one: the
        // answer must not tell a caller which ids exist in other cities.
        may_read(&caller, &row.issuer_city)
            .map_err(|_| ApiError::NotFound(format!("no credential {id}")))?;
        Ok(v1::GetCredentialResponse {
            credential: Some(credential_to_api(&row)?),
        })
    }

    async fn list(
        &self,
        req: Request<v1::ListCredentialsRequest>,
    ) -> ApiResult<v1::ListCredentialsResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::Issuer, Role::Auditor, Role::CorridorAdmin])?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let limit = paging::page_size(&mut errs, req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        let issuer_city = if req.issuer_city.is_empty() {
            if caller.has(Role::Auditor) || caller.has(Role::CorridorAdmin) {
                None
            } else {
                caller.city.as_ref().map(|c| c.to_string())
            }
        } else {
            errs.take(CityCode::parse("issuer_city", &req.issuer_city))
                .map(|c| c.to_string())
        };
        let status = errs.take(status_from_api("status", req.status)).flatten();
        let category = if req.category == 0 {
            None
        } else {
            match category_from_api(req.category) {
                Some(c) => Some(c),
                None => {
                    errs.push("category", "unknown category");
                    None
                }
            }
        };
        let holder_hash = if req.holder_national_id.is_empty() {
            None
        } else {
            errs.take(NationalId::parse(
                "holder_national_id",
                &req.holder_national_id,
            ))
            .map(|id| self.state.hasher.hash(&id).as_str().to_owned())
        };
        errs.finish()?;
        match &issuer_city {
            Some(c) => may_read(&caller, c)?,
            None if !(caller.has(Role::Auditor) || caller.has(Role::CorridorAdmin)) => {
                return Err(corridor_domain::caller::Denied(
                    "an issuer token without a city may not list credentials".into(),
                )
                .into());
            }
            None => {}
        }
        let filter = Filter {
            issuer_city,
            status: status.map(|s| s.as_str().to_owned()),
            category: category.map(|c| c.as_str().to_owned()),
            holder_hash,
        };
        let fingerprint = paging::fingerprint(&filter);
        let after = paging::decode::<(DateTime<Utc>, Uuid)>(&req.page_token, &fingerprint)?
            .map(|(issued_at, id)| Cursor { issued_at, id });
        // One extra row tells whether there is a next page.
        let rows = cred_store::list(&self.state.db, &filter, after, limit + 1).await?;
        let (rows, next_page_token) =
            paging::page(rows, limit, &fingerprint, |r| (r.issued_at, r.id))?;
        Ok(v1::ListCredentialsResponse {
            credentials: rows
                .iter()
                .map(credential_to_api)
                .collect::<ApiResult<_>>()?,
            next_page_token,
        })
    }

    /// Suspend, reinstate or revoke: one code path for every status change.
    async fn change_status<T: prost::Message>(
        &self,
        req: Request<T>,
        request_id: impl Fn(&T) -> (&str, &str, &str),
        transition: Transition,
        operation: &'static str,
    ) -> ApiResult<v1::Credential> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::Issuer])?;
        let msg = req.into_inner();
        let (request_id, raw_id, raw_reason) = request_id(&msg);
        let mut errs = Collector::default();
        let id = errs.take(parse_id("id", raw_id));
        let reason = errs.take(parse_reason("reason", raw_reason));
        errs.take(parse_request_id(request_id));
        errs.finish()?;
        let (Some(id), Some(reason)) = (id, reason) else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        let fingerprint = v1::RevokeCredentialRequest {
            request_id: String::new(),
            id: id.to_string(),
            reason: reason.clone(),
        };
        let idem = Idempotency::new(&caller, request_id, operation, &fingerprint)?;
        let now = Utc::now();
        let txn = self.state.db.begin().await?;
        // Authorization before any replay: a stored answer is only for a
        // caller who may change this credential now.
        let row = cred_store::get_for_update(&txn, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no credential {id}")))?;
        let city = CityCode::parse("issuer_city", &row.issuer_city)?;
        caller.require_in_city(Role::Issuer, &city)?;
        if let Some(replay) = idem.claim::<v1::Credential>(&txn, now).await? {
            return Ok(replay);
        }
        let from = row_status(&row)?;
        let to = transition.apply(from)?;
        cred_store::set_status(&txn, id, to.as_str(), &reason, now).await?;
        // Recognitions follow their source credential, in the same transaction.
        let (cascaded, rec_status) = match transition {
            Transition::Suspend => (
                rec_store::suspend_for_credential(&txn, id, now).await?,
                "suspended",
            ),
            Transition::Reinstate => (
                rec_store::restore_for_credential(&txn, id, now).await?,
                "restored",
            ),
            Transition::Revoke => (rec_store::void_for_credential(&txn, id, now).await?, "void"),
        };
        if cascaded > 0 {
            audit::append(
                &txn,
                NewEvent::by(
                    &caller,
                    "recognitions.cascaded",
 "credential",
                    id,
                    serde_json::json!({ "recognitions": cascaded, "now": rec_status, "cause": transition.audit_action() }),
                    now,
                ),
            )
            .await?;
        }
        audit::append(
            &txn,
            NewEvent::by(
                &caller,
                transition.audit_action(),
                "credential",
                id,
                serde_json::json!({ "from": from.as_str(), "to": to.as_str(), "reason": reason }),
                now,
            ),
        )
        .await?;
        let updated = credential::Model {
            status: to.as_str().to_owned(),
            status_reason: Some(reason),
            updated_at: now,
            ..row
        };
        let resp = credential_to_api(&updated)?;
        idem.complete(&txn, &resp).await?;
        txn.commit().await?;
        tracing::info!(credential = %id, from = %from, to = %to, "credential status changed");
        Ok(resp)
    }
}

#[tonic::async_trait]
impl CredentialService for Credentials {
    async fn issue_credential(
        &self,
        req: Request<v1::IssueCredentialRequest>,
    ) -> Result<Response<v1::IssueCredentialResponse>, GrpcStatus> {
        Ok(Response::new(self.issue(req).await?))
    }

    async fn get_credential(
        &self,
        req: Request<v1::GetCredentialRequest>,
    ) -> Result<Response<v1::GetCredentialResponse>, GrpcStatus> {
        Ok(Response::new(self.get(req).await?))
    }

    async fn list_credentials(
        &self,
        req: Request<v1::ListCredentialsRequest>,
    ) -> Result<Response<v1::ListCredentialsResponse>, GrpcStatus> {
        Ok(Response::new(self.list(req).await?))
    }

    async fn suspend_credential(
        &self,
        req: Request<v1::SuspendCredentialRequest>,
    ) -> Result<Response<v1::SuspendCredentialResponse>, GrpcStatus> {
        let c = self
            .change_status(
                req,
                |r| (r.request_id.as_str(), r.id.as_str(), r.reason.as_str()),
                Transition::Suspend,
                "SuspendCredential",
            )
            .await?;
        Ok(Response::new(v1::SuspendCredentialResponse {
            credential: Some(c),
        }))
    }

    async fn reinstate_credential(
        &self,
        req: Request<v1::ReinstateCredentialRequest>,
    ) -> Result<Response<v1::ReinstateCredentialResponse>, GrpcStatus> {
        let c = self
            .change_status(
                req,
                |r| (r.request_id.as_str(), r.id.as_str(), r.reason.as_str()),
                Transition::Reinstate,
                "ReinstateCredential",
            )
            .await?;
        Ok(Response::new(v1::ReinstateCredentialResponse {
            credential: Some(c),
        }))
    }

    async fn revoke_credential(
        &self,
        req: Request<v1::RevokeCredentialRequest>,
    ) -> Result<Response<v1::RevokeCredentialResponse>, GrpcStatus> {
        let c = self
            .change_status(
                req,
                |r| (r.request_id.as_str(), r.id.as_str(), r.reason.as_str()),
                Transition::Revoke,
                "RevokeCredential",
            )
            .await?;
        Ok(Response::new(v1::RevokeCredentialResponse {
            credential: Some(c),
        }))
    }
}
