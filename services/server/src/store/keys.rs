//! Repository of `issuer_keys`: rows in and out as typed [`IssuerKeyRecord`]s.

use chrono::{DateTime, Utc};
use corridor_domain::city::CityCode;
use corridor_domain::keys::IssuerKeyRecord;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::corrupt;
use super::entities::issuer_key::{self, Column, Entity};

/// Status value of the current key.
const CURRENT: &str = "current";
/// Status value of a retired key.
const RETIRED: &str = "retired";

fn record(m: issuer_key::Model) -> Result<IssuerKeyRecord, DbErr> {
    let what = || format!("issuer key {}", m.kid);
    let public_key: [u8; 32] = m
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| corrupt(what()))?;
    let current = match m.status.as_str() {
        CURRENT => true,
        RETIRED => false,
        _ => return Err(corrupt(what())),
    };
    Ok(IssuerKeyRecord {
        city: CityCode::parse("city", &m.city_code).map_err(|_| corrupt(what()))?,
        kid: m.kid,
        public_key,
        sealed_private_key: m.sealed_private_key,
        current,
        not_before: m.not_before,
        not_after: m.not_after,
    })
}

fn records(rows: Vec<issuer_key::Model>) -> Result<Vec<IssuerKeyRecord>, DbErr> {
    rows.into_iter().map(record).collect()
}

/// Every key of every city.
#[tracing::instrument(skip_all, name = "db.keys.all")]
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<IssuerKeyRecord>, DbErr> {
    records(Entity::find().all(conn).await?)
}

/// A city's keys: current first, then retired newest first.
#[tracing::instrument(skip_all, name = "db.keys.for_city")]
pub async fn for_city(
    conn: &impl ConnectionTrait,
    city: &CityCode,
) -> Result<Vec<IssuerKeyRecord>, DbErr> {
    records(
        Entity::find()
            .filter(Column::CityCode.eq(city.as_str()))
            .order_by_asc(Column::Status)
            .order_by_desc(Column::NotBefore)
            .all(conn)
            .await?,
    )
}

/// How [`current`] locks the key row until the end of the transaction
/// (Postgres; SQLite serializes writers anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// A plain read.
    None,
    /// `FOR UPDATE`: the rotation itself.
    Update,
}

/// The current key of a city.
#[tracing::instrument(skip_all, name = "db.keys.current")]
pub async fn current(
    conn: &impl ConnectionTrait,
    city: &CityCode,
    lock: Lock,
) -> Result<Option<IssuerKeyRecord>, DbErr> {
    let mut q = Entity::find()
        .filter(Column::CityCode.eq(city.as_str()))
        .filter(Column::Status.eq(CURRENT));
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        q = match lock {
            Lock::None => q,
            Lock::Update => q.lock_exclusive(),
        };
    }
    q.one(conn).await?.map(record).transpose()
}

/// Inserts a new current key unless the city already has one (another
/// replica won the race). Returns whether it was inserted.
#[tracing::instrument(skip_all, name = "db.keys.insert_current_if_none")]
pub async fn insert_current_if_none(
    conn: &impl ConnectionTrait,
    key: &IssuerKeyRecord,
) -> Result<bool, DbErr> {
    let am = issuer_key::ActiveModel {
        kid: Set(key.kid.clone()),
        city_code: Set(key.city.to_string()),
        public_key: Set(key.public_key.to_vec()),
        sealed_private_key: Set(key.sealed_private_key.clone()),
        status: Set(CURRENT.to_owned()),
        not_before: Set(key.not_before),
        not_after: Set(None),
    };
    // No conflict target: any unique violation (the partial index on the
    // city's current key) means someone else inserted first.
    let n = Entity::insert(am)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(conn)
        .await;
    match n {
        Ok(n) => Ok(n > 0),
        Err(DbErr::RecordNotInserted) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Retires a key at `now`.
#[tracing::instrument(skip_all, name = "db.keys.retire")]
pub async fn retire(
    conn: &impl ConnectionTrait,
    kid: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(RETIRED))
        .col_expr(Column::NotAfter, Expr::value(Some(now)))
        .filter(Column::Kid.eq(kid))
        .exec(conn)
        .await?;
    Ok(())
}
