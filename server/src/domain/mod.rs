//! Validated domain types. Input is parsed once at the edge (the `api` layer) into these types;
//! nothing further in re-validates strings.

mod audit;
mod conversation;
mod delivery;
mod domain_name;
mod email;
mod grant;
mod message_id;
mod page;
mod restore;
mod retract;
mod tenant;

pub use audit::{
    AUDIT_TARGETS_MAX, AuditAction, AuditDetails, AuditEntry, AuditEvent, AuditFilter,
    AuditOutcome, AuditSection, StoredAuditEntry,
};
pub use conversation::ConversationIndex;
pub use delivery::{
    Delivery, DeliveryFilter, Eligibility, NewDelivery, RecordOutcome, Subject, merge_repeats,
};
pub use domain_name::DomainName;
pub use email::EmailAddress;
pub use grant::{DomainOutcome, Grant, GrantEnd, GrantState, MicrosoftTenantId, NewGrant};
pub use message_id::InternetMessageId;
pub use page::{PageRequest, PageSize, PageToken, fingerprint_fields, time_field};
pub use restore::{NotRestorable, RemovedCopy};
pub use retract::{
    Cancellation, ConversationStep, DeleteMode, DepthSummary, Discovered, EventKind, JobCounts,
    JobEvent, JobFailure, JobId, JobKind, JobState, MessageSnapshot, Phase, RetractJob,
    RetractOptions, Target, TargetOutcome, TargetRecord, TargetResult, TargetWork, Unfollowed,
};
pub use tenant::{DisplayName, Domain, NewTenant, RetractStatus, Tenant, TenantDeletion, TenantId};

/// Stores validated text types as their text and reads them back through their `parse`, so a
/// value read from the database is the same type, checked the same way, as one read from a
/// request.
macro_rules! stored_as_text {
    ($($t:ty),* $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <String as serde::Deserialize>::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

stored_as_text!(
    EmailAddress,
    InternetMessageId,
    TenantId,
    MicrosoftTenantId,
    DomainName,
    JobId
);

/// Why a value was refused; the `api` layer pairs it with the offending field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

impl ValidationError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A UUID in its canonical text (lowercase, hyphenated), or `what` it must be.
pub(crate) fn canonical_uuid(raw: &str, what: &str) -> Result<String, ValidationError> {
    uuid::Uuid::try_parse(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ValidationError(format!("must be {what}")))
}

/// The current time, truncated to microseconds so that it reads back identically from
/// PostgreSQL (microsecond precision) and SQLite (text).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
