//! Repository of `policy_versions`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::policy_version::{self, Column, Entity};

/// The version of `city` in force at `at`: the latest `effective_from` not
/// after `at`, the higher version on a tie.
pub async fn in_force(
    conn: &impl ConnectionTrait,
    city: &str,
    at: DateTime<Utc>,
) -> Result<Option<policy_version::Model>, DbErr> {
    Entity::find()
        .filter(Column::CityCode.eq(city))
        .filter(Column::EffectiveFrom.lte(at))
        .order_by_desc(Column::EffectiveFrom)
        .order_by_desc(Column::Version)
        .one(conn)
        .await
}

/// One version.
pub async fn get(
    conn: &impl ConnectionTrait,
    city: &str,
    version: i32,
) -> Result<Option<policy_version::Model>, DbErr> {
    Entity::find_by_id((city.to_owned(), version))
        .one(conn)
        .await
}

/// The highest version number of `city` (0 when none).
pub async fn latest_version(conn: &impl ConnectionTrait, city: &str) -> Result<i32, DbErr> {
    Ok(Entity::find()
        .filter(Column::CityCode.eq(city))
        .order_by_desc(Column::Version)
        .one(conn)
        .await?
        .map_or(0, |m| m.version))
}

/// Versions of `city` below `before` (all when `None`), newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    city: &str,
    before: Option<i32>,
    limit: u64,
) -> Result<Vec<policy_version::Model>, DbErr> {
    let mut q = Entity::find().filter(Column::CityCode.eq(city));
    if let Some(b) = before {
        q = q.filter(Column::Version.lt(b));
    }
    q.order_by_desc(Column::Version)
        .limit(limit)
        .all(conn)
        .await
}

/// Inserts a version. `Ok(false)` when that version number already exists
/// (a concurrent publication, or the defaults inserted by another replica).
pub async fn insert(
    conn: &impl ConnectionTrait,
    row: policy_version::Model,
) -> Result<bool, DbErr> {
    let am = policy_version::ActiveModel {
        city_code: Set(row.city_code),
        version: Set(row.version),
        source: Set(row.source),
        effective_from: Set(row.effective_from),
        published_at: Set(row.published_at),
        published_by: Set(row.published_by),
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
