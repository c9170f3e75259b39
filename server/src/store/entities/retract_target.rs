//! A row of `retract_targets`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "retract_targets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub mailbox: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub depth: i32,
    pub done: bool,
    pub outcome: Option<String>,
    pub copies_found: i32,
    pub copies_deleted: i32,
    pub was_read: bool,
    pub detail: Option<String>,
    pub graph_code: Option<String>,
    pub discovered_from: Option<String>,
    pub reached_by: Option<String>,
    pub root_index: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
