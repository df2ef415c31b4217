//! The credential lifecycle.
//!
//! ```text
//!   issue ──▶ ACTIVE ──suspend──▶ SUSPENDED
//!               ▲  ◀──reinstate──    │
//!               │                    │
//!               └──revoke──▶ REVOKED ◀┘ revoke
//! ```
//! REVOKED is final. Every other change is an [`IllegalTransition`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Violations;
use crate::city::CityCode;
use crate::error::Collector;
use crate::holder::HolderHash;
use crate::qualification::Qualification;

/// Lifecycle status of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In force.
    Active,
    /// Temporarily not in force.
    Suspended,
    /// Withdrawn for good.
    Revoked,
}

impl Status {
    /// The stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
        }
    }

    /// Inverse of [`Status::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Active, Self::Suspended, Self::Revoked]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A requested status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// ACTIVE → SUSPENDED.
    Suspend,
    /// SUSPENDED → ACTIVE.
    Reinstate,
    /// ACTIVE or SUSPENDED → REVOKED.
    Revoke,
}

impl Transition {
    /// The name used in audit events (`credential.suspended`, ...).
    pub fn audit_action(self) -> &'static str {
        match self {
            Self::Suspend => "credential.suspended",
            Self::Reinstate => "credential.reinstated",
            Self::Revoke => "credential.revoked",
        }
    }

    /// The status after the transition from `from`, if it is legal.
    pub fn apply(self, from: Status) -> Result<Status, IllegalTransition> {
        match (self, from) {
            (Self::Suspend, Status::Active) => Ok(Status::Suspended),
            (Self::Reinstate, Status::Suspended) => Ok(Status::Active),
            (Self::Revoke, Status::Active | Status::Suspended) => Ok(Status::Revoked),
            _ => Err(IllegalTransition {
                transition: self,
                from,
            }),
        }
    }
}

/// A status change that the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {transition:?} a credential that is {from}")]
pub struct IllegalTransition {
    /// What was asked.
    pub transition: Transition,
    /// The status it was asked of.
    pub from: Status,
}

/// Parses a status-change reason: 1 to 500 characters after trimming,
/// nothing deceptive in it ([`crate::text`]).
pub fn parse_reason(field: &str, raw: &str) -> Result<String, Violations> {
    crate::text::line(field, raw, 500)
}

/// Parses a holder's display name: 1 to 100 characters after trimming,
/// nothing deceptive in it ([`crate::text`]).
pub fn parse_holder_name(field: &str, raw: &str) -> Result<String, Violations> {
    crate::text::line(field, raw, 100)
}

/// A validity window: `from` inclusive, `until` exclusive and optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidityWindow {
    /// Start of validity.
    pub from: DateTime<Utc>,
    /// End of validity, if it expires.
    pub until: Option<DateTime<Utc>>,
}

impl ValidityWindow {
    /// Builds a window; `until` must be after `from`.
    pub fn parse(
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        until_field: &str,
    ) -> Result<Self, Violations> {
        let mut errs = Collector::default();
        if let Some(u) = until
            && u <= from
        {
            errs.push(until_field, "must be after valid_from");
        }
        errs.finish()?;
        Ok(Self { from, until })
    }

    /// Where `at` falls relative to the window.
    pub fn position(&self, at: DateTime<Utc>) -> WindowPosition {
        if at < self.from {
            WindowPosition::NotYetValid
        } else if self.until.is_some_and(|u| at >= u) {
            WindowPosition::Expired
        } else {
            WindowPosition::Within
        }
    }
}

/// Where an instant falls relative to a [`ValidityWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowPosition {
    /// Before `from`.
    NotYetValid,
    /// Inside the window.
    Within,
    /// At or after `until`.
    Expired,
}

/// A credential as the registry holds it: what was signed, who holds it (as
/// a keyed hash only), and its live status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Credential id (UUIDv7).
    pub id: Uuid,
    /// Issuing city.
    pub issuer_city: CityCode,
    /// The qualification.
    pub qualification: Qualification,
    /// Holder display name.
    pub holder_name: String,
    /// Keyed hash of the holder's national ID. Not serialized: a stored
    /// answer (for an idempotent replay) need not carry the pseudonym.
    #[serde(skip, default = "HolderHash::unknown")]
    pub holder_hash: HolderHash,
    /// Validity window.
    pub window: ValidityWindow,
    /// Live status.
    pub status: Status,
    /// Reason of the last status change.
    pub status_reason: Option<String>,
    /// The key that signed it.
    pub kid: String,
    /// The VC-JWT as issued.
    pub token: String,
    /// Subject of the issuing caller.
    pub issued_by: String,
    /// Issuance time.
    pub issued_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Its entry in the issuing city's status lists (none for credentials
    /// issued before the lists existed).
    #[serde(default)]
    pub status_entry: Option<crate::status_list::StatusEntry>,
}

impl Credential {
    /// The credential after a legal `transition` at `now` for `reason`.
    pub fn transitioned(
        &self,
        transition: Transition,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, IllegalTransition> {
        Ok(Self {
            status: transition.apply(self.status)?,
            status_reason: Some(reason.to_owned()),
            updated_at: now,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;
    use Transition::*;

    #[test]
    fn lifecycle_table() {
        assert_eq!(Suspend.apply(Active), Ok(Suspended));
        assert_eq!(Reinstate.apply(Suspended), Ok(Active));
        assert_eq!(Revoke.apply(Active), Ok(Revoked));
        assert_eq!(Revoke.apply(Suspended), Ok(Revoked));
        for (t, s) in [
            (Suspend, Suspended),
            (Suspend, Revoked),
            (Reinstate, Active),
            (Reinstate, Revoked),
            (Revoke, Revoked),
        ] {
            assert!(t.apply(s).is_err(), "{t:?} from {s} allowed");
        }
    }

    #[test]
    fn window_positions() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let t1 = t0 + chrono::Duration::days(1);
        let Ok(w) = ValidityWindow::parse(t0, Some(t1), "u") else {
            unreachable!()
        };
        assert_eq!(
            w.position(t0 - chrono::Duration::seconds(1)),
            WindowPosition::NotYetValid
        );
        assert_eq!(w.position(t0), WindowPosition::Within);
        assert_eq!(w.position(t1), WindowPosition::Expired);
        assert!(ValidityWindow::parse(t1, Some(t0), "u").is_err());
        assert!(ValidityWindow::parse(t1, Some(t1), "u").is_err());
    }

    #[test]
    fn reasons_and_names_are_bounded() {
        assert!(parse_reason("r", "  ").is_err());
        assert!(parse_reason("r", &"x".repeat(501)).is_err());
        assert_eq!(parse_reason("r", " fraud ").as_deref(), Ok("fraud"));
        assert!(parse_holder_name("n", "").is_err());
        assert!(parse_holder_name("n", "张三").is_ok());
    }
}
