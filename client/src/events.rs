//! [`EventStream`]: a job's events that survive dropped connections and server restarts.
//!
//! The stream remembers the last sequence number it yielded. When the call breaks
//! (`UNAVAILABLE` — a server shutting down says so —, a reset connection, the server's own
//! deadline, or an end before `JobFinished`) it waits (backoff, or the server's `RetryInfo`)
//! and opens `WatchRetract` after that sequence, on the same channel, which reconnects by
//! itself. Before the job id is known (the first event of Retract / RestoreRetractJob had not
//! arrived) it repeats the starting call with the same `request_id`, which re-attaches to the
//! same job. Events are yielded once each, in order (1, 2, 3, …); heartbeats are not yielded.

use std::{
    pin::Pin,
    time::{Duration, Instant, SystemTime},
};

use futures::{Stream, StreamExt as _};

use crate::{ApiError, Client, Code, Error, pb};

/// How an [`EventStream`] resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePolicy {
    /// The wait before the first reconnect; it doubles for each failed one.
    pub initial_backoff: Duration,
    /// The longest wait between reconnects.
    pub max_backoff: Duration,
    /// Gives up (yielding the last error) when no event or heartbeat came for this long
    /// while reconnecting.
    pub give_up_after: Duration,
}

impl Default for ResumePolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            give_up_after: Duration::from_secs(120),
        }
    }
}

/// One event of a job (never a heartbeat).
#[derive(Debug, Clone, PartialEq)]
pub struct Event(pb::RetractEvent);

/// What an [`Event`] says.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum EventKind<'a> {
    /// The first event: the job and its first targets.
    Started(&'a pb::JobStarted),
    /// Progress on one mailbox.
    Recipient(&'a pb::RecipientUpdate),
    /// One step of following a conversation.
    Conversation(&'a pb::ConversationUpdate),
    /// The last event.
    Finished(&'a pb::JobFinished),
    /// A kind this crate does not know yet (a newer server).
    Other,
}

impl Event {
    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.0.job_id
    }

    /// The per-job sequence number (1, 2, 3, …).
    pub fn sequence(&self) -> i64 {
        self.0.sequence
    }

    /// When it happened.
    pub fn occur_time(&self) -> Option<SystemTime> {
        self.0.occur_time.and_then(|t| SystemTime::try_from(t).ok())
    }

    /// What happened.
    pub fn kind(&self) -> EventKind<'_> {
        use pb::retract_event::Kind;
        match &self.0.kind {
            Some(Kind::JobStarted(s)) => EventKind::Started(s),
            Some(Kind::RecipientUpdate(u)) => EventKind::Recipient(u),
            Some(Kind::ConversationUpdate(c)) => EventKind::Conversation(c),
            Some(Kind::JobFinished(f)) => EventKind::Finished(f),
            Some(Kind::Heartbeat(_)) | None => EventKind::Other,
        }
    }

    /// The contract's message.
    pub fn as_proto(&self) -> &pb::RetractEvent {
        &self.0
    }

    /// The contract's message, owned.
    pub fn into_proto(self) -> pb::RetractEvent {
        self.0
    }
}

type RawEvents = Pin<Box<dyn Stream<Item = Result<pb::RetractEvent, tonic::Status>> + Send>>;

/// How the stream is opened before the job id is known.
enum Opening {
    Retract(pb::RetractRequest),
    Restore(pb::RestoreRetractJobRequest),
    Watch,
}

/// A job's events, resumed across dropped connections; see the module docs.
///
/// `next().await` gives `None` after `JobFinished` (or after an error that ends it).
pub struct EventStream {
    client: Client,
    tenant_id: String,
    job_id: Option<String>,
    opening: Opening,
    last_sequence: i64,
    current: Option<RawEvents>,
    finished: bool,
    reconnects: u32,
    failed_opens: u32,
    /// Since when no event has come while reconnecting.
    outage_since: Option<Instant>,
}

impl Client {
    /// Retract: starts (or, with a repeated `request_id`, re-attaches to) a retract job and
    /// follows its events to the end, resuming after interruptions. An empty `request_id` is
    /// replaced by a new UUID. Nothing is sent before the first `next()`.
    pub fn retract(&self, mut request: pb::RetractRequest) -> EventStream {
        if request.request_id.is_empty() {
            request.request_id = uuid::Uuid::new_v4().to_string();
        }
        let tenant_id = request.tenant_id.clone();
        self.events(tenant_id, None, 0, Opening::Retract(request))
    }

    /// RestoreRetractJob: starts (or re-attaches to) the restore of a retract job and follows
    /// the restore job's events, like [`Self::retract`].
    pub fn restore(&self, mut request: pb::RestoreRetractJobRequest) -> EventStream {
        if request.request_id.is_empty() {
            request.request_id = uuid::Uuid::new_v4().to_string();
        }
        let tenant_id = request.tenant_id.clone();
        self.events(tenant_id, None, 0, Opening::Restore(request))
    }

    /// WatchRetract: follows job `job_id` from after `after_sequence` (0: from its start) to
    /// its end, resuming after interruptions.
    pub fn watch(
        &self,
        tenant_id: impl Into<String>,
        job_id: impl Into<String>,
        after_sequence: i64,
    ) -> EventStream {
        self.events(
            tenant_id.into(),
            Some(job_id.into()),
            after_sequence,
            Opening::Watch,
        )
    }

    fn events(
        &self,
        tenant_id: String,
        job_id: Option<String>,
        after_sequence: i64,
        opening: Opening,
    ) -> EventStream {
        EventStream {
            client: self.clone(),
            tenant_id,
            job_id,
            opening,
            last_sequence: after_sequence,
            current: None,
            finished: false,
            reconnects: 0,
            failed_opens: 0,
            outage_since: None,
        }
    }
}

/// The events of a streamed response, heartbeats included, without the wrapper message.
fn raw<R, F>(stream: tonic::Streaming<R>, event: F) -> RawEvents
where
    R: Send + 'static,
    F: Fn(R) -> Option<pb::RetractEvent> + Send + 'static,
{
    Box::pin(stream.filter_map(move |item| {
        futures::future::ready(match item {
            Ok(response) => event(response).map(Ok),
            Err(status) => Some(Err(status)),
        })
    }))
}

/// Whether job `job_id` has finished with no event after `last_sequence` (a watch from its
/// last sequence ends at once, without a JobFinished to yield).
async fn finished_already(
    client: Client,
    tenant_id: String,
    job_id: String,
    last_sequence: i64,
) -> Result<bool, Error> {
    let job = client
        .get_retract_job(pb::GetRetractJobRequest { tenant_id, job_id })
        .await?
        .job
        .unwrap_or_default();
    let terminal = !matches!(
        job.state(),
        pb::JobState::Queued | pb::JobState::Running | pb::JobState::Unspecified
    );
    Ok(terminal && job.last_sequence <= last_sequence)
}

/// Whether a stream that failed with `err` is worth opening again.
fn resumable(err: &Error) -> bool {
    let Error::Api(api) = err else {
        return false;
    };
    match api.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted => true,
        // The server ends a watch at the caller's deadline; watch again.
        Code::DeadlineExceeded => true,
        Code::ResourceExhausted => api.retry_delay().is_some(),
        _ => false,
    }
}

impl EventStream {
    /// The job's id, once known (at once for [`Client::watch`], from the first event
    /// otherwise).
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// The sequence number of the last event yielded (or the `after_sequence` it started
    /// from).
    pub fn last_sequence(&self) -> i64 {
        self.last_sequence
    }

    /// How many times the stream was opened again after an interruption.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// The next event; `None` after `JobFinished`, or after an error that could not be
    /// resumed (yielded once before).
    pub async fn next(&mut self) -> Option<Result<Event, Error>> {
        loop {
            if self.finished {
                return None;
            }
            if self.current.is_none() {
                match self.open().await {
                    Ok(stream) => self.current = Some(stream),
                    Err(err) => match self.wait_before_reopening(&err) {
                        Some(delay) => {
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        None => return self.end_with(err),
                    },
                }
            }
            let Some(stream) = self.current.as_mut() else {
                continue;
            };
            match stream.next().await {
                Some(Ok(event)) => {
                    self.failed_opens = 0;
                    self.outage_since = None;
                    if let Some(item) = self.accept(event) {
                        return Some(item);
                    }
                }
                Some(Err(status)) => {
                    self.current = None;
                    let err = Error::from(status);
                    match self.wait_before_reopening(&err) {
                        Some(delay) => {
                            self.reconnects += 1;
                            tokio::time::sleep(delay).await;
                        }
                        None => return self.end_with(err),
                    }
                }
                None => {
                    // Ended before JobFinished: a proxy or a server that went away politely —
                    // or a watch from the last sequence of a job that has finished already.
                    self.current = None;
                    let finished = match self.job_id.clone() {
                        Some(job_id) => {
                            finished_already(
                                self.client.clone(),
                                self.tenant_id.clone(),
                                job_id,
                                self.last_sequence,
                            )
                            .await
                        }
                        None => Ok(false),
                    };
                    match finished {
                        Ok(true) => {
                            self.finished = true;
                            return None;
                        }
                        Ok(false) => {}
                        Err(err) => {
                            if self.wait_before_reopening(&err).is_none() {
                                return self.end_with(err);
                            }
                        }
                    }
                    let cut = Error::from(tonic::Status::unavailable(
                        "the event stream ended before the job finished",
                    ));
                    match self.wait_before_reopening(&cut) {
                        Some(delay) => {
                            self.reconnects += 1;
                            tokio::time::sleep(delay).await;
                        }
                        None => return self.end_with(cut),
                    }
                }
            }
        }
    }

    /// Consumes the stream into a `futures::Stream`.
    pub fn into_stream(self) -> impl Stream<Item = Result<Event, Error>> + Send {
        futures::stream::unfold(self, |mut events| async move {
            events.next().await.map(|item| (item, events))
        })
    }

    /// What to yield for `event`: nothing for a heartbeat or a replayed event.
    fn accept(&mut self, event: pb::RetractEvent) -> Option<Result<Event, Error>> {
        // A heartbeat repeats the last sequence; an event of a kind this version does not
        // know (a newer server) is still an event of the log, yielded as `Other`.
        if matches!(event.kind, Some(pb::retract_event::Kind::Heartbeat(_))) {
            return None;
        }
        if event.sequence <= self.last_sequence {
            return None;
        }
        if event.sequence != self.last_sequence + 1 {
            let gap = Error::SequenceGap {
                job_id: event.job_id.clone(),
                expected: self.last_sequence + 1,
                got: event.sequence,
            };
            return self.end_with(gap);
        }
        self.last_sequence = event.sequence;
        if self.job_id.is_none() {
            self.job_id = Some(event.job_id.clone());
        }
        if matches!(event.kind, Some(pb::retract_event::Kind::JobFinished(_))) {
            self.finished = true;
            self.current = None;
        }
        Some(Ok(Event(event)))
    }

    fn end_with(&mut self, err: Error) -> Option<Result<Event, Error>> {
        self.finished = true;
        self.current = None;
        Some(Err(err))
    }

    /// How long to wait before opening again after `err`, or `None` to give up.
    fn wait_before_reopening(&mut self, err: &Error) -> Option<Duration> {
        if !resumable(err) {
            return None;
        }
        let since = *self.outage_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.client.resume.give_up_after {
            return None;
        }
        let backoff = self.client.resume.backoff(self.failed_opens);
        self.failed_opens += 1;
        let asked = err.api().and_then(ApiError::retry_delay);
        // The server's RetryInfo is a floor, never shortened: reopening sooner than asked
        // only adds load to a server that is already shedding it.
        Some(asked.map_or(backoff, |d| d.max(backoff)))
    }

    async fn open(&mut self) -> Result<RawEvents, Error> {
        let client = &self.client;
        if let Some(job_id) = &self.job_id {
            let request = client
                .request(
                    pb::WatchRetractRequest {
                        tenant_id: self.tenant_id.clone(),
                        job_id: job_id.clone(),
                        after_sequence: self.last_sequence,
                    },
                    None,
                )
                .await?;
            let stream = client
                .retract_service()
                .watch_retract(request)
                .await?
                .into_inner();
            return Ok(raw(stream, |r: pb::WatchRetractResponse| r.event));
        }
        match &self.opening {
            Opening::Retract(message) => {
                let request = client.request(message.clone(), None).await?;
                let stream = client
                    .retract_service()
                    .retract(request)
                    .await?
                    .into_inner();
                Ok(raw(stream, |r: pb::RetractResponse| r.event))
            }
            Opening::Restore(message) => {
                let request = client.request(message.clone(), None).await?;
                let stream = client
                    .retract_service()
                    .restore_retract_job(request)
                    .await?
                    .into_inner();
                Ok(raw(stream, |r: pb::RestoreRetractJobResponse| r.event))
            }
            Opening::Watch => Err(Error::Config("a watch needs a job id".into())),
        }
    }
}

impl ResumePolicy {
    /// Exponential backoff with jitter after `failures` failed opens.
    fn backoff(&self, failures: u32) -> Duration {
        let nominal = self
            .initial_backoff
            .saturating_mul(1 << failures.min(16))
            .min(self.max_backoff);
        nominal.mul_f64(rand::random_range(0.5..=1.0))
    }
}
