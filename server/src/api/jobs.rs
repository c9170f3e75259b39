//! Retract requests, jobs and events on the wire: reading `RetractOptions` and filters out of
//! requests, and turning jobs, events and the engine's errors into proto and `ApiError`.

use retract_proto::v1 as pb;

use super::{
    ApiError, FieldViolation,
    convert::timestamp,
    validate::{self, Validated as _, Violations, field},
};
use crate::{
    domain::{
        DeleteMode, EmailAddress, EventKind, InternetMessageId, JobCounts, JobEvent, JobState,
        NewDelivery, Phase, RetractJob, RetractOptions, Target, TargetOutcome, ValidationError,
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
    let (message_id, recipients, conversation_depth, delete_mode, request_id) = (
        field(
            "options.internet_message_id",
            InternetMessageId::parse(&raw.internet_message_id),
        ),
        recipients(&raw.recipients),
        field(
            "options.conversation_depth",
            RetractOptions::depth(raw.conversation_depth),
        ),
        field("options.delete_mode", delete_mode(raw.delete_mode)),
        field("request_id", validate::uuid(request_id, "a request id")),
    )
        .validated()?;
    if raw.include_conversations {
        return Err(ApiError::Unimplemented(
            "Retracting conversations (replies and forwards, issue #11)",
        ));
    }
    Ok((
        RetractOptions {
            message_id,
            recipients,
            include_conversations: false,
            conversation_depth,
            delete_mode,
            dry_run: raw.dry_run,
            skip_ineligible: raw.skip_ineligible,
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

impl From<DispatchError> for ApiError {
    fn from(err: DispatchError) -> Self {
        let message = err.to_string();
        match err {
            DispatchError::Plan(PlanError::Refused(refusals)) => Self::InvalidArgument(
                refusals
                    .into_iter()
                    .map(|r| FieldViolation {
                        field: format!("options.recipients[{}]", r.index),
                        description: r.reason,
                    })
                    .collect(),
            ),
            DispatchError::Plan(PlanError::NoEligibleRecipient) => Self::FailedPrecondition {
                reason: "NO_ELIGIBLE_RECIPIENT",
                message: "no recipient of this delivery can be retracted".into(),
            },
            DispatchError::TenantNotLinked => Self::FailedPrecondition {
                reason: "TENANT_NOT_LINKED",
                message,
            },
            DispatchError::GraphNotConfigured => Self::FailedPrecondition {
                reason: "GRAPH_NOT_CONFIGURED",
                message,
            },
            DispatchError::AdministratorWithoutMailbox(_) => Self::PermissionDenied {
                reason: "ADMIN_MAILBOX_NOT_FOUND",
                message,
            },
            DispatchError::Microsoft(graph) => graph.into(),
            DispatchError::Store(store) => store.into(),
        }
    }
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

fn counts(c: &JobCounts) -> pb::JobCounts {
    let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    pb::JobCounts {
        targets: n(c.targets),
        done: n(c.done),
        deleted: n(c.deleted),
        not_found: n(c.not_found),
        already_deleted: n(c.already_deleted),
        would_delete: n(c.would_delete),
        failed: n(c.failed),
        skipped: n(c.skipped),
        cancelled: n(c.cancelled),
        copies_found: n(c.copies_found),
        copies_deleted: n(c.copies_deleted),
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

impl From<RetractJob> for pb::RetractJob {
    fn from(j: RetractJob) -> Self {
        let o = j.options;
        Self {
            options: Some(pb::RetractOptions {
                internet_message_id: o.message_id.to_string(),
                recipients: o.recipients.iter().map(ToString::to_string).collect(),
                include_conversations: o.include_conversations,
                conversation_depth: i32::from(o.conversation_depth),
                delete_mode: proto_delete_mode(o.delete_mode).into(),
                dry_run: o.dry_run,
                skip_ineligible: o.skip_ineligible,
            }),
            counts: Some(counts(&j.counts)),
            state: state(j.state).into(),
            job_id: j.id.to_string(),
            tenant_id: j.tenant_id.to_string(),
            request_id: j.request_id,
            requested_by: j.requested_by,
            create_time: Some(timestamp(j.created_at)),
            start_time: j.started_at.map(timestamp),
            finish_time: j.finished_at.map(timestamp),
            last_sequence: j.last_sequence,
        }
    }
}

fn target(t: &Target) -> pb::RetractTarget {
    pb::RetractTarget {
        mailbox: t.mailbox.to_string(),
        depth: i32::from(t.depth),
    }
}

fn outcome(o: TargetOutcome) -> pb::RecipientOutcome {
    match o {
        TargetOutcome::Deleted => pb::RecipientOutcome::Deleted,
        TargetOutcome::NotFound => pb::RecipientOutcome::NotFound,
        TargetOutcome::AlreadyDeleted => pb::RecipientOutcome::AlreadyDeleted,
        TargetOutcome::WouldDelete => pb::RecipientOutcome::WouldDelete,
        TargetOutcome::Failed => pb::RecipientOutcome::Failed,
        TargetOutcome::Skipped => pb::RecipientOutcome::Skipped,
        TargetOutcome::Cancelled => pb::RecipientOutcome::Cancelled,
    }
}

fn phase(p: Phase) -> pb::RecipientPhase {
    match p {
        Phase::Resolving => pb::RecipientPhase::Resolving,
        Phase::Searching => pb::RecipientPhase::Searching,
        Phase::Deleting => pb::RecipientPhase::Deleting,
        Phase::Done => pb::RecipientPhase::Done,
    }
}

/// What a watch yields, as streamed; `job` fills JobStarted's job.
pub fn watched(w: Watched, job: &pb::RetractJob) -> pb::RetractEvent {
    match w {
        Watched::Event(e) => event(&e, job),
        Watched::Heartbeat { sequence } => pb::RetractEvent {
            job_id: job.job_id.clone(),
            sequence,
            time: Some(timestamp(crate::domain::now())),
            kind: Some(pb::retract_event::Kind::Heartbeat(pb::Heartbeat {})),
        },
    }
}

fn event(e: &JobEvent, job: &pb::RetractJob) -> pb::RetractEvent {
    use pb::retract_event::Kind;
    let kind = match &e.kind {
        EventKind::JobStarted { targets } => Kind::JobStarted(pb::JobStarted {
            job: Some(job.clone()),
            targets: targets.iter().map(target).collect(),
        }),
        EventKind::Recipient {
            target: t,
            phase: p,
            result,
        } => {
            let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
            let result = result.as_ref();
            Kind::RecipientUpdate(pb::RecipientUpdate {
                mailbox: t.mailbox.to_string(),
                depth: i32::from(t.depth),
                phase: phase(*p).into(),
                outcome: result
                    .map_or(pb::RecipientOutcome::Unspecified, |r| outcome(r.outcome))
                    .into(),
                copies_found: result.map_or(0, |r| n(r.copies_found)),
                copies_deleted: result.map_or(0, |r| n(r.copies_deleted)),
                was_read: result.is_some_and(|r| r.was_read),
                detail: result.and_then(|r| r.detail.clone()).unwrap_or_default(),
                graph_error_code: result
                    .and_then(|r| r.graph_code.clone())
                    .unwrap_or_default(),
            })
        }
        EventKind::JobFinished {
            state: s,
            counts: c,
            detail,
        } => Kind::JobFinished(pb::JobFinished {
            state: state(*s).into(),
            counts: Some(counts(c)),
            detail: detail.clone(),
        }),
    };
    pb::RetractEvent {
        job_id: e.job_id.to_string(),
        sequence: e.sequence,
        time: Some(timestamp(e.at)),
        kind: Some(kind),
    }
}
