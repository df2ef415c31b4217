//! Recognition: versioned city policies and recorded recognition decisions.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Cities {
    Table,
    Code,
}

#[derive(DeriveIden)]
enum Credentials {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PolicyVersions {
    Table,
    CityCode,
    Version,
    Source,
    EffectiveFrom,
    PublishedAt,
    PublishedBy,
}

#[derive(DeriveIden)]
enum Recognitions {
    Table,
    Id,
    CredentialId,
    SourceCity,
    TargetCity,
    Outcome,
    MappedLevel,
    Facts,
    Explanation,
    PolicyVersion,
    Status,
    SuspendedFrom,
    Attestation,
    DecidedBy,
    DecidedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Versions are immutable rows; the primary key makes two concurrent
        // publications of the same next version collide instead of both landing.
        manager
            .create_table(
                Table::create()
                    .table(PolicyVersions::Table)
                    .col(string_len(PolicyVersions::CityCode, 32))
                    .col(integer(PolicyVersions::Version))
                    .col(text(PolicyVersions::Source))
                    .col(timestamp_with_time_zone(PolicyVersions::EffectiveFrom))
                    .col(timestamp_with_time_zone(PolicyVersions::PublishedAt))
                    .col(string_len(PolicyVersions::PublishedBy, 200))
                    .primary_key(
                        Index::create()
                            .col(PolicyVersions::CityCode)
                            .col(PolicyVersions::Version),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PolicyVersions::Table, PolicyVersions::CityCode)
                            .to(Cities::Table, Cities::Code),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("policy_versions_in_force")
                    .table(PolicyVersions::Table)
                    .col(PolicyVersions::CityCode)
                    .col(PolicyVersions::EffectiveFrom)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Recognitions::Table)
                    .col(uuid(Recognitions::Id).primary_key())
                    .col(uuid(Recognitions::CredentialId))
                    .col(string_len(Recognitions::SourceCity, 32))
                    .col(string_len(Recognitions::TargetCity, 32))
                    .col(string_len(Recognitions::Outcome, 16))
                    .col(integer_null(Recognitions::MappedLevel))
                    .col(text(Recognitions::Facts))
                    .col(text(Recognitions::Explanation))
                    .col(integer(Recognitions::PolicyVersion))
                    .col(string_len(Recognitions::Status, 16))
                    .col(string_len_null(Recognitions::SuspendedFrom, 16))
                    .col(text(Recognitions::Attestation))
                    .col(string_len(Recognitions::DecidedBy, 200))
                    .col(timestamp_with_time_zone(Recognitions::DecidedAt))
                    .col(timestamp_with_time_zone(Recognitions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Recognitions::Table, Recognitions::CredentialId)
                            .to(Credentials::Table, Credentials::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Recognitions::Table, Recognitions::TargetCity)
                            .to(Cities::Table, Cities::Code),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("recognitions_by_credential")
                    .table(Recognitions::Table)
                    .col(Recognitions::CredentialId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("recognitions_by_target_newest")
                    .table(Recognitions::Table)
                    .col(Recognitions::TargetCity)
                    .col(Recognitions::DecidedAt)
                    .col(Recognitions::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Recognitions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PolicyVersions::Table).to_owned())
            .await
    }
}
