//! The audit trail's vocabulary: sections, actions with their typed details, outcomes,
//! entries to write and events read back. It mirrors `retract.v1.AuditAction` and the
//! `*Details` messages of `audit_service.proto`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    DepthSummary, DomainOutcome, EmailAddress, InternetMessageId, JobCounts, JobId, JobState,
    RetractOptions, TargetRecord, TenantId,
};

/// Most targets a `retract_finished` entry lists (and mailboxes a `retract_dispatched` one);
/// the counts say how many there were, ListRetractTargets lists them all.
pub const AUDIT_TARGETS_MAX: usize = 1_000;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A tenant account was created.
    TenantCreated,
    /// A domain was registered.
    DomainAdded,
    /// A domain was removed.
    DomainRemoved,
    /// Grant Permissions was pressed.
    GrantStarted,
    /// A consent attempt completed (all or some domains granted).
    GrantCompleted,
    /// A consent attempt failed.
    GrantFailed,
    /// A consent attempt expired.
    GrantExpired,
    /// The domains were re-verified.
    DomainsVerified,
    /// A retract job was created.
    RetractDispatched,
    /// Cancelling a retract job was asked for.
    RetractCancelRequested,
    /// A retract job finished.
    RetractFinished,
    /// A retract job ended cancelled.
    RetractCancelled,
    /// A restore of a retract job was created.
    RestoreDispatched,
    /// A restore job ended (also cancelled or failed).
    RestoreFinished,
    /// A tenant was deleted (offboarded).
    TenantDeleted,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [Self; 15] = [
        Self::TenantCreated,
        Self::DomainAdded,
        Self::DomainRemoved,
        Self::GrantStarted,
        Self::GrantCompleted,
        Self::GrantFailed,
        Self::GrantExpired,
        Self::DomainsVerified,
        Self::RetractDispatched,
        Self::RetractCancelRequested,
        Self::RetractFinished,
        Self::RetractCancelled,
        Self::RestoreDispatched,
        Self::RestoreFinished,
        Self::TenantDeleted,
    ];

    /// The stored value, lower_snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantCreated => "tenant_created",
            Self::DomainAdded => "domain_added",
            Self::DomainRemoved => "domain_removed",
            Self::GrantStarted => "grant_started",
            Self::GrantCompleted => "grant_completed",
            Self::GrantFailed => "grant_failed",
            Self::GrantExpired => "grant_expired",
            Self::DomainsVerified => "domains_verified",
            Self::RetractDispatched => "retract_dispatched",
            Self::RetractCancelRequested => "retract_cancel_requested",
            Self::RetractFinished => "retract_finished",
            Self::RetractCancelled => "retract_cancelled",
            Self::RestoreDispatched => "restore_dispatched",
            Self::RestoreFinished => "restore_finished",
            Self::TenantDeleted => "tenant_deleted",
        }
    }

    /// Reads a stored value back.
    pub fn from_stored(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }

    /// The section of the product the action belongs to.
    pub fn section(self) -> AuditSection {
        match self {
            Self::TenantCreated | Self::TenantDeleted => AuditSection::Tenants,
            Self::DomainAdded
            | Self::DomainRemoved
            | Self::GrantStarted
            | Self::GrantCompleted
            | Self::GrantFailed
            | Self::GrantExpired
            | Self::DomainsVerified => AuditSection::Domains,
            Self::RetractDispatched
            | Self::RetractCancelRequested
            | Self::RetractFinished
            | Self::RetractCancelled
            | Self::RestoreDispatched
            | Self::RestoreFinished => AuditSection::Retract,
        }
    }
}

/// The "expandable entry" of an audit event, one shape per kind of action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditDetails {
    /// TenantCreated.
    TenantCreated {
        /// The tenant's display name.
        display_name: String,
    },
    /// TenantDeleted.
    TenantDeleted {
        /// Why, as the caller said it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The Microsoft 365 tenant it was linked to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        microsoft_tenant_id: Option<String>,
        /// The domains it held.
        domains: Vec<String>,
        /// Deliveries deleted.
        delivery_count: u64,
        /// Jobs deleted.
        job_count: u64,
        /// When the tenant's audit trail is removed; `None` keeps it forever.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audit_purge_at: Option<DateTime<Utc>>,
    },
    /// DomainAdded, DomainRemoved.
    DomainChanged {
        /// The domain, normalised.
        domain: String,
        /// The name as the caller entered it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_entered: Option<String>,
    },
    /// GrantStarted.
    GrantStarted {
        /// The consent attempt.
        grant_id: String,
        /// Whether relinking was allowed.
        allow_relink: bool,
        /// When the consent URL stops being accepted.
        expires_at: DateTime<Utc>,
    },
    /// GrantCompleted, GrantFailed, GrantExpired.
    GrantFinished {
        /// The consent attempt.
        grant_id: String,
        /// The Microsoft tenant the consent proved.
        microsoft_tenant_id: Option<String>,
        /// The administrator who signed in.
        signed_in_administrator: Option<String>,
        /// Microsoft's or our error code.
        error: Option<String>,
        /// The failure, human-readable.
        error_description: Option<String>,
        /// Each domain's outcome.
        domain_outcomes: Vec<DomainOutcome>,
    },
    /// DomainsVerified.
    DomainsVerified {
        /// The linked Microsoft tenant.
        microsoft_tenant_id: String,
        /// Each domain's outcome.
        domain_outcomes: Vec<DomainOutcome>,
    },
    /// RetractDispatched.
    RetractDispatched {
        /// The job created.
        job_id: JobId,
        /// What was asked.
        options: RetractOptions,
        /// The caller's idempotency key.
        request_id: String,
        /// The first mailboxes the job visits (at most [`AUDIT_TARGETS_MAX`]).
        mailboxes: Vec<EmailAddress>,
        /// How many mailboxes it starts with.
        mailbox_count: u32,
    },
    /// RetractCancelRequested.
    RetractCancelRequested {
        /// The job.
        job_id: JobId,
        /// The canceller's reason.
        reason: Option<String>,
    },
    /// RestoreDispatched.
    RestoreDispatched {
        /// The restore job created.
        job_id: JobId,
        /// The retract job it undoes.
        restores_job_id: JobId,
        /// The caller's idempotency key.
        request_id: String,
        /// Why, as the caller said it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// How many mailboxes it puts copies back into.
        mailbox_count: u32,
    },
    /// RetractFinished, RetractCancelled, RestoreFinished.
    RetractFinished {
        /// The job.
        job_id: JobId,
        /// The retracted message.
        internet_message_id: InternetMessageId,
        /// The final state.
        state: JobState,
        /// A one-line summary.
        detail: String,
        /// The final counters.
        counts: JobCounts,
        /// The counters by depth.
        depths: Vec<DepthSummary>,
        /// The first targets with how they ended (at most [`AUDIT_TARGETS_MAX`]).
        targets: Vec<TargetRecord>,
        /// How many targets the job had.
        target_count: u32,
    },
}

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
    /// What was done (its section follows from it).
    pub action: AuditAction,
    /// What it was done to.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The correlation id of the call (`x-request-id`).
    pub correlation_id: String,
    /// The expandable entry.
    pub details: AuditDetails,
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

/// The stored fields of an audit event, as far as this version can read them (the trail is
/// append-only: an entry written by another version is shown, not refused).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAuditEntry {
    /// The tenant the action concerned.
    pub tenant_id: TenantId,
    /// Who did it.
    pub actor: String,
    /// The section, if it is one this version knows.
    pub section: Option<AuditSection>,
    /// What was done, if this version knows the value.
    pub action: Option<AuditAction>,
    /// What it was done to.
    pub target: String,
    /// How it ended, if this version knows the value.
    pub outcome: Option<AuditOutcome>,
    /// The correlation id of the call.
    pub correlation_id: String,
    /// The expandable entry, if this version can read it.
    pub details: Option<AuditDetails>,
}

/// Filters of ListAuditEvents; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this section.
    pub section: Option<AuditSection>,
    /// Only this action.
    pub action: Option<AuditAction>,
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
            (
                "action",
                self.action
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            ("actor", self.actor.clone().unwrap_or_default()),
            ("target", self.target.clone().unwrap_or_default()),
            ("occurred_after", time(self.occurred_after)),
            ("occurred_before", time(self.occurred_before)),
        ])
    }
}
