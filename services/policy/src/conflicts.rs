//! The conflict search: two rules of one effect and priority that give
//! different results and can both match some credential are refused, found
//! by deciding a grid of synthetic credentials and facts.

use std::collections::{BTreeSet, HashMap};

use corridor_domain::qualification::Category;

use crate::compile::{CompiledPolicy, Rule};
use crate::engine::Engine;
use crate::source::Diagnostic;
use crate::types::{Facts, Subject, Target};

/// Most distinct series strings the conflict search tries (it bounds the
/// search's work: grid size grows with them).
pub const MAX_GRID_SERIES: usize = 48;

impl Engine {
    /// Rules of one effect and priority that give different results and both
    /// match some point of a grid of synthetic credentials and facts.
    pub(crate) fn conflicts(
        &self,
        policy: &CompiledPolicy,
        target: Option<&Target>,
    ) -> Vec<Diagnostic> {
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
                    self.matching_for(policy, &subject, target, &facts, subject.issued_at)
                else {
                    continue;
                };
                let matched: BTreeSet<usize> = forbids.into_iter().chain(permits).collect();
                for &(i, j) in &pairs {
                    if matched.contains(&i) && matched.contains(&j) {
                        found.entry((i, j)).or_insert_with(|| example(&subject));
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

/// A synthetic credential named the way a policy officer reads it.
fn example(s: &Subject) -> String {
    let series = if s.series == OTHER_SERIES {
        "a series the policy does not name".to_owned()
    } else {
        format!("series {}", s.series)
    };
    format!(
        "a {} of level {} ({series}) from {}",
        s.category, s.level, s.issuer_province
    )
}

/// Stands for every series a policy does not name.
const OTHER_SERIES: &str = "other-series";

/// Synthetic credentials: every category and level, with the series the
/// policy names plus one it does not (only where the category can have that
/// series: `health` is a title series, never a skill's occupation), from
/// every corridor province.
fn grid_subjects(policy: &CompiledPolicy) -> Vec<Subject> {
    let mut series: BTreeSet<String> = BTreeSet::from([OTHER_SERIES.to_owned()]);
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
            for s in series.iter().filter(|s| category.can_have_series(s)) {
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
