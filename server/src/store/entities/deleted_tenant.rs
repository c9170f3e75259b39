//! A row of `deleted_tenants`: the tombstone of an offboarded tenant.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deleted_tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    pub deleted_at: DateTimeUtc,
    pub deleted_by: String,
    pub data_purged_at: Option<DateTimeUtc>,
    pub audit_purged_at: Option<DateTimeUtc>,
    /// When its audit trail may go (`None`: kept forever), if `audit_purge_recorded`.
    pub audit_purge_at: Option<DateTimeUtc>,
    /// Whether the deletion recorded `audit_purge_at` (tombstones made before migration 10
    /// did not: their trail goes by the retention configured now).
    pub audit_purge_recorded: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
