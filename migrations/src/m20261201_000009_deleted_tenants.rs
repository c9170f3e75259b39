//! Offboarding (issue #16): a deleted tenant leaves a tombstone — its id (never reused: its
//! audit trail stays readable under that id until its retention ends), who deleted it and
//! when, and how far the purge of its data and, later, of its audit trail has come.

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000009_deleted_tenants"
    }
}

#[derive(DeriveIden)]
enum DeletedTenants {
    Table,
    TenantId,
    DeletedAt,
    DeletedBy,
    DataPurgedAt,
    AuditPurgedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use DeletedTenants as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(
                        ColumnDef::new(D::TenantId)
                            .string_len(63)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(D::DeletedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(D::DeletedBy).string_len(320).not_null())
                    .col(
                        ColumnDef::new(D::DataPurgedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(D::AuditPurgedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeletedTenants::Table).to_owned())
            .await
    }
}
