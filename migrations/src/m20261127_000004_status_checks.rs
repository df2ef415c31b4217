//! CHECK constraints on the columns that hold a domain enum, so that no
//! write, by this service or by hand, can store a status, outcome or
//! category the domain does not know. Postgres only: SQLite (the zero-setup
//! dev database) cannot add constraints to existing tables, and the
//! repositories parse every row into typed records there too.
//!
//! Each constraint is added `NOT VALID` (a brief lock, no scan) and then
//! validated (a scan that does not block writes). Before that, rows that
//! would fail are counted per constraint, so an upgrade over bad data stops
//! with a message naming the constraint and the count, not a bare error.

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
        "recognitions_open_only_when_conditional",
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
        let mut bad = Vec::new();
        for (table, name, check) in CHECKS {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!("SELECT count(*)::bigint AS n FROM {table} WHERE NOT ({check})"),
                ))
                .await?;
            let n: i64 = match row {
                Some(r) => r.try_get("", "n")?,
                None => 0,
            };
            if n > 0 {
                bad.push(format!("{n} row(s) of {table} break {name} ({check})"));
            }
        }
        if !bad.is_empty() {
            return Err(DbErr::Migration(format!(
                "cannot add the status checks; fix these rows first: {}",
                bad.join("; ")
            )));
        }
        for (table, name, check) in CHECKS {
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({check}) NOT VALID"
            ))
            .await?;
            db.execute_unprepared(&format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}"))
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
