//! Live events of a job for every watcher in this process, read from the store once.
//!
//! A job watched here has one [`Feed`]: a reader task that reads the job's new events from
//! the store once — woken by this process's writers ([`EventHub::publish`]), or every poll
//! interval for a job another replica runs — and hands each to every local watcher (an
//! in-process broadcast). The feed also keeps the job's latest events (up to [`RECENT`]), so a
//! watcher that joins a running job replays what it missed from memory: a hundred watchers of
//! one job cost one store reader, not a hundred pollers or a hundred replays. A watcher that
//! falls behind the broadcast (or sees a gap) catches up from that memory, and one that asks
//! for older events from the store, so every watcher still gets every event, in order, once.
//!
//! Each event is shared ([`SharedEvent`]), not copied, and carries its wire form once the first
//! watcher's stream has encoded it: the others send those bytes as they are.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::{
    domain::{EventKind, JobEvent, JobId},
    store::Store,
};

/// Events a watcher may fall behind the broadcast before it catches up from the feed's memory
/// (or the store).
const BROADCAST_CAPACITY: usize = 4_096;

/// The latest events of a watched job kept for watchers that join late or fall behind: a
/// 1,000-mailbox job whole, the last stretch of a bigger one. A few hundred bytes each with
/// their encoding (a JobStarted holds every target: more), kept only while the job runs and
/// someone here watches it.
pub(super) const RECENT: usize = 4_096;

/// Events read from the store per query.
pub(super) const READ_BATCH: u64 = 500;

/// One event of a job as every watcher of it in this process shares it.
#[derive(Debug)]
pub struct SharedEvent {
    event: JobEvent,
    wire: OnceLock<Bytes>,
}

impl SharedEvent {
    /// `event`, not yet encoded.
    pub fn new(event: JobEvent) -> Self {
        Self {
            event,
            wire: OnceLock::new(),
        }
    }

    /// The event.
    pub fn event(&self) -> &JobEvent {
        &self.event
    }

    /// Its wire form: made by `encode` for the first watcher that sends it, the same bytes for
    /// every other (so `encode` must not depend on the watcher).
    pub fn wire(&self, encode: impl FnOnce(&JobEvent) -> Bytes) -> Bytes {
        self.wire.get_or_init(|| encode(&self.event)).clone()
    }
}

impl PartialEq for SharedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

impl Eq for SharedEvent {}

/// The live events of one job in this process.
pub(super) struct Feed {
    /// Every event the reader read, in order.
    events: broadcast::Sender<Arc<SharedEvent>>,
    /// The latest events the reader read, and from where it holds all of them.
    recent: Mutex<Recent>,
    /// Set when the reader ended (the job finished, nobody watches, the store failed, or the
    /// hub is gone).
    ended: watch::Sender<bool>,
}

/// A feed's memory of the events it read.
struct Recent {
    /// Every event after this sequence up to the newest the reader read is in `events`.
    complete_after: i64,
    events: VecDeque<Arc<SharedEvent>>,
}

impl Feed {
    /// A feed whose reader reads every event after `start`.
    fn new(start: i64) -> Self {
        Self {
            events: broadcast::channel(BROADCAST_CAPACITY).0,
            recent: Mutex::new(Recent {
                complete_after: start,
                events: VecDeque::new(),
            }),
            ended: watch::channel(false).0,
        }
    }

    /// Changes to `true` when the reader ends.
    pub(super) fn ended(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }

    /// Up to `max` events after `after` from memory, oldest first — empty when the reader has
    /// not read beyond `after` yet (the rest arrives on the broadcast) — or `None` when the
    /// feed does not hold the event right after `after` and will not read it (the store has
    /// it).
    pub(super) fn recent_after(&self, after: i64, max: usize) -> Option<Vec<Arc<SharedEvent>>> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if after < recent.complete_after {
            return None;
        }
        // Sequences are consecutive, so the position of `after + 1` is arithmetic.
        let first = recent.events.front().map_or(0, |e| e.event.sequence);
        let skip = usize::try_from(after + 1 - first).unwrap_or(0);
        let events: Vec<_> = recent.events.iter().skip(skip).take(max).cloned().collect();
        // The journal numbers events without gaps; were one ever missing, the store decides.
        if events
            .first()
            .is_some_and(|e| e.event.sequence != after + 1)
        {
            return None;
        }
        // Nothing more arrives live once the reader has ended: what it never read is stored.
        if events.is_empty() && *self.ended.borrow() {
            return None;
        }
        Some(events)
    }

    /// Remembers `event` (the next after what the reader read) and hands it to every listener.
    fn publish(&self, event: Arc<SharedEvent>) {
        {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if recent.events.len() == RECENT
                && let Some(oldest) = recent.events.pop_front()
            {
                recent.complete_after = oldest.event.sequence;
            }
            recent.events.push_back(event.clone());
        }
        // Nobody listening is no error: a watcher may be replaying.
        let _ = self.events.send(event);
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

    /// The feed of `job`, started if nobody here watches it yet — its reader reading `store`
    /// (at least every `poll`) from the event after `start` — and a listener to what it
    /// broadcasts from now on.
    pub(super) fn feed(
        self: &Arc<Self>,
        job: &JobId,
        start: i64,
        store: &Store,
        poll: Duration,
    ) -> (Arc<Feed>, broadcast::Receiver<Arc<SharedEvent>>) {
        let mut jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(watched) = jobs.get(job)
            && !*watched.feed.ended.borrow()
        {
            return (watched.feed.clone(), watched.feed.events.subscribe());
        }
        // Where it starts is known before anyone asks, so that watchers arriving together
        // replay from memory.
        let feed = Arc::new(Feed::new(start));
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
            start,
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
    mut last: i64,
    store: Store,
    mut woken: watch::Receiver<i64>,
    poll: Duration,
) {
    let end = |why: &str| {
        tracing::trace!(%job, why, "a job's feed ends");
        hub.forget(&job, &feed);
        feed.ended.send_replace(true);
    };
    match store.job_for_worker(&job).await {
        Ok(current) if current.state.is_final() => return end("the job had finished"),
        Ok(_) => {}
        Err(_) => return end("the store failed"),
    }
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
            feed.publish(Arc::new(SharedEvent::new(event)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobCounts, JobState};

    fn event(job: &JobId, sequence: i64) -> Arc<SharedEvent> {
        Arc::new(SharedEvent::new(JobEvent {
            job_id: job.clone(),
            sequence,
            at: crate::domain::now(),
            kind: EventKind::JobFinished {
                state: JobState::Succeeded,
                counts: JobCounts::default(),
                detail: format!("event {sequence}"),
                depths: Vec::new(),
                failure: None,
            },
        }))
    }

    fn sequences(events: &[Arc<SharedEvent>]) -> Vec<i64> {
        events.iter().map(|e| e.event().sequence).collect()
    }

    #[test]
    fn a_late_watcher_replays_from_memory_what_the_feed_holds_and_the_store_the_rest() {
        let job = JobId::generate();
        let feed = Feed::new(100);
        // Before where the reader starts, only the store can answer.
        assert!(feed.recent_after(0, 10).is_none());
        for sequence in 101..=105 {
            feed.publish(event(&job, sequence));
        }
        assert_eq!(
            feed.recent_after(100, 10).map(|e| sequences(&e)),
            Some(vec![101, 102, 103, 104, 105])
        );
        assert_eq!(
            feed.recent_after(102, 2).map(|e| sequences(&e)),
            Some(vec![103, 104])
        );
        // Caught up: the rest arrives on the broadcast.
        assert_eq!(feed.recent_after(105, 10).map(|e| e.len()), Some(0));
        // Older than the feed's start: the store has it.
        assert!(feed.recent_after(99, 10).is_none());
        // Once the reader has ended, nothing more arrives live: the store has the rest.
        feed.ended.send_replace(true);
        assert_eq!(
            feed.recent_after(103, 10).map(|e| sequences(&e)),
            Some(vec![104, 105])
        );
        assert!(feed.recent_after(105, 10).is_none());
    }

    #[test]
    fn the_feed_forgets_its_oldest_events_beyond_its_memory() {
        let job = JobId::generate();
        let feed = Feed::new(0);
        let total = RECENT as i64 + 10;
        for sequence in 1..=total {
            feed.publish(event(&job, sequence));
        }
        assert!(feed.recent_after(9, 1).is_none(), "event 10 is forgotten");
        assert_eq!(
            feed.recent_after(10, 3).map(|e| sequences(&e)),
            Some(vec![11, 12, 13])
        );
        assert_eq!(
            feed.recent_after(total - 1, 5).map(|e| sequences(&e)),
            Some(vec![total])
        );
    }

    #[test]
    fn an_event_is_encoded_once_for_all_its_watchers() {
        let shared = event(&JobId::generate(), 1);
        let mut encoded = 0;
        for _ in 0..3 {
            let wire = shared.wire(|e| {
                encoded += 1;
                Bytes::from(e.sequence.to_string())
            });
            assert_eq!(wire, Bytes::from_static(b"1"));
        }
        assert_eq!(encoded, 1);
    }
}
