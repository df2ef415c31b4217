//! An employer checks a credential.
//!
//! The rules are the domain's (`corridor_domain::vc::verify_token` for what
//! the token alone says, `corridor_domain::verify::verify` for what the
//! registry says); this use case looks up what they need. Speed by design:
//! the issuer key comes from the in-memory keyring, the caller's token was
//! validated once (`caller_cache`) and the registry record (live status,
//! holder hash) comes from the status cache (`status_cache`), so a verify is
//! one signature check and no database round trip unless the cache misses;
//! a `recognition_city` adds the recognition lookup. Its audit event goes
//! to the background writer, off the request path.

use corridor_domain::authz;
use corridor_domain::caller::Caller;
use corridor_domain::city::CityCode;
use corridor_domain::holder::NationalId;
use corridor_domain::vc::{self, CredentialClaims};
use corridor_domain::verify::{self, PresentedHolder, Verdict};
use serde_json::json;
use uuid::Uuid;

use super::recognition::RecognitionReport;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::audit::NewEvent;

/// Largest credential token accepted, bytes (a real one is well under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What is to be verified.
#[derive(Debug)]
pub enum VerifySubject {
    /// A credential token as presented.
    Token(String),
    /// A credential id: the registry's token under it is verified.
    Id(Uuid),
}

/// VerifyCredential.
#[derive(Debug)]
pub struct VerifyCredential {
    /// The credential.
    pub subject: VerifySubject,
    /// A national ID the holder presented, to bind the credential to them.
    pub holder: Option<NationalId>,
    /// Also report whether it is recognized in this city.
    pub recognition_city: Option<CityCode>,
}

/// The answer.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The checks, `valid`, and the live status.
    pub verdict: Verdict,
    /// The credential's claims, when its signature verified.
    pub claims: Option<CredentialClaims>,
    /// The key id of the token's header.
    pub kid: Option<String>,
    /// Whether it is recognized in `recognition_city`, when asked.
    pub recognition: Option<RecognitionReport>,
}

impl AppState {
    /// Verifies a credential: signature, issuer, validity window, live
    /// status and, when an ID is presented, the holder.
    pub async fn verify_credential(
        &self,
        caller: &Caller,
        cmd: VerifyCredential,
    ) -> AppResult<Verification> {
        authz::verify_credential(caller)?;
        let now = self.clock.now();
        let (token, mut record) = match cmd.subject {
            VerifySubject::Token(t) => (t, None),
            VerifySubject::Id(id) => {
                let c = self
                    .credential(id)
                    .await?
                    .ok_or_else(|| AppError::NotFound(format!("no credential {id}")))?;
                (c.token.clone(), Some(c))
            }
        };
        // Parsed once; the key is looked up by the header's kid (a reload
        // only for an unknown kid, rate-limited).
        let checked = match vc::Jws::parse(&token) {
            Some(jws) => {
                let key = match jws.kid() {
                    Some(kid) => self.keyring.verifying(&self.db, kid).await?,
                    None => None,
                };
                vc::verify_jws(&jws, |kid| key.filter(|k| k.kid == kid), now)
            }
            None => vc::verify_token(&token, |_| None, now),
        };
        // Verify by token: the registry record (live status), from the
        // status cache or, on a miss, the database.
        if record.is_none()
            && let Some(claims) = &checked.claims
        {
            record = self.credential(claims.id).await?;
        }
        let presented = cmd.holder.as_ref().map(|id| self.hasher.hash(id));
        // The throttle is only consulted when a holder check will run.
        let allowed = match (&presented, &record) {
            (Some(_), Some(r)) => self.holder_throttle.allowed(&caller.subject, r.id),
            _ => true,
        };
        let verdict = verify::verify(
            &checked,
            &token,
            record.as_deref(),
            presented
                .as_ref()
                .map(|hash| PresentedHolder { hash, allowed }),
        )
        .map_err(|_| {
            AppError::Exhausted(
                "HOLDER_CHECKS_THROTTLED",
                format!(
                    "too many failed holder checks on this credential; retry in {} minutes",
                    verify::THROTTLE_WINDOW.as_secs() / 60
                ),
            )
        })?;
        if verdict.holder_failed
            && let Some(r) = &record
        {
            self.holder_throttle.failed(&caller.subject, r.id);
        }
        // With a city: one more query (the recorded recognition), only then.
        let recognition = match (&cmd.recognition_city, &record, &checked.claims) {
            (Some(city), Some(r), Some(_)) => Some(self.recognition_report(city, r, now).await?),
            _ => None,
        };
        let subject_id = checked
            .claims
            .as_ref()
            .map(|c| c.id.to_string())
            .or_else(|| record.as_ref().map(|r| r.id.to_string()))
            .unwrap_or_else(|| "unknown".into());
        let failed: Vec<&str> = verdict
            .report
            .checks
            .iter()
            .filter(|(_, o)| !o.ok())
            .map(|(c, _)| c.as_str())
            .collect();
        metrics::counter!(
            "corridor_verifications_total",
            "valid" => if verdict.report.valid { "true" } else { "false" },
            "failed_check" => failed.first().copied().unwrap_or("none"),
        )
        .increment(1);
        self.audit
            .record(NewEvent::by(
                caller,
                "credential.verified",
                "credential",
                subject_id,
                json!({
                    "valid": verdict.report.valid,
                    "failed_checks": failed,
                    "kid": checked.kid,
                    "holder_checked": cmd.holder.is_some(),
                }),
                now,
            ))
            .await;
        Ok(Verification {
            verdict,
            kid: checked.kid.clone(),
            claims: checked.claims,
            recognition,
        })
    }
}
