//! Arguments several client commands share (a qualification, recognition
//! facts, times, enum names) and how their values are shown to people.

use corridor_proto::v1;

/// A time on the command line: RFC 3339 (`2026-01-01T00:00:00Z`,
/// `2026-01-01T08:00:00+08:00`) or a date (`2026-01-01`, midnight UTC).
pub fn parse_time(raw: &str) -> Result<prost_types::Timestamp, String> {
    let t = chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| format!("not an RFC 3339 time or a YYYY-MM-DD date: {raw}"))?;
    Ok(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

/// A time for people: RFC 3339 in UTC to the second; blank when unset.
pub fn show_time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The name of an enum value without its type's prefix, as people write it
/// (`active` for `CREDENTIAL_STATUS_ACTIVE`), and back.
fn enum_value(prefix: &str, raw: &str) -> String {
    let upper = raw.trim().to_uppercase().replace('-', "_");
    if upper.starts_with(prefix) {
        upper
    } else {
        format!("{prefix}{upper}")
    }
}

fn short(prefix: &str, name: Option<&str>, raw: i32) -> String {
    match name {
        Some(n) => n.strip_prefix(prefix).unwrap_or(n).to_owned(),
        None => raw.to_string(),
    }
}

/// `--category`: `professional-title`, `skill-level`, `practice-license`,
/// `talent-tier` or `foreign-work-permit` (any case, `-` or `_`).
pub fn parse_category(raw: &str) -> Result<v1::QualificationCategory, String> {
    v1::QualificationCategory::from_str_name(&enum_value("QUALIFICATION_CATEGORY_", raw))
        .filter(|c| *c != v1::QualificationCategory::Unspecified)
        .ok_or_else(|| {
            format!(
                "unknown category {raw:?}: professional-title, skill-level, practice-license, \
                 talent-tier or foreign-work-permit"
            )
        })
}

/// `--status` of credentials: `active`, `suspended` or `revoked`.
pub fn parse_credential_status(raw: &str) -> Result<v1::CredentialStatus, String> {
    v1::CredentialStatus::from_str_name(&enum_value("CREDENTIAL_STATUS_", raw))
        .filter(|c| *c != v1::CredentialStatus::Unspecified)
        .ok_or_else(|| format!("unknown status {raw:?}: active, suspended or revoked"))
}

/// `--status` of recognitions: `open`, `decided`, `suspended` or `void`.
pub fn parse_recognition_status(raw: &str) -> Result<v1::RecognitionStatus, String> {
    v1::RecognitionStatus::from_str_name(&enum_value("RECOGNITION_STATUS_", raw))
        .filter(|c| *c != v1::RecognitionStatus::Unspecified)
        .ok_or_else(|| format!("unknown status {raw:?}: open, decided, suspended or void"))
}

/// A category for people: `PROFESSIONAL_TITLE`.
pub fn show_category(raw: i32) -> String {
    let name = v1::QualificationCategory::try_from(raw).ok();
    short(
        "QUALIFICATION_CATEGORY_",
        name.map(|c| c.as_str_name()),
        raw,
    )
}

/// A credential status for people: `ACTIVE`.
pub fn show_credential_status(raw: i32) -> String {
    let name = v1::CredentialStatus::try_from(raw).ok();
    short("CREDENTIAL_STATUS_", name.map(|c| c.as_str_name()), raw)
}

/// A recognition outcome for people: `CONDITIONAL`.
pub fn show_outcome(raw: i32) -> String {
    let name = v1::RecognitionOutcome::try_from(raw).ok();
    short("RECOGNITION_OUTCOME_", name.map(|c| c.as_str_name()), raw)
}

/// A recognition status for people: `OPEN`.
pub fn show_recognition_status(raw: i32) -> String {
    let name = v1::RecognitionStatus::try_from(raw).ok();
    short("RECOGNITION_STATUS_", name.map(|c| c.as_str_name()), raw)
}

/// A qualification for people: `PROFESSIONAL_TITLE engineering 4 高级工程师`.
pub fn show_qualification(q: Option<&v1::Qualification>) -> String {
    q.map(|q| {
        format!(
            "{} {} {} {}",
            show_category(q.category),
            q.series,
            q.level,
            q.title
        )
    })
    .unwrap_or_default()
}

/// A qualification: `--category --series --level --title`.
#[derive(Debug, Clone, clap::Args)]
pub struct QualificationArgs {
    /// The category: professional-title, skill-level, practice-license,
    /// talent-tier or foreign-work-permit.
    #[arg(long, value_parser = parse_category)]
    pub category: v1::QualificationCategory,
    /// The series, e.g. `engineering`.
    #[arg(long)]
    pub series: String,
    /// The level (its scale depends on the category).
    #[arg(long)]
    pub level: i32,
    /// The title, e.g. `高级工程师`.
    #[arg(long)]
    pub title: String,
}

impl QualificationArgs {
    /// As the API's message.
    pub fn to_proto(&self) -> v1::Qualification {
        v1::Qualification {
            category: self.category.into(),
            series: self.series.clone(),
            level: self.level,
            title: self.title.clone(),
        }
    }
}

/// Recognition facts; a fact not given is unknown.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FactsArgs {
    /// Months of local social insurance.
    #[arg(long)]
    pub local_social_insurance_months: Option<i32>,
    /// The employer is registered in the target city (true or false).
    #[arg(long)]
    pub local_employer_registered: Option<bool>,
    /// Years of professional experience.
    #[arg(long)]
    pub years_of_experience: Option<i32>,
    /// Holds the target city's licence for the profession (true or false).
    #[arg(long)]
    pub holds_local_license: Option<bool>,
    /// Is a civil servant (true or false).
    #[arg(long)]
    pub civil_servant: Option<bool>,
}

impl FactsArgs {
    /// As the API's message; `None` when no fact is given.
    pub fn to_proto(&self) -> Option<v1::RecognitionFacts> {
        let f = v1::RecognitionFacts {
            local_social_insurance_months: self.local_social_insurance_months,
            local_employer_registered: self.local_employer_registered,
            years_of_experience: self.years_of_experience,
            holds_local_license: self.holds_local_license,
            civil_servant: self.civil_servant,
        };
        (f != v1::RecognitionFacts::default()).then_some(f)
    }
}

/// Facts for people: `local_social_insurance_months=6 civil_servant=false`.
pub fn show_facts(f: Option<&v1::RecognitionFacts>) -> String {
    let Some(f) = f else {
        return String::new();
    };
    let mut parts = Vec::new();
    let mut put = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{name}={v}"));
        }
    };
    put(
        "local_social_insurance_months",
        f.local_social_insurance_months.map(|v| v.to_string()),
    );
    put(
        "local_employer_registered",
        f.local_employer_registered.map(|v| v.to_string()),
    );
    put(
        "years_of_experience",
        f.years_of_experience.map(|v| v.to_string()),
    );
    put(
        "holds_local_license",
        f.holds_local_license.map(|v| v.to_string()),
    );
    put("civil_servant", f.civil_servant.map(|v| v.to_string()));
    parts.join(" ")
}

/// A file's text, or standard input for `-`.
pub fn read_source(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_or_dates() {
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z").unwrap().seconds,
            1_767_225_600
        );
        assert_eq!(
            parse_time("2026-01-01T08:00:00+08:00").unwrap().seconds,
            1_767_225_600
        );
        assert_eq!(parse_time("2026-01-01").unwrap().seconds, 1_767_225_600);
        assert!(parse_time("yesterday").is_err());
        let t = parse_time("2026-01-01").unwrap();
        assert_eq!(show_time(Some(&t)), "2026-01-01T00:00:00Z");
        assert_eq!(show_time(None), "");
    }

    #[test]
    fn enum_names_as_people_write_them() {
        assert_eq!(
            parse_category("professional-title").unwrap(),
            v1::QualificationCategory::ProfessionalTitle
        );
        assert_eq!(
            parse_category("SKILL_LEVEL").unwrap(),
            v1::QualificationCategory::SkillLevel
        );
        assert!(parse_category("unspecified").is_err());
        assert!(parse_category("wizard").is_err());
        assert_eq!(
            parse_credential_status("Revoked").unwrap(),
            v1::CredentialStatus::Revoked
        );
        assert_eq!(
            parse_recognition_status("void").unwrap(),
            v1::RecognitionStatus::Void
        );
        assert_eq!(show_category(1), "PROFESSIONAL_TITLE");
        assert_eq!(show_credential_status(3), "REVOKED");
        assert_eq!(show_outcome(2), "CONDITIONAL");
        assert_eq!(show_recognition_status(99), "99");
    }

    #[test]
    fn facts_given_and_shown() {
        assert_eq!(FactsArgs::default().to_proto(), None);
        let f = FactsArgs {
            local_social_insurance_months: Some(6),
            civil_servant: Some(false),
            ..Default::default()
        }
        .to_proto();
        assert_eq!(
            show_facts(f.as_ref()),
            "local_social_insurance_months=6 civil_servant=false"
        );
    }
}
