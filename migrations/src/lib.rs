//! Versioned migrations of the Talent Corridor schema (sea-orm-migration).
//!
//! Owns the schema and its seed data (the nine founding corridor cities).
//! Each migration is a file `mYYYYMMDD_NNNNNN_name.rs`; a migration that has
//! landed on `main` is never edited, only followed by a new one. The same
//! migrations run on Postgres (production, tests) and SQLite (zero-setup dev).
//! The tables are described in `docs/DESIGN.md`.

use sea_orm_migration::prelude::*;

mod m20261127_000001_init;
mod m20261127_000002_seed_cities;
mod m20261127_000003_recognition;
mod m20261127_000004_status_checks;
mod m20261127_000005_hot_path_foreign_keys;
mod m20261127_000006_audit_chain;
mod m20261127_000007_status_lists;

/// Runs the corridor migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_init::Migration),
            Box::new(m20261127_000002_seed_cities::Migration),
            Box::new(m20261127_000003_recognition::Migration),
            Box::new(m20261127_000004_status_checks::Migration),
            Box::new(m20261127_000005_hot_path_foreign_keys::Migration),
            Box::new(m20261127_000006_audit_chain::Migration),
            Box::new(m20261127_000007_status_lists::Migration),
        ]
    }
}
