//! `PolicyService`: validating, publishing, reading and simulating city policies.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use corridor_domain::Violations;
use corridor_domain::caller::Role;
use corridor_domain::city::CityCode;
use corridor_domain::error::Collector;
use corridor_policy::{CompiledPolicy, Diagnostic, Outcome, Target};
use corridor_proto::v1;
use corridor_proto::v1::policy_service_server::PolicyService;
use sea_orm::TransactionTrait;
use tonic::{Request, Response, Status as GrpcStatus};

use super::convert::{from_ts, ts};
use super::recognition::{facts_from_api, outcome_to_api};
use super::{Idempotency, authenticate, paging, parse_request_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::credentials as cred_store;
use crate::store::entities::policy_version;
use crate::store::policies as policy_store;

/// Largest policy source accepted, bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Wall-clock budget of one simulation.
/// Kept under the server's request timeout (10 s by default), so that a long
/// simulation answers `truncated` rather than DEADLINE_EXCEEDED.
pub const SIMULATION_BUDGET: Duration = Duration::from_secs(8);
/// Credentials read and evaluated per batch in a simulation.
const SIMULATION_BATCH: u64 = 500;

/// The handler.
#[derive(Debug, Clone)]
pub struct Policies {
    state: AppState,
}

fn diag_to_api(d: &Diagnostic) -> v1::PolicyDiagnostic {
    v1::PolicyDiagnostic {
        line: d.line,
        column: d.column,
        rule_id: d.rule_id.clone().unwrap_or_default(),
        message: d.message.clone(),
    }
}

fn diags_to_violations(diags: &[Diagnostic]) -> Violations {
    Violations(
        diags
            .iter()
            .map(|d| corridor_domain::FieldViolation::new("source", d.to_string()))
            .collect(),
    )
}

fn version_to_api(
    row: &policy_version::Model,
    policy: Option<&CompiledPolicy>,
) -> v1::PolicyVersion {
    v1::PolicyVersion {
        city: row.city_code.clone(),
        version: row.version,
        source: row.source.clone(),
        effective_from: Some(ts(row.effective_from)),
        publish_time: Some(ts(row.published_at)),
        published_by: row.published_by.clone(),
        rule_ids: policy
            .map(|p| p.rules().iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default(),
    }
}

fn parse_source(raw: &str) -> Result<&str, Violations> {
    if raw.trim().is_empty() || raw.len() > MAX_POLICY_BYTES {
        return Err(Violations::one(
            "source",
            format!("a policy of 1 to {MAX_POLICY_BYTES} bytes is required"),
        ));
    }
    Ok(raw)
}

impl Policies {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Compiles a draft on the blocking pool: validation includes the rule
    /// conflict search, CPU work that must not stall the async workers.
    async fn compile(
        &self,
        source: &str,
        target: Target,
    ) -> ApiResult<Result<CompiledPolicy, Vec<Diagnostic>>> {
        let state = self.state.clone();
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || state.policies.engine().compile(&source, Some(&target)))
            .await
            .map_err(ApiError::internal)
    }

    async fn validate(
        &self,
        req: Request<v1::ValidatePolicyRequest>,
    ) -> ApiResult<v1::ValidatePolicyResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::PolicyAdmin, Role::CorridorAdmin])?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let city = errs.take(CityCode::parse("city", &req.city));
        let source = errs.take(parse_source(&req.source));
        errs.finish()?;
        let (Some(city), Some(source)) = (city, source) else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        let target = self
            .state
            .policies
            .target(&self.state.db, city.as_str())
            .await?;
        let engine_result = self.compile(source, target).await?;
        Ok(match engine_result {
            Ok(p) => v1::ValidatePolicyResponse {
                valid: true,
                diagnostics: Vec::new(),
                rule_ids: p.rules().iter().map(|r| r.id.clone()).collect(),
            },
            Err(d) => v1::ValidatePolicyResponse {
                valid: false,
                diagnostics: d.iter().map(diag_to_api).collect(),
                rule_ids: Vec::new(),
            },
        })
    }

    async fn publish(
        &self,
        req: Request<v1::PublishPolicyRequest>,
    ) -> ApiResult<v1::PublishPolicyResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::PolicyAdmin])?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let city = errs.take(CityCode::parse("city", &req.city));
        let source = errs.take(parse_source(&req.source));
        let effective_from = errs.take(from_ts("effective_from", req.effective_from.as_ref()));
        errs.take(parse_request_id(&req.request_id));
        errs.finish()?;
        let (Some(city), Some(source), Some(effective_from)) = (city, source, effective_from)
        else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        caller.require_in_city(Role::PolicyAdmin, &city)?;
        let now = Utc::now();
        // The past is not rewritten: which policy decided yesterday stays
        // what it was, so `as_of` evaluations reproduce recorded decisions.
        if let Some(t) = effective_from
            && t < now - chrono::Duration::seconds(60)
        {
            return Err(Violations::one("effective_from", "must not be in the past").into());
        }
        let target = self
            .state
            .policies
            .target(&self.state.db, city.as_str())
            .await?;
        let compiled = self
            .compile(source, target)
            .await?
            .map_err(|d| ApiError::Invalid(diags_to_violations(&d)))?;
        let idem = Idempotency::new(
            &caller,
            &req.request_id,
            "PublishPolicy",
            &v1::PublishPolicyRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let txn = self.state.db.begin().await?;
        if let Some(replay) = idem.claim(&txn, now).await? {
            return Ok(replay);
        }
        let version = policy_store::latest_version(&txn, city.as_str()).await? + 1;
        let row = policy_version::Model {
            city_code: city.to_string(),
            version,
            source: source.to_owned(),
            effective_from: effective_from.unwrap_or(now),
            published_at: now,
            published_by: caller.subject.clone(),
        };
        if !policy_store::insert(&txn, row.clone()).await? {
            return Err(ApiError::Aborted(format!(
                "version {version} of {city} was published concurrently; retry"
            )));
        }
        audit::append(
            &txn,
            NewEvent::by(
                &caller,
                "policy.published",
                "policy",
                format!("{city}/v{version}"),
                serde_json::json!({
                    "city": city.as_str(),
                    "version": version,
                    "effective_from": row.effective_from,
                    "rules": compiled.rules().iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                }),
                now,
            ),
        )
        .await?;
        let resp = v1::PublishPolicyResponse {
            policy: Some(version_to_api(&row, Some(&compiled))),
        };
        idem.complete(&txn, &resp).await?;
        txn.commit().await?;
        tracing::info!(city = %city, version, "policy published");
        Ok(resp)
    }

    async fn get(&self, req: Request<v1::GetPolicyRequest>) -> ApiResult<v1::GetPolicyResponse> {
        let caller = authenticate(&self.state, &req)?;
        // Policies are public rules: any caller with a known role may read them.
        caller.require_any(&Role::ALL)?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let city = errs.take(CityCode::parse("city", &req.city));
        let as_of = errs.take(from_ts("as_of", req.as_of.as_ref()));
        if req.version < 0 {
            errs.push("version", "must not be negative");
        }
        errs.finish()?;
        let (Some(city), Some(as_of)) = (city, as_of) else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        let db = &self.state.db;
        let row = if req.version > 0 {
            policy_store::get(db, city.as_str(), req.version)
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound(format!("{city} has no policy version {}", req.version))
                })?
        } else {
            let at = as_of.unwrap_or_else(Utc::now);
            policy_store::in_force(db, city.as_str(), at)
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound(format!("{city} has no policy in force at {at}"))
                })?
        };
        let compiled = self.state.policies.compiled(&row)?;
        Ok(v1::GetPolicyResponse {
            policy: Some(version_to_api(&row, Some(&compiled))),
        })
    }

    async fn list(
        &self,
        req: Request<v1::ListPolicyVersionsRequest>,
    ) -> ApiResult<v1::ListPolicyVersionsResponse> {
        let caller = authenticate(&self.state, &req)?;
        // Policies are public rules: any caller with a known role may read them.
        caller.require_any(&Role::ALL)?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let city = errs.take(CityCode::parse("city", &req.city));
        let limit = paging::page_size(&mut errs, req.page_size, 20, 100);
        errs.finish()?;
        let Some(city) = city else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        let fingerprint = paging::fingerprint(&city);
        let before = paging::decode::<i32>(&req.page_token, &fingerprint)?;
        let rows = policy_store::list(&self.state.db, city.as_str(), before, limit + 1).await?;
        let (rows, next_page_token) = paging::page(rows, limit, &fingerprint, |r| r.version)?;
        let mut versions = Vec::with_capacity(rows.len());
        for r in &rows {
            versions.push(version_to_api(
                r,
                Some(self.state.policies.compiled(r)?.as_ref()),
            ));
        }
        Ok(v1::ListPolicyVersionsResponse {
            versions,
            next_page_token,
        })
    }

    async fn simulate(
        &self,
        req: Request<v1::SimulatePolicyRequest>,
    ) -> ApiResult<v1::SimulatePolicyResponse> {
        let caller = authenticate(&self.state, &req)?;
        caller.require_any(&[Role::PolicyAdmin])?;
        let req = req.into_inner();
        let mut errs = Collector::default();
        let city = errs.take(CityCode::parse("city", &req.city));
        let source = errs.take(parse_source(&req.source));
        let facts = errs.take(facts_from_api(req.facts.as_ref()));
        let max_credentials = match req.max_credentials {
            0 => 100_000,
            n if (1..=1_000_000).contains(&n) => i64::from(n),
            _ => {
                errs.push("max_credentials", "must be 0 to 1,000,000");
                0
            }
        };
        let max_examples = match req.max_examples {
            0 => 10,
            n if (1..=100).contains(&n) => usize::try_from(n).unwrap_or(10),
            _ => {
                errs.push("max_examples", "must be 0 to 100");
                0
            }
        };
        errs.finish()?;
        let (Some(city), Some(source), Some(facts)) = (city, source, facts) else {
            return Err(ApiError::internal("parsed fields missing after validation"));
        };
        caller.require_in_city(Role::PolicyAdmin, &city)?;
        let book = &self.state.policies;
        let db = &self.state.db;
        let target = book.target(db, city.as_str()).await?;
        let draft = self
            .compile(source, target.clone())
            .await?
            .map_err(|d| ApiError::Invalid(diags_to_violations(&d)))?;
        let draft = (0, std::sync::Arc::new(draft));
        let now = Utc::now();
        let baseline = book.in_force(db, city.as_str(), now).await?;
        let baseline_version = baseline.as_ref().map_or(0, |(v, _)| *v);

        let started = Instant::now();
        let mut evaluated: i64 = 0;
        let mut changed: i64 = 0;
        let mut transitions: BTreeMap<(Outcome, Outcome), i64> = BTreeMap::new();
        let mut examples = Vec::new();
        let mut after = None;
        let mut truncated = false;
        // Bounded memory: one batch of credentials at a time, keyset by id.
        'outer: loop {
            let batch =
                cred_store::page_not_from(db, city.as_str(), after, SIMULATION_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            for row in &batch {
                if evaluated >= max_credentials || started.elapsed() > SIMULATION_BUDGET {
                    truncated = true;
                    break 'outer;
                }
                evaluated += 1;
                let subject = book.subject(db, row).await?;
                let old = book.decide_with(baseline.as_ref(), &subject, &target, &facts, now)?;
                let new = book.decide_with(Some(&draft), &subject, &target, &facts, now)?;
                let (o, n) = (&old.decision, &new.decision);
                if o.outcome == n.outcome && o.mapped_level == n.mapped_level {
                    continue;
                }
                changed += 1;
                *transitions.entry((o.outcome, n.outcome)).or_default() += 1;
                if examples.len() < max_examples {
                    examples.push(v1::SimulationExample {
                        credential_id: row.id.to_string(),
                        source_city: row.issuer_city.clone(),
                        qualification: Some(super::convert::row_qualification(row)?),
                        from: outcome_to_api(o.outcome).into(),
                        from_level: o.mapped_level.map_or(0, i32::from),
                        to: outcome_to_api(n.outcome).into(),
                        to_level: n.mapped_level.map_or(0, i32::from),
                        from_rules: o.deciding_rules.clone(),
                        to_rules: n.deciding_rules.clone(),
                    });
                }
            }
            if (batch.len() as u64) < SIMULATION_BATCH {
                break;
            }
            // Let other requests run between batches.
            tokio::task::yield_now().await;
        }
        Ok(v1::SimulatePolicyResponse {
            baseline_version,
            credentials_evaluated: evaluated,
            decisions_changed: changed,
            transitions: transitions
                .into_iter()
                .map(|((f, t), count)| v1::OutcomeTransition {
                    from: outcome_to_api(f).into(),
                    to: outcome_to_api(t).into(),
                    count,
                })
                .collect(),
            examples,
            truncated,
        })
    }
}

#[tonic::async_trait]
impl PolicyService for Policies {
    async fn validate_policy(
        &self,
        req: Request<v1::ValidatePolicyRequest>,
    ) -> Result<Response<v1::ValidatePolicyResponse>, GrpcStatus> {
        Ok(Response::new(self.validate(req).await?))
    }

    async fn publish_policy(
        &self,
        req: Request<v1::PublishPolicyRequest>,
    ) -> Result<Response<v1::PublishPolicyResponse>, GrpcStatus> {
        Ok(Response::new(self.publish(req).await?))
    }

    async fn get_policy(
        &self,
        req: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::GetPolicyResponse>, GrpcStatus> {
        Ok(Response::new(self.get(req).await?))
    }

    async fn list_policy_versions(
        &self,
        req: Request<v1::ListPolicyVersionsRequest>,
    ) -> Result<Response<v1::ListPolicyVersionsResponse>, GrpcStatus> {
        Ok(Response::new(self.list(req).await?))
    }

    async fn simulate_policy(
        &self,
        req: Request<v1::SimulatePolicyRequest>,
    ) -> Result<Response<v1::SimulatePolicyResponse>, GrpcStatus> {
        Ok(Response::new(self.simulate(req).await?))
    }
}
