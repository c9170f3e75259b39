//! The retract engine: accepting a retract, workers that claim jobs through a database lease
//! and visit each mailbox (resolve it, find every copy, delete each in the requested mode),
//! every step recorded as an event before anyone can see it, and watches that follow a job.
//!
//! # Layout
//! - `dispatch`: [`Engine::dispatch`], the checks before a job exists and the job itself.
//! - `aliases`: the directory's answers for addresses Graph does not know directly (aliases),
//!   looked up once per job run and shared by its mailbox visits.
//! - `plan`: the targets a job starts with, checked against the delivery and eligibility.
//! - `tab`: the Retract tab, its rows kept (and their encoding) while nothing they show
//!   changed.
//! - [`Engine`] (here): the worker loop, several jobs at once (tenants not running here
//!   first), many mailboxes of each at once,
//!   the mailboxes a conversation step discovers scheduled as soon as it reveals them.
//! - `journal`: the one writer of a running job's events, in batches (group commit).
//! - `mailbox`: the work on one mailbox and how Graph's answers become outcomes.
//! - `restore`: the work on one mailbox of a RESTORE job: the removed copies put back.
//! - `supervisor`: panics caught — a job that panicked is failed, the loop restarted,
//!   both visible in [`EngineHealth`].
//! - `watcher`: [`Watcher`], stored then live events of a job, Heartbeats, deadlines.
//! - `feed`: [`EventHub`], one store reader per watched job in this process, its events
//!   broadcast to every local watcher (woken by this process's writes; a job another
//!   replica runs is read once per poll interval, not once per watcher).

mod aliases;
mod dispatch;
mod feed;
mod journal;
mod mailbox;
mod plan;
mod restore;
mod supervisor;
mod tab;
mod watcher;

pub use dispatch::{Dispatch, DispatchError, RestoreDispatch};
pub use feed::{EventHub, SharedEvent};
pub use plan::{PlanError, Refusal};
pub use supervisor::EngineHealth;
pub use tab::{RetractTab, TabRow, TabRows};
pub use watcher::{WatchEnd, WatchSettings, Watched, Watcher};

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt as _, stream::FuturesUnordered};
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    domain::{
        AUDIT_TARGETS_MAX, AuditAction, AuditDetails, AuditEntry, AuditOutcome, DepthSummary,
        EmailAddress, EventKind, JobFailure, JobId, JobKind, JobState, Phase, RetractJob, Target,
        TargetOutcome, TargetRecord, TargetResult, TargetWork, TenantId,
    },
    graph::{AdminMailboxes, GraphClient},
    store::{JobEnd, Store, StoreError},
    telemetry,
};

/// A job with this many mailboxes in flight or waiting writes no phase events (searching,
/// deleting, restoring): at scale a mailbox costs one event, its result.
const PHASES_BELOW: usize = 32;
/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How often an idle worker looks for work others created (its own are signalled).
    pub poll_interval: Duration,
    /// How long a claimed job stays this worker's without renewal.
    pub lease: Duration,
    /// Mailboxes of one job worked on at once (each mailbox itself is held to Graph's
    /// [`crate::graph::REQUESTS_PER_MAILBOX`]).
    pub mailboxes_in_flight: usize,
    /// Jobs this worker runs at once.
    pub jobs_in_flight: usize,
    /// How long a job waits, in all, for a mailbox that Graph throttles with a long
    /// `Retry-After` (parked): one whose wait would end later ends FAILED.
    pub parked_deadline: Duration,
    /// Runs a job may take before it ends FAILED (its runs kept stopping short).
    pub run_budget: u32,
    /// How long the answer "is this administrator a mailbox of the tenant?" is kept.
    pub admin_mailbox_ttl: Duration,
}

/// The retract engine of this process.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    /// `None` without an app registration: such a replica accepts no retract and runs none.
    graph: Option<GraphClient>,
    admins: Option<Arc<AdminMailboxes>>,
    settings: EngineSettings,
    hub: Arc<EventHub>,
    wake: Arc<Notify>,
    owner: String,
    health: Arc<EngineHealth>,
    tabs: tab::TabCache,
}

impl Engine {
    /// An engine working on `store` through `graph`.
    pub fn new(
        store: Store,
        graph: Option<GraphClient>,
        settings: EngineSettings,
        hub: Arc<EventHub>,
    ) -> Self {
        let admins = graph
            .clone()
            .map(|g| Arc::new(AdminMailboxes::new(g, settings.admin_mailbox_ttl)));
        Self {
            store,
            graph,
            admins,
            settings,
            hub,
            wake: Arc::new(Notify::new()),
            owner: format!("worker-{}", uuid::Uuid::new_v4()),
            health: Arc::default(),
            tabs: tab::TabCache::default(),
        }
    }

    /// Tells an idle worker that a job is waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Works on jobs until `stop`, up to [`EngineSettings::jobs_in_flight`] at once: a small
    /// job submitted after a huge one runs beside it, and a job of a tenant this replica runs
    /// nothing for goes before more jobs of a tenant it already runs. Without a Graph client
    /// (no app registration configured) this replica claims nothing: it could only fail the
    /// jobs that others can run.
    pub async fn run(self, stop: CancellationToken) {
        if self.graph.is_none() {
            tracing::warn!(
                "no Microsoft Graph app registration: this replica runs no retract jobs"
            );
            return;
        }
        let limit = self.settings.jobs_in_flight.max(1);
        // Each job is a task of its own, so that claiming (or one job's wait for the database)
        // never stops another job's progress.
        let mut running: JoinSet<()> = JoinSet::new();
        let mut jobs: HashMap<tokio::task::Id, (JobId, TenantId)> = HashMap::new();
        loop {
            while !stop.is_cancelled() && running.len() < limit {
                let mut busy: Vec<TenantId> = jobs.values().map(|(_, t)| t.clone()).collect();
                busy.sort();
                busy.dedup();
                let mine: Vec<JobId> = jobs.values().map(|(j, _)| j.clone()).collect();
                match self
                    .store
                    .claim_job(&self.owner, self.settings.lease, &busy, &mine)
                    .await
                {
                    Ok(Some((job, tenant))) => {
                        telemetry::metrics::lease_claimed();
                        let (engine, stop, id) = (self.clone(), stop.clone(), job.clone());
                        let task = running.spawn(async move { engine.run_job(job, &stop).await });
                        jobs.insert(task.id(), (id, tenant));
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot claim retract jobs");
                        break;
                    }
                }
            }
            if stop.is_cancelled() {
                // Each job in flight gives its lease back as it stops.
                while running.join_next().await.is_some() {}
                return;
            }
            tokio::select! {
                Some(ended) = running.join_next_with_id(), if !running.is_empty() => {
                    let id = match ended {
                        Ok((id, ())) => id,
                        Err(err) => {
                            // A panic outside the job's own supervision: its lease expires and
                            // the job resumes; the loop goes on, and health shows it.
                            tracing::error!(error = %err, "a retract job's task ended abnormally");
                            self.health.record_panic(&err.to_string());
                            err.id()
                        }
                    };
                    jobs.remove(&id);
                }
                () = stop.cancelled() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Runs one claimed job until it ends or stops here.
    async fn run_job(&self, job: JobId, stop: &CancellationToken) {
        let done_before = self.store.job_for_worker(&job).await.map(|j| j.counts.done);
        let outcome = self
            .process_supervised(&job, stop)
            .instrument(telemetry::traces::job_run_span(job.as_str()))
            .await;
        // A run that finished mailboxes is not a failing one: the budget counts runs that
        // stop short in a row.
        if let (Ok(before), Ok(after)) = (&done_before, self.store.job_for_worker(&job).await)
            && after.counts.done > *before
            && !after.state.is_final()
            && let Err(err) = self.store.reset_runs(&job, &self.owner).await
        {
            tracing::debug!(%job, error = %err, "cannot reset a job's run count");
        }
        if let Err(err) = &outcome {
            // The lease stays ours until it expires: a back-off before this or another
            // replica tries the job again, and newer jobs go first. The reason is kept for
            // the job's failure should its runs be used up.
            tracing::warn!(%job, error = %err, "retract job interrupted; it resumes when its lease expires");
            if let Err(err) = self
                .store
                .record_run_error(&job, &self.owner, &error_chain(err))
                .await
            {
                tracing::debug!(%job, error = %err, "cannot record why a job's run stopped");
            }
        }
        let finished = matches!(
            self.store.job_for_worker(&job).await,
            Ok(current) if current.state.is_final()
        );
        if !finished && stop.is_cancelled() {
            // Shutting down midway: give the job back so that another replica resumes it at
            // once rather than after the lease. A lost lease releases nothing.
            if let Err(err) = self.store.release_lease(&job, &self.owner).await {
                tracing::warn!(%job, error = %err, "cannot release a retract job's lease; it resumes when the lease expires");
            }
        }
    }

    /// Persists events in one transaction (only while this worker holds the lease), then
    /// lets watchers know.
    async fn emit_all(&self, job: &JobId, kinds: Vec<EventKind>) -> Result<(), StoreError> {
        let written = self.store.append_events(job, &self.owner, kinds).await?;
        for event in written.iter().flatten() {
            telemetry::metrics::event_written(&event.kind);
        }
        if let Some(last) = written.iter().flatten().map(|e| e.sequence).max() {
            self.hub.publish(job, last);
        }
        Ok(())
    }

    async fn process(&self, job_id: &JobId, stop: &CancellationToken) -> Result<(), StoreError> {
        let job = self.store.job_for_worker(job_id).await?;
        if job.state.is_final() {
            return Ok(());
        }
        // A job whose runs keep stopping short ends rather than looping on lease expiry.
        let (runs, last_error) = self.store.job_runs(job_id).await?;
        if runs > self.settings.run_budget && !job.cancel_requested {
            let failure = JobFailure {
                code: "INTERNAL".to_owned(),
                detail: format!(
                    "the job was started {} times and its runs kept stopping short; the last: {}",
                    runs - 1,
                    last_error
                        .as_deref()
                        .unwrap_or("the worker running it stopped")
                ),
            };
            return self
                .finish(
                    &job,
                    JobState::Failed,
                    failure.detail.clone(),
                    Some(failure),
                )
                .await;
        }
        let tenant = job.tenant_id.clone();
        let microsoft = match self.store.get_tenant(&tenant).await {
            Ok(t) => t.microsoft_tenant_id,
            // A job whose tenant is gone can only fail; retrying it forever helps nobody.
            Err(StoreError::NotFound { .. }) => None,
            Err(err) => return Err(err),
        };
        let (Some(graph), Some(microsoft)) = (self.graph.clone(), microsoft) else {
            let failure = JobFailure {
                code: "TENANT_NOT_LINKED".to_owned(),
                detail: "the tenant is not linked to Microsoft 365 (grant permissions first)"
                    .to_owned(),
            };
            return self
                .finish(
                    &job,
                    JobState::Failed,
                    failure.detail.clone(),
                    Some(failure),
                )
                .await;
        };

        // Work stops when the job is cancelled, the lease is lost, or the server stops; and
        // the lease task stops on every way out of this function.
        let halt = stop.child_token();
        let _halt_on_exit = halt.clone().drop_guard();
        // A job cancelled while queued must not touch a single mailbox.
        let cancelled = Arc::new(AtomicBool::new(job.cancel_requested));
        let guard = tokio::spawn(watch_job(
            self.store.clone(),
            job.id.clone(),
            self.owner.clone(),
            self.settings.clone(),
            halt.clone(),
            cancelled.clone(),
        ));
        let journal = journal::Journal::start(
            self.store.clone(),
            self.hub.clone(),
            job.id.clone(),
            self.owner.clone(),
        );
        let work = match &job.restores_job_id {
            None => Work::Retract(mailbox::Work {
                graph,
                store: self.store.clone(),
                tenant: tenant.clone(),
                microsoft,
                options: job.options.clone(),
                domains: self.store.all_domains(&tenant).await?,
                cancelled: cancelled.clone(),
                job_id: job.id.clone(),
                owner: self.owner.clone(),
                aliases: aliases::Aliases::default(),
            }),
            Some(retract) => Work::Restore(restore::Work {
                graph,
                store: self.store.clone(),
                microsoft,
                retract: retract.clone(),
                restore: job.id.clone(),
                mode: job.options.delete_mode,
                cancelled: cancelled.clone(),
            }),
        };
        // Rounds: the targets not finished yet (after a restart, the rest); a conversation
        // step adds targets, which the next round visits. A round that finishes nothing ends
        // the run (the job resumes at the next claim) rather than spinning.
        let mut previous: Option<Vec<Target>> = None;
        loop {
            let round = self.store.unfinished_targets(&job.id).await?;
            let pending: Vec<Target> = round.iter().map(|w| w.target.clone()).collect();
            if round.is_empty() || halt.is_cancelled() || previous.as_ref() == Some(&pending) {
                break;
            }
            previous = Some(pending);
            self.visit_round(&journal, &work, round, &halt, &cancelled)
                .await?;
        }
        // What is queued (progress nobody waited for) goes before the job's end.
        journal.close().await;
        let was_cancelled = cancelled.load(Ordering::Relaxed);
        // Halted (the server stopping, the lease lost) before we end it ourselves: visits may
        // have been dropped midway, so the job is not concluded here, cancelled or not.
        let halted = halt.is_cancelled();
        halt.cancel();
        guard.await.ok();
        if halted || (!was_cancelled && !self.store.unfinished_targets(&job.id).await?.is_empty()) {
            // Stopped or lost the lease midway: the next claim resumes the rest.
            return Ok(());
        }
        self.conclude(&job, was_cancelled).await
    }

    /// Visits `round`'s mailboxes, many at once, each recorded as it ends. The mailboxes a
    /// conversation step discovers join at once: work at hop h + 1 starts as soon as a
    /// mailbox at hop h reveals it, not after the whole level. Lower depths go first, so that
    /// a mailbox is usually reached by its lowest hop first; one reached lower while queued at
    /// a deeper depth is visited at the lower one only, and one reached lower while its visit
    /// is under way is not visited again (its result lands at the lower depth).
    ///
    /// A mailbox Graph throttles for longer than a request waits in place is parked: set
    /// aside without a slot while the rest goes on, visited again when its wait is over (at
    /// once when the job is cancelled: it ends CANCELLED), FAILED when that would be past
    /// [`EngineSettings::parked_deadline`]. The round ends only when nothing is parked.
    /// When `halt` fires (the server stops, the lease is lost), visits under way are dropped
    /// — as a crash would, which every visit survives — so the lease is given back at once.
    async fn visit_round(
        &self,
        journal: &journal::Journal,
        work: &Work,
        round: Vec<TargetWork>,
        halt: &CancellationToken,
        cancelled: &AtomicBool,
    ) -> Result<(), StoreError> {
        let limit = self.settings.mailboxes_in_flight.max(1);
        let mut queues: BTreeMap<u8, VecDeque<TargetWork>> = BTreeMap::new();
        for todo in round {
            queues.entry(todo.target.depth).or_default().push_back(todo);
        }
        let mut running: FuturesUnordered<InFlight<'_>> = FuturesUnordered::new();
        // Mailboxes being visited: one moved to a lower depth meanwhile is not visited again
        // (the visit under way finishes it, at its new depth).
        let mut in_flight: HashSet<EmailAddress> = HashSet::new();
        let mut parked: Vec<Waiting> = Vec::new();
        // Mailboxes reached at a lower depth while their visit was under way: should that
        // visit park, it is visited again from there.
        let mut lowered: HashMap<EmailAddress, TargetWork> = HashMap::new();
        // When each mailbox was first parked in this round.
        let mut first_parked: HashMap<EmailAddress, Instant> = HashMap::new();
        let mut failed = None;
        loop {
            let now = Instant::now();
            let cancelling = cancelled.load(Ordering::Relaxed);
            parked.retain(|w| {
                let due = cancelling || w.ready <= now;
                if due {
                    let todo = w.todo.clone();
                    queues.entry(todo.target.depth).or_default().push_back(todo);
                }
                !due
            });
            while running.len() < limit && failed.is_none() && !halt.is_cancelled() {
                let Some(todo) = queues.values_mut().find_map(VecDeque::pop_front) else {
                    break;
                };
                in_flight.insert(todo.target.mailbox.clone());
                let mailbox = todo.target.mailbox.clone();
                // At scale a mailbox's phases (searching, deleting) are not written at all:
                // its result follows within a few round trips, and a mailbox costs one event.
                let waiting = queues.values().map(VecDeque::len).sum::<usize>() + parked.len();
                let phases = running.len() + waiting + 1 < PHASES_BELOW;
                let visit = self.visit(journal, work, todo, phases, halt, cancelled);
                running.push(Box::pin(async move {
                    tokio::select! {
                        visited = visit => Some((mailbox, visited)),
                        () = halt.cancelled() => None,
                    }
                }));
            }
            if running.is_empty() && (failed.is_some() || parked.is_empty() || halt.is_cancelled())
            {
                break;
            }
            // A visit ends, or a parked wait is over (looked at every poll interval, for a
            // cancellation).
            let wake = parked
                .iter()
                .map(|w| w.ready)
                .min()
                .unwrap_or(now)
                .min(now + self.settings.poll_interval);
            let ended = tokio::select! {
                ended = running.next(), if !running.is_empty() => ended,
                () = tokio::time::sleep_until(wake.into()), if !parked.is_empty() => continue,
                () = halt.cancelled(), if running.is_empty() => break,
            };
            // `None`: dropped on halt; the next claim visits it again.
            let Some(Some((mailbox, outcome))) = ended else {
                continue;
            };
            in_flight.remove(&mailbox);
            let next = match outcome {
                Ok(Visited::Ended(next)) => {
                    lowered.remove(&mailbox);
                    next
                }
                Ok(Visited::Parked { todo, parked: p }) => {
                    let since = *first_parked
                        .entry(mailbox.clone())
                        .or_insert_with(Instant::now);
                    // Reached lower while its visit was under way: it waits at that depth.
                    let todo = lowered.remove(&mailbox).unwrap_or(todo);
                    let ready = Instant::now() + p.wait;
                    if ready > since + self.settings.parked_deadline {
                        let mut result = p.result;
                        result.detail = Some(format!(
                            "{} (Microsoft asked to wait {} s, past the job's parked deadline of {} s)",
                            result.detail.unwrap_or_default(),
                            p.wait.as_secs(),
                            self.settings.parked_deadline.as_secs()
                        ));
                        let done = EventKind::Recipient {
                            target: todo.target.clone(),
                            phase: Phase::Done,
                            result: Some(result),
                        };
                        // Written as one more thing in flight, never awaited here: a visit
                        // waiting to be polled may hold what the write needs (the database
                        // connection, the job's row).
                        let mailbox = todo.target.mailbox.clone();
                        in_flight.insert(mailbox.clone());
                        running.push(Box::pin(async move {
                            let written = journal.write(done).await;
                            Some((mailbox, written.map(|_| Visited::Ended(Vec::new()))))
                        }));
                    } else {
                        tracing::info!(
                            wait_s = p.wait.as_secs(),
                            depth = todo.target.depth,
                            "Microsoft throttles a mailbox for long; parked until then"
                        );
                        parked.push(Waiting { todo, ready });
                    }
                    p.next
                }
                // The others in flight finish (and are recorded); nothing new starts.
                Err(err) => {
                    failed.get_or_insert(err);
                    Vec::new()
                }
            };
            for todo in next {
                for queue in queues.values_mut() {
                    queue.retain(|q| q.target.mailbox != todo.target.mailbox);
                }
                // Parked at a deeper depth: waits on at the lower one.
                if let Some(w) = parked
                    .iter_mut()
                    .find(|w| w.todo.target.mailbox == todo.target.mailbox)
                {
                    w.todo = todo;
                    continue;
                }
                if in_flight.contains(&todo.target.mailbox) {
                    lowered.insert(todo.target.mailbox.clone(), todo);
                } else {
                    queues.entry(todo.target.depth).or_default().push_back(todo);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Visits one mailbox and records how it ended; answers the targets it discovered, or
    /// that Graph throttles it for long (nothing recorded then).
    async fn visit(
        &self,
        journal: &journal::Journal,
        work: &Work,
        todo: TargetWork,
        phases: bool,
        halt: &CancellationToken,
        cancelled: &AtomicBool,
    ) -> Result<Visited, StoreError> {
        let target = todo.target.clone();
        if cancelled.load(Ordering::Relaxed) {
            let result = TargetResult {
                outcome: TargetOutcome::Cancelled,
                copies_found: 0,
                copies_deleted: 0,
                was_read: false,
                detail: Some("the job was cancelled".to_owned()),
                graph_code: None,
            };
            journal
                .write(EventKind::Recipient {
                    target,
                    phase: Phase::Done,
                    result: Some(result),
                })
                .await?;
            return Ok(Visited::Ended(Vec::new()));
        }
        if halt.is_cancelled() {
            return Ok(Visited::Ended(Vec::new()));
        }
        let log = journal::VisitLog::new(journal, target.clone(), phases);
        let visited = work.run(&todo, &log).await;
        let visit = match visited {
            Ok(visit) => visit,
            Err(mailbox::Halt::Store(err)) => return Err(err),
            Err(mailbox::Halt::Parked(parked)) => return Ok(Visited::Parked { todo, parked }),
        };
        if let Some(step) = visit.step {
            journal.write(EventKind::Conversation { step }).await?;
        }
        journal
            .write(EventKind::Recipient {
                target,
                phase: Phase::Done,
                result: Some(visit.result),
            })
            .await?;
        Ok(Visited::Ended(visit.next))
    }

    /// Ends a job whose targets are all finished (or that was cancelled).
    async fn conclude(&self, job: &RetractJob, was_cancelled: bool) -> Result<(), StoreError> {
        let counts = self.store.job_for_worker(&job.id).await?.counts;
        let (state, detail) = if was_cancelled {
            (
                JobState::Cancelled,
                format!(
                    "cancelled after {} of {} mailboxes",
                    counts.done - counts.cancelled,
                    counts.targets
                ),
            )
        } else if counts.failed > 0 {
            (
                JobState::CompletedWithErrors,
                format!("{} of {} mailboxes failed", counts.failed, counts.targets),
            )
        } else {
            let did = match job.kind {
                JobKind::Retract => "deleted",
                JobKind::Restore => "restored",
            };
            (
                JobState::Succeeded,
                format!(
                    "{} mailboxes done, {} copies {did}",
                    counts.done, counts.copies_deleted
                ),
            )
        };
        self.finish(job, state, detail, None).await
    }

    async fn finish(
        &self,
        job: &RetractJob,
        state: JobState,
        detail: String,
        failure: Option<JobFailure>,
    ) -> Result<(), StoreError> {
        let last_word = match (&failure, state) {
            (Some(failure), _) => Some((TargetOutcome::Failed, failure.detail.clone())),
            (None, JobState::Cancelled) => {
                Some((TargetOutcome::Cancelled, "the job was cancelled".to_owned()))
            }
            _ => None,
        };
        if let Some((outcome, detail)) = last_word {
            // Every mailbox gets its final update, also when the job as a whole fails or is
            // cancelled before reaching it.
            // One transaction for them all, not one per mailbox (a job of 10,000).
            let last_words = self
                .store
                .unfinished_targets(&job.id)
                .await?
                .into_iter()
                .map(|todo| EventKind::Recipient {
                    target: todo.target,
                    phase: Phase::Done,
                    result: Some(TargetResult {
                        outcome,
                        copies_found: 0,
                        copies_deleted: 0,
                        was_read: false,
                        detail: Some(detail.clone()),
                        graph_code: None,
                    }),
                })
                .collect();
            self.emit_all(&job.id, last_words).await?;
        }
        let targets = self.store.job_targets(&job.id).await?;
        let depths = DepthSummary::of(&targets);
        let target_count = u32::try_from(targets.len()).unwrap_or(u32::MAX);
        let listed: Vec<TargetRecord> = targets.into_iter().take(AUDIT_TARGETS_MAX).collect();
        let tenant = job.tenant_id.clone();
        let kind = job.kind;
        let (job_id, requested_by, message, correlation_id) = (
            job.id.clone(),
            job.requested_by.clone(),
            job.options.message_id.clone(),
            job.correlation_id.clone(),
        );
        let end = JobEnd {
            state,
            detail: detail.clone(),
            failure,
            depths: depths.clone(),
        };
        let event = self
            .store
            .finish_job(&job.id, &self.owner, end, move |counts| AuditEntry {
                tenant_id: tenant,
                actor: requested_by,
                action: match (kind, state) {
                    (JobKind::Restore, _) => AuditAction::RestoreFinished,
                    (JobKind::Retract, JobState::Cancelled) => AuditAction::RetractCancelled,
                    (JobKind::Retract, _) => AuditAction::RetractFinished,
                },
                target: job_id.to_string(),
                outcome: match state {
                    JobState::Succeeded => AuditOutcome::Succeeded,
                    JobState::CompletedWithErrors => AuditOutcome::PartiallySucceeded,
                    _ => AuditOutcome::Failed,
                },
                // The finish belongs to the call that dispatched the job.
                correlation_id,
                details: AuditDetails::RetractFinished {
                    job_id,
                    internet_message_id: message,
                    state,
                    detail,
                    counts: *counts,
                    depths,
                    targets: listed,
                    target_count,
                },
            })
            .await?;
        self.hub.publish(&job.id, event.sequence);
        Ok(())
    }
}

/// An error with its causes, for a job's record of why a run stopped.
fn error_chain(err: &StoreError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How a visit of one mailbox ended.
enum Visited {
    /// Recorded; with the targets its conversation step discovered.
    Ended(Vec<TargetWork>),
    /// Graph throttles the mailbox for long: nothing recorded, to be visited again.
    Parked {
        todo: TargetWork,
        parked: mailbox::Parked,
    },
}

/// A visit under way (or a parked mailbox's final write): its mailbox and how it ended;
/// `None` when dropped because the run halted.
type InFlight<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Option<(EmailAddress, Result<Visited, StoreError>)>>
            + Send
            + 'a,
    >,
>;

/// A parked mailbox and when its wait is over.
struct Waiting {
    todo: TargetWork,
    ready: Instant,
}

/// The work of one job on each of its mailboxes.
enum Work {
    /// Removing copies (and following the conversation).
    Retract(mailbox::Work),
    /// Putting back what a retract removed.
    Restore(restore::Work),
}

impl Work {
    async fn run(
        &self,
        todo: &TargetWork,
        log: &journal::VisitLog<'_>,
    ) -> Result<mailbox::Visit, mailbox::Halt> {
        match self {
            Self::Retract(work) => work.run(todo, log).await,
            Self::Restore(work) => Ok(mailbox::Visit {
                result: work.run(&todo.target, |phase| log.phase(phase)).await?,
                step: None,
                next: Vec::new(),
            }),
        }
    }
}

/// While a job runs: renews its lease and notices cancellation; cancels `halt` when the lease
/// is lost.
async fn watch_job(
    store: Store,
    job: JobId,
    owner: String,
    settings: EngineSettings,
    halt: CancellationToken,
    cancelled: Arc<AtomicBool>,
) {
    let renew_every = settings.lease / 3;
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = halt.cancelled() => return,
            () = tokio::time::sleep(settings.poll_interval.min(renew_every)) => {}
        }
        if let Ok(current) = store.job_for_worker(&job).await
            && current.cancel_requested
        {
            cancelled.store(true, Ordering::Relaxed);
        }
        if renewed.elapsed() >= renew_every {
            match store.renew_lease(&job, &owner, settings.lease).await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    telemetry::metrics::lease_lost();
                    tracing::warn!(%job, "lost the lease of a retract job; stopping work on it");
                    halt.cancel();
                    return;
                }
                Err(err) => {
                    tracing::warn!(%job, error = %err, "cannot renew a retract job's lease");
                }
            }
        }
    }
}
