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
    /// Also retract the internal sender's Sent Items copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_sender_copy: bool,
    /// Why the message is retracted (free text for the audit trail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RetractOptions {
    /// The deepest conversation a retract may follow.
    pub const MAX_DEPTH: u8 = 5;

    /// Longest `reason`, in characters.
    pub const MAX_REASON_CHARS: usize = 500;

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

    /// Every state.
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::CompletedWithErrors,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Reads a stored value.
    pub fn from_stored(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
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
    /// RESTORE jobs: every removed copy is back.
    Restored,
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
            Self::Restored => "restored",
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
            Self::Restored,
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
    /// RESTORE jobs: moving them back.
    Restoring,
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
    /// Mailboxes whose copies were put back (RESTORE jobs).
    #[serde(default)]
    pub restored: u32,
    /// Mailboxes whose recipient had read the message before it was retracted.
    #[serde(default)]
    pub read_before_retract: u32,
}

impl JobCounts {
    /// Counts one finished mailbox.
    pub fn record(&mut self, result: &TargetResult) {
        self.done = self.done.saturating_add(1);
        self.copies_found = self.copies_found.saturating_add(result.copies_found);
        self.copies_deleted = self.copies_deleted.saturating_add(result.copies_deleted);
        if result.was_read {
            self.read_before_retract = self.read_before_retract.saturating_add(1);
        }
        let slot = match result.outcome {
            TargetOutcome::Deleted => &mut self.deleted,
            TargetOutcome::NotFound => &mut self.not_found,
            TargetOutcome::AlreadyDeleted => &mut self.already_deleted,
            TargetOutcome::WouldDelete => &mut self.would_delete,
            TargetOutcome::Failed => &mut self.failed,
            TargetOutcome::Skipped => &mut self.skipped,
            TargetOutcome::Cancelled => &mut self.cancelled,
            TargetOutcome::Restored => &mut self.restored,
        };
        *slot = slot.saturating_add(1);
    }
}

/// The counters of one depth of a finished job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthSummary {
    /// The depth.
    pub depth: u8,
    /// Mailboxes at this depth.
    pub mailboxes: u32,
    /// Copies retracted from them.
    pub copies_retracted: u32,
    /// Of those mailboxes, how many recipients had read the message before it was retracted.
    pub read_before_retract: u32,
}

impl DepthSummary {
    /// The per-depth summary of `targets`, depth 0 first.
    pub fn of(targets: &[TargetRecord]) -> Vec<Self> {
        let mut by_depth: std::collections::BTreeMap<u8, Self> = std::collections::BTreeMap::new();
        for record in targets {
            let depth = record.target.depth;
            let entry = by_depth.entry(depth).or_insert(Self {
                depth,
                ..Self::default()
            });
            entry.mailboxes = entry.mailboxes.saturating_add(1);
            if let Some(result) = &record.result {
                entry.copies_retracted =
                    entry.copies_retracted.saturating_add(result.copies_deleted);
                if result.was_read {
                    entry.read_before_retract = entry.read_before_retract.saturating_add(1);
                }
            }
        }
        by_depth.into_values().collect()
    }
}

/// Why a job ended FAILED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// UPPER_SNAKE, e.g. `TENANT_NOT_LINKED`.
    pub code: String,
    /// Human-readable.
    pub detail: String,
}

/// A cancellation asked for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    /// Who asked (the audit trail's actor name).
    pub requested_by: String,
    /// Why, as they said it.
    pub reason: Option<String>,
    /// When.
    pub requested_at: DateTime<Utc>,
}

/// The retracted message as recorded when the job was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSnapshot {
    /// The subject.
    pub subject: String,
    /// The sender address.
    pub sender: String,
    /// When it was first delivered.
    pub delivered_at: DateTime<Utc>,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Removes copies of a message.
    Retract,
    /// Puts back what a finished retract removed.
    Restore,
}

impl JobKind {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retract => "retract",
            Self::Restore => "restore",
        }
    }

    /// Reads a stored value.
    pub fn from_stored(value: &str) -> Option<Self> {
        [Self::Retract, Self::Restore]
            .into_iter()
            .find(|k| k.as_str() == value)
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

/// A target still to visit, with what its traversal needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetWork {
    /// The mailbox and its depth.
    pub target: Target,
    /// For a mailbox reached through a conversation: the message that reached it.
    pub reached_by: Option<InternetMessageId>,
    /// For a mailbox reached through a conversation: the retracted message's index.
    pub root: Option<super::ConversationIndex>,
}

/// A mailbox a visited mailbox's sent reply or forward reached, to visit next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The mailbox, at the hop of the message that reached it.
    pub target: Target,
    /// The visited mailbox that sent that message.
    pub discovered_from: EmailAddress,
    /// That message.
    pub reached_by: InternetMessageId,
    /// The retracted message's index.
    pub root: super::ConversationIndex,
}

/// A recipient of a traversed message that the job does not follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unfollowed {
    /// The address as the message names it.
    pub address: String,
    /// The hop of the message that named it.
    pub hop: u8,
    /// Why: `DOMAIN_NOT_MANAGED`, `DOMAIN_NOT_GRANTED`, `NOT_AN_ADDRESS`.
    pub code: String,
}

/// One conversation step: one visited mailbox's conversation listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationStep {
    /// The mailbox.
    pub mailbox: EmailAddress,
    /// Its depth.
    pub depth: u8,
    /// That mailbox's id of the conversation.
    pub conversation_id: String,
    /// In-scope messages found (hops 1 to the depth asked).
    pub found: u32,
    /// Of those, removed.
    pub retracted: u32,
    /// Descendants deeper than asked, left in place.
    pub left: u32,
    /// Managed mailboxes it discovered (filled in by the store with those new to the job).
    pub discovered: Vec<Target>,
    /// Recipients not followed.
    pub unfollowed: Vec<Unfollowed>,
    /// Why the step failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
}

/// A target with where it stands: unfinished (`result` is `None`) or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The mailbox and its depth.
    pub target: Target,
    /// How it ended, once it has.
    pub result: Option<TargetResult>,
    /// For a mailbox reached through a conversation: the visited mailbox whose sent message
    /// reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_from: Option<EmailAddress>,
}

/// What happened in a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The job started with these targets.
    JobStarted {
        /// The mailboxes it visits first.
        targets: Vec<Target>,
        /// The counters when it started (targets, and those settled up front).
        #[serde(default)]
        counts: JobCounts,
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
    /// One conversation step.
    Conversation {
        /// The step.
        step: ConversationStep,
    },
    /// The job ended.
    JobFinished {
        /// The final state.
        state: JobState,
        /// The final counters.
        counts: JobCounts,
        /// A one-line, human-readable summary.
        detail: String,
        /// The counters by depth.
        #[serde(default)]
        depths: Vec<DepthSummary>,
        /// Why it failed, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<JobFailure>,
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
    /// What the job does.
    pub kind: JobKind,
    /// For a RESTORE job: the retract it undoes.
    pub restores_job_id: Option<JobId>,
    /// Why it ended FAILED.
    pub failure: Option<JobFailure>,
    /// The cancellation asked for it.
    pub cancellation: Option<Cancellation>,
    /// The message as recorded when the job was created (absent for jobs created before
    /// snapshots were kept).
    pub message: Option<MessageSnapshot>,
    /// The correlation id of the call that dispatched it.
    pub correlation_id: String,
}
