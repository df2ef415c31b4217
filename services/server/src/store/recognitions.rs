//! Repository of `recognitions`: rows in and out as typed [`Recognition`]
//! records (`corridor_policy`), and the cascade from credential status changes.

use chrono::{DateTime, Utc};
use corridor_domain::city::CityCode;
use corridor_domain::recognition::{Cascade, RecognitionStatus};
use corridor_policy::{Facts, Outcome, Recognition};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::corrupt;
use super::entities::recognition::{self, Column, Entity};

fn record(m: recognition::Model) -> Result<Recognition, DbErr> {
    let what = || format!("recognition {}", m.id);
    let city = |c: &str| CityCode::parse("city", c).map_err(|_| corrupt(what()));
    Ok(Recognition {
        id: m.id,
        credential_id: m.credential_id,
        source_city: city(&m.source_city)?,
        target_city: city(&m.target_city)?,
        outcome: Outcome::from_name(&m.outcome).ok_or_else(|| corrupt(what()))?,
        mapped_level: m
            .mapped_level
            .map(|l| u8::try_from(l).map_err(|_| corrupt(what())))
            .transpose()?,
        facts: serde_json::from_str(&m.facts).map_err(|_| corrupt(what()))?,
        explanation: serde_json::from_str(&m.explanation).map_err(|_| corrupt(what()))?,
        policy_version: m.policy_version,
        status: RecognitionStatus::from_stored(&m.status, m.suspended_from.as_deref())
            .ok_or_else(|| corrupt(what()))?,
        attestation: m.attestation,
        decided_by: m.decided_by,
        decided_at: m.decided_at,
        updated_at: m.updated_at,
        status_entry: super::status_entry(m.status_list, m.status_index),
    })
}

fn active(r: &Recognition) -> Result<recognition::ActiveModel, DbErr> {
    let json_err = |e: serde_json::Error| DbErr::Custom(e.to_string());
    Ok(recognition::ActiveModel {
        id: Set(r.id),
        credential_id: Set(r.credential_id),
        source_city: Set(r.source_city.to_string()),
        target_city: Set(r.target_city.to_string()),
        outcome: Set(r.outcome.as_str().to_owned()),
        mapped_level: Set(r.mapped_level.map(i32::from)),
        facts: Set(serde_json::to_string(&r.facts).map_err(json_err)?),
        explanation: Set(serde_json::to_string(&r.explanation).map_err(json_err)?),
        policy_version: Set(r.policy_version),
        status: Set(r.status.as_str().to_owned()),
        suspended_from: Set(r.status.suspended_from().map(str::to_owned)),
        attestation: Set(r.attestation.clone()),
        decided_by: Set(r.decided_by.clone()),
        decided_at: Set(r.decided_at),
        updated_at: Set(r.updated_at),
        status_list: Set(super::status_columns(r.status_entry).0),
        status_index: Set(super::status_columns(r.status_entry).1),
    })
}

/// Inserts a recognition.
#[tracing::instrument(skip_all, name = "db.recognitions.insert")]
pub async fn insert(conn: &impl ConnectionTrait, r: &Recognition) -> Result<(), DbErr> {
    Entity::insert(active(r)?)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Replaces a recognition's decision (re-decision after new facts).
#[tracing::instrument(skip_all, name = "db.recognitions.update")]
pub async fn update(conn: &impl ConnectionTrait, r: &Recognition) -> Result<(), DbErr> {
    Entity::update(active(r)?).exec(conn).await?;
    Ok(())
}

/// One recognition.
#[tracing::instrument(skip_all, name = "db.recognitions.get")]
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Recognition>, DbErr> {
    Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// One recognition, row-locked for the transaction (Postgres).
#[tracing::instrument(skip_all, name = "db.recognitions.get_for_update")]
pub async fn get_for_update(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<Recognition>, DbErr> {
    let mut q = Entity::find_by_id(id);
    if conn.get_database_backend() == DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    q.one(conn).await?.map(record).transpose()
}

/// The latest recognition of `credential` into `city`.
#[tracing::instrument(skip_all, name = "db.recognitions.latest_for")]
pub async fn latest_for(
    conn: &impl ConnectionTrait,
    credential: Uuid,
    city: &CityCode,
) -> Result<Option<Recognition>, DbErr> {
    Entity::find()
        .filter(Column::CredentialId.eq(credential))
        .filter(Column::TargetCity.eq(city.as_str()))
        .order_by_desc(Column::DecidedAt)
        .order_by_desc(Column::Id)
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// The facts of the latest recognition into `city` of each of `credentials`
/// that has one (a policy simulation replays them).
#[tracing::instrument(skip_all, name = "db.recognitions.latest_facts_for")]
pub async fn latest_facts_for(
    conn: &impl ConnectionTrait,
    credentials: &[Uuid],
    city: &CityCode,
) -> Result<std::collections::HashMap<Uuid, Facts>, DbErr> {
    if credentials.is_empty() {
        return Ok(Default::default());
    }
    // Postgres: the ids as one array parameter, so the statement text is
    // the same whatever the page size (sqlx prepares and caches every text
    // on every pooled connection). SQLite, one connection in dev, takes
    // the list.
    let ids = if conn.get_database_backend() == DbBackend::Postgres {
        let list: Vec<String> = credentials.iter().map(Uuid::to_string).collect();
        Expr::cust_with_values(
            r#""credential_id" = ANY($1::uuid[])"#,
            [format!("{{{}}}", list.join(","))],
        )
    } else {
        Column::CredentialId.is_in(credentials.iter().copied())
    };
    let rows = Entity::find()
        .filter(ids)
        .filter(Column::TargetCity.eq(city.as_str()))
        .order_by_asc(Column::CredentialId)
        .order_by_desc(Column::DecidedAt)
        .order_by_desc(Column::Id)
        .all(conn)
        .await?;
    let mut out = std::collections::HashMap::new();
    for m in rows {
        if out.contains_key(&m.credential_id) {
            continue;
        }
        let facts: Facts =
            serde_json::from_str(&m.facts).map_err(|_| corrupt(format!("recognition {}", m.id)))?;
        out.insert(m.credential_id, facts);
    }
    Ok(out)
}

/// Filters of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Target city.
    pub target_city: Option<CityCode>,
    /// Source credential.
    pub credential_id: Option<Uuid>,
    /// Stored status name.
    pub status: Option<&'static str>,
}

/// Where the previous page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Decision time of the last row.
    pub decided_at: DateTime<Utc>,
    /// Id of the last row.
    pub id: Uuid,
}

/// Lists newest first (decided_at, id), strictly after `after`.
#[tracing::instrument(skip_all, name = "db.recognitions.list")]
pub async fn list(
    conn: &impl ConnectionTrait,
    f: &Filter,
    after: Option<Cursor>,
    limit: u64,
) -> Result<Vec<Recognition>, DbErr> {
    let mut cond = Condition::all();
    if let Some(c) = &f.target_city {
        cond = cond.add(Column::TargetCity.eq(c.as_str()));
    }
    if let Some(c) = f.credential_id {
        cond = cond.add(Column::CredentialId.eq(c));
    }
    if let Some(s) = f.status {
        cond = cond.add(Column::Status.eq(s));
    }
    if let Some(cur) = after {
        cond = cond.add(
            Condition::any()
                .add(Column::DecidedAt.lt(cur.decided_at))
                .add(
                    Condition::all()
                        .add(Column::DecidedAt.eq(cur.decided_at))
                        .add(Column::Id.lt(cur.id)),
                ),
        );
    }
    Entity::find()
        .filter(cond)
        .order_by_desc(Column::DecidedAt)
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// The recognitions of `credential` follow its transition, in one statement
/// built from the domain's [`Cascade`]. Returns those that changed: (id,
/// target city, source city).
pub async fn cascade(
    conn: &impl ConnectionTrait,
    credential: Uuid,
    cascade: Cascade,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, String, String)>, DbErr> {
    use sea_orm::Statement;
    let from: Vec<String> = cascade
        .from_statuses()
        .iter()
        .map(|s| format!("'{s}'"))
        .collect();
    let set = match cascade {
        // Remember what to restore.
        Cascade::Suspend => "suspended_from = status, status = 'suspended'",
        Cascade::Restore => "status = suspended_from, suspended_from = NULL",
        Cascade::Void => "status = 'void', suspended_from = NULL",
    };
    let extra = if cascade == Cascade::Restore {
        " AND suspended_from IS NOT NULL"
    } else {
        ""
    };
    let backend = conn.get_database_backend();
    let (p1, p2) = if backend == DbBackend::Postgres {
        ("$1", "$2")
    } else {
        ("?", "?")
    };
    // The statuses are the domain's constants, not input.
    let sql = format!(
        "UPDATE recognitions SET {set}, updated_at = {p1} WHERE credential_id = {p2} AND status IN ({}){extra} RETURNING id, target_city, source_city",
        from.join(", ")
    );
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [now.into(), credential.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get::<Uuid>("", "id")?,
                r.try_get::<String>("", "target_city")?,
                r.try_get::<String>("", "source_city")?,
            ))
        })
        .collect()
}
