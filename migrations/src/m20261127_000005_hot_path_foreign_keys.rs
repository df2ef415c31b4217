//! Drops the two foreign keys every issuance checked against one hot row.
//!
//! `credentials.issuer_city → cities` and `credentials.kid → issuer_keys`
//! made each insert take `FOR KEY SHARE` on its city's row and its key's
//! row; concurrent issuances of one city then all locked the same two rows,
//! and Postgres turns concurrent lockers of a row into a multixact that each
//! of them rewrites: issuance at 16 in flight queued on it.
//!
//! What they guaranteed still holds by construction: cities and issuer keys
//! are never deleted (no code path deletes them), and an issuance stores its
//! credential only in the statement that finds its `kid` to be the city's
//! current key (`store::credentials::issue_in_one_statement`, or the general
//! path that reads that key in its transaction). Postgres only; SQLite
//! keeps them (it does not drop constraints, and has no such contention).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE credentials DROP CONSTRAINT IF EXISTS credentials_issuer_city_fkey, DROP CONSTRAINT IF EXISTS credentials_kid_fkey",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE credentials ADD CONSTRAINT credentials_issuer_city_fkey FOREIGN KEY (issuer_city) REFERENCES cities (code), ADD CONSTRAINT credentials_kid_fkey FOREIGN KEY (kid) REFERENCES issuer_keys (kid)",
        )
        .await?;
        Ok(())
    }
}
