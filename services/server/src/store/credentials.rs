//! Repository of `credentials`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::credential::{self, Column, Entity};

/// Inserts an issued credential.
pub async fn insert(conn: &impl ConnectionTrait, row: credential::Model) -> Result<(), DbErr> {
    let am = credential::ActiveModel {
        id: Set(row.id),
        issuer_city: Set(row.issuer_city),
        category: Set(row.category),
        series: Set(row.series),
        level: Set(row.level),
        title: Set(row.title),
        holder_name: Set(row.holder_name),
        holder_hash: Set(row.holder_hash),
        valid_from: Set(row.valid_from),
        valid_until: Set(row.valid_until),
        status: Set(row.status),
        status_reason: Set(row.status_reason),
        kid: Set(row.kid),
        token: Set(row.token),
        issued_by: Set(row.issued_by),
        issued_at: Set(row.issued_at),
        updated_at: Set(row.updated_at),
    };
    Entity::insert(am).exec_without_returning(conn).await?;
    Ok(())
}

/// One credential by id: the single round trip of a verify by id.
pub async fn get(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<credential::Model>, DbErr> {
    Entity::find_by_id(id).one(conn).await
}

/// One credential by id, row-locked until the end of the transaction
/// (Postgres `FOR UPDATE`), for a status change.
pub async fn get_for_update(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<credential::Model>, DbErr> {
    let mut q = Entity::find_by_id(id);
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    q.one(conn).await
}

/// Sets the status of a credential.
pub async fn set_status(
    conn: &impl ConnectionTrait,
    id: Uuid,
    status: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(Column::StatusReason, Expr::value(Some(reason.to_owned())))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Filters of a listing.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Issuing city.
    pub issuer_city: Option<String>,
    /// Status name.
    pub status: Option<String>,
    /// Category name.
    pub category: Option<String>,
    /// Holder hash.
    pub holder_hash: Option<String>,
}

/// Where the previous page ended: the last (issued_at, id) it returned.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    /// Issuance time of the last row.
    pub issued_at: DateTime<Utc>,
    /// Id of the last row.
    pub id: Uuid,
}

/// Lists up to `limit` credentials newest first (issued_at, then id, both
/// descending), strictly after `after`. Keyset pagination: stable under
/// concurrent inserts and as fast on page 1000 as on page 1.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &Filter,
    after: Option<Cursor>,
    limit: u64,
) -> Result<Vec<credential::Model>, DbErr> {
    let mut cond = Condition::all();
    if let Some(c) = &filter.issuer_city {
        cond = cond.add(Column::IssuerCity.eq(c.as_str()));
    }
    if let Some(s) = &filter.status {
        cond = cond.add(Column::Status.eq(s.as_str()));
    }
    if let Some(c) = &filter.category {
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
        .await
}

/// A page of credentials not issued by `city`, by id, after `after`: the
/// population a policy simulation runs over.
pub async fn page_not_from(
    conn: &impl ConnectionTrait,
    city: &str,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<credential::Model>, DbErr> {
    let mut q = Entity::find().filter(Column::IssuerCity.ne(city));
    if let Some(a) = after {
        q = q.filter(Column::Id.gt(a));
    }
    q.order_by_asc(Column::Id).limit(limit).all(conn).await
}
