//! Conversation traversal (issue #11): a target reached through a reply or forward records
//! the message that reached it (its internet message id) and the retracted message's
//! `conversationIndex` (the root every in-scope descendant's index begins with), so a resumed
//! job can continue the traversal in that mailbox.

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000006_conversation_targets"
    }
}

#[derive(DeriveIden)]
enum RetractTargets {
    Table,
    ReachedBy,
    RootIndex,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (column, len) in [
            (RetractTargets::ReachedBy, 998),
            (RetractTargets::RootIndex, 4096),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RetractTargets::Table)
                        .add_column(ColumnDef::new(column).string_len(len).null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [RetractTargets::ReachedBy, RetractTargets::RootIndex] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RetractTargets::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
