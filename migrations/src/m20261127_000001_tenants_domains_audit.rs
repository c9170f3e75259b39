//! Tenants, their mail domains (each domain held by at most one tenant), and the audit trail.

// `MigrationTrait` declares `manager: &SchemaManager` with its lifetime elided; async_trait
// rejects `SchemaManager<'_>` as a different signature, so the elision stays.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000001_tenants_domains_audit"
    }
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    TenantId,
    DisplayName,
    MicrosoftTenantId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Domains {
    Table,
    Name,
    TenantId,
    RetractStatus,
    StatusReason,
    LastCheckedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OccurredAt,
    TenantId,
    Actor,
    Section,
    Action,
    Target,
    Outcome,
    RequestId,
    Details,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(
                        ColumnDef::new(Tenants::TenantId)
                            .string_len(63)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Tenants::DisplayName)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Tenants::MicrosoftTenantId)
                            .string_len(36)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Tenants::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Tenants::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        // The domain name is the primary key: a domain belongs to at most one tenant.
        manager
            .create_table(
                Table::create()
                    .table(Domains::Table)
                    .col(
                        ColumnDef::new(Domains::Name)
                            .string_len(253)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Domains::TenantId).string_len(63).not_null())
                    .col(
                        ColumnDef::new(Domains::RetractStatus)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Domains::StatusReason).text().null())
                    .col(
                        ColumnDef::new(Domains::LastCheckedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Domains::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Domains::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_domains_tenant")
                            .from(Domains::Table, Domains::TenantId)
                            .to(Tenants::Table, Tenants::TenantId)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // ListDomains pages through one tenant's domains by name.
        manager
            .create_index(
                Index::create()
                    .name("idx_domains_tenant_name")
                    .table(Domains::Table)
                    .col(Domains::TenantId)
                    .col(Domains::Name)
                    .to_owned(),
            )
            .await?;

        // Append-only. No foreign key to tenants: the trail outlives anything it describes.
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::TenantId)
                            .string_len(63)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Actor)
                            .string_len(320)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Section)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Action)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Target)
                            .string_len(1024)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Outcome)
                            .string_len(24)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::RequestId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Details)
                            .json_binary()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // ListAuditEvents: newest first within a tenant, optionally within one section.
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_tenant_id")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::TenantId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_tenant_section_id")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::TenantId)
                    .col(AuditEvents::Section)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        // Retention sweeps delete by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_occurred_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OccurredAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Domains::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Tenants::Table).to_owned())
            .await?;
        Ok(())
    }
}
