//! W3C Bitstring Status Lists (v1.0): where a credential's or an
//! attestation's status bit lives, and how a list is encoded.
//!
//! Each city publishes numbered lists of [`LIST_SIZE`] entries, one list
//! credential per purpose ([`Purpose::Revocation`], [`Purpose::Suspension`])
//! and per number; a credential and the recognition attestations a city
//! signs each take one entry (the same index in both purposes).
//!
//! Entries are handed out from a per-city counter of *positions*: position
//! `p` is list `p / LIST_SIZE`, and its index in that list is a keyed
//! permutation of `p % LIST_SIZE` ([`Permutation`]). Two credentials never
//! share an entry, and without the city's permutation key the indexes do
//! not reveal which credential was issued first. [`LIST_SIZE`] is the
//! specification's minimum for herd privacy: 131,072 entries (16 KiB before
//! compression).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Entries per list: 2^17, the W3C minimum for herd privacy.
pub const LIST_SIZE: u32 = 131_072;
/// Bits of [`LIST_SIZE`].
const LIST_BITS: u32 = 17;
/// The permutation runs on an even number of bits (a balanced Feistel
/// network) and walks the cycle back into range.
const FEISTEL_HALF: u32 = LIST_BITS.div_ceil(2);
/// Feistel rounds (4 make a pseudorandom permutation of a keyed PRF).
const ROUNDS: u8 = 4;

/// What a list's set bit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Purpose {
    /// Set: revoked (for an attestation: its recognition is void). Final.
    Revocation,
    /// Set: suspended for now.
    Suspension,
}

impl Purpose {
    /// Both purposes, in the order entries are listed.
    pub const ALL: [Purpose; 2] = [Purpose::Revocation, Purpose::Suspension];

    /// The `statusPurpose` value (and the URL segment).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revocation => "revocation",
            Self::Suspension => "suspension",
        }
    }

    /// Inverse of [`Purpose::as_str`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One entry: a list number and an index in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusEntry {
    /// The list's number within its city.
    pub list: u32,
    /// The bit's index in the list, below [`LIST_SIZE`].
    pub index: u32,
}

/// A city's keyed permutation of the indexes of a list.
#[derive(Clone)]
pub struct Permutation {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Permutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permutation(..)")
    }
}

/// The permutation key was empty.
#[derive(Debug, thiserror::Error)]
#[error("the status-list permutation key must not be empty")]
pub struct EmptyKey;

/// A fresh random permutation key for a city.
pub fn new_key() -> Result<[u8; 32], crate::error::RandomError> {
    crate::random_bytes()
}

impl Permutation {
    /// The permutation of `key` (a random secret of the city, kept with its
    /// counter).
    pub fn new(key: &[u8]) -> Result<Self, EmptyKey> {
        if key.is_empty() {
            return Err(EmptyKey);
        }
        Hmac::<Sha256>::new_from_slice(key)
            .map(|mac| Self { mac })
            .map_err(|_| EmptyKey)
    }

    fn round(&self, round: u8, half: u32) -> u32 {
        let mut mac = self.mac.clone();
        mac.update(&[round]);
        mac.update(&half.to_be_bytes());
        let out = mac.finalize().into_bytes();
        u32::from_be_bytes([out[0], out[1], out[2], out[3]]) & ((1 << FEISTEL_HALF) - 1)
    }

    fn feistel(&self, x: u32) -> u32 {
        let mask = (1 << FEISTEL_HALF) - 1;
        let (mut left, mut right) = (x >> FEISTEL_HALF, x & mask);
        for r in 0..ROUNDS {
            let next = left ^ self.round(r, right);
            left = right;
            right = next;
        }
        (left << FEISTEL_HALF) | right
    }

    /// The index of the `n`-th entry handed out in a list (`n` below
    /// [`LIST_SIZE`]; taken modulo it otherwise). A bijection on
    /// `0..LIST_SIZE`: a Feistel network on 18 bits, applied again while
    /// the result falls outside the list (cycle walking).
    pub fn index(&self, n: u32) -> u32 {
        let mut x = n % LIST_SIZE;
        loop {
            x = self.feistel(x);
            if x < LIST_SIZE {
                return x;
            }
        }
    }

    /// The entry of counter position `position`.
    pub fn entry(&self, position: u64) -> StatusEntry {
        let size = u64::from(LIST_SIZE);
        StatusEntry {
            list: u32::try_from(position / size).unwrap_or(u32::MAX),
            // The remainder is below LIST_SIZE.
            index: self.index(u32::try_from(position % size).unwrap_or(0)),
        }
    }
}

/// A list's bits, index 0 the left-most bit of the first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitstring {
    bytes: Vec<u8>,
}

impl Default for Bitstring {
    fn default() -> Self {
        Self::new()
    }
}

/// An `encodedList` that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("not an encoded status list: {0}")]
pub struct BadEncoding(&'static str);

impl Bitstring {
    /// A list with every bit clear.
    pub fn new() -> Self {
        Self {
            bytes: vec![0; (LIST_SIZE / 8) as usize],
        }
    }

    /// Sets the bit of `index` (indexes past the list are ignored).
    pub fn set(&mut self, index: u32) {
        if let Some(b) = self.bytes.get_mut((index / 8) as usize) {
            *b |= 0x80 >> (index % 8);
        }
    }

    /// The bit of `index` (false past the list).
    pub fn get(&self, index: u32) -> bool {
        self.bytes
            .get((index / 8) as usize)
            .is_some_and(|b| b & (0x80 >> (index % 8)) != 0)
    }

    /// The `encodedList`: multibase base64url (prefix `u`, no padding) of
    /// the GZIP-compressed bits.
    pub fn encode(&self) -> String {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let zipped = gz
            .write_all(&self.bytes)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        let mut out = String::from("u");
        URL_SAFE_NO_PAD.encode_string(zipped, &mut out);
        out
    }

    /// Inverse of [`Bitstring::encode`], for verifiers and tests.
    pub fn decode(encoded: &str) -> Result<Self, BadEncoding> {
        use std::io::Read;
        let b64 = encoded
            .strip_prefix('u')
            .ok_or(BadEncoding("no multibase `u` prefix"))?;
        let zipped = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| BadEncoding("not base64url"))?;
        let mut bytes = Vec::new();
        // Bounded: a list is 16 KiB; anything longer is not ours.
        flate2::read::GzDecoder::new(zipped.as_slice())
            .take(u64::from(LIST_SIZE / 8) + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| BadEncoding("not GZIP"))?;
        if bytes.len() != (LIST_SIZE / 8) as usize {
            return Err(BadEncoding("not 131,072 bits"));
        }
        Ok(Self { bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permutation_is_a_bijection_on_the_list() {
        let p = Permutation::new(b"a city's key").expect("key");
        let mut seen = vec![false; LIST_SIZE as usize];
        for n in 0..LIST_SIZE {
            let i = p.index(n);
            assert!(i < LIST_SIZE);
            assert!(!seen[i as usize], "index {i} twice");
            seen[i as usize] = true;
        }
    }

    #[test]
    fn indexes_do_not_follow_issuance_order() {
        let p = Permutation::new(b"a city's key").expect("key");
        let first: Vec<u32> = (0..64).map(|n| p.index(n)).collect();
        let rising = first.windows(2).filter(|w| w[0] < w[1]).count();
        // A random order rises about half the time; issuance order always.
        assert!((16..=48).contains(&rising), "{rising} of 63 rises");
        let other = Permutation::new(b"another key").expect("key");
        assert_ne!(
            first[..8],
            (0..8).map(|n| other.index(n)).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn positions_fill_one_list_then_the_next() {
        let p = Permutation::new(b"k").expect("key");
        assert_eq!(p.entry(5).list, 0);
        assert_eq!(p.entry(u64::from(LIST_SIZE) - 1).list, 0);
        let e = p.entry(u64::from(LIST_SIZE) + 5);
        assert_eq!(
            e,
            StatusEntry {
                list: 1,
                index: p.index(5)
            }
        );
    }

    #[test]
    fn encoding_round_trips_with_the_specifications_bit_order() {
        let mut bits = Bitstring::new();
        bits.set(0);
        bits.set(9);
        bits.set(LIST_SIZE - 1);
        let decoded = Bitstring::decode(&bits.encode()).expect("decodes");
        assert_eq!(decoded, bits);
        assert!(decoded.get(0) && decoded.get(9) && decoded.get(LIST_SIZE - 1));
        assert!(!decoded.get(1) && !decoded.get(8));
        // Index 0 is the left-most bit of the first byte.
        assert_eq!(decoded.bytes[0], 0x80);
        assert_eq!(decoded.bytes[1], 0x40);
        // An empty list compresses to almost nothing.
        assert!(Bitstring::new().encode().len() < 100);
    }

    #[test]
    fn foreign_encodings_are_refused() {
        assert!(Bitstring::decode("no-prefix").is_err());
        assert!(Bitstring::decode("u!!!").is_err());
        let mut short = String::from("u");
        URL_SAFE_NO_PAD.encode_string(b"not gzip", &mut short);
        assert!(Bitstring::decode(&short).is_err());
    }
}
