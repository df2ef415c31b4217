//! Repository of `recognitions`, including the cascade from credential
//! status changes.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::recognition::{self, Column, Entity};

/// Status names.
pub mod status {
    /// CONDITIONAL, waiting for facts.
    pub const OPEN: &str = "open";
    /// Final.
    pub const DECIDED: &str = "decided";
    /// Source credential suspended.
    pub const SUSPENDED: &str = "suspended";
    /// Source credential revoked.
    pub const VOID: &str = "void";
}

/// Inserts a recognition.
pub async fn insert(conn: &impl ConnectionTrait, r: recognition::Model) -> Result<(), DbErr> {
    Entity::insert(active(r))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn active(r: recognition::Model) -> recognition::ActiveModel {
    recognition::ActiveModel {
        id: Set(r.id),
        credential_id: Set(r.credential_id),
        source_city: Set(r.source_city),
        target_city: Set(r.target_city),
        outcome: Set(r.outcome),
        mapped_level: Set(r.mapped_level),
        facts: Set(r.facts),
        explanation: Set(r.explanation),
        policy_version: Set(r.policy_version),
        status: Set(r.status),
        suspended_from: Set(r.suspended_from),
        attestation: Set(r.attestation),
        decided_by: Set(r.decided_by),
        decided_at: Set(r.decided_at),
        updated_at: Set(r.updated_at),
    }
}

/// Replaces a recognition's decision (re-decision after new facts).
pub async fn update(conn: &impl ConnectionTrait, r: recognition::Model) -> Result<(), DbErr> {
    Entity::update(active(r)).exec(conn).await?;
    Ok(())
}

/// One recognition.
pub async fn get(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<recognition::Model>, DbErr> {
    Entity::find_by_id(id).one(conn).await
}

/// One recognition, row-locked for the transaction (Postgres).
pub async fn get_for_update(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<recognition::Model>, DbErr> {
    let mut q = Entity::find_by_id(id);
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    q.one(conn).await
}

/// The latest recognition of `credential` into `city`.
pub async fn latest_for(
    conn: &impl ConnectionTrait,
    credential: Uuid,
    city: &str,
) -> Result<Option<recognition::Model>, DbErr> {
    Entity::find()
        .filter(Column::CredentialId.eq(credential))
        .filter(Column::TargetCity.eq(city))
        .order_by_desc(Column::DecidedAt)
        .order_by_desc(Column::Id)
        .one(conn)
        .await
}

/// Filters of a listing.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Target city.
    pub target_city: Option<String>,
    /// Source credential.
    pub credential_id: Option<Uuid>,
    /// Status name.
    pub status: Option<String>,
}

/// Lists newest first (decided_at, id), strictly after `after`.
pub async fn list(
    conn: &impl ConnectionTrait,
    f: &Filter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<recognition::Model>, DbErr> {
    let mut cond = Condition::all();
    if let Some(c) = &f.target_city {
        cond = cond.add(Column::TargetCity.eq(c.as_str()));
    }
    if let Some(c) = f.credential_id {
        cond = cond.add(Column::CredentialId.eq(c));
    }
    if let Some(s) = &f.status {
        cond = cond.add(Column::Status.eq(s.as_str()));
    }
    if let Some((t, id)) = after {
        cond = cond.add(
            Condition::any().add(Column::DecidedAt.lt(t)).add(
                Condition::all()
                    .add(Column::DecidedAt.eq(t))
                    .add(Column::Id.lt(id)),
            ),
        );
    }
    Entity::find()
        .filter(cond)
        .order_by_desc(Column::DecidedAt)
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// Source credential suspended: its live recognitions are suspended,
/// remembering what to restore. Returns how many.
pub async fn suspend_for_credential(
    conn: &impl ConnectionTrait,
    credential: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Ok(Entity::update_many()
        .col_expr(Column::SuspendedFrom, Expr::col(Column::Status))
        .col_expr(Column::Status, Expr::value(status::SUSPENDED))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::CredentialId.eq(credential))
        .filter(Column::Status.is_in([status::OPEN, status::DECIDED]))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Source credential reinstated: suspended recognitions get their status back.
pub async fn restore_for_credential(
    conn: &impl ConnectionTrait,
    credential: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Ok(Entity::update_many()
        .col_expr(Column::Status, Expr::col(Column::SuspendedFrom))
        .col_expr(Column::SuspendedFrom, Expr::value(Option::<String>::None))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::CredentialId.eq(credential))
        .filter(Column::Status.eq(status::SUSPENDED))
        .filter(Column::SuspendedFrom.is_not_null())
        .exec(conn)
        .await?
        .rows_affected)
}

/// Source credential revoked: every recognition of it is void.
pub async fn void_for_credential(
    conn: &impl ConnectionTrait,
    credential: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Ok(Entity::update_many()
        .col_expr(Column::Status, Expr::value(status::VOID))
        .col_expr(Column::SuspendedFrom, Expr::value(Option::<String>::None))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::CredentialId.eq(credential))
        .filter(Column::Status.ne(status::VOID))
        .exec(conn)
        .await?
        .rows_affected)
}
