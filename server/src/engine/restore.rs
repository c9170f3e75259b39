//! The work on one mailbox of a RESTORE job: put back every copy the retract removed there.
//! A copy whose id where the retract put it is known (a move answers it) is moved straight
//! back. A copy already back in its folder (the user restored it, or an interrupted restore
//! did) counts as restored and is never moved twice; one whose id where the retract put it
//! was never known (SOFT deletes answer none; a run interrupted before recording it) is found
//! again by its `Message-ID` there. One that was under a known id and moved since, or is
//! nowhere to be found, is reported, not guessed at.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::{
    domain::{
        DeleteMode, InternetMessageId, JobId, MicrosoftTenantId, Phase, RemovedCopy, Target,
        TargetOutcome, TargetResult,
    },
    graph::{Folder, GraphClient, GraphError, MailboxRef, Moved},
    store::{Store, StoreError},
};

/// Where a copy goes back when the retract did not learn its folder.
const FALLBACK_FOLDER: &str = "inbox";

/// What every mailbox of one restore job shares.
pub struct Work {
    pub graph: GraphClient,
    pub store: Store,
    pub microsoft: MicrosoftTenantId,
    /// The retract job being undone.
    pub retract: JobId,
    /// This restore job.
    pub restore: JobId,
    /// How the retract removed the copies (where they are now).
    pub mode: DeleteMode,
    /// Set when the job is cancelled: nothing more is moved.
    pub cancelled: Arc<AtomicBool>,
}

/// The copies of one mailbox as a restore settles them.
#[derive(Default)]
struct Tally {
    /// Item ids (before the retract) now back where they were.
    back: Vec<String>,
    /// Of those, found back already (restored or moved back by the user, or an interrupted
    /// restore).
    already_back: u32,
    /// Copies neither where the retract put them nor back.
    missing: u32,
    /// The first Graph failure.
    failure: Option<GraphError>,
}

impl Work {
    /// Puts back what the retract removed from `target`, reporting each phase.
    pub async fn run<F>(&self, target: &Target, progress: F) -> Result<TargetResult, StoreError>
    where
        F: Fn(Phase),
    {
        progress(Phase::Resolving);
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
                    Some("no mailbox with this address in Microsoft 365 any more".into()),
                    None,
                ));
            }
            Err(err) => return Ok(failed(0, 0, &err)),
        };
        progress(Phase::Searching);
        let copies = self
            .store
            .unrestored_copies(&self.retract, &target.mailbox)
            .await?;
        let found = u32::try_from(copies.len()).unwrap_or(u32::MAX);
        if copies.is_empty() {
            return Ok(result(
                TargetOutcome::NotFound,
                0,
                0,
                Some("nothing left to restore in this mailbox".into()),
                None,
            ));
        }
        if self.cancelled.load(Ordering::Relaxed) {
            return Ok(result(
                TargetOutcome::Cancelled,
                found,
                0,
                Some("the job was cancelled".into()),
                None,
            ));
        }
        progress(Phase::Restoring);
        let mut tally = Tally::default();
        let mut moved_into = HashMap::new();
        let unplaced = self
            .move_known(&mailbox, copies, &mut tally, &mut moved_into)
            .await;
        if tally.failure.is_none() && !unplaced.is_empty() {
            self.move_found(&mailbox, unplaced, &mut tally, &moved_into)
                .await;
        }
        self.store
            .mark_restored(&self.retract, &target.mailbox, &self.restore, &tally.back)
            .await?;
        let back = u32::try_from(tally.back.len()).unwrap_or(u32::MAX);
        if let Some(err) = &tally.failure {
            return Ok(failed(found, back, err));
        }
        let mut notes = Vec::new();
        if tally.already_back > 0 {
            notes.push(format!(
                "{} already back in their folder (restored by the user or an earlier run)",
                tally.already_back
            ));
        }
        if tally.missing > 0 {
            notes.push(format!(
                "{} no longer where the retract put them (moved elsewhere or purged since): left as they are",
                tally.missing
            ));
        }
        let detail =
            (!notes.is_empty()).then(|| format!("of {found} copies removed: {}", notes.join("; ")));
        let outcome = if back > 0 {
            TargetOutcome::Restored
        } else {
            TargetOutcome::NotFound
        };
        Ok(result(outcome, found, back, detail, None))
    }

    /// Moves back the copies whose id where the retract put them is known; answers those not
    /// there under it any more (moved since by someone else), and counts what it moved into
    /// each folder, by message.
    async fn move_known(
        &self,
        mailbox: &MailboxRef,
        copies: Vec<RemovedCopy>,
        tally: &mut Tally,
        moved_into: &mut HashMap<(Option<String>, String), u32>,
    ) -> Vec<RemovedCopy> {
        let (known, mut unplaced): (Vec<RemovedCopy>, Vec<RemovedCopy>) =
            copies.into_iter().partition(|c| c.removed_id.is_some());
        if known.is_empty() {
            return unplaced;
        }
        let moves: Vec<(String, String)> = known
            .iter()
            .map(|c| (c.removed_id.clone().unwrap_or_default(), destination(c)))
            .collect();
        let answers = self
            .graph
            .move_copies(&self.microsoft, mailbox, &moves)
            .await;
        for (copy, answer) in known.into_iter().zip(answers) {
            match answer {
                Ok(Moved::Moved { .. }) => {
                    *moved_into
                        .entry((copy.internet_message_id.clone(), destination(&copy)))
                        .or_default() += 1;
                    tally.back.push(copy.item_id);
                }
                Ok(Moved::Gone) => unplaced.push(copy),
                Err(err) => {
                    tally.failure.get_or_insert(err);
                }
            }
        }
        unplaced
    }

    /// The other copies, message by message: first those back in their folder already (the
    /// user restored them, or an interrupted restore did) — never moved twice; then, for copies
    /// whose id where the retract put them was never known (SOFT answers none), one with the
    /// same `Message-ID` found where the retract put them goes back. A copy that was under a
    /// known id and moved since is not guessed at: it is reported missing.
    async fn move_found(
        &self,
        mailbox: &MailboxRef,
        copies: Vec<RemovedCopy>,
        tally: &mut Tally,
        moved_into: &HashMap<(Option<String>, String), u32>,
    ) {
        let removed_to = match self.mode {
            DeleteMode::MoveToDeletedItems => Folder::DeletedItems,
            DeleteMode::Soft | DeleteMode::Hard => Folder::RecoverableItemsDeletions,
        };
        let mut by_message: HashMap<Option<String>, Vec<RemovedCopy>> = HashMap::new();
        for copy in copies {
            by_message
                .entry(copy.internet_message_id.clone())
                .or_default()
                .push(copy);
        }
        let mut by_message: Vec<_> = by_message.into_iter().collect();
        by_message.sort_by(|a, b| a.0.cmp(&b.0));
        for (raw_id, records) in by_message {
            let Some(message) = raw_id
                .as_deref()
                .and_then(|m| InternetMessageId::parse(m).ok())
            else {
                // Without a usable Message-ID there is nothing to find it by.
                tally.missing = tally
                    .missing
                    .saturating_add(u32::try_from(records.len()).unwrap_or(u32::MAX));
                continue;
            };
            // Back already: copies of the message in each folder, beyond those just moved there.
            let everywhere = match self
                .graph
                .find_copies(&self.microsoft, mailbox, None, &message)
                .await
            {
                Ok(found) => found,
                Err(err) => {
                    tally.failure.get_or_insert(err);
                    return;
                }
            };
            let mut in_folder: HashMap<String, u32> = HashMap::new();
            for copy in &everywhere {
                if let Some(folder) = &copy.parent_folder_id {
                    *in_folder.entry(folder.clone()).or_default() += 1;
                }
            }
            for ((moved_message, folder), moved) in moved_into {
                if moved_message == &raw_id
                    && let Some(n) = in_folder.get_mut(folder)
                {
                    *n = n.saturating_sub(*moved);
                }
            }
            let mut to_find: Vec<&RemovedCopy> = Vec::new();
            for record in &records {
                let spare = record
                    .original_folder_id
                    .as_ref()
                    .and_then(|f| in_folder.get_mut(f))
                    .filter(|n| **n > 0);
                match spare {
                    Some(n) => {
                        *n -= 1;
                        tally.already_back = tally.already_back.saturating_add(1);
                        tally.back.push(record.item_id.clone());
                    }
                    None if record.removed_id.is_none() => to_find.push(record),
                    None => tally.missing = tally.missing.saturating_add(1),
                }
            }
            if to_find.is_empty() {
                continue;
            }
            let there = match self
                .graph
                .find_copies(&self.microsoft, mailbox, Some(removed_to), &message)
                .await
            {
                Ok(there) => there,
                Err(err) => {
                    tally.failure.get_or_insert(err);
                    return;
                }
            };
            // Copies of one message are alike: which one goes back to which folder does not
            // matter (a copy the user deleted before the retract may be the one that returns;
            // as many come back as the retract removed).
            let pairs = to_find.len().min(there.len());
            let moves: Vec<(String, String)> = there
                .iter()
                .take(pairs)
                .zip(&to_find)
                .map(|(copy, record)| (copy.id.clone(), destination(record)))
                .collect();
            let answers = self
                .graph
                .move_copies(&self.microsoft, mailbox, &moves)
                .await;
            let mut answered = 0;
            for (record, answer) in to_find.iter().zip(answers) {
                answered += 1;
                match answer {
                    Ok(Moved::Moved { .. }) => tally.back.push(record.item_id.clone()),
                    Ok(Moved::Gone) => tally.missing = tally.missing.saturating_add(1),
                    Err(err) => {
                        tally.failure.get_or_insert(err);
                    }
                }
            }
            tally.missing = tally
                .missing
                .saturating_add(u32::try_from(to_find.len() - answered).unwrap_or(u32::MAX));
        }
    }
}

/// The folder a copy goes back to.
fn destination(copy: &RemovedCopy) -> String {
    copy.original_folder_id
        .clone()
        .unwrap_or_else(|| FALLBACK_FOLDER.to_owned())
}

fn failed(found: u32, back: u32, err: &GraphError) -> TargetResult {
    result(
        TargetOutcome::Failed,
        found,
        back,
        Some(err.to_string()),
        err.code().map(str::to_owned),
    )
}

fn result(
    outcome: TargetOutcome,
    copies_found: u32,
    copies_restored: u32,
    detail: Option<String>,
    graph_code: Option<String>,
) -> TargetResult {
    TargetResult {
        outcome,
        copies_found,
        copies_deleted: copies_restored,
        was_read: false,
        detail,
        graph_code,
    }
}
