//! Retract requests, jobs and events on the wire: reading `RetractOptions` and filters out of
//! requests, and turning jobs, events and the engine's errors into proto and `ApiError`.

use retract_proto::{framed::EventFrame, v1 as pb};

use super::{
    ApiError, FieldViolation,
    convert::{count, timestamp},
    error::Reason,
    validate::{self, Validated as _, Violations, field, optional_text},
};
use crate::{
    domain::{
        DeleteMode, DepthSummary, EmailAddress, EventKind, InternetMessageId, JobCounts, JobEvent,
        JobFailure, JobId, JobKind, JobState, NewDelivery, NotRestorable, Phase, RetractJob,
        RetractOptions, Target, TargetOutcome, TargetRecord, TenantId, ValidationError,
    },
    engine::{DispatchError, PlanError, WatchEnd, Watched},
};

/// Reads a request's options and its idempotency key (the request id, a UUID).
pub fn options(
    raw: Option<&pb::RetractOptions>,
    request_id: &str,
) -> Result<(RetractOptions, String), ApiError> {
    let Some(raw) = raw else {
        return Err(ApiError::InvalidArgument(vec![FieldViolation {
            field: "options".into(),
            description: "is required".into(),
        }]));
    };
    let (message_id, recipients, conversation_depth, delete_mode, reason, request_id) = (
        field(
            "options.internet_message_id",
            InternetMessageId::parse(&raw.internet_message_id),
        ),
        recipients(&raw.recipients),
        field(
            "options.conversation_depth",
            conversation_depth(raw.include_conversations, raw.conversation_depth),
        ),
        field("options.delete_mode", delete_mode(raw.delete_mode)),
        field(
            "options.reason",
            optional_text(&raw.reason, RetractOptions::MAX_REASON_CHARS),
        ),
        field("request_id", validate::uuid(request_id, "a request id")),
    )
        .validated()?;
    Ok((
        RetractOptions {
            message_id,
            recipients,
            include_conversations: raw.include_conversations,
            conversation_depth,
            delete_mode,
            dry_run: raw.dry_run,
            skip_ineligible: raw.skip_ineligible,
            include_sender_copy: raw.include_sender_copy,
            reason,
        },
        request_id,
    ))
}

/// The requested recipients, sorted and deduplicated, every bad one named.
fn recipients(raw: &[String]) -> Result<Vec<EmailAddress>, Violations> {
    let mut violations = Violations::default();
    if raw.len() > NewDelivery::MAX_RECIPIENTS {
        violations.push("options.recipients", "must hold at most 10,000 addresses");
    }
    let mut parsed: Vec<EmailAddress> = raw
        .iter()
        .take(NewDelivery::MAX_RECIPIENTS)
        .enumerate()
        .filter_map(|(i, r)| {
            violations.check(&format!("options.recipients[{i}]"), EmailAddress::parse(r))
        })
        .collect();
    parsed.sort();
    parsed.dedup();
    violations.or_value(Some(parsed))
}

/// The depth a retract follows: 1-5 with conversations (0 means 1), 0 without.
fn conversation_depth(conversations: bool, raw: i32) -> Result<u8, ValidationError> {
    let depth = RetractOptions::depth(raw)?;
    match (conversations, depth) {
        (true, 0) => Ok(1),
        (false, 1..) => Err(ValidationError(
            "must be 0 unless include_conversations is set".into(),
        )),
        (_, depth) => Ok(depth),
    }
}

fn delete_mode(raw: i32) -> Result<DeleteMode, ValidationError> {
    match pb::DeleteMode::try_from(raw) {
        Ok(pb::DeleteMode::Soft) => Ok(DeleteMode::Soft),
        Ok(pb::DeleteMode::Hard) => Ok(DeleteMode::Hard),
        Ok(pb::DeleteMode::MoveToDeletedItems) => Ok(DeleteMode::MoveToDeletedItems),
        _ => Err(ValidationError(
            "must be SOFT, HARD or MOVE_TO_DELETED_ITEMS".into(),
        )),
    }
}

fn proto_delete_mode(mode: DeleteMode) -> pb::DeleteMode {
    match mode {
        DeleteMode::Soft => pb::DeleteMode::Soft,
        DeleteMode::Hard => pb::DeleteMode::Hard,
        DeleteMode::MoveToDeletedItems => pb::DeleteMode::MoveToDeletedItems,
    }
}

/// A dispatch refusal as the caller sees it; `tenant` and `message` fill the metadata.
pub fn dispatch_error(
    err: DispatchError,
    tenant: &TenantId,
    message_id: Option<&InternetMessageId>,
    job: Option<&JobId>,
) -> ApiError {
    let message = err.to_string();
    let tenant_md = || vec![("tenant_id", tenant.to_string())];
    match err {
        DispatchError::Plan(PlanError::Refused(refusals)) => ApiError::InvalidArgument(
            refusals
                .into_iter()
                .map(|r| FieldViolation {
                    field: format!("options.recipients[{}]", r.index),
                    description: r.reason,
                })
                .collect(),
        ),
        DispatchError::Plan(PlanError::NoEligibleRecipient) => ApiError::precondition(
            Reason::NoEligibleRecipient,
            "no recipient of this delivery can be retracted",
            vec![(
                "internet_message_id",
                message_id.map(ToString::to_string).unwrap_or_default(),
            )],
        ),
        DispatchError::TenantNotLinked => {
            ApiError::precondition(Reason::TenantNotLinked, message, tenant_md())
        }
        DispatchError::GraphNotConfigured => {
            ApiError::precondition(Reason::GraphNotConfigured, message, Vec::new())
        }
        DispatchError::AdministratorWithoutMailbox(_) => {
            ApiError::denied(Reason::AdminMailboxNotFound, message, tenant_md())
        }
        DispatchError::JobFinished(state) => ApiError::precondition(
            Reason::JobFinished,
            message,
            vec![
                ("job_id", job.map(ToString::to_string).unwrap_or_default()),
                ("state", state.to_owned()),
            ],
        ),
        DispatchError::NotRestorable(why) => {
            let running = match &why {
                NotRestorable::RestoreRunning(running) => running.to_string(),
                _ => String::new(),
            };
            let metadata = vec![
                ("job_id", job.map(ToString::to_string).unwrap_or_default()),
                ("cause", why.cause().to_owned()),
                ("restore_job_id", running),
            ];
            ApiError::precondition(Reason::NotRestorable, message, metadata)
        }
        DispatchError::Microsoft(graph) => graph.into(),
        DispatchError::Store(store) => store.into(),
    }
}

/// One of each dispatch refusal (for the test that every reason is documented).
#[cfg(test)]
pub fn every_dispatch_error() -> Vec<ApiError> {
    let tenant = TenantId::parse("acme").unwrap();
    [
        DispatchError::Plan(PlanError::NoEligibleRecipient),
        DispatchError::TenantNotLinked,
        DispatchError::GraphNotConfigured,
        DispatchError::AdministratorWithoutMailbox("a@b.example".into()),
        DispatchError::JobFinished("succeeded"),
        DispatchError::NotRestorable(NotRestorable::HardDelete),
    ]
    .into_iter()
    .map(|e| dispatch_error(e, &tenant, None, None))
    .collect()
}

impl From<WatchEnd> for ApiError {
    fn from(end: WatchEnd) -> Self {
        match end {
            WatchEnd::DeadlineExceeded => Self::DeadlineExceeded(end.to_string()),
            WatchEnd::ServerStopping => Self::ShuttingDown(end.to_string()),
            WatchEnd::Store(store) => store.into(),
        }
    }
}

/// The counters as they travel.
pub fn proto_counts(c: &JobCounts) -> pb::JobCounts {
    pb::JobCounts {
        target_count: count(c.targets),
        done_count: count(c.done),
        deleted_count: count(c.deleted),
        not_found_count: count(c.not_found),
        already_deleted_count: count(c.already_deleted),
        would_delete_count: count(c.would_delete),
        failed_count: count(c.failed),
        skipped_count: count(c.skipped),
        cancelled_count: count(c.cancelled),
        copies_found_count: count(c.copies_found),
        copies_deleted_count: count(c.copies_deleted),
        restored_count: count(c.restored),
        read_before_retract_count: count(c.read_before_retract),
    }
}

/// The proto of a job state.
pub fn state(s: JobState) -> pb::JobState {
    match s {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::CompletedWithErrors => pb::JobState::CompletedWithErrors,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
}

/// Reads a state filter: UNSPECIFIED means any.
pub fn state_filter(raw: i32) -> Result<Option<JobState>, ValidationError> {
    Ok(match pb::JobState::try_from(raw) {
        Ok(pb::JobState::Unspecified) => None,
        Ok(pb::JobState::Queued) => Some(JobState::Queued),
        Ok(pb::JobState::Running) => Some(JobState::Running),
        Ok(pb::JobState::Succeeded) => Some(JobState::Succeeded),
        Ok(pb::JobState::CompletedWithErrors) => Some(JobState::CompletedWithErrors),
        Ok(pb::JobState::Failed) => Some(JobState::Failed),
        Ok(pb::JobState::Cancelled) => Some(JobState::Cancelled),
        Err(_) => return Err(ValidationError(format!("{raw} is not a JobState"))),
    })
}

fn failure(f: &JobFailure) -> pb::JobFailure {
    pb::JobFailure {
        code: f.code.clone(),
        detail: f.detail.clone(),
    }
}

/// The options as they travel.
pub fn proto_options(o: &RetractOptions) -> pb::RetractOptions {
    pb::RetractOptions {
        internet_message_id: o.message_id.to_string(),
        recipients: o.recipients.iter().map(ToString::to_string).collect(),
        include_conversations: o.include_conversations,
        conversation_depth: i32::from(o.conversation_depth),
        delete_mode: proto_delete_mode(o.delete_mode).into(),
        dry_run: o.dry_run,
        skip_ineligible: o.skip_ineligible,
        include_sender_copy: o.include_sender_copy,
        reason: o.reason.clone().unwrap_or_default(),
    }
}

impl From<RetractJob> for pb::RetractJob {
    fn from(j: RetractJob) -> Self {
        Self {
            options: Some(proto_options(&j.options)),
            counts: Some(proto_counts(&j.counts)),
            state: state(j.state).into(),
            job_id: j.id.to_string(),
            tenant_id: j.tenant_id.to_string(),
            request_id: j.request_id,
            requested_by: j.requested_by,
            create_time: Some(timestamp(j.created_at)),
            start_time: j.started_at.map(timestamp),
            finish_time: j.finished_at.map(timestamp),
            last_sequence: j.last_sequence,
            kind: match j.kind {
                JobKind::Retract => pb::JobKind::Retract,
                JobKind::Restore => pb::JobKind::Restore,
            }
            .into(),
            restores_job_id: j
                .restores_job_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            failure: j.failure.as_ref().map(failure),
            cancellation: j.cancellation.map(|c| pb::Cancellation {
                requested_by: c.requested_by,
                reason: c.reason.unwrap_or_default(),
                request_time: Some(timestamp(c.requested_at)),
            }),
            message: j.message.map(|m| pb::MessageSnapshot {
                subject: m.subject,
                sender: m.sender,
                delivery_time: Some(timestamp(m.delivered_at)),
            }),
        }
    }
}

/// The job as it was when it started: what never changes, with the counters it started with.
fn job_at_start(job: &pb::RetractJob, started: &JobCounts, sequence: i64) -> pb::RetractJob {
    pb::RetractJob {
        state: pb::JobState::Queued.into(),
        counts: Some(proto_counts(started)),
        start_time: None,
        finish_time: None,
        last_sequence: sequence,
        failure: None,
        cancellation: None,
        ..job.clone()
    }
}

/// A row of the per-recipient table.
pub fn target_status(record: &TargetRecord) -> pb::TargetStatus {
    let result = record.result.as_ref();
    pb::TargetStatus {
        mailbox: record.target.mailbox.to_string(),
        depth: i32::from(record.target.depth),
        outcome: result.map(|r| proto_outcome(r.outcome).into()),
        copies_found_count: result.map_or(0, |r| count(r.copies_found)),
        copies_deleted_count: result.map_or(0, |r| count(r.copies_deleted)),
        was_read: result.is_some_and(|r| r.was_read),
        detail: result.and_then(|r| r.detail.clone()).unwrap_or_default(),
        graph_error_code: result
            .and_then(|r| r.graph_code.clone())
            .unwrap_or_default(),
        discovered_from: record
            .discovered_from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

/// The per-depth summary as it travels.
pub fn depth_summary(d: &DepthSummary) -> pb::DepthSummary {
    pb::DepthSummary {
        depth: i32::from(d.depth),
        mailbox_count: count(d.mailboxes),
        copies_retracted_count: count(d.copies_retracted),
        read_before_retract_count: count(d.read_before_retract),
    }
}

/// Reads a ListRetractTargets outcome filter: UNSPECIFIED selects unfinished targets.
pub fn outcome_filter(raw: i32) -> Result<Option<TargetOutcome>, ValidationError> {
    Ok(match pb::RecipientOutcome::try_from(raw) {
        Ok(pb::RecipientOutcome::Unspecified) => None,
        Ok(pb::RecipientOutcome::Deleted) => Some(TargetOutcome::Deleted),
        Ok(pb::RecipientOutcome::NotFound) => Some(TargetOutcome::NotFound),
        Ok(pb::RecipientOutcome::AlreadyDeleted) => Some(TargetOutcome::AlreadyDeleted),
        Ok(pb::RecipientOutcome::WouldDelete) => Some(TargetOutcome::WouldDelete),
        Ok(pb::RecipientOutcome::Failed) => Some(TargetOutcome::Failed),
        Ok(pb::RecipientOutcome::Skipped) => Some(TargetOutcome::Skipped),
        Ok(pb::RecipientOutcome::Cancelled) => Some(TargetOutcome::Cancelled),
        Ok(pb::RecipientOutcome::Restored) => Some(TargetOutcome::Restored),
        Err(_) => {
            return Err(ValidationError(format!("{raw} is not a RecipientOutcome")));
        }
    })
}

fn target(t: &Target) -> pb::RetractTarget {
    pb::RetractTarget {
        mailbox: t.mailbox.to_string(),
        depth: i32::from(t.depth),
    }
}

/// The proto of an outcome.
pub fn proto_outcome(o: TargetOutcome) -> pb::RecipientOutcome {
    match o {
        TargetOutcome::Deleted => pb::RecipientOutcome::Deleted,
        TargetOutcome::NotFound => pb::RecipientOutcome::NotFound,
        TargetOutcome::AlreadyDeleted => pb::RecipientOutcome::AlreadyDeleted,
        TargetOutcome::WouldDelete => pb::RecipientOutcome::WouldDelete,
        TargetOutcome::Failed => pb::RecipientOutcome::Failed,
        TargetOutcome::Skipped => pb::RecipientOutcome::Skipped,
        TargetOutcome::Cancelled => pb::RecipientOutcome::Cancelled,
        TargetOutcome::Restored => pb::RecipientOutcome::Restored,
    }
}

fn phase(p: Phase) -> pb::RecipientPhase {
    match p {
        Phase::Resolving => pb::RecipientPhase::Resolving,
        Phase::Searching => pb::RecipientPhase::Searching,
        Phase::Deleting => pb::RecipientPhase::Deleting,
        Phase::Restoring => pb::RecipientPhase::Restoring,
        Phase::Done => pb::RecipientPhase::Done,
    }
}

/// What a watch yields, encoded as streamed; `job` (as this watcher found it) fills
/// JobStarted's job. Every other event is the same for every watcher, so it is encoded once
/// and its bytes shared.
pub fn frame(w: &Watched, job: &pb::RetractJob) -> EventFrame {
    match w {
        Watched::Event(shared) => match shared.event().kind {
            EventKind::JobStarted { .. } => EventFrame::of(&event(shared.event(), job)),
            _ => EventFrame {
                event: shared.wire(|e| EventFrame::of(&event(e, job)).event),
            },
        },
        Watched::Heartbeat { sequence } => EventFrame::of(&pb::RetractEvent {
            job_id: job.job_id.clone(),
            sequence: *sequence,
            occur_time: Some(timestamp(crate::domain::now())),
            kind: Some(pb::retract_event::Kind::Heartbeat(pb::Heartbeat {})),
        }),
    }
}

fn event(e: &JobEvent, job: &pb::RetractJob) -> pb::RetractEvent {
    use pb::retract_event::Kind;
    let kind = match &e.kind {
        EventKind::JobStarted { targets, counts } => Kind::JobStarted(pb::JobStarted {
            job: Some(job_at_start(job, counts, e.sequence)),
            targets: targets.iter().map(target).collect(),
        }),
        EventKind::Recipient {
            target: t,
            phase: p,
            result,
        } => {
            let result = result.as_ref();
            Kind::RecipientUpdate(pb::RecipientUpdate {
                mailbox: t.mailbox.to_string(),
                depth: i32::from(t.depth),
                phase: phase(*p).into(),
                outcome: result.map(|r| proto_outcome(r.outcome).into()),
                copies_found_count: result.map_or(0, |r| count(r.copies_found)),
                copies_deleted_count: result.map_or(0, |r| count(r.copies_deleted)),
                was_read: result.is_some_and(|r| r.was_read),
                detail: result.and_then(|r| r.detail.clone()).unwrap_or_default(),
                graph_error_code: result
                    .and_then(|r| r.graph_code.clone())
                    .unwrap_or_default(),
            })
        }
        EventKind::Conversation { step } => Kind::ConversationUpdate(pb::ConversationUpdate {
            mailbox: step.mailbox.to_string(),
            depth: i32::from(step.depth),
            conversation_id: step.conversation_id.clone(),
            messages_found_count: count(step.found),
            messages_retracted_count: count(step.retracted),
            messages_left_count: count(step.left),
            discovered: step
                .discovered
                .iter()
                .map(|t| pb::DiscoveredMailbox {
                    mailbox: t.mailbox.to_string(),
                    hop: i32::from(t.depth),
                })
                .collect(),
            unfollowed: step
                .unfollowed
                .iter()
                .map(|u| pb::UnfollowedRecipient {
                    address: u.address.clone(),
                    hop: i32::from(u.hop),
                    code: u.code.clone(),
                })
                .collect(),
            failure: step.failure.as_ref().map(failure),
        }),
        EventKind::JobFinished {
            state: s,
            counts: c,
            detail,
            depths,
            failure: f,
        } => Kind::JobFinished(pb::JobFinished {
            state: state(*s).into(),
            counts: Some(proto_counts(c)),
            detail: detail.clone(),
            depths: depths.iter().map(depth_summary).collect(),
            failure: f.as_ref().map(failure),
        }),
    };
    pb::RetractEvent {
        job_id: e.job_id.to_string(),
        sequence: e.sequence,
        occur_time: Some(timestamp(e.at)),
        kind: Some(kind),
    }
}
