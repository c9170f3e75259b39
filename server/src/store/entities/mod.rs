//! sea-orm entities: the rows as stored. They never leave the `store` module.

pub mod audit_event;
pub mod deleted_tenant;
pub mod delivery;
pub mod delivery_recipient;
pub mod domain;
pub mod grant;
pub mod mailbox_status;
pub mod removed_copy;
pub mod retract_event;
pub mod retract_job;
pub mod retract_target;
pub mod tenant;
