//! Repository of `status_allocations` (each city's counter of status-list
//! positions and its permutation key), and the reads that build a list
//! from `credentials` and `recognitions`.

use corridor_domain::city::CityCode;
use corridor_domain::status_list::Purpose;
use sea_orm::{ConnectionTrait, DbErr};

use super::stmt;

/// A block of positions handed to this replica: `start..end`, with the
/// city's permutation key.
#[derive(Debug, Clone)]
pub struct Reserved {
    /// First position.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// The city's permutation key.
    pub key: Vec<u8>,
}

/// Reserves the next `n` positions of `city` (one short statement of its
/// own, committed at once: a block is never handed out twice). The city's
/// row is created on first use with `new_key`.
pub async fn reserve(
    conn: &impl ConnectionTrait,
    city: &CityCode,
    n: u64,
    new_key: &[u8],
) -> Result<Reserved, DbErr> {
    let backend = conn.get_database_backend();
    let n_i = i64::try_from(n).map_err(|_| DbErr::Custom("block too large".into()))?;
    for _ in 0..2 {
        let row = conn
            .query_one_raw(stmt(
                backend,
                "UPDATE status_allocations SET next_position = next_position + $2 \
                 WHERE city_code = $1 RETURNING next_position, permutation_key",
                vec![city.to_string().into(), n_i.into()],
            ))
            .await?;
        if let Some(row) = row {
            let next: i64 = row.try_get("", "next_position")?;
            let key: Vec<u8> = row.try_get("", "permutation_key")?;
            let end = u64::try_from(next).map_err(|_| DbErr::Custom("negative position".into()))?;
            return Ok(Reserved {
                start: end.saturating_sub(n),
                end,
                key,
            });
        }
        conn.execute_raw(stmt(
            backend,
            "INSERT INTO status_allocations (city_code, next_position, permutation_key) \
             VALUES ($1, 0, $2) ON CONFLICT (city_code) DO NOTHING",
            vec![city.to_string().into(), new_key.to_vec().into()],
        ))
        .await?;
    }
    Err(DbErr::Custom(format!(
        "no status allocation row for {city}"
    )))
}

/// Positions handed out so far in `city` (0 before the first).
pub async fn positions(conn: &impl ConnectionTrait, city: &CityCode) -> Result<u64, DbErr> {
    let row = conn
        .query_one_raw(stmt(
            conn.get_database_backend(),
            "SELECT next_position FROM status_allocations WHERE city_code = $1",
            vec![city.to_string().into()],
        ))
        .await?;
    match row {
        None => Ok(0),
        Some(r) => {
            let n: i64 = r.try_get("", "next_position")?;
            Ok(u64::try_from(n).unwrap_or(0))
        }
    }
}

/// The indexes of list `list` of `city` whose `purpose` bit is set: the
/// city's credentials revoked (suspended), and the recognitions it attested
/// that are void (suspended).
pub async fn set_indexes(
    conn: &impl ConnectionTrait,
    city: &CityCode,
    list: u32,
    purpose: Purpose,
) -> Result<Vec<u32>, DbErr> {
    let (credential, recognition) = match purpose {
        Purpose::Revocation => ("revoked", "void"),
        Purpose::Suspension => ("suspended", "suspended"),
    };
    let rows = conn
        .query_all_raw(stmt(
            conn.get_database_backend(),
            "SELECT status_index FROM credentials \
               WHERE issuer_city = $1 AND status_list = $2 AND status <> 'active' AND status = $3 \
             UNION ALL \
             SELECT status_index FROM recognitions \
               WHERE target_city = $1 AND status_list = $2 AND status IN ('suspended', 'void') AND status = $4",
            vec![
                city.to_string().into(),
                i32::try_from(list).unwrap_or(i32::MAX).into(),
                credential.into(),
                recognition.into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let i: i32 = r.try_get("", "status_index")?;
            u32::try_from(i).map_err(|_| DbErr::Custom("negative status index".into()))
        })
        .collect()
}
