//! The lifecycle of a recorded recognition, and how it follows its source
//! credential.
//!
//! ```text
//!  decide ─┬─▶ OPEN (CONDITIONAL) ──re-decide──▶ OPEN or DECIDED
//!          └─▶ DECIDED
//!
//!  source credential suspended:  OPEN | DECIDED ──▶ SUSPENDED (remembers which)
//!  source credential reinstated: SUSPENDED ──▶ the status it remembered
//!  source credential revoked:    anything ──▶ VOID (final)
//! ```
//!
//! Only an OPEN recognition can be re-decided with new facts. The cascade is
//! applied in the same transaction as the credential's change; the store
//! runs it as one statement per transition, built from [`Cascade`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::credential::Transition;

/// The statuses a recognition can be suspended from and restored to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Live {
    /// CONDITIONAL, waiting for facts.
    Open,
    /// Final.
    Decided,
}

/// Lifecycle status of a recorded recognition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecognitionStatus {
    /// CONDITIONAL: kept open until later facts meet its conditions.
    Open,
    /// Decided for good (any outcome but CONDITIONAL).
    Decided,
    /// The source credential is suspended; `restores` is the status it
    /// gets back when the credential is reinstated.
    Suspended {
        /// The status before the suspension.
        restores: Live,
    },
    /// The source credential was revoked. Final.
    Void,
}

impl Live {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Decided => "decided",
        }
    }

    /// Inverse of [`Live::as_str`].
    pub fn from_name(s: &str) -> Option<Self> {
        [Self::Open, Self::Decided]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// Stored status names (the `status` column; a CHECK constraint keeps it
/// to these).
pub const STATUS_NAMES: [&str; 4] = ["open", "decided", "suspended", "void"];

impl RecognitionStatus {
    /// The status of a fresh decision: OPEN when it is CONDITIONAL.
    pub fn after_decision(conditional: bool) -> Self {
        if conditional {
            Self::Open
        } else {
            Self::Decided
        }
    }

    /// The stored name (`status` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Decided => "decided",
            Self::Suspended { .. } => "suspended",
            Self::Void => "void",
        }
    }

    /// The stored `suspended_from` column.
    pub fn suspended_from(self) -> Option<&'static str> {
        match self {
            Self::Suspended { restores } => Some(restores.as_str()),
            _ => None,
        }
    }

    /// Rebuilds a status from its two stored columns; `None` for a
    /// combination that cannot exist.
    pub fn from_stored(status: &str, suspended_from: Option<&str>) -> Option<Self> {
        match (status, suspended_from) {
            ("open", None) => Some(Self::Open),
            ("decided", None) => Some(Self::Decided),
            ("suspended", Some(f)) => {
                Live::from_name(f).map(|restores| Self::Suspended { restores })
            }
            ("void", None) => Some(Self::Void),
            _ => None,
        }
    }

    /// Whether new facts may re-decide it.
    pub fn can_redecide(self) -> bool {
        self == Self::Open
    }

    /// Whether the recognition currently counts (it is neither suspended nor void).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Open | Self::Decided)
    }

    /// The status after the source credential went through `t`.
    pub fn follow(self, t: Transition) -> Self {
        match (t, self) {
            (Transition::Suspend, Self::Open) => Self::Suspended {
                restores: Live::Open,
            },
            (Transition::Suspend, Self::Decided) => Self::Suspended {
                restores: Live::Decided,
            },
            (Transition::Reinstate, Self::Suspended { restores }) => match restores {
                Live::Open => Self::Open,
                Live::Decided => Self::Decided,
            },
            (Transition::Revoke, _) => Self::Void,
            (_, s) => s,
        }
    }
}

impl fmt::Display for RecognitionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cascade of one credential transition over its recognitions, as one
/// set-based update: which stored statuses it touches and what they become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cascade {
    /// `status IN (open, decided)` → `suspended`, remembering the status.
    Suspend,
    /// `status = suspended` → the remembered status.
    Restore,
    /// `status <> void` → `void`.
    Void,
}

impl Cascade {
    /// The cascade of credential transition `t`.
    pub fn of(t: Transition) -> Self {
        match t {
            Transition::Suspend => Self::Suspend,
            Transition::Reinstate => Self::Restore,
            Transition::Revoke => Self::Void,
        }
    }

    /// The stored statuses it changes.
    pub fn from_statuses(self) -> &'static [&'static str] {
        match self {
            Self::Suspend => &["open", "decided"],
            Self::Restore => &["suspended"],
            Self::Void => &["open", "decided", "suspended"],
        }
    }

    /// What the recognitions now are, for the audit trail.
    pub fn now(self) -> &'static str {
        match self {
            Self::Suspend => "suspended",
            Self::Restore => "restored",
            Self::Void => "void",
        }
    }

    /// The audit action recorded for each recognition it changes.
    pub fn event(self) -> &'static str {
        match self {
            Self::Suspend => "recognition.suspended",
            Self::Restore => "recognition.restored",
            Self::Void => "recognition.voided",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecognitionStatus::*;

    const ALL: [RecognitionStatus; 5] = [
        Open,
        Decided,
        Suspended {
            restores: Live::Open,
        },
        Suspended {
            restores: Live::Decided,
        },
        Void,
    ];

    #[test]
    fn the_cascade_follows_the_credential() {
        assert_eq!(
            Open.follow(Transition::Suspend),
            Suspended {
                restores: Live::Open
            }
        );
        assert_eq!(
            Decided
                .follow(Transition::Suspend)
                .follow(Transition::Reinstate),
            Decided
        );
        assert_eq!(
            Open.follow(Transition::Suspend)
                .follow(Transition::Reinstate),
            Open
        );
        for s in ALL {
            assert_eq!(s.follow(Transition::Revoke), Void);
        }
        // Void is final; reinstating a live recognition changes nothing.
        assert_eq!(Void.follow(Transition::Reinstate), Void);
        assert_eq!(Void.follow(Transition::Suspend), Void);
        assert_eq!(Decided.follow(Transition::Reinstate), Decided);
    }

    #[test]
    fn the_set_based_cascade_agrees_with_follow() {
        for t in [
            Transition::Suspend,
            Transition::Reinstate,
            Transition::Revoke,
        ] {
            let c = Cascade::of(t);
            for s in ALL {
                let touched = c.from_statuses().contains(&s.as_str());
                assert_eq!(touched, s.follow(t) != s, "{t:?} on {s:?}");
            }
        }
    }

    #[test]
    fn stored_form_round_trips_and_refuses_nonsense() {
        for s in ALL {
            assert_eq!(
                RecognitionStatus::from_stored(s.as_str(), s.suspended_from()),
                Some(s)
            );
            assert!(STATUS_NAMES.contains(&s.as_str()));
        }
        assert_eq!(RecognitionStatus::from_stored("suspended", None), None);
        assert_eq!(RecognitionStatus::from_stored("open", Some("open")), None);
        assert_eq!(RecognitionStatus::from_stored("closed", None), None);
        assert_eq!(
            RecognitionStatus::from_stored("suspended", Some("void")),
            None
        );
    }

    #[test]
    fn only_open_recognitions_are_redecided() {
        assert!(Open.can_redecide());
        for s in ALL.into_iter().filter(|s| *s != Open) {
            assert!(!s.can_redecide());
        }
        assert_eq!(RecognitionStatus::after_decision(true), Open);
        assert_eq!(RecognitionStatus::after_decision(false), Decided);
    }
}
