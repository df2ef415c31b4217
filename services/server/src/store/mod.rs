//! Storage: the database connection and the repository functions, one
//! module per table. Everything above this module talks to the database only
//! through these functions, so a newcomer finds every query here. Records
//! come out typed (the domain's `Credential`, [`recognitions::Recognition`],
//! [`keys::IssuerKeyRecord`], ...): a row that breaks the domain's rules is
//! a database error ("corrupt row"), never a half-parsed value.

pub mod audit;
pub mod audit_chain;
pub mod cities;
pub mod credentials;
pub mod entities;
pub mod keys;
pub mod policies;
pub mod recognitions;
pub mod request_log;
pub mod status_lists;

use std::time::Duration;

use corridor_migrations::Migrator;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

/// Whether `e` means the database could not be used (down, restarting,
/// unreachable, out of connections), as opposed to refusing a statement:
/// the client should retry later (UNAVAILABLE), nothing is wrong with its
/// request. SQLSTATE classes 08 (connection exception) and 57 (operator
/// intervention: shutdown, crash, cannot connect now), 53300 (too many
/// connections), and the pool's own timeouts and I/O errors.
pub fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    let sqlx = match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => s,
        _ => return false,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::Tls(_) => true,
        Sqlx::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c == "53300"),
        _ => false,
    }
}

/// The error of a row that does not parse into its record.
pub(crate) fn corrupt(what: String) -> DbErr {
    DbErr::Custom(format!("corrupt row: {what}"))
}

/// How long a pooled connection may sit idle and still be used without a
/// ping first.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens a connection pool. SQLite (the zero-setup dev database) gets a
/// single connection: SQLite serializes writers anyway, and one connection
/// avoids `database is locked` errors under concurrent requests. A request
/// waits at most `acquire_timeout` for a connection (well under the request
/// timeout, so that a client gets UNAVAILABLE, not DEADLINE_EXCEEDED).
///
/// A pooled connection is pinged before use only once it has sat idle for
/// `PING_IF_IDLE_FOR`: the pool's default, a ping on every checkout, cost
/// each database-backed call one more round trip (performance issue). So
/// a connection that died less than that after its last use (a database
/// restart or failover under load) fails its next statement with
/// UNAVAILABLE, once per pooled connection (at most 20), and the pool
/// replaces it; clients retry UNAVAILABLE.
pub async fn connect(url: &str, acquire_timeout: Duration) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(acquire_timeout)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
    if url.starts_with("sqlite:") {
        opts.max_connections(1).min_connections(1);
    } else {
        opts.max_connections(20).min_connections(1);
    }
    Database::connect(opts).await
}

/// Connects, retrying with backoff for up to `wait` while the database
/// cannot be reached (a replica may start before Postgres), saying at each
/// attempt which database it waits for. Other errors fail at once.
pub async fn connect_waiting(
    url: &str,
    acquire_timeout: Duration,
    wait: Duration,
) -> anyhow::Result<DatabaseConnection> {
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(250);
    let mut attempt = 1u32;
    loop {
        match connect(url, acquire_timeout).await {
            Ok(db) => return Ok(db),
            Err(e) if is_unavailable(&e) && started.elapsed() + backoff < wait => {
                tracing::warn!(database = %redacted(url), attempt, error = %e, "the database cannot be reached yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(e) => {
                anyhow::bail!(
                    "cannot connect to the database at {} (tried for {} s, {attempt} attempt(s)): {e}",
                    redacted(url),
                    started.elapsed().as_secs()
                )
            }
        }
    }
}

/// A database URL without its user information and query (which may hold
/// passwords): what logs and errors may show.
pub fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// A statement written with `$n` placeholders, for either backend (SQLite
/// reads them as `?n`).
pub(crate) fn stmt(
    backend: sea_orm::DbBackend,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> sea_orm::Statement {
    let sql = if backend == sea_orm::DbBackend::Postgres {
        sql.to_owned()
    } else {
        sql.replace('$', "?")
    };
    sea_orm::Statement::from_sql_and_values(backend, sql, values)
}

/// A status entry from its two nullable columns (both or neither).
pub(crate) fn status_entry(
    list: Option<i32>,
    index: Option<i32>,
) -> Option<corridor_domain::status_list::StatusEntry> {
    match (list, index) {
        (Some(l), Some(i)) => Some(corridor_domain::status_list::StatusEntry {
            list: u32::try_from(l).ok()?,
            index: u32::try_from(i).ok()?,
        }),
        _ => None,
    }
}

/// The two columns of a status entry.
pub(crate) fn status_columns(
    e: Option<corridor_domain::status_list::StatusEntry>,
) -> (Option<i32>, Option<i32>) {
    match e {
        Some(e) => (i32::try_from(e.list).ok(), i32::try_from(e.index).ok()),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redacted(
                "postgres://corridor:s3cret@db.example:5432/corridor?sslmode=verify-full&password=x"
            ),
            "postgres://db.example:5432/corridor"
        );
        assert_eq!(
            redacted("sqlite://data/x.sqlite?mode=rwc"),
            "sqlite://data/x.sqlite"
        );
    }
}
