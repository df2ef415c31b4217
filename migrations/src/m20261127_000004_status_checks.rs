//! CHECK constraints on the columns that hold a domain enum, so that no
//! write, by this service or by hand, can store a status, outcome or
//! category the domain does not know. Postgres only: SQLite (the zero-setup
//! dev database) cannot add constraints to existing tables, and the
//! repositories parse every row into typed records there too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, constraint, condition).
const CHECKS: [(&str, &str, &str); 8] = [
    (
        "credentials",
        "credentials_status_known",
        "status IN ('active', 'suspended', 'revoked')",
    ),
    (
        "credentials",
        "credentials_category_known",
        "category IN ('PROFESSIONAL_TITLE', 'SKILL_LEVEL', 'PRACTICE_LICENSE', 'TALENT_TIER', 'FOREIGN_WORK_PERMIT')",
    ),
    (
        "credentials",
        "credentials_level_in_range",
        "level BETWEEN 1 AND 8",
    ),
    (
        "recognitions",
        "recognitions_status_known",
        "status IN ('open', 'decided', 'suspended', 'void')",
    ),
    (
        "recognitions",
        "recognitions_suspended_from_iff_suspended",
        "(status = 'suspended') = (suspended_from IS NOT NULL) AND (suspended_from IS NULL OR suspended_from IN ('open', 'decided'))",
    ),
    (
        "recognitions",
        "recognitions_outcome_known",
        "outcome IN ('RECOGNIZED', 'CONDITIONAL', 'DOWNGRADED', 'REFERRED', 'REJECTED')",
    ),
    (
        "recognitions",
        "recognitions_open_iff_conditional",
        "status <> 'open' OR outcome = 'CONDITIONAL'",
    ),
    (
        "issuer_keys",
        "issuer_keys_status_known",
        "status IN ('current', 'retired') AND (status = 'current') = (not_after IS NULL)",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, name, check) in CHECKS {
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({check})"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, name, _) in CHECKS {
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"
            ))
            .await?;
        }
        Ok(())
    }
}
