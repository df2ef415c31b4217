//! `PolicyService`: validating, publishing, reading and simulating city policies.

use corridor_domain::authz::Rpc;
use corridor_domain::city::CityCode;
use corridor_domain::error::AllOk;
use corridor_domain::{RequestId, Violations};
use corridor_proto::v1;
use corridor_proto::v1::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use super::authenticate;
use super::convert::{
    diagnostic_to_api, facts_from_api, from_ts, outcome_to_api, policy_to_api, qualification_to_api,
};
use crate::app::policy::{
    GetPolicy, ListPolicyVersions, PublishPolicy, SimulatePolicy, parse_source, version_page_size,
};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The handler.
#[derive(Debug, Clone)]
pub struct Policies {
    state: AppState,
}

impl Policies {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn publish_command(r: &v1::PublishPolicyRequest) -> AppResult<PublishPolicy> {
    let (request_id, city, source, effective_from) = (
        RequestId::parse(&r.request_id),
        CityCode::parse("city", &r.city),
        parse_source(&r.source),
        from_ts("effective_from", r.effective_from.as_ref()),
    )
        .all_ok()?;
    Ok(PublishPolicy {
        request_id,
        city,
        source,
        effective_from,
    })
}

fn get_query(r: &v1::GetPolicyRequest) -> AppResult<GetPolicy> {
    let version = match r.version {
        0 => Ok(None),
        n if n > 0 => Ok(Some(n)),
        _ => Err(Violations::one("version", "must not be negative")),
    };
    let (city, as_of, version) = (
        CityCode::parse("city", &r.city),
        from_ts("as_of", r.as_of.as_ref()),
        version,
    )
        .all_ok()?;
    Ok(GetPolicy {
        city,
        version,
        as_of,
    })
}

fn simulate_command(r: &v1::SimulatePolicyRequest) -> AppResult<SimulatePolicy> {
    let max_credentials = match r.max_credentials {
        0 => Ok(100_000),
        n if (1..=1_000_000).contains(&n) => Ok(i64::from(n)),
        _ => Err(Violations::one("max_credentials", "must be 0 to 1,000,000")),
    };
    let max_examples = match r.max_examples {
        0 => Ok(10),
        n if (1..=100).contains(&n) => Ok(usize::try_from(n).unwrap_or(10)),
        _ => Err(Violations::one("max_examples", "must be 0 to 100")),
    };
    let (city, source, facts, max_credentials, max_examples) = (
        CityCode::parse("city", &r.city),
        parse_source(&r.source),
        facts_from_api(r.facts.as_ref()),
        max_credentials,
        max_examples,
    )
        .all_ok()?;
    Ok(SimulatePolicy {
        city,
        source,
        facts,
        max_credentials,
        max_examples,
    })
}

#[tonic::async_trait]
impl PolicyService for Policies {
    async fn validate_policy(
        &self,
        req: Request<v1::ValidatePolicyRequest>,
    ) -> Result<Response<v1::ValidatePolicyResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ValidatePolicy)?;
        let r = req.get_ref();
        let (city, source) = (CityCode::parse("city", &r.city), parse_source(&r.source))
            .all_ok()
            .map_err(AppError::from)?;
        let checked = self.state.validate_policy(&caller, &city, &source).await?;
        Ok(Response::new(match checked {
            Ok(rule_ids) => v1::ValidatePolicyResponse {
                valid: true,
                diagnostics: Vec::new(),
                rule_ids,
            },
            Err(d) => v1::ValidatePolicyResponse {
                valid: false,
                diagnostics: d.iter().map(diagnostic_to_api).collect(),
                rule_ids: Vec::new(),
            },
        }))
    }

    async fn publish_policy(
        &self,
        req: Request<v1::PublishPolicyRequest>,
    ) -> Result<Response<v1::PublishPolicyResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::PublishPolicy)?;
        let cmd = publish_command(req.get_ref())?;
        let p = self.state.publish_policy(&caller, cmd).await?;
        Ok(Response::new(v1::PublishPolicyResponse {
            policy: Some(policy_to_api(&p)),
        }))
    }

    async fn get_policy(
        &self,
        req: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::GetPolicyResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ReadPolicy)?;
        let q = get_query(req.get_ref())?;
        let p = self.state.get_policy(&caller, q).await?;
        Ok(Response::new(v1::GetPolicyResponse {
            policy: Some(policy_to_api(&p)),
        }))
    }

    async fn list_policy_versions(
        &self,
        req: Request<v1::ListPolicyVersionsRequest>,
    ) -> Result<Response<v1::ListPolicyVersionsResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ReadPolicy)?;
        let r = req.get_ref();
        let (city, page_size) = (
            CityCode::parse("city", &r.city),
            version_page_size(r.page_size),
        )
            .all_ok()
            .map_err(AppError::from)?;
        let page = self
            .state
            .list_policy_versions(
                &caller,
                ListPolicyVersions {
                    city,
                    page_size,
                    page_token: r.page_token.clone(),
                },
            )
            .await?;
        Ok(Response::new(v1::ListPolicyVersionsResponse {
            versions: page.items.iter().map(policy_to_api).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn simulate_policy(
        &self,
        req: Request<v1::SimulatePolicyRequest>,
    ) -> Result<Response<v1::SimulatePolicyResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::SimulatePolicy)?;
        let cmd = simulate_command(req.get_ref())?;
        let s = self.state.simulate_policy(&caller, cmd).await?;
        Ok(Response::new(v1::SimulatePolicyResponse {
            baseline_version: s.baseline_version,
            credentials_evaluated: s.evaluated,
            decisions_changed: s.changed,
            transitions: s
                .transitions
                .into_iter()
                .map(|((f, t), count)| v1::OutcomeTransition {
                    from: outcome_to_api(f).into(),
                    to: outcome_to_api(t).into(),
                    count,
                })
                .collect(),
            examples: s
                .examples
                .iter()
                .map(|e| v1::SimulationExample {
                    credential_id: e.credential_id.to_string(),
                    source_city: e.source_city.to_string(),
                    qualification: Some(qualification_to_api(&e.qualification)),
                    from: outcome_to_api(e.from.0).into(),
                    from_level: e.from.1.map_or(0, i32::from),
                    to: outcome_to_api(e.to.0).into(),
                    to_level: e.to.1.map_or(0, i32::from),
                    from_rules: e.from_rules.clone(),
                    to_rules: e.to_rules.clone(),
                })
                .collect(),
            truncated: s.truncated,
            decisions_with_recorded_facts: s.with_recorded_facts,
            decisions_missing_facts: s.missing_facts,
        }))
    }
}
