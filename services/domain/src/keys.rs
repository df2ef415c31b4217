//! City issuer keys.
//!
//! Each city signs with an Ed25519 key. Private keys exist in clear only in
//! memory; at rest they are sealed with ChaCha20-Poly1305 under the
//! key-encryption key (KEK) from configuration, with the `kid` as associated
//! data so a sealed key cannot be swapped onto another key id. Nothing here
//! implements `Debug` with key material in it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use jsonwebtoken::EncodingKey;

use crate::city::CityCode;
use crate::error::RandomError;
use crate::random_bytes;

/// The key-encryption key that seals issuer private keys at rest.
pub struct KeyEncryptionKey(ChaCha20Poly1305);

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

impl KeyEncryptionKey {
    /// A KEK from exactly 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 32 {
            return Err(KeyError::KekLength);
        }
        Ok(Self(ChaCha20Poly1305::new(Key::from_slice(bytes))))
    }
}

/// Problems with key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The KEK is not 32 bytes.
    #[error("the key-encryption key must be exactly 32 bytes")]
    KekLength,
    /// A sealed key does not open under this KEK and kid.
    #[error("sealed private key of {0} does not open with the configured key-encryption key")]
    Unseal(String),
    /// Sealing failed.
    #[error("sealing a private key failed")]
    Seal,
    /// A stored public key is not 32 bytes.
    #[error("stored public key of {0} is malformed")]
    PublicKey(String),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A city's signing key, in memory.
pub struct IssuerSigningKey {
    kid: String,
    city: CityCode,
    signing: SigningKey,
}

impl fmt::Debug for IssuerSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerSigningKey")
            .field("kid", &self.kid)
            .field("city", &self.city)
            .finish_non_exhaustive()
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410 §7), followed by the
/// 32-byte seed: the form `jsonwebtoken` takes for EdDSA signing keys.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The `jsonwebtoken` signing key of an Ed25519 seed (PKCS#8 v1 DER).
pub(crate) fn ed25519_encoding_key(seed: &[u8; 32]) -> EncodingKey {
    let mut der = Vec::with_capacity(48);
    der.extend_from_slice(&PKCS8_ED25519_PREFIX);
    der.extend_from_slice(seed);
    EncodingKey::from_ed_der(&der)
}

impl IssuerSigningKey {
    /// Generates a new key for `city`; the kid is `<city>-<yyyymmdd>-<random>`.
    pub fn generate(city: &CityCode, now: DateTime<Utc>) -> Result<Self, KeyError> {
        let seed: [u8; 32] = random_bytes()?;
        let suffix: [u8; 4] = random_bytes()?;
        let kid = format!("{city}-{}-{}", now.format("%Y%m%d"), hex::encode(suffix));
        Ok(Self::from_seed(kid, city.clone(), seed))
    }

    fn from_seed(kid: String, city: CityCode, seed: [u8; 32]) -> Self {
        Self {
            kid,
            city,
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The owning city.
    pub fn city(&self) -> &CityCode {
        &self.city
    }

    /// The 32 raw bytes of the public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Seals the private key: `nonce (12 bytes) || ciphertext`.
    pub fn seal(&self, kek: &KeyEncryptionKey) -> Result<Vec<u8>, KeyError> {
        seal_seed(kek, &self.kid, &self.signing)
    }

    /// Opens a sealed private key of `kid`.
    pub fn unseal(
        kid: &str,
        city: CityCode,
        sealed: &[u8],
        kek: &KeyEncryptionKey,
    ) -> Result<Self, KeyError> {
        let seed = unseal_seed(kek, kid, sealed)?;
        Ok(Self::from_seed(kid.to_owned(), city, seed))
    }

    /// The public half, for verification.
    pub fn verifying_key(&self, not_before: DateTime<Utc>) -> IssuerVerifyingKey {
        IssuerVerifyingKey::from_public(
            self.kid.clone(),
            self.city.clone(),
            self.public_key(),
            not_before,
            None,
        )
    }
}

/// A public issuer key with its signing window, ready to verify tokens.
#[derive(Clone)]
pub struct IssuerVerifyingKey {
    /// Key id.
    pub kid: String,
    /// Owning city.
    pub city: CityCode,
    /// Raw public key.
    pub public_key: [u8; 32],
    /// Start of the signing window.
    pub not_before: DateTime<Utc>,
    /// End of the signing window (when the key was retired).
    pub not_after: Option<DateTime<Utc>>,
    /// The public key as a curve point, decompressed once per key rather
    /// than on every verification (`None`: the bytes are not a valid point,
    /// and nothing verifies with it).
    pub(crate) point: Option<ed25519_dalek::VerifyingKey>,
}

impl fmt::Debug for IssuerVerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerVerifyingKey")
            .field("kid", &self.kid)
            .field("city", &self.city)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IssuerVerifyingKey {
    /// Builds a verifying key from stored parts.
    pub fn from_public(
        kid: String,
        city: CityCode,
        public_key: [u8; 32],
        not_before: DateTime<Utc>,
        not_after: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            point: ed25519_dalek::VerifyingKey::from_bytes(&public_key).ok(),
            kid,
            city,
            public_key,
            not_before,
            not_after,
        }
    }

    /// Like [`IssuerVerifyingKey::from_public`], from a stored byte slice.
    pub fn from_stored(
        kid: String,
        city: CityCode,
        public_key: &[u8],
        not_before: DateTime<Utc>,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Self, KeyError> {
        let pk: [u8; 32] = public_key
            .try_into()
            .map_err(|_| KeyError::PublicKey(kid.clone()))?;
        Ok(Self::from_public(kid, city, pk, not_before, not_after))
    }

    /// The JWK `x` parameter: base64url of the raw public key.
    pub fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public_key)
    }

    /// The key as a JWK (RFC 8037), with `nbf`/`exp` for its signing window.
    pub fn to_jwk(&self) -> serde_json::Value {
        let mut jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": self.x(),
            "nbf": self.not_before.timestamp(),
        });
        if let (Some(exp), Some(obj)) = (self.not_after, jwk.as_object_mut()) {
            obj.insert("exp".into(), exp.timestamp().into());
        }
        jwk
    }
}

/// A city key as stored: the public half in clear, the private half sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKeyRecord {
    /// Key id.
    pub kid: String,
    /// Owning city.
    pub city: CityCode,
    /// Raw Ed25519 public key.
    pub public_key: [u8; 32],
    /// `nonce || ChaCha20-Poly1305(seed)` under the KEK, kid as AAD.
    pub sealed_private_key: Vec<u8>,
    /// The city's current signing key (else retired).
    pub current: bool,
    /// Start of the signing window.
    pub not_before: DateTime<Utc>,
    /// End of the signing window (retirement).
    pub not_after: Option<DateTime<Utc>>,
}

impl IssuerKeyRecord {
    /// The public key, ready to verify.
    pub fn verifying(&self) -> IssuerVerifyingKey {
        IssuerVerifyingKey::from_public(
            self.kid.clone(),
            self.city.clone(),
            self.public_key,
            self.not_before,
            self.not_after,
        )
    }
}

/// Seals an Ed25519 seed under `kek`, bound to `kid`: `nonce || ciphertext`.
fn seal_seed(kek: &KeyEncryptionKey, kid: &str, key: &SigningKey) -> Result<Vec<u8>, KeyError> {
    let nonce: [u8; 12] = random_bytes()?;
    let ct = kek
        .0
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: key.as_bytes(),
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| KeyError::Seal)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal_seed`] sealed for `kid`.
fn unseal_seed(kek: &KeyEncryptionKey, kid: &str, sealed: &[u8]) -> Result<[u8; 32], KeyError> {
    let fail = || KeyError::Unseal(kid.to_owned());
    if sealed.len() < 12 {
        return Err(fail());
    }
    let (nonce, ct) = sealed.split_at(12);
    let seed = kek
        .0
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| fail())?;
    seed.as_slice().try_into().map_err(|_| fail())
}

/// The corridor's own key: it signs the audit chain's checkpoints. Sealed
/// at rest like the city keys, under the same KEK.
pub struct CorridorSigningKey {
    kid: String,
    signing: SigningKey,
}

impl fmt::Debug for CorridorSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorridorSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl CorridorSigningKey {
    /// A new key; the kid is `corridor-<yyyymmdd>-<random>`.
    pub fn generate(now: DateTime<Utc>) -> Result<Self, KeyError> {
        let seed: [u8; 32] = random_bytes()?;
        let suffix: [u8; 4] = random_bytes()?;
        Ok(Self {
            kid: format!("corridor-{}-{}", now.format("%Y%m%d"), hex::encode(suffix)),
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Opens a sealed corridor key.
    pub fn unseal(kid: &str, sealed: &[u8], kek: &KeyEncryptionKey) -> Result<Self, KeyError> {
        let seed = unseal_seed(kek, kid, sealed)?;
        Ok(Self {
            kid: kid.to_owned(),
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Seals it under `kek`.
    pub fn seal(&self, kek: &KeyEncryptionKey) -> Result<Vec<u8>, KeyError> {
        seal_seed(kek, &self.kid, &self.signing)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32 raw bytes of the public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The Ed25519 key, to sign with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city() -> CityCode {
        let Ok(c) = CityCode::parse("c", "hangzhou") else {
            unreachable!()
        };
        c
    }

    #[test]
    fn seal_round_trips_and_binds_the_kid() -> Result<(), KeyError> {
        let kek = KeyEncryptionKey::new(&[7; 32])?;
        let key = IssuerSigningKey::generate(&city(), Utc::now())?;
        let sealed = key.seal(&kek)?;
        assert!(!sealed.windows(32).any(|w| w == key.signing.as_bytes()));
        let opened = IssuerSigningKey::unseal(key.kid(), city(), &sealed, &kek)?;
        assert_eq!(opened.public_key(), key.public_key());
        assert!(IssuerSigningKey::unseal("other-kid", city(), &sealed, &kek).is_err());
        let other = KeyEncryptionKey::new(&[8; 32])?;
        assert!(IssuerSigningKey::unseal(key.kid(), city(), &sealed, &other).is_err());
        assert!(KeyEncryptionKey::new(&[0; 16]).is_err());
        Ok(())
    }

    #[test]
    fn kid_names_the_city() -> Result<(), KeyError> {
        let key = IssuerSigningKey::generate(&city(), Utc::now())?;
        assert!(key.kid().starts_with("hangzhou-"));
        assert!(!format!("{key:?}").contains("signing"));
        Ok(())
    }
}
