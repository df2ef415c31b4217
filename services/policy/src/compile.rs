//! Compiling a city's policy text: Cedar parses and validates it, each rule's
//! annotations are checked, and each rule's conditions are split so that an
//! explanation can say which one failed. The conflict search is in
//! `conflicts.rs`; the entry points that also apply the budget are in
//! `pipeline.rs`.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use cedar_policy::{Effect, Policy, PolicyId, PolicySet, ValidationMode};

use crate::engine::Engine;
use crate::source::{Diagnostic, from_miette, line_col, rule_at};
use crate::types::{Comparison, FactCondition, FactValue, Outcome};

/// One rule of a compiled policy.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `@id`.
    pub id: String,
    /// permit or forbid.
    pub effect: Effect,
    /// `@outcome`.
    pub outcome: Outcome,
    /// `@priority`.
    pub priority: i64,
    /// `@level_offset` (0 unless DOWNGRADED).
    pub level_offset: i64,
    /// `@condition`, for CONDITIONAL rules.
    pub condition: Option<String>,
    /// `@reason`.
    pub reason: Option<String>,
    /// Line of the rule's `@id`.
    pub line: u32,
    pub(crate) condition_set: Option<PolicySet>,
    /// The `@condition` as comparisons of single facts, when it is a
    /// conjunction of such comparisons (else `None`, and an unmet condition
    /// is reported as Cedar text only).
    pub fact_conditions: Option<Vec<FactCondition>>,
}

/// A validated policy, ready to decide.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(crate) rules: Vec<Rule>,
    pub(crate) set: PolicySet,
    /// The permit rules alone, to explain which permits matched when a
    /// forbid decided.
    pub(crate) permits: PolicySet,
    pub(crate) by_policy: HashMap<PolicyId, usize>,
    /// Each rule's `when` conditions split at top-level `&&` (and each
    /// `unless`, negated), one policy per conjunct, to say which condition of
    /// a rule that did not apply failed.
    pub(crate) conjuncts: PolicySet,
    /// Conjunct policy id → (rule index, position, Cedar text).
    pub(crate) conjunct_of: HashMap<PolicyId, (usize, usize, String)>,
}

impl CompiledPolicy {
    /// The rules, in source order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}
/// Most rules in one policy.
pub const MAX_RULES: usize = 500;

const ANNOTATIONS: [&str; 6] = [
    "id",
    "outcome",
    "priority",
    "level_offset",
    "condition",
    "reason",
];

impl Engine {
    /// Parses and validates `src` into a policy: every check but the
    /// conflict search. Callers go through `pipeline.rs`, which applies the
    /// budget first and runs this on a thread with a large stack.
    pub(crate) fn build(&self, src: &str) -> Result<CompiledPolicy, Vec<Diagnostic>> {
        let set = match PolicySet::from_str(src) {
            Ok(s) => s,
            Err(errs) => {
                return Err(errs
                    .iter()
                    .map(|e| from_miette(src, e, None, 1, &[]))
                    .collect());
            }
        };
        let mut diags = Vec::new();
        if set.policies().count() > MAX_RULES {
            return Err(vec![Diagnostic {
                line: 1,
                column: 1,
                rule_id: None,
                message: format!("a policy has at most {MAX_RULES} rules"),
            }]);
        }
        let mut rules = Vec::new();
        let mut by_policy = HashMap::new();
        let mut ids = BTreeSet::new();
        let mut policies: Vec<&Policy> = set.policies().collect();
        // Source order: cedar numbers policies policy0, policy1, ...
        policies.sort_by_key(|p| {
            p.id()
                .to_string()
                .trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        // Cedar's own ids, to translate in its messages.
        let internal_ids: Vec<(String, String)> = policies
            .iter()
            .filter_map(|p| Some((p.id().to_string(), p.annotation("id")?.to_owned())))
            .collect();
        for p in policies {
            match self.rule(src, p, &mut ids) {
                Ok(rule) => {
                    by_policy.insert(p.id().clone(), rules.len());
                    rules.push(rule);
                }
                Err(mut d) => diags.append(&mut d),
            }
        }
        diags.extend(vocabulary_lint(src));
        let result = self.validator.validate(&set, ValidationMode::Strict);
        for e in result.validation_errors() {
            let rule = by_policy
                .get(e.policy_id())
                .map(|&i: &usize| rules[i].id.clone());
            let line = by_policy
                .get(e.policy_id())
                .map_or(1, |&i: &usize| rules[i].line);
            diags.push(from_miette(src, e, rule, line, &internal_ids));
        }
        if !diags.is_empty() {
            diags.sort_by_key(|d| (d.line, d.column));
            return Err(diags);
        }
        let mut permits = PolicySet::new();
        for p in set.policies().filter(|p| p.effect() == Effect::Permit) {
            // Ids are unique within `set`, so adding to an empty set cannot clash.
            let _ = permits.add(p.clone());
        }
        let (conjuncts, conjunct_of) = split_conjuncts(&set, &by_policy);
        Ok(CompiledPolicy {
            conjuncts,
            conjunct_of,
            rules,
            set,
            permits,
            by_policy,
        })
    }

    fn rule(
        &self,
        src: &str,
        p: &Policy,
        ids: &mut BTreeSet<String>,
    ) -> Result<Rule, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let id = p.annotation("id").map(str::to_owned);
        // Locate the rule by its @id; without one, by the policy's text.
        let offset = id
            .as_ref()
            .and_then(|i| src.find(&format!("@id(\"{i}\")")))
            .or_else(|| src.find(&p.to_string()))
            .unwrap_or(0);
        let (line, column) = line_col(src, offset);
        // A diagnostic points at the annotation it is about (the first
        // `@name` in its message, or @outcome), else at the rule's @id.
        let mut err = |msg: String| {
            let key = msg
                .split('@')
                .nth(1)
                .map(|r| {
                    r.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .filter(|k| !k.is_empty() && k != "id")
                .or_else(|| msg.contains("outcome").then(|| "outcome".to_owned()));
            let (line, column) = key
                .and_then(|k| src.get(offset..)?.find(&format!("@{k}(")))
                .map_or((line, column), |i| line_col(src, offset + i));
            diags.push(Diagnostic {
                line,
                column,
                rule_id: id.clone(),
                message: msg,
            });
        };
        for (k, _) in p.annotations() {
            if !ANNOTATIONS.contains(&k) {
                err(format!(
                    "unknown annotation @{k}; known: @{}",
                    ANNOTATIONS.join(", @")
                ));
            }
        }
        let Some(rid) = id.clone().filter(|i| !i.trim().is_empty()) else {
            err("every rule needs an @id(\"...\")".into());
            return Err(diags);
        };
        if !ids.insert(rid.clone()) {
            err(format!("duplicate rule id {rid}"));
        }
        let outcome = match p.annotation("outcome") {
            None => {
                err("missing @outcome".into());
                None
            }
            Some(o) => match Outcome::from_name(o) {
                Some(o) => Some(o),
                None => {
                    err(format!(
                        "unknown outcome {o:?}; one of RECOGNIZED, CONDITIONAL, DOWNGRADED, REFERRED, REJECTED"
                    ));
                    None
                }
            },
        };
        let effect = p.effect();
        if let Some(o) = outcome {
            match (effect, o.is_permit()) {
                (Effect::Permit, false) => {
                    err(format!("a permit rule cannot have outcome {o}; use forbid"))
                }
                (Effect::Forbid, true) => {
                    err(format!("a forbid rule cannot have outcome {o}; use permit"))
                }
                _ => {}
            }
        }
        let priority = match p.annotation("priority") {
            None => 0,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (0..=1000).contains(&n) => n,
                _ => {
                    err(format!(
                        "@priority must be an integer from 0 to 1000, not {s:?}"
                    ));
                    0
                }
            },
        };
        let level_offset = match (p.annotation("level_offset"), outcome) {
            (Some(s), Some(Outcome::Downgraded)) => match s.parse::<i64>() {
                Ok(n) if (-7..=-1).contains(&n) => n,
                _ => {
                    err(format!(
                        "@level_offset must be a negative integer from -7 to -1, not {s:?}"
                    ));
                    0
                }
            },
            (None, Some(Outcome::Downgraded)) => {
                err("a DOWNGRADED rule needs @level_offset(\"-n\")".into());
                0
            }
            (Some(_), _) => {
                err("@level_offset is only for DOWNGRADED rules".into());
                0
            }
            (None, _) => 0,
        };
        let condition = p.annotation("condition").map(str::to_owned);
        let mut condition_set = None;
        let mut fact_conditions = None;
        match (&condition, outcome) {
            (None, Some(Outcome::Conditional)) => err(
                "a CONDITIONAL rule needs @condition(\"<expression over context.facts>\")".into(),
            ),
            (Some(_), Some(o)) if o != Outcome::Conditional => {
                err("@condition is only for CONDITIONAL rules".into())
            }
            (Some(c), _) => match self.condition_set(&rid, c) {
                Ok(s) => {
                    fact_conditions = s.policies().next().and_then(fact_conditions_of);
                    condition_set = Some(s);
                }
                Err(msgs) => {
                    for m in msgs {
                        err(format!("in @condition: {m}"));
                    }
                }
            },
            (None, _) => {}
        }
        match (diags.is_empty(), outcome) {
            (true, Some(outcome)) => Ok(Rule {
                id: rid,
                effect,
                outcome,
                priority,
                level_offset,
                condition,
                reason: p.annotation("reason").map(str::to_owned),
                line,
                condition_set,
                fact_conditions,
            }),
            _ => Err(diags),
        }
    }

    /// A one-policy set that is satisfied exactly when `condition` holds.
    fn condition_set(&self, rule: &str, condition: &str) -> Result<PolicySet, Vec<String>> {
        // Annotation values are strings to the budget check of the whole
        // source: a condition is checked on its own before Cedar parses it.
        crate::budget::check(condition).map_err(|d| vec![d.message])?;
        let text = format!(
            "permit(principal, action == G60::Action::\"recognize\", resource) when {{ {condition} }};"
        );
        let policy = Policy::parse(Some(PolicyId::new(format!("{rule}#condition"))), &text)
            .map_err(|e| e.iter().map(|x| x.to_string()).collect::<Vec<_>>())?;
        let mut set = PolicySet::new();
        set.add(policy).map_err(|e| vec![e.to_string()])?;
        let result = self.validator.validate(&set, ValidationMode::Strict);
        let errs: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
        if errs.is_empty() { Ok(set) } else { Err(errs) }
    }
}

/// A condition's conjuncts as comparisons of single facts; `None` when any
/// conjunct is something else. `context.facts has x` guards are dropped:
/// the comparison of `x` that follows says what is needed.
fn fact_conditions_of(p: &Policy) -> Option<Vec<FactCondition>> {
    use serde_json::Value;
    fn fact_name(e: &Value) -> Option<String> {
        let dot = e.get(".")?;
        let facts = dot.get("left")?.get(".")?;
        let is_context_facts = facts.get("left")?.get("Var")?.as_str()? == "context"
            && facts.get("attr")?.as_str()? == "facts";
        is_context_facts.then(|| dot.get("attr")?.as_str().map(str::to_owned))?
    }
    fn literal(e: &Value) -> Option<FactValue> {
        match e.get("Value")? {
            Value::Bool(b) => Some(FactValue::Bool(*b)),
            Value::Number(n) => n.as_i64().map(FactValue::Long),
            _ => None,
        }
    }
    fn conjuncts<'a>(e: &'a Value, out: &mut Vec<&'a Value>) {
        match e.get("&&") {
            Some(and) => {
                if let (Some(l), Some(r)) = (and.get("left"), and.get("right")) {
                    conjuncts(l, out);
                    conjuncts(r, out);
                }
            }
            None => out.push(e),
        }
    }
    fn one(e: &Value) -> Option<Option<FactCondition>> {
        // `context.facts has x`: a guard, not a condition of its own.
        if let Some(has) = e.get("has") {
            let left = has.get("left")?.get(".")?;
            let guard = left.get("left")?.get("Var")?.as_str()? == "context"
                && left.get("attr")?.as_str()? == "facts";
            return guard.then_some(None);
        }
        // `context.facts.x` and `!context.facts.x`.
        if let Some(fact) = fact_name(e) {
            return Some(Some(FactCondition {
                fact,
                comparison: Comparison::Eq,
                threshold: FactValue::Bool(true),
            }));
        }
        if let Some(fact) = e.get("!").and_then(|n| fact_name(n.get("arg")?)) {
            return Some(Some(FactCondition {
                fact,
                comparison: Comparison::Eq,
                threshold: FactValue::Bool(false),
            }));
        }
        // `context.facts.x <op> literal`, either way round.
        let obj = e.as_object()?;
        let (op, args) = obj.iter().next()?;
        let comparison = Comparison::from_op(op)?;
        let (l, r) = (args.get("left")?, args.get("right")?);
        match (fact_name(l), literal(r), fact_name(r), literal(l)) {
            (Some(fact), Some(threshold), _, _) => Some(Some(FactCondition {
                fact,
                comparison,
                threshold,
            })),
            (_, _, Some(fact), Some(threshold)) => Some(Some(FactCondition {
                fact,
                comparison: comparison.flipped(),
                threshold,
            })),
            _ => None,
        }
    }
    let json = p.to_json().ok()?;
    let body = json.get("conditions")?.as_array()?.first()?.get("body")?;
    let mut parts = Vec::new();
    conjuncts(body, &mut parts);
    let mut out = Vec::new();
    for part in parts {
        if let Some(c) = one(part)? {
            out.push(c);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Splits each rule's conditions into conjuncts (see [`CompiledPolicy`]).
/// A rule whose JSON form cannot be split simply gets no conjuncts: the
/// explanation then names it without the failing condition.
fn split_conjuncts(
    set: &PolicySet,
    by_policy: &HashMap<PolicyId, usize>,
) -> (PolicySet, HashMap<PolicyId, (usize, usize, String)>) {
    fn flatten(e: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
        match e.get("&&") {
            Some(and) => {
                if let (Some(l), Some(r)) = (and.get("left"), and.get("right")) {
                    flatten(l, out);
                    flatten(r, out);
                }
            }
            None => out.push(e.clone()),
        }
    }
    let mut conjuncts = PolicySet::new();
    let mut of = HashMap::new();
    for p in set.policies() {
        let Some(&rule) = by_policy.get(p.id()) else {
            continue;
        };
        let Ok(json) = p.to_json() else { continue };
        let mut parts = Vec::new();
        for c in json
            .get("conditions")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let Some(body) = c.get("body") else { continue };
            if c.get("kind").and_then(|k| k.as_str()) == Some("unless") {
                parts.push(serde_json::json!({ "!": { "arg": body } }));
            } else {
                flatten(body, &mut parts);
            }
        }
        for (k, body) in parts.into_iter().enumerate() {
            let id = PolicyId::new(format!("{}#c{k}", p.id()));
            let policy_json = serde_json::json!({
                "effect": "permit",
                "principal": { "op": "All" },
                "action": { "op": "All" },
                "resource": { "op": "All" },
                "conditions": [ { "kind": "when", "body": body } ],
            });
            let Ok(policy) = Policy::from_json(Some(id.clone()), policy_json) else {
                continue;
            };
            let text = policy.to_string();
            let text = text
                .split_once("when {")
                .and_then(|(_, rest)| rest.rsplit_once('}'))
                .map_or(text.as_str(), |(cond, _)| cond)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if conjuncts.add(policy).is_ok() {
                of.insert(id, (rule, k, text));
            }
        }
    }
    (conjuncts, of)
}
/// The facts a rule may test.
pub const FACTS: [&str; 5] = [
    "local_social_insurance_months",
    "local_employer_registered",
    "years_of_experience",
    "holds_local_license",
    "civil_servant",
];
/// The credential attributes a rule may test.
pub const CREDENTIAL_ATTRIBUTES: [&str; 10] = [
    "category",
    "series",
    "level",
    "title",
    "issuer_city",
    "issuer_province",
    "issue_date",
    "valid_from",
    "expires",
    "valid_until",
];

/// Cedar's validator types `x has name` as plain `false` when the record type
/// has no such attribute, so a misspelt fact behind a `has` guard would make
/// a rule silently never match. This lint names every attribute tested with
/// `has` on `context.facts` or `resource` that the schema does not declare.
fn vocabulary_lint(src: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (prefix, known) in [
        ("context.facts has ", &FACTS[..]),
        ("context.facts.", &FACTS[..]),
        ("resource has ", &CREDENTIAL_ATTRIBUTES[..]),
    ] {
        let mut from = 0;
        while let Some(i) = src[from..].find(prefix) {
            let start = from + i + prefix.len();
            let name: String = src[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // Inside a `//` comment? Then it is prose.
            let line_start = src[..start].rfind('\n').map_or(0, |n| n + 1);
            let in_comment = src[line_start..start].contains("//");
            if !name.is_empty() && !known.contains(&name.as_str()) && !in_comment {
                let (line, column) = line_col(src, start);
                out.push(Diagnostic {
                    line,
                    column,
                    rule_id: rule_at(src, start),
                    message: format!("unknown attribute `{name}`; known: {}", known.join(", ")),
                });
            }
            from = start;
        }
    }
    out
}
