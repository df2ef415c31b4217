//! W3C Bitstring Status Lists: each credential and each recognition
//! attestation gets an entry (list number, index) in its city's lists, and
//! each city a counter of handed-out positions with the secret key that
//! turns positions into indexes (`corridor_domain::status_list`).
//!
//! Rows from before this migration keep no entry (NULL): their tokens carry
//! no `credentialStatus`, and their status is known online only.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StatusAllocations {
    Table,
    CityCode,
    NextPosition,
    PermutationKey,
}

#[derive(DeriveIden)]
enum Cities {
    Table,
    Code,
}

const UP: [&str; 8] = [
    "ALTER TABLE credentials ADD COLUMN status_list INTEGER NULL",
    "ALTER TABLE credentials ADD COLUMN status_index INTEGER NULL",
    "CREATE UNIQUE INDEX credentials_status_entry ON credentials (issuer_city, status_list, status_index) WHERE status_list IS NOT NULL",
    // Building a list reads only the entries whose bit is set.
    "CREATE INDEX credentials_status_set ON credentials (issuer_city, status_list) WHERE status_list IS NOT NULL AND status <> 'active'",
    "ALTER TABLE recognitions ADD COLUMN status_list INTEGER NULL",
    "ALTER TABLE recognitions ADD COLUMN status_index INTEGER NULL",
    "CREATE UNIQUE INDEX recognitions_status_entry ON recognitions (target_city, status_list, status_index) WHERE status_list IS NOT NULL",
    "CREATE INDEX recognitions_status_set ON recognitions (target_city, status_list) WHERE status_list IS NOT NULL AND status IN ('suspended', 'void')",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StatusAllocations::Table)
                    .col(string_len(StatusAllocations::CityCode, 32).primary_key())
                    .col(big_integer(StatusAllocations::NextPosition))
                    .col(blob(StatusAllocations::PermutationKey))
                    .foreign_key(
                        ForeignKey::create()
                            .from(StatusAllocations::Table, StatusAllocations::CityCode)
                            .to(Cities::Table, Cities::Code),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for sql in UP {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "DROP INDEX recognitions_status_set",
            "DROP INDEX recognitions_status_entry",
            "ALTER TABLE recognitions DROP COLUMN status_index",
            "ALTER TABLE recognitions DROP COLUMN status_list",
            "DROP INDEX credentials_status_set",
            "DROP INDEX credentials_status_entry",
            "ALTER TABLE credentials DROP COLUMN status_index",
            "ALTER TABLE credentials DROP COLUMN status_list",
        ] {
            db.execute_unprepared(sql).await?;
        }
        manager
            .drop_table(Table::drop().table(StatusAllocations::Table).to_owned())
            .await
    }
}
