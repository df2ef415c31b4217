//! Repository of `issuer_keys`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::issuer_key::{self, Column, Entity};

/// Status value of the current key.
pub const CURRENT: &str = "current";
/// Status value of a retired key.
pub const RETIRED: &str = "retired";

/// Every key of every city.
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<issuer_key::Model>, DbErr> {
    Entity::find().all(conn).await
}

/// One key by kid.
pub async fn by_kid(
    conn: &impl ConnectionTrait,
    kid: &str,
) -> Result<Option<issuer_key::Model>, DbErr> {
    Entity::find_by_id(kid.to_owned()).one(conn).await
}

/// A city's keys: current first, then retired newest first.
pub async fn for_city(
    conn: &impl ConnectionTrait,
    city: &str,
) -> Result<Vec<issuer_key::Model>, DbErr> {
    Entity::find()
        .filter(Column::CityCode.eq(city))
        .order_by_asc(Column::Status)
        .order_by_desc(Column::NotBefore)
        .all(conn)
        .await
}

/// How [`current`] locks the key row until the end of the transaction
/// (Postgres; SQLite serializes writers anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// A plain read.
    None,
    /// `FOR SHARE`: signers; a rotation waits until they commit.
    Share,
    /// `FOR UPDATE`: the rotation itself.
    Update,
}

/// The current key of a city.
pub async fn current(
    conn: &impl ConnectionTrait,
    city: &str,
    lock: Lock,
) -> Result<Option<issuer_key::Model>, DbErr> {
    let mut q = Entity::find()
        .filter(Column::CityCode.eq(city))
        .filter(Column::Status.eq(CURRENT));
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        q = match lock {
            Lock::None => q,
            Lock::Share => q.lock_shared(),
            Lock::Update => q.lock_exclusive(),
        };
    }
    q.one(conn).await
}

/// Inserts a new current key unless the city already has one (another
/// replica won the race). Returns whether it was inserted.
pub async fn insert_current_if_none(
    conn: &impl ConnectionTrait,
    kid: String,
    city: String,
    public_key: Vec<u8>,
    sealed: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let am = issuer_key::ActiveModel {
        kid: Set(kid),
        city_code: Set(city),
        public_key: Set(public_key),
        sealed_private_key: Set(sealed),
        status: Set(CURRENT.to_owned()),
        not_before: Set(now),
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
