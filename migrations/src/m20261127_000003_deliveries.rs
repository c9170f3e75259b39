//! Delivered messages and their recipients (what can be retracted), and the last
//! permission-relevant Graph answer per mailbox (the Retract tab's Status column).

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000003_deliveries"
    }
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    TenantId,
    InternetMessageId,
    Sender,
    Subject,
    SubjectFolded,
    DeliveredAt,
    RecordedAt,
    UpdatedAt,
    RecipientCount,
}

#[derive(DeriveIden)]
enum DeliveryRecipients {
    Table,
    DeliveryId,
    TenantId,
    Address,
}

#[derive(DeriveIden)]
enum MailboxStatus {
    Table,
    TenantId,
    Address,
    GraphCode,
    Detail,
    ObservedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .col(
                        ColumnDef::new(Deliveries::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Deliveries::TenantId)
                            .string_len(63)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Deliveries::InternetMessageId)
                            .string_len(998)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Deliveries::Sender)
                            .string_len(254)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Deliveries::Subject).text().not_null())
                    // Lowercased by the service (Unicode rules on every database) for search.
                    .col(ColumnDef::new(Deliveries::SubjectFolded).text().not_null())
                    .col(
                        ColumnDef::new(Deliveries::DeliveredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Deliveries::RecordedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Deliveries::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Deliveries::RecipientCount)
                            .integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // One delivery per message per tenant: recording it again merges.
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_tenant_message")
                    .table(Deliveries::Table)
                    .col(Deliveries::TenantId)
                    .col(Deliveries::InternetMessageId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // SearchDeliveries pages newest first; retention sweeps by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_tenant_delivered")
                    .table(Deliveries::Table)
                    .col(Deliveries::TenantId)
                    .col(Deliveries::DeliveredAt)
                    .col(Deliveries::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_delivered")
                    .table(Deliveries::Table)
                    .col(Deliveries::DeliveredAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeliveryRecipients::Table)
                    .col(
                        ColumnDef::new(DeliveryRecipients::DeliveryId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeliveryRecipients::TenantId)
                            .string_len(63)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeliveryRecipients::Address)
                            .string_len(254)
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(DeliveryRecipients::DeliveryId)
                            .col(DeliveryRecipients::Address),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_delivery_recipients_delivery")
                            .from(DeliveryRecipients::Table, DeliveryRecipients::DeliveryId)
                            .to(Deliveries::Table, Deliveries::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // "Deliveries to this recipient" within a tenant.
        manager
            .create_index(
                Index::create()
                    .name("idx_delivery_recipients_tenant_address")
                    .table(DeliveryRecipients::Table)
                    .col(DeliveryRecipients::TenantId)
                    .col(DeliveryRecipients::Address)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MailboxStatus::Table)
                    .col(
                        ColumnDef::new(MailboxStatus::TenantId)
                            .string_len(63)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MailboxStatus::Address)
                            .string_len(254)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MailboxStatus::GraphCode)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(MailboxStatus::Detail).text().not_null())
                    .col(
                        ColumnDef::new(MailboxStatus::ObservedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(MailboxStatus::TenantId)
                            .col(MailboxStatus::Address),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MailboxStatus::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DeliveryRecipients::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Deliveries::Table).to_owned())
            .await
    }
}
