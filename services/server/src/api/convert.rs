//! Conversions between stored rows, domain types and API messages.

use chrono::{DateTime, Utc};
use corridor_domain::Violations;
use corridor_domain::credential::Status;
use corridor_domain::keys::IssuerVerifyingKey;
use corridor_domain::qualification::{Category, Qualification};
use corridor_proto::v1;
use prost_types::Timestamp;

use crate::error::{ApiError, ApiResult};
use crate::store::entities::credential;

/// A protobuf timestamp of `t`.
pub fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Parses an optional protobuf timestamp.
pub fn from_ts(field: &str, t: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, Violations> {
    match t {
        None => Ok(None),
        Some(t) => u32::try_from(t.nanos)
            .ok()
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

/// The stored status of a row.
pub fn row_status(row: &credential::Model) -> ApiResult<Status> {
    Status::from_name(&row.status)
        .ok_or_else(|| ApiError::internal(format!("bad stored status {}", row.status)))
}

/// The API form of a stored credential's qualification.
pub fn row_qualification(row: &credential::Model) -> ApiResult<v1::Qualification> {
    let category = Category::from_name(&row.category)
        .ok_or_else(|| ApiError::internal(format!("bad stored category {}", row.category)))?;
    Ok(v1::Qualification {
        category: category_to_api(category).into(),
        series: row.series.clone(),
        level: row.level,
        title: row.title.clone(),
    })
}

/// The API form of a stored credential.
pub fn credential_to_api(row: &credential::Model) -> ApiResult<v1::Credential> {
    Ok(v1::Credential {
        id: row.id.to_string(),
        issuer_city: row.issuer_city.clone(),
        qualification: Some(row_qualification(row)?),
        holder_name: row.holder_name.clone(),
        valid_from: Some(ts(row.valid_from)),
        valid_until: row.valid_until.map(ts),
        status: status_to_api(row_status(row)?).into(),
        status_reason: row.status_reason.clone().unwrap_or_default(),
        kid: row.kid.clone(),
        token: row.token.clone(),
        issue_time: Some(ts(row.issued_at)),
        update_time: Some(ts(row.updated_at)),
        issued_by: row.issued_by.clone(),
    })
}

/// The API form of an issuer key.
pub fn issuer_key_to_api(k: &IssuerVerifyingKey) -> v1::IssuerKey {
    v1::IssuerKey {
        kid: k.kid.clone(),
        city: k.city.to_string(),
        x: k.x(),
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

/// Parses a credential id.
pub fn parse_id(field: &str, raw: &str) -> Result<uuid::Uuid, Violations> {
    uuid::Uuid::parse_str(raw.trim())
        .map_err(|_| Violations::one(field, "must be a credential id (a UUID)"))
}
