//! The one writer of a running job's events on this replica. Every mailbox in flight hands
//! its events to the journal, which writes whatever has queued up meanwhile in one
//! transaction (a group commit): the job's row is locked once per batch, not once per event,
//! so thousands of mailboxes in flight cost a few transactions a second instead of thousands,
//! and no two writers of one job ever wait on each other's row lock.
//!
//! Events stay durable before anyone sees them (watchers are told after the commit), gapless,
//! in the order they were handed in, and fenced by the lease. A result is written before its
//! visit goes on ([`Journal::write`] waits for the commit); a phase (searching, deleting, …)
//! is progress only and is not waited for ([`Journal::progress`]). At scale a mailbox costs
//! one event: with many mailboxes in flight or waiting the engine reports no phases, and a
//! batch of [`COALESCE_AT`] events or more drops each phase superseded in the same batch by a
//! later event of its mailbox.
//!
//! What a mailbox's removal needs recorded goes the same way ([`Journal::record`]): the copies
//! about to be removed (committed before Graph is asked), where a move put them, and that a
//! mailbox answered (its recorded problem cleared) — in the batch's transaction, so a mailbox
//! costs the job one share of a transaction, not three of its own.

use std::{collections::HashSet, sync::Arc};

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::EventHub;
use crate::{
    domain::{EventKind, JobEvent, JobId, Phase, Target},
    store::{JobWrite, Store, StoreError},
};

/// Most events written in one transaction.
pub(super) const MAX_BATCH: usize = 512;

/// A batch this large drops the phases it supersedes.
pub(super) const COALESCE_AT: usize = 32;

type Reply = oneshot::Sender<Result<Option<JobEvent>, StoreError>>;

struct Entry {
    write: JobWrite,
    /// `None` for progress nobody waits for.
    reply: Option<Reply>,
}

/// The event writer of one job run. Dropped without [`Journal::close`] (the run failed or
/// panicked) it stops at once: what it still held is progress of an unfinished run, and
/// must not land after whatever ends the job next (a failure's final updates, another run).
pub(super) struct Journal {
    entries: mpsc::UnboundedSender<Entry>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
    }
}

impl Journal {
    /// Starts the writer of `job`'s events, as `owner` (the lease holder).
    pub(super) fn start(store: Store, hub: Arc<EventHub>, job: JobId, owner: String) -> Self {
        let (entries, queue) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_batches(store, hub, job, owner, queue));
        Self {
            entries,
            writer: Some(writer),
        }
    }

    /// Writes `kind` and waits until it is committed: the event, or `None` for a result of a
    /// target finished before (a redo). `LeaseLost` when this worker no longer holds the job.
    pub(super) async fn write(&self, kind: EventKind) -> Result<Option<JobEvent>, StoreError> {
        self.commit(JobWrite::Event(kind)).await
    }

    /// Writes what removing copies needs recorded ([`JobWrite::Removing`],
    /// [`JobWrite::Removed`]) and waits until it is committed.
    pub(super) async fn record(&self, write: JobWrite) -> Result<(), StoreError> {
        self.commit(write).await.map(|_| ())
    }

    async fn commit(&self, write: JobWrite) -> Result<Option<JobEvent>, StoreError> {
        let (reply, written) = oneshot::channel();
        self.entries
            .send(Entry {
                write,
                reply: Some(reply),
            })
            .map_err(|_| StoreError::Corrupt("the job's event writer has stopped".to_owned()))?;
        written
            .await
            .map_err(|_| StoreError::Corrupt("the job's event writer has stopped".to_owned()))?
    }

    /// Hands over progress (a phase) without waiting; at scale it may be superseded.
    pub(super) fn progress(&self, kind: EventKind) {
        self.note(JobWrite::Event(kind));
    }

    /// Hands over a write nobody waits for (a phase, [`JobWrite::Reachable`]).
    pub(super) fn note(&self, write: JobWrite) {
        // A writer that stopped has failed the job's run already; what is noted is not needed.
        let _ = self.entries.send(Entry { write, reply: None });
    }

    /// Writes what is queued and stops the writer.
    pub(super) async fn close(mut self) {
        let writer = self.writer.take();
        // Closing the channel lets the writer end once it has written what is queued.
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.entries, closed));
        if let Some(writer) = writer
            && let Err(err) = writer.await
        {
            tracing::error!(error = %err, "a retract job's event writer ended abnormally");
        }
    }
}

/// What one mailbox's visit hands the journal: its phases (when the job reports them) and
/// what its removals need recorded.
pub(super) struct VisitLog<'a> {
    journal: &'a Journal,
    target: Target,
    phases: bool,
}

impl<'a> VisitLog<'a> {
    /// The log of `target`'s visit; `phases`: whether its phases are reported.
    pub(super) fn new(journal: &'a Journal, target: Target, phases: bool) -> Self {
        Self {
            journal,
            target,
            phases,
        }
    }

    /// The visit is in `phase` now (progress, not waited for).
    pub(super) fn phase(&self, phase: Phase) {
        if self.phases {
            self.journal.progress(EventKind::Recipient {
                target: self.target.clone(),
                phase,
                result: None,
            });
        }
    }

    /// Records `write` and waits until it is committed (see [`Journal::record`]).
    pub(super) async fn record(&self, write: JobWrite) -> Result<(), StoreError> {
        self.journal.record(write).await
    }

    /// Hands over `write` without waiting (see [`Journal::note`]).
    pub(super) fn note(&self, write: JobWrite) {
        self.journal.note(write);
    }
}

async fn write_batches(
    store: Store,
    hub: Arc<EventHub>,
    job: JobId,
    owner: String,
    mut queue: mpsc::UnboundedReceiver<Entry>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() >= COALESCE_AT {
            coalesce(&mut batch);
        }
        let writes: Vec<JobWrite> = batch.iter().map(|e| e.write.clone()).collect();
        match store.write_journal(&job, &owner, writes).await {
            Ok(written) => {
                for event in written.iter().flatten() {
                    crate::telemetry::metrics::event_written(&event.kind);
                }
                if let Some(last) = written.iter().flatten().map(|e| e.sequence).max() {
                    hub.publish(&job, last);
                }
                for (entry, event) in batch.drain(..).zip(written) {
                    if let Some(reply) = entry.reply {
                        let _ = reply.send(Ok(event));
                    }
                }
            }
            // The batch wrote nothing (one transaction): each write on its own, so that each
            // waiter learns its own fate — until the lease is found lost or the database gone,
            // which the rest shares (not waited out once per event).
            Err(_) => {
                let mut shared: Option<fn(&JobId) -> StoreError> = None;
                for entry in batch.drain(..) {
                    let outcome = match shared {
                        Some(error) => Err(error(&job)),
                        None => store
                            .write_journal(&job, &owner, vec![entry.write])
                            .await
                            .map(|mut written| written.pop().flatten()),
                    };
                    match &outcome {
                        Ok(Some(event)) => {
                            crate::telemetry::metrics::event_written(&event.kind);
                            hub.publish(&job, event.sequence);
                        }
                        Err(StoreError::LeaseLost(_)) => shared = Some(lease_lost),
                        Err(StoreError::Unavailable(_)) => shared = Some(unavailable),
                        _ => {}
                    }
                    if let Some(reply) = entry.reply {
                        let _ = reply.send(outcome);
                    }
                }
            }
        }
    }
}

fn lease_lost(job: &JobId) -> StoreError {
    StoreError::LeaseLost(job.to_string())
}

fn unavailable(_: &JobId) -> StoreError {
    StoreError::Unavailable(sea_orm::DbErr::Custom(
        "an earlier write of the same batch found the database unavailable".to_owned(),
    ))
}

/// Drops each phase that a later event of the same mailbox in `batch` supersedes (its result,
/// or its next phase). Nobody waits for a phase, and the order of what stays is kept.
fn coalesce(batch: &mut Vec<Entry>) {
    let mut later: HashSet<String> = HashSet::new();
    let mut keep = vec![true; batch.len()];
    for (i, entry) in batch.iter().enumerate().rev() {
        if let JobWrite::Event(EventKind::Recipient { target, result, .. }) = &entry.write {
            let mailbox = target.mailbox.to_string();
            if result.is_none() && entry.reply.is_none() && later.contains(&mailbox) {
                keep[i] = false;
            }
            later.insert(mailbox);
        }
    }
    let mut keep = keep.into_iter();
    batch.retain(|_| keep.next().unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TargetOutcome, TargetResult};

    fn phase(mailbox: &str, phase: Phase) -> Entry {
        Entry {
            write: JobWrite::Event(EventKind::Recipient {
                target: Target {
                    mailbox: crate::domain::EmailAddress::parse(mailbox).unwrap(),
                    depth: 0,
                },
                phase,
                result: None,
            }),
            reply: None,
        }
    }

    fn done(mailbox: &str) -> Entry {
        let mut entry = phase(mailbox, Phase::Done);
        if let JobWrite::Event(EventKind::Recipient { result, .. }) = &mut entry.write {
            *result = Some(TargetResult {
                outcome: TargetOutcome::Deleted,
                copies_found: 1,
                copies_deleted: 1,
                was_read: false,
                detail: None,
                graph_code: None,
            });
        }
        entry
    }

    fn described(batch: &[Entry]) -> Vec<String> {
        batch
            .iter()
            .map(|e| match &e.write {
                JobWrite::Event(EventKind::Recipient { target, phase, .. }) => {
                    format!("{} {phase:?}", target.mailbox)
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_phase_superseded_in_its_batch_is_dropped_and_the_rest_keeps_its_order() {
        let mut batch = vec![
            phase("a@contoso.com", Phase::Searching),
            phase("b@contoso.com", Phase::Searching),
            phase("a@contoso.com", Phase::Deleting),
            done("a@contoso.com"),
            phase("c@contoso.com", Phase::Searching),
        ];
        coalesce(&mut batch);
        assert_eq!(
            described(&batch),
            [
                "b@contoso.com Searching",
                "a@contoso.com Done",
                "c@contoso.com Searching"
            ]
        );
    }
}
