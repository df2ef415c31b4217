//! The audit chain's storage: events waiting for a position, the chain
//! (`audit_chain`), its signed checkpoints, the corridor key, and the
//! sequencer's watermark. Plain SQL, Postgres and SQLite; see
//! `corridor_domain::audit` for what the hashes are and `crate::sequencer`
//! for who writes them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use corridor_domain::audit::{ChainedEvent, Checkpoint, GENESIS, Hash, Heads};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};

use super::stmt;

/// The columns of an event joined with its place in the chain.
const EVENT_COLUMNS: &str = "c.position, c.hash, c.city_hash, e.occurred_at, e.actor, e.actor_city, e.action, e.subject_type, e.subject_id, e.detail, e.city, e.other_city";

fn hash(row: &QueryResult, col: &str) -> Result<Hash, DbErr> {
    let b: Vec<u8> = row.try_get("", col)?;
    b.as_slice()
        .try_into()
        .map_err(|_| DbErr::Custom(format!("{col} is not 32 bytes")))
}

fn opt_hash(row: &QueryResult, col: &str) -> Result<Option<Hash>, DbErr> {
    let b: Option<Vec<u8>> = row.try_get("", col)?;
    b.map(|b| {
        b.as_slice()
            .try_into()
            .map_err(|_| DbErr::Custom(format!("{col} is not 32 bytes")))
    })
    .transpose()
}

/// An event written but not yet given a position.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its insertion number (not gapless).
    pub seq: i64,
    /// Its transaction (Postgres), as text; the sequencer's watermark.
    pub txid: Option<String>,
    /// The event, with position and hashes still to be set.
    pub event: ChainedEvent,
}

/// The sequencer's watermark: the last event given a position, by
/// (transaction, insertion number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    /// The transaction of the last event settled (Postgres).
    pub txid: String,
    /// Its insertion number.
    pub seq: i64,
}

/// The advisory lock a sequencer round holds (Postgres).
const SEQUENCER_LOCK: i64 = 0x6736_3061_7564_6974; // "g60audit"

/// The watermark, if this transaction may sequence: `None` while another
/// replica's round holds the lock (it is doing the work). The lock is a
/// transaction-level advisory lock, so an idle round writes nothing.
pub async fn lock_watermark(conn: &impl ConnectionTrait) -> Result<Option<Watermark>, DbErr> {
    let backend = conn.get_database_backend();
    if backend == DbBackend::Postgres {
        let got = conn
            .query_one_raw(stmt(
                backend,
                "SELECT pg_try_advisory_xact_lock($1) AS ok",
                vec![SEQUENCER_LOCK.into()],
            ))
            .await?
            .map(|r| r.try_get::<bool>("", "ok"))
            .transpose()?
            .unwrap_or(false);
        if !got {
            return Ok(None);
        }
    }
    let sql = if backend == DbBackend::Postgres {
        "SELECT last_txid::text AS txid, last_seq FROM sequencer_state WHERE id = 1"
    } else {
        "SELECT CAST(last_txid AS TEXT) AS txid, last_seq FROM sequencer_state WHERE id = 1"
    };
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| DbErr::Custom("sequencer_state has no row".into()))?;
    Ok(Some(Watermark {
        txid: row
            .try_get::<Option<String>>("", "txid")?
            .unwrap_or_else(|| "0".into()),
        seq: row.try_get("", "last_seq")?,
    }))
}

/// Events after `mark` that no transaction still in progress can come
/// before, in the order they get their positions: by transaction, then by
/// insertion. On Postgres an event is settled once its transaction is below
/// the oldest one still running (`pg_snapshot_xmin`): every transaction
/// below it has committed or aborted, and every later one will get a later
/// place. SQLite has one writer at a time: insertion order is commit order.
///
/// The order is by the `xid8` column, named with its table: the bare name
/// `txid` in `ORDER BY` would be the text output column of the same name,
/// whose order ("10" before "9") differs from the transactions' at every
/// power of ten, and which no index serves (a sort of the whole backlog).
pub async fn pending(
    conn: &impl ConnectionTrait,
    mark: &Watermark,
    limit: u64,
) -> Result<Vec<Pending>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        "SELECT seq, txid::text AS txid, occurred_at, actor, actor_city, action, subject_type, subject_id, detail, city, other_city \
         FROM audit_events \
         WHERE (txid, seq) > ($1::text::xid8, $2) AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY audit_events.txid, audit_events.seq LIMIT $3"
    } else {
        "SELECT seq, NULL AS txid, occurred_at, actor, actor_city, action, subject_type, subject_id, detail, city, other_city \
         FROM audit_events WHERE seq > $2 AND $1 IS NOT NULL ORDER BY seq LIMIT $3"
    };
    let rows = conn
        .query_all_raw(stmt(
            backend,
            sql,
            vec![
                mark.txid.clone().into(),
                mark.seq.into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Pending {
                seq: r.try_get("", "seq")?,
                txid: r.try_get("", "txid")?,
                event: content(r)?,
            })
        })
        .collect()
}

/// The heads of the chain before position `before` (the whole chain's
/// head when `before` is `None`): the corridor-wide hash, its position and
/// each city's last hash. Read from the chain alone (and, for the whole
/// chain, from `audit_city_heads`, which the sequencer keeps).
pub async fn heads(conn: &impl ConnectionTrait, before: Option<i64>) -> Result<Heads, DbErr> {
    let backend = conn.get_database_backend();
    let bound = before.unwrap_or(i64::MAX);
    let last = conn
        .query_one_raw(stmt(
            backend,
            "SELECT position, hash FROM audit_chain WHERE position < $1 ORDER BY position DESC LIMIT 1",
            vec![bound.into()],
        ))
        .await?;
    let Some(last) = last else {
        return Ok(Heads::genesis());
    };
    let mut heads = Heads {
        head: Some(hash(&last, "hash")?),
        position: last.try_get("", "position")?,
        cities: BTreeMap::new(),
    };
    let cities = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT city, position, hash FROM audit_city_heads",
        ))
        .await?;
    for r in cities {
        let city: String = r.try_get("", "city")?;
        let position: i64 = r.try_get("", "position")?;
        let h = if position < bound {
            Some(hash(&r, "hash")?)
        } else {
            // The city's last hash before `bound` (by its index).
            let row = conn
                .query_one_raw(stmt(
                    backend,
                    "SELECT city_hash FROM audit_chain WHERE city = $1 AND position < $2 ORDER BY position DESC LIMIT 1",
                    vec![city.clone().into(), bound.into()],
                ))
                .await?;
            match row {
                Some(r) => opt_hash(&r, "city_hash")?,
                None => None,
            }
        };
        if let Some(h) = h {
            heads.cities.insert(city, h);
        }
    }
    Ok(heads)
}

/// Records each city's new head.
pub async fn set_city_heads(
    conn: &impl ConnectionTrait,
    heads: &BTreeMap<String, (i64, Hash)>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    for (city, (position, h)) in heads {
        conn.execute_raw(stmt(
            backend,
            "INSERT INTO audit_city_heads (city, position, hash) VALUES ($1, $2, $3) \
             ON CONFLICT (city) DO UPDATE SET position = excluded.position, hash = excluded.hash",
            vec![city.clone().into(), (*position).into(), h.to_vec().into()],
        ))
        .await?;
    }
    Ok(())
}

/// Appends settled events (with their positions and hashes) and moves the
/// watermark past the last, in one transaction of the caller's.
///
/// On Postgres the rows go in as one JSON parameter of a statement whose
/// text never changes. A `VALUES` list as long as the batch made a new
/// statement text for every batch size (1 to 500), and the pool prepares
/// and caches each text on each of its connections (up to 100 per
/// connection, with a plan in each backend): 11.6 MB of the server's 19 MB
/// heap after 60 s of mixed load (docs/PERFORMANCE.md, M1). SQLite
/// (development, one connection) keeps the `VALUES` list.
pub async fn append(
    conn: &impl ConnectionTrait,
    settled: &[Pending],
    mark: &Watermark,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    for chunk in settled.chunks(500) {
        if backend == DbBackend::Postgres {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "position": p.event.position,
                        "seq": p.seq,
                        "hash": hex::encode(p.event.hash),
                        "city": p.event.city,
                        "city_hash": p.event.city_hash.map(hex::encode),
                    })
                })
                .collect();
            let rows = serde_json::to_string(&rows).map_err(|e| DbErr::Custom(e.to_string()))?;
            conn.execute_raw(stmt(backend, APPEND_STATEMENT, vec![rows.into()]))
                .await?;
            continue;
        }
        let mut sql =
            String::from("INSERT INTO audit_chain (position, seq, hash, city, city_hash) VALUES ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
        for (i, p) in chunk.iter().enumerate() {
            let b = i * 5;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
            values.push(p.event.position.into());
            values.push(p.seq.into());
            values.push(p.event.hash.to_vec().into());
            values.push(p.event.city.clone().into());
            values.push(p.event.city_hash.map(|h| h.to_vec()).into());
        }
        conn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    let sql = if backend == DbBackend::Postgres {
        "UPDATE sequencer_state SET last_txid = $1::text::xid8, last_seq = $2 WHERE id = 1"
    } else {
        "UPDATE sequencer_state SET last_txid = 0, last_seq = $2 WHERE id = 1 AND $1 IS NOT NULL"
    };
    conn.execute_raw(stmt(
        backend,
        sql,
        vec![mark.txid.clone().into(), mark.seq.into()],
    ))
    .await?;
    Ok(())
}

/// The Postgres statement of [`append`]: one JSON array of rows, hashes in
/// hex.
pub const APPEND_STATEMENT: &str = "INSERT INTO audit_chain (position, seq, hash, city, city_hash) \
     SELECT position, seq, decode(hash, 'hex'), city, decode(city_hash, 'hex') \
     FROM json_to_recordset($1::json) AS t(position bigint, seq bigint, hash text, city text, city_hash text)";

/// The last position of the chain (0 when empty).
pub async fn head_position(conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COALESCE(MAX(position), 0) AS p FROM audit_chain",
        ))
        .await?;
    Ok(match row {
        Some(r) => r.try_get("", "p")?,
        None => 0,
    })
}

/// The last position whose event was pruned (0: none).
pub async fn pruned_through(conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT pruned_through FROM sequencer_state WHERE id = 1",
        ))
        .await?;
    Ok(match row {
        Some(r) => r.try_get("", "pruned_through")?,
        None => 0,
    })
}

/// Filters of a read of the chain.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events that concern this city (`city` or `other_city`).
    pub city: Option<String>,
    /// Only these actions (empty: all).
    pub actions: Vec<String>,
    /// Leave these actions out.
    pub except_actions: Vec<String>,
    /// Only this subject.
    pub subject_id: Option<String>,
}

/// Events with positions in `(after, through]` matching `filter`, in
/// position order, at most `limit`.
pub async fn read(
    conn: &impl ConnectionTrait,
    after: i64,
    through: i64,
    filter: &Filter,
    limit: u64,
) -> Result<Vec<ChainedEvent>, DbErr> {
    let backend = conn.get_database_backend();
    let mut sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_chain c JOIN audit_events e ON e.seq = c.seq \
         WHERE c.position > $1 AND c.position <= $2"
    );
    let mut values: Vec<Value> = vec![after.into(), through.into()];
    let param = |values: &mut Vec<Value>, v: Value| {
        values.push(v);
        format!("${}", values.len())
    };
    if let Some(city) = &filter.city {
        let p = param(&mut values, city.clone().into());
        sql.push_str(&format!(" AND (e.city = {p} OR e.other_city = {p})"));
    }
    if !filter.actions.is_empty() {
        let ps: Vec<String> = filter
            .actions
            .iter()
            .map(|a| param(&mut values, a.clone().into()))
            .collect();
        sql.push_str(&format!(" AND e.action IN ({})", ps.join(", ")));
    }
    for a in &filter.except_actions {
        let p = param(&mut values, a.clone().into());
        sql.push_str(&format!(" AND e.action <> {p}"));
    }
    if let Some(s) = &filter.subject_id {
        let p = param(&mut values, s.clone().into());
        sql.push_str(&format!(" AND e.subject_id = {p}"));
    }
    let p = param(&mut values, (limit as i64).into());
    sql.push_str(&format!(" ORDER BY c.position LIMIT {p}"));
    // SQLite: `?n` placeholders, which may repeat a number (the city
    // filter does).
    let sql = if backend == DbBackend::Sqlite {
        sql.replace('$', "?")
    } else {
        sql
    };
    conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .iter()
        .map(chained)
        .collect()
}

/// An event's content from a row (position and hashes unset).
fn content(r: &QueryResult) -> Result<ChainedEvent, DbErr> {
    Ok(ChainedEvent {
        position: 0,
        occurred_at: r.try_get("", "occurred_at")?,
        actor: r.try_get("", "actor")?,
        actor_city: r.try_get("", "actor_city")?,
        action: r.try_get("", "action")?,
        subject_type: r.try_get("", "subject_type")?,
        subject_id: r.try_get("", "subject_id")?,
        detail: r.try_get("", "detail")?,
        city: r.try_get("", "city")?,
        other_city: r.try_get("", "other_city")?,
        hash: GENESIS,
        city_hash: None,
    })
}

/// An event in its place in the chain, from a row of [`EVENT_COLUMNS`].
fn chained(r: &QueryResult) -> Result<ChainedEvent, DbErr> {
    Ok(ChainedEvent {
        position: r.try_get("", "position")?,
        hash: hash(r, "hash")?,
        city_hash: opt_hash(r, "city_hash")?,
        ..content(r)?
    })
}

/// The corridor key in use: the first stored (two replicas racing on first
/// start may both store one; all pick the same, and both verify).
pub async fn corridor_key(
    conn: &impl ConnectionTrait,
) -> Result<Option<(String, [u8; 32], Vec<u8>)>, DbErr> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT kid, public_key, sealed_private_key FROM corridor_keys ORDER BY created_at, kid LIMIT 1",
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    let public: Vec<u8> = r.try_get("", "public_key")?;
    let public: [u8; 32] = public
        .as_slice()
        .try_into()
        .map_err(|_| DbErr::Custom("corridor public key is not 32 bytes".into()))?;
    Ok(Some((
        r.try_get("", "kid")?,
        public,
        r.try_get("", "sealed_private_key")?,
    )))
}

/// Every corridor public key: kid → key.
pub async fn corridor_public_keys(
    conn: &impl ConnectionTrait,
) -> Result<BTreeMap<String, [u8; 32]>, DbErr> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT kid, public_key FROM corridor_keys",
        ))
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let public: Vec<u8> = r.try_get("", "public_key")?;
        if let Ok(p) = <[u8; 32]>::try_from(public.as_slice()) {
            out.insert(r.try_get("", "kid")?, p);
        }
    }
    Ok(out)
}

/// Stores a new corridor key unless one exists (first start; replicas
/// racing each other keep the first).
pub async fn insert_corridor_key(
    conn: &impl ConnectionTrait,
    kid: &str,
    public: [u8; 32],
    sealed: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let sql = "INSERT INTO corridor_keys (kid, public_key, sealed_private_key, created_at) \
         SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM corridor_keys)";
    conn.execute_raw(stmt(
        backend,
        sql,
        vec![
            kid.into(),
            public.to_vec().into(),
            sealed.into(),
            now.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Stores a checkpoint.
pub async fn insert_checkpoint(conn: &impl ConnectionTrait, c: &Checkpoint) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    conn.execute_raw(stmt(
        backend,
        "INSERT INTO audit_checkpoints (position, head, signed_at, kid, signature) VALUES ($1, $2, $3, $4, $5)",
        vec![
            c.position.into(),
            c.head.to_vec().into(),
            c.signed_at.into(),
            c.kid.clone().into(),
            c.signature.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

fn checkpoint(r: &QueryResult) -> Result<Checkpoint, DbErr> {
    Ok(Checkpoint {
        position: r.try_get("", "position")?,
        head: hash(r, "head")?,
        signed_at: r.try_get("", "signed_at")?,
        kid: r.try_get("", "kid")?,
        signature: r.try_get("", "signature")?,
    })
}

/// The latest checkpoint, or the first at or after `position`.
pub async fn checkpoint_at(
    conn: &impl ConnectionTrait,
    position: Option<i64>,
) -> Result<Option<Checkpoint>, DbErr> {
    let backend = conn.get_database_backend();
    let st = match position {
        None => Statement::from_string(
            backend,
            "SELECT position, head, signed_at, kid, signature FROM audit_checkpoints ORDER BY position DESC LIMIT 1",
        ),
        Some(p) => stmt(
            backend,
            "SELECT position, head, signed_at, kid, signature FROM audit_checkpoints WHERE position >= $1 ORDER BY position LIMIT 1",
            vec![p.into()],
        ),
    };
    conn.query_one_raw(st)
        .await?
        .as_ref()
        .map(checkpoint)
        .transpose()
}

/// The checkpoints with positions in `[from, through]`.
pub async fn checkpoints(
    conn: &impl ConnectionTrait,
    from: i64,
    through: i64,
) -> Result<Vec<Checkpoint>, DbErr> {
    let backend = conn.get_database_backend();
    conn.query_all_raw(stmt(
        backend,
        "SELECT position, head, signed_at, kid, signature FROM audit_checkpoints WHERE position >= $1 AND position <= $2 ORDER BY position",
        vec![from.into(), through.into()],
    ))
    .await?
    .iter()
    .map(checkpoint)
    .collect()
}

/// Deletes the events (not their chain rows) with positions up to
/// `through` that occurred before `cutoff`, and records how far the
/// pruning got. Returns the new `pruned_through`.
pub async fn prune(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    // The first kept position is the first whose event is not older than
    // the cutoff; everything before it goes (in position order, so the
    // kept events stay a contiguous suffix of the chain).
    let row = conn
        .query_one_raw(stmt(
            backend,
            "SELECT COALESCE(MIN(c.position), (SELECT COALESCE(MAX(position), 0) + 1 FROM audit_chain)) AS first_kept \
             FROM audit_chain c JOIN audit_events e ON e.seq = c.seq WHERE e.occurred_at >= $1",
            vec![cutoff.into()],
        ))
        .await?;
    let first_kept: i64 = match row {
        Some(r) => r.try_get("", "first_kept")?,
        None => 1,
    };
    let through = first_kept - 1;
    if through <= pruned_through(conn).await? {
        return pruned_through(conn).await;
    }
    conn.execute_raw(stmt(
        backend,
        "DELETE FROM audit_events WHERE seq IN (SELECT seq FROM audit_chain WHERE position <= $1)",
        vec![through.into()],
    ))
    .await?;
    conn.execute_raw(stmt(
        backend,
        "UPDATE sequencer_state SET pruned_through = $1 WHERE id = 1",
        vec![through.into()],
    ))
    .await?;
    Ok(through)
}
