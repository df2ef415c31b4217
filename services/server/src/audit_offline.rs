//! The audit chain outside the server: `corridor audit export` writes the
//! chain, its checkpoints and the corridor keys from a database as CSV
//! files, and `corridor audit verify` checks such a dump with the same
//! rules as VerifyAuditChain (`corridor_domain::audit`), without a server.
//!
//! The files (UTF-8 CSV with a header row, columns found by name):
//! - `events.csv`: `sequence, hash, city_hash, occurred_at, actor,
//!   actor_city, action, subject_type, subject_id, detail, city,
//!   other_city`, in order (hashes hex, times RFC 3339 with microseconds);
//! - `checkpoints.csv`: `sequence, head, signed_at, kid, signature`
//!   (signature base64url);
//! - `corridor_keys.csv`: `kid, x` (Ed25519 public key, base64url);
//! - `start.csv`: the heads before the first exported event (`city` empty
//!   for the corridor-wide head): empty unless old events were pruned.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use corridor_domain::audit::{self, Break, ChainedEvent, Checkpoint, Hash, Heads};
use sea_orm::DatabaseConnection;

use crate::store::audit_chain::{self as chain, Filter};

/// Events read per query while exporting.
const CHUNK: u64 = 5_000;

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// The first sequence number exported.
    pub from: i64,
    /// The last.
    pub through: i64,
    /// Checkpoints exported.
    pub checkpoints: usize,
}

/// Writes the dump of the chain in `db` to directory `dir`.
pub async fn export(db: &DatabaseConnection, dir: &Path) -> anyhow::Result<Exported> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let head = chain::head_position(db).await?;
    let pruned = chain::pruned_through(db).await?;
    let from = pruned + 1;

    let mut start = csv::Writer::from_path(dir.join("start.csv"))?;
    start.write_record(["sequence", "city", "hash"])?;
    if pruned > 0 {
        let heads = chain::heads(db, Some(from)).await?;
        if let Some(h) = heads.head {
            start.write_record([heads.position.to_string(), String::new(), hex::encode(h)])?;
        }
        for (city, h) in &heads.cities {
            start.write_record([heads.position.to_string(), city.clone(), hex::encode(h)])?;
        }
    }
    start.flush()?;

    let mut events = csv::Writer::from_path(dir.join("events.csv"))?;
    events.write_record([
        "sequence",
        "hash",
        "city_hash",
        "occurred_at",
        "actor",
        "actor_city",
        "action",
        "subject_type",
        "subject_id",
        "detail",
        "city",
        "other_city",
    ])?;
    let mut after = pruned;
    while after < head {
        let through = (after + CHUNK as i64).min(head);
        for e in chain::read(db, after, through, &Filter::default(), CHUNK).await? {
            events.write_record([
                e.position.to_string().as_str(),
                &hex::encode(e.hash),
                &e.city_hash.map(hex::encode).unwrap_or_default(),
                &time(e.occurred_at),
                &e.actor,
                opt(&e.actor_city),
                &e.action,
                &e.subject_type,
                &e.subject_id,
                &e.detail,
                opt(&e.city),
                opt(&e.other_city),
            ])?;
        }
        after = through;
    }
    events.flush()?;

    let cps = chain::checkpoints(db, from, head.max(from)).await?;
    let mut w = csv::Writer::from_path(dir.join("checkpoints.csv"))?;
    w.write_record(["sequence", "head", "signed_at", "kid", "signature"])?;
    for c in &cps {
        w.write_record([
            c.position.to_string(),
            hex::encode(c.head),
            time(c.signed_at),
            c.kid.clone(),
            URL_SAFE_NO_PAD.encode(&c.signature),
        ])?;
    }
    w.flush()?;

    let mut w = csv::Writer::from_path(dir.join("corridor_keys.csv"))?;
    w.write_record(["kid", "x"])?;
    for (kid, x) in chain::corridor_public_keys(db).await? {
        w.write_record([kid, URL_SAFE_NO_PAD.encode(x)])?;
    }
    w.flush()?;
    Ok(Exported {
        from,
        through: head,
        checkpoints: cps.len(),
    })
}

fn hash_of(field: &str, raw: &str) -> anyhow::Result<Hash> {
    let b = hex::decode(raw).map_err(|_| anyhow!("{field}: not hex"))?;
    b.as_slice()
        .try_into()
        .map_err(|_| anyhow!("{field}: not 32 bytes"))
}

fn record_field<'r>(
    r: &'r csv::StringRecord,
    headers: &csv::StringRecord,
    name: &str,
) -> anyhow::Result<&'r str> {
    let i = headers
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| anyhow!("no column {name}"))?;
    r.get(i).ok_or_else(|| anyhow!("row without {name}"))
}

fn parse_time(field: &str, raw: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| anyhow!("{field}: {e}"))
}

/// The outcome of an offline check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineReport {
    /// The last sequence number checked.
    pub verified_through: i64,
    /// The first break.
    pub broken: Option<Break>,
    /// Checkpoints checked.
    pub checkpoints_checked: usize,
}

/// Checks the dump in `dir`. `pinned`: the corridor public keys to trust
/// (kid → key); without them, the dump's own `corridor_keys.csv` (which
/// only proves the dump is consistent with itself: pin the key published
/// by GetCheckpoint to prove it is the corridor's).
pub fn verify(
    dir: &Path,
    pinned: Option<BTreeMap<String, [u8; 32]>>,
) -> anyhow::Result<OfflineReport> {
    let keys = match pinned {
        Some(k) => k,
        None => {
            let mut r = csv::Reader::from_path(dir.join("corridor_keys.csv"))?;
            let h = r.headers()?.clone();
            let mut keys = BTreeMap::new();
            for row in r.records() {
                let row = row?;
                let kid = record_field(&row, &h, "kid")?.to_owned();
                let x = URL_SAFE_NO_PAD
                    .decode(record_field(&row, &h, "x")?)
                    .map_err(|_| anyhow!("corridor key {kid}: x is not base64url"))?;
                let x: [u8; 32] = x
                    .as_slice()
                    .try_into()
                    .map_err(|_| anyhow!("corridor key {kid}: not 32 bytes"))?;
                keys.insert(kid, x);
            }
            keys
        }
    };

    let mut heads = Heads::genesis();
    let mut r = csv::Reader::from_path(dir.join("start.csv"))?;
    let h = r.headers()?.clone();
    for row in r.records() {
        let row = row?;
        let position: i64 = record_field(&row, &h, "sequence")?.parse()?;
        let city = record_field(&row, &h, "city")?;
        let hash = hash_of("start hash", record_field(&row, &h, "hash")?)?;
        heads.position = position;
        if city.is_empty() {
            heads.head = Some(hash);
        } else {
            heads.cities.insert(city.to_owned(), hash);
        }
    }

    let mut checkpoints = Vec::new();
    let mut r = csv::Reader::from_path(dir.join("checkpoints.csv"))?;
    let h = r.headers()?.clone();
    for row in r.records() {
        let row = row?;
        checkpoints.push(Checkpoint {
            position: record_field(&row, &h, "sequence")?.parse()?,
            head: hash_of("checkpoint head", record_field(&row, &h, "head")?)?,
            signed_at: parse_time("signed_at", record_field(&row, &h, "signed_at")?)?,
            kid: record_field(&row, &h, "kid")?.to_owned(),
            signature: URL_SAFE_NO_PAD
                .decode(record_field(&row, &h, "signature")?)
                .map_err(|_| anyhow!("checkpoint signature is not base64url"))?,
        });
    }
    let wanted: BTreeSet<i64> = checkpoints.iter().map(|c| c.position).collect();
    let mut at: BTreeMap<i64, Hash> = BTreeMap::new();

    let mut r = csv::Reader::from_path(dir.join("events.csv"))?;
    let h = r.headers()?.clone();
    let mut batch = Vec::with_capacity(1024);
    let broken = |b: Break| OfflineReport {
        verified_through: b.position - 1,
        broken: Some(b),
        checkpoints_checked: 0,
    };
    for row in r.records() {
        let row = row?;
        let position: i64 = record_field(&row, &h, "sequence")?.parse()?;
        let city_hash = record_field(&row, &h, "city_hash")?;
        batch.push(ChainedEvent {
            position,
            occurred_at: parse_time("occurred_at", record_field(&row, &h, "occurred_at")?)?,
            actor: record_field(&row, &h, "actor")?.to_owned(),
            actor_city: non_empty(record_field(&row, &h, "actor_city")?),
            action: record_field(&row, &h, "action")?.to_owned(),
            subject_type: record_field(&row, &h, "subject_type")?.to_owned(),
            subject_id: record_field(&row, &h, "subject_id")?.to_owned(),
            detail: record_field(&row, &h, "detail")?.to_owned(),
            city: non_empty(record_field(&row, &h, "city")?),
            other_city: non_empty(record_field(&row, &h, "other_city")?),
            hash: hash_of("hash", record_field(&row, &h, "hash")?)?,
            city_hash: if city_hash.is_empty() {
                None
            } else {
                Some(hash_of("city_hash", city_hash)?)
            },
        });
        if batch.len() == 1024 {
            if let Err(b) = audit::verify(&mut heads, &batch) {
                return Ok(broken(b));
            }
            for e in &batch {
                if wanted.contains(&e.position) {
                    at.insert(e.position, e.hash);
                }
            }
            batch.clear();
        }
    }
    if let Err(b) = audit::verify(&mut heads, &batch) {
        return Ok(broken(b));
    }
    for e in &batch {
        if wanted.contains(&e.position) {
            at.insert(e.position, e.hash);
        }
    }
    for c in &checkpoints {
        if c.position > heads.position {
            // A checkpoint beyond the last event: the events after the
            // last kept one were removed.
            return Ok(broken(Break {
                position: heads.position + 1,
                reason: format!(
                    "sequence {} is missing: a checkpoint covers up to {}",
                    heads.position + 1,
                    c.position
                ),
            }));
        }
        let Some(public) = keys.get(&c.kid) else {
            return Ok(broken(Break {
                position: c.position,
                reason: format!(
                    "the checkpoint at {} names an unknown key {}",
                    c.position, c.kid
                ),
            }));
        };
        if let Err(b) =
            audit::verify_checkpoints(std::slice::from_ref(c), public, |p| at.get(&p).copied())
        {
            return Ok(broken(b));
        }
    }
    Ok(OfflineReport {
        verified_through: heads.position,
        broken: None,
        checkpoints_checked: checkpoints.len(),
    })
}
