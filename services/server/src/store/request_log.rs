//! Repository of `request_log`, the idempotency record.
//!
//! A mutating request first *claims* its `(caller, request_id)` inside its
//! own transaction. The primary key makes the claim exclusive across
//! replicas: a concurrent retry's insert waits on the first attempt's
//! uncommitted row, then either sees it committed (and replays its response)
//! or, if the first attempt rolled back, claims the id itself.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::entities::request_log::{self, Column, Entity};

/// Outcome of a claim.
#[derive(Debug)]
pub enum Claim {
    /// This attempt owns the request id.
    Claimed,
    /// The id was used before, by this earlier request.
    Existing(request_log::Model),
}

/// Claims `(caller, request_id)` for `operation` with `payload_hash`.
#[tracing::instrument(skip_all, name = "db.request_log.claim")]
pub async fn claim(
    conn: &impl ConnectionTrait,
    caller: &str,
    request_id: &str,
    operation: &str,
    payload_hash: &str,
    now: DateTime<Utc>,
) -> Result<Claim, DbErr> {
    let am = request_log::ActiveModel {
        caller: Set(caller.to_owned()),
        request_id: Set(request_id.to_owned()),
        operation: Set(operation.to_owned()),
        payload_hash: Set(payload_hash.to_owned()),
        response: Set(Vec::new()),
        created_at: Set(now),
    };
    let inserted = Entity::insert(am)
        .on_conflict(
            OnConflict::columns([Column::Caller, Column::RequestId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await;
    match inserted {
        Ok(n) if n > 0 => Ok(Claim::Claimed),
        Ok(_) | Err(DbErr::RecordNotInserted) => {
            let existing = Entity::find_by_id((caller.to_owned(), request_id.to_owned()))
                .one(conn)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("request_log row vanished".into()))?;
            Ok(Claim::Existing(existing))
        }
        Err(e) => Err(e),
    }
}

/// Stores the response of a claimed request.
#[tracing::instrument(skip_all, name = "db.request_log.complete")]
pub async fn complete(
    conn: &impl ConnectionTrait,
    caller: &str,
    request_id: &str,
    response: Vec<u8>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Response, Expr::value(response))
        .filter(Column::Caller.eq(caller))
        .filter(Column::RequestId.eq(request_id))
        .exec(conn)
        .await?;
    Ok(())
}
