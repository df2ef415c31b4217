//! Storage: the database connection and the repository functions, one
//! module per table. Everything above this module talks to the database only
//! through these functions, so a newcomer finds every query here. Records
//! come out typed (the domain's `Credential`, [`recognitions::Recognition`],
//! [`keys::IssuerKeyRecord`], ...): a row that breaks the domain's rules is
//! a database error ("corrupt row"), never a half-parsed value.

pub mod audit;
pub mod cities;
pub mod credentials;
pub mod entities;
pub mod keys;
pub mod policies;
pub mod recognitions;
pub mod request_log;

use std::time::Duration;

use corridor_migrations::Migrator;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

/// The error of a row that does not parse into its record.
pub(crate) fn corrupt(what: String) -> DbErr {
    DbErr::Custom(format!("corrupt row: {what}"))
}

/// Opens a connection pool. SQLite (the zero-setup dev database) gets a
/// single connection: SQLite serializes writers anyway, and one connection
/// avoids `database is locked` errors under concurrent requests.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        opts.max_connections(1).min_connections(1);
    } else {
        opts.max_connections(20).min_connections(1);
    }
    Database::connect(opts).await
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
