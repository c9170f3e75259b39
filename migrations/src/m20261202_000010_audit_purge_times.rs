//! A deleted tenant's tombstone records when its audit trail may be purged (issue #16): the
//! deletion time plus the retention in force then, as DeleteTenant answered its caller, so
//! that changing the retention later neither cuts a kept trail short nor keeps a purged one.
//! `audit_purge_at` is that time (NULL: kept forever); `audit_purge_recorded` tells those
//! from the tombstones made before this migration (false), which recorded no time and go by
//! the retention configured now, as they did.

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000010_audit_purge_times"
    }
}

#[derive(DeriveIden)]
enum DeletedTenants {
    Table,
    AuditPurgeAt,
    AuditPurgeRecorded,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use DeletedTenants as D;
        // One column per statement: SQLite alters one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(
                        ColumnDef::new(D::AuditPurgeAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(
                        ColumnDef::new(D::AuditPurgeRecorded)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            DeletedTenants::AuditPurgeRecorded,
            DeletedTenants::AuditPurgeAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(DeletedTenants::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
