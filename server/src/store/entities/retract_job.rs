//! A row of `retract_jobs`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "retract_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub request_id: String,
    pub internet_message_id: String,
    pub options_hash: String,
    pub options: Json,
    pub requested_by: String,
    pub state: String,
    pub counts: Json,
    pub detail: Option<String>,
    pub cancel_requested: bool,
    pub last_sequence: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub kind: String,
    pub restores_job_id: Option<String>,
    pub failure_code: Option<String>,
    pub cancel_requested_by: Option<String>,
    pub cancel_reason: Option<String>,
    pub cancel_requested_at: Option<DateTimeUtc>,
    pub message_subject: Option<String>,
    pub message_sender: Option<String>,
    pub message_delivered_at: Option<DateTimeUtc>,
    pub correlation_id: Option<String>,
    pub runs: i32,
    pub last_run_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
