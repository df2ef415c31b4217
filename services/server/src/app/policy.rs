//! Validating, publishing, reading and simulating a city's recognition
//! policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use corridor_domain::authz;
use corridor_domain::caller::Caller;
use corridor_domain::city::CityCode;
use corridor_domain::qualification::Qualification;
use corridor_domain::{RequestId, Violations};
use corridor_policy::{CompiledPolicy, Diagnostic, Facts, Outcome, Target};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Done, Idempotent};
use crate::error::{AppError, AppResult};
use crate::paging::{Page, page_size};
use crate::state::AppState;
use crate::store::audit::NewEvent;
use crate::store::credentials as cred_store;
use crate::store::policies::{self as policy_store, PolicyVersion};
use crate::store::recognitions as rec_store;

/// Largest policy source accepted, bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Wall-clock budget of one simulation. Kept under the server's request
/// timeout (10 s by default), so that a long simulation answers `truncated`
/// rather than DEADLINE_EXCEEDED.
pub const SIMULATION_BUDGET: Duration = Duration::from_secs(8);
/// Credentials read and evaluated per batch in a simulation.
const SIMULATION_BATCH: u64 = 500;
/// How far in the past an `effective_from` may be (clock skew).
const PAST_LEEWAY_SECONDS: i64 = 60;

/// A policy version with its rule ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    /// The version.
    pub version: PolicyVersion,
    /// Its rules' ids, in source order.
    pub rule_ids: Vec<String>,
}

/// PublishPolicy.
#[derive(Debug)]
pub struct PublishPolicy {
    /// For idempotent retries.
    pub request_id: RequestId,
    /// The city.
    pub city: CityCode,
    /// Cedar source.
    pub source: String,
    /// From when it decides (default: now); not in the past.
    pub effective_from: Option<DateTime<Utc>>,
}

/// GetPolicy.
#[derive(Debug)]
pub struct GetPolicy {
    /// The city.
    pub city: CityCode,
    /// A version, or else the one in force at `as_of`.
    pub version: Option<i32>,
    /// Default: now.
    pub as_of: Option<DateTime<Utc>>,
}

/// ListPolicyVersions.
#[derive(Debug)]
pub struct ListPolicyVersions {
    /// The city.
    pub city: CityCode,
    /// Page size (parsed).
    pub page_size: u64,
    /// Opaque token of the page to read.
    pub page_token: String,
}

/// Parses a requested page size for policy version listings.
pub fn version_page_size(raw: i32) -> Result<u64, Violations> {
    page_size(raw, 20, 100)
}

/// SimulatePolicy.
#[derive(Debug)]
pub struct SimulatePolicy {
    /// The city.
    pub city: CityCode,
    /// The draft.
    pub source: String,
    /// Facts assumed for credentials with no recorded recognition into the city.
    pub facts: Facts,
    /// Stop after this many credentials.
    pub max_credentials: i64,
    /// Keep this many examples of changed decisions.
    pub max_examples: usize,
}

/// A decision the draft would change.
#[derive(Debug, Clone)]
pub struct SimulationExample {
    /// The credential.
    pub credential_id: Uuid,
    /// Its issuing city.
    pub source_city: CityCode,
    /// Its qualification.
    pub qualification: Qualification,
    /// Outcome and level now.
    pub from: (Outcome, Option<u8>),
    /// Outcome and level under the draft.
    pub to: (Outcome, Option<u8>),
    /// The deciding rules now.
    pub from_rules: Vec<String>,
    /// The deciding rules under the draft.
    pub to_rules: Vec<String>,
}

/// What a draft would change.
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    /// The version in force compared with (0: none).
    pub baseline_version: i32,
    /// Credentials evaluated.
    pub evaluated: i64,
    /// Decisions (outcome or level) that would change.
    pub changed: i64,
    /// Changes by (from, to) outcome.
    pub transitions: BTreeMap<(Outcome, Outcome), i64>,
    /// Up to `max_examples` changed decisions.
    pub examples: Vec<SimulationExample>,
    /// The run stopped early (`max_credentials` or the time budget).
    pub truncated: bool,
    /// Decisions made with the facts recorded in the credential's latest
    /// recognition into the city (the others used the request's facts).
    pub with_recorded_facts: i64,
    /// Decisions (now or under the draft) that depended on a fact that was
    /// not supplied: a CONDITIONAL waiting for it. A threshold change there
    /// shows as no change; these are the decisions to look at.
    pub missing_facts: i64,
}

/// Checks a policy source's size.
pub fn parse_source(raw: &str) -> Result<String, Violations> {
    if raw.trim().is_empty() || raw.len() > MAX_POLICY_BYTES {
        return Err(Violations::one(
            "source",
            format!("a policy of 1 to {MAX_POLICY_BYTES} bytes is required"),
        ));
    }
    Ok(raw.to_owned())
}

fn diagnostics_to_violations(diags: &[Diagnostic]) -> Violations {
    Violations(
        diags
            .iter()
            .map(|d| corridor_domain::FieldViolation::new("source", d.to_string()))
            .collect(),
    )
}

impl AppState {
    /// Compiles a draft on the blocking pool: validation includes the rule
    /// conflict search, CPU work that must not stall the async workers.
    async fn compile(
        &self,
        source: &str,
        target: Target,
    ) -> AppResult<Result<CompiledPolicy, Vec<Diagnostic>>> {
        let state = self.clone();
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || state.policies.engine().compile(&source, Some(&target)))
            .await
            .map_err(AppError::internal)
    }

    /// Validates a draft for `city`: its rule ids, or located diagnostics.
    pub async fn validate_policy(
        &self,
        caller: &Caller,
        city: &CityCode,
        source: &str,
    ) -> AppResult<Result<Vec<String>, Vec<Diagnostic>>> {
        authz::validate_policy(caller)?;
        let target = self.policies.target(&self.db, city, "city").await?;
        Ok(self
            .compile(source, target)
            .await?
            .map(|p| p.rules().iter().map(|r| r.id.clone()).collect()))
    }

    /// Publishes a new version of the caller's city's policy.
    pub async fn publish_policy(
        &self,
        caller: &Caller,
        cmd: PublishPolicy,
    ) -> AppResult<PolicyView> {
        authz::publish_policy(caller, &cmd.city)?;
        let city = &cmd.city;
        let key = Idempotent {
            operation: "PublishPolicy",
            request_id: &cmd.request_id,
            fingerprint: json!({
                "city": city,
                "source": cmd.source,
                "effective_from": cmd.effective_from,
            }),
        };
        // Compiling (the conflict search included) takes time and does not
        // depend on it: done before the transaction, so no pooled connection
        // waits on it. The past-date check does depend on time, so it comes
        // after the replay lookup (in `work`): a retry whose near-future date
        // has since passed gets its stored answer, not INVALID_ARGUMENT.
        let target = self.policies.target(&self.db, city, "city").await?;
        let compiled = self
            .compile(&cmd.source, target)
            .await?
            .map_err(|d| AppError::Invalid(diagnostics_to_violations(&d)))?;
        let rule_ids: Vec<String> = compiled.rules().iter().map(|r| r.id.clone()).collect();
        let mut fence = None;
        let view = self
            .mutate(
                caller,
                key,
                async |_| Ok(()),
                async |txn, (), now| {
                    // The past is not rewritten: which policy decided yesterday
                    // stays what it was, so `as_of` evaluations reproduce decisions.
                    if let Some(t) = cmd.effective_from
                        && t < now - chrono::Duration::seconds(PAST_LEEWAY_SECONDS)
                    {
                        return Err(
                            Violations::one("effective_from", "must not be in the past").into()
                        );
                    }
                    let version = policy_store::latest_version(txn, city).await? + 1;
                    let v = PolicyVersion {
                        city: city.clone(),
                        version,
                        source: cmd.source.clone(),
                        effective_from: cmd.effective_from.unwrap_or(now),
                        published_at: now,
                        published_by: caller.subject.clone(),
                    };
                    if !policy_store::insert(txn, &v).await? {
                        return Err(AppError::Aborted(format!(
                            "version {version} of {city} was published concurrently; retry"
                        )));
                    }
                    // Every replica drops the city's schedule when this
                    // commits; the answer waits for them.
                    let f = self
                        .status_cache
                        .fence_for(crate::status_cache::Subject::Policy(city.to_string()));
                    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
                        crate::status_cache::notify_in(txn, &f.notice).await?;
                    }
                    fence = Some(f);
                    let event = NewEvent::by(
                        caller,
                        "policy.published",
                        "policy",
                        format!("{city}/v{version}"),
                        json!({
                            "city": city,
                            "version": version,
                            "effective_from": v.effective_from,
                            "rules": rule_ids,
                        }),
                        now,
                    )
                    .concerning(city, None);
                    Ok(Done {
                        result: PolicyView {
                            version: v,
                            rule_ids: rule_ids.clone(),
                        },
                        events: vec![event],
                    })
                },
            )
            .await?;
        match fence {
            Some(f) => f.wait().await,
            None => {
                self.status_cache
                    .wait_out_lease_for(crate::status_cache::Subject::Policy(city.to_string()))
                    .await
            }
        }
        tracing::info!(city = %city, version = view.version.version, "policy published");
        Ok(view)
    }

    /// A version by number, or the one in force at `as_of`.
    pub async fn get_policy(&self, caller: &Caller, q: GetPolicy) -> AppResult<PolicyView> {
        authz::read_policy(caller)?;
        self.known_city(&q.city, "city").await?;
        let v = match q.version {
            Some(n) => policy_store::get(&self.db, &q.city, n)
                .await?
                .ok_or_else(|| {
                    AppError::NotFound(format!("{} has no policy version {n}", q.city))
                })?,
            None => {
                let at = q.as_of.unwrap_or_else(|| self.clock.now());
                policy_store::in_force(&self.db, &q.city, at)
                    .await?
                    .ok_or_else(|| {
                        AppError::NotFound(format!("{} has no policy in force at {at}", q.city))
                    })?
            }
        };
        self.policy_view(v)
    }

    /// A city's versions, newest first.
    pub async fn list_policy_versions(
        &self,
        caller: &Caller,
        q: ListPolicyVersions,
    ) -> AppResult<Page<PolicyView>> {
        authz::read_policy(caller)?;
        self.known_city(&q.city, "city").await?;
        let before = self.page_tokens.decode::<i32>(&q.page_token, &q.city)?;
        let rows = policy_store::list(&self.db, &q.city, before, q.page_size + 1).await?;
        let page = self
            .page_tokens
            .page(rows, q.page_size, &q.city, |v| v.version)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|v| self.policy_view(v))
                .collect::<AppResult<_>>()?,
            next_page_token: page.next_page_token,
        })
    }

    fn policy_view(&self, v: PolicyVersion) -> AppResult<PolicyView> {
        let rule_ids = self
            .policies
            .compiled(&v)?
            .rules()
            .iter()
            .map(|r| r.id.clone())
            .collect();
        Ok(PolicyView {
            version: v,
            rule_ids,
        })
    }

    /// What a draft would change for the credentials of other cities,
    /// compared with the policy in force. Each credential is decided with
    /// the facts of its latest recognition into the city where there is
    /// one, else with the request's facts.
    pub async fn simulate_policy(
        &self,
        caller: &Caller,
        cmd: SimulatePolicy,
    ) -> AppResult<Simulation> {
        authz::simulate_policy(caller, &cmd.city)?;
        let (db, book) = (&self.db, &self.policies);
        let city = &cmd.city;
        let target = book.target(db, city, "city").await?;
        let draft = self
            .compile(&cmd.source, target.clone())
            .await?
            .map_err(|d| AppError::Invalid(diagnostics_to_violations(&d)))?;
        let draft = (0, Arc::new(draft));
        let now = self.clock.now();
        let baseline = book.in_force(db, city, now).await?;
        let mut sim = Simulation {
            baseline_version: baseline.as_ref().map_or(0, |(v, _)| *v),
            ..Simulation::default()
        };
        let started = Instant::now();
        let mut after = None;
        // Bounded memory: one batch of credentials at a time, keyset by id.
        'outer: loop {
            let batch = cred_store::page_not_from(db, city, after, SIMULATION_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            let ids: Vec<Uuid> = batch.iter().map(|c| c.id).collect();
            let recorded = rec_store::latest_facts_for(db, &ids, city).await?;
            for c in &batch {
                if sim.evaluated >= cmd.max_credentials || started.elapsed() > SIMULATION_BUDGET {
                    sim.truncated = true;
                    break 'outer;
                }
                sim.evaluated += 1;
                let facts = match recorded.get(&c.id) {
                    Some(f) => {
                        sim.with_recorded_facts += 1;
                        f
                    }
                    None => &cmd.facts,
                };
                let subject = book.subject(db, c).await?;
                let old = book.decide_with(baseline.as_ref(), &subject, &target, facts, now)?;
                let new = book.decide_with(Some(&draft), &subject, &target, facts, now)?;
                let (o, n) = (&old.decision, &new.decision);
                if o.depends_on_missing_facts() || n.depends_on_missing_facts() {
                    sim.missing_facts += 1;
                }
                if o.outcome == n.outcome && o.mapped_level == n.mapped_level {
                    continue;
                }
                sim.changed += 1;
                *sim.transitions.entry((o.outcome, n.outcome)).or_default() += 1;
                if sim.examples.len() < cmd.max_examples {
                    sim.examples.push(SimulationExample {
                        credential_id: c.id,
                        source_city: c.issuer_city.clone(),
                        qualification: c.qualification.clone(),
                        from: (o.outcome, o.mapped_level),
                        to: (n.outcome, n.mapped_level),
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
        Ok(sim)
    }
}
