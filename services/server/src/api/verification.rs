//! `VerificationService`: an employer checks a credential.

use corridor_domain::Violations;
use corridor_domain::authz::Rpc;
use corridor_domain::city::CityCode;
use corridor_domain::error::AllOk;
use corridor_domain::holder::NationalId;
use corridor_domain::vc::{Check, Outcome};
use corridor_proto::v1;
use corridor_proto::v1::verification_service_server::VerificationService;
use corridor_proto::v1::verify_credential_request::Credential as Subject;
use tonic::{Request, Response, Status};

use super::authenticate;
use super::convert::{
    explanation_to_api, optional, outcome_to_api, parse_id, qualification_to_api,
    recognition_status_to_api, status_to_api, ts,
};
use crate::app::recognition::RecognitionReport;
use crate::app::verification::{MAX_TOKEN_BYTES, Verification, VerifyCredential, VerifySubject};
use crate::error::AppResult;
use crate::state::AppState;

/// The handler.
#[derive(Debug, Clone)]
pub struct Verifier {
    state: AppState,
}

impl Verifier {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn check_to_api(c: Check) -> v1::VerificationCheck {
    match c {
        Check::Signature => v1::VerificationCheck::Signature,
        Check::Issuer => v1::VerificationCheck::Issuer,
        Check::ValidityWindow => v1::VerificationCheck::ValidityWindow,
        Check::Status => v1::VerificationCheck::Status,
        Check::Holder => v1::VerificationCheck::Holder,
    }
}

fn check_outcome_to_api(o: &Outcome) -> (v1::CheckOutcome, String) {
    match o {
        Outcome::Passed(d) => (v1::CheckOutcome::Passed, d.clone()),
        Outcome::Failed(d) => (v1::CheckOutcome::Failed, d.clone()),
        Outcome::Skipped(d) => (v1::CheckOutcome::Skipped, d.clone()),
    }
}

fn subject(s: Option<&Subject>) -> Result<VerifySubject, Violations> {
    match s {
        Some(Subject::Token(t)) => {
            let t = t.trim();
            if t.is_empty() || t.len() > MAX_TOKEN_BYTES {
                return Err(Violations::one(
                    "token",
                    format!("a credential token of 1 to {MAX_TOKEN_BYTES} bytes is required"),
                ));
            }
            Ok(VerifySubject::Token(t.to_owned()))
        }
        Some(Subject::CredentialId(id)) => parse_id("credential_id", id).map(VerifySubject::Id),
        None => Err(Violations::one(
            "credential",
            "either token or credential_id is required",
        )),
    }
}

/// Parses a VerifyCredential request.
pub fn verify_command(req: &v1::VerifyCredentialRequest) -> AppResult<VerifyCredential> {
    let (subject, holder, recognition_city) = (
        subject(req.credential.as_ref()),
        optional(&req.holder_national_id, |id| {
            NationalId::parse("holder_national_id", id)
        }),
        optional(&req.recognition_city, |c| {
            CityCode::parse("recognition_city", c)
        }),
    )
        .all_ok()?;
    Ok(VerifyCredential {
        subject,
        holder,
        recognition_city,
    })
}

fn report_to_api(r: &RecognitionReport) -> v1::RecognitionReport {
    v1::RecognitionReport {
        city: r.city.to_string(),
        recorded: r.recorded.is_some(),
        recognition_id: r.recorded.map(|(id, _)| id.to_string()).unwrap_or_default(),
        outcome: outcome_to_api(r.outcome).into(),
        mapped_level: r.mapped_level.map_or(0, i32::from),
        explanation: Some(explanation_to_api(&r.explanation)),
        status: r
            .recorded
            .map_or(v1::RecognitionStatus::Unspecified, |(_, s)| {
                recognition_status_to_api(s)
            })
            .into(),
    }
}

/// The API form of a verification.
pub fn verification_to_api(v: &Verification) -> v1::VerifyCredentialResponse {
    let report = &v.verdict.report;
    v1::VerifyCredentialResponse {
        valid: report.valid,
        checks: report
            .checks
            .iter()
            .map(|(c, o)| {
                let (outcome, detail) = check_outcome_to_api(o);
                v1::CheckResult {
                    check: check_to_api(*c).into(),
                    outcome: outcome.into(),
                    detail,
                }
            })
            .collect(),
        claims: v.claims.as_ref().map(|c| v1::CredentialClaims {
            credential_id: c.id.to_string(),
            issuer_city: c.issuer_city.to_string(),
            qualification: Some(qualification_to_api(&c.qualification)),
            holder_name: c.holder_name.clone(),
            valid_from: Some(ts(c.window.from)),
            valid_until: c.window.until.map(ts),
            issue_time: Some(ts(c.issued_at)),
            kid: v.kid.clone().unwrap_or_default(),
        }),
        status: v
            .verdict
            .live_status
            .map_or(v1::CredentialStatus::Unspecified, status_to_api)
            .into(),
        recognition: v.recognition.as_ref().map(report_to_api),
    }
}

#[tonic::async_trait]
impl VerificationService for Verifier {
    async fn verify_credential(
        &self,
        req: Request<v1::VerifyCredentialRequest>,
    ) -> Result<Response<v1::VerifyCredentialResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::VerifyCredential)?;
        let cmd = verify_command(req.get_ref())?;
        let v = self.state.verify_credential(&caller, cmd).await?;
        Ok(Response::new(verification_to_api(&v)))
    }
}
