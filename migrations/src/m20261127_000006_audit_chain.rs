//! The tamper-evident audit trail and the change stream.
//!
//! - `audit_events` gains `city` and `other_city` (whom an event concerns:
//!   the per-city chain and who may watch it), and on Postgres `txid`, the
//!   writing transaction's id, by which the sequencer settles events in an
//!   order no later commit can slip into (see docs/DESIGN.md, Audit).
//! - `audit_chain` (insert-only): each event's gapless `position` and its
//!   corridor-wide and per-city hashes (and the city, so that a range can be
//!   checked from the chain alone, even after old events were pruned).
//! - `audit_city_heads`: each city's chain head, kept by the sequencer.
//! - `audit_checkpoints`: signed heads of the chain.
//! - `corridor_keys`: the corridor's own signing key (checkpoints), sealed
//!   like the city keys.
//! - `sequencer_state`: the sequencer's watermark, and the last position
//!   whose event was pruned (retention).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES: &[&str] = &[
    "ALTER TABLE audit_events ADD COLUMN city varchar(32), ADD COLUMN other_city varchar(32), ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()",
    "CREATE INDEX audit_events_by_txid ON audit_events (txid, seq)",
    "CREATE TABLE audit_chain (position bigint PRIMARY KEY, seq bigint NOT NULL UNIQUE, hash bytea NOT NULL, city varchar(32), city_hash bytea, CHECK (position > 0), CHECK (octet_length(hash) = 32))",
    "CREATE INDEX audit_chain_by_city ON audit_chain (city, position)",
    "CREATE TABLE audit_city_heads (city varchar(32) PRIMARY KEY, position bigint NOT NULL, hash bytea NOT NULL)",
    "CREATE TABLE audit_checkpoints (position bigint PRIMARY KEY, head bytea NOT NULL, signed_at timestamptz NOT NULL, kid varchar(64) NOT NULL, signature bytea NOT NULL)",
    "CREATE TABLE corridor_keys (kid varchar(64) PRIMARY KEY, public_key bytea NOT NULL, sealed_private_key bytea NOT NULL, created_at timestamptz NOT NULL)",
    "CREATE TABLE sequencer_state (id smallint PRIMARY KEY CHECK (id = 1), last_txid xid8, last_seq bigint NOT NULL DEFAULT 0, pruned_through bigint NOT NULL DEFAULT 0)",
    "INSERT INTO sequencer_state (id, last_txid, last_seq) VALUES (1, '0', 0)",
];

const SQLITE: &[&str] = &[
    "ALTER TABLE audit_events ADD COLUMN city varchar(32)",
    "ALTER TABLE audit_events ADD COLUMN other_city varchar(32)",
    "CREATE TABLE audit_chain (position bigint PRIMARY KEY, seq bigint NOT NULL UNIQUE, hash blob NOT NULL, city varchar(32), city_hash blob)",
    "CREATE INDEX audit_chain_by_city ON audit_chain (city, position)",
    "CREATE TABLE audit_city_heads (city varchar(32) PRIMARY KEY, position bigint NOT NULL, hash blob NOT NULL)",
    "CREATE TABLE audit_checkpoints (position bigint PRIMARY KEY, head blob NOT NULL, signed_at text NOT NULL, kid varchar(64) NOT NULL, signature blob NOT NULL)",
    "CREATE TABLE corridor_keys (kid varchar(64) PRIMARY KEY, public_key blob NOT NULL, sealed_private_key blob NOT NULL, created_at text NOT NULL)",
    "CREATE TABLE sequencer_state (id smallint PRIMARY KEY CHECK (id = 1), last_txid bigint, last_seq bigint NOT NULL DEFAULT 0, pruned_through bigint NOT NULL DEFAULT 0)",
    "INSERT INTO sequencer_state (id, last_txid, last_seq) VALUES (1, 0, 0)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements = if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            POSTGRES
        } else {
            SQLITE
        };
        for s in statements {
            db.execute_unprepared(s).await?;
        }
        // Events written before: their city is their actor's.
        db.execute_unprepared("UPDATE audit_events SET city = actor_city")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for t in [
            "sequencer_state",
            "corridor_keys",
            "audit_checkpoints",
            "audit_city_heads",
            "audit_chain",
        ] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t}"))
                .await?;
        }
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE audit_events DROP COLUMN IF EXISTS txid, DROP COLUMN IF EXISTS city, DROP COLUMN IF EXISTS other_city",
            )
            .await?;
        }
        Ok(())
    }
}
