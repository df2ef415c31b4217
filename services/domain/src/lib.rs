//! The Talent Corridor domain, with no transport and no storage in it.
//!
//! This crate owns the rules that make a credential what it is:
//! - [`city`]: city codes (the cities themselves are data in the database);
//! - [`qualification`]: categories, series and the level scale of each category;
//! - [`holder`]: national ID numbers, parsed once and only ever kept as a keyed hash;
//! - [`credential`]: the lifecycle (active, suspended, revoked) and its legal transitions;
//! - [`keys`]: city issuer keys (Ed25519), sealed at rest with a key-encryption key;
//! - [`vc`]: the W3C Verifiable Credential (data model 2.0) secured as a JWT, and
//!   the checks a verifier runs on one;
//! - [`audit`]: the tamper-evident audit trail: hash chains and signed checkpoints;
//! - [`caller`]: who is calling (roles, city), from a strictly validated identity token;
//! - [`authz`]: who may call what: the role table, one function per RPC;
//! - [`recognition`]: the lifecycle of a recorded recognition and how it
//!   follows its source credential;
//! - [`status_list`]: W3C Bitstring Status Lists: entries, their keyed
//!   allocation order, the encoded list;
//! - [`text`]: free text people read (names, titles, reasons), without
//!   control, invisible or direction-changing characters;
//! - [`verify`]: the verification rules that need the registry (record
//!   authority, live status, holder binding, throttling).
//!
//! Everything here is synchronous, deterministic given its inputs (time is a
//! parameter), and unit-tested without a database.

pub mod audit;
pub mod authz;
pub mod caller;
pub mod city;
pub mod credential;
pub mod error;
pub mod holder;
pub mod keys;
pub mod qualification;
pub mod recognition;
pub mod status_list;
pub mod text;
pub mod vc;
pub mod verify;

pub use error::{FieldViolation, RequestId, Violations};

/// Fills `buf` with bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], error::RandomError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| error::RandomError)?;
    Ok(buf)
}
