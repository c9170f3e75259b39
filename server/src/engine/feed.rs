//! Live events of a job for every watcher in this process, read from the store once.
//!
//! A job watched here has one [`Feed`]: a reader task that reads the job's new events from
//! the store once — woken by this process's writers ([`EventHub::publish`]), or every poll
//! interval for a job another replica runs — and hands each to every local watcher (an
//! in-process broadcast). A watcher replays the stored events it has not seen by itself, then
//! only listens: a hundred watchers of one job cost one store reader, not a hundred pollers.
//! A watcher that falls behind the broadcast (or sees a gap) catches up from the store, so
//! every watcher still gets every event, in order, once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{broadcast, watch};

use crate::{
    domain::{EventKind, JobEvent, JobId},
    store::Store,
};

/// Events a watcher may fall behind the broadcast before it reads the store instead.
const BROADCAST_CAPACITY: usize = 4_096;

/// Events read from the store per query.
pub(super) const READ_BATCH: u64 = 500;

/// The live events of one job in this process.
pub(super) struct Feed {
    /// Every event the reader read, in order.
    events: broadcast::Sender<Arc<JobEvent>>,
    /// Set when the reader ended (the job finished, nobody watches, or the store failed).
    ended: watch::Sender<bool>,
}

impl Feed {
    /// Changes to `true` when the reader ends.
    pub(super) fn ended(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }
}

/// Wakes this process's feeds when a job has new events, and keeps one feed per watched job.
#[derive(Default)]
pub struct EventHub {
    jobs: Mutex<HashMap<JobId, Watched>>,
}

/// A watched job: its feed and the wake-up of its reader.
struct Watched {
    feed: Arc<Feed>,
    wake: watch::Sender<i64>,
}

impl EventHub {
    /// Announces that `job` has events up to `sequence` (written by this process).
    pub fn publish(&self, job: &JobId, sequence: i64) {
        let jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(watched) = jobs.get(job) {
            watched.wake.send_replace(sequence);
        }
    }

    /// The feed of `job`, started (its reader reading `store`, at least every `poll`) if
    /// nobody here watches it yet, and a listener to what it broadcasts from now on.
    pub(super) fn feed(
        self: &Arc<Self>,
        job: &JobId,
        store: &Store,
        poll: Duration,
    ) -> (Arc<Feed>, broadcast::Receiver<Arc<JobEvent>>) {
        let mut jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(watched) = jobs.get(job)
            && !*watched.feed.ended.borrow()
        {
            return (watched.feed.clone(), watched.feed.events.subscribe());
        }
        let feed = Arc::new(Feed {
            events: broadcast::channel(BROADCAST_CAPACITY).0,
            ended: watch::channel(false).0,
        });
        // Listening before the reader starts, so that it never finds nobody there.
        let listener = feed.events.subscribe();
        let (wake, woken) = watch::channel(0);
        jobs.insert(
            job.clone(),
            Watched {
                feed: feed.clone(),
                wake,
            },
        );
        tokio::spawn(read(
            self.clone(),
            job.clone(),
            feed.clone(),
            store.clone(),
            woken,
            poll,
        ));
        (feed, listener)
    }

    fn forget(&self, job: &JobId, feed: &Arc<Feed>) {
        let mut jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if jobs.get(job).is_some_and(|w| Arc::ptr_eq(&w.feed, feed)) {
            jobs.remove(job);
        }
    }
}

/// The one reader of a watched job: its new events, broadcast, until it finishes or nobody
/// listens.
async fn read(
    hub: Arc<EventHub>,
    job: JobId,
    feed: Arc<Feed>,
    store: Store,
    mut woken: watch::Receiver<i64>,
    poll: Duration,
) {
    let end = |why: &str| {
        tracing::trace!(%job, why, "a job's feed ends");
        hub.forget(&job, &feed);
        feed.ended.send_replace(true);
    };
    // Only what is written from now on: each watcher replays the past itself.
    let mut last = match store.job_for_worker(&job).await {
        Ok(current) => {
            if current.state.is_final() {
                return end("the job had finished");
            }
            current.last_sequence
        }
        Err(_) => return end("the store failed"),
    };
    loop {
        let events = match store.events_after(&job, last, READ_BATCH).await {
            Ok(events) => events,
            Err(_) => return end("the store failed"),
        };
        let read = events.len();
        let mut finished = false;
        for event in events {
            last = event.sequence;
            finished |= matches!(event.kind, EventKind::JobFinished { .. });
            // Nobody listening is no error: a watcher may be replaying from the store.
            let _ = feed.events.send(Arc::new(event));
        }
        if finished {
            return end("the job finished");
        }
        if read as u64 == READ_BATCH {
            continue;
        }
        if feed.events.receiver_count() == 0 {
            return end("nobody watches");
        }
        tokio::select! {
            changed = woken.changed() => if changed.is_err() { return end("the hub is gone") },
            () = tokio::time::sleep(poll) => {}
        }
    }
}
