//! Retract requests: reading and checking them, and turning jobs and events into proto.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

use retract_proto::v1 as pb;

use super::{ApiError, FieldViolation, convert::timestamp};
use crate::{
    domain::{
        DeleteMode, Delivery, Domain, Eligibility, EmailAddress, EventKind, JobCounts, JobEvent,
        JobState, Phase, RetractJob, RetractOptions, Target, TargetOutcome, TargetResult,
    },
    graph::GraphClient,
};

/// Deepest conversation a retract may follow.
pub const MAX_DEPTH: i32 = 5;

/// Reads a request's options; conversations answer UNIMPLEMENTED until they are built.
pub fn options(
    raw: Option<&pb::RetractOptions>,
    request_id: &str,
) -> Result<(RetractOptions, String), ApiError> {
    let mut violations = Vec::new();
    let mut bad = |field: &str, description: &str| {
        violations.push(FieldViolation {
            field: field.to_owned(),
            description: description.to_owned(),
        });
    };
    let Some(raw) = raw else {
        bad("options", "is required");
        return Err(ApiError::InvalidArgument(violations));
    };
    let message = crate::domain::InternetMessageId::parse(&raw.internet_message_id)
        .map_err(|e| bad("options.internet_message_id", &e.0))
        .ok();
    let mut recipients = Vec::new();
    if raw.recipients.len() > crate::domain::NewDelivery::MAX_RECIPIENTS {
        bad("options.recipients", "must hold at most 10,000 addresses");
    }
    for (i, r) in raw
        .recipients
        .iter()
        .enumerate()
        .take(crate::domain::NewDelivery::MAX_RECIPIENTS)
    {
        match EmailAddress::parse(r) {
            Ok(a) => recipients.push(a.to_string()),
            Err(e) => bad(&format!("options.recipients[{i}]"), &e.0),
        }
    }
    if !(0..=MAX_DEPTH).contains(&raw.conversation_depth) {
        bad("options.conversation_depth", "must be 0 to 5");
    }
    let delete_mode = match pb::DeleteMode::try_from(raw.delete_mode) {
        Ok(pb::DeleteMode::Soft) => Some(DeleteMode::Soft),
        Ok(pb::DeleteMode::Hard) => Some(DeleteMode::Hard),
        Ok(pb::DeleteMode::MoveToDeletedItems) => Some(DeleteMode::MoveToDeletedItems),
        _ => {
            bad(
                "options.delete_mode",
                "must be SOFT, HARD or MOVE_TO_DELETED_ITEMS",
            );
            None
        }
    };
    let request_id = super::validate::uuid(request_id, "a request id")
        .map_err(|e| bad("request_id", &e.0))
        .ok();
    if !violations.is_empty() {
        return Err(ApiError::InvalidArgument(violations));
    }
    if raw.include_conversations {
        return Err(ApiError::Unimplemented(
            "Retracting conversations (replies and forwards, issue #7)",
        ));
    }
    recipients.sort();
    recipients.dedup();
    match (message, delete_mode, request_id) {
        (Some(message), Some(delete_mode), Some(request_id)) => Ok((
            RetractOptions {
                message_id: message.to_string(),
                recipients,
                include_conversations: false,
                conversation_depth: u8::try_from(raw.conversation_depth).unwrap_or(0),
                delete_mode,
                dry_run: raw.dry_run,
                skip_ineligible: raw.skip_ineligible,
            },
            request_id,
        )),
        _ => Err(ApiError::Internal("validated fields missing".into())),
    }
}

/// The mailboxes a retract visits: the requested recipients (or every eligible one), each
/// checked against the delivery and its eligibility. Ineligible requested recipients are a
/// field violation, or — when asked — settled as SKIPPED.
pub fn targets(
    options: &RetractOptions,
    delivery: &Delivery,
    domains: &[Domain],
    problems: &HashMap<String, (String, String)>,
) -> Result<Vec<(Target, Option<TargetResult>)>, ApiError> {
    let delivered: HashSet<&str> = delivery.recipients.iter().map(String::as_str).collect();
    let requested: Vec<&str> = if options.recipients.is_empty() {
        delivery.recipients.iter().map(String::as_str).collect()
    } else {
        options.recipients.iter().map(String::as_str).collect()
    };
    let mut violations = Vec::new();
    let mut targets = Vec::new();
    for (i, address) in requested.iter().enumerate() {
        let field = format!("options.recipients[{i}]");
        if !delivered.contains(address) {
            violations.push(FieldViolation {
                field,
                description: "is not a recipient of this delivery".into(),
            });
            continue;
        }
        let target = Target {
            mailbox: (*address).to_owned(),
            depth: 0,
        };
        let why_not = match Eligibility::assess(address, domains, problems) {
            Eligibility::Eligible => None,
            Eligibility::DomainNotManaged => {
                Some("the recipient's domain is not a registered domain of this tenant".to_owned())
            }
            Eligibility::DomainNotGranted(why) | Eligibility::PermissionIssue(why) => Some(why),
        };
        match why_not {
            None => targets.push((target, None)),
            // "Every eligible recipient" leaves the others out quietly.
            Some(_) if options.recipients.is_empty() => {}
            Some(why) if options.skip_ineligible => targets.push((
                target,
                Some(TargetResult {
                    outcome: TargetOutcome::Skipped,
                    copies_found: 0,
                    copies_deleted: 0,
                    was_read: false,
                    detail: Some(why),
                    graph_code: None,
                }),
            )),
            Some(why) => violations.push(FieldViolation {
                field,
                description: format!("is not eligible: {why}"),
            }),
        }
    }
    if !violations.is_empty() {
        return Err(ApiError::InvalidArgument(violations));
    }
    if targets.is_empty() {
        return Err(ApiError::FailedPrecondition {
            reason: "NO_ELIGIBLE_RECIPIENT",
            message: "no recipient of this delivery can be retracted".into(),
        });
    }
    Ok(targets)
}

/// Remembers, for a few minutes, whether an administrator's address is a mailbox of the
/// tenant's Microsoft 365 ("a USS administrator user that matches a registered mailbox").
pub struct AdminMailboxes {
    ttl: Duration,
    known: Mutex<HashMap<(String, String), (bool, Instant)>>,
}

impl AdminMailboxes {
    /// A cache keeping answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `email` is a mailbox of `microsoft_tenant`.
    pub async fn exists(
        &self,
        graph: &GraphClient,
        microsoft_tenant: &str,
        email: &str,
    ) -> Result<bool, ApiError> {
        let key = (microsoft_tenant.to_owned(), email.to_ascii_lowercase());
        if let Some((answer, at)) = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(*answer);
        }
        let Ok(address) = EmailAddress::parse(email) else {
            return Ok(false);
        };
        let answer = graph
            .resolve_mailbox(microsoft_tenant, &address)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot check the administrator's mailbox");
                ApiError::Unavailable("MICROSOFT_UNAVAILABLE")
            })?
            .is_some();
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() > 10_000 {
            known.clear();
        }
        known.insert(key, (answer, Instant::now()));
        Ok(answer)
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
pub fn state_filter(raw: i32) -> Result<Option<JobState>, crate::domain::ValidationError> {
    Ok(match pb::JobState::try_from(raw) {
        Ok(pb::JobState::Unspecified) => None,
        Ok(pb::JobState::Queued) => Some(JobState::Queued),
        Ok(pb::JobState::Running) => Some(JobState::Running),
        Ok(pb::JobState::Succeeded) => Some(JobState::Succeeded),
        Ok(pb::JobState::CompletedWithErrors) => Some(JobState::CompletedWithErrors),
        Ok(pb::JobState::Failed) => Some(JobState::Failed),
        Ok(pb::JobState::Cancelled) => Some(JobState::Cancelled),
        Err(_) => {
            return Err(crate::domain::ValidationError(format!(
                "{raw} is not a JobState"
            )));
        }
    })
}

impl From<RetractJob> for pb::RetractJob {
    fn from(j: RetractJob) -> Self {
        let o = &j.options;
        Self {
            options: Some(pb::RetractOptions {
                internet_message_id: o.message_id.clone(),
                recipients: o.recipients.clone(),
                include_conversations: o.include_conversations,
                conversation_depth: i32::from(o.conversation_depth),
                delete_mode: match o.delete_mode {
                    DeleteMode::Soft => pb::DeleteMode::Soft,
                    DeleteMode::Hard => pb::DeleteMode::Hard,
                    DeleteMode::MoveToDeletedItems => pb::DeleteMode::MoveToDeletedItems,
                }
                .into(),
                dry_run: o.dry_run,
                skip_ineligible: o.skip_ineligible,
            }),
            counts: Some(counts(&j.counts)),
            state: state(j.state).into(),
            job_id: j.id,
            tenant_id: j.tenant_id,
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
        mailbox: t.mailbox.clone(),
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

/// An event as streamed; `job` fills JobStarted's job.
pub fn event(e: &JobEvent, job: &pb::RetractJob) -> pb::RetractEvent {
    use pb::retract_event::Kind;
    let kind = match &e.kind {
        EventKind::JobStarted { targets } => Kind::JobStarted(pb::JobStarted {
            job: Some(job.clone()),
            targets: targets.iter().map(target).collect(),
        }),
        EventKind::Recipient {
            target: t,
            phase,
            result,
        } => {
            let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
            Kind::RecipientUpdate(pb::RecipientUpdate {
                mailbox: t.mailbox.clone(),
                depth: i32::from(t.depth),
                phase: match phase {
                    Phase::Resolving => pb::RecipientPhase::Resolving,
                    Phase::Searching => pb::RecipientPhase::Searching,
                    Phase::Deleting => pb::RecipientPhase::Deleting,
                    Phase::Done => pb::RecipientPhase::Done,
                }
                .into(),
                outcome: result
                    .as_ref()
                    .map_or(pb::RecipientOutcome::Unspecified, |r| outcome(r.outcome))
                    .into(),
                copies_found: result.as_ref().map_or(0, |r| n(r.copies_found)),
                copies_deleted: result.as_ref().map_or(0, |r| n(r.copies_deleted)),
                was_read: result.as_ref().is_some_and(|r| r.was_read),
                detail: result
                    .as_ref()
                    .and_then(|r| r.detail.clone())
                    .unwrap_or_default(),
                graph_error_code: result
                    .as_ref()
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
        job_id: e.job_id.clone(),
        sequence: e.sequence,
        time: Some(timestamp(e.at)),
        kind: Some(kind),
    }
}

/// A keep-alive repeating the latest sequence number.
pub fn heartbeat(job_id: &str, sequence: i64) -> pb::RetractEvent {
    pb::RetractEvent {
        job_id: job_id.to_owned(),
        sequence,
        time: Some(timestamp(crate::domain::now())),
        kind: Some(pb::retract_event::Kind::Heartbeat(pb::Heartbeat {})),
    }
}
