//! Repository of `policy_versions`: immutable versions of each city's
//! policy, as typed [`PolicyVersion`] records.

use chrono::{DateTime, Utc};
use corridor_domain::city::CityCode;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::corrupt;
use super::entities::policy_version::{self, Column, Entity};

/// One published version of a city's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// The city.
    pub city: CityCode,
    /// Version, from 1.
    pub version: i32,
    /// Cedar source.
    pub source: String,
    /// From when it decides.
    pub effective_from: DateTime<Utc>,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// Publisher subject (`system` for the defaults).
    pub published_by: String,
}

fn record(m: policy_version::Model) -> Result<PolicyVersion, DbErr> {
    Ok(PolicyVersion {
        city: CityCode::parse("city", &m.city_code)
            .map_err(|_| corrupt(format!("policy {} v{}", m.city_code, m.version)))?,
        version: m.version,
        source: m.source,
        effective_from: m.effective_from,
        published_at: m.published_at,
        published_by: m.published_by,
    })
}

/// The version of `city` in force at `at`: the latest `effective_from` not
/// after `at`, the higher version on a tie.
#[tracing::instrument(skip_all, name = "db.policies.in_force")]
pub async fn in_force(
    conn: &impl ConnectionTrait,
    city: &CityCode,
    at: DateTime<Utc>,
) -> Result<Option<PolicyVersion>, DbErr> {
    Entity::find()
        .filter(Column::CityCode.eq(city.as_str()))
        .filter(Column::EffectiveFrom.lte(at))
        .order_by_desc(Column::EffectiveFrom)
        .order_by_desc(Column::Version)
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// When each version of `city` takes effect: (version, effective_from).
#[tracing::instrument(skip_all, name = "db.policies.schedule")]
pub async fn schedule(
    conn: &impl ConnectionTrait,
    city: &CityCode,
) -> Result<Vec<(i32, DateTime<Utc>)>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::Version)
        .column(Column::EffectiveFrom)
        .filter(Column::CityCode.eq(city.as_str()))
        .into_tuple::<(i32, DateTime<Utc>)>()
        .all(conn)
        .await
}

/// One version.
#[tracing::instrument(skip_all, name = "db.policies.get")]
pub async fn get(
    conn: &impl ConnectionTrait,
    city: &CityCode,
    version: i32,
) -> Result<Option<PolicyVersion>, DbErr> {
    Entity::find_by_id((city.to_string(), version))
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// The highest version number of `city` (0 when none).
#[tracing::instrument(skip_all, name = "db.policies.latest_version")]
pub async fn latest_version(conn: &impl ConnectionTrait, city: &CityCode) -> Result<i32, DbErr> {
    Ok(Entity::find()
        .filter(Column::CityCode.eq(city.as_str()))
        .order_by_desc(Column::Version)
        .one(conn)
        .await?
        .map_or(0, |m| m.version))
}

/// Versions of `city` below `before` (all when `None`), newest first.
#[tracing::instrument(skip_all, name = "db.policies.list")]
pub async fn list(
    conn: &impl ConnectionTrait,
    city: &CityCode,
    before: Option<i32>,
    limit: u64,
) -> Result<Vec<PolicyVersion>, DbErr> {
    let mut q = Entity::find().filter(Column::CityCode.eq(city.as_str()));
    if let Some(b) = before {
        q = q.filter(Column::Version.lt(b));
    }
    q.order_by_desc(Column::Version)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// Inserts a version. `Ok(false)` when that version number already exists
/// (a concurrent publication, or the defaults inserted by another replica).
#[tracing::instrument(skip_all, name = "db.policies.insert")]
pub async fn insert(conn: &impl ConnectionTrait, v: &PolicyVersion) -> Result<bool, DbErr> {
    let am = policy_version::ActiveModel {
        city_code: Set(v.city.to_string()),
        version: Set(v.version),
        source: Set(v.source.clone()),
        effective_from: Set(v.effective_from),
        published_at: Set(v.published_at),
        published_by: Set(v.published_by.clone()),
    };
    match Entity::insert(am)
        .on_conflict(
            OnConflict::columns([Column::CityCode, Column::Version])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await
    {
        Ok(n) => Ok(n > 0),
        Err(DbErr::RecordNotInserted) => Ok(false),
        Err(e) => Err(e),
    }
}
