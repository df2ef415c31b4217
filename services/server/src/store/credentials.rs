//! Repository of `credentials`: rows in and out as the domain's
//! [`Credential`] record.

use chrono::{DateTime, Utc};
use corridor_domain::city::CityCode;
use corridor_domain::credential::{Credential, Status, ValidityWindow};
use corridor_domain::holder::HolderHash;
use corridor_domain::qualification::{Category, Qualification};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::corrupt;
use super::entities::credential::{self, Column, Entity};

/// The record of a stored row; a row that breaks the domain's rules is an
/// error, not a record.
pub(crate) fn record(m: credential::Model) -> Result<Credential, DbErr> {
    let what = || format!("credential {}", m.id);
    let issuer_city =
        CityCode::parse("issuer_city", &m.issuer_city).map_err(|_| corrupt(what()))?;
    let qualification = Qualification::parse(
        "qualification",
        Category::from_name(&m.category),
        &m.series,
        m.level,
        &m.title,
    )
    .map_err(|_| corrupt(what()))?;
    let status = Status::from_name(&m.status).ok_or_else(|| corrupt(what()))?;
    Ok(Credential {
        id: m.id,
        issuer_city,
        qualification,
        holder_name: m.holder_name,
        holder_hash: HolderHash::from_stored(m.holder_hash),
        window: ValidityWindow {
            from: m.valid_from,
            until: m.valid_until,
        },
        status,
        status_reason: m.status_reason,
        kid: m.kid,
        token: m.token,
        issued_by: m.issued_by,
        issued_at: m.issued_at,
        updated_at: m.updated_at,
        status_entry: super::status_entry(m.status_list, m.status_index),
    })
}

fn active(c: &Credential) -> credential::ActiveModel {
    let q = &c.qualification;
    let (status_list, status_index) = super::status_columns(c.status_entry);
    credential::ActiveModel {
        id: Set(c.id),
        issuer_city: Set(c.issuer_city.to_string()),
        category: Set(q.category().as_str().to_owned()),
        series: Set(q.series().to_owned()),
        level: Set(i32::from(q.level())),
        title: Set(q.title().to_owned()),
        holder_name: Set(c.holder_name.clone()),
        holder_hash: Set(c.holder_hash.as_str().to_owned()),
        valid_from: Set(c.window.from),
        valid_until: Set(c.window.until),
        status: Set(c.status.as_str().to_owned()),
        status_reason: Set(c.status_reason.clone()),
        kid: Set(c.kid.clone()),
        token: Set(c.token.clone()),
        issued_by: Set(c.issued_by.clone()),
        issued_at: Set(c.issued_at),
        updated_at: Set(c.updated_at),
        status_list: Set(status_list),
        status_index: Set(status_index),
    }
}

/// Inserts an issued credential.
#[tracing::instrument(skip_all, name = "db.credentials.insert")]
pub async fn insert(conn: &impl ConnectionTrait, c: &Credential) -> Result<(), DbErr> {
    Entity::insert(active(c))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// One credential by id: the single round trip of a verify by id.
#[tracing::instrument(skip_all, name = "db.credentials.get")]
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Credential>, DbErr> {
    Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// One credential by id, row-locked until the end of the transaction
/// (Postgres `FOR UPDATE`), for a status change or a recognition.
#[tracing::instrument(skip_all, name = "db.credentials.get_for_update")]
pub async fn get_for_update(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<Credential>, DbErr> {
    let mut q = Entity::find_by_id(id);
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    q.one(conn).await?.map(record).transpose()
}

/// Stores a credential's new status, reason and change time.
#[tracing::instrument(skip_all, name = "db.credentials.set_status")]
pub async fn set_status(conn: &impl ConnectionTrait, c: &Credential) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(c.status.as_str()))
        .col_expr(Column::StatusReason, Expr::value(c.status_reason.clone()))
        .col_expr(Column::UpdatedAt, Expr::value(c.updated_at))
        .filter(Column::Id.eq(c.id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Filters of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Issuing city.
    pub issuer_city: Option<CityCode>,
    /// Status.
    pub status: Option<Status>,
    /// Category.
    pub category: Option<Category>,
    /// Holder hash.
    pub holder_hash: Option<HolderHash>,
}

/// Where the previous page ended: the last (issued_at, id) it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// Issuance time of the last row.
    pub issued_at: DateTime<Utc>,
    /// Id of the last row.
    pub id: Uuid,
}

/// Lists up to `limit` credentials newest first (issued_at, then id, both
/// descending), strictly after `after`. Keyset pagination: stable under
/// concurrent inserts and as fast on page 1000 as on page 1.
#[tracing::instrument(skip_all, name = "db.credentials.list")]
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &Filter,
    after: Option<Cursor>,
    limit: u64,
) -> Result<Vec<Credential>, DbErr> {
    let mut cond = Condition::all();
    if let Some(c) = &filter.issuer_city {
        cond = cond.add(Column::IssuerCity.eq(c.as_str()));
    }
    if let Some(s) = filter.status {
        cond = cond.add(Column::Status.eq(s.as_str()));
    }
    if let Some(c) = filter.category {
        cond = cond.add(Column::Category.eq(c.as_str()));
    }
    if let Some(h) = &filter.holder_hash {
        cond = cond.add(Column::HolderHash.eq(h.as_str()));
    }
    if let Some(cur) = after {
        cond = cond.add(
            Condition::any()
                .add(Column::IssuedAt.lt(cur.issued_at))
                .add(
                    Condition::all()
                        .add(Column::IssuedAt.eq(cur.issued_at))
                        .add(Column::Id.lt(cur.id)),
                ),
        );
    }
    Entity::find()
        .filter(cond)
        .order_by_desc(Column::IssuedAt)
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// A page of credentials not issued by `city`, by id, after `after`: the
/// population a policy simulation runs over.
#[tracing::instrument(skip_all, name = "db.credentials.page_not_from")]
pub async fn page_not_from(
    conn: &impl ConnectionTrait,
    city: &CityCode,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Credential>, DbErr> {
    let mut q = Entity::find().filter(Column::IssuerCity.ne(city.as_str()));
    if let Some(a) = after {
        q = q.filter(Column::Id.gt(a));
    }
    q.order_by_asc(Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// The statement of [`issue_in_one_statement`] (`corridor-bench` runs it
/// under pgbench to measure what the database alone makes of it).
pub const ISSUE_STATEMENT: &str = "WITH signing AS (
            SELECT kid FROM issuer_keys
            WHERE kid = $1 AND city_code = $2 AND status = 'current'
        ), claim AS (
            INSERT INTO request_log (caller, request_id, operation, payload_hash, response, created_at)
            SELECT $3, $4, $5, $6, $7, $8 FROM signing
            ON CONFLICT (caller, request_id) DO NOTHING
            RETURNING 1
        ), credential AS (
            INSERT INTO credentials (id, issuer_city, category, series, level, title, holder_name,
                holder_hash, valid_from, valid_until, status, status_reason, kid, token, issued_by,
                issued_at, updated_at, status_list, status_index)
            SELECT $9, $2, $10, $11, $12, $13, $14, $15, $16, $17, $18, NULL, $1, $19, $20, $8, $8,
                $27, $28
            FROM claim
            RETURNING 1
        ), event AS (
            INSERT INTO audit_events (occurred_at, actor, actor_city, action, subject_type, subject_id, detail, city)
            SELECT $8, $21, $22, $23, $24, $25, $26, $2 FROM credential
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM event)::bigint AS stored";

/// What [`issue_in_one_statement`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneStatement {
    /// Stored: the request id claimed, the credential, its audit event and
    /// the answer, committed together.
    Stored,
    /// Nothing stored: the signing key is no longer current (rotated
    /// elsewhere), or the request id was used before (a retry).
    NotStored,
}

/// Issuance in one round trip: one statement (one implicit transaction)
/// that claims the request id with its answer, checks that the signing key
/// is still the city's current one, and inserts the credential and its
/// audit event. Each insert depends on the one before, so it all happens or
/// none of it. (No row lock on the key: a rotation committing during the
/// statement leaves the credential's `iat` inside the key's signing window,
/// which is what verification checks; a share lock on one row taken by
/// every concurrent issuance made them queue on it.)
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, name = "db.credentials.issue_in_one_statement")]
pub async fn issue_in_one_statement(
    conn: &impl ConnectionTrait,
    c: &Credential,
    (caller, request_id, operation, payload_hash): (&str, &str, &str, &str),
    answer: Vec<u8>,
    event: &super::audit::NewEvent,
) -> Result<OneStatement, DbErr> {
    use sea_orm::{DbBackend, Statement, Value};
    let q = &c.qualification;
    let values: Vec<Value> = vec![
        c.kid.clone().into(),                           // 1
        c.issuer_city.to_string().into(),               // 2
        caller.into(),                                  // 3
        request_id.into(),                              // 4
        operation.into(),                               // 5
        payload_hash.into(),                            // 6
        answer.into(),                                  // 7
        c.issued_at.into(),                             // 8
        c.id.into(),                                    // 9
        q.category().as_str().into(),                   // 10
        q.series().into(),                              // 11
        i32::from(q.level()).into(),                    // 12
        q.title().into(),                               // 13
        c.holder_name.clone().into(),                   // 14
        c.holder_hash.as_str().into(),                  // 15
        c.window.from.into(),                           // 16
        c.window.until.into(),                          // 17
        c.status.as_str().into(),                       // 18
        c.token.clone().into(),                         // 19
        c.issued_by.clone().into(),                     // 20
        event.actor.clone().into(),                     // 21
        event.actor_city.clone().into(),                // 22
        event.action.into(),                            // 23
        event.subject_type.into(),                      // 24
        event.subject_id.clone().into(),                // 25
        event.detail.to_string().into(),                // 26
        super::status_columns(c.status_entry).0.into(), // 27
        super::status_columns(c.status_entry).1.into(), // 28
    ];
    let sql = ISSUE_STATEMENT;
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    let stored: i64 = match row {
        Some(r) => r.try_get("", "stored")?,
        None => 0,
    };
    Ok(if stored == 1 {
        OneStatement::Stored
    } else {
        OneStatement::NotStored
    })
}

/// One item of [`issue_many_in_one_statement`]: the credential, the
/// payload hash of its idempotency claim, its stored answer, its event.
#[derive(Debug)]
pub struct ManyItem<'a> {
    /// The signed credential.
    pub credential: &'a Credential,
    /// The item's request id.
    pub request_id: &'a str,
    /// SHA-256 of the item's fingerprint (`Idempotent::payload_hash`).
    pub payload_hash: &'a str,
    /// The answer a retry replays.
    pub answer: &'a [u8],
    /// Its audit event.
    pub event: &'a super::audit::NewEvent,
}

/// One row of the statement's JSON parameter, borrowed from its item: the
/// rows of a batch are serialized straight from the credentials, without an
/// intermediate `serde_json::Value` per row.
#[derive(serde::Serialize)]
struct ManyRow<'a> {
    ord: usize,
    kid: &'a str,
    city: &'a str,
    request_id: &'a str,
    payload_hash: &'a str,
    /// Base64 (standard, padded): Postgres' `decode(.., 'base64')`.
    answer: String,
    id: Uuid,
    category: &'a str,
    series: &'a str,
    level: i32,
    title: &'a str,
    holder_name: &'a str,
    holder_hash: &'a str,
    valid_from: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
    status: &'a str,
    token: &'a str,
    issued_by: &'a str,
    issued_at: DateTime<Utc>,
    status_list: Option<i32>,
    status_index: Option<i32>,
    actor_city: Option<&'a str>,
    action: &'a str,
    subject_type: &'a str,
    detail: String,
    event_city: Option<&'a str>,
}

/// Issuance of many credentials in one round trip (Postgres): one statement
/// over the rows as one JSON parameter, which for each row checks that its
/// key is still its city's current key, claims its request id, and stores
/// the credential and its audit event (in the rows' order), like
/// [`issue_in_one_statement`] row by row. Returns the ids stored; a row not
/// stored (a retry, or a key rotated elsewhere) is left to the caller.
#[tracing::instrument(skip_all, name = "db.credentials.issue_many", fields(rows = items.len()))]
pub async fn issue_many_in_one_statement(
    conn: &impl ConnectionTrait,
    caller: &str,
    operation: &str,
    items: &[ManyItem<'_>],
) -> Result<std::collections::HashSet<Uuid>, DbErr> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use sea_orm::{DbBackend, Statement};
    let rows: Vec<ManyRow<'_>> = items
        .iter()
        .enumerate()
        .map(|(ord, it)| {
            let c = it.credential;
            let q = &c.qualification;
            let (status_list, status_index) = super::status_columns(c.status_entry);
            ManyRow {
                ord,
                kid: &c.kid,
                city: c.issuer_city.as_str(),
                request_id: it.request_id,
                payload_hash: it.payload_hash,
                answer: STANDARD.encode(it.answer),
                id: c.id,
                category: q.category().as_str(),
                series: q.series(),
                level: i32::from(q.level()),
                title: q.title(),
                holder_name: &c.holder_name,
                holder_hash: c.holder_hash.as_str(),
                valid_from: c.window.from,
                valid_until: c.window.until,
                status: c.status.as_str(),
                token: &c.token,
                issued_by: &c.issued_by,
                issued_at: c.issued_at,
                status_list,
                status_index,
                actor_city: it.event.actor_city.as_deref(),
                action: it.event.action,
                subject_type: it.event.subject_type,
                detail: it.event.detail.to_string(),
                event_city: it.event.city.as_deref(),
            }
        })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    let found = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            ISSUE_MANY_STATEMENT,
            [rows.into(), caller.into(), operation.into()],
        ))
        .await?;
    found
        .iter()
        .map(|r| {
            let id: String = r.try_get("", "subject_id")?;
            Uuid::parse_str(&id).map_err(|e| DbErr::Custom(e.to_string()))
        })
        .collect()
}

/// The statement of [`issue_many_in_one_statement`].
pub const ISSUE_MANY_STATEMENT: &str = "WITH input AS (
            SELECT * FROM json_to_recordset($1::json) AS t(
                ord int, kid text, city text, request_id text, payload_hash text, answer text,
                id uuid, category text, series text, level int, title text, holder_name text,
                holder_hash text, valid_from timestamptz, valid_until timestamptz, status text,
                token text, issued_by text, issued_at timestamptz, status_list int,
                status_index int, actor_city text, action text, subject_type text, detail text,
                event_city text)
        ), signing AS (
            SELECT i.* FROM input i
            JOIN issuer_keys k ON k.kid = i.kid AND k.city_code = i.city AND k.status = 'current'
        ), claim AS (
            INSERT INTO request_log (caller, request_id, operation, payload_hash, response, created_at)
            SELECT $2, request_id, $3, payload_hash, decode(answer, 'base64'), issued_at FROM signing
            ON CONFLICT (caller, request_id) DO NOTHING
            RETURNING request_id
        ), credential AS (
            INSERT INTO credentials (id, issuer_city, category, series, level, title, holder_name,
                holder_hash, valid_from, valid_until, status, status_reason, kid, token, issued_by,
                issued_at, updated_at, status_list, status_index)
            SELECT s.id, s.city, s.category, s.series, s.level, s.title, s.holder_name,
                s.holder_hash, s.valid_from, s.valid_until, s.status, NULL, s.kid, s.token,
                s.issued_by, s.issued_at, s.issued_at, s.status_list, s.status_index
            FROM signing s JOIN claim c ON c.request_id = s.request_id
            RETURNING id
        ), event AS (
            INSERT INTO audit_events (occurred_at, actor, actor_city, action, subject_type, subject_id, detail, city)
            SELECT s.issued_at, $2, s.actor_city, s.action, s.subject_type, s.id::text, s.detail, s.event_city
            FROM signing s JOIN credential c ON c.id = s.id
            ORDER BY s.ord
            RETURNING subject_id
        )
        SELECT subject_id FROM event";
