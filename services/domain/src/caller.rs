//! Who is calling: identity tokens from the corridor's identity provider.
//!
//! A caller presents `authorization: Bearer <JWT>`. [`IdentityVerifier`]
//! accepts it only if all of these hold (anything else is refused, and the
//! transport answers UNAUTHENTICATED):
//! - `alg` is in the allow-list (EdDSA only; `none`, HMAC and RSA are refused,
//!   which also rules out algorithm-confusion attacks);
//! - `kid` names one of the configured identity-provider keys and the
//!   signature verifies with it;
//! - `iss` and `aud` equal the configured values; `sub`, `exp` and `nbf` are
//!   present; `exp` and `nbf` hold with a small leeway (30 s);
//! - `city`, when present, is a well-formed city code.
//!
//! Roles the service does not know are ignored (a newer identity provider may
//! know more); city-scoped roles need a `city` claim to mean anything.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::city::CityCode;

/// Clock skew tolerated on `exp` and `nbf` of identity tokens.
pub const IDENTITY_LEEWAY_SECONDS: u64 = 30;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages its own city's credentials.
    Issuer,
    /// Decides recognitions into its own city.
    Recognizer,
    /// Publishes its own city's recognition policy.
    PolicyAdmin,
    /// Verifies credentials.
    Verifier,
    /// Reads everything, changes nothing.
    Auditor,
    /// Operates the corridor: rotates keys.
    CorridorAdmin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Self::Issuer,
        Self::Recognizer,
        Self::PolicyAdmin,
        Self::Verifier,
        Self::Auditor,
        Self::CorridorAdmin,
    ];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Recognizer => "recognizer",
            Self::PolicyAdmin => "policy_admin",
            Self::Verifier => "verifier",
            Self::Auditor => "auditor",
            Self::CorridorAdmin => "corridor_admin",
        }
    }

    /// Parses a claim value.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The `sub` claim.
    pub subject: String,
    /// The `city` claim, if any.
    pub city: Option<CityCode>,
    /// Known roles from the `roles` claim.
    pub roles: Vec<Role>,
}

/// Why a caller may not do something. The transport answers PERMISSION_DENIED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

impl Caller {
    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Requires a city-scoped `role` for `city`: the caller must hold the
    /// role and its token's city must be `city`.
    pub fn require_in_city(&self, role: Role, city: &CityCode) -> Result<(), Denied> {
        if !self.has(role) {
            return Err(Denied(format!("requires the {} role", role.as_str())));
        }
        if self.city.as_ref() != Some(city) {
            return Err(Denied(format!(
                "the {} role is scoped to the caller's own city; {city} is not it",
                role.as_str()
            )));
        }
        Ok(())
    }

    /// Requires any one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), Denied> {
        if roles.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            Err(Denied(format!(
                "requires one of the roles {}",
                names.join(", ")
            )))
        }
    }
}

/// The claims of an identity token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityClaims {
    /// Issuer (the identity provider).
    pub iss: String,
    /// Audience (this service): one string, or an array that includes it
    /// (RFC 7519 §4.1.3 allows both).
    pub aud: Audience,
    /// Subject (the calling system or person).
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    pub nbf: i64,
    /// Issued at. Optional, as in RFC 7519; not used in any check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The caller's city, for city-scoped roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The `aud` claim: a string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "x"`.
    One(String),
    /// `"aud": ["x", "y"]`.
    Many(Vec<String>),
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Self::One(s.to_owned())
    }
}

/// An identity token was refused. The message is for logs, not for clients.
#[derive(Debug, Clone, thiserror::Error)]
#[error("identity token refused: {0}")]
pub struct Unauthenticated(pub String);

/// Validates identity tokens against the configured provider keys.
pub struct IdentityVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl fmt::Debug for IdentityVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl IdentityVerifier {
    /// A verifier trusting Ed25519 public keys `(kid, raw 32 bytes)`, for
    /// tokens from `issuer` to `audience`.
    pub fn new(issuer: &str, audience: &str, keys: Vec<(String, [u8; 32])>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = IDENTITY_LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "nbf"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        let keys = keys
            .into_iter()
            .map(|(kid, pk)| (kid, DecodingKey::from_ed_der(&pk)))
            .collect();
        Self { keys, validation }
    }

    /// Validates a compact JWT and returns the caller.
    pub fn verify(&self, token: &str) -> Result<Caller, Unauthenticated> {
        self.verify_until(token).map(|(caller, _)| caller)
    }

    /// Like [`IdentityVerifier::verify`], with the token's `exp` (seconds
    /// since the epoch), for callers that cache validated tokens.
    pub fn verify_until(&self, token: &str) -> Result<(Caller, i64), Unauthenticated> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Unauthenticated(format!("malformed header: {e}")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(Unauthenticated(format!(
                "algorithm {:?} not allowed",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| Unauthenticated("no kid in header".into()))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| Unauthenticated(format!("unknown identity key {kid}")))?;
        let data = jsonwebtoken::decode::<IdentityClaims>(token, key, &self.validation)
            .map_err(|e| Unauthenticated(e.to_string()))?;
        let c = data.claims;
        if c.sub.trim().is_empty()
            || c.sub.len() > 200
            || c.sub.chars().any(crate::text::is_deceptive)
        {
            return Err(Unauthenticated(
                "sub must be 1 to 200 characters, none of them control or invisible".into(),
            ));
        }
        let city = match c.city.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                CityCode::parse("city", raw)
                    .map_err(|_| Unauthenticated("city claim is not a city code".into()))?,
            ),
        };
        let roles = c.roles.iter().filter_map(|r| Role::from_name(r)).collect();
        Ok((
            Caller {
                subject: c.sub,
                city,
                roles,
            },
            c.exp,
        ))
    }
}

/// Mints identity tokens with an Ed25519 key: what `corridor token` and the
/// tests use to stand in for the identity provider.
pub struct IdentityMinter {
    kid: String,
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl fmt::Debug for IdentityMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityMinter")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Minting failed.
#[derive(Debug, thiserror::Error)]
#[error("minting an identity token failed: {0}")]
pub struct MintError(String);

impl IdentityMinter {
    /// A minter from a 32-byte Ed25519 seed. Returns it with the public key.
    pub fn from_seed(kid: &str, seed: [u8; 32], issuer: &str, audience: &str) -> (Self, [u8; 32]) {
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        (
            Self {
                kid: kid.to_owned(),
                key: crate::keys::ed25519_encoding_key(&seed),
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
            },
            public,
        )
    }

    /// The claims a token for `sub` would carry, valid from `now` for `ttl`.
    pub fn claims(
        &self,
        sub: &str,
        city: Option<&str>,
        roles: &[&str],
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> IdentityClaims {
        IdentityClaims {
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            sub: sub.to_owned(),
            exp: (now + ttl).timestamp(),
            nbf: now.timestamp(),
            iat: Some(now.timestamp()),
            city: city.map(str::to_owned),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// Signs arbitrary claims (tests use this to build bad tokens too).
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, MintError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| MintError(e.to_string()))
    }

    /// Mints a token for `sub`.
    pub fn mint(
        &self,
        sub: &str,
        city: Option<&str>,
        roles: &[&str],
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<String, MintError> {
        self.sign(&self.claims(sub, city, roles, now, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const ISS: &str = "https://idp.test";
    const AUD: &str = "corridor";

    fn setup() -> (IdentityMinter, IdentityVerifier) {
        let (m, pk) = IdentityMinter::from_seed("k1", [9; 32], ISS, AUD);
        (m, IdentityVerifier::new(ISS, AUD, vec![("k1".into(), pk)]))
    }

    #[test]
    fn accepts_a_good_token() {
        let (m, v) = setup();
        let t = m
            .mint(
                "hz-hr",
                Some("hangzhou"),
                &["issuer", "astronaut"],
                Utc::now(),
                chrono::Duration::minutes(5),
            )
            .unwrap();
        let c = v.verify(&t).unwrap();
        assert_eq!(c.roles, vec![Role::Issuer]);
        assert_eq!(c.city.as_ref().map(|c| c.as_str()), Some("hangzhou"));
    }

    #[test]
    fn refuses_bad_tokens() {
        let (m, v) = setup();
        let now = Utc::now();
        let good = m.claims("s", None, &["verifier"], now, chrono::Duration::minutes(5));
        // Expired beyond the leeway.
        let mut c = good.clone();
        c.exp = (now - chrono::Duration::minutes(2)).timestamp();
        assert!(v.verify(&m.sign(&c).unwrap()).is_err());
        // Not yet valid.
        let mut c = good.clone();
        c.nbf = (now + chrono::Duration::minutes(2)).timestamp();
        assert!(v.verify(&m.sign(&c).unwrap()).is_err());
        // Wrong audience, wrong issuer.
        let mut c = good.clone();
        c.aud = "someone-else".into();
        assert!(v.verify(&m.sign(&c).unwrap()).is_err());
        let mut c = good.clone();
        c.iss = "https://evil".into();
        assert!(v.verify(&m.sign(&c).unwrap()).is_err());
        // Missing nbf.
        let mut j = serde_json::to_value(&good).unwrap();
        j.as_object_mut().unwrap().remove("nbf");
        assert!(v.verify(&m.sign(&j).unwrap()).is_err());
        // alg none.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).unwrap());
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#)
        );
        assert!(v.verify(&none).is_err());
        // HS256 signed with the public key as the secret (algorithm confusion).
        let (_, pk) = IdentityMinter::from_seed("k1", [9; 32], ISS, AUD);
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(&pk)).unwrap();
        assert!(v.verify(&hs).is_err());
        // Signed by another key under the same kid.
        let (other, _) = IdentityMinter::from_seed("k1", [8; 32], ISS, AUD);
        assert!(v.verify(&other.sign(&good).unwrap()).is_err());
        // An array audience without ours.
        let mut c = good.clone();
        c.aud = Audience::Many(vec!["a".into(), "b".into()]);
        assert!(v.verify(&m.sign(&c).unwrap()).is_err());
        // And the untouched claims pass.
        assert!(v.verify(&m.sign(&good).unwrap()).is_ok());
    }

    /// Regression (architecture issue, defect 1): `iat` was required and an
    /// array `aud` refused, though RFC 7519 and the README allow both.
    #[test]
    fn iat_is_optional_and_aud_may_be_an_array() {
        let (m, v) = setup();
        let good = m.claims(
            "s",
            None,
            &["verifier"],
            Utc::now(),
            chrono::Duration::minutes(5),
        );
        let mut j = serde_json::to_value(&good).unwrap();
        j.as_object_mut().unwrap().remove("iat");
        assert!(v.verify(&m.sign(&j).unwrap()).is_ok(), "no iat");
        let mut c = good.clone();
        c.aud = Audience::Many(vec!["someone-else".into(), AUD.into()]);
        assert!(v.verify(&m.sign(&c).unwrap()).is_ok(), "aud array");
    }

    #[test]
    fn city_scoped_roles() {
        let hz = CityCode::parse("c", "hangzhou").unwrap();
        let hf = CityCode::parse("c", "hefei").unwrap();
        let caller = Caller {
            subject: "s".into(),
            city: Some(hz.clone()),
            roles: vec![Role::Issuer],
        };
        assert!(caller.require_in_city(Role::Issuer, &hz).is_ok());
        assert!(caller.require_in_city(Role::Issuer, &hf).is_err());
        assert!(caller.require_in_city(Role::Recognizer, &hz).is_err());
        assert!(caller.require_any(&[Role::Verifier, Role::Issuer]).is_ok());
        assert!(caller.require_any(&[Role::Verifier]).is_err());
    }
}
