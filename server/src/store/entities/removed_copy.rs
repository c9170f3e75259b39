//! A row of `retract_removed_copies`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "retract_removed_copies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub mailbox: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub item_id: String,
    pub hop: i32,
    pub internet_message_id: Option<String>,
    pub original_folder_id: Option<String>,
    pub removed_id: Option<String>,
    pub restored_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
