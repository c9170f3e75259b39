//! Restoring a retract: what a retract records of each copy it removes, and why a job may not
//! be restored.

use std::fmt;

use super::{EmailAddress, JobId};

/// One copy a retract removed (or was about to: the record is written before Graph is asked),
/// as a restore needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedCopy {
    /// The mailbox.
    pub mailbox: EmailAddress,
    /// Graph's item id before the removal.
    pub item_id: String,
    /// The message's hop (0: the retracted message itself).
    pub hop: u8,
    /// Its `Message-ID`, to find it again when its new id is unknown.
    pub internet_message_id: Option<String>,
    /// The folder it was in.
    pub original_folder_id: Option<String>,
    /// Its id where the retract put it, when Graph said (a moved message gets a new id).
    pub removed_id: Option<String>,
}

/// Why a job cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRestorable {
    /// HARD purged its copies: Graph cannot bring them back.
    HardDelete,
    /// A dry run removed nothing.
    DryRun,
    /// Still running: wait for it or cancel it first.
    NotFinished,
    /// A RESTORE job itself.
    NotARetract,
    /// It removed no copy, or every copy it removed is back.
    NothingToRestore,
    /// Another restore of it is running.
    RestoreRunning(JobId),
}

impl NotRestorable {
    /// The `cause` the API reports, UPPER_SNAKE.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::HardDelete => "HARD_DELETE",
            Self::DryRun => "DRY_RUN",
            Self::NotFinished => "NOT_FINISHED",
            Self::NotARetract => "NOT_A_RETRACT",
            Self::NothingToRestore => "NOTHING_TO_RESTORE",
            Self::RestoreRunning(_) => "RESTORE_RUNNING",
        }
    }
}

impl fmt::Display for NotRestorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HardDelete => {
                "the job deleted permanently (HARD): purged copies cannot be brought back through Microsoft Graph"
            }
            Self::DryRun => "the job was a dry run: it removed nothing",
            Self::NotFinished => "the job is still running: wait for it to end or cancel it first",
            Self::NotARetract => "the job is a restore: only retract jobs can be restored",
            Self::NothingToRestore => {
                "nothing to restore: the job removed no copy, or every copy it removed is back"
            }
            Self::RestoreRunning(_) => "a restore of this job is running already",
        })
    }
}
