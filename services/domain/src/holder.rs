//! Holders' national ID numbers.
//!
//! A [`NationalId`] is parsed once at the edge (format and ISO 7064 MOD 11-2
//! check digit of the 18-character resident identity number, which the
//! foreigners' permanent residence ID card shares) and is then only ever
//! turned into a [`HolderHash`]: HMAC-SHA256 under a secret key from
//! configuration. The hash lets the registry match two cities' credentials
//! of one person without the number itself; without the key it cannot be
//! reversed by enumerating the (small) space of ID numbers. `Debug` never
//! prints the number.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Violations;

/// A syntactically valid national ID number. Never printed, never stored.
#[derive(Clone)]
pub struct NationalId(String);

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NationalId(<redacted>)")
    }
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

impl NationalId {
    /// Parses an 18-character ID number: 17 digits and a check character
    /// (a digit or `X`, case-insensitive) that must match the other 17.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Violations> {
        let s = raw.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
            return Err(Violations::one(
                field,
                "must be an 18-character national ID number",
            ));
        }
        if b[17] != Self::check_char(&b[..17]) {
            return Err(Violations::one(
                field,
                "the check digit of the national ID number does not match",
            ));
        }
        Ok(Self(s))
    }

    /// The check character of the first 17 digits.
    fn check_char(digits: &[u8]) -> u8 {
        let sum: u32 = digits
            .iter()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        CHECK[(sum % 11) as usize]
    }

    /// Completes 17 digits with their check character: for tests and sample data.
    pub fn with_check_digit(first17: &str) -> Option<String> {
        let b = first17.as_bytes();
        (b.len() == 17 && b.iter().all(u8::is_ascii_digit))
            .then(|| format!("{first17}{}", char::from(Self::check_char(b))))
    }
}

/// The keyed hash of a national ID: 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct HolderHash(String);

impl HolderHash {
    /// Wraps a stored hash.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }
    /// A hash that matches nothing (a record read back without its hash).
    pub fn unknown() -> Self {
        Self(String::new())
    }
    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Constant-time comparison with another hash. An unknown hash matches
    /// nothing.
    pub fn matches(&self, other: &HolderHash) -> bool {
        !self.0.is_empty() && self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// Computes [`HolderHash`]es under the configured secret key.
#[derive(Clone)]
pub struct HolderHasher {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for HolderHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HolderHasher(<key redacted>)")
    }
}

impl HolderHasher {
    /// A hasher keyed with `key` (at least 32 bytes).
    pub fn new(key: &[u8]) -> Result<Self, KeyTooShort> {
        if key.len() < 32 {
            return Err(KeyTooShort);
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| KeyTooShort)?;
        Ok(Self { mac })
    }

    /// The keyed hash of `id`.
    pub fn hash(&self, id: &NationalId) -> HolderHash {
        let mut mac = self.mac.clone();
        mac.update(b"g60-holder-v1:");
        mac.update(id.0.as_bytes());
        HolderHash(hex::encode(mac.finalize().into_bytes()))
    }
}

/// The holder hash key is shorter than 32 bytes.
#[derive(Debug, thiserror::Error)]
#[error("the holder hash key must be at least 32 bytes")]
pub struct KeyTooShort;

#[cfg(test)]
mod tests {
    use super::*;

    // A well-known sample number from GB 11643-1999 documentation.
    const SAMPLE: &str = "11010519491231002X";

    #[test]
    fn check_digit_is_enforced() {
        assert!(NationalId::parse("id", SAMPLE).is_ok());
        assert!(NationalId::parse("id", &SAMPLE.to_lowercase()).is_ok());
        assert!(NationalId::parse("id", "110105194912310021").is_err());
        assert!(NationalId::parse("id", "1101051949123100").is_err());
        assert!(NationalId::parse("id", "").is_err());
        assert_eq!(
            NationalId::with_check_digit("11010519491231002").as_deref(),
            Some(SAMPLE)
        );
    }

    #[test]
    fn debug_never_shows_the_number() {
        let Ok(id) = NationalId::parse("id", SAMPLE) else {
            unreachable!()
        };
        assert!(!format!("{id:?}").contains("110105"));
    }

    #[test]
    fn hash_is_keyed_and_stable() {
        let Ok(id) = NationalId::parse("id", SAMPLE) else {
            unreachable!()
        };
        let (Ok(a), Ok(b)) = (HolderHasher::new(&[1; 32]), HolderHasher::new(&[2; 32])) else {
            unreachable!()
        };
        assert!(a.hash(&id).matches(&a.hash(&id)));
        assert!(!a.hash(&id).matches(&b.hash(&id)));
        assert_eq!(a.hash(&id).as_str().len(), 64);
        assert!(!a.hash(&id).as_str().contains(SAMPLE));
        assert!(HolderHasher::new(&[0; 16]).is_err());
    }
}
