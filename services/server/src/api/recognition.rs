//! `RecognitionService`: deciding, recording and re-deciding recognitions.

use chrono::{DateTime, Utc};
use corridor_domain::Violations;
use corridor_domain::caller::{Caller, Role};
use corridor_domain::city::CityCode;
use corridor_domain::error::Collector;
use corridor_domain::vc::{self, AttestationClaims};
use corridor_policy::{Facts, Outcome, Subject};
use corridor_proto::v1;
use corridor_proto::v1::recognition_service_server::RecognitionService;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use super::convert::{from_ts, parse_id, qualification_from_api, ts};
use super::{Idempotency, authenticate, paging, parse_request_id};
use crate::error::{ApiError, ApiResult};
use crate::policy_book::Decided;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::credentials as cred_store;
use crate::store::entities::{credential, recognition};
use crate::store::keys as key_store;
use crate::store::recognitions::{self as rec_store, status};

/// The handler.
#[derive(Debug, Clone)]
pub struct Recognitions {
    state: AppState,
}

/// Parses API facts, checking ranges.
pub fn facts_from_api(f: Option<&v1::RecognitionFacts>) -> Result<Facts, Violations> {
    let Some(f) = f else {
        return Ok(Facts::default());
    };
    let mut errs = Collector::default();
    if f.local_social_insurance_months
        .is_some_and(|m| !(0..=1200).contains(&m))
    {
        errs.push("facts.local_social_insurance_months", "must be 0 to 1200");
    }
    if f.years_of_experience
        .is_some_and(|y| !(0..=80).contains(&y))
    {
        errs.push("facts.years_of_experience", "must be 0 to 80");
    }
    errs.finish()?;
    Ok(Facts {
        local_social_insurance_months: f.local_social_insurance_months.map(i64::from),
        local_employer_registered: f.local_employer_registered,
        years_of_experience: f.years_of_experience.map(i64::from),
        holds_local_license: f.holds_local_license,
        civil_servant: f.civil_servant,
    })
}

/// The API form of facts.
pub fn facts_to_api(f: &Facts) -> v1::RecognitionFacts {
    v1::RecognitionFacts {
        local_social_insurance_months: f
            .local_social_insurance_months
            .and_then(|m| i32::try_from(m).ok()),
        local_employer_registered: f.local_employer_registered,
        years_of_experience: f.years_of_experience.and_then(|y| i32::try_from(y).ok()),
        holds_local_license: f.holds_local_license,
        civil_servant: f.civil_servant,
    }
}

/// The API enum of an outcome.
pub fn outcome_to_api(o: Outcome) -> v1::RecognitionOutcome {
    match o {
        Outcome::Recognized => v1::RecognitionOutcome::Recognized,
        Outcome::Conditional => v1::RecognitionOutcome::Conditional,
        Outcome::Downgraded => v1::RecognitionOutcome::Downgraded,
        Outcome::Referred => v1::RecognitionOutcome::Referred,
        Outcome::Rejected => v1::RecognitionOutcome::Rejected,
    }
}

fn status_to_api(s: &str) -> v1::RecognitionStatus {
    match s {
        status::OPEN => v1::RecognitionStatus::Open,
        status::DECIDED => v1::RecognitionStatus::Decided,
        status::SUSPENDED => v1::RecognitionStatus::Suspended,
        status::VOID => v1::RecognitionStatus::Void,
        _ => v1::RecognitionStatus::Unspecified,
    }
}

fn status_from_api(v: i32) -> Result<Option<&'static str>, Violations> {
    match v1::RecognitionStatus::try_from(v) {
        Ok(v1::RecognitionStatus::Unspecified) => Ok(None),
        Ok(v1::RecognitionStatus::Open) => Ok(Some(status::OPEN)),
        Ok(v1::RecognitionStatus::Decided) => Ok(Some(status::DECIDED)),
        Ok(v1::RecognitionStatus::Suspended) => Ok(Some(status::SUSPENDED)),
        Ok(v1::RecognitionStatus::Void) => Ok(Some(status::VOID)),
        Err(_) => Err(Violations::one("status", "unknown status")),
    }
}

/// The explanation as stored (JSON) and returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    policy_city: String,
    policy_version: i32,
    deciding_rules: Vec<String>,
    matched_rules: Vec<String>,
    unmet_conditions: Vec<String>,
    met_conditions: Vec<String>,
    reason: String,
    evaluation_errors: Vec<String>,
    decision_time: DateTime<Utc>,
    #[serde(default)]
    rules_not_applied: Vec<(String, String)>,
}

impl Explanation {
    /// The explanation of a decision into `city`.
    pub fn of(d: &Decided, city: &str) -> Self {
        Self {
            policy_city: city.to_owned(),
            policy_version: d.policy_version,
            deciding_rules: d.decision.deciding_rules.clone(),
            matched_rules: d.decision.matched_rules.clone(),
            unmet_conditions: d.decision.unmet_conditions.clone(),
            met_conditions: d.decision.met_conditions.clone(),
            reason: d.decision.reason.clone(),
            evaluation_errors: d.decision.evaluation_errors.clone(),
            decision_time: d.at,
            rules_not_applied: d.decision.rules_not_applied.clone(),
        }
    }

    /// The API form.
    pub fn to_api(&self) -> v1::RecognitionExplanation {
        v1::RecognitionExplanation {
            policy_city: self.policy_city.clone(),
            policy_version: self.policy_version,
            deciding_rules: self.deciding_rules.clone(),
            matched_rules: self.matched_rules.clone(),
            unmet_conditions: self.unmet_conditions.clone(),
            met_conditions: self.met_conditions.clone(),
            reason: self.reason.clone(),
            evaluation_errors: self.evaluation_errors.clone(),
            decision_time: Some(ts(self.decision_time)),
            rules_not_applied: self
                .rules_not_applied
                .iter()
                .map(|(rule_id, failed_condition)| v1::RuleNotApplied {
                    rule_id: rule_id.clone(),
                    failed_condition: failed_condition.clone(),
                })
                .collect(),
        }
    }
}

/// The API form of a stored recognition.
pub fn recognition_to_api(
    r: &recognition::Model,
    cred: Option<&credential::Model>,
) -> ApiResult<v1::Recognition> {
    let facts: Facts = serde_json::from_str(&r.facts).map_err(ApiError::internal)?;
    let explanation: Explanation =
        serde_json::from_str(&r.explanation).map_err(ApiError::internal)?;
    let outcome = Outcome::from_name(&r.outcome)
        .ok_or_else(|| ApiError::internal(format!("bad stored outcome {}", r.outcome)))?;
    Ok(v1::Recognition {
        id: r.id.to_string(),
        credential_id: r.credential_id.to_string(),
        source_city: r.source_city.clone(),
        target_city: r.target_city.clone(),
        qualification: cred.map(super::convert::row_qualification).transpose()?,
        outcome: outcome_to_api(outcome).into(),
        mapped_level: r.mapped_level.unwrap_or(0),
        facts: Some(facts_to_api(&facts)),
        explanation: Some(explanation.to_api()),
        status: status_to_api(&r.status).into(),
        attestation: r.attestation.clone(),
        decide_time: Some(ts(r.decided_at)),
        update_time: Some(ts(r.updated_at)),
        decided_by: r.decided_by.clone(),
    })
}

/// `base` with the outcome, level, facts, explanation, policy version and
/// status of decision `d` (CONDITIONAL stays open; anything else is decided).
fn with_decision(
    base: recognition::Model,
    d: &Decided,
    facts: &Facts,
) -> ApiResult<recognition::Model> {
    let explanation = Explanation::of(d, &base.target_city);
    Ok(recognition::Model {
        outcome: d.decision.outcome.as_str().to_owned(),
        mapped_level: d.decision.mapped_level.map(i32::from),
        facts: serde_json::to_string(facts).map_err(ApiError::internal)?,
        explanation: serde_json::to_string(&explanation).map_err(ApiError::internal)?,
        policy_version: d.policy_version,
        status: if d.decision.outcome == Outcome::Conditional {
            status::OPEN
        } else {
            status::DECIDED
        }
        .to_owned(),
        ..base
    })
}

fn may_read(caller: &Caller, r: &recognition::Model) -> ApiResult<()> {
    if caller.has(Role::Auditor) || caller.has(Role::CorridorAdmin) {
        return Ok(());
    }
    let city = |c: &str| CityCode::parse("city", c);
    if caller
        .require_in_city(Role::Recognizer, &city(&r.target_city)?)
        .is_ok()
        || caller
            .require_in_city(Role::Issuer, &city(&r.source_city)?)
            .is_ok()
    {
        return Ok(());
    }
    Err(corridor_domain::caller::Denied(
        "only the target city's recognizer, the source city's issuer, auditors and corridor admins may read a recognition".into(),
    )
    .into())
}

impl Recognitions {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Signs the attestation of a decision with the target city's current key.
    async fn attest(
        &self,
        conn: &impl ConnectionTrait,
        id: Uuid,
        cred: &credential::Model,
        target: &CityCode,
        d: &Decided,
    ) -> ApiResult<String> {
        let key_row = key_store::current(conn, target.as_str(), key_store::Lock::Share)
            .await?
            .ok_or_else(|| ApiError::internal(format!("{target} has no current key")))?;
        let key = self.state.keyring.signing_for(&key_row)?;
        let source = CityCode::parse("source_city", &cred.issuer_city)?;
        vc::sign_attestation(
            &key,
            &AttestationClaims {
                recognition_id: id,
                credential_id: cred.id,
                source_city: source,
                target_city: target.clone(),
                outcome: d.decision.outcome.as_str().to_owned(),
                mapped_level: d.decision.mapped_level,
                policy_version: d.policy_version,
                deciding_rules: d.decision.deciding_rules.clone(),
                issued_at: d.at,
            },
        )
        .map_err(ApiError::internal)
    }

    async fn request(
        &self,
        req: Request<v1::RequestRecognitionRequest>,
    ) -> ApiResult<v1::RequestRecognitionResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::Recognizer])?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let cred_id = errs.take(parse_id("credential_id", &req.credential_id));
        let target = errs.take(CityCode::parse("target_city", &req.target_city));
        let facts = errs.take(facts_from_api(req.facts.as_ref()));
        errs.take(parse_request_id(&req.request_id));
        errs.finish()?;
        let (Some(cred_id), Some(target), Some(facts)) = (cred_id, target, facts) else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        caller.require_in_city(Role::Recognizer, &target)?;
        let idem = Idempotency::new(
            &caller,
            &req.request_id,
            "RequestRecognition",
            &v1::RequestRecognitionRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let now = Utc::now();
        let txn = self.state.db.begin().await?;
        if let Some(replay) = idem.claim(&txn, now).await? {
            return Ok(replay);
        }
        // Locked until commit: a concurrent suspension or revocation waits,
        // and its cascade then sees this recognition.
        let cred = cred_store::get_for_update(&txn, cred_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no credential {cred_id}")))?;
        let book = &self.state.policies;
        let t = book.target(&txn, target.as_str()).await?;
        let subject = book.subject(&txn, &cred).await?;
        let decided = book.decide(&txn, &subject, &t, &facts, now).await?;
        let id = Uuid::now_v7();
        let attestation = self.attest(&txn, id, &cred, &target, &decided).await?;
        let row = with_decision(
            recognition::Model {
                id,
                credential_id: cred.id,
                source_city: cred.issuer_city.clone(),
                target_city: target.to_string(),
                outcome: String::new(),
                mapped_level: None,
                facts: String::new(),
                explanation: String::new(),
                policy_version: 0,
                status: String::new(),
                suspended_from: None,
                attestation,
                decided_by: caller.subject.clone(),
                decided_at: now,
                updated_at: now,
            },
            &decided,
            &facts,
        )?;
        rec_store::insert(&txn, row.clone()).await?;
        audit::append(
            &txn,
            NewEvent::by(
                &caller,
                "recognition.decided",
                "recognition",
                id.to_string(),
                serde_json::json!({
                    "credential_id": cred.id,
                    "source_city": cred.issuer_city,
                    "target_city": target.as_str(),
                    "outcome": row.outcome,
                    "mapped_level": row.mapped_level,
                    "policy_version": row.policy_version,
                    "deciding_rules": decided.decision.deciding_rules,
                }),
                now,
            ),
        )
        .await?;
        let resp = v1::RequestRecognitionResponse {
            recognition: Some(recognition_to_api(&row, Some(&cred))?),
        };
        idem.complete(&txn, &resp).await?;
        txn.commit().await?;
        Ok(resp)
    }

    async fn evaluate(
        &self,
        req: Request<v1::EvaluateRecognitionRequest>,
    ) -> ApiResult<v1::EvaluateRecognitionResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&Role::ALL)?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let cred_id = errs.take(parse_id("credential_id", &req.credential_id));
        let target = errs.take(CityCode::parse("target_city", &req.target_city));
        let facts = errs.take(facts_from_api(req.facts.as_ref()));
        let as_of = errs.take(from_ts("as_of", req.as_of.as_ref()));
        errs.finish()?;
        let (Some(cred_id), Some(target), Some(facts), Some(as_of)) =
            (cred_id, target, facts, as_of)
        else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        let at = as_of.unwrap_or_else(Utc::now);
        let db = &self.state.db;
        let cred = cred_store::get(db, cred_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no credential {cred_id}")))?;
        let book = &self.state.policies;
        let t = book.target(db, target.as_str()).await?;
        let subject = book.subject(db, &cred).await?;
        let decided = book.decide(db, &subject, &t, &facts, at).await?;
        Ok(v1::EvaluateRecognitionResponse {
            outcome: outcome_to_api(decided.decision.outcome).into(),
            mapped_level: decided.decision.mapped_level.map_or(0, i32::from),
            explanation: Some(Explanation::of(&decided, target.as_str()).to_api()),
        })
    }

    async fn get(
        &self,
        req: Request<v1::GetRecognitionRequest>,
    ) -> ApiResult<v1::GetRecognitionResponse> {
        let caller = authenticate(&self.state, &req)?;
        let id = parse_id("id", &req.get_ref().id)?;
        let row = rec_store::get(&self.state.db, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no recognition {id}")))?;
        // Like a missing one, so that existence does not leak across cities.
        may_read(&caller, &row).map_err(|_| ApiError::NotFound(format!("no recognition {id}")))?;
        let cred = cred_store::get(&self.state.db, row.credential_id).await?;
        Ok(v1::GetRecognitionResponse {
            recognition: Some(recognition_to_api(&row, cred.as_ref())?),
        })
    }

    async fn list(
        &self,
        req: Request<v1::ListRecognitionsRequest>,
    ) -> ApiResult<v1::ListRecognitionsResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::Recognizer, Role::Auditor, Role::CorridorAdmin])?;
        let req = req.into_inner();
        let privileged = caller.has(Role::Auditor) || caller.has(Role::CorridorAdmin);
        let mut errs = Collector::default();
        let limit = paging::page_size(&mut errs, req.page_size, 50, 500);
        let target_city = if req.target_city.is_empty() {
            if privileged {
                None
            } else {
                caller.city.as_ref().map(|c| c.to_string())
            }
        } else {
            errs.take(CityCode::parse("target_city", &req.target_city))
                .map(|c| c.to_string())
        };
        let credential_id = if req.credential_id.is_empty() {
            None
        } else {
            errs.take(parse_id("credential_id", &req.credential_id))
        };
        let st = errs.take(status_from_api(req.status)).flatten();
        errs.finish()?;
        if !privileged {
            match &target_city {
                Some(c) => {
                    caller.require_in_city(Role::Recognizer, &CityCode::parse("target_city", c)?)?
                }
                None => {
                    return Err(corridor_domain::caller::Denied(
                        "a recognizer token without a city may not list recognitions".into(),
                    )
                    .into());
                }
            }
        }
        let filter = rec_store::Filter {
            target_city,
            credential_id,
            status: st.map(str::to_owned),
        };
        let fingerprint = paging::fingerprint(&filter);
        let after = paging::decode::<(DateTime<Utc>, Uuid)>(&req.page_token, &fingerprint)?;
        let rows = rec_store::list(&self.state.db, &filter, after, limit + 1).await?;
        let (rows, next_page_token) =
            paging::page(rows, limit, &fingerprint, |r| (r.decided_at, r.id))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(recognition_to_api(r, None)?);
        }
        Ok(v1::ListRecognitionsResponse {
            recognitions: out,
            next_page_token,
        })
    }

    async fn update_facts(
        &self,
        req: Request<v1::UpdateRecognitionFactsRequest>,
    ) -> ApiResult<v1::UpdateRecognitionFactsResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::Recognizer])?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let id = errs.take(parse_id("id", &req.id));
        let new_facts = errs.take(facts_from_api(req.facts.as_ref()));
        errs.take(parse_request_id(&req.request_id));
        errs.finish()?;
        let (Some(id), Some(new_facts)) = (id, new_facts) else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        let idem = Idempotency::new(
            &caller,
            &req.request_id,
            "UpdateRecognitionFacts",
            &v1::UpdateRecognitionFactsRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let now = Utc::now();
        let txn = self.state.db.begin().await?;
        // Authorization before any replay: a stored answer is only for a
        // caller who may decide into this recognition's city now.
        let row = rec_store::get_for_update(&txn, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no recognition {id}")))?;
        let target = CityCode::parse("target_city", &row.target_city)?;
        caller.require_in_city(Role::Recognizer, &target)?;
        if let Some(replay) = idem.claim(&txn, now).await? {
            return Ok(replay);
        }
        if row.status != status::OPEN {
            return Err(ApiError::FailedPrecondition(format!(
                "only an open CONDITIONAL recognition can be re-decided; this one is {}",
                row.status
            )));
        }
        let old: Facts = serde_json::from_str(&row.facts).map_err(ApiError::internal)?;
        let facts = Facts {
            local_social_insurance_months: new_facts
                .local_social_insurance_months
                .or(old.local_social_insurance_months),
            local_employer_registered: new_facts
                .local_employer_registered
                .or(old.local_employer_registered),
            years_of_experience: new_facts.years_of_experience.or(old.years_of_experience),
            holds_local_license: new_facts.holds_local_license.or(old.holds_local_license),
            civil_servant: new_facts.civil_servant.or(old.civil_servant),
        };
        let cred = cred_store::get(&txn, row.credential_id)
            .await?
            .ok_or_else(|| ApiError::internal("recognition without its credential"))?;
        let book = &self.state.policies;
        let t = book.target(&txn, target.as_str()).await?;
        let subject: Subject = book.subject(&txn, &cred).await?;
        let decided = book.decide(&txn, &subject, &t, &facts, now).await?;
        let attestation = self.attest(&txn, id, &cred, &target, &decided).await?;
        let updated = with_decision(
            recognition::Model {
                attestation,
                updated_at: now,
                ..row.clone()
            },
            &decided,
            &facts,
        )?;
        rec_store::update(&txn, updated.clone()).await?;
        audit::append(
            &txn,
            NewEvent::by(
                &caller,
                "recognition.redecided",
                "recognition",
                id.to_string(),
                serde_json::json!({
                    "from": row.outcome,
                    "to": updated.outcome,
                    "mapped_level": updated.mapped_level,
                    "policy_version": updated.policy_version,
                    "deciding_rules": decided.decision.deciding_rules,
                }),
                now,
            ),
        )
        .await?;
        let resp = v1::UpdateRecognitionFactsResponse {
            recognition: Some(recognition_to_api(&updated, Some(&cred))?),
        };
        idem.complete(&txn, &resp).await?;
        txn.commit().await?;
        Ok(resp)
    }

    async fn matrix(
        &self,
        req: Request<v1::GetRecognitionMatrixRequest>,
    ) -> ApiResult<v1::GetRecognitionMatrixResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&Role::ALL)?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let q = errs.take(qualification_from_api(
            "qualification",
            req.qualification.as_ref(),
        ));
        let facts = errs.take(facts_from_api(req.facts.as_ref()));
        let as_of = errs.take(from_ts("as_of", req.as_of.as_ref()));
        errs.finish()?;
        let (Some(q), Some(facts), Some(as_of)) = (q, facts, as_of) else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        let at = as_of.unwrap_or_else(Utc::now);
        let db = &self.state.db;
        let book = &self.state.policies;
        let cities = book.cities(db).await?;
        let mut targets = Vec::with_capacity(cities.len());
        for c in &cities {
            targets.push((book.target(db, c).await?, book.in_force(db, c, at).await?));
        }
        let mut cells = Vec::with_capacity(cities.len() * cities.len());
        for source in &cities {
            let province = book.province(db, source).await?.unwrap_or_default();
            let mut subject =
                Subject::synthetic(q.category(), q.series(), q.level(), source, &province, at);
            subject.title = q.title().to_owned();
            for (t, policy) in &targets {
                let d = book.decide_with(policy.as_ref(), &subject, t, &facts, at)?;
                cells.push(v1::RecognitionMatrixCell {
                    source_city: source.clone(),
                    target_city: t.city.clone(),
                    outcome: outcome_to_api(d.decision.outcome).into(),
                    mapped_level: d.decision.mapped_level.map_or(0, i32::from),
                    deciding_rules: d.decision.deciding_rules,
                    policy_version: d.policy_version,
                });
            }
        }
        Ok(v1::GetRecognitionMatrixResponse { cities, cells })
    }
}

#[tonic::async_trait]
impl RecognitionService for Recognitions {
    async fn request_recognition(
        &self,
        req: Request<v1::RequestRecognitionRequest>,
    ) -> Result<Response<v1::RequestRecognitionResponse>, GrpcStatus> {
        Ok(Response::new(self.request(req).await?))
    }

    async fn evaluate_recognition(
        &self,
        req: Request<v1::EvaluateRecognitionRequest>,
    ) -> Result<Response<v1::EvaluateRecognitionResponse>, GrpcStatus> {
        Ok(Response::new(self.evaluate(req).await?))
    }

    async fn get_recognition(
        &self,
        req: Request<v1::GetRecognitionRequest>,
    ) -> Result<Response<v1::GetRecognitionResponse>, GrpcStatus> {
        Ok(Response::new(self.get(req).await?))
    }

    async fn list_recognitions(
        &self,
        req: Request<v1::ListRecognitionsRequest>,
    ) -> Result<Response<v1::ListRecognitionsResponse>, GrpcStatus> {
        Ok(Response::new(self.list(req).await?))
    }

    async fn update_recognition_facts(
        &self,
        req: Request<v1::UpdateRecognitionFactsRequest>,
    ) -> Result<Response<v1::UpdateRecognitionFactsResponse>, GrpcStatus> {
        Ok(Response::new(self.update_facts(req).await?))
    }

    async fn get_recognition_matrix(
        &self,
        req: Request<v1::GetRecognitionMatrixRequest>,
    ) -> Result<Response<v1::GetRecognitionMatrixResponse>, GrpcStatus> {
        Ok(Response::new(self.matrix(req).await?))
    }
}
