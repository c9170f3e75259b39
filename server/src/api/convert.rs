//! Domain ⇄ proto conversions.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use retract_proto::{framed::OptionsFrame, v1 as pb};

use crate::{
    domain::{
        AuditAction, AuditDetails, AuditEvent, AuditOutcome, AuditSection, Delivery, Domain,
        DomainOutcome, Eligibility, EmailAddress, Grant, GrantState, RecordOutcome, RetractStatus,
        Tenant, ValidationError,
    },
    engine::TabRow,
    store::LastRetract,
};

/// A time as a protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        // Always below 2e9, so it fits.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The earliest request time accepted: 1970-01-01T00:00:00Z.
pub const EARLIEST_SECONDS: i64 = 0;
/// The latest request time accepted: 9999-12-31T23:59:59Z (what both databases store and
/// sort correctly).
pub const LATEST_SECONDS: i64 = 253_402_300_799;

/// An optional request timestamp: unset means "no bound"; set, within 1970–9999.
pub fn optional_time(ts: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, ValidationError> {
    let Some(ts) = ts else { return Ok(None) };
    if !(EARLIEST_SECONDS..=LATEST_SECONDS).contains(&ts.seconds) {
        return Err(ValidationError(
            "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z".into(),
        ));
    }
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| ValidationError("nanos must be within 0..1e9".into()))?;
    DateTime::from_timestamp(ts.seconds, nanos)
        .map(Some)
        .ok_or_else(|| ValidationError("is out of the supported time range".into()))
}

impl From<Tenant> for pb::Tenant {
    fn from(t: Tenant) -> Self {
        Self {
            tenant_id: t.id.to_string(),
            display_name: t.display_name.as_str().to_owned(),
            microsoft_tenant_id: t
                .microsoft_tenant_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            create_time: Some(timestamp(t.created_at)),
            update_time: Some(timestamp(t.updated_at)),
        }
    }
}

impl From<RetractStatus> for pb::RetractStatus {
    fn from(s: RetractStatus) -> Self {
        match s {
            RetractStatus::NotGranted => Self::NotGranted,
            RetractStatus::Pending => Self::Pending,
            RetractStatus::Granted => Self::Granted,
            RetractStatus::Failed => Self::Failed,
        }
    }
}

impl From<Domain> for pb::Domain {
    fn from(d: Domain) -> Self {
        Self {
            name: d.name.to_string(),
            tenant_id: d.tenant_id.to_string(),
            retract_status: pb::RetractStatus::from(d.retract_status).into(),
            status_detail: d.status_reason.unwrap_or_default(),
            last_check_time: d.last_checked_at.map(timestamp),
            create_time: Some(timestamp(d.created_at)),
        }
    }
}

impl From<&DomainOutcome> for pb::DomainOutcome {
    fn from(o: &DomainOutcome) -> Self {
        Self {
            domain: o.domain.clone(),
            retract_status: pb::RetractStatus::from(o.retract_status()).into(),
            detail: o.reason.clone().unwrap_or_default(),
        }
    }
}

/// A consent attempt as it stands at `now` (see [`Grant::state_at`]).
pub fn grant(g: Grant, now: DateTime<Utc>) -> pb::Grant {
    let state = match g.state_at(now) {
        GrantState::AwaitingConsent | GrantState::Completing => pb::GrantState::AwaitingConsent,
        GrantState::Succeeded => pb::GrantState::Succeeded,
        GrantState::PartiallySucceeded => pb::GrantState::PartiallySucceeded,
        GrantState::Failed => pb::GrantState::Failed,
        GrantState::Expired => pb::GrantState::Expired,
    };
    {
        pb::Grant {
            domain_outcomes: g.domain_outcomes.iter().map(Into::into).collect(),
            grant_id: g.id,
            tenant_id: g.tenant_id.to_string(),
            state: state.into(),
            requested_by: g.requested_by,
            create_time: Some(timestamp(g.created_at)),
            expire_time: Some(timestamp(g.expires_at)),
            complete_time: g.completed_at.map(timestamp),
            microsoft_tenant_id: g
                .microsoft_tenant_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            error: g.error.unwrap_or_default(),
            error_description: g.error_description.unwrap_or_default(),
        }
    }
}

impl From<Delivery> for pb::Delivery {
    fn from(d: Delivery) -> Self {
        Self {
            internet_message_id: d.message_id.to_string(),
            sender: d.sender.to_string(),
            subject: d.subject.as_str().to_owned(),
            delivery_time: Some(timestamp(d.delivered_at)),
            recipients: d.recipients.iter().map(ToString::to_string).collect(),
            record_time: Some(timestamp(d.recorded_at)),
            update_time: Some(timestamp(d.updated_at)),
            recipient_count: count(d.recipient_count),
        }
    }
}

impl From<RecordOutcome> for pb::RecordOutcome {
    fn from(o: RecordOutcome) -> Self {
        match o {
            RecordOutcome::Created => Self::Created,
            RecordOutcome::Merged => Self::Merged,
            RecordOutcome::Unchanged => Self::Unchanged,
        }
    }
}

/// A count as proto's int32 (saturating; no count comes near it).
pub fn count(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The rows of a page of the Retract tab, encoded as the response's `recipients` (the
/// engine keeps them for every caller: nothing here may depend on the caller).
pub fn recipient_options(rows: &[TabRow]) -> Bytes {
    let options: Vec<pb::RecipientOption> = rows
        .iter()
        .map(|row| {
            recipient_option(
                &row.address,
                &row.eligibility,
                row.last_retract.as_ref(),
                row.last_delivered_at,
            )
        })
        .collect();
    OptionsFrame::encode_recipients(&options)
}

/// One row of the Retract tab: the recipient, whether it can be retracted, the last job that
/// reached it, and whether the message was delivered to it again (at `last_delivered_at`)
/// after that job was created.
fn recipient_option(
    address: &EmailAddress,
    eligibility: &Eligibility,
    last: Option<&LastRetract>,
    last_delivered_at: Option<DateTime<Utc>>,
) -> pb::RecipientOption {
    let detail = eligibility.why_not().unwrap_or_default();
    let eligibility = match eligibility {
        Eligibility::Eligible => pb::Eligibility::Eligible,
        Eligibility::DomainNotManaged => pb::Eligibility::DomainNotManaged,
        Eligibility::DomainNotGranted(_) => pb::Eligibility::DomainNotGranted,
        Eligibility::PermissionIssue(_) => pb::Eligibility::PermissionIssue,
    };
    pb::RecipientOption {
        address: address.to_string(),
        eligibility: eligibility.into(),
        detail,
        last_retract: last.map(|l| pb::LastRetract {
            job_id: l.job_id.to_string(),
            outcome: l.outcome.map(|o| super::jobs::proto_outcome(o).into()),
            create_time: Some(timestamp(l.created_at)),
        }),
        delivered_after_last_retract: matches!(
            (last, last_delivered_at),
            (Some(l), Some(delivered)) if delivered > l.created_at
        ),
    }
}

impl From<AuditSection> for pb::AuditSection {
    fn from(s: AuditSection) -> Self {
        match s {
            AuditSection::Tenants => Self::Tenants,
            AuditSection::Domains => Self::Domains,
            AuditSection::Retract => Self::Retract,
        }
    }
}

impl From<AuditOutcome> for pb::AuditOutcome {
    fn from(o: AuditOutcome) -> Self {
        match o {
            AuditOutcome::Succeeded => Self::Succeeded,
            AuditOutcome::PartiallySucceeded => Self::PartiallySucceeded,
            AuditOutcome::Failed => Self::Failed,
        }
    }
}

/// Reads a request's section filter: UNSPECIFIED means any section.
pub fn audit_section(raw: i32) -> Result<Option<AuditSection>, ValidationError> {
    match pb::AuditSection::try_from(raw) {
        Ok(pb::AuditSection::Unspecified) => Ok(None),
        Ok(pb::AuditSection::Tenants) => Ok(Some(AuditSection::Tenants)),
        Ok(pb::AuditSection::Domains) => Ok(Some(AuditSection::Domains)),
        Ok(pb::AuditSection::Retract) => Ok(Some(AuditSection::Retract)),
        Err(_) => Err(ValidationError(format!("{raw} is not an AuditSection"))),
    }
}

impl From<AuditAction> for pb::AuditAction {
    fn from(a: AuditAction) -> Self {
        match a {
            AuditAction::TenantCreated => Self::TenantCreated,
            AuditAction::DomainAdded => Self::DomainAdded,
            AuditAction::DomainRemoved => Self::DomainRemoved,
            AuditAction::GrantStarted => Self::GrantStarted,
            AuditAction::GrantCompleted => Self::GrantCompleted,
            AuditAction::GrantFailed => Self::GrantFailed,
            AuditAction::GrantExpired => Self::GrantExpired,
            AuditAction::DomainsVerified => Self::DomainsVerified,
            AuditAction::RetractDispatched => Self::RetractDispatched,
            AuditAction::RetractCancelRequested => Self::RetractCancelRequested,
            AuditAction::RetractFinished => Self::RetractFinished,
            AuditAction::RetractCancelled => Self::RetractCancelled,
            AuditAction::RestoreDispatched => Self::RestoreDispatched,
            AuditAction::RestoreFinished => Self::RestoreFinished,
            AuditAction::TenantDeleted => Self::TenantDeleted,
        }
    }
}

/// Reads a request's action filter: UNSPECIFIED means any action.
pub fn audit_action(raw: i32) -> Result<Option<AuditAction>, ValidationError> {
    let action = pb::AuditAction::try_from(raw)
        .map_err(|_| ValidationError(format!("{raw} is not an AuditAction")))?;
    Ok(AuditAction::ALL
        .into_iter()
        .find(|a| pb::AuditAction::from(*a) == action))
}

fn domain_outcomes(outcomes: &[DomainOutcome]) -> Vec<pb::DomainOutcome> {
    outcomes.iter().map(Into::into).collect()
}

fn audit_details(details: AuditDetails) -> pb::audit_event::Details {
    use pb::audit_event::Details as D;
    match details {
        AuditDetails::TenantCreated { display_name } => {
            D::TenantCreated(pb::TenantCreatedDetails { display_name })
        }
        AuditDetails::TenantDeleted {
            reason,
            microsoft_tenant_id,
            domains,
            delivery_count,
            job_count,
            audit_purge_at,
        } => D::TenantDeleted(pb::TenantDeletedDetails {
            reason: reason.unwrap_or_default(),
            microsoft_tenant_id: microsoft_tenant_id.unwrap_or_default(),
            domains,
            delivery_count: i64::try_from(delivery_count).unwrap_or(i64::MAX),
            job_count: i64::try_from(job_count).unwrap_or(i64::MAX),
            audit_purge_time: audit_purge_at.map(timestamp),
        }),
        AuditDetails::DomainChanged { domain, as_entered } => {
            D::DomainChanged(pb::DomainChangedDetails {
                domain,
                as_entered: as_entered.unwrap_or_default(),
            })
        }
        AuditDetails::GrantStarted {
            grant_id,
            allow_relink,
            expires_at,
        } => D::GrantStarted(pb::GrantStartedDetails {
            grant_id,
            allow_relink,
            expire_time: Some(timestamp(expires_at)),
        }),
        AuditDetails::GrantFinished {
            grant_id,
            microsoft_tenant_id,
            signed_in_administrator,
            error,
            error_description,
            domain_outcomes: outcomes,
        } => D::GrantFinished(pb::GrantFinishedDetails {
            grant_id,
            microsoft_tenant_id: microsoft_tenant_id.unwrap_or_default(),
            signed_in_administrator: signed_in_administrator.unwrap_or_default(),
            error: error.unwrap_or_default(),
            error_description: error_description.unwrap_or_default(),
            domain_outcomes: domain_outcomes(&outcomes),
        }),
        AuditDetails::DomainsVerified {
            microsoft_tenant_id,
            domain_outcomes: outcomes,
        } => D::DomainsVerified(pb::DomainsVerifiedDetails {
            microsoft_tenant_id,
            domain_outcomes: domain_outcomes(&outcomes),
        }),
        AuditDetails::RetractDispatched {
            job_id,
            options,
            request_id,
            mailboxes,
            mailbox_count,
        } => D::RetractDispatched(pb::RetractDispatchedDetails {
            job_id: job_id.to_string(),
            options: Some(super::jobs::proto_options(&options)),
            request_id,
            mailboxes: mailboxes.iter().map(ToString::to_string).collect(),
            mailbox_count: count(mailbox_count),
        }),
        AuditDetails::RetractCancelRequested { job_id, reason } => {
            D::RetractCancelRequested(pb::RetractCancelRequestedDetails {
                job_id: job_id.to_string(),
                reason: reason.unwrap_or_default(),
            })
        }
        AuditDetails::RestoreDispatched {
            job_id,
            restores_job_id,
            request_id,
            reason,
            mailbox_count,
        } => D::RestoreDispatched(pb::RestoreDispatchedDetails {
            job_id: job_id.to_string(),
            restores_job_id: restores_job_id.to_string(),
            request_id,
            reason: reason.unwrap_or_default(),
            mailbox_count: count(mailbox_count),
        }),
        AuditDetails::RetractFinished {
            job_id,
            internet_message_id,
            state,
            detail,
            counts,
            depths,
            targets,
            target_count,
        } => D::RetractFinished(pb::RetractFinishedDetails {
            job_id: job_id.to_string(),
            internet_message_id: internet_message_id.to_string(),
            state: super::jobs::state(state).into(),
            detail,
            counts: Some(super::jobs::proto_counts(&counts)),
            depths: depths.iter().map(super::jobs::depth_summary).collect(),
            targets: targets.iter().map(super::jobs::target_status).collect(),
            target_count: count(target_count),
        }),
    }
}

impl From<AuditEvent> for pb::AuditEvent {
    fn from(e: AuditEvent) -> Self {
        let entry = e.entry;
        Self {
            event_id: e.id.to_string(),
            occur_time: Some(timestamp(e.occurred_at)),
            tenant_id: entry.tenant_id.to_string(),
            actor: entry.actor,
            section: entry
                .section
                .map_or(pb::AuditSection::Unspecified, Into::into)
                .into(),
            action: entry
                .action
                .map_or(pb::AuditAction::Unspecified, Into::into)
                .into(),
            target: entry.target,
            outcome: entry
                .outcome
                .map_or(pb::AuditOutcome::Unspecified, Into::into)
                .into(),
            correlation_id: entry.correlation_id,
            details: entry.details.map(audit_details),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timestamps_are_checked() {
        assert_eq!(optional_time(None), Ok(None));
        let ok = Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(optional_time(Some(&ok)).unwrap().map(timestamp), Some(ok));
        assert!(
            optional_time(Some(&Timestamp {
                seconds: 0,
                nanos: -1
            }))
            .is_err()
        );
        assert!(
            optional_time(Some(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }))
            .is_err()
        );
    }

    #[test]
    fn request_times_outside_1970_to_9999_are_refused() {
        let at = |seconds| optional_time(Some(&Timestamp { seconds, nanos: 0 }));
        assert!(at(-1).is_err(), "before 1970");
        assert!(at(LATEST_SECONDS + 1).is_err(), "year 10000");
        assert!(at(0).is_ok());
        assert!(at(LATEST_SECONDS).is_ok());
    }
}
