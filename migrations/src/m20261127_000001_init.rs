//! The initial schema: cities, issuer keys, credentials, the request log
//! that makes mutations idempotent, and the audit trail.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Cities {
    Table,
    Code,
    NameZh,
    NameEn,
    Province,
    JoinedAt,
}

#[derive(DeriveIden)]
enum IssuerKeys {
    Table,
    Kid,
    CityCode,
    PublicKey,
    SealedPrivateKey,
    Status,
    NotBefore,
    NotAfter,
}

#[derive(DeriveIden)]
enum Credentials {
    Table,
    Id,
    IssuerCity,
    Category,
    Series,
    Level,
    Title,
    HolderName,
    HolderHash,
    ValidFrom,
    ValidUntil,
    Status,
    StatusReason,
    Kid,
    Token,
    IssuedBy,
    IssuedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RequestLog {
    Table,
    Caller,
    RequestId,
    Operation,
    PayloadHash,
    Response,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Seq,
    OccurredAt,
    Actor,
    ActorCity,
    Action,
    SubjectType,
    SubjectId,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Cities::Table)
                    .col(string_len(Cities::Code, 32).primary_key())
                    .col(string_len(Cities::NameZh, 64))
                    .col(string_len(Cities::NameEn, 64))
                    .col(string_len(Cities::Province, 64))
                    .col(timestamp_with_time_zone(Cities::JoinedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IssuerKeys::Table)
                    .col(string_len(IssuerKeys::Kid, 96).primary_key())
                    .col(string_len(IssuerKeys::CityCode, 32))
                    .col(blob(IssuerKeys::PublicKey))
                    .col(blob(IssuerKeys::SealedPrivateKey))
                    .col(string_len(IssuerKeys::Status, 16))
                    .col(timestamp_with_time_zone(IssuerKeys::NotBefore))
                    .col(timestamp_with_time_zone_null(IssuerKeys::NotAfter))
                    .foreign_key(
                        ForeignKey::create()
                            .from(IssuerKeys::Table, IssuerKeys::CityCode)
                            .to(Cities::Table, Cities::Code),
                    )
                    .to_owned(),
            )
            .await?;
        // At most one current key per city: two replicas rotating at once
        // cannot both win. Partial unique indexes exist in Postgres and SQLite.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX issuer_keys_one_current_per_city \
                 ON issuer_keys (city_code) WHERE status = 'current'",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Credentials::Table)
                    .col(uuid(Credentials::Id).primary_key())
                    .col(string_len(Credentials::IssuerCity, 32))
                    .col(string_len(Credentials::Category, 32))
                    .col(string_len(Credentials::Series, 64))
                    .col(integer(Credentials::Level))
                    .col(string_len(Credentials::Title, 200))
                    .col(string_len(Credentials::HolderName, 100))
                    .col(string_len(Credentials::HolderHash, 64))
                    .col(timestamp_with_time_zone(Credentials::ValidFrom))
                    .col(timestamp_with_time_zone_null(Credentials::ValidUntil))
                    .col(string_len(Credentials::Status, 16))
                    .col(text_null(Credentials::StatusReason))
                    .col(string_len(Credentials::Kid, 96))
                    .col(text(Credentials::Token))
                    .col(string_len(Credentials::IssuedBy, 200))
                    .col(timestamp_with_time_zone(Credentials::IssuedAt))
                    .col(timestamp_with_time_zone(Credentials::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Credentials::Table, Credentials::IssuerCity)
                            .to(Cities::Table, Cities::Code),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Credentials::Table, Credentials::Kid)
                            .to(IssuerKeys::Table, IssuerKeys::Kid),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("credentials_by_city_newest")
                    .table(Credentials::Table)
                    .col(Credentials::IssuerCity)
                    .col(Credentials::IssuedAt)
                    .col(Credentials::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("credentials_newest")
                    .table(Credentials::Table)
                    .col(Credentials::IssuedAt)
                    .col(Credentials::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("credentials_by_holder")
                    .table(Credentials::Table)
                    .col(Credentials::HolderHash)
                    .to_owned(),
            )
            .await?;

        // The request log: one row per (caller, request_id). The primary key
        // is what makes retries idempotent across replicas: a concurrent
        // retry blocks on it until the first attempt commits or rolls back.
        manager
            .create_table(
                Table::create()
                    .table(RequestLog::Table)
                    .col(string_len(RequestLog::Caller, 200))
                    .col(string_len(RequestLog::RequestId, 128))
                    .col(string_len(RequestLog::Operation, 64))
                    .col(string_len(RequestLog::PayloadHash, 64))
                    .col(blob(RequestLog::Response))
                    .col(timestamp_with_time_zone(RequestLog::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(RequestLog::Caller)
                            .col(RequestLog::RequestId),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(big_pk_auto(AuditEvents::Seq))
                    .col(timestamp_with_time_zone(AuditEvents::OccurredAt))
                    .col(string_len(AuditEvents::Actor, 200))
                    .col(string_len_null(AuditEvents::ActorCity, 32))
                    .col(string_len(AuditEvents::Action, 64))
                    .col(string_len(AuditEvents::SubjectType, 32))
                    .col(string_len(AuditEvents::SubjectId, 128))
                    .col(text(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_by_subject")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::SubjectType)
                    .col(AuditEvents::SubjectId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            RequestLog::Table.into_iden(),
            Credentials::Table.into_iden(),
            IssuerKeys::Table.into_iden(),
            Cities::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
