//! Consent attempts ("Grant Permissions"): single-use state (stored hashed), PKCE verifier,
//! expiry, who started it, and the outcome per domain.

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000002_grants"
    }
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    TenantId,
    StateHash,
    PkceVerifier,
    AllowRelink,
    Status,
    StartedBy,
    RequestId,
    CreatedAt,
    ExpiresAt,
    CompletedAt,
    MicrosoftTenantId,
    Error,
    ErrorDescription,
    DomainOutcomes,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Grants::Table)
                    .col(
                        ColumnDef::new(Grants::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Grants::TenantId).string_len(63).not_null())
                    .col(ColumnDef::new(Grants::StateHash).string_len(64).not_null())
                    .col(
                        ColumnDef::new(Grants::PkceVerifier)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Grants::AllowRelink).boolean().not_null())
                    .col(ColumnDef::new(Grants::Status).string_len(24).not_null())
                    .col(ColumnDef::new(Grants::StartedBy).string_len(320).not_null())
                    .col(ColumnDef::new(Grants::RequestId).string_len(128).not_null())
                    .col(
                        ColumnDef::new(Grants::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Grants::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Grants::CompletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Grants::MicrosoftTenantId)
                            .string_len(36)
                            .null(),
                    )
                    .col(ColumnDef::new(Grants::Error).string_len(128).null())
                    .col(ColumnDef::new(Grants::ErrorDescription).text().null())
                    .col(
                        ColumnDef::new(Grants::DomainOutcomes)
                            .json_binary()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The redirect finds its attempt by the hash of its state.
        manager
            .create_index(
                Index::create()
                    .name("idx_grants_state_hash")
                    .table(Grants::Table)
                    .col(Grants::StateHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_grants_tenant_created")
                    .table(Grants::Table)
                    .col(Grants::TenantId)
                    .col(Grants::CreatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Grants::Table).to_owned())
            .await
    }
}
