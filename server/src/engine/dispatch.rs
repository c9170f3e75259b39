//! Accepting a retract (or a restore of one): the checks a request must pass before a job
//! exists, its plan, and the job with its `retract_dispatched` (`restore_dispatched`) audit
//! entry — or the job its request id made before.

use super::{
    Engine,
    plan::{self, PlanError},
};
use crate::{
    domain::{
        AUDIT_TARGETS_MAX, AuditAction, AuditDetails, AuditEntry, AuditOutcome, DeleteMode,
        EmailAddress, JobId, JobKind, MessageSnapshot, MicrosoftTenantId, NotRestorable,
        RetractJob, RetractOptions, Target, Tenant, TenantId,
    },
    graph::GraphError,
    store::{CancelRequest, NewJob, StoreError, job_fingerprint},
};

/// A retract request, validated, with who asks for it.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// The tenant it acts for (already checked against the caller).
    pub tenant: TenantId,
    /// What to retract.
    pub options: RetractOptions,
    /// The caller's idempotency key (a UUID).
    pub request_id: String,
    /// The name the audit trail records for the caller.
    pub requested_by: String,
    /// A human administrator's address, which must be a mailbox of the tenant's Microsoft
    /// 365; `None` for service callers. A claim that is not an address cannot be one.
    pub administrator: Option<Result<EmailAddress, String>>,
    /// The call's `x-request-id`, for the audit entry.
    pub trace_id: String,
}

/// A request to restore a finished retract job, validated, with who asks for it.
#[derive(Debug, Clone)]
pub struct RestoreDispatch {
    /// The tenant it acts for (already checked against the caller).
    pub tenant: TenantId,
    /// The retract job to undo.
    pub job: JobId,
    /// The caller's idempotency key (a UUID).
    pub request_id: String,
    /// Why, for the audit trail.
    pub reason: Option<String>,
    /// The name the audit trail records for the caller.
    pub requested_by: String,
    /// As for [`Dispatch::administrator`].
    pub administrator: Option<Result<EmailAddress, String>>,
    /// The call's `x-request-id`, for the audit entry.
    pub trace_id: String,
}

/// Why a retract was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The requested recipients cannot be planned.
    #[error("the recipients cannot be retracted")]
    Plan(PlanError),
    /// The tenant has no Microsoft 365 tenant linked yet.
    #[error("the tenant is not linked to Microsoft 365 yet; grant permissions first")]
    TenantNotLinked,
    /// This replica has no Graph app registration.
    #[error("the Microsoft Graph app registration is not configured")]
    GraphNotConfigured,
    /// The administrator's address is not a mailbox of the tenant.
    #[error(
        "{0} is not a mailbox of this tenant's Microsoft 365; retracting needs an administrator with a mailbox there"
    )]
    AdministratorWithoutMailbox(String),
    /// Microsoft could not answer the administrator check.
    #[error("cannot check the administrator's mailbox: {0}")]
    Microsoft(#[from] GraphError),
    /// The job has ended already (cancelling it).
    #[error("the job already ended {0}")]
    JobFinished(&'static str),
    /// The job cannot be restored.
    #[error("{0}")]
    NotRestorable(NotRestorable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Checks `dispatch` and creates its job, or returns the job its request id made before.
    /// A repeated request re-attaches even if the checks would now answer differently (a
    /// mailbox found inaccessible, the delivery purged, Microsoft down).
    pub async fn dispatch(&self, dispatch: Dispatch) -> Result<RetractJob, DispatchError> {
        let Dispatch {
            tenant,
            options,
            request_id,
            requested_by,
            administrator,
            trace_id,
        } = dispatch;
        if let Some(job) = self
            .store
            .job_by_request_id(&tenant, &request_id, &job_fingerprint(&options, None))
            .await?
        {
            return Ok(job);
        }
        let delivery = self
            .store
            .get_delivery(&tenant, &options.message_id)
            .await?;
        let (tenant_row, domains) = self.store.tenant_and_domains(&tenant).await?;
        let problems = self
            .store
            .mailbox_problems(&tenant, &delivery.recipients)
            .await?;
        let targets = plan::initial_targets(&options, &delivery, &domains, &problems)
            .map_err(DispatchError::Plan)?;
        self.check_dispatcher_of(&tenant_row, administrator).await?;
        let job_id = JobId::generate();
        let audit = AuditEntry {
            tenant_id: tenant.clone(),
            actor: requested_by.clone(),
            action: AuditAction::RetractDispatched,
            target: job_id.to_string(),
            outcome: AuditOutcome::Succeeded,
            correlation_id: trace_id.clone(),
            details: AuditDetails::RetractDispatched {
                job_id: job_id.clone(),
                options: options.clone(),
                request_id: request_id.clone(),
                mailboxes: targets
                    .iter()
                    .take(AUDIT_TARGETS_MAX)
                    .map(|(t, _)| t.mailbox.clone())
                    .collect(),
                mailbox_count: u32::try_from(targets.len()).unwrap_or(u32::MAX),
            },
        };
        let new = NewJob {
            id: job_id,
            request_id,
            options,
            requested_by,
            targets,
            message: Some(MessageSnapshot {
                subject: delivery.subject.as_str().to_owned(),
                sender: delivery.sender.to_string(),
                delivered_at: delivery.delivered_at,
            }),
            correlation_id: trace_id,
            restores: None,
        };
        let (job, created) = self.store.create_job(&tenant, new, audit).await?;
        if created {
            crate::telemetry::traces::job_created(job.id.as_str());
            self.wake();
        }
        Ok(job)
    }

    /// Checks `restore` and creates its job — of kind RESTORE, with the retract's mailboxes
    /// that still have removed copies to put back, at their depth — or returns the job its
    /// request id made before (even if the checks would now refuse: everything may be back).
    pub async fn dispatch_restore(
        &self,
        restore: RestoreDispatch,
    ) -> Result<RetractJob, DispatchError> {
        let RestoreDispatch {
            tenant,
            job,
            request_id,
            reason,
            requested_by,
            administrator,
            trace_id,
        } = restore;
        let retract = self.store.tenant_job(&tenant, &job).await?;
        let options = RetractOptions {
            reason: reason.clone(),
            ..retract.options.clone()
        };
        if let Some(found) = self
            .store
            .job_by_request_id(
                &tenant,
                &request_id,
                &job_fingerprint(&options, Some(&retract.id)),
            )
            .await?
        {
            return Ok(found);
        }
        let refuse = |why| Err(DispatchError::NotRestorable(why));
        if retract.kind != JobKind::Retract {
            return refuse(NotRestorable::NotARetract);
        }
        if !retract.state.is_final() {
            return refuse(NotRestorable::NotFinished);
        }
        if retract.options.dry_run {
            return refuse(NotRestorable::DryRun);
        }
        if retract.options.delete_mode == DeleteMode::Hard {
            return refuse(NotRestorable::HardDelete);
        }
        if let Some(running) = self.store.running_restore(&retract.id).await? {
            return refuse(NotRestorable::RestoreRunning(running));
        }
        let mailboxes = self.store.mailboxes_to_restore(&retract.id).await?;
        if mailboxes.is_empty() {
            return refuse(NotRestorable::NothingToRestore);
        }
        self.check_dispatcher(&tenant, administrator).await?;
        // Each mailbox at the depth the retract reached it.
        let depths: std::collections::HashMap<EmailAddress, u8> = self
            .store
            .job_targets(&retract.id)
            .await?
            .into_iter()
            .map(|r| (r.target.mailbox, r.target.depth))
            .collect();
        let targets: Vec<(Target, Option<crate::domain::TargetResult>)> = mailboxes
            .into_iter()
            .map(|mailbox| {
                let depth = depths.get(&mailbox).copied().unwrap_or(0);
                (Target { mailbox, depth }, None)
            })
            .collect();
        let job_id = JobId::generate();
        let audit = AuditEntry {
            tenant_id: tenant.clone(),
            actor: requested_by.clone(),
            action: AuditAction::RestoreDispatched,
            target: job_id.to_string(),
            outcome: AuditOutcome::Succeeded,
            correlation_id: trace_id.clone(),
            details: AuditDetails::RestoreDispatched {
                job_id: job_id.clone(),
                restores_job_id: retract.id.clone(),
                request_id: request_id.clone(),
                reason,
                mailbox_count: u32::try_from(targets.len()).unwrap_or(u32::MAX),
            },
        };
        let new = NewJob {
            id: job_id,
            request_id,
            options,
            requested_by,
            targets,
            message: retract.message.clone(),
            correlation_id: trace_id,
            restores: Some(retract.id.clone()),
        };
        let (job, created) = match self.store.create_job(&tenant, new, audit).await {
            Err(StoreError::RestoreRunning(running)) => {
                return refuse(NotRestorable::RestoreRunning(running));
            }
            other => other?,
        };
        if created {
            self.wake();
        }
        Ok(job)
    }

    /// Whether a caller may dispatch a retract on `tenant` now: the tenant is linked to
    /// Microsoft 365, this replica has a Graph app registration, and a human administrator
    /// (`administrator`, when the caller is one) has a mailbox there. The same checks
    /// [`Engine::dispatch`] makes; the Retract tab shows their answer before the click.
    pub async fn check_dispatcher(
        &self,
        tenant: &TenantId,
        administrator: Option<Result<EmailAddress, String>>,
    ) -> Result<MicrosoftTenantId, DispatchError> {
        let tenant = self.store.get_tenant(tenant).await?;
        self.check_dispatcher_of(&tenant, administrator).await
    }

    /// [`Engine::check_dispatcher`] for a tenant already read.
    pub async fn check_dispatcher_of(
        &self,
        tenant: &Tenant,
        administrator: Option<Result<EmailAddress, String>>,
    ) -> Result<MicrosoftTenantId, DispatchError> {
        let microsoft = tenant
            .microsoft_tenant_id
            .clone()
            .ok_or(DispatchError::TenantNotLinked)?;
        let admins = self
            .admins
            .as_ref()
            .ok_or(DispatchError::GraphNotConfigured)?;
        match administrator {
            None => {}
            Some(Err(claim)) => return Err(DispatchError::AdministratorWithoutMailbox(claim)),
            Some(Ok(email)) if !admins.exists(&microsoft, &email).await? => {
                return Err(DispatchError::AdministratorWithoutMailbox(
                    email.to_string(),
                ));
            }
            Some(Ok(_)) => {}
        }
        Ok(microsoft)
    }

    /// Asks `job` of `tenant` to stop (work done stays done; the engine ends the rest
    /// CANCELLED) and audits who asked and why. The job as it is after the request.
    pub async fn cancel(
        &self,
        tenant: &TenantId,
        job: &JobId,
        request: CancelRequest,
        trace_id: String,
    ) -> Result<RetractJob, DispatchError> {
        let current = self.store.tenant_job(tenant, job).await?;
        if current.state.is_final() {
            return Err(DispatchError::JobFinished(current.state.as_str()));
        }
        let audit = AuditEntry {
            tenant_id: tenant.clone(),
            actor: request.requested_by.clone(),
            action: AuditAction::RetractCancelRequested,
            target: job.to_string(),
            outcome: AuditOutcome::Succeeded,
            correlation_id: trace_id,
            details: AuditDetails::RetractCancelRequested {
                job_id: job.clone(),
                reason: request.reason.clone(),
            },
        };
        if !self
            .store
            .request_cancel(tenant, job, request, audit)
            .await?
        {
            let ended = self.store.tenant_job(tenant, job).await?;
            return Err(DispatchError::JobFinished(ended.state.as_str()));
        }
        self.wake();
        Ok(self.store.tenant_job(tenant, job).await?)
    }
}
