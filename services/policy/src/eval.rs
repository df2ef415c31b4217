//! Deciding a recognition request.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use cedar_policy::{
    Context, Decision as CedarDecision, Effect, Entities, Entity, EntityId, EntityUid, PolicyId,
    Request, RestrictedExpression,
};
use chrono::{DateTime, SecondsFormat, Utc};
use corridor_domain::credential::{Status, WindowPosition};

use crate::compile::{CompiledPolicy, Rule};
use crate::engine::Engine;
use crate::types::{
    Decision, Facts, GuardRail, Outcome, RuleNotApplied, Subject, Target, UnmetCondition,
};

/// Cedar `datetime` values, one per second, built once.
///
/// `RestrictedExpression::new_datetime` (cedar-policy 4.14) parses the
/// extension's name with Cedar's full parser, lexer regexes included, on
/// every call: three or four datetimes per decision cost more than the
/// evaluation itself (a profile of EvaluateRecognition put 19 % of the
/// server's time there). A decision's datetimes are the credential's own
/// dates (issued, valid from, valid until) and the decision time to the
/// second: the decision time hits the table for every decision within the
/// same second, a credential's dates for every decision about it (or about
/// credentials issued in the same second). A credential seen once misses on
/// its own dates. The table is bounded: emptied when it reaches
/// [`Datetimes::CAPACITY`].
#[derive(Debug, Default)]
pub(crate) struct Datetimes(Mutex<HashMap<i64, RestrictedExpression>>);

impl Datetimes {
    /// Most datetimes kept.
    pub(crate) const CAPACITY: usize = 4096;

    /// `t`, to the second, as a Cedar datetime.
    fn get(&self, t: DateTime<Utc>) -> RestrictedExpression {
        // Floor seconds: the same second the RFC 3339 form below truncates to.
        let secs = t.timestamp();
        if let Some(e) = self.kept().get(&secs) {
            return e.clone();
        }
        let e = RestrictedExpression::new_datetime(t.to_rfc3339_opts(SecondsFormat::Secs, true));
        let mut kept = self.kept();
        if kept.len() >= Self::CAPACITY {
            kept.clear();
        }
        kept.insert(secs, e.clone());
        e
    }

    /// The table. A panic elsewhere while it was held cannot leave it
    /// half-written (each use is one map call), so a poisoned lock is
    /// taken as is.
    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<i64, RestrictedExpression>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.kept().len()
    }
}

/// One decision's Cedar request and entities, built once and reused by
/// each evaluation of that decision (the match, a condition, the
/// explanation).
struct Prepared {
    request: Request,
    entities: Entities,
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

/// The structured form of a CONDITIONAL rule's unmet `condition`: each
/// comparison of a fact that does not hold, with the value given or none;
/// one unstructured entry when the condition is not made of such comparisons.
fn unmet(rule: &Rule, condition: &str, facts: &Facts) -> Vec<UnmetCondition> {
    let Some(parts) = &rule.fact_conditions else {
        return vec![UnmetCondition::whole(condition)];
    };
    let structured: Vec<UnmetCondition> = parts
        .iter()
        .filter_map(|c| {
            let given = facts.get(&c.fact);
            let holds = given.is_some_and(|g| c.comparison.holds(g, c.threshold));
            (!holds).then(|| UnmetCondition {
                fact: c.fact.clone(),
                comparison: c.comparison.as_str().to_owned(),
                threshold: c.threshold.to_string(),
                given: given.map(|g| g.to_string()),
                condition: condition.to_owned(),
            })
        })
        .collect();
    if structured.is_empty() {
        // Cedar says it does not hold but no part visibly fails: say it whole.
        return vec![UnmetCondition::whole(condition)];
    }
    structured
}

/// Matching forbids, matching permits (rule indexes, precedence order) and
/// evaluation errors.
type Matched = (Vec<usize>, Vec<usize>, Vec<String>);

impl Engine {
    fn prepare(
        &self,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<Prepared, String> {
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
            ("issue_date".into(), self.datetimes.get(subject.issued_at)),
            ("valid_from".into(), self.datetimes.get(subject.window.from)),
            (
                "expires".into(),
                RestrictedExpression::new_bool(subject.window.until.is_some()),
            ),
        ]);
        if let Some(until) = subject.window.until {
            attrs.insert("valid_until".into(), self.datetimes.get(until));
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
            ("decision_time".to_owned(), self.datetimes.get(at)),
        ])
        .map_err(|e| e.to_string())?;
        let request = Request::new(principal, self.action.clone(), resource, context, None)
            .map_err(|e| e.to_string())?;
        Ok(Prepared { request, entities })
    }

    /// The matching forbid and permit rules (indexes), each in precedence
    /// order, and the evaluation errors.
    pub(crate) fn matching_for(
        &self,
        policy: &CompiledPolicy,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<Matched, String> {
        Ok(self.matching(policy, &self.prepare(subject, target, facts, at)?))
    }

    /// [`Engine::matching_for`] on inputs already built.
    fn matching(&self, policy: &CompiledPolicy, inputs: &Prepared) -> Matched {
        let Prepared { request, entities } = inputs;
        let response = self
            .authorizer
            .is_authorized(request, &policy.set, entities);
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
                .is_authorized(request, &policy.permits, entities);
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
        (forbids, permits, errors)
    }

    fn condition_holds(&self, rule: &Rule, inputs: &Prepared) -> bool {
        let Some(set) = &rule.condition_set else {
            return true;
        };
        self.authorizer
            .is_authorized(&inputs.request, set, &inputs.entities)
            .decision()
            == CedarDecision::Allow
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
        let inputs = self.prepare(subject, target, facts, at)?;
        self.explain_with(policy, decision, &inputs);
        Ok(())
    }

    /// [`Engine::explain_not_applied`] on inputs already built.
    fn explain_with(&self, policy: &CompiledPolicy, decision: &mut Decision, inputs: &Prepared) {
        let response =
            self.authorizer
                .is_authorized(&inputs.request, &policy.conjuncts, &inputs.entities);
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
        let mut not_applied: Vec<RuleNotApplied> = policy
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| !decision.matched_rules.contains(&r.id))
            .map(|(i, r)| {
                let why = first_failed.get(&i).map_or_else(
                    || "its scope does not match".to_owned(),
                    |(_, t)| (*t).to_owned(),
                );
                RuleNotApplied {
                    rule_id: r.id.clone(),
                    other_category: RuleNotApplied::is_category_test(&why),
                    failed_condition: why,
                }
            })
            .collect();
        // What matters first: rules about this category of qualification,
        // then the ones about other categories (stable: source order within).
        not_applied.sort_by_key(|r| r.other_category);
        decision.rules_not_applied = not_applied;
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
        self.decide_maybe_explained(policy, subject, target, facts, at, false)
    }

    /// [`Engine::decide_in_force`] and then [`Engine::explain_not_applied`],
    /// with one set of Cedar inputs for both: what a recorded or dry-run
    /// decision needs.
    pub fn decide_explained(
        &self,
        policy: Option<&CompiledPolicy>,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> Result<Decision, String> {
        self.decide_maybe_explained(policy, subject, target, facts, at, true)
    }

    fn decide_maybe_explained(
        &self,
        policy: Option<&CompiledPolicy>,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
        explain: bool,
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
        let inputs = self.prepare(subject, target, facts, at)?;
        let mut decision = self.decide_on(policy, subject, target, facts, &inputs);
        if explain {
            self.explain_with(policy, &mut decision, &inputs);
        }
        Ok(decision)
    }

    /// The decision under `policy` (no guard rail applies).
    fn decide_on(
        &self,
        policy: &CompiledPolicy,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        inputs: &Prepared,
    ) -> Decision {
        let (forbids, permits, evaluation_errors) = self.matching(policy, inputs);
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
            return Decision {
                outcome: r.outcome,
                deciding_rules: vec![r.id.clone()],
                reason: explain(r, format!("excluded by rule {} of {}", r.id, target.city)),
                ..base
            };
        }
        let Some(&i) = permits.first() else {
            return Decision {
                reason: format!("no rule of {} recognizes this qualification", target.city),
                ..base
            };
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
                if self.condition_holds(r, inputs) {
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
                        unmet: unmet(r, &cond, facts),
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
        Decision {
            deciding_rules: vec![r.id.clone()],
            ..d
        }
    }
}
