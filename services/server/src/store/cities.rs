//! Repository of `cities`.

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryOrder};

use super::entities::city::{self, Column, Entity};

/// Every corridor city, ordered by code.
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<city::Model>, DbErr> {
    Entity::find().order_by_asc(Column::Code).all(conn).await
}

/// One city by code.
pub async fn get(conn: &impl ConnectionTrait, code: &str) -> Result<Option<city::Model>, DbErr> {
    Entity::find_by_id(code.to_owned()).one(conn).await
}
