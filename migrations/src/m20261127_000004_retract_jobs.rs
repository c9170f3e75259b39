//! Retract jobs: the job (options, requester, state, counters, idempotency key, lease), its
//! targets (one per mailbox and depth, with the outcome), and its event log (per-job
//! sequence numbers without gaps, persisted before they are streamed).

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000004_retract_jobs"
    }
}

#[derive(DeriveIden)]
enum RetractJobs {
    Table,
    Id,
    TenantId,
    RequestId,
    InternetMessageId,
    OptionsHash,
    Options,
    RequestedBy,
    State,
    Counts,
    Detail,
    CancelRequested,
    LastSequence,
    LeaseOwner,
    LeaseExpiresAt,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum RetractTargets {
    Table,
    JobId,
    Mailbox,
    Depth,
    Done,
    Outcome,
    CopiesFound,
    CopiesDeleted,
    WasRead,
    Detail,
    GraphCode,
}

#[derive(DeriveIden)]
enum RetractEvents {
    Table,
    JobId,
    Sequence,
    OccurredAt,
    Payload,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RetractJobs::Table)
                    .col(
                        ColumnDef::new(RetractJobs::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::TenantId)
                            .string_len(63)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::RequestId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::InternetMessageId)
                            .string_len(998)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::OptionsHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::Options)
                            .json_binary()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::RequestedBy)
                            .string_len(320)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RetractJobs::State).string_len(24).not_null())
                    .col(ColumnDef::new(RetractJobs::Counts).json_binary().not_null())
                    .col(ColumnDef::new(RetractJobs::Detail).text().null())
                    .col(
                        ColumnDef::new(RetractJobs::CancelRequested)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::LastSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::LeaseOwner)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::LeaseExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::StartedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RetractJobs::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The same request id returns the same job.
        manager
            .create_index(
                Index::create()
                    .name("idx_retract_jobs_tenant_request")
                    .table(RetractJobs::Table)
                    .col(RetractJobs::TenantId)
                    .col(RetractJobs::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // ListRetractJobs: newest first within a tenant.
        manager
            .create_index(
                Index::create()
                    .name("idx_retract_jobs_tenant_created")
                    .table(RetractJobs::Table)
                    .col(RetractJobs::TenantId)
                    .col(RetractJobs::CreatedAt)
                    .col(RetractJobs::Id)
                    .to_owned(),
            )
            .await?;
        // "Retracts of this message".
        manager
            .create_index(
                Index::create()
                    .name("idx_retract_jobs_tenant_message")
                    .table(RetractJobs::Table)
                    .col(RetractJobs::TenantId)
                    .col(RetractJobs::InternetMessageId)
                    .to_owned(),
            )
            .await?;
        // Workers claim unfinished jobs.
        manager
            .create_index(
                Index::create()
                    .name("idx_retract_jobs_state_created")
                    .table(RetractJobs::Table)
                    .col(RetractJobs::State)
                    .col(RetractJobs::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RetractTargets::Table)
                    .col(
                        ColumnDef::new(RetractTargets::JobId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractTargets::Mailbox)
                            .string_len(254)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RetractTargets::Depth).integer().not_null())
                    .col(ColumnDef::new(RetractTargets::Done).boolean().not_null())
                    .col(
                        ColumnDef::new(RetractTargets::Outcome)
                            .string_len(24)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RetractTargets::CopiesFound)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractTargets::CopiesDeleted)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RetractTargets::WasRead).boolean().not_null())
                    .col(ColumnDef::new(RetractTargets::Detail).text().null())
                    .col(
                        ColumnDef::new(RetractTargets::GraphCode)
                            .string_len(64)
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(RetractTargets::JobId)
                            .col(RetractTargets::Mailbox)
                            .col(RetractTargets::Depth),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_retract_targets_job")
                            .from(RetractTargets::Table, RetractTargets::JobId)
                            .to(RetractJobs::Table, RetractJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RetractEvents::Table)
                    .col(
                        ColumnDef::new(RetractEvents::JobId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractEvents::Sequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractEvents::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RetractEvents::Payload)
                            .json_binary()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(RetractEvents::JobId)
                            .col(RetractEvents::Sequence),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_retract_events_job")
                            .from(RetractEvents::Table, RetractEvents::JobId)
                            .to(RetractJobs::Table, RetractJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RetractEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RetractTargets::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RetractJobs::Table).to_owned())
            .await
    }
}
