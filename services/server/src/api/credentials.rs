//! `CredentialService`: issuing and managing a city's credentials.

use chrono::Utc;
use corridor_domain::RequestId;
use corridor_domain::authz::Rpc;
use corridor_domain::city::CityCode;
use corridor_domain::credential::{Transition, ValidityWindow, parse_holder_name, parse_reason};
use corridor_domain::error::AllOk;
use corridor_domain::holder::NationalId;
use corridor_proto::v1;
use corridor_proto::v1::credential_service_server::CredentialService;
use tonic::{Request, Response, Status};

use super::authenticate;
use super::convert::{
    category_filter, credential_to_api, from_ts, optional, parse_id, qualification_from_api,
    status_from_api,
};
use crate::app::credentials::{
    ChangeStatus, IssueCredential, ListCredentials, credential_page_size,
};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The handler.
#[derive(Debug, Clone)]
pub struct Credentials {
    state: AppState,
}

impl Credentials {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// Parses an IssueCredential request.
pub fn issue_command(req: &v1::IssueCredentialRequest) -> AppResult<IssueCredential> {
    let valid_from = from_ts("valid_from", req.valid_from.as_ref());
    let valid_until = from_ts("valid_until", req.valid_until.as_ref());
    // The same window check the use case makes with its own clock.
    let window = match (&valid_from, &valid_until) {
        (Ok(from), Ok(until)) => {
            ValidityWindow::parse(from.unwrap_or_else(Utc::now), *until, "valid_until").map(|_| ())
        }
        _ => Ok(()),
    };
    let (
        request_id,
        issuer_city,
        qualification,
        holder_name,
        national_id,
        valid_from,
        valid_until,
        (),
    ) = (
        RequestId::parse(&req.request_id),
        CityCode::parse("issuer_city", &req.issuer_city),
        qualification_from_api("qualification", req.qualification.as_ref()),
        parse_holder_name("holder_name", &req.holder_name),
        NationalId::parse("holder_national_id", &req.holder_national_id),
        valid_from,
        valid_until,
        window,
    )
        .all_ok()?;
    Ok(IssueCredential {
        request_id,
        issuer_city,
        qualification,
        holder_name,
        national_id,
        valid_from,
        valid_until,
    })
}

fn change_command(
    request_id: &str,
    id: &str,
    reason: &str,
    transition: Transition,
) -> AppResult<ChangeStatus> {
    let (request_id, id, reason) = (
        RequestId::parse(request_id),
        parse_id("id", id),
        parse_reason("reason", reason),
    )
        .all_ok()?;
    Ok(ChangeStatus {
        request_id,
        id,
        reason,
        transition,
    })
}

fn list_command(req: &v1::ListCredentialsRequest) -> AppResult<ListCredentials> {
    let (page_size, issuer_city, status, category, holder) = (
        credential_page_size(req.page_size),
        optional(&req.issuer_city, |c| CityCode::parse("issuer_city", c)),
        status_from_api("status", req.status),
        category_filter("category", req.category),
        optional(&req.holder_national_id, |id| {
            NationalId::parse("holder_national_id", id)
        }),
    )
        .all_ok()?;
    Ok(ListCredentials {
        issuer_city,
        status,
        category,
        holder,
        page_size,
        page_token: req.page_token.clone(),
    })
}

/// One batch item's error: the status IssueCredential would have answered
/// for it alone (the one mapping, `api::status`), as data.
fn item_error(e: AppError) -> v1::ItemError {
    use tonic_types::StatusExt;
    let status = Status::from(e);
    let field_violations = status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| v1::ItemFieldViolation {
                    field: v.field,
                    description: v.description,
                })
                .collect()
        })
        .unwrap_or_default();
    v1::ItemError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        field_violations,
    }
}

#[tonic::async_trait]
impl CredentialService for Credentials {
    async fn issue_credential(
        &self,
        req: Request<v1::IssueCredentialRequest>,
    ) -> Result<Response<v1::IssueCredentialResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::IssueCredential)?;
        let cmd = issue_command(req.get_ref())?;
        let c = self.state.issue_credential(&caller, cmd).await?;
        Ok(Response::new(v1::IssueCredentialResponse {
            credential: Some(credential_to_api(&c)),
        }))
    }

    async fn batch_issue_credentials(
        &self,
        req: Request<v1::BatchIssueCredentialsRequest>,
    ) -> Result<Response<v1::BatchIssueCredentialsResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::IssueCredential)?;
        let items = req.get_ref().items.iter().map(issue_command).collect();
        let results = self.state.batch_issue_credentials(&caller, items).await?;
        let results = results
            .into_iter()
            .enumerate()
            .map(|(i, r)| v1::BatchIssueResult {
                index: i32::try_from(i).unwrap_or(i32::MAX),
                result: Some(match r {
                    Ok(c) => v1::batch_issue_result::Result::Credential(credential_to_api(&c)),
                    Err(e) => v1::batch_issue_result::Result::Error(item_error(e)),
                }),
            })
            .collect();
        Ok(Response::new(v1::BatchIssueCredentialsResponse { results }))
    }

    async fn get_credential(
        &self,
        req: Request<v1::GetCredentialRequest>,
    ) -> Result<Response<v1::GetCredentialResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::GetCredential)?;
        let id = parse_id("id", &req.get_ref().id).map_err(AppError::from)?;
        let c = self.state.get_credential(&caller, id).await?;
        Ok(Response::new(v1::GetCredentialResponse {
            credential: Some(credential_to_api(&c)),
        }))
    }

    async fn list_credentials(
        &self,
        req: Request<v1::ListCredentialsRequest>,
    ) -> Result<Response<v1::ListCredentialsResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ListCredentials)?;
        let cmd = list_command(req.get_ref())?;
        let page = self.state.list_credentials(&caller, cmd).await?;
        Ok(Response::new(v1::ListCredentialsResponse {
            credentials: page.items.iter().map(credential_to_api).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn suspend_credential(
        &self,
        req: Request<v1::SuspendCredentialRequest>,
    ) -> Result<Response<v1::SuspendCredentialResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ChangeCredentialStatus)?;
        let r = req.get_ref();
        let cmd = change_command(&r.request_id, &r.id, &r.reason, Transition::Suspend)?;
        let c = self.state.change_credential_status(&caller, cmd).await?;
        Ok(Response::new(v1::SuspendCredentialResponse {
            credential: Some(credential_to_api(&c)),
        }))
    }

    async fn reinstate_credential(
        &self,
        req: Request<v1::ReinstateCredentialRequest>,
    ) -> Result<Response<v1::ReinstateCredentialResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ChangeCredentialStatus)?;
        let r = req.get_ref();
        let cmd = change_command(&r.request_id, &r.id, &r.reason, Transition::Reinstate)?;
        let c = self.state.change_credential_status(&caller, cmd).await?;
        Ok(Response::new(v1::ReinstateCredentialResponse {
            credential: Some(credential_to_api(&c)),
        }))
    }

    async fn revoke_credential(
        &self,
        req: Request<v1::RevokeCredentialRequest>,
    ) -> Result<Response<v1::RevokeCredentialResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ChangeCredentialStatus)?;
        let r = req.get_ref();
        let cmd = change_command(&r.request_id, &r.id, &r.reason, Transition::Revoke)?;
        let c = self.state.change_credential_status(&caller, cmd).await?;
        Ok(Response::new(v1::RevokeCredentialResponse {
            credential: Some(credential_to_api(&c)),
        }))
    }
}
