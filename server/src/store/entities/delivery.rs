//! A row of `deliveries`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub internet_message_id: String,
    pub sender: String,
    pub subject: String,
    pub subject_folded: String,
    pub delivered_at: DateTimeUtc,
    pub recorded_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub recipient_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
