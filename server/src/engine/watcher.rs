//! Following a job: its stored events after a sequence number, then live ones as they are
//! written, Heartbeats while nothing happens, until its JobFinished — or until the caller's
//! deadline or the server's shutdown ends the watch early (the caller watches again from the
//! last sequence it saw). A watcher that leaves does not affect the job.

use std::{sync::Arc, time::Duration};

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    EventHub,
    feed::{Feed, READ_BATCH, RECENT, SharedEvent},
};
use crate::{
    domain::{EventKind, JobId, RetractJob},
    store::{Store, StoreError},
};

/// Live events a watcher sends in one go before it looks at its deadline and the shutdown.
const DRAIN: usize = 64;

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
    /// The job's next event (shared with the job's other watchers here).
    Event(Arc<SharedEvent>),
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
        // Were this the job's first watcher here, its feed would hold the job's latest events
        // from here on, for watchers that join later.
        let start = after.max(job.last_sequence - RECENT as i64).max(0);
        tokio::spawn(async move {
            let _open = crate::telemetry::metrics::WatcherOpen::new();
            if let Err(end) = this.run(&job_id, after, start, deadline, &tx).await {
                let _ = tx.send(Err(end)).await;
            }
        });
        rx
    }

    async fn run(
        &self,
        job: &JobId,
        after: i64,
        start: i64,
        deadline: Option<tokio::time::Instant>,
        tx: &mpsc::Sender<Result<Watched, WatchEnd>>,
    ) -> Result<(), WatchEnd> {
        // Listening first: what is written while the store is read below arrives live too
        // (and is skipped as already sent).
        let (mut feed, mut live) = self.hub.feed(job, start, &self.store, self.settings.poll);
        let mut ended = feed.ended();
        let mut last = after;
        let mut quiet_since = tokio::time::Instant::now();
        let until_deadline = tokio::time::sleep_until(deadline.unwrap_or_else(far_future));
        tokio::pin!(until_deadline);
        let stopping = self.stopping.cancelled();
        tokio::pin!(stopping);
        loop {
            // What this watcher has not seen (its replay, a gap, or what it fell behind the
            // broadcast by): from the feed's memory where it holds it, else from the store.
            loop {
                // A long replay still ends at the caller's deadline or the server's shutdown.
                if self.stopping.is_cancelled() {
                    return Err(WatchEnd::ServerStopping);
                }
                if tokio::time::Instant::now() >= until_deadline.deadline() {
                    return Err(WatchEnd::DeadlineExceeded);
                }
                let (events, more) = self.missed(job, &feed, last).await?;
                if !events.is_empty() {
                    quiet_since = tokio::time::Instant::now();
                }
                for event in events {
                    match self.send(tx, event, &mut last).await {
                        Sent::More => {}
                        Sent::Done => return Ok(()),
                    }
                }
                if !more {
                    break;
                }
            }
            if *ended.borrow() {
                // The feed ended: the job finished (all of it is sent once the store has
                // nothing more), or its reader stopped (nobody else watched, the store failed)
                // — then a new feed.
                let current = self.store.job_for_worker(job).await?;
                if current.state.is_final() && last >= current.last_sequence {
                    return Ok(());
                }
                (feed, live) = self.hub.feed(job, last, &self.store, self.settings.poll);
                ended = feed.ended();
                continue;
            }
            // Live: every local watcher of the job shares its one reader. The timers live
            // across events (an event only moves the heartbeat's due time, checked when the
            // timer fires), so that an event costs no timer of its own.
            let heartbeat = tokio::time::sleep_until(quiet_since + self.settings.heartbeat);
            tokio::pin!(heartbeat);
            'live: loop {
                tokio::select! {
                    received = live.recv() => {
                        // What the broadcast holds already, in one go — up to a bound, so that
                        // the deadline and shutdown are looked at between bursts. Fallen
                        // behind (lagged), or a gap: memory or the store has it.
                        let Ok(mut event) = received else { break 'live };
                        let mut sent = 0;
                        loop {
                            let sequence = event.event().sequence;
                            if sequence > last + 1 {
                                break 'live;
                            }
                            if sequence == last + 1 {
                                quiet_since = tokio::time::Instant::now();
                                match self.send(tx, event, &mut last).await {
                                    Sent::More => {}
                                    Sent::Done => return Ok(()),
                                }
                                sent += 1;
                            }
                            // Only taken from the broadcast when it will be sent.
                            if sent == DRAIN {
                                break;
                            }
                            event = match live.try_recv() {
                                Ok(next) => next,
                                Err(broadcast::error::TryRecvError::Empty) => break,
                                Err(_) => break 'live,
                            };
                        }
                    }
                    _ = ended.changed() => break,
                    () = &mut heartbeat => {
                        let due = quiet_since + self.settings.heartbeat;
                        if tokio::time::Instant::now() >= due {
                            if tx.send(Ok(Watched::Heartbeat { sequence: last })).await.is_err() {
                                return Ok(());
                            }
                            quiet_since = tokio::time::Instant::now();
                        }
                        heartbeat.as_mut().reset(quiet_since + self.settings.heartbeat);
                    }
                    () = &mut until_deadline => return Err(WatchEnd::DeadlineExceeded),
                    () = &mut stopping => return Err(WatchEnd::ServerStopping),
                }
            }
        }
    }

    /// The next events after `last`, and whether more may follow at once (else the rest
    /// arrives live): from `feed`'s memory, or a batch from the store.
    async fn missed(
        &self,
        job: &JobId,
        feed: &Feed,
        last: i64,
    ) -> Result<(Vec<Arc<SharedEvent>>, bool), StoreError> {
        let batch = READ_BATCH as usize;
        if let Some(events) = feed.recent_after(last, batch) {
            let more = events.len() == batch;
            return Ok((events, more));
        }
        let events = self.store.events_after(job, last, READ_BATCH).await?;
        let more = events.len() == batch;
        let shared = events
            .into_iter()
            .map(|e| Arc::new(SharedEvent::new(e)))
            .collect();
        Ok((shared, more))
    }

    /// Sends `event` (the next after `last`) to the watcher.
    async fn send(
        &self,
        tx: &mpsc::Sender<Result<Watched, WatchEnd>>,
        event: Arc<SharedEvent>,
        last: &mut i64,
    ) -> Sent {
        let sequence = event.event().sequence;
        let finished = matches!(event.event().kind, EventKind::JobFinished { .. });
        if tx.send(Ok(Watched::Event(event))).await.is_err() {
            return Sent::Done;
        }
        *last = sequence;
        if finished { Sent::Done } else { Sent::More }
    }
}

/// Whether a watch goes on after an event was sent.
enum Sent {
    More,
    /// The job finished, or the watcher left.
    Done,
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}
