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

#[cfg(test)]
mod properties {
    //! Whatever a client puts in the fields, parsing answers with a command
    //! or with field violations (INVALID_ARGUMENT), never a panic and never
    //! an error that blames the server.

    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,80}",
            "[0-9]{17}[0-9X]",
            "[a-z_]{0,20}",
            Just("hangzhou".to_owned()),
            Just("a\u{0}b".to_owned()),
            Just("\u{202e}evil".to_owned()),
            "\\PC{250,300}",
        ]
    }

    fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
        proptest::option::of(
            (any::<i64>(), any::<i32>())
                .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
        )
    }

    fn parsed_or_invalid<T>(r: AppResult<T>) -> Result<(), TestCaseError> {
        match r {
            Ok(_) | Err(AppError::Invalid(_)) => Ok(()),
            Err(other) => Err(TestCaseError::fail(format!(
                "not INVALID_ARGUMENT: {other:?}"
            ))),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn issue_requests_parse_or_name_their_fields(
            request_id in text(),
            issuer_city in text(),
            qualification in proptest::option::of((any::<i32>(), text(), any::<i32>(), text())),
            holder_name in text(),
            holder_national_id in text(),
            valid_from in timestamp(),
            valid_until in timestamp(),
        ) {
            let req = v1::IssueCredentialRequest {
                request_id,
                issuer_city,
                qualification: qualification.map(|(category, series, level, title)| v1::Qualification {
                    category,
                    series,
                    level,
                    title,
                }),
                holder_name,
                holder_national_id,
                valid_from,
                valid_until,
            };
            parsed_or_invalid(issue_command(&req))?;
        }

        #[test]
        fn status_changes_parse_or_name_their_fields(
            request_id in text(),
            id in prop_oneof![text(), Just(uuid::Uuid::nil().to_string())],
            reason in text(),
        ) {
            parsed_or_invalid(change_command(&request_id, &id, &reason, Transition::Revoke))?;
        }

        #[test]
        fn listings_parse_or_name_their_fields(
            page_size in any::<i32>(),
            issuer_city in text(),
            status in any::<i32>(),
            category in any::<i32>(),
            holder_national_id in text(),
            page_token in text(),
        ) {
            let req = v1::ListCredentialsRequest {
                page_size,
                issuer_city,
                status,
                category,
                holder_national_id,
                page_token,
            };
            parsed_or_invalid(list_command(&req))?;
        }

        #[test]
        fn recognition_facts_are_taken_exactly_when_in_range(
            months in proptest::option::of(-5i32..1300),
            years in proptest::option::of(prop_oneof![-5i32..100, any::<i32>()]),
            flags in (any::<Option<bool>>(), any::<Option<bool>>(), any::<Option<bool>>()),
        ) {
            let f = v1::RecognitionFacts {
                local_social_insurance_months: months,
                local_employer_registered: flags.0,
                years_of_experience: years,
                holds_local_license: flags.1,
                civil_servant: flags.2,
            };
            let in_range = months.is_none_or(|m| (0..=1200).contains(&m))
                && years.is_none_or(|y| (0..=80).contains(&y));
            match super::super::convert::facts_from_api(Some(&f)) {
                Ok(facts) => {
                    prop_assert!(in_range);
                    prop_assert_eq!(facts.local_social_insurance_months, months.map(i64::from));
                    prop_assert_eq!(facts.years_of_experience, years.map(i64::from));
                }
                Err(v) => {
                    prop_assert!(!in_range);
                    prop_assert!(v.0.iter().all(|f| f.field.starts_with("facts.")) && !v.0.is_empty());
                }
            }
        }
    }
}
