//! Restore (issue #11): every copy a retract removes is recorded before Graph removes it —
//! its item id, the folder it came from, its hop — and, when Graph tells, the id it has where
//! the retract put it (a moved message gets a new id). A restore job moves each back and
//! records which restore did.

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000007_removed_copies"
    }
}

#[derive(DeriveIden)]
enum RetractRemovedCopies {
    Table,
    JobId,
    Mailbox,
    ItemId,
    Hop,
    InternetMessageId,
    OriginalFolderId,
    RemovedId,
    RestoredBy,
}

#[derive(DeriveIden)]
enum RetractJobs {
    Table,
    RestoresJobId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use RetractRemovedCopies as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(ColumnDef::new(C::JobId).string_len(36).not_null())
                    .col(ColumnDef::new(C::Mailbox).string_len(320).not_null())
                    .col(ColumnDef::new(C::ItemId).string_len(512).not_null())
                    .col(ColumnDef::new(C::Hop).integer().not_null())
                    .col(ColumnDef::new(C::InternetMessageId).string_len(998).null())
                    .col(ColumnDef::new(C::OriginalFolderId).string_len(512).null())
                    .col(ColumnDef::new(C::RemovedId).string_len(512).null())
                    .col(ColumnDef::new(C::RestoredBy).string_len(36).null())
                    .primary_key(Index::create().col(C::JobId).col(C::Mailbox).col(C::ItemId))
                    .to_owned(),
            )
            .await?;
        // "Is a restore of this job running?"
        manager
            .create_index(
                Index::create()
                    .name("idx_retract_jobs_restores")
                    .table(RetractJobs::Table)
                    .col(RetractJobs::RestoresJobId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_retract_jobs_restores")
                    .table(RetractJobs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(RetractRemovedCopies::Table).to_owned())
            .await
    }
}
