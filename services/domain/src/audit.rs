//! The tamper-evident audit trail: a hash chain over every audit event, and
//! signed checkpoints of it.
//!
//! Each event gets a position (gapless, in the order the sequencer settles
//! events; see `docs/DESIGN.md`, Audit) and two hashes:
//! - `hash = SHA-256("g60-audit-v1" || previous hash || content)`, over
//!   every event of the corridor in position order;
//! - `city_hash`, the same over the events of one city only (an event's
//!   `city`), so a city can check its own history without anyone else's.
//!
//! `content` is a canonical encoding of the event's fields (below), so
//! editing any field of a stored event, removing one, or reordering them
//! breaks the chain at that position. Rewriting the chain after an edit is
//! caught by checkpoints: every so often the head is signed with the
//! corridor's key (like a Certificate Transparency signed tree head), and a
//! forger does not have that key.
//!
//! Everything here is pure, so the server's VerifyAuditChain and the
//! offline `corridor audit verify` run the same code.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// A hash of the chain (SHA-256).
pub type Hash = [u8; 32];

/// The hash before the first event.
pub const GENESIS: Hash = [0u8; 32];

/// One audit event as the chain covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEvent {
    /// Its position (from 1, gapless).
    pub position: i64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Caller subject.
    pub actor: String,
    /// Caller city.
    pub actor_city: Option<String>,
    /// What happened.
    pub action: String,
    /// Kind of subject.
    pub subject_type: String,
    /// Subject id.
    pub subject_id: String,
    /// Details, as stored (JSON text).
    pub detail: String,
    /// The city the event belongs to (its per-city chain), if any.
    pub city: Option<String>,
    /// Another city concerned (a recognition's source city), if any.
    pub other_city: Option<String>,
    /// The stored corridor-wide hash.
    pub hash: Hash,
    /// The stored per-city hash (only with `city`).
    pub city_hash: Option<Hash>,
}

/// The canonical encoding of an event's content: each field as a
/// length-prefixed byte string, in a fixed order, so no two different
/// events encode alike.
pub fn content(e: &ChainedEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + e.detail.len());
    let mut field = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    field(e.position.to_string().as_bytes());
    field(
        e.occurred_at
            .to_rfc3339_opts(SecondsFormat::Micros, true)
            .as_bytes(),
    );
    field(e.actor.as_bytes());
    field(e.actor_city.as_deref().unwrap_or("").as_bytes());
    field(e.action.as_bytes());
    field(e.subject_type.as_bytes());
    field(e.subject_id.as_bytes());
    field(e.detail.as_bytes());
    field(e.city.as_deref().unwrap_or("").as_bytes());
    field(e.other_city.as_deref().unwrap_or("").as_bytes());
    out
}

/// The hash that follows `previous` for an event with `content`.
pub fn link(previous: &Hash, content: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(b"g60-audit-v1");
    h.update(previous);
    h.update(content);
    h.finalize().into()
}

/// Computes both hashes of `e` (its stored ones are ignored) after the
/// corridor-wide head `previous` and, for its city, `previous_city`.
pub fn hashes(
    e: &ChainedEvent,
    previous: &Hash,
    previous_city: Option<&Hash>,
) -> (Hash, Option<Hash>) {
    let c = content(e);
    let hash = link(previous, &c);
    let city_hash = e
        .city
        .as_ref()
        .map(|_| link(previous_city.unwrap_or(&GENESIS), &c));
    (hash, city_hash)
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first position that does not verify.
    pub position: i64,
    /// Why, for people.
    pub reason: String,
}

/// The heads a verification starts from: the corridor-wide hash before the
/// first event checked, and each city's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heads {
    /// The corridor-wide head.
    pub head: Option<Hash>,
    /// The position of that head (0 before the first event).
    pub position: i64,
    /// Each city's head.
    pub cities: BTreeMap<String, Hash>,
}

impl Heads {
    /// The heads before the first event.
    pub fn genesis() -> Self {
        Self {
            head: Some(GENESIS),
            position: 0,
            cities: BTreeMap::new(),
        }
    }

    /// Appends `e` (its content set): gives it the next position and its
    /// hashes, and moves the heads past it. What the sequencer does.
    pub fn append(&mut self, e: &mut ChainedEvent) {
        e.position = self.position + 1;
        let previous_city = e.city.as_ref().and_then(|c| self.cities.get(c));
        let (h, ch) = hashes(e, &self.head.unwrap_or(GENESIS), previous_city);
        e.hash = h;
        e.city_hash = ch;
        self.head = Some(h);
        self.position = e.position;
        if let (Some(c), Some(ch)) = (&e.city, ch) {
            self.cities.insert(c.clone(), ch);
        }
    }
}

/// Checks `events` (in position order) against the chain from `heads`,
/// and advances `heads` past them. The first event that does not verify
/// is the answer: its content was changed, it is missing or out of order,
/// or its stored hash does not follow the one before.
pub fn verify(heads: &mut Heads, events: &[ChainedEvent]) -> Result<(), Break> {
    for e in events {
        let expected = heads.position + 1;
        if e.position != expected {
            return Err(Break {
                position: expected,
                reason: format!(
                    "position {expected} is missing (the next stored is {})",
                    e.position
                ),
            });
        }
        let previous = heads.head.unwrap_or(GENESIS);
        let previous_city = e.city.as_ref().and_then(|c| heads.cities.get(c));
        let (hash, city_hash) = hashes(e, &previous, previous_city);
        if hash != e.hash {
            return Err(Break {
                position: e.position,
                reason:
                    "the event's content or its place in the chain does not match its stored hash"
                        .into(),
            });
        }
        if city_hash != e.city_hash {
            return Err(Break {
                position: e.position,
                reason: "the event does not match its city's chain".into(),
            });
        }
        heads.head = Some(hash);
        heads.position = e.position;
        if let (Some(c), Some(h)) = (&e.city, city_hash) {
            heads.cities.insert(c.clone(), h);
        }
    }
    Ok(())
}

/// A signed statement of the chain's head at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last position covered.
    pub position: i64,
    /// The corridor-wide hash at that position.
    pub head: Hash,
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// The signing key's id.
    pub kid: String,
    /// Ed25519 signature of [`Checkpoint::message`].
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The bytes that are signed.
    pub fn message(position: i64, head: &Hash, signed_at: DateTime<Utc>, kid: &str) -> Vec<u8> {
        format!(
            "g60-audit-checkpoint-v1\n{position}\n{}\n{}\n{kid}\n",
            hex::encode(head),
            signed_at.to_rfc3339_opts(SecondsFormat::Micros, true)
        )
        .into_bytes()
    }

    /// Signs the head at `position` with the corridor's `key`.
    pub fn sign(
        key: &ed25519_dalek::SigningKey,
        kid: &str,
        position: i64,
        head: Hash,
        signed_at: DateTime<Utc>,
    ) -> Self {
        use ed25519_dalek::Signer;
        let signature = key
            .sign(&Self::message(position, &head, signed_at, kid))
            .to_bytes()
            .to_vec();
        Self {
            position,
            head,
            signed_at,
            kid: kid.to_owned(),
            signature,
        }
    }

    /// Whether the signature verifies with `public` (the corridor key's 32 bytes).
    pub fn verifies(&self, public: &[u8; 32]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify_strict(
            &Self::message(self.position, &self.head, self.signed_at, &self.kid),
            &sig,
        )
        .is_ok()
    }
}

/// Checks checkpoints against the chain: each must be signed by `public`
/// and name the stored hash at its position (`hash_at`).
pub fn verify_checkpoints(
    checkpoints: &[Checkpoint],
    public: &[u8; 32],
    hash_at: impl Fn(i64) -> Option<Hash>,
) -> Result<(), Break> {
    for c in checkpoints {
        if !c.verifies(public) {
            return Err(Break {
                position: c.position,
                reason: format!(
                    "the checkpoint at {} is not signed by the corridor key",
                    c.position
                ),
            });
        }
        match hash_at(c.position) {
            Some(h) if h == c.head => {}
            Some(_) => {
                return Err(Break {
                    position: c.position,
                    reason: format!(
                        "the chain at {} differs from its signed checkpoint: events up to it were rewritten",
                        c.position
                    ),
                });
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64, city: Option<&str>, detail: &str) -> ChainedEvent {
        ChainedEvent {
            position,
            occurred_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(position),
            actor: "hz-hr".into(),
            actor_city: city.map(str::to_owned),
            action: "credential.issued".into(),
            subject_type: "credential".into(),
            subject_id: format!("c{position}"),
            detail: detail.into(),
            city: city.map(str::to_owned),
            other_city: None,
            hash: GENESIS,
            city_hash: None,
        }
    }

    fn chain(n: i64) -> Vec<ChainedEvent> {
        let mut heads = Heads::genesis();
        let mut out = Vec::new();
        for p in 1..=n {
            let city = if p % 3 == 0 {
                None
            } else if p % 2 == 0 {
                Some("hefei")
            } else {
                Some("hangzhou")
            };
            let mut e = event(p, city, "{\"n\":1}");
            heads.append(&mut e);
            out.push(e);
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies_in_pieces_too() {
        let events = chain(20);
        let mut heads = Heads::genesis();
        assert_eq!(verify(&mut heads, &events), Ok(()));
        let mut heads = Heads::genesis();
        assert_eq!(verify(&mut heads, &events[..7]), Ok(()));
        assert_eq!(verify(&mut heads, &events[7..]), Ok(()));
        assert_eq!(heads.position, 20);
    }

    #[test]
    fn an_edit_a_removal_or_a_reorder_is_found_where_it_is() {
        let events = chain(10);
        let mut edited = events.clone();
        edited[4].detail = "{\"n\":2}".into();
        let b = verify(&mut Heads::genesis(), &edited).err();
        assert_eq!(b.map(|b| b.position), Some(5));
        let mut missing = events.clone();
        missing.remove(6);
        assert_eq!(
            verify(&mut Heads::genesis(), &missing)
                .err()
                .map(|b| b.position),
            Some(7)
        );
        let mut swapped = events.clone();
        swapped.swap(2, 3);
        assert_eq!(
            verify(&mut Heads::genesis(), &swapped)
                .err()
                .map(|b| b.position),
            Some(3)
        );
        // A city changed: its city chain breaks even if the forger fixed `hash`.
        let mut moved = events;
        moved[0].city = Some("hefei".into());
        let (h, _) = hashes(&moved[0], &GENESIS, None);
        moved[0].hash = h;
        assert_eq!(
            verify(&mut Heads::genesis(), &moved)
                .err()
                .map(|b| b.position),
            Some(1)
        );
    }

    #[test]
    fn checkpoints_catch_a_rewritten_chain() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let public = key.verifying_key().to_bytes();
        let events = chain(10);
        let cp = Checkpoint::sign(&key, "corridor-1", 10, events[9].hash, Utc::now());
        let at = |p: i64| events.iter().find(|e| e.position == p).map(|e| e.hash);
        assert_eq!(
            verify_checkpoints(std::slice::from_ref(&cp), &public, at),
            Ok(())
        );
        // The forger rewrote event 4 and every hash after it: the chain
        // verifies on its own, the checkpoint does not agree.
        let mut forged = events.clone();
        forged[3].detail = "{\"forged\":true}".into();
        let mut heads = Heads::genesis();
        verify(&mut heads, &forged[..3]).unwrap_or_default();
        for e in forged.iter_mut().skip(3) {
            heads.append(e);
        }
        assert_eq!(verify(&mut Heads::genesis(), &forged), Ok(()));
        let at = |p: i64| forged.iter().find(|e| e.position == p).map(|e| e.hash);
        assert!(verify_checkpoints(std::slice::from_ref(&cp), &public, at).is_err());
        // A checkpoint signed by someone else.
        let other = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
        let fake = Checkpoint::sign(&other, "corridor-1", 10, events[9].hash, Utc::now());
        let at = |p: i64| events.iter().find(|e| e.position == p).map(|e| e.hash);
        assert!(verify_checkpoints(&[fake], &public, at).is_err());
    }
}
