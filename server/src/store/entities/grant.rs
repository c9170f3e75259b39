//! A row of `grants` (consent attempts).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub state_hash: String,
    pub pkce_verifier: String,
    pub allow_relink: bool,
    pub status: String,
    pub started_by: String,
    pub request_id: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    pub microsoft_tenant_id: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub domain_outcomes: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
