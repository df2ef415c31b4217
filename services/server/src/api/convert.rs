//! Conversions between API messages and the use cases' commands and records.
//! Parsing functions return every violation of their field(s).

use chrono::{DateTime, Utc};
use corridor_domain::Violations;
use corridor_domain::credential::{Credential, Status};
use corridor_domain::error::Collector;
use corridor_domain::qualification::{Category, Qualification};
use corridor_domain::recognition::RecognitionStatus;
use corridor_policy::{Diagnostic, Explanation, Facts, Outcome};
use corridor_proto::v1;
use prost_types::Timestamp;

use crate::app::policy::PolicyView;
use crate::app::registry::PublishedKey;
use corridor_policy::Recognition;

/// A protobuf timestamp of `t`.
pub fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The earliest instant a request may name (1900-01-01T00:00:00Z).
pub const EARLIEST_SECONDS: i64 = -2_208_988_800;
/// The latest instant a request may name (9999-12-31T23:59:59Z).
pub const LATEST_SECONDS: i64 = 253_402_300_799;

/// Parses an optional protobuf timestamp, between 1900 and 9999: anything
/// else is a client's mistake (Postgres could not even store year -5000).
pub fn from_ts(field: &str, t: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, Violations> {
    match t {
        None => Ok(None),
        Some(t) if !(EARLIEST_SECONDS..=LATEST_SECONDS).contains(&t.seconds) => Err(
            Violations::one(field, "must be between 1900-01-01 and 9999-12-31"),
        ),
        Some(t) => u32::try_from(t.nanos)
            .ok()
            .filter(|n| *n < 1_000_000_000)
            .and_then(|n| DateTime::<Utc>::from_timestamp(t.seconds, n))
            .map(Some)
            .ok_or_else(|| Violations::one(field, "not a valid timestamp")),
    }
}

/// The domain category of an API enum value (`None` for unspecified).
pub fn category_from_api(v: i32) -> Option<Category> {
    match v1::QualificationCategory::try_from(v).ok()? {
        v1::QualificationCategory::Unspecified => None,
        v1::QualificationCategory::ProfessionalTitle => Some(Category::ProfessionalTitle),
        v1::QualificationCategory::SkillLevel => Some(Category::SkillLevel),
        v1::QualificationCategory::PracticeLicense => Some(Category::PracticeLicense),
        v1::QualificationCategory::TalentTier => Some(Category::TalentTier),
        v1::QualificationCategory::ForeignWorkPermit => Some(Category::ForeignWorkPermit),
    }
}

/// An optional category filter: 0 is none, an unknown value a violation.
pub fn category_filter(field: &str, v: i32) -> Result<Option<Category>, Violations> {
    if v == 0 {
        return Ok(None);
    }
    category_from_api(v)
        .map(Some)
        .ok_or_else(|| Violations::one(field, "unknown category"))
}

/// The API enum value of a domain category.
pub fn category_to_api(c: Category) -> v1::QualificationCategory {
    match c {
        Category::ProfessionalTitle => v1::QualificationCategory::ProfessionalTitle,
        Category::SkillLevel => v1::QualificationCategory::SkillLevel,
        Category::PracticeLicense => v1::QualificationCategory::PracticeLicense,
        Category::TalentTier => v1::QualificationCategory::TalentTier,
        Category::ForeignWorkPermit => v1::QualificationCategory::ForeignWorkPermit,
    }
}

/// The API enum value of a status.
pub fn status_to_api(s: Status) -> v1::CredentialStatus {
    match s {
        Status::Active => v1::CredentialStatus::Active,
        Status::Suspended => v1::CredentialStatus::Suspended,
        Status::Revoked => v1::CredentialStatus::Revoked,
    }
}

/// The domain status of an API enum value (`Ok(None)` for unspecified).
pub fn status_from_api(field: &str, v: i32) -> Result<Option<Status>, Violations> {
    match v1::CredentialStatus::try_from(v) {
        Ok(v1::CredentialStatus::Unspecified) => Ok(None),
        Ok(v1::CredentialStatus::Active) => Ok(Some(Status::Active)),
        Ok(v1::CredentialStatus::Suspended) => Ok(Some(Status::Suspended)),
        Ok(v1::CredentialStatus::Revoked) => Ok(Some(Status::Revoked)),
        Err(_) => Err(Violations::one(field, "unknown status")),
    }
}

/// Parses an API qualification.
pub fn qualification_from_api(
    field: &str,
    q: Option<&v1::Qualification>,
) -> Result<Qualification, Violations> {
    let q = q.ok_or_else(|| Violations::one(field, "a qualification is required"))?;
    Qualification::parse(
        field,
        category_from_api(q.category),
        &q.series,
        q.level,
        &q.title,
    )
}

/// The API form of a domain qualification.
pub fn qualification_to_api(q: &Qualification) -> v1::Qualification {
    v1::Qualification {
        category: category_to_api(q.category()).into(),
        series: q.series().to_owned(),
        level: i32::from(q.level()),
        title: q.title().to_owned(),
    }
}

/// The API form of a registered credential.
pub fn credential_to_api(c: &Credential) -> v1::Credential {
    v1::Credential {
        id: c.id.to_string(),
        issuer_city: c.issuer_city.to_string(),
        qualification: Some(qualification_to_api(&c.qualification)),
        holder_name: c.holder_name.clone(),
        valid_from: Some(ts(c.window.from)),
        valid_until: c.window.until.map(ts),
        status: status_to_api(c.status).into(),
        status_reason: c.status_reason.clone().unwrap_or_default(),
        kid: c.kid.clone(),
        token: c.token.clone(),
        issue_time: Some(ts(c.issued_at)),
        update_time: Some(ts(c.updated_at)),
        issued_by: c.issued_by.clone(),
    }
}

/// The API form of an issuer key.
pub fn published_key_to_api(k: &PublishedKey) -> v1::IssuerKey {
    v1::IssuerKey {
        kid: k.kid.clone(),
        city: k.city.to_string(),
        x: k.x.clone(),
        status: if k.not_after.is_some() {
            v1::IssuerKeyStatus::Retired
        } else {
            v1::IssuerKeyStatus::Current
        }
        .into(),
        not_before: Some(ts(k.not_before)),
        not_after: k.not_after.map(ts),
    }
}

/// An optional field: empty is `None`, anything else must parse.
pub fn optional<T>(
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, Violations>,
) -> Result<Option<T>, Violations> {
    if raw.is_empty() {
        Ok(None)
    } else {
        parse(raw).map(Some)
    }
}

/// Parses an id (a UUID).
pub fn parse_id(field: &str, raw: &str) -> Result<uuid::Uuid, Violations> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| Violations::one(field, "must be a UUID"))
}

/// Parses API facts, checking ranges.
pub fn facts_from_api(f: Option<&v1::RecognitionFacts>) -> Result<Facts, Violations> {
    let Some(f) = f else {
        return Ok(Facts::default());
    };
    let mut errs = Collector::default();
    if f.local_social_insurance_months
        .is_some_and(|m| !(0..=1200).contains(&m))
    {
        errs.push("facts.local_social_insurance_months", "must be 0 to 1200");
    }
    if f.years_of_experience
        .is_some_and(|y| !(0..=80).contains(&y))
    {
        errs.push("facts.years_of_experience", "must be 0 to 80");
    }
    errs.finish()?;
    Ok(Facts {
        local_social_insurance_months: f.local_social_insurance_months.map(i64::from),
        local_employer_registered: f.local_employer_registered,
        years_of_experience: f.years_of_experience.map(i64::from),
        holds_local_license: f.holds_local_license,
        civil_servant: f.civil_servant,
    })
}

/// The API form of facts.
pub fn facts_to_api(f: &Facts) -> v1::RecognitionFacts {
    v1::RecognitionFacts {
        local_social_insurance_months: f
            .local_social_insurance_months
            .and_then(|m| i32::try_from(m).ok()),
        local_employer_registered: f.local_employer_registered,
        years_of_experience: f.years_of_experience.and_then(|y| i32::try_from(y).ok()),
        holds_local_license: f.holds_local_license,
        civil_servant: f.civil_servant,
    }
}

/// The API enum of an outcome.
pub fn outcome_to_api(o: Outcome) -> v1::RecognitionOutcome {
    match o {
        Outcome::Recognized => v1::RecognitionOutcome::Recognized,
        Outcome::Conditional => v1::RecognitionOutcome::Conditional,
        Outcome::Downgraded => v1::RecognitionOutcome::Downgraded,
        Outcome::Referred => v1::RecognitionOutcome::Referred,
        Outcome::Rejected => v1::RecognitionOutcome::Rejected,
    }
}

/// The API enum of a recognition status.
pub fn recognition_status_to_api(s: RecognitionStatus) -> v1::RecognitionStatus {
    match s {
        RecognitionStatus::Open => v1::RecognitionStatus::Open,
        RecognitionStatus::Decided => v1::RecognitionStatus::Decided,
        RecognitionStatus::Suspended { .. } => v1::RecognitionStatus::Suspended,
        RecognitionStatus::Void => v1::RecognitionStatus::Void,
    }
}

/// A recognition status filter: its stored name (`None` for unspecified).
pub fn recognition_status_filter(v: i32) -> Result<Option<&'static str>, Violations> {
    match v1::RecognitionStatus::try_from(v) {
        Ok(v1::RecognitionStatus::Unspecified) => Ok(None),
        Ok(v1::RecognitionStatus::Open) => Ok(Some("open")),
        Ok(v1::RecognitionStatus::Decided) => Ok(Some("decided")),
        Ok(v1::RecognitionStatus::Suspended) => Ok(Some("suspended")),
        Ok(v1::RecognitionStatus::Void) => Ok(Some("void")),
        Err(_) => Err(Violations::one("status", "unknown status")),
    }
}

/// The API form of an explanation.
pub fn explanation_to_api(e: &Explanation) -> v1::RecognitionExplanation {
    v1::RecognitionExplanation {
        policy_city: e.policy_city.clone(),
        policy_version: e.policy_version,
        deciding_rules: e.deciding_rules.clone(),
        matched_rules: e.matched_rules.clone(),
        unmet_conditions: e.unmet_conditions.clone(),
        met_conditions: e.met_conditions.clone(),
        reason: e.reason.clone(),
        evaluation_errors: e.evaluation_errors.clone(),
        decision_time: Some(ts(e.decision_time)),
        rules_not_applied: e
            .rules_not_applied
            .iter()
            .map(|r| v1::RuleNotApplied {
                rule_id: r.rule_id.clone(),
                failed_condition: r.failed_condition.clone(),
                other_category: r.other_category,
            })
            .collect(),
        unmet: e
            .unmet
            .iter()
            .map(|u| v1::UnmetCondition {
                fact: u.fact.clone(),
                comparison: u.comparison.clone(),
                threshold: u.threshold.clone(),
                given: u.given.clone(),
                condition: u.condition.clone(),
            })
            .collect(),
    }
}

/// The API form of a recorded recognition.
pub fn recognition_to_api(r: &Recognition, q: Option<&Qualification>) -> v1::Recognition {
    v1::Recognition {
        id: r.id.to_string(),
        credential_id: r.credential_id.to_string(),
        source_city: r.source_city.to_string(),
        target_city: r.target_city.to_string(),
        qualification: q.map(qualification_to_api),
        outcome: outcome_to_api(r.outcome).into(),
        mapped_level: r.mapped_level.map_or(0, i32::from),
        facts: Some(facts_to_api(&r.facts)),
        explanation: Some(explanation_to_api(&r.explanation)),
        status: recognition_status_to_api(r.status).into(),
        attestation: r.attestation.clone(),
        decide_time: Some(ts(r.decided_at)),
        update_time: Some(ts(r.updated_at)),
        decided_by: r.decided_by.clone(),
    }
}

/// The API form of a policy version.
pub fn policy_to_api(p: &PolicyView) -> v1::PolicyVersion {
    let v = &p.version;
    v1::PolicyVersion {
        city: v.city.to_string(),
        version: v.version,
        source: v.source.clone(),
        effective_from: Some(ts(v.effective_from)),
        publish_time: Some(ts(v.published_at)),
        published_by: v.published_by.clone(),
        rule_ids: p.rule_ids.clone(),
    }
}

/// The API form of a policy diagnostic.
pub fn diagnostic_to_api(d: &Diagnostic) -> v1::PolicyDiagnostic {
    v1::PolicyDiagnostic {
        line: d.line,
        column: d.column,
        rule_id: d.rule_id.clone().unwrap_or_default(),
        message: d.message.clone(),
    }
}
