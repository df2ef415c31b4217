//! Repository of `cities`: the corridor's members, as typed [`City`] records.

use corridor_domain::city::CityCode;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryOrder};

use super::corrupt;
use super::entities::city::{Column, Entity, Model};

/// A corridor city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct City {
    /// Its code.
    pub code: CityCode,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Province.
    pub province: String,
}

fn record(m: Model) -> Result<City, DbErr> {
    Ok(City {
        code: CityCode::parse("code", &m.code).map_err(|_| corrupt(format!("city {}", m.code)))?,
        name_zh: m.name_zh,
        name_en: m.name_en,
        province: m.province,
    })
}

/// Every corridor city, ordered by code.
#[tracing::instrument(skip_all, name = "db.cities.all")]
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<City>, DbErr> {
    Entity::find()
        .order_by_asc(Column::Code)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// One city by code.
#[tracing::instrument(skip_all, name = "db.cities.get")]
pub async fn get(conn: &impl ConnectionTrait, code: &CityCode) -> Result<Option<City>, DbErr> {
    Entity::find_by_id(code.to_string())
        .one(conn)
        .await?
        .map(record)
        .transpose()
}
