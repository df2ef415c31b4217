//! Credentials as W3C Verifiable Credentials (data model 2.0) secured as
//! JWTs (`typ: vc+jwt`, `alg: EdDSA`, `kid` naming the city key).
//!
//! The JWT claims set *is* the credential (VC-JOSE-COSE): `@context`, `id`,
//! `type`, `issuer`, `validFrom`, `validUntil`, `credentialSubject`, plus the
//! registered JWT claims `iss`, `jti`, `iat`, `nbf`, `exp` mirroring them so
//! that plain JOSE tooling understands the token. The holder's national ID is
//! not in it, not even hashed: the token is shown to employers.
//!
//! [`verify_token`] runs the checks that need only the token and the issuer
//! keys (signature, issuer, validity window); status and holder binding need
//! the registry and are added by the caller with [`Report`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::city::CityCode;
use crate::credential::{ValidityWindow, WindowPosition};
use crate::keys::{IssuerSigningKey, IssuerVerifyingKey};
use crate::qualification::{Category, Qualification};
use crate::status_list::{Purpose, StatusEntry};

/// The VC 2.0 base context.
pub const VC_CONTEXT_V2: &str = "https://www.w3.org/ns/credentials/v2";
/// The JOSE `typ` of a credential token.
pub const VC_JWT_TYP: &str = "vc+jwt";
/// Clock skew tolerated when comparing issuance with a key's signing window.
pub const KEY_WINDOW_LEEWAY_SECONDS: i64 = 60;

/// The issuer identifier of a city: `urn:g60:city:<code>`.
pub fn issuer_id(city: &CityCode) -> String {
    format!("urn:g60:city:{city}")
}

/// What a credential attests, in typed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialClaims {
    /// Credential id.
    pub id: Uuid,
    /// Issuing city.
    pub issuer_city: CityCode,
    /// The qualification.
    pub qualification: Qualification,
    /// Holder's display name.
    pub holder_name: String,
    /// Validity window.
    pub window: ValidityWindow,
    /// Issuance time (the JWT `iat`), to the second.
    pub issued_at: DateTime<Utc>,
    /// Where its status is published (`credentialStatus`): one entry per
    /// purpose, or none.
    pub status: Vec<StatusListEntry>,
}

/// A `credentialStatus` entry of type `BitstringStatusListEntry` (W3C
/// Bitstring Status List v1.0), in its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusListEntry {
    /// `<list credential URL>#<index>`.
    pub id: String,
    /// Always `BitstringStatusListEntry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `revocation` or `suspension`.
    #[serde(rename = "statusPurpose")]
    pub purpose: String,
    /// The bit's index, as a decimal string (the specification's form).
    #[serde(rename = "statusListIndex")]
    pub index: String,
    /// The URL of the status list credential.
    #[serde(rename = "statusListCredential")]
    pub list_credential: String,
}

/// The URL of a city's status list credential: `<base>/v1/status/<city>/<list>/<purpose>`.
pub fn status_list_url(base_url: &str, city: &CityCode, list: u32, purpose: Purpose) -> String {
    format!(
        "{}/v1/status/{city}/{list}/{}",
        base_url.trim_end_matches('/'),
        purpose.as_str()
    )
}

impl StatusListEntry {
    /// The entries of `entry` in `city`'s lists published under `base_url`:
    /// one per purpose, the same index in both.
    pub fn for_entry(base_url: &str, city: &CityCode, entry: StatusEntry) -> Vec<Self> {
        Purpose::ALL
            .into_iter()
            .map(|purpose| {
                let url = status_list_url(base_url, city, entry.list, purpose);
                Self {
                    id: format!("{url}#{}", entry.index),
                    kind: "BitstringStatusListEntry".to_owned(),
                    purpose: purpose.as_str().to_owned(),
                    index: entry.index.to_string(),
                    list_credential: url,
                }
            })
            .collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WireQualification {
    category: String,
    series: String,
    level: i32,
    title: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireSubject {
    name: String,
    qualification: WireQualification,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireCredential {
    #[serde(rename = "@context")]
    context: Vec<String>,
    id: String,
    #[serde(rename = "type")]
    types: Vec<String>,
    issuer: String,
    #[serde(rename = "validFrom")]
    valid_from: DateTime<Utc>,
    #[serde(
        rename = "validUntil",
        skip_serializing_if = "Option::is_none",
        default
    )]
    valid_until: Option<DateTime<Utc>>,
    #[serde(rename = "credentialSubject")]
    credential_subject: WireSubject,
    #[serde(
        rename = "credentialStatus",
        skip_serializing_if = "Vec::is_empty",
        default
    )]
    credential_status: Vec<StatusListEntry>,
    iss: String,
    jti: String,
    iat: i64,
    nbf: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    exp: Option<i64>,
}

/// Signing failed (a malformed key; never expected with generated keys).
#[derive(Debug, thiserror::Error)]
#[error("signing the credential failed: {0}")]
pub struct SignError(String);

/// Signs `claims` with `key` and returns the compact VC-JWT.
pub fn sign(key: &IssuerSigningKey, claims: &CredentialClaims) -> Result<String, SignError> {
    let q = &claims.qualification;
    let issuer = issuer_id(&claims.issuer_city);
    let urn = format!("urn:uuid:{}", claims.id);
    let wire = WireCredential {
        context: vec![VC_CONTEXT_V2.to_owned()],
        id: urn.clone(),
        types: vec!["VerifiableCredential".into(), "TalentCredential".into()],
        issuer: issuer.clone(),
        valid_from: claims.window.from,
        valid_until: claims.window.until,
        credential_subject: WireSubject {
            name: claims.holder_name.clone(),
            qualification: WireQualification {
                category: q.category().as_str().to_owned(),
                series: q.series().to_owned(),
                level: i32::from(q.level()),
                title: q.title().to_owned(),
            },
        },
        credential_status: claims.status.clone(),
        iss: issuer,
        jti: urn,
        iat: claims.issued_at.timestamp(),
        nbf: claims.window.from.timestamp(),
        exp: claims.window.until.map(|u| u.timestamp()),
    };
    sign_compact(key, &wire)
}

/// A compact JWS (`typ: vc+jwt`, EdDSA, the key's `kid`) of `claims`,
/// signed with the key's cached Ed25519 signing key. (`jsonwebtoken::encode`
/// would parse the key's PKCS#8 form and derive its public half on every
/// call: half the cost of an issuance's signature.)
fn sign_compact(key: &IssuerSigningKey, claims: &impl Serialize) -> Result<String, SignError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::Signer;
    let header = serde_json::json!({ "typ": VC_JWT_TYP, "alg": "EdDSA", "kid": key.kid() });
    let header = serde_json::to_vec(&header).map_err(|e| SignError(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| SignError(e.to_string()))?;
    let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 100);
    URL_SAFE_NO_PAD.encode_string(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let signature = key.signing_key().sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut out);
    Ok(out)
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed, with a short explanation.
    Passed(String),
    /// Failed, with the reason.
    Failed(String),
    /// Not run, with the reason.
    Skipped(String),
}

impl Outcome {
    /// A failed check.
    pub fn failed(s: impl Into<String>) -> Self {
        Self::Failed(s.into())
    }
    /// A check that was not run.
    pub fn skipped(s: impl Into<String>) -> Self {
        Self::Skipped(s.into())
    }
    /// True unless failed.
    pub fn ok(&self) -> bool {
        !matches!(self, Self::Failed(_))
    }
}

/// The verification checks, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Well-formed `vc+jwt` with a valid EdDSA signature by the named key.
    Signature,
    /// The key belongs to the issuing city and was current at issuance.
    Issuer,
    /// Now is inside the validity window.
    ValidityWindow,
    /// The live status is active.
    Status,
    /// The presented national ID is the holder's.
    Holder,
}

impl Check {
    /// The name used in audit events (`signature`, `validity_window`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Issuer => "issuer",
            Self::ValidityWindow => "validity_window",
            Self::Status => "status",
            Self::Holder => "holder",
        }
    }
}

/// What the token alone says: three checks and, if decodable, the claims.
#[derive(Debug, Clone)]
pub struct TokenVerification {
    /// Signature check.
    pub signature: Outcome,
    /// Issuer check.
    pub issuer: Outcome,
    /// Validity-window check.
    pub window: Outcome,
    /// The claims, when the signature verified.
    pub claims: Option<CredentialClaims>,
    /// The key id from the header, if any.
    pub kid: Option<String>,
}

impl TokenVerification {
    fn rejected(signature: Outcome, issuer: Outcome, kid: Option<String>) -> Self {
        Self {
            signature,
            issuer,
            window: Outcome::skipped("the token could not be trusted"),
            claims: None,
            kid,
        }
    }
}

/// A compact JWS split into its parts, the header parsed, nothing trusted yet.
///
/// Why our own parsing: `jsonwebtoken::decode` decompresses the Ed25519
/// public key on every call and parses the header twice on our path; a
/// verify is meant to cost its signature check and little else. The parsing
/// is strict: three base64url parts without padding, a JSON header, `crit`
/// refused (no extension is understood), a 64-byte signature checked with
/// `verify_strict` (no malleable or small-order signatures).
#[derive(Debug, Clone)]
pub struct Jws<'a> {
    signing_input: &'a str,
    payload: &'a str,
    signature: [u8; 64],
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl<'a> Jws<'a> {
    /// Splits and parses `token`; `None` when it is not a well-formed JWS.
    pub fn parse(token: &'a str) -> Option<Self> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (signing_input, sig) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        if payload.contains('.') {
            return None;
        }
        let h: JoseHeader = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if h.crit.is_some() {
            return None;
        }
        let signature: [u8; 64] = URL_SAFE_NO_PAD.decode(sig).ok()?.try_into().ok()?;
        Some(Self {
            signing_input,
            payload,
            signature,
            alg: h.alg,
            typ: h.typ,
            kid: h.kid,
        })
    }

    /// The key id of the header.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The claims, if the signature verifies with `key`.
    fn verified_payload(&self, key: &IssuerVerifyingKey) -> Result<Vec<u8>, &'static str> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let point = key
            .point
            .as_ref()
            .ok_or("the key is not a valid Ed25519 key")?;
        point
            .verify_strict(
                self.signing_input.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&self.signature),
            )
            .map_err(|_| "signature does not verify")?;
        URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| "the payload is not base64url")
    }
}

/// Verifies a credential token. `key_for` looks up a registered issuer key by
/// kid. Never fails: every problem becomes a failed check.
pub fn verify_token(
    token: &str,
    key_for: impl FnOnce(&str) -> Option<Arc<IssuerVerifyingKey>>,
    now: DateTime<Utc>,
) -> TokenVerification {
    match Jws::parse(token) {
        Some(jws) => verify_jws(&jws, key_for, now),
        None => TokenVerification::rejected(
            Outcome::failed("not a well-formed JWT with a supported algorithm"),
            Outcome::skipped("no verified token"),
            None,
        ),
    }
}

/// Like [`verify_token`] on a token already parsed (a caller that needed
/// its kid first parses once).
pub fn verify_jws(
    jws: &Jws<'_>,
    key_for: impl FnOnce(&str) -> Option<Arc<IssuerVerifyingKey>>,
    now: DateTime<Utc>,
) -> TokenVerification {
    let kid = jws.kid.clone();
    if jws.alg != "EdDSA" || jws.typ.as_deref() != Some(VC_JWT_TYP) {
        return TokenVerification::rejected(
            Outcome::failed("header must be typ vc+jwt with alg EdDSA"),
            Outcome::skipped("no verified token"),
            kid,
        );
    }
    let Some(kid_str) = kid.clone() else {
        return TokenVerification::rejected(
            Outcome::failed("header has no kid"),
            Outcome::skipped("no key id"),
            None,
        );
    };
    let Some(key) = key_for(&kid_str) else {
        return TokenVerification::rejected(
            Outcome::failed(format!(
                "key {kid_str} is unknown: signature cannot be checked"
            )),
            Outcome::failed(format!(
                "key {kid_str} is not a registered corridor issuer key"
            )),
            kid,
        );
    };
    let payload = match jws.verified_payload(&key) {
        Ok(p) => p,
        Err(why) => {
            return TokenVerification::rejected(
                Outcome::failed(why),
                Outcome::skipped("no verified token"),
                kid,
            );
        }
    };
    let claims = match serde_json::from_slice::<WireCredential>(&payload)
        .ok()
        .and_then(parse_wire)
    {
        Some(c) => c,
        None => {
            return TokenVerification::rejected(
                Outcome::failed("signed, but not a well-formed talent credential"),
                Outcome::skipped("no verified token"),
                kid,
            );
        }
    };
    let signature = Outcome::Passed(format!("EdDSA signature verified with key {kid_str}"));
    let issuer = issuer_check(&key, &claims);
    let window = match claims.window.position(now) {
        WindowPosition::Within => Outcome::Passed("within the validity window".into()),
        WindowPosition::NotYetValid => Outcome::failed("not yet valid"),
        WindowPosition::Expired => Outcome::failed("expired"),
    };
    TokenVerification {
        signature,
        issuer,
        window,
        claims: Some(claims),
        kid,
    }
}

fn issuer_check(key: &IssuerVerifyingKey, claims: &CredentialClaims) -> Outcome {
    if key.city != claims.issuer_city {
        return Outcome::failed(format!(
            "signed with a key of {} but claims issuer {}",
            key.city, claims.issuer_city
        ));
    }
    let leeway = chrono::Duration::seconds(KEY_WINDOW_LEEWAY_SECONDS);
    if claims.issued_at < key.not_before - leeway {
        return Outcome::failed("issued before the key's signing window");
    }
    if let Some(end) = key.not_after
        && claims.issued_at > end + leeway
    {
        return Outcome::failed("issued after the key was retired");
    }
    Outcome::Passed(format!(
        "issued by {} with key {}",
        claims.issuer_city, key.kid
    ))
}

fn parse_wire(w: WireCredential) -> Option<CredentialClaims> {
    if w.context.first().is_none_or(|c| c != VC_CONTEXT_V2)
        || !w.types.iter().any(|t| t == "VerifiableCredential")
        || w.iss != w.issuer
        || w.jti != w.id
    {
        return None;
    }
    let city_code = w.issuer.strip_prefix("urn:g60:city:")?;
    let issuer_city = CityCode::parse("issuer", city_code).ok()?;
    let id = Uuid::parse_str(w.id.strip_prefix("urn:uuid:")?).ok()?;
    let q = w.credential_subject.qualification;
    let qualification = Qualification::parse(
        "qualification",
        Category::from_name(&q.category),
        &q.series,
        q.level,
        &q.title,
    )
    .ok()?;
    let window = ValidityWindow::parse(w.valid_from, w.valid_until, "validUntil").ok()?;
    let issued_at = DateTime::<Utc>::from_timestamp(w.iat, 0)?;
    Some(CredentialClaims {
        id,
        issuer_city,
        qualification,
        holder_name: w.credential_subject.name,
        window,
        issued_at,
        status: w.credential_status,
    })
}

/// The full verification report: token checks plus status and holder.
#[derive(Debug, Clone)]
pub struct Report {
    /// Each check with its outcome, in [`Check`] order.
    pub checks: Vec<(Check, Outcome)>,
    /// True when no check failed.
    pub valid: bool,
}

impl Report {
    /// Assembles the report.
    pub fn new(token: &TokenVerification, status: Outcome, holder: Outcome) -> Self {
        let checks = vec![
            (Check::Signature, token.signature.clone()),
            (Check::Issuer, token.issuer.clone()),
            (Check::ValidityWindow, token.window.clone()),
            (Check::Status, status),
            (Check::Holder, holder),
        ];
        // A report is valid only if the signature actually passed (not merely
        // "not failed") and nothing else failed.
        let valid = matches!(token.signature, Outcome::Passed(_))
            && matches!(token.issuer, Outcome::Passed(_))
            && checks.iter().all(|(_, o)| o.ok());
        Self { checks, valid }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::IssuerSigningKey;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn city(c: &str) -> CityCode {
        let Ok(c) = CityCode::parse("c", c) else {
            unreachable!()
        };
        c
    }

    fn claims(now: DateTime<Utc>) -> CredentialClaims {
        let Ok(q) = Qualification::parse(
            "q",
            Some(Category::ProfessionalTitle),
            "engineering",
            4,
            "高级工程师",
        ) else {
            unreachable!()
        };
        CredentialClaims {
            id: Uuid::now_v7(),
            issuer_city: city("hangzhou"),
            qualification: q,
            holder_name: "张三".into(),
            window: ValidityWindow {
                from: now - chrono::Duration::days(1),
                until: Some(now + chrono::Duration::days(365)),
            },
            issued_at: DateTime::<Utc>::from_timestamp(now.timestamp(), 0).unwrap_or(now),
            status: StatusListEntry::for_entry(
                "https://status.example/",
                &city("hangzhou"),
                StatusEntry {
                    list: 2,
                    index: 4711,
                },
            ),
        }
    }

    fn setup() -> (IssuerSigningKey, Arc<IssuerVerifyingKey>, DateTime<Utc>) {
        let now = Utc::now();
        let Ok(k) = IssuerSigningKey::generate(&city("hangzhou"), now) else {
            unreachable!()
        };
        let vk = Arc::new(k.verifying_key(now - chrono::Duration::hours(1)));
        (k, vk, now)
    }

    #[test]
    fn signed_credential_verifies_and_round_trips() {
        let (k, vk, now) = setup();
        let c = claims(now);
        let Ok(token) = sign(&k, &c) else {
            unreachable!()
        };
        let v = verify_token(&token, |kid| (kid == vk.kid).then(|| vk.clone()), now);
        assert!(matches!(v.signature, Outcome::Passed(_)), "{v:?}");
        assert!(matches!(v.issuer, Outcome::Passed(_)), "{v:?}");
        assert!(matches!(v.window, Outcome::Passed(_)), "{v:?}");
        assert_eq!(v.claims.as_ref(), Some(&c));
        let header = token.split('.').next().unwrap_or_default();
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap_or_default())
            .unwrap_or_default();
        assert!(header.contains("\"typ\":\"vc+jwt\""), "{header}");
    }

    #[test]
    fn tampered_payload_fails_the_signature() {
        let (k, vk, now) = setup();
        let Ok(token) = sign(&k, &claims(now)) else {
            unreachable!()
        };
        let parts: Vec<&str> = token.split('.').collect();
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default();
        let forged = String::from_utf8(payload)
            .unwrap_or_default()
            .replace("\"level\":4", "\"level\":5");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged),
            parts[2]
        );
        let v = verify_token(&forged, |_| Some(vk.clone()), now);
        assert_eq!(
            v.signature,
            Outcome::Failed("signature does not verify".into())
        );
        assert!(v.claims.is_none());
    }

    #[test]
    fn unknown_kid_and_foreign_key_fail() {
        let (k, _vk, now) = setup();
        let Ok(token) = sign(&k, &claims(now)) else {
            unreachable!()
        };
        let v = verify_token(&token, |_| None, now);
        assert!(!v.signature.ok() && !v.issuer.ok());
        // A Hefei key that signs a Hangzhou claim fails the issuer check.
        let Ok(hefei) = IssuerSigningKey::generate(&city("hefei"), now) else {
            unreachable!()
        };
        let Ok(token) = sign(&hefei, &claims(now)) else {
            unreachable!()
        };
        let hvk = Arc::new(hefei.verifying_key(now - chrono::Duration::hours(1)));
        let v = verify_token(&token, |_| Some(hvk.clone()), now);
        assert!(v.signature.ok());
        assert!(!v.issuer.ok(), "{v:?}");
    }

    #[test]
    fn retired_key_window_is_enforced() {
        let (k, _, now) = setup();
        let c = claims(now);
        let Ok(token) = sign(&k, &c) else {
            unreachable!()
        };
        let mut retired = k.verifying_key(now - chrono::Duration::days(10));
        retired.not_after = Some(now - chrono::Duration::days(5));
        let retired = Arc::new(retired);
        let v = verify_token(&token, |_| Some(retired.clone()), now);
        assert_eq!(
            v.issuer,
            Outcome::Failed("issued after the key was retired".into())
        );
    }

    /// The JWS parsing is strict: padding, an extra part, a `crit` header, a
    /// wrong `alg` or `typ`, or a signature of another length are refused.
    #[test]
    fn only_strictly_well_formed_tokens_verify() {
        let (key, vk, now) = setup();
        let token = sign(&key, &claims(now)).unwrap();
        assert!(
            verify_token(&token, |_| Some(vk.clone()), now)
                .claims
                .is_some()
        );
        let (head, rest) = token.split_once('.').unwrap();
        let (payload, sig) = rest.split_once('.').unwrap();
        let header = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let kid = key.kid();
        let cases = [
            format!("{token}="),
            format!("{head}.{payload}.{sig}.x"),
            format!("{head}.{payload}x.{sig}"),
            format!(
                "{}.{payload}.{sig}",
                header(&format!(
                    r#"{{"alg":"EdDSA","typ":"vc+jwt","kid":"{kid}","crit":["exp"]}}"#
                ))
            ),
            format!(
                "{}.{payload}.{sig}",
                header(&format!(r#"{{"alg":"none","typ":"vc+jwt","kid":"{kid}"}}"#))
            ),
            format!(
                "{}.{payload}.{sig}",
                header(&format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#))
            ),
            format!("{head}.{payload}.{}", &sig[..sig.len() - 4]),
            format!("{head}.{payload}."),
        ];
        for bad in cases {
            let v = verify_token(&bad, |_| Some(vk.clone()), now);
            assert!(v.claims.is_none(), "accepted: {bad}");
            assert!(!v.signature.ok(), "{bad}");
        }
    }

    #[test]
    fn window_and_garbage() {
        let (k, vk, now) = setup();
        let Ok(token) = sign(&k, &claims(now)) else {
            unreachable!()
        };
        let later = now + chrono::Duration::days(400);
        let v = verify_token(&token, |_| Some(vk.clone()), later);
        assert_eq!(v.window, Outcome::Failed("expired".into()));
        let v = verify_token("garbage", |_| Some(vk.clone()), now);
        assert!(!v.signature.ok());
        let r = Report::new(
            &v,
            Outcome::Skipped("x".into()),
            Outcome::Skipped("x".into()),
        );
        assert!(!r.valid);
    }
}

/// What a recognition attestation states.
#[derive(Debug, Clone)]
pub struct AttestationClaims {
    /// Recognition id.
    pub recognition_id: Uuid,
    /// The source credential.
    pub credential_id: Uuid,
    /// Its issuing city.
    pub source_city: CityCode,
    /// The qualification recognized (as the source credential states it).
    pub qualification: Qualification,
    /// The receiving city, which signs.
    pub target_city: CityCode,
    /// Outcome name.
    pub outcome: String,
    /// Mapped level, if any.
    pub mapped_level: Option<u8>,
    /// Deciding policy version.
    pub policy_version: i32,
    /// Deciding rules.
    pub deciding_rules: Vec<String>,
    /// When decided.
    pub issued_at: DateTime<Utc>,
    /// When the attestation stops being valid (`validUntil`, `exp`).
    pub valid_until: DateTime<Utc>,
    /// Where the recognition's status is published, or nothing.
    pub status: Vec<StatusListEntry>,
}

/// Signs a recognition attestation: a VC-JWT of type
/// `RecognitionAttestation` issued by the target city, whose subject is the
/// source credential (`urn:uuid:<credential id>`). Its status entries turn
/// on when the recognition is voided (revocation) or suspended.
pub fn sign_attestation(
    key: &IssuerSigningKey,
    a: &AttestationClaims,
) -> Result<String, SignError> {
    let issuer = issuer_id(&a.target_city);
    let id = format!("urn:uuid:{}", a.recognition_id);
    let q = &a.qualification;
    let mut body = serde_json::json!({
        "@context": [VC_CONTEXT_V2],
        "id": id,
        "type": ["VerifiableCredential", "RecognitionAttestation"],
        "issuer": issuer,
        "validFrom": a.issued_at,
        "validUntil": a.valid_until,
        "credentialSubject": {
            "id": format!("urn:uuid:{}", a.credential_id),
            "qualification": {
                "category": q.category().as_str(),
                "series": q.series(),
                "level": q.level(),
            },
            "recognition": {
                "sourceCity": a.source_city.as_str(),
                "targetCity": a.target_city.as_str(),
                "outcome": a.outcome,
                "mappedLevel": a.mapped_level,
                "policyVersion": a.policy_version,
                "decidingRules": a.deciding_rules,
            }
        },
        "iss": issuer,
        "jti": id,
        "iat": a.issued_at.timestamp(),
        "nbf": a.issued_at.timestamp(),
        "exp": a.valid_until.timestamp(),
    });
    if !a.status.is_empty()
        && let Some(o) = body.as_object_mut()
    {
        o.insert(
            "credentialStatus".to_owned(),
            serde_json::to_value(&a.status).map_err(|e| SignError(e.to_string()))?,
        );
    }
    sign_compact(key, &body)
}

/// What a status list credential states.
#[derive(Debug, Clone)]
pub struct StatusListClaims {
    /// The publishing city.
    pub city: CityCode,
    /// The list credential's URL (its `id`).
    pub url: String,
    /// What a set bit means.
    pub purpose: Purpose,
    /// The list, encoded (`Bitstring::encode`).
    pub encoded_list: String,
    /// When built.
    pub issued_at: DateTime<Utc>,
    /// How long a verifier may cache it, milliseconds (`ttl`); `validUntil`
    /// is `issued_at` plus this.
    pub ttl_ms: u64,
}

/// Signs a `BitstringStatusListCredential` as a VC-JWT with the city's key.
pub fn sign_status_list(key: &IssuerSigningKey, l: &StatusListClaims) -> Result<String, SignError> {
    let issuer = issuer_id(&l.city);
    let until = l.issued_at
        + chrono::Duration::milliseconds(i64::try_from(l.ttl_ms).unwrap_or(i64::MAX / 2));
    let body = serde_json::json!({
        "@context": [VC_CONTEXT_V2],
        "id": l.url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": l.issued_at,
        "validUntil": until,
        "credentialSubject": {
            "id": format!("{}#list", l.url),
            "type": "BitstringStatusList",
            "statusPurpose": l.purpose.as_str(),
            "encodedList": l.encoded_list,
            "ttl": l.ttl_ms,
        },
        "iss": issuer,
        "jti": l.url,
        "iat": l.issued_at.timestamp(),
        "nbf": l.issued_at.timestamp(),
        "exp": until.timestamp(),
    });
    sign_compact(key, &body)
}
