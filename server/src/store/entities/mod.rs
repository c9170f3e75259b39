//! sea-orm entities: the rows as stored. They never leave the `store` module.

pub mod audit_event;
pub mod domain;
pub mod grant;
pub mod tenant;
