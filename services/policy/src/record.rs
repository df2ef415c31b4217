//! A recorded recognition: a decision into a city, kept with the facts it
//! used, its explanation, its lifecycle status and the target city's
//! signed attestation.

use chrono::{DateTime, Utc};
use corridor_domain::city::CityCode;
use corridor_domain::recognition::RecognitionStatus;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::explanation::Explanation;
use crate::types::{Facts, Outcome};

/// A recorded recognition decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recognition {
    /// Recognition id (UUIDv7).
    pub id: Uuid,
    /// Source credential.
    pub credential_id: Uuid,
    /// Its issuing city.
    pub source_city: CityCode,
    /// The receiving city.
    pub target_city: CityCode,
    /// The outcome.
    pub outcome: Outcome,
    /// The mapped local level.
    pub mapped_level: Option<u8>,
    /// The facts the decision used.
    pub facts: Facts,
    /// Why.
    pub explanation: Explanation,
    /// The deciding policy version (0: a guard rail decided).
    pub policy_version: i32,
    /// Where it stands.
    pub status: RecognitionStatus,
    /// The target city's signed attestation.
    pub attestation: String,
    /// Subject of the caller who asked.
    pub decided_by: String,
    /// First decision.
    pub decided_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Its entry in the target city's status lists, which its attestations
    /// carry (none for recognitions from before the lists).
    #[serde(default)]
    pub status_entry: Option<corridor_domain::status_list::StatusEntry>,
}
