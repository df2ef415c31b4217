//! Compiling and validating a city's policy text.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Effect, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Schema,
    ValidationMode, Validator,
};
use corridor_domain::qualification::Category;

use crate::eval::{Facts, Subject, Target};
use crate::{Outcome, SCHEMA_SRC};

/// A problem with a policy, pointing at where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
    /// The rule (`@id`) it concerns, when known.
    pub rule_id: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if let Some(r) = &self.rule_id {
            write!(f, "[{r}] ")?;
        }
        f.write_str(&self.message)
    }
}

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

/// The engine: the schema, parsed once, and Cedar's validator and authorizer.
#[derive(Debug)]
pub struct Engine {
    validator: Validator,
    pub(crate) authorizer: Authorizer,
    pub(crate) action: EntityUid,
    pub(crate) city_type: EntityTypeName,
    pub(crate) credential_type: EntityTypeName,
}

/// Most rules in one policy.
pub const MAX_RULES: usize = 500;
/// Stack of the thread that parses, validates and searches a policy for
/// conflicts. Far more than the worst policy inside the budget needs
/// (measured in `tests.rs`); it is address space, committed only as used.
pub const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;
/// Most distinct series strings the conflict search tries (it bounds the
/// search's work: grid size grows with them).
pub const MAX_GRID_SERIES: usize = 48;

const ANNOTATIONS: [&str; 6] = [
    "id",
    "outcome",
    "priority",
    "level_offset",
    "condition",
    "reason",
];

pub(crate) fn line_col(src: &str, offset: usize) -> (u32, u32) {
    let mut o = offset.min(src.len());
    while !src.is_char_boundary(o) {
        o -= 1;
    }
    let before = &src[..o];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// The `@id` of the rule whose text contains `offset` (the last `@id` before it).
pub(crate) fn rule_at(src: &str, offset: usize) -> Option<String> {
    let head = src.get(..offset.min(src.len()))?;
    let start = head.rfind("@id(\"")? + 5;
    let rest = &src[start..];
    rest.find('"').map(|end| rest[..end].to_owned())
}

fn from_miette(
    src: &str,
    e: &dyn miette::Diagnostic,
    rule: Option<String>,
    fallback_line: u32,
) -> Diagnostic {
    let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    let (line, column) = match offset {
        Some(o) => line_col(src, o),
        None => (fallback_line, 1),
    };
    let mut message = e.to_string();
    if let Some(h) = e.help() {
        message.push_str(&format!(" (help: {h})"));
    }
    Diagnostic {
        line,
        column,
        rule_id: rule.or_else(|| offset.and_then(|o| rule_at(src, o))),
        message,
    }
}

impl Engine {
    /// Parses the schema.
    pub fn new() -> Result<Self, String> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(SCHEMA_SRC).map_err(|e| format!("policy schema: {e}"))?;
        let action = EntityUid::from_str(r#"G60::Action::"recognize""#)
            .map_err(|e| format!("action uid: {e}"))?;
        let city_type = EntityTypeName::from_str("G60::City").map_err(|e| format!("type: {e}"))?;
        let credential_type =
            EntityTypeName::from_str("G60::Credential").map_err(|e| format!("type: {e}"))?;
        Ok(Self {
            city_type,
            credential_type,
            validator: Validator::new(schema.clone()),
            authorizer: Authorizer::new(),
            action,
        })
    }

    /// Compiles `src`; `target` (the city the policy is for), when known,
    /// makes the conflict search use that city.
    ///
    /// The source must first fit the [`budget`](crate::budget); Cedar then
    /// parses and validates it on a thread of its own with a
    /// [`COMPILE_STACK_BYTES`] stack, whatever thread calls this.
    pub fn compile(
        &self,
        src: &str,
        target: Option<&Target>,
    ) -> Result<CompiledPolicy, Vec<Diagnostic>> {
        self.compile_guarded(src, target, true)
    }

    /// Compiles a stored policy that was validated when it was published:
    /// the same checks but the conflict search.
    pub fn load(&self, src: &str) -> Result<CompiledPolicy, Vec<Diagnostic>> {
        self.compile_guarded(src, None, false)
    }

    fn compile_guarded(
        &self,
        src: &str,
        target: Option<&Target>,
        check_conflicts: bool,
    ) -> Result<CompiledPolicy, Vec<Diagnostic>> {
        crate::budget::check(src).map_err(|d| vec![d])?;
        let failed = |what: &str| {
            vec![Diagnostic {
                line: 1,
                column: 1,
                rule_id: None,
                message: format!("the policy compiler {what}"),
            }]
        };
        std::thread::scope(|scope| {
            let compiler = std::thread::Builder::new()
                .name("policy-compile".into())
                .stack_size(COMPILE_STACK_BYTES)
                .spawn_scoped(scope, || self.compile_inner(src, target, check_conflicts))
                .map_err(|_| failed("could not start"))?;
            compiler.join().map_err(|_| failed("failed"))?
        })
    }

    fn compile_inner(
        &self,
        src: &str,
        target: Option<&Target>,
        check_conflicts: bool,
    ) -> Result<CompiledPolicy, Vec<Diagnostic>> {
        let set = match PolicySet::from_str(src) {
            Ok(s) => s,
            Err(errs) => {
                return Err(errs.iter().map(|e| from_miette(src, e, None, 1)).collect());
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
            diags.push(from_miette(src, e, rule, line));
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
        let compiled = CompiledPolicy {
            conjuncts,
            conjunct_of,
            rules,
            set,
            permits,
            by_policy,
        };
        if !check_conflicts {
            return Ok(compiled);
        }
        let conflicts = self.conflicts(&compiled, target);
        if conflicts.is_empty() {
            Ok(compiled)
        } else {
            Err(conflicts)
        }
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
        match (&condition, outcome) {
            (None, Some(Outcome::Conditional)) => err(
                "a CONDITIONAL rule needs @condition(\"<expression over context.facts>\")".into(),
            ),
            (Some(_), Some(o)) if o != Outcome::Conditional => {
                err("@condition is only for CONDITIONAL rules".into())
            }
            (Some(c), _) => match self.condition_set(&rid, c) {
                Ok(s) => condition_set = Some(s),
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

    /// Rules of one effect and priority that give different results and both
    /// match some point of a grid of synthetic credentials and facts.
    fn conflicts(&self, policy: &CompiledPolicy, target: Option<&Target>) -> Vec<Diagnostic> {
        let sig = |r: &Rule| (r.outcome, r.level_offset, r.condition.clone());
        let mut pairs = Vec::new();
        for (i, a) in policy.rules.iter().enumerate() {
            for (j, b) in policy.rules.iter().enumerate().skip(i + 1) {
                if a.effect == b.effect && a.priority == b.priority && sig(a) != sig(b) {
                    pairs.push((i, j));
                }
            }
        }
        if pairs.is_empty() {
            return Vec::new();
        }
        let default_target = Target {
            city: "grid-target".into(),
            province: "Zhejiang".into(),
        };
        let target = target.unwrap_or(&default_target);
        let mut found: HashMap<(usize, usize), String> = HashMap::new();
        for subject in grid_subjects(policy) {
            for facts in grid_facts() {
                let Ok((forbids, permits, _)) =
                    self.matching(policy, &subject, target, &facts, subject.issued_at)
                else {
                    continue;
                };
                let matched: BTreeSet<usize> = forbids.into_iter().chain(permits).collect();
                for &(i, j) in &pairs {
                    if matched.contains(&i) && matched.contains(&j) {
                        found.entry((i, j)).or_insert_with(|| {
                            format!(
                                "{} level {} series {} from {}",
                                subject.category,
                                subject.level,
                                subject.series,
                                subject.issuer_province
                            )
                        });
                    }
                }
            }
        }
        let mut out: Vec<Diagnostic> = found
            .into_iter()
            .map(|((i, j), example)| {
                let (a, b) = (&policy.rules[i], &policy.rules[j]);
                Diagnostic {
                    line: b.line,
                    column: 1,
                    rule_id: Some(b.id.clone()),
                    message: format!(
                        "rules {} ({}) and {} ({}) have the same @priority({}) and both match e.g. {example}; give one a higher priority",
                        a.id, a.outcome, b.id, b.outcome, a.priority
                    ),
                }
            })
            .collect();
        out.sort_by_key(|d| (d.line, d.column));
        out
    }
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

/// Synthetic credentials: every category and level, the series the policy
/// names plus one it does not, every corridor province.
fn grid_subjects(policy: &CompiledPolicy) -> Vec<Subject> {
    let mut series: BTreeSet<String> = BTreeSet::from(["other-series".to_owned()]);
    for p in policy.set.policies() {
        // The policy body only: annotations hold ids and prose, not series.
        let text: String = p
            .to_string()
            .lines()
            .filter(|l| !l.trim_start().starts_with('@'))
            .collect::<Vec<_>>()
            .join("\n");
        for (k, piece) in text.split('"').enumerate() {
            if k % 2 == 1
                && !piece.is_empty()
                && piece.len() <= 64
                && piece != "recognize"
                && piece
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                series.insert(piece.to_owned());
            }
        }
    }
    let series: Vec<String> = series.into_iter().take(MAX_GRID_SERIES).collect();
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for category in Category::ALL {
        for level in 1..=category.max_level() {
            for s in &series {
                for (city, province) in [
                    ("grid-shanghai", "Shanghai"),
                    ("grid-zhejiang", "Zhejiang"),
                    ("grid-jiangsu", "Jiangsu"),
                    ("grid-anhui", "Anhui"),
                ] {
                    out.push(Subject::synthetic(category, s, level, city, province, now));
                }
            }
        }
    }
    out
}

fn grid_facts() -> [Facts; 3] {
    [
        Facts::default(),
        Facts {
            local_social_insurance_months: Some(36),
            local_employer_registered: Some(true),
            years_of_experience: Some(20),
            holds_local_license: Some(true),
            civil_servant: Some(false),
        },
        Facts {
            civil_servant: Some(true),
            ..Facts::default()
        },
    ]
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
