//! The attempt budget of a job (issue #13): how many runs claimed it, and why the last one
//! stopped short, so that a job whose runs keep failing ends FAILED with that reason instead
//! of being claimed again on every lease expiry.

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000008_job_runs"
    }
}

#[derive(DeriveIden)]
enum RetractJobs {
    Table,
    Runs,
    LastRunError,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(RetractJobs::Table)
                    .add_column(
                        ColumnDef::new(RetractJobs::Runs)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RetractJobs::Table)
                    .add_column(
                        ColumnDef::new(RetractJobs::LastRunError)
                            .string_len(1024)
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [RetractJobs::LastRunError, RetractJobs::Runs] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RetractJobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
