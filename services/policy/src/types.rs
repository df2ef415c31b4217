//! What the engine decides on and what it answers: the source credential as
//! a rule sees it, the receiving city, the holder's facts, outcomes and
//! decisions.

use chrono::{DateTime, Utc};
use corridor_domain::credential::{Status, ValidityWindow};
use corridor_domain::qualification::Category;
use serde::{Deserialize, Serialize};

/// A recognition outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Valid in the target city as the mapped local qualification.
    Recognized,
    /// Recognized once the listed conditions hold.
    Conditional,
    /// Recognized at a lower mapped level.
    Downgraded,
    /// Outside automatic recognition: the local authority decides.
    Referred,
    /// Not recognized.
    Rejected,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 5] = [
        Self::Recognized,
        Self::Conditional,
        Self::Downgraded,
        Self::Referred,
        Self::Rejected,
    ];

    /// The annotation / storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recognized => "RECOGNIZED",
            Self::Conditional => "CONDITIONAL",
            Self::Downgraded => "DOWNGRADED",
            Self::Referred => "REFERRED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Inverse of [`Outcome::as_str`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether a `permit` rule may carry it (otherwise a `forbid` must).
    pub fn is_permit(self) -> bool {
        matches!(
            self,
            Self::Recognized | Self::Conditional | Self::Downgraded
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown outcome {s}")))
    }
}

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

/// A fact's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FactValue {
    /// A number.
    Long(i64),
    /// A yes or no.
    Bool(bool),
}

impl std::fmt::Display for FactValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Long(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl Facts {
    /// The value of the fact named `name`, if given.
    pub fn get(&self, name: &str) -> Option<FactValue> {
        match name {
            "local_social_insurance_months" => {
                self.local_social_insurance_months.map(FactValue::Long)
            }
            "local_employer_registered" => self.local_employer_registered.map(FactValue::Bool),
            "years_of_experience" => self.years_of_experience.map(FactValue::Long),
            "holds_local_license" => self.holds_local_license.map(FactValue::Bool),
            "civil_servant" => self.civil_servant.map(FactValue::Bool),
            _ => None,
        }
    }

    /// `self` with every fact `newer` gives replacing the one it had.
    pub fn updated_with(&self, newer: &Facts) -> Facts {
        Facts {
            local_social_insurance_months: newer
                .local_social_insurance_months
                .or(self.local_social_insurance_months),
            local_employer_registered: newer
                .local_employer_registered
                .or(self.local_employer_registered),
            years_of_experience: newer.years_of_experience.or(self.years_of_experience),
            holds_local_license: newer.holds_local_license.or(self.holds_local_license),
            civil_servant: newer.civil_servant.or(self.civil_servant),
        }
    }
}

/// A comparison in a condition over one fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
}

impl Comparison {
    /// The operator as written in Cedar.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    /// Inverse of [`Comparison::as_str`].
    pub fn from_op(op: &str) -> Option<Self> {
        [Self::Eq, Self::Ne, Self::Lt, Self::Le, Self::Gt, Self::Ge]
            .into_iter()
            .find(|c| c.as_str() == op)
    }

    /// The same comparison with its sides swapped (`3 < x` is `x > 3`).
    pub fn flipped(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::Le => Self::Ge,
            Self::Gt => Self::Lt,
            Self::Ge => Self::Le,
            c => c,
        }
    }

    /// Whether `given <self> threshold` holds; values of different kinds never do.
    pub fn holds(self, given: FactValue, threshold: FactValue) -> bool {
        use std::cmp::Ordering::*;
        let ord = match (given, threshold) {
            (FactValue::Long(a), FactValue::Long(b)) => a.cmp(&b),
            (FactValue::Bool(a), FactValue::Bool(b)) => match self {
                Self::Eq => return a == b,
                Self::Ne => return a != b,
                _ => return false,
            },
            _ => return false,
        };
        match self {
            Self::Eq => ord == Equal,
            Self::Ne => ord != Equal,
            Self::Lt => ord == Less,
            Self::Le => ord != Greater,
            Self::Gt => ord == Greater,
            Self::Ge => ord != Less,
        }
    }
}

/// One condition over one fact, as a CONDITIONAL rule's `@condition` states
/// it: `context.facts.<fact> <comparison> <threshold>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactCondition {
    /// The fact.
    pub fact: String,
    /// How it is compared.
    pub comparison: Comparison,
    /// With what.
    pub threshold: FactValue,
}

/// A condition still unmet, in a form a machine can act on: which fact to
/// collect, what it must satisfy, and what was given (or that it was
/// missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmetCondition {
    /// The fact (empty when the condition is not a simple comparison of one
    /// fact: then only `condition` says what is needed).
    pub fact: String,
    /// The comparison (`>=`, `==`, ...), empty like `fact`.
    pub comparison: String,
    /// The threshold, as written (`12`, `true`), empty like `fact`.
    pub threshold: String,
    /// The value given, or `None` when the fact was not supplied.
    pub given: Option<String>,
    /// The whole condition, in Cedar, for people.
    pub condition: String,
}

impl UnmetCondition {
    /// A condition that is not a simple comparison of one fact: only its
    /// Cedar text says what is needed.
    pub fn whole(condition: &str) -> Self {
        Self {
            fact: String::new(),
            comparison: String::new(),
            threshold: String::new(),
            given: None,
            condition: condition.to_owned(),
        }
    }
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

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Revoked => "the credential is revoked",
            Self::Suspended => "the credential is suspended",
            Self::NotYetValid => "the credential is not yet valid at the decision time",
            Self::Expired => "the credential has expired at the decision time",
            Self::SameCity => "a city does not recognize its own credentials",
        }
    }
}

/// A rule that did not apply to a decision, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleNotApplied {
    /// The rule's `@id`.
    pub rule_id: String,
    /// The first of its conditions that does not hold (Cedar text), or
    /// "its scope does not match".
    pub failed_condition: String,
    /// The rule is about another category of qualification than the one
    /// decided: listed after the rules that matter.
    #[serde(default)]
    pub other_category: bool,
}

impl RuleNotApplied {
    /// Whether a rule's failed condition is exactly a test of the category
    /// (`resource.category == "SKILL_LEVEL"`): the rule is about another
    /// category than the decided credential's. A disjunction that mentions
    /// the category is not (it may still be about this one).
    pub fn is_category_test(failed_condition: &str) -> bool {
        failed_condition
            .strip_prefix("resource.category == \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .is_some_and(|name| name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
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
    /// For CONDITIONAL: the conditions still unmet (Cedar text).
    pub unmet_conditions: Vec<String>,
    /// For CONDITIONAL: the same, structured (fact, comparison, threshold,
    /// value given or missing).
    pub unmet: Vec<UnmetCondition>,
    /// Conditions of the deciding rule that were met (a CONDITIONAL rule that recognized).
    pub met_conditions: Vec<String>,
    /// Human-readable reason.
    pub reason: String,
    /// The guard rail that decided, if any.
    pub guard_rail: Option<GuardRail>,
    /// Rules that could not be evaluated (e.g. a fact used without `has`).
    pub evaluation_errors: Vec<String>,
    /// Rules that did not apply, with the first of their conditions that
    /// does not hold; the rules about the decided credential's category
    /// first (empty when not asked for, see `Engine::explain_not_applied`).
    pub rules_not_applied: Vec<RuleNotApplied>,
}

impl Decision {
    /// REJECTED for `reason`, with nothing matched; the base of every decision.
    pub(crate) fn rejected(reason: String) -> Self {
        Self {
            outcome: Outcome::Rejected,
            mapped_level: None,
            deciding_rules: Vec::new(),
            matched_rules: Vec::new(),
            unmet_conditions: Vec::new(),
            unmet: Vec::new(),
            met_conditions: Vec::new(),
            reason,
            guard_rail: None,
            evaluation_errors: Vec::new(),
            rules_not_applied: Vec::new(),
        }
    }

    pub(crate) fn guard(g: GuardRail) -> Self {
        Self {
            deciding_rules: vec![g.rule_id().to_owned()],
            guard_rail: Some(g),
            ..Self::rejected(g.reason().to_owned())
        }
    }

    /// Whether the decision depended on a fact that was not supplied: a
    /// CONDITIONAL whose unmet condition names a missing fact.
    pub fn depends_on_missing_facts(&self) -> bool {
        self.unmet
            .iter()
            .any(|u| u.given.is_none() && !u.fact.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons() {
        use Comparison::*;
        let (l, b) = (FactValue::Long, FactValue::Bool);
        assert!(Ge.holds(l(12), l(12)) && !Ge.holds(l(11), l(12)));
        assert!(Gt.holds(l(13), l(12)) && !Gt.holds(l(12), l(12)));
        assert!(Lt.holds(l(1), l(2)) && Le.holds(l(2), l(2)));
        assert!(Eq.holds(b(true), b(true)) && Ne.holds(b(true), b(false)));
        assert!(!Ge.holds(b(true), l(1)));
        assert_eq!(Lt.flipped(), Gt);
        assert_eq!(Comparison::from_op(">="), Some(Ge));
    }

    #[test]
    fn facts_by_name_and_update() {
        let f = Facts {
            local_social_insurance_months: Some(3),
            civil_servant: Some(false),
            ..Facts::default()
        };
        assert_eq!(
            f.get("local_social_insurance_months"),
            Some(FactValue::Long(3))
        );
        assert_eq!(f.get("years_of_experience"), None);
        let g = f.updated_with(&Facts {
            local_social_insurance_months: Some(6),
            ..Facts::default()
        });
        assert_eq!(g.local_social_insurance_months, Some(6));
        assert_eq!(g.civil_servant, Some(false));
    }
}
