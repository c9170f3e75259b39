//! The job as a read model (issue #10): what kind of job it is, why it failed, who cancelled
//! it and why, a snapshot of the retracted message (deliveries are purged before jobs), the
//! correlation id of the call that dispatched it; which mailbox led to a discovered target;
//! and the latest delivery time reported for each recipient of a delivery (so the Retract tab
//! can tell a recipient the message was delivered to again after a retract — a quarantine
//! re-release — from one the retract covered).

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000005_job_read_model"
    }
}

#[derive(DeriveIden)]
enum RetractJobs {
    Table,
    TenantId,
    RequestedBy,
    CreatedAt,
    Id,
    Kind,
    RestoresJobId,
    FailureCode,
    CancelRequestedBy,
    CancelReason,
    CancelRequestedAt,
    MessageSubject,
    MessageSender,
    MessageDeliveredAt,
    CorrelationId,
}

#[derive(DeriveIden)]
enum RetractTargets {
    Table,
    DiscoveredFrom,
}

#[derive(DeriveIden)]
enum DeliveryRecipients {
    Table,
    LastDeliveredAt,
}

/// One `ALTER TABLE … ADD COLUMN` (SQLite takes one column per statement).
async fn add(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: ColumnDef,
) -> Result<(), DbErr> {
    let mut column = column;
    manager
        .alter_table(
            Table::alter()
                .table(table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let text = |name: RetractJobs, len: u32| {
            let mut c = ColumnDef::new(name);
            c.string_len(len).null();
            c
        };
        let time = |name: RetractJobs| {
            let mut c = ColumnDef::new(name);
            c.timestamp_with_time_zone().null();
            c
        };
        let mut kind = ColumnDef::new(RetractJobs::Kind);
        kind.string_len(16).not_null().default("retract");
        add(manager, RetractJobs::Table, kind).await?;
        add(
            manager,
            RetractJobs::Table,
            text(RetractJobs::RestoresJobId, 36),
        )
        .await?;
        add(
            manager,
            RetractJobs::Table,
            text(RetractJobs::FailureCode, 64),
        )
        .await?;
        add(
            manager,
            RetractJobs::Table,
            text(RetractJobs::CancelRequestedBy, 320),
        )
        .await?;
        add(
            manager,
            RetractJobs::Table,
            text(RetractJobs::CancelReason, 2000),
        )
        .await?;
        add(
            manager,
            RetractJobs::Table,
            time(RetractJobs::CancelRequestedAt),
        )
        .await?;
        add(
            manager,
            RetractJobs::Table,
            text(RetractJobs::MessageSubject, 4000),
        )
        .await?;
        add(
            manager,
            RetractJobs::Table,
            text(RetractJobs::MessageSender, 320),
        )
        .await?;
        add(
            manager,
            RetractJobs::Table,
            time(RetractJobs::MessageDeliveredAt),
        )
        .await?;
        add(
            manager,
            RetractJobs::Table,
            text(RetractJobs::CorrelationId, 128),
        )
        .await?;
        let mut discovered = ColumnDef::new(RetractTargets::DiscoveredFrom);
        discovered.string_len(320).null();
        add(manager, RetractTargets::Table, discovered).await?;
        let mut delivered = ColumnDef::new(DeliveryRecipients::LastDeliveredAt);
        delivered.timestamp_with_time_zone().null();
        add(manager, DeliveryRecipients::Table, delivered).await?;
        // ListRetractJobs by requester, newest first.
        manager
            .create_index(
                Index::create()
                    .name("retract_jobs_by_requester")
                    .table(RetractJobs::Table)
                    .col(RetractJobs::TenantId)
                    .col(RetractJobs::RequestedBy)
                    .col(RetractJobs::CreatedAt)
                    .col(RetractJobs::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("retract_jobs_by_requester")
                    .table(RetractJobs::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            RetractJobs::Kind,
            RetractJobs::RestoresJobId,
            RetractJobs::FailureCode,
            RetractJobs::CancelRequestedBy,
            RetractJobs::CancelReason,
            RetractJobs::CancelRequestedAt,
            RetractJobs::MessageSubject,
            RetractJobs::MessageSender,
            RetractJobs::MessageDeliveredAt,
            RetractJobs::CorrelationId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RetractJobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(RetractTargets::Table)
                    .drop_column(RetractTargets::DiscoveredFrom)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DeliveryRecipients::Table)
                    .drop_column(DeliveryRecipients::LastDeliveredAt)
                    .to_owned(),
            )
            .await
    }
}
