//! Retract jobs: what was asked, where each mailbox stands, and the event log watchers read.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{EmailAddress, InternetMessageId, TenantId, ValidationError};

/// A retract job's id: a UUID, canonical lowercase and hyphenated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(String);

impl JobId {
    /// A new, time-ordered id (UUID v7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// Parses a job id.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        super::canonical_uuid(raw, "a job id (a UUID)").map(Self)
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a retract removes each copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// `DELETE`: to Recoverable Items, restorable.
    Soft,
    /// `permanentDelete`: purged.
    Hard,
    /// `move` to Deleted Items.
    MoveToDeletedItems,
}

/// What a retract asks for, validated. Stored with the job as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetractOptions {
    /// The delivery's message id.
    pub message_id: InternetMessageId,
    /// The recipients asked for (empty: every eligible one), sorted and deduplicated.
    pub recipients: Vec<EmailAddress>,
    /// Follow replies and forwards.
    pub include_conversations: bool,
    /// How far (0-5).
    pub conversation_depth: u8,
    /// How copies are removed.
    pub delete_mode: DeleteMode,
    /// Find and report only.
    pub dry_run: bool,
    /// Skip ineligible recipients instead of refusing.
    pub skip_ineligible: bool,
}

impl RetractOptions {
    /// The deepest conversation a retract may follow.
    pub const MAX_DEPTH: u8 = 5;

    /// Reads a requested conversation depth (0 to [`Self::MAX_DEPTH`]).
    pub fn depth(raw: i32) -> Result<u8, ValidationError> {
        u8::try_from(raw)
            .ok()
            .filter(|d| *d <= Self::MAX_DEPTH)
            .ok_or_else(|| ValidationError::new("must be 0 to 5"))
    }

    /// A fingerprint of the options, to tell a repeated request id with other options.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Being processed.
    Running,
    /// Every target finished without failure.
    Succeeded,
    /// Every target finished; some failed.
    CompletedWithErrors,
    /// The job could not run.
    Failed,
    /// Cancelled; work already done stays done.
    Cancelled,
}

impl JobState {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::CompletedWithErrors => "completed_with_errors",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Reads a stored value.
    pub fn from_stored(value: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Succeeded,
            Self::CompletedWithErrors,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

/// How the work on one mailbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOutcome {
    /// Every copy found was deleted.
    Deleted,
    /// No copy was there.
    NotFound,
    /// The copies were gone already.
    AlreadyDeleted,
    /// Dry run: would have been deleted.
    WouldDelete,
    /// Graph refused or kept failing.
    Failed,
    /// Not attempted: ineligible and skipped on request.
    Skipped,
    /// Not attempted: the job was cancelled.
    Cancelled,
}

impl TargetOutcome {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::NotFound => "not_found",
            Self::AlreadyDeleted => "already_deleted",
            Self::WouldDelete => "would_delete",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }

    /// Reads a stored value.
    pub fn from_stored(value: &str) -> Option<Self> {
        [
            Self::Deleted,
            Self::NotFound,
            Self::AlreadyDeleted,
            Self::WouldDelete,
            Self::Failed,
            Self::Skipped,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|o| o.as_str() == value)
    }
}

/// Where the work on one mailbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Finding the mailbox.
    Resolving,
    /// Finding the copies.
    Searching,
    /// Deleting them.
    Deleting,
    /// Finished.
    Done,
}

/// Counters of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    /// Mailboxes the job visits.
    pub targets: u32,
    /// Mailboxes finished.
    pub done: u32,
    /// ... with copies deleted.
    pub deleted: u32,
    /// ... with no copy.
    pub not_found: u32,
    /// ... already gone.
    pub already_deleted: u32,
    /// ... that a dry run would delete.
    pub would_delete: u32,
    /// ... failed.
    pub failed: u32,
    /// ... skipped.
    pub skipped: u32,
    /// ... cancelled.
    pub cancelled: u32,
    /// Copies found.
    pub copies_found: u32,
    /// Copies deleted.
    pub copies_deleted: u32,
}

impl JobCounts {
    /// Counts one finished mailbox.
    pub fn record(&mut self, result: &TargetResult) {
        self.done += 1;
        self.copies_found += result.copies_found;
        self.copies_deleted += result.copies_deleted;
        let slot = match result.outcome {
            TargetOutcome::Deleted => &mut self.deleted,
            TargetOutcome::NotFound => &mut self.not_found,
            TargetOutcome::AlreadyDeleted => &mut self.already_deleted,
            TargetOutcome::WouldDelete => &mut self.would_delete,
            TargetOutcome::Failed => &mut self.failed,
            TargetOutcome::Skipped => &mut self.skipped,
            TargetOutcome::Cancelled => &mut self.cancelled,
        };
        *slot += 1;
    }
}

/// How one mailbox ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetResult {
    /// The outcome.
    pub outcome: TargetOutcome,
    /// Copies found.
    pub copies_found: u32,
    /// Copies deleted.
    pub copies_deleted: u32,
    /// Whether the recipient had read any copy.
    pub was_read: bool,
    /// A human-readable explanation on failure or skip.
    pub detail: Option<String>,
    /// The Graph error code behind a failure.
    pub graph_code: Option<String>,
}

/// A mailbox a job visits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The mailbox's address.
    pub mailbox: EmailAddress,
    /// 0 for a requested recipient.
    pub depth: u8,
}

/// A target with where it stands: unfinished (`result` is `None`) or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetRecord {
    /// The mailbox and its depth.
    pub target: Target,
    /// How it ended, once it has.
    pub result: Option<TargetResult>,
}

/// What happened in a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The job started with these targets.
    JobStarted {
        /// The mailboxes it visits first.
        targets: Vec<Target>,
    },
    /// Progress on one mailbox.
    Recipient {
        /// The mailbox the update is about.
        target: Target,
        /// How far its work has come.
        phase: Phase,
        /// How it ended, once `phase` is `Done`.
        result: Option<TargetResult>,
    },
    /// The job ended.
    JobFinished {
        /// The final state.
        state: JobState,
        /// The final counters.
        counts: JobCounts,
        /// A one-line, human-readable summary.
        detail: String,
    },
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    /// The job it belongs to.
    pub job_id: JobId,
    /// 1, 2, 3, … without gaps.
    pub sequence: i64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetractJob {
    /// Its id.
    pub id: JobId,
    /// The tenant it acts for.
    pub tenant_id: TenantId,
    /// What it does.
    pub options: RetractOptions,
    /// The idempotency key.
    pub request_id: String,
    /// Who asked.
    pub requested_by: String,
    /// Where it stands.
    pub state: JobState,
    /// Its counters.
    pub counts: JobCounts,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When a worker first took it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The sequence number of its latest event.
    pub last_sequence: i64,
    /// Whether cancellation was asked for.
    pub cancel_requested: bool,
}
