//! The verification rules that need the registry: is the token the one the
//! registry issued, what its live status says, whether a presented national
//! ID is the holder's, and when holder checks are throttled.
//!
//! [`crate::vc::verify_token`] runs the checks that need only the token and
//! the issuer keys; [`verify`] adds these, given the registry's record (if
//! the token's id is in it) and the keyed hash of a presented ID. It is pure:
//! the use case looks the record up and counts throttled failures.

use std::time::Duration;

use crate::credential::{Credential, Status};
use crate::holder::HolderHash;
use crate::vc::{Outcome, Report, TokenVerification};

/// Failed holder checks allowed per (caller, credential) and [`THROTTLE_WINDOW`].
pub const MAX_HOLDER_FAILURES: u32 = 5;
/// The window over which failed holder checks are counted.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(600);

/// Whether a caller with `failures` failed holder checks on a credential,
/// the first of them `since` ago, may run another one.
///
/// Why: a national ID has little entropy once a birth date and region are
/// known, so an unthrottled check would let a verifier find a holder's
/// number by trying candidates against one credential.
pub fn holder_check_allowed(failures: u32, since: Duration) -> bool {
    failures < MAX_HOLDER_FAILURES || since >= THROTTLE_WINDOW
}

/// A national ID presented for the holder check.
#[derive(Debug, Clone, Copy)]
pub struct PresentedHolder<'a> {
    /// Its keyed hash.
    pub hash: &'a HolderHash,
    /// Whether this caller may still run a holder check on this credential
    /// (see [`holder_check_allowed`]).
    pub allowed: bool,
}

/// Holder checks of this caller on this credential are refused for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed holder checks on this credential; retry later")]
pub struct Throttled;

/// The full verdict on a credential.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The five checks and `valid`.
    pub report: Report,
    /// The registry's live status, when the token is the registered one.
    pub live_status: Option<Status>,
    /// A presented national ID was not the holder's: the caller's failure
    /// count goes up.
    pub holder_failed: bool,
}

/// Applies the registry rules to a token already checked by
/// [`crate::vc::verify_token`]. `record` is the registry's credential under
/// the token's id (for a verify by id, the record whose token was checked).
pub fn verify(
    token: &TokenVerification,
    presented_token: &str,
    record: Option<&Credential>,
    holder: Option<PresentedHolder<'_>>,
) -> Result<Verdict, Throttled> {
    let (status, live_status) = match (&token.claims, record) {
        (None, _) => (Outcome::skipped("no verified token"), None),
        (Some(_), None) => (
            Outcome::failed("the credential is not in the corridor registry"),
            None,
        ),
        // The registry's record is the authority: a token that verifies but
        // is not the one issued under this id (signed with a leaked or
        // retired key, say) does not inherit the record's status.
        (Some(c), Some(r)) if r.id != c.id || r.token != presented_token => (
            Outcome::failed(
                "the token is not the one the registry issued under this credential id",
            ),
            None,
        ),
        (Some(_), Some(r)) => {
            let reason = r.status_reason.clone().unwrap_or_default();
            let o = match r.status {
                Status::Active => Outcome::Passed("active".into()),
                Status::Suspended => Outcome::Failed(format!("suspended: {reason}")),
                Status::Revoked => Outcome::Failed(format!("revoked: {reason}")),
            };
            (o, Some(r.status))
        }
    };
    let mut holder_failed = false;
    let holder_outcome = match (holder, record, &token.claims) {
        (None, _, _) => Outcome::skipped("no national ID presented"),
        (Some(_), None, _) | (Some(_), _, None) => {
            Outcome::skipped("the credential could not be looked up")
        }
        (Some(p), Some(r), Some(_)) => {
            if !p.allowed {
                return Err(Throttled);
            }
            if p.hash.matches(&r.holder_hash) {
                Outcome::Passed("the presented national ID is the holder's".into())
            } else {
                holder_failed = true;
                Outcome::failed("the presented national ID is not the holder's")
            }
        }
    };
    Ok(Verdict {
        report: Report::new(token, status, holder_outcome),
        live_status,
        holder_failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::CityCode;
    use crate::credential::ValidityWindow;
    use crate::holder::{HolderHasher, NationalId};
    use crate::keys::IssuerSigningKey;
    use crate::qualification::{Category, Qualification};
    use crate::vc::{self, Check, CredentialClaims};
    use chrono::Utc;
    use std::sync::Arc;
    use uuid::Uuid;

    struct Fixture {
        token: String,
        checked: TokenVerification,
        record: Credential,
        hasher: HolderHasher,
        holder: NationalId,
    }

    fn fixture() -> Fixture {
        let Ok(city) = CityCode::parse("c", "hangzhou") else {
            unreachable!()
        };
        let now = Utc::now();
        let Ok(key) = IssuerSigningKey::generate(&city, now - chrono::Duration::days(1)) else {
            unreachable!()
        };
        let Ok(q) = Qualification::parse(
            "q",
            Some(Category::ProfessionalTitle),
            "engineering",
            4,
            "高级工程师",
        ) else {
            unreachable!()
        };
        let claims = CredentialClaims {
            id: Uuid::now_v7(),
            issuer_city: city.clone(),
            qualification: q.clone(),
            holder_name: "张三".into(),
            window: ValidityWindow {
                from: now - chrono::Duration::hours(1),
                until: None,
            },
            issued_at: chrono::DateTime::<Utc>::from_timestamp(now.timestamp(), 0).unwrap_or(now),
            status: Vec::new(),
        };
        let Ok(token) = vc::sign(&key, &claims) else {
            unreachable!()
        };
        let vk = Arc::new(key.verifying_key(now - chrono::Duration::days(1)));
        let checked = vc::verify_token(&token, |_| Some(vk.clone()), now);
        let Ok(hasher) = HolderHasher::new(&[3; 32]) else {
            unreachable!()
        };
        let Ok(holder) = NationalId::parse("id", "11010519491231002X") else {
            unreachable!()
        };
        let record = Credential {
            id: claims.id,
            issuer_city: city,
            qualification: q,
            holder_name: claims.holder_name.clone(),
            holder_hash: hasher.hash(&holder),
            window: claims.window,
            status: Status::Active,
            status_reason: None,
            kid: key.kid().to_owned(),
            token: token.clone(),
            issued_by: "hz-hr".into(),
            issued_at: claims.issued_at,
            updated_at: claims.issued_at,
            status_entry: None,
        };
        Fixture {
            token,
            checked,
            record,
            hasher,
            holder,
        }
    }

    fn outcome(v: &Verdict, check: Check) -> Outcome {
        v.report
            .checks
            .iter()
            .find(|(c, _)| *c == check)
            .map(|(_, o)| o.clone())
            .unwrap_or(Outcome::Skipped(String::new()))
    }

    #[test]
    fn an_active_registered_token_is_valid() {
        let f = fixture();
        let v =
            verify(&f.checked, &f.token, Some(&f.record), None).unwrap_or_else(|_| unreachable!());
        assert!(v.report.valid);
        assert_eq!(v.live_status, Some(Status::Active));
        assert!(matches!(outcome(&v, Check::Holder), Outcome::Skipped(_)));
    }

    #[test]
    fn the_registry_status_decides() {
        let f = fixture();
        for (s, word) in [
            (Status::Suspended, "suspended"),
            (Status::Revoked, "revoked"),
        ] {
            let r = Credential {
                status: s,
                status_reason: Some("fraud".into()),
                ..f.record.clone()
            };
            let v = verify(&f.checked, &f.token, Some(&r), None).unwrap_or_else(|_| unreachable!());
            assert!(!v.report.valid);
            assert_eq!(v.live_status, Some(s));
            let Outcome::Failed(d) = outcome(&v, Check::Status) else {
                panic!("{s:?} passed")
            };
            assert_eq!(d, format!("{word}: fraud"));
        }
    }

    #[test]
    fn a_token_the_registry_did_not_issue_inherits_nothing() {
        let f = fixture();
        // Not in the registry at all.
        let v = verify(&f.checked, &f.token, None, None).unwrap_or_else(|_| unreachable!());
        assert!(!v.report.valid && v.live_status.is_none());
        // In the registry under its id, but with another token (re-signed
        // with a leaked key, say): the record's status is not borrowed.
        let other = Credential {
            token: format!("{}x", f.token),
            ..f.record.clone()
        };
        let v = verify(&f.checked, &f.token, Some(&other), None).unwrap_or_else(|_| unreachable!());
        assert!(!v.report.valid);
        assert!(v.live_status.is_none());
        // An unverifiable token: status is not even looked at.
        let bad = vc::verify_token("garbage", |_| None, Utc::now());
        let v = verify(&bad, "garbage", Some(&f.record), None).unwrap_or_else(|_| unreachable!());
        assert!(matches!(outcome(&v, Check::Status), Outcome::Skipped(_)));
    }

    #[test]
    fn holder_binding_and_its_throttle() {
        let f = fixture();
        let right = f.hasher.hash(&f.holder);
        let Ok(other_id) = NationalId::parse(
            "id",
            &NationalId::with_check_digit("33010619900101123").unwrap_or_default(),
        ) else {
            unreachable!()
        };
        let wrong = f.hasher.hash(&other_id);
        let ok = verify(
            &f.checked,
            &f.token,
            Some(&f.record),
            Some(PresentedHolder {
                hash: &right,
                allowed: true,
            }),
        )
        .unwrap_or_else(|_| unreachable!());
        assert!(ok.report.valid && !ok.holder_failed);
        let bad = verify(
            &f.checked,
            &f.token,
            Some(&f.record),
            Some(PresentedHolder {
                hash: &wrong,
                allowed: true,
            }),
        )
        .unwrap_or_else(|_| unreachable!());
        assert!(!bad.report.valid && bad.holder_failed);
        // Throttled: refused before comparing, right ID or not.
        let t = verify(
            &f.checked,
            &f.token,
            Some(&f.record),
            Some(PresentedHolder {
                hash: &right,
                allowed: false,
            }),
        );
        assert_eq!(t.err(), Some(Throttled));
        // Nothing to compare with: skipped, and no failure counted.
        let none = verify(
            &f.checked,
            &f.token,
            None,
            Some(PresentedHolder {
                hash: &wrong,
                allowed: true,
            }),
        )
        .unwrap_or_else(|_| unreachable!());
        assert!(!none.holder_failed);
    }

    #[test]
    fn the_throttle_counts_within_a_window() {
        assert!(holder_check_allowed(0, Duration::ZERO));
        assert!(holder_check_allowed(
            MAX_HOLDER_FAILURES - 1,
            Duration::ZERO
        ));
        assert!(!holder_check_allowed(
            MAX_HOLDER_FAILURES,
            Duration::from_secs(1)
        ));
        assert!(holder_check_allowed(MAX_HOLDER_FAILURES, THROTTLE_WINDOW));
    }
}
