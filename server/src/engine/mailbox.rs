//! The work on one mailbox: resolve it, find every copy, delete each (or, in a dry run, only
//! count them), and turn Graph's answers into an outcome.

use std::collections::{HashMap, HashSet};

use crate::{
    domain::{
        ConversationIndex, ConversationStep, Discovered, Domain, Eligibility, EmailAddress,
        InternetMessageId, JobFailure, JobId, MicrosoftTenantId, Phase, RemovedCopy,
        RetractOptions, Target, TargetOutcome, TargetResult, TargetWork, TenantId, Unfollowed,
    },
    graph::{Deleted, Folder, GraphClient, GraphError, MailboxRef, MessageCopy},
    store::{JobWrite, Store, StoreError},
};

use super::journal::VisitLog;

/// What HARD's outcome says: Graph cannot tell whether a hold keeps purged items.
const PURGED: &str = "purged: out of the user's reach; a litigation hold or retention policy on the mailbox may still keep a copy for eDiscovery";

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
    /// The tenant's domains: recipients of traversed messages in managed, granted ones are
    /// followed.
    pub domains: Vec<Domain>,
    /// Set when the job is cancelled: nothing more is deleted.
    pub cancelled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The job, for the targets a conversation step discovers.
    pub job_id: JobId,
    /// This worker (the lease holder), for the same.
    pub owner: String,
    /// The directory's answers for addresses Graph does not know directly, for this run.
    pub aliases: super::aliases::Aliases,
}

/// Why a visit stopped before its mailbox's outcome.
pub enum Halt {
    /// The store failed: the run stops, and the job resumes at its next claim.
    Store(StoreError),
    /// Graph throttles the mailbox for longer than a request waits in place.
    Parked(Parked),
}

impl From<StoreError> for Halt {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// A mailbox set aside while Graph throttles it (a long `Retry-After`): the visit is tried
/// again after `wait`, from the start (visits are idempotent), without holding a slot
/// meanwhile.
pub struct Parked {
    /// What Graph asked for.
    pub wait: std::time::Duration,
    /// The outcome if the job stops waiting for it: FAILED with Graph's error.
    pub result: TargetResult,
    /// The targets its conversation step discovered before Graph throttled it, to visit.
    pub next: Vec<TargetWork>,
}

/// What visiting one mailbox did: its result, and the conversation step when conversations
/// are followed (with the mailboxes it discovered).
pub struct Visit {
    /// How the mailbox ended.
    pub result: TargetResult,
    /// Its conversation step (its discoveries are targets already).
    pub step: Option<ConversationStep>,
    /// The targets its step discovered, to visit at once.
    pub next: Vec<TargetWork>,
}

impl Work {
    /// Processes one mailbox, reporting each phase and recording each removal through `log`:
    /// at depth 0 every copy of the retracted message; with conversations, the in-scope
    /// replies and forwards of its conversation in that mailbox too, and the managed
    /// mailboxes its sent ones reached.
    pub async fn run(&self, work: &TargetWork, log: &VisitLog<'_>) -> Result<Visit, Halt> {
        let target = &work.target;
        let visit = |result| Visit {
            result,
            step: None,
            next: Vec::new(),
        };
        let failed = |err: GraphError| self.failure(&target.mailbox, err, true);
        log.phase(Phase::Searching);
        // The message that brought this mailbox in: the retracted one at depth 0, else the
        // reply or forward that reached it.
        let seed = match (&work.reached_by, target.depth) {
            (Some(reached_by), depth) if depth > 0 => reached_by,
            _ => &self.options.message_id,
        };
        // Searched by its address directly (two Graph requests a mailbox: find, delete); the
        // directory is read only when Graph does not know the address that way (an alias),
        // and once a run: an address met again is searched where the directory said.
        let known = self.aliases.known(&target.mailbox);
        let first = match &known {
            None => MailboxRef::addressed(&target.mailbox),
            Some(Some(mailbox)) => mailbox.clone(),
            Some(None) => return Ok(visit(not_a_mailbox(target))),
        };
        let (mailbox, copies) = match self
            .graph
            .find_copies(&self.microsoft, &first, None, seed)
            .await
        {
            Ok(copies) => (first, copies),
            Err(err) if err.is_unknown_user() && known.is_none() => {
                log.phase(Phase::Resolving);
                let found = match self
                    .aliases
                    .resolve(&target.mailbox, || {
                        self.graph.find_by_alias(&self.microsoft, &target.mailbox)
                    })
                    .await
                {
                    Ok(found) => found,
                    Err(err) => return Ok(visit(failed(err).await?)),
                };
                let Some(mailbox) = found else {
                    return Ok(visit(not_a_mailbox(target)));
                };
                log.phase(Phase::Searching);
                match self
                    .graph
                    .find_copies(&self.microsoft, &mailbox, None, seed)
                    .await
                {
                    Ok(copies) => (mailbox, copies),
                    Err(err) => return Ok(visit(failed(err).await?)),
                }
            }
            Err(err) => return Ok(visit(failed(err).await?)),
        };
        log.note(JobWrite::Reachable {
            tenant: self.tenant.clone(),
            address: target.mailbox.clone(),
        });
        // Copies in Recoverable Items\Deletions (the user's own delete, an earlier soft
        // retract, or a run interrupted after its delete), looked up once when anything needs
        // them: HARD purges them (the user could still restore them), they tell "already
        // deleted" from "never delivered", and they start a traversal whose message is gone.
        let hard = self.options.delete_mode == crate::domain::DeleteMode::Hard;
        let recoverable = if (target.depth == 0 && (hard || copies.is_empty()))
            || (self.options.include_conversations && copies.is_empty())
        {
            match self
                .graph
                .find_copies(
                    &self.microsoft,
                    &mailbox,
                    Some(Folder::RecoverableItemsDeletions),
                    seed,
                )
                .await
            {
                Ok(found) => found,
                Err(err) => return Ok(visit(failed(err).await?)),
            }
        } else {
            Vec::new()
        };
        // The copies that start the traversal: those just found, or those in Recoverable
        // Items (taken before hop zero purges them in HARD mode).
        let seeds = match (self.options.include_conversations, copies.is_empty()) {
            (false, _) => Vec::new(),
            (true, true) => recoverable.clone(),
            (true, false) => copies.clone(),
        };
        let hop_zero = if target.depth == 0 {
            Some(
                self.hop_zero(target, &mailbox, copies, recoverable, log)
                    .await?,
            )
        } else {
            None
        };
        let followed = if self.options.include_conversations {
            self.follow(work, &mailbox, &seeds, log).await?
        } else {
            None
        };
        Ok(combine(hop_zero, followed, &seeds, self.options.dry_run))
    }

    /// The retracted message's own copies in a depth-0 mailbox.
    async fn hop_zero(
        &self,
        target: &Target,
        mailbox: &MailboxRef,
        mut copies: Vec<MessageCopy>,
        recoverable: Vec<MessageCopy>,
        log: &VisitLog<'_>,
    ) -> Result<TargetResult, Halt> {
        let failed = |err: GraphError| self.failure(&target.mailbox, err, true);
        let message = &self.options.message_id;
        let mut was_read = copies.iter().any(|c| c.is_read);
        // Moving to Deleted Items: copies already there (the user's own delete, or a run
        // interrupted after its move) are already deleted, not moved again. This costs MOVE a
        // third request per mailbox, kept on purpose: the mailbox-wide search does return
        // Deleted Items copies, but only with an opaque, per-mailbox `parentFolderId`, and
        // nothing in its answer names Deleted Items (learning that id is a request too).
        // Moving such a copy again would be a move into its own folder, which Microsoft does
        // not document (a move gives the message a new id); it would report the user's own
        // delete as ours; and after an interrupted run it would record the copy as taken
        // from Deleted Items under its moved id, so a restore would find the first record's
        // id gone and leave the message in Deleted Items instead of putting it back.
        let mut already_there = 0;
        if self.options.delete_mode == crate::domain::DeleteMode::MoveToDeletedItems
            && !copies.is_empty()
        {
            let in_deleted_items = match self
                .graph
                .find_copies(
                    &self.microsoft,
                    mailbox,
                    Some(Folder::DeletedItems),
                    message,
                )
                .await
            {
                Ok(found) => found.into_iter().map(|c| c.id).collect::<HashSet<_>>(),
                Err(err) => return failed(err).await,
            };
            let before = copies.len();
            copies.retain(|c| !in_deleted_items.contains(&c.id));
            already_there = u32::try_from(before - copies.len()).unwrap_or(u32::MAX);
            if copies.is_empty() {
                if let Some(earlier) = self.removed_earlier(target).await? {
                    return Ok(earlier);
                }
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
        // `recoverable`: the copies in Recoverable Items\Deletions, looked up by the caller when
        // HARD or when nothing else was found. HARD purges them too (confidential mail is exactly
        // this case); otherwise, when they are the only copies, the mailbox counts as already
        // deleted, not as never delivered.
        let hard = self.options.delete_mode == crate::domain::DeleteMode::Hard;
        if copies.is_empty() && (!hard || recoverable.is_empty()) {
            if let Some(earlier) = self.removed_earlier(target).await? {
                return Ok(earlier);
            }
            let outcome = if recoverable.is_empty() {
                TargetOutcome::NotFound
            } else {
                TargetOutcome::AlreadyDeleted
            };
            return Ok(result(outcome, 0, 0, false, None, None));
        }
        if hard {
            for copy in recoverable {
                if !copies.iter().any(|c| c.id == copy.id) {
                    was_read |= copy.is_read;
                    copies.push(copy);
                }
            }
        }
        let found = u32::try_from(copies.len()).unwrap_or(u32::MAX) + already_there;
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
        log.phase(Phase::Deleting);
        let mut deleted = 0;
        let mut already_gone = 0;
        let mut failure = None;
        let hop_zero: Vec<(MessageCopy, u8)> = copies.into_iter().map(|c| (c, 0)).collect();
        for answer in self
            .remove(&target.mailbox, mailbox, &hop_zero, log)
            .await?
        {
            match answer {
                Ok(Deleted::Deleted { .. }) => deleted += 1,
                Ok(Deleted::AlreadyGone) => already_gone += 1,
                Err(err) => failure = Some(err),
            }
        }
        if let Some(err) = failure {
            // Some copies are gone already: FAILED with what was done, not parked (a visit
            // from the start would not count them again).
            let mut partial = self.failure(&target.mailbox, err, deleted == 0).await?;
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
        let detail = (hard && deleted > 0).then(|| PURGED.to_owned());
        Ok(result(outcome, found, deleted, was_read, detail, None))
    }

    /// When this job removed the message's copies here in an earlier run (interrupted after
    /// Graph removed them, before the mailbox's outcome was recorded): DELETED with what it
    /// recorded, rather than NOT_FOUND or ALREADY_DELETED for copies it purged or moved itself.
    async fn removed_earlier(&self, target: &Target) -> Result<Option<TargetResult>, StoreError> {
        let earlier = self
            .store
            .recorded_removals(&self.job_id, &target.mailbox, 0)
            .await?;
        if earlier == 0 {
            return Ok(None);
        }
        let detail = if self.options.delete_mode == crate::domain::DeleteMode::Hard {
            format!("removed by this job before it was interrupted; {PURGED}")
        } else {
            "removed by this job before it was interrupted".to_owned()
        };
        Ok(Some(result(
            TargetOutcome::Deleted,
            earlier,
            earlier,
            false,
            Some(detail),
            None,
        )))
    }

    /// Removes `copies` (each with its hop) in the job's mode. Each is recorded first — its id
    /// and folder — and after a move, where it went: what a restore needs to put it back, and
    /// what tells a resumed job that it removed them itself.
    async fn remove(
        &self,
        address: &EmailAddress,
        mailbox: &MailboxRef,
        copies: &[(MessageCopy, u8)],
        log: &VisitLog<'_>,
    ) -> Result<Vec<Result<Deleted, GraphError>>, StoreError> {
        let mode = self.options.delete_mode;
        {
            let records: Vec<RemovedCopy> = copies
                .iter()
                .map(|(c, hop)| RemovedCopy {
                    mailbox: address.clone(),
                    item_id: c.id.clone(),
                    hop: *hop,
                    internet_message_id: c.internet_message_id.clone(),
                    original_folder_id: c.parent_folder_id.clone(),
                    removed_id: None,
                })
                .collect();
            log.record(JobWrite::Removing(records)).await?;
        }
        let list: Vec<MessageCopy> = copies.iter().map(|(c, _)| c.clone()).collect();
        let answers = self
            .graph
            .delete_copies(&self.microsoft, mailbox, &list, mode)
            .await;
        let mut moved: Vec<(String, String)> = Vec::new();
        let mut not_removed: Vec<String> = Vec::new();
        for (copy, answer) in list.iter().zip(&answers) {
            match answer {
                Ok(Deleted::Deleted {
                    new_id: Some(new_id),
                }) => moved.push((copy.id.clone(), new_id.clone())),
                Ok(Deleted::Deleted { new_id: None }) => {}
                // Still in place (Graph failed), or gone by someone else's hand: not ours to
                // put back.
                Ok(Deleted::AlreadyGone) | Err(_) => not_removed.push(copy.id.clone()),
            }
        }
        // What Graph did is recorded even by a worker that lost the job meanwhile: the new
        // owner's redo finds a moved copy in Deleted Items and records nothing for it, so a
        // restore would otherwise look for it under its old id.
        if !moved.is_empty() || !not_removed.is_empty() {
            let removed = JobWrite::Removed {
                mailbox: address.clone(),
                moved: moved.clone(),
                not_removed: not_removed.clone(),
            };
            match log.record(removed).await {
                Err(StoreError::LeaseLost(_)) => {
                    self.store
                        .record_removed_ids(&self.job_id, address, &moved)
                        .await?;
                    self.store
                        .forget_removals(&self.job_id, address, &not_removed)
                        .await?;
                }
                other => other?,
            }
        }
        Ok(answers)
    }

    /// A FAILED outcome for `err`, remembering permission problems for the Retract tab; or,
    /// when Graph throttles the mailbox for longer than a request waits in place, the visit
    /// parked.
    async fn failure(
        &self,
        mailbox: &EmailAddress,
        err: GraphError,
        may_park: bool,
    ) -> Result<TargetResult, Halt> {
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
        let failed = result(TargetOutcome::Failed, 0, 0, false, Some(detail), code);
        match self.graph.parks(&err).filter(|_| may_park) {
            Some(wait) => Err(Halt::Parked(Parked {
                wait,
                result: failed,
                next: Vec::new(),
            })),
            None => Ok(failed),
        }
    }
}

/// Most recipients one step reports as not followed.
const MAX_UNFOLLOWED: usize = 100;

/// Most messages without a usable `conversationIndex` whose headers one mailbox's step reads.
const MAX_UNINDEXED: usize = 50;

/// What following the conversation in one mailbox found.
pub struct Followed {
    step: ConversationStep,
    found: u32,
    deleted: u32,
    failure: Option<(String, Option<String>)>,
    /// The targets its step added, to visit next.
    next: Vec<TargetWork>,
}

impl Work {
    /// Lists this mailbox's copy of the conversation (by this mailbox's own conversation id,
    /// taken from its copy of the message that brought it in), removes the descendants of the
    /// retracted message of hops 1..depth, and collects the managed recipients of those this
    /// mailbox sent. `None` when the mailbox holds no copy to start from.
    async fn follow(
        &self,
        work: &TargetWork,
        mailbox: &MailboxRef,
        seeds: &[MessageCopy],
        log: &VisitLog<'_>,
    ) -> Result<Option<Followed>, Halt> {
        let root = work.root.clone().or_else(|| {
            seeds.iter().find_map(|c| {
                c.conversation_index
                    .as_deref()
                    .and_then(ConversationIndex::decode)
            })
        });
        let conversation_id = seeds.iter().find_map(|c| c.conversation_id.clone());
        let (Some(root), Some(conversation_id)) = (root, conversation_id) else {
            return Ok(None);
        };
        let depth = self.options.conversation_depth;
        let mut step = ConversationStep {
            mailbox: work.target.mailbox.clone(),
            depth: work.target.depth,
            conversation_id: conversation_id.clone(),
            found: 0,
            retracted: 0,
            left: 0,
            discovered: Vec::new(),
            unfollowed: Vec::new(),
            failure: None,
        };
        // `may_park`: nothing of this mailbox's conversation deleted yet (a visit from the
        // start would not count what was).
        let fail =
            |mut step: ConversationStep, err: GraphError, next: Vec<TargetWork>, may_park: bool| {
                let code = err.code().map(str::to_owned);
                if let Some(wait) = self.graph.parks(&err).filter(|_| may_park) {
                    let result = result(
                        TargetOutcome::Failed,
                        0,
                        0,
                        false,
                        Some(err.to_string()),
                        code,
                    );
                    return Err(Halt::Parked(Parked { wait, result, next }));
                }
                step.failure = Some(JobFailure {
                    code: code
                        .clone()
                        .unwrap_or_else(|| "MICROSOFT_UNAVAILABLE".to_owned()),
                    detail: err.to_string(),
                });
                Ok(Followed {
                    step,
                    found: 0,
                    deleted: 0,
                    failure: Some((err.to_string(), code)),
                    next,
                })
            };
        let mut messages = match self
            .graph
            .list_conversation(&self.microsoft, mailbox, None, &conversation_id)
            .await
        {
            Ok(messages) => messages,
            Err(err) => return fail(step, err, Vec::new(), true).map(Some),
        };
        // HARD purges the replies and forwards the user deleted already too (Recoverable
        // Items\Deletions, where the user could still restore them).
        if self.options.delete_mode == crate::domain::DeleteMode::Hard {
            match self
                .graph
                .list_conversation(
                    &self.microsoft,
                    mailbox,
                    Some(Folder::RecoverableItemsDeletions),
                    &conversation_id,
                )
                .await
            {
                Ok(recoverable) => messages.extend(recoverable),
                Err(err) => return fail(step, err, Vec::new(), true).map(Some),
            }
        }
        // In scope: descendants of the retracted message, hops 1..depth, never drafts; the
        // original (hop 0) is only ever removed from the selected recipients.
        let mut in_scope: Vec<(MessageCopy, u8)> = Vec::new();
        let mut seen = HashSet::new();
        let mut unindexed = 0;
        for message in messages {
            if message.is_draft || !seen.insert(message.id.clone()) {
                continue;
            }
            let hop = match message
                .conversation_index
                .as_deref()
                .and_then(ConversationIndex::decode)
            {
                Some(index) => index.hops_below(&root),
                // No usable index: the threading headers say (at a bounded cost per mailbox).
                None if unindexed < MAX_UNINDEXED => {
                    unindexed += 1;
                    match self
                        .graph
                        .thread_headers(&self.microsoft, mailbox, &message.id)
                        .await
                    {
                        Ok(headers) => headers.hops_below(self.options.message_id.as_str()),
                        // Gone since the listing: nothing to place.
                        Err(err) if err.code() == Some("ErrorItemNotFound") => None,
                        Err(err) => return fail(step, err, Vec::new(), true).map(Some),
                    }
                }
                None => None,
            };
            let Some(hop) = hop else {
                continue;
            };
            match hop {
                0 => {}
                h if h <= depth => in_scope.push((message, h)),
                _ => step.left += 1,
            }
        }
        step.found = u32::try_from(in_scope.len()).unwrap_or(u32::MAX);
        let (discovered, unfollowed) = self.recipients_of_sent(work, &in_scope, &root);
        step.unfollowed = unfollowed;
        // The discovered mailboxes become targets before anything is deleted: a crash after
        // the deletes cannot lose them (the next run no longer lists what it deleted).
        let (added, refused) = self
            .store
            .add_discovered_targets(&self.job_id, &self.owner, discovered)
            .await?;
        step.discovered = added.iter().map(|d| d.target.clone()).collect();
        step.unfollowed.extend(refused);
        let next: Vec<TargetWork> = added
            .into_iter()
            .map(|d| TargetWork {
                target: d.target,
                reached_by: Some(d.reached_by),
                root: Some(d.root),
            })
            .collect();
        // Moving to Deleted Items: what is there already (the user's own delete, or an
        // interrupted run) is not moved again.
        if self.options.delete_mode == crate::domain::DeleteMode::MoveToDeletedItems
            && !in_scope.is_empty()
        {
            match self
                .graph
                .list_conversation(
                    &self.microsoft,
                    mailbox,
                    Some(Folder::DeletedItems),
                    &conversation_id,
                )
                .await
            {
                Ok(there) => {
                    let there: HashSet<String> = there.into_iter().map(|m| m.id).collect();
                    in_scope.retain(|(m, _)| !there.contains(&m.id));
                }
                Err(err) => return fail(step, err, next, true).map(Some),
            }
        }
        let mut deleted = 0;
        let cancelled = self.cancelled.load(std::sync::atomic::Ordering::Relaxed);
        if !self.options.dry_run && !cancelled && !in_scope.is_empty() {
            for answer in self
                .remove(&work.target.mailbox, mailbox, &in_scope, log)
                .await?
            {
                match answer {
                    Ok(Deleted::Deleted { .. }) => deleted += 1,
                    Ok(Deleted::AlreadyGone) => {}
                    Err(err) => {
                        step.retracted = deleted;
                        let mut followed = fail(step, err, next, deleted == 0)?;
                        followed.found = u32::try_from(in_scope.len()).unwrap_or(u32::MAX);
                        followed.deleted = deleted;
                        return Ok(Some(followed));
                    }
                }
            }
        }
        step.retracted = deleted;
        Ok(Some(Followed {
            found: step.found,
            deleted,
            step,
            failure: None,
            next,
        }))
    }

    /// The recipients of in-scope messages this mailbox sent: managed, granted ones to visit
    /// at the message's hop (lowest hop first), the others reported.
    fn recipients_of_sent(
        &self,
        work: &TargetWork,
        in_scope: &[(MessageCopy, u8)],
        root: &ConversationIndex,
    ) -> (Vec<Discovered>, Vec<Unfollowed>) {
        let me = &work.target.mailbox;
        let no_problems = HashMap::new();
        let mut discovered: Vec<Discovered> = Vec::new();
        let mut unfollowed: Vec<Unfollowed> = Vec::new();
        // Each address once (at its lowest hop: sent messages are read lowest hop first), and
        // a bounded report of those not followed.
        let mut seen: HashSet<String> = HashSet::new();
        let mut sent: Vec<&(MessageCopy, u8)> = in_scope
            .iter()
            .filter(|(m, _)| {
                m.from
                    .as_ref()
                    .and_then(|f| EmailAddress::parse(&f.email_address.address).ok())
                    .is_some_and(|from| &from == me)
            })
            .collect();
        sent.sort_by_key(|(_, hop)| *hop);
        for (message, hop) in sent {
            let Some(reached_by) = message
                .internet_message_id
                .as_deref()
                .and_then(|id| InternetMessageId::parse(id).ok())
            else {
                continue;
            };
            let recipients = message
                .to_recipients
                .iter()
                .chain(&message.cc_recipients)
                .chain(&message.bcc_recipients);
            for recipient in recipients {
                let raw = &recipient.email_address.address;
                let Ok(address) = EmailAddress::parse(raw) else {
                    if seen.insert(raw.to_lowercase()) && unfollowed.len() < MAX_UNFOLLOWED {
                        unfollowed.push(Unfollowed {
                            address: raw.chars().take(320).collect(),
                            hop: *hop,
                            code: "NOT_AN_ADDRESS".to_owned(),
                        });
                    }
                    continue;
                };
                if &address == me || !seen.insert(address.to_string()) {
                    continue;
                }
                match Eligibility::assess(&address, &self.domains, &no_problems) {
                    Eligibility::Eligible | Eligibility::PermissionIssue(_) => {
                        discovered.push(Discovered {
                            target: Target {
                                mailbox: address,
                                depth: *hop,
                            },
                            discovered_from: me.clone(),
                            reached_by: reached_by.clone(),
                            root: root.clone(),
                        });
                    }
                    _ if unfollowed.len() >= MAX_UNFOLLOWED => {}
                    Eligibility::DomainNotManaged => unfollowed.push(Unfollowed {
                        address: address.to_string(),
                        hop: *hop,
                        code: "DOMAIN_NOT_MANAGED".to_owned(),
                    }),
                    Eligibility::DomainNotGranted(_) => unfollowed.push(Unfollowed {
                        address: address.to_string(),
                        hop: *hop,
                        code: "DOMAIN_NOT_GRANTED".to_owned(),
                    }),
                }
            }
        }
        (discovered, unfollowed)
    }
}

/// One mailbox's result from its hop-0 work (depth 0) and its conversation step: counts of
/// every in-scope message, DELETED when anything was removed, FAILED when a step failed.
fn combine(
    hop_zero: Option<TargetResult>,
    followed: Option<Followed>,
    seeds: &[MessageCopy],
    dry_run: bool,
) -> Visit {
    let Some(followed) = followed else {
        return Visit {
            result: hop_zero
                .unwrap_or_else(|| result(TargetOutcome::NotFound, 0, 0, false, None, None)),
            step: None,
            next: Vec::new(),
        };
    };
    let mut base = hop_zero.unwrap_or_else(|| {
        result(
            TargetOutcome::NotFound,
            0,
            0,
            seeds.iter().any(|c| c.is_read),
            None,
            None,
        )
    });
    base.copies_found = base.copies_found.saturating_add(followed.found);
    base.copies_deleted = base.copies_deleted.saturating_add(followed.deleted);
    if let Some((detail, code)) = followed.failure {
        if base.outcome != TargetOutcome::Failed {
            base.outcome = TargetOutcome::Failed;
            base.detail = Some(format!("following the conversation: {detail}"));
            base.graph_code = code;
        }
    } else if followed.found > 0 {
        match base.outcome {
            TargetOutcome::NotFound | TargetOutcome::AlreadyDeleted if dry_run => {
                base.outcome = TargetOutcome::WouldDelete;
            }
            TargetOutcome::NotFound | TargetOutcome::AlreadyDeleted if followed.deleted > 0 => {
                base.outcome = TargetOutcome::Deleted;
            }
            TargetOutcome::NotFound => base.outcome = TargetOutcome::AlreadyDeleted,
            _ => {}
        }
    }
    Visit {
        result: base,
        step: Some(followed.step),
        next: followed.next,
    }
}

/// NOT_FOUND for an address the directory has no mailbox for.
fn not_a_mailbox(target: &Target) -> TargetResult {
    let detail = if target.depth > 0 {
        // Reached through a conversation: a distribution list, a Microsoft 365 group or an
        // address without a mailbox, which Graph cannot expand.
        "not a mailbox in Microsoft 365 (a group, a distribution list or an address without a mailbox): not followed"
    } else {
        "no mailbox with this address in Microsoft 365"
    };
    result(
        TargetOutcome::NotFound,
        0,
        0,
        false,
        Some(detail.into()),
        None,
    )
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
