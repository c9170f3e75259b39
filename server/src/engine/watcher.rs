//! Following a job: its stored events after a sequence number, then live ones as they are
//! written, Heartbeats while nothing happens, until its JobFinished — or until the caller's
//! deadline or the server's shutdown ends the watch early (the caller watches again from the
//! last sequence it saw). A watcher that leaves does not affect the job.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::EventHub;
use crate::{
    domain::{EventKind, JobEvent, RetractJob},
    store::{Store, StoreError},
};

/// Events read from the store per query.
const READ_BATCH: u64 = 200;

/// How watches behave.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// A Heartbeat is sent after this long without events.
    pub heartbeat: Duration,
    /// How often a watcher looks for events written by other replicas.
    pub poll: Duration,
}

/// What a watch yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// The job's next event.
    Event(Box<JobEvent>),
    /// Nothing happened for a while; `sequence` is the last event sent.
    Heartbeat {
        /// The sequence of the latest event the watcher has.
        sequence: i64,
    },
}

/// Why a watch ended before the job's JobFinished.
#[derive(Debug, thiserror::Error)]
pub enum WatchEnd {
    /// The caller's deadline passed.
    #[error("the caller's deadline passed; watch again from the last sequence")]
    DeadlineExceeded,
    /// The server is shutting down.
    #[error("the server is shutting down; watch again from the last sequence")]
    ServerStopping,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts watches of jobs.
#[derive(Clone)]
pub struct Watcher {
    store: Store,
    hub: Arc<EventHub>,
    settings: WatchSettings,
    stopping: CancellationToken,
}

impl Watcher {
    /// Watches read `store`, woken by `hub`, and end when `stopping` is cancelled.
    pub fn new(
        store: Store,
        hub: Arc<EventHub>,
        settings: WatchSettings,
        stopping: CancellationToken,
    ) -> Self {
        Self {
            store,
            hub,
            settings,
            stopping,
        }
    }

    /// The events of `job` after sequence `after`, ending after JobFinished (or at once for a
    /// finished job with nothing after `after`), at `deadline`, or at shutdown.
    pub fn follow(
        &self,
        job: &RetractJob,
        after: i64,
        deadline: Option<tokio::time::Instant>,
    ) -> mpsc::Receiver<Result<Watched, WatchEnd>> {
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        let job_id = job.id.clone();
        tokio::spawn(async move {
            let _open = crate::telemetry::metrics::WatcherOpen::new();
            if let Err(end) = this.run(&job_id, after, deadline, &tx).await {
                let _ = tx.send(Err(end)).await;
            }
        });
        rx
    }

    async fn run(
        &self,
        job: &crate::domain::JobId,
        after: i64,
        deadline: Option<tokio::time::Instant>,
        tx: &mpsc::Sender<Result<Watched, WatchEnd>>,
    ) -> Result<(), WatchEnd> {
        let mut live = self.hub.subscribe(job);
        let mut last = after;
        let mut quiet_since = tokio::time::Instant::now();
        let until_deadline = deadline.unwrap_or_else(far_future);
        loop {
            let events = self.store.events_after(job, last, READ_BATCH).await?;
            let read = events.len();
            for event in events {
                let sequence = event.sequence;
                let finished = matches!(event.kind, EventKind::JobFinished { .. });
                if tx.send(Ok(Watched::Event(Box::new(event)))).await.is_err() {
                    return Ok(());
                }
                last = sequence;
                if finished {
                    return Ok(());
                }
            }
            if read > 0 {
                quiet_since = tokio::time::Instant::now();
                continue;
            }
            // A finished job has nothing more after its last event (or was purged).
            let current = self.store.job_for_worker(job).await?;
            if current.state.is_final() && last >= current.last_sequence {
                return Ok(());
            }
            tokio::select! {
                _ = live.changed() => {}
                () = tokio::time::sleep(self.settings.poll) => {}
                () = tokio::time::sleep_until(quiet_since + self.settings.heartbeat) => {
                    if tx.send(Ok(Watched::Heartbeat { sequence: last })).await.is_err() {
                        return Ok(());
                    }
                    quiet_since = tokio::time::Instant::now();
                }
                () = tokio::time::sleep_until(until_deadline) => return Err(WatchEnd::DeadlineExceeded),
                () = self.stopping.cancelled() => return Err(WatchEnd::ServerStopping),
            }
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}
