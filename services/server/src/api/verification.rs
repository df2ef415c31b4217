//! `VerificationService`: an employer checks a credential.
//!
//! Speed by design: the issuer key comes from the in-memory keyring and a
//! caller's bearer token is validated once per token (`caller_cache`), so a
//! verify makes one database round trip (the credential row, for its live
//! status and holder hash) and one signature check; a `recognition_city`
//! adds the recognition lookup. Its audit event goes to the background
//! writer, off the request path.

use chrono::Utc;
use corridor_domain::caller::Role;
use corridor_domain::credential::Status;
use corridor_domain::holder::NationalId;
use corridor_domain::vc::{self, Check, Outcome, Report};
use corridor_proto::v1;
use corridor_proto::v1::verification_service_server::VerificationService;
use corridor_proto::v1::verify_credential_request::Credential as Subject;
use tonic::{Request, Response, Status as GrpcStatus};

use super::authenticate;
use super::convert::{parse_id, qualification_to_api, row_status, status_to_api, ts};
use crate::api::recognition::{Explanation, outcome_to_api, recognition_to_api};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::audit::NewEvent;
use crate::store::credentials as cred_store;
use crate::store::entities::credential;
use crate::store::recognitions::{self as rec_store, status};

/// Largest token accepted, bytes (a real one is well under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The handler.
#[derive(Debug, Clone)]
pub struct Verification {
    state: AppState,
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

/// The `kid` of a token's header, without trusting anything else in it.
fn peek_kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

impl Verification {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Whether and how the credential is recognized in `city`: the latest
    /// recorded recognition, else a dry run of the city's policy in force.
    async fn recognition_report(
        &self,
        city: &str,
        row: &credential::Model,
        now: chrono::DateTime<Utc>,
    ) -> ApiResult<v1::RecognitionReport> {
        let db = &self.state.db;
        if let Some(r) = rec_store::latest_for(db, row.id, city).await? {
            let api = recognition_to_api(&r, None)?;
            let (outcome, level) = match r.status.as_str() {
                status::VOID | status::SUSPENDED => (v1::RecognitionOutcome::Rejected as i32, 0),
                _ => (api.outcome, api.mapped_level),
            };
            let mut explanation = api.explanation;
            if let Some(e) = explanation.as_mut() {
                match r.status.as_str() {
                    status::VOID => {
                        e.reason = format!("void: the source credential was revoked ({})", e.reason)
                    }
                    status::SUSPENDED => {
                        e.reason = format!(
                            "suspended: the source credential is suspended ({})",
                            e.reason
                        )
                    }
                    _ => {}
                }
            }
            return Ok(v1::RecognitionReport {
                city: city.to_owned(),
                recorded: true,
                recognition_id: r.id.to_string(),
                outcome,
                mapped_level: level,
                explanation,
                status: api.status,
            });
        }
        let book = &self.state.policies;
        let target = book.target(db, city).await?;
        let subject = book.subject(db, row).await?;
        let d = book
            .decide(
                db,
                &subject,
                &target,
                &corridor_policy::Facts::default(),
                now,
            )
            .await?;
        Ok(v1::RecognitionReport {
            city: city.to_owned(),
            recorded: false,
            recognition_id: String::new(),
            outcome: outcome_to_api(d.decision.outcome).into(),
            mapped_level: d.decision.mapped_level.map_or(0, i32::from),
            explanation: Some(Explanation::of(&d, city).to_api()),
            status: v1::RecognitionStatus::Unspecified.into(),
        })
    }

    async fn verify(
        &self,
        req: Request<v1::VerifyCredentialRequest>,
    ) -> ApiResult<v1::VerifyCredentialResponse> {
        let caller = authenticate(&self.state, &req)?;
        // Any known role may verify; `verifier` is the employer's.
        caller.require_any(&Role::ALL)?;
        let req = req.into_inner();
        let holder = if req.holder_national_id.is_empty() {
            None
        } else {
            Some(NationalId::parse(
                "holder_national_id",
                &req.holder_national_id,
            )?)
        };
        let recognition_city = if req.recognition_city.is_empty() {
            None
        } else {
            Some(corridor_domain::city::CityCode::parse(
                "recognition_city",
                &req.recognition_city,
            )?)
        };
        let now = Utc::now();

        // Resolve the token and (for verify-by-id) the stored row.
        let (token, mut row) = match req.credential {
            Some(Subject::Token(t)) => {
                let t = t.trim().to_owned();
                if t.is_empty() || t.len() > MAX_TOKEN_BYTES {
                    return Err(corridor_domain::Violations::one(
                        "token",
                        format!("a credential token of 1 to {MAX_TOKEN_BYTES} bytes is required"),
                    )
                    .into());
                }
                (t, None)
            }
            Some(Subject::CredentialId(id)) => {
                let id = parse_id("credential_id", &id)?;
                let row = cred_store::get(&self.state.db, id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("no credential {id}")))?;
                (row.token.clone(), Some(row))
            }
            None => {
                return Err(corridor_domain::Violations::one(
                    "credential",
                    "either token or credential_id is required",
                )
                .into());
            }
        };

        let key = match peek_kid(&token) {
            Some(kid) => self.state.keyring.verifying(&self.state.db, &kid).await?,
            None => None,
        };
        let tv = vc::verify_token(&token, |kid| key.filter(|k| k.kid == kid), now);

        // Verify by token: the one round trip happens here, for live status.
        if row.is_none()
            && let Some(claims) = &tv.claims
        {
            row = cred_store::get(&self.state.db, claims.id).await?;
        }

        let (status_outcome, live_status) = match (&tv.claims, &row) {
            (None, _) => (Outcome::Skipped("no verified token".into()), None),
            (Some(_), None) => (
                Outcome::Failed("the credential is not in the corridor registry".into()),
                None,
            ),
            // The registry's record is the authority: a token that verifies
            // but is not the one issued under this id (signed with a leaked
            // or retired key, say) does not inherit the record's status.
            (Some(c), Some(r)) if r.id != c.id || r.token != token => (
                Outcome::Failed(
                    "the token is not the one the registry issued under this credential id".into(),
                ),
                None,
            ),
            (Some(_), Some(r)) => {
                let s = row_status(r)?;
                let o = match s {
                    Status::Active => Outcome::Passed("active".into()),
                    Status::Suspended => Outcome::Failed(format!(
                        "suspended: {}",
                        r.status_reason.clone().unwrap_or_default()
                    )),
                    Status::Revoked => Outcome::Failed(format!(
                        "revoked: {}",
                        r.status_reason.clone().unwrap_or_default()
                    )),
                };
                (o, Some(s))
            }
        };

        let holder_outcome = match (&holder, &row, &tv.claims) {
            (None, _, _) => Outcome::Skipped("no national ID presented".into()),
            (Some(_), _, None) | (Some(_), None, _) => {
                Outcome::Skipped("the credential could not be looked up".into())
            }
            (Some(id), Some(r), Some(_)) => {
                let throttle = &self.state.holder_throttle;
                if !throttle.allowed(&caller.subject, r.id) {
                    return Err(ApiError::Exhausted(format!(
                        "too many failed holder checks on this credential; retry in {} minutes",
                        crate::throttle::WINDOW.as_secs() / 60
                    )));
                }
                let presented = self.state.hasher.hash(id);
                let stored =
                    corridor_domain::holder::HolderHash::from_stored(r.holder_hash.clone());
                if presented.matches(&stored) {
                    Outcome::Passed("the presented national ID is the holder's".into())
                } else {
                    throttle.failed(&caller.subject, r.id);
                    Outcome::Failed("the presented national ID is not the holder's".into())
                }
            }
        };

        let report = Report::new(&tv, status_outcome, holder_outcome);
        // With a city: one more query (the recorded recognition), only then.
        let recognition = match (&recognition_city, &row, &tv.claims) {
            (Some(city), Some(r), Some(_)) => {
                Some(self.recognition_report(city.as_str(), r, now).await?)
            }
            _ => None,
        };
        let subject_id = tv
            .claims
            .as_ref()
            .map(|c| c.id.to_string())
            .or_else(|| row.as_ref().map(|r| r.id.to_string()))
            .unwrap_or_else(|| "unknown".into());
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|(_, o)| !o.ok())
            .map(|(c, _)| c.as_str())
            .collect();
        self.state
            .audit
            .record(NewEvent::by(
                &caller,
                "credential.verified",
                "credential",
                subject_id,
                serde_json::json!({
                    "valid": report.valid,
                    "failed_checks": failed,
                    "kid": tv.kid,
                    "holder_checked": holder.is_some(),
                }),
                now,
            ))
            .await;

        Ok(v1::VerifyCredentialResponse {
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
            claims: tv.claims.as_ref().map(|c| v1::CredentialClaims {
                credential_id: c.id.to_string(),
                issuer_city: c.issuer_city.to_string(),
                qualification: Some(qualification_to_api(&c.qualification)),
                holder_name: c.holder_name.clone(),
                valid_from: Some(ts(c.window.from)),
                valid_until: c.window.until.map(ts),
                issue_time: Some(ts(c.issued_at)),
                kid: tv.kid.clone().unwrap_or_default(),
            }),
            status: live_status
                .map(status_to_api)
                .unwrap_or(v1::CredentialStatus::Unspecified)
                .into(),
            recognition,
        })
    }
}

#[tonic::async_trait]
impl VerificationService for Verification {
    async fn verify_credential(
        &self,
        req: Request<v1::VerifyCredentialRequest>,
    ) -> Result<Response<v1::VerifyCredentialResponse>, GrpcStatus> {
        Ok(Response::new(self.verify(req).await?))
    }
}
