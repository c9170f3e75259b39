//! Validated domain types. Input is parsed once at the edge (the `api` layer) into these types;
//! nothing further in re-validates strings.

mod audit;
mod delivery;
mod domain_name;
mod email;
mod grant;
mod message_id;
mod page;
mod retract;
mod tenant;

pub use audit::{
    AuditEntry, AuditEvent, AuditFilter, AuditOutcome, AuditSection, StoredAuditEntry,
};
pub use delivery::{Delivery, DeliveryFilter, Eligibility, NewDelivery, RecordOutcome, Subject};
pub use domain_name::DomainName;
pub use email::EmailAddress;
pub use grant::{DomainOutcome, Grant, GrantEnd, GrantState, MicrosoftTenantId, NewGrant};
pub use message_id::InternetMessageId;
pub use page::{PageRequest, PageSize, PageToken};
pub use retract::{
    DeleteMode, EventKind, JobCounts, JobEvent, JobState, Phase, RetractJob, RetractOptions,
    Target, TargetOutcome, TargetResult,
};
pub use tenant::{DisplayName, Domain, NewTenant, RetractStatus, Tenant, TenantId};

/// Why a value was refused; the `api` layer pairs it with the offending field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

impl ValidationError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The current time, truncated to microseconds so that it reads back identically from
/// PostgreSQL (microsecond precision) and SQLite (text).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
