//! Deciding a recognition request.

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Context, Decision as CedarDecision, Effect, Entities, Entity, EntityId, EntityUid, PolicyId,
    Request, RestrictedExpression,
};
use chrono::{DateTime, SecondsFormat, Utc};
use corridor_domain::credential::{Status, ValidityWindow, WindowPosition};
use corridor_domain::qualification::Category;
use serde::{Deserialize, Serialize};

use crate::Outcome;
use crate::compile::{CompiledPolicy, Engine, Rule};

/// The source credential as a rule sees it, plus what the guard rails need.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Credential id.
    pub credential_id: String,
    /// Category.
    pub category: Category,
    /// Series.
    pub series: String,
    /// Level.
    pub level: u8,
    /// Title.
    pub title: String,
    /// Issuing city.
    pub issuer_city: String,
    /// Province of the issuing city.
    pub issuer_province: String,
    /// Issuance time.
    pub issued_at: DateTime<Utc>,
    /// Validity window.
    pub window: ValidityWindow,
    /// Live status.
    pub status: Status,
}

impl Subject {
    /// An active, valid synthetic credential (conflict search, matrices).
    pub fn synthetic(
        category: Category,
        series: &str,
        level: u8,
        issuer_city: &str,
        issuer_province: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            credential_id: format!("synthetic-{issuer_city}"),
            category,
            series: series.to_owned(),
            level,
            title: String::new(),
            issuer_city: issuer_city.to_owned(),
            issuer_province: issuer_province.to_owned(),
            issued_at: now,
            window: ValidityWindow {
                from: now,
                until: None,
            },
            status: Status::Active,
        }
    }
}

/// The receiving city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// City code.
    pub city: String,
    /// Province.
    pub province: String,
}

/// Facts about the holder's situation in the target city (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Months of local social insurance.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub local_social_insurance_months: Option<i64>,
    /// The employer is registered locally.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub local_employer_registered: Option<bool>,
    /// Years of experience.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub years_of_experience: Option<i64>,
    /// Holds a local licence.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub holds_local_license: Option<bool>,
    /// Is a civil servant.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub civil_servant: Option<bool>,
}

/// A guard rail no policy can override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardRail {
    /// The credential is revoked.
    Revoked,
    /// The credential is suspended.
    Suspended,
    /// The decision time is before the credential's validity.
    NotYetValid,
    /// The decision time is at or after the end of validity.
    Expired,
    /// A city does not recognize its own credentials.
    SameCity,
}

impl GuardRail {
    /// Rule id used in explanations.
    pub fn rule_id(self) -> &'static str {
        match self {
            Self::Revoked => "guard:revoked",
            Self::Suspended => "guard:suspended",
            Self::NotYetValid => "guard:not-yet-valid",
            Self::Expired => "guard:expired",
            Self::SameCity => "guard:same-city",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Revoked => "the credential is revoked",
            Self::Suspended => "the credential is suspended",
            Self::NotYetValid => "the credential is not yet valid at the decision time",
            Self::Expired => "the credential has expired at the decision time",
            Self::SameCity => "a city does not recognize its own credentials",
        }
    }
}

/// A decision and its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// The mapped local level (RECOGNIZED, CONDITIONAL, DOWNGRADED).
    pub mapped_level: Option<u8>,
    /// The rule(s) that decided: one rule id, or a guard rail.
    pub deciding_rules: Vec<String>,
    /// Every rule that matched, deciding or not, in precedence order.
    pub matched_rules: Vec<String>,
    /// For CONDITIONAL: the conditions still unmet.
    pub unmet_conditions: Vec<String>,
    /// Conditions of the deciding rule that were met (a CONDITIONAL rule that recognized).
    pub met_conditions: Vec<String>,
    /// Human-readable reason.
    pub reason: String,
    /// The guard rail that decided, if any.
    pub guard_rail: Option<GuardRail>,
    /// Rules that could not be evaluated (e.g. a fact used without `has`).
    pub evaluation_errors: Vec<String>,
    /// Rules that did not apply, each with the first of its conditions that
    /// does not hold (empty when not asked for, see [`Engine::explain_not_applied`]).
    pub rules_not_applied: Vec<(String, String)>,
}

impl Decision {
    /// REJECTED for `reason`, with nothing matched; the base of every decision.
    fn rejected(reason: String) -> Self {
        Self {
            outcome: Outcome::Rejected,
            mapped_level: None,
            deciding_rules: Vec::new(),
            matched_rules: Vec::new(),
            unmet_conditions: Vec::new(),
            met_conditions: Vec::new(),
            reason,
            guard_rail: None,
            evaluation_errors: Vec::new(),
            rules_not_applied: Vec::new(),
        }
    }

    fn guard(g: GuardRail) -> Self {
        Self {
            deciding_rules: vec![g.rule_id().to_owned()],
            guard_rail: Some(g),
            ..Self::rejected(g.reason().to_owned())
        }
    }
}

fn datetime(t: DateTime<Utc>) -> RestrictedExpression {
    RestrictedExpression::new_datetime(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The guard rail that stops `subject` from being recognized in `target` at `at`.
fn guard_rail(subject: &Subject, target: &Target, at: DateTime<Utc>) -> Option<GuardRail> {
    if subject.issuer_city == target.city {
        return Some(GuardRail::SameCity);
    }
    match subject.status {
        Status::Revoked => return Some(GuardRail::Revoked),
        Status::Suspended => return Some(GuardRail::Suspended),
        Status::Active => {}
    }
    match subject.window.position(at) {
        WindowPosition::NotYetValid => Some(GuardRail::NotYetValid),
        WindowPosition::Expired => Some(GuardRail::Expired),
        WindowPosition::Within => None,
    }
}

/// Matching forbids, matching permits (rule indexes, precedence order) and
/// evaluation errors.
type Matched = (Vec<usize>, Vec<usize>, Vec<String>);

impl Engine {
    fn request(
        &self,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<(Request, Entities), String> {
        // Built from typed values with Cedar's constructors: parsing entity
        // uids or JSON here would cost several times the evaluation itself
        // (see benches/decide.rs).
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let mut attrs: HashMap<String, RestrictedExpression> = HashMap::from([
            ("category".into(), s(subject.category.as_str())),
            ("series".into(), s(&subject.series)),
            (
                "level".into(),
                RestrictedExpression::new_long(i64::from(subject.level)),
            ),
            ("title".into(), s(&subject.title)),
            ("issuer_city".into(), s(&subject.issuer_city)),
            ("issuer_province".into(), s(&subject.issuer_province)),
            ("issue_date".into(), datetime(subject.issued_at)),
            ("valid_from".into(), datetime(subject.window.from)),
            (
                "expires".into(),
                RestrictedExpression::new_bool(subject.window.until.is_some()),
            ),
        ]);
        if let Some(until) = subject.window.until {
            attrs.insert("valid_until".into(), datetime(until));
        }
        let principal =
            EntityUid::from_type_name_and_id(self.city_type.clone(), EntityId::new(&target.city));
        let resource = EntityUid::from_type_name_and_id(
            self.credential_type.clone(),
            EntityId::new(&subject.credential_id),
        );
        let city = Entity::new(
            principal.clone(),
            HashMap::from([
                ("code".to_owned(), s(&target.city)),
                ("province".to_owned(), s(&target.province)),
            ]),
            HashSet::new(),
        )
        .map_err(|e| e.to_string())?;
        let credential =
            Entity::new(resource.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?;
        let entities =
            Entities::from_entities([city, credential], None).map_err(|e| e.to_string())?;
        let mut fact_pairs: Vec<(String, RestrictedExpression)> = Vec::new();
        if let Some(v) = facts.local_social_insurance_months {
            fact_pairs.push((
                "local_social_insurance_months".into(),
                RestrictedExpression::new_long(v),
            ));
        }
        if let Some(v) = facts.local_employer_registered {
            fact_pairs.push((
                "local_employer_registered".into(),
                RestrictedExpression::new_bool(v),
            ));
        }
        if let Some(v) = facts.years_of_experience {
            fact_pairs.push((
                "years_of_experience".into(),
                RestrictedExpression::new_long(v),
            ));
        }
        if let Some(v) = facts.holds_local_license {
            fact_pairs.push((
                "holds_local_license".into(),
                RestrictedExpression::new_bool(v),
            ));
        }
        if let Some(v) = facts.civil_servant {
            fact_pairs.push(("civil_servant".into(), RestrictedExpression::new_bool(v)));
        }
        let context = Context::from_pairs([
            (
                "facts".to_owned(),
                RestrictedExpression::new_record(fact_pairs).map_err(|e| e.to_string())?,
            ),
            ("decision_time".to_owned(), datetime(at)),
        ])
        .map_err(|e| e.to_string())?;
        let request = Request::new(principal, self.action.clone(), resource, context, None)
            .map_err(|e| e.to_string())?;
        Ok((request, entities))
    }

    /// The matching forbid and permit rules (indexes), each in precedence
    /// order, and the evaluation errors.
    pub(crate) fn matching(
        &self,
        policy: &CompiledPolicy,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<Matched, String> {
        let (request, entities) = self.request(subject, target, facts, at)?;
        let response = self
            .authorizer
            .is_authorized(&request, &policy.set, &entities);
        let rule_of = |id: &PolicyId| policy.by_policy.get(id).copied();
        let mut matched: Vec<usize> = response
            .diagnostics()
            .reason()
            .filter_map(rule_of)
            .collect();
        // When Cedar denies because a forbid matched, `reason` holds only the
        // forbids; permits that also matched are worth explaining, so ask again
        // without the forbids only if there were any.
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        if response.decision() == CedarDecision::Deny && !matched.is_empty() {
            let r2 = self
                .authorizer
                .is_authorized(&request, &policy.permits, &entities);
            matched.extend(r2.diagnostics().reason().filter_map(rule_of));
        }
        let order = |rules: &[Rule], v: &mut Vec<usize>| {
            v.sort_by(|&a, &b| {
                rules[b]
                    .priority
                    .cmp(&rules[a].priority)
                    .then_with(|| rules[a].id.cmp(&rules[b].id))
            });
            v.dedup();
        };
        let (mut forbids, mut permits): (Vec<usize>, Vec<usize>) = matched
            .into_iter()
            .partition(|&i| policy.rules[i].effect == Effect::Forbid);
        order(&policy.rules, &mut forbids);
        order(&policy.rules, &mut permits);
        Ok((forbids, permits, errors))
    }

    fn condition_holds(
        &self,
        rule: &Rule,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<bool, String> {
        let Some(set) = &rule.condition_set else {
            return Ok(true);
        };
        let (request, entities) = self.request(subject, target, facts, at)?;
        Ok(self
            .authorizer
            .is_authorized(&request, set, &entities)
            .decision()
            == CedarDecision::Allow)
    }

    /// For every rule of `policy` that did not match (per `decision`), the
    /// first of its conditions that does not hold, in source order. One more
    /// Cedar evaluation; recorded and dry-run decisions carry it, bulk ones
    /// (matrix, simulation) skip it.
    pub fn explain_not_applied(
        &self,
        policy: &CompiledPolicy,
        decision: &mut Decision,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<(), String> {
        if decision.guard_rail.is_some() {
            return Ok(());
        }
        let (request, entities) = self.request(subject, target, facts, at)?;
        let response = self
            .authorizer
            .is_authorized(&request, &policy.conjuncts, &entities);
        let holds: HashSet<&PolicyId> = response.diagnostics().reason().collect();
        let mut first_failed: HashMap<usize, (usize, &str)> = HashMap::new();
        for (id, (rule, k, text)) in &policy.conjunct_of {
            if holds.contains(id) {
                continue;
            }
            let e = first_failed.entry(*rule).or_insert((*k, text));
            if *k < e.0 {
                *e = (*k, text);
            }
        }
        decision.rules_not_applied = policy
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| !decision.matched_rules.contains(&r.id))
            .map(|(i, r)| {
                let why = first_failed.get(&i).map_or_else(
                    || "its scope does not match".to_owned(),
                    |(_, t)| (*t).to_owned(),
                );
                (r.id.clone(), why)
            })
            .collect();
        Ok(())
    }

    /// Decides whether `subject` is recognized in `target` under `policy` at `at`.
    pub fn decide(
        &self,
        policy: &CompiledPolicy,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<Decision, String> {
        self.decide_in_force(Some(policy), subject, target, facts, at)
    }

    /// Like [`Engine::decide`] with the target's policy in force at `at`, if
    /// any: the guard rails apply first, then no policy means REJECTED.
    pub fn decide_in_force(
        &self,
        policy: Option<&CompiledPolicy>,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<Decision, String> {
        if let Some(g) = guard_rail(subject, target, at) {
            return Ok(Decision::guard(g));
        }
        let Some(policy) = policy else {
            return Ok(Decision::rejected(format!(
                "{} has no policy in force at the decision time",
                target.city
            )));
        };
        let (forbids, permits, evaluation_errors) =
            self.matching(policy, subject, target, facts, at)?;
        let matched_rules: Vec<String> = forbids
            .iter()
            .chain(permits.iter())
            .map(|&i| policy.rules[i].id.clone())
            .collect();
        let explain = |r: &Rule, default: String| r.reason.clone().unwrap_or(default);
        let base = Decision {
            matched_rules,
            evaluation_errors,
            ..Decision::rejected(String::new())
        };
        if let Some(&i) = forbids.first() {
            let r = &policy.rules[i];
            return Ok(Decision {
                outcome: r.outcome,
                deciding_rules: vec![r.id.clone()],
                reason: explain(r, format!("excluded by rule {} of {}", r.id, target.city)),
                ..base
            });
        }
        let Some(&i) = permits.first() else {
            return Ok(Decision {
                reason: format!("no rule of {} recognizes this qualification", target.city),
                ..base
            });
        };
        let r = &policy.rules[i];
        let level = subject.level;
        let d = match r.outcome {
            Outcome::Downgraded => {
                let mapped = (i64::from(level) + r.level_offset).max(1);
                Decision {
                    outcome: Outcome::Downgraded,
                    mapped_level: Some(u8::try_from(mapped).unwrap_or(1)),
                    reason: explain(r, format!("downgraded by rule {}", r.id)),
                    ..base
                }
            }
            Outcome::Conditional => {
                let cond = r.condition.clone().unwrap_or_default();
                if self.condition_holds(r, subject, target, facts, at)? {
                    Decision {
                        outcome: Outcome::Recognized,
                        mapped_level: Some(level),
                        met_conditions: vec![cond],
                        reason: format!("recognized by rule {}: its condition is met", r.id),
                        ..base
                    }
                } else {
                    Decision {
                        outcome: Outcome::Conditional,
                        mapped_level: Some(level),
                        unmet_conditions: vec![cond],
                        reason: explain(r, format!("conditional under rule {}", r.id)),
                        ..base
                    }
                }
            }
            o => Decision {
                outcome: o,
                mapped_level: Some(level),
                reason: explain(r, format!("recognized by rule {}", r.id)),
                ..base
            },
        };
        Ok(Decision {
            deciding_rules: vec![r.id.clone()],
            ..d
        })
    }
}
