//! The audit trail's vocabulary: sections, outcomes, entries to write and events read back.

use chrono::{DateTime, Utc};

use super::TenantId;

/// The part of the product an audit event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSection {
    /// Tenant accounts.
    Tenants,
    /// Domains and permission grants.
    Domains,
    /// Retract jobs.
    Retract,
}

impl AuditSection {
    /// The stored (and displayed) name of the section.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenants => "Tenants",
            Self::Domains => "Domains",
            Self::Retract => "Retract",
        }
    }

    /// Reads a stored value back.
    pub fn from_stored(value: &str) -> Option<Self> {
        Some(match value {
            "Tenants" => Self::Tenants,
            "Domains" => Self::Domains,
            "Retract" => Self::Retract,
            _ => return None,
        })
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// It succeeded.
    Succeeded,
    /// It succeeded for some targets and failed for others.
    PartiallySucceeded,
    /// It failed.
    Failed,
}

impl AuditOutcome {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::PartiallySucceeded => "partially_succeeded",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored value back.
    pub fn from_stored(value: &str) -> Option<Self> {
        Some(match value {
            "succeeded" => Self::Succeeded,
            "partially_succeeded" => Self::PartiallySucceeded,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// An audit event to write, in the same transaction as the change it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The tenant the action concerned.
    pub tenant_id: TenantId,
    /// The authenticated caller (email, or token subject for service callers).
    pub actor: String,
    /// The section of the product.
    pub section: AuditSection,
    /// What was done, lower_snake_case.
    pub action: &'static str,
    /// What it was done to.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The request id of the call.
    pub request_id: String,
    /// Structured details (a JSON object).
    pub details: serde_json::Value,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Its id; ids grow with time.
    pub id: i64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// What was written.
    pub entry: StoredAuditEntry,
}

/// The stored fields of an audit event (the action is a `String` once read back).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAuditEntry {
    /// The tenant the action concerned.
    pub tenant_id: String,
    /// Who did it.
    pub actor: String,
    /// The section, if it is one this version knows.
    pub section: Option<AuditSection>,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// How it ended, if this version knows the value.
    pub outcome: Option<AuditOutcome>,
    /// The request id of the call.
    pub request_id: String,
    /// Structured details.
    pub details: serde_json::Value,
}

/// Filters of ListAuditEvents; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this section.
    pub section: Option<AuditSection>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Only at or after this time.
    pub occurred_after: Option<DateTime<Utc>>,
    /// Only before this time.
    pub occurred_before: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// A stable description of the filter, for page-token fingerprints: every filter by
    /// name, empty when unset, times as RFC 3339.
    pub fn fingerprint(&self) -> String {
        let time = crate::domain::time_field;
        super::page::fingerprint_fields(&[
            (
                "section",
                self.section
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            ("action", self.action.clone().unwrap_or_default()),
            ("actor", self.actor.clone().unwrap_or_default()),
            ("target", self.target.clone().unwrap_or_default()),
            ("occurred_after", time(self.occurred_after)),
            ("occurred_before", time(self.occurred_before)),
        ])
    }
}
