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
    })
}

fn active(c: &Credential) -> credential::ActiveModel {
    let q = &c.qualification;
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
    }
}

/// Inserts an issued credential.
pub async fn insert(conn: &impl ConnectionTrait, c: &Credential) -> Result<(), DbErr> {
    Entity::insert(active(c))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// One credential by id: the single round trip of a verify by id.
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Credential>, DbErr> {
    Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// One credential by id, row-locked until the end of the transaction
/// (Postgres `FOR UPDATE`), for a status change or a recognition.
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
