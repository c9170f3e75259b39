//! The work on one mailbox: resolve it, find every copy, delete each (or, in a dry run, only
//! count them), and turn Graph's answers into an outcome.

use std::future::Future;

use crate::{
    domain::{
        EmailAddress, JobEvent, MicrosoftTenantId, Phase, RetractOptions, Target, TargetOutcome,
        TargetResult, TenantId,
    },
    graph::{Deleted, Folder, GraphClient, GraphError},
    store::{Store, StoreError},
};

/// Graph codes that mean "we may not act on this mailbox", kept for the Retract tab.
const PERMISSION_CODES: [(&str, &str); 2] = [
    (
        "ErrorAccessDenied",
        "an application access policy excludes this mailbox (Access to OData is disabled.)",
    ),
    (
        "MailboxNotEnabledForRESTAPI",
        "not an Exchange Online mailbox (on-premises, unlicensed or inactive)",
    ),
];

/// What every mailbox of one job shares.
pub struct Work {
    pub graph: GraphClient,
    pub store: Store,
    pub tenant: TenantId,
    pub microsoft: MicrosoftTenantId,
    pub options: RetractOptions,
    /// Set when the job is cancelled: nothing more is deleted.
    pub cancelled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Work {
    /// Processes one mailbox, reporting each phase through `progress`.
    pub async fn run<F, Fut>(
        &self,
        target: &Target,
        progress: F,
    ) -> Result<TargetResult, StoreError>
    where
        F: Fn(Phase) -> Fut,
        Fut: Future<Output = Result<Option<JobEvent>, StoreError>>,
    {
        let failed = |err: GraphError| self.failure(&target.mailbox, err);
        progress(Phase::Resolving).await?;
        let message = &self.options.message_id;
        let mailbox = match self
            .graph
            .resolve_mailbox(&self.microsoft, &target.mailbox)
            .await
        {
            Ok(Some(mailbox)) => mailbox,
            Ok(None) => {
                return Ok(result(
                    TargetOutcome::NotFound,
                    0,
                    0,
                    false,
                    Some("no mailbox with this address in Microsoft 365".into()),
                    None,
                ));
            }
            Err(err) => return failed(err).await,
        };
        progress(Phase::Searching).await?;
        let copies = match self
            .graph
            .find_copies(&self.microsoft, &mailbox, None, message)
            .await
        {
            Ok(copies) => copies,
            Err(err) => return failed(err).await,
        };
        self.store
            .record_mailbox_status(&self.tenant, &target.mailbox, None)
            .await?;
        let was_read = copies.iter().any(|c| c.is_read);
        // Moving to Deleted Items: copies already there (the user's own delete, or a run
        // interrupted after its move) are already deleted, not moved again.
        let mut copies = copies;
        let mut already_there = 0;
        if self.options.delete_mode == crate::domain::DeleteMode::MoveToDeletedItems
            && !copies.is_empty()
        {
            let in_deleted_items = match self
                .graph
                .find_copies(
                    &self.microsoft,
                    &mailbox,
                    Some(Folder::DeletedItems),
                    message,
                )
                .await
            {
                Ok(found) => found
                    .into_iter()
                    .map(|c| c.id)
                    .collect::<std::collections::HashSet<_>>(),
                Err(err) => return failed(err).await,
            };
            let before = copies.len();
            copies.retain(|c| !in_deleted_items.contains(&c.id));
            already_there = u32::try_from(before - copies.len()).unwrap_or(u32::MAX);
            if copies.is_empty() {
                return Ok(result(
                    TargetOutcome::AlreadyDeleted,
                    already_there,
                    0,
                    was_read,
                    None,
                    None,
                ));
            }
        }
        let found = u32::try_from(copies.len()).unwrap_or(u32::MAX) + already_there;
        if copies.is_empty() {
            // Only a copy in Recoverable Items (an earlier soft delete, or a run interrupted
            // after its delete) counts as already deleted, not as never delivered.
            let recoverable = match self
                .graph
                .find_copies(
                    &self.microsoft,
                    &mailbox,
                    Some(Folder::RecoverableItemsDeletions),
                    message,
                )
                .await
            {
                Ok(copies) => copies.len(),
                Err(err) => return failed(err).await,
            };
            let outcome = if recoverable > 0 {
                TargetOutcome::AlreadyDeleted
            } else {
                TargetOutcome::NotFound
            };
            return Ok(result(outcome, 0, 0, false, None, None));
        }
        if self.options.dry_run {
            return Ok(result(
                TargetOutcome::WouldDelete,
                found,
                0,
                was_read,
                None,
                None,
            ));
        }
        if self.cancelled.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(result(
                TargetOutcome::Cancelled,
                found,
                0,
                was_read,
                Some("the job was cancelled".into()),
                None,
            ));
        }
        progress(Phase::Deleting).await?;
        let mut deleted = 0;
        let mut already_gone = 0;
        let mut failure = None;
        for answer in self
            .graph
            .delete_copies(&self.microsoft, &mailbox, &copies, self.options.delete_mode)
            .await
        {
            match answer {
                Ok(Deleted::Deleted) => deleted += 1,
                Ok(Deleted::AlreadyGone) => already_gone += 1,
                Err(err) => failure = Some(err),
            }
        }
        if let Some(err) = failure {
            let mut partial = failed(err).await?;
            partial.copies_found = found;
            partial.copies_deleted = deleted;
            partial.was_read = was_read;
            return Ok(partial);
        }
        let outcome = if deleted == 0 && already_gone > 0 {
            TargetOutcome::AlreadyDeleted
        } else {
            TargetOutcome::Deleted
        };
        Ok(result(outcome, found, deleted, was_read, None, None))
    }

    /// A FAILED outcome for `err`, remembering permission problems for the Retract tab.
    async fn failure(
        &self,
        mailbox: &EmailAddress,
        err: GraphError,
    ) -> Result<TargetResult, StoreError> {
        let code = err.code().map(str::to_owned);
        let known = PERMISSION_CODES
            .iter()
            .find(|(c, _)| Some(*c) == code.as_deref());
        if let Some((code, detail)) = known {
            self.store
                .record_mailbox_status(&self.tenant, mailbox, Some((code, detail)))
                .await?;
        }
        let detail = known.map_or_else(|| err.to_string(), |(_, d)| (*d).to_owned());
        Ok(result(
            TargetOutcome::Failed,
            0,
            0,
            false,
            Some(detail),
            code,
        ))
    }
}

fn result(
    outcome: TargetOutcome,
    copies_found: u32,
    copies_deleted: u32,
    was_read: bool,
    detail: Option<String>,
    graph_code: Option<String>,
) -> TargetResult {
    TargetResult {
        outcome,
        copies_found,
        copies_deleted,
        was_read,
        detail,
        graph_code,
    }
}
