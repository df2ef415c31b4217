//! The explanation of a decision as it is stored with a recorded
//! recognition (JSON) and shown to clients.
//!
//! The stored form only grows: fields added later have defaults, and older
//! forms still read (a test keeps an explanation written by the first
//! release). `rules_not_applied` was once stored as `[rule, condition]`
//! pairs; it is now stored as objects, and both read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::types::{Decision, RuleNotApplied, UnmetCondition};

/// Why a recognition came out as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The city whose policy decided.
    pub policy_city: String,
    /// The policy version that decided (0: a guard rail decided first).
    pub policy_version: i32,
    /// The deciding rule, or guard rail.
    pub deciding_rules: Vec<String>,
    /// Every rule that matched, in precedence order.
    pub matched_rules: Vec<String>,
    /// For CONDITIONAL: the conditions still unmet (Cedar text).
    pub unmet_conditions: Vec<String>,
    /// For CONDITIONAL: the same, structured (missing from explanations
    /// stored before it existed).
    #[serde(default)]
    pub unmet: Vec<UnmetCondition>,
    /// Conditions met by the deciding rule.
    pub met_conditions: Vec<String>,
    /// A sentence for people.
    pub reason: String,
    /// Rules that could not be evaluated.
    pub evaluation_errors: Vec<String>,
    /// When it was decided (or the `as_of` of a dry run).
    pub decision_time: DateTime<Utc>,
    /// Rules that did not apply, and why; those about the decided
    /// category first.
    #[serde(default, deserialize_with = "rules_not_applied")]
    pub rules_not_applied: Vec<RuleNotApplied>,
}

impl Explanation {
    /// The explanation of `d`, decided into `city` with its policy
    /// `version` at `at`.
    pub fn of(d: &Decision, city: &str, version: i32, at: DateTime<Utc>) -> Self {
        Self {
            policy_city: city.to_owned(),
            policy_version: version,
            deciding_rules: d.deciding_rules.clone(),
            matched_rules: d.matched_rules.clone(),
            unmet_conditions: d.unmet_conditions.clone(),
            unmet: d.unmet.clone(),
            met_conditions: d.met_conditions.clone(),
            reason: d.reason.clone(),
            evaluation_errors: d.evaluation_errors.clone(),
            decision_time: at,
            rules_not_applied: d.rules_not_applied.clone(),
        }
    }
}

/// Reads `rules_not_applied` in either stored form.
fn rules_not_applied<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RuleNotApplied>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Pair(String, String),
        Full {
            rule_id: String,
            failed_condition: String,
            #[serde(default)]
            other_category: bool,
        },
    }
    let stored = Vec::<Stored>::deserialize(d)?;
    Ok(stored
        .into_iter()
        .map(|s| match s {
            Stored::Pair(rule_id, failed_condition) => RuleNotApplied {
                other_category: RuleNotApplied::is_category_test(&failed_condition),
                rule_id,
                failed_condition,
            },
            Stored::Full {
                rule_id,
                failed_condition,
                other_category,
            } => RuleNotApplied {
                rule_id,
                failed_condition,
                other_category,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explanation exactly as the first release stored it (before
    /// structured conditions and with `[rule, condition]` pairs).
    const STORED_V1: &str = r#"{"policy_city":"songjiang","policy_version":1,"deciding_rules":["titles-deputy-senior-outside-shanghai"],"matched_rules":["titles-deputy-senior-outside-shanghai","titles-same-level"],"unmet_conditions":["context.facts has local_social_insurance_months && context.facts.local_social_insurance_months >= 6"],"met_conditions":[],"reason":"副高级 titles from outside Shanghai need 6 months of local social insurance","evaluation_errors":[],"decision_time":"2026-11-27T08:00:00Z","rules_not_applied":[["refer-licensed-professions","resource.category == \"PRACTICE_LICENSE\" || resource.category == \"PROFESSIONAL_TITLE\" && (resource.series == \"health\" || resource.series == \"law\")"],["skills-same-level","resource.category == \"SKILL_LEVEL\""]]}"#;

    /// Older still: before `rules_not_applied` existed.
    const STORED_V0: &str = r#"{"policy_city":"suzhou","policy_version":1,"deciding_rules":["guard:revoked"],"matched_rules":[],"unmet_conditions":[],"met_conditions":[],"reason":"the credential is revoked","evaluation_errors":[],"decision_time":"2026-11-27T08:00:00Z"}"#;

    #[test]
    fn explanations_stored_in_earlier_forms_still_read() {
        let e: Explanation = serde_json::from_str(STORED_V1).unwrap();
        assert_eq!(e.policy_version, 1);
        assert_eq!(e.unmet_conditions.len(), 1);
        assert!(e.unmet.is_empty());
        assert_eq!(e.rules_not_applied.len(), 2);
        assert_eq!(e.rules_not_applied[1].rule_id, "skills-same-level");
        assert!(e.rules_not_applied[1].other_category);
        assert!(!e.rules_not_applied[0].other_category);
        let e: Explanation = serde_json::from_str(STORED_V0).unwrap();
        assert!(e.rules_not_applied.is_empty());
        assert_eq!(e.deciding_rules, ["guard:revoked"]);
    }

    #[test]
    fn the_current_form_round_trips() {
        let e: Explanation = serde_json::from_str(STORED_V1).unwrap();
        let again: Explanation = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(e, again);
    }
}
