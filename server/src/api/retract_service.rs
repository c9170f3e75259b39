//! `retract.v1.RetractService`: recording and searching deliveries, the Retract tab. Retract
//! jobs (the rest of issue #6) answer UNIMPLEMENTED naming the missing capability.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt as _};
use retract_proto::v1::{self as pb, retract_service_server::RetractService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::{
    AdminMailboxes, ApiError, FieldViolation,
    context::CallContext,
    convert, deliveries, jobs,
    validate::{self, Validated as _, Violations, field, optional_text},
};
use crate::{
    domain::{
        AuditSection, DeliveryFilter, Eligibility, EmailAddress, EventKind, InternetMessageId,
        NewDelivery, PageRequest, PageSize, PageToken, RecordOutcome, RetractJob, TenantId,
        ValidationError,
    },
    engine::{Engine, EventHub},
    graph::GraphClient,
    store::{DeliveryCursor, JobCursor, JobFilter, NewJob, Store},
};

/// How event streams behave.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// A Heartbeat is sent after this long without events.
    pub heartbeat: Duration,
    /// How often a watcher looks for events written by other replicas.
    pub poll: Duration,
}

/// The RetractService implementation.
#[derive(Clone)]
pub struct RetractApi {
    store: Store,
    engine: Engine,
    graph: Option<GraphClient>,
    hub: Arc<EventHub>,
    admins: Arc<AdminMailboxes>,
    watch: WatchSettings,
    stopping: CancellationToken,
}

impl RetractApi {
    /// Serves deliveries and jobs from `store`, running jobs on `engine`.
    pub fn new(
        store: Store,
        engine: Engine,
        graph: Option<GraphClient>,
        hub: Arc<EventHub>,
        admins: Arc<AdminMailboxes>,
        watch: WatchSettings,
        stopping: CancellationToken,
    ) -> Self {
        Self {
            store,
            engine,
            graph,
            hub,
            admins,
            watch,
            stopping,
        }
    }

    /// Checks a retract request and creates its job (or finds the one its request id made).
    async fn start(
        &self,
        ctx: &CallContext,
        tenant_id: &str,
        raw: Option<&pb::RetractOptions>,
        request_id: &str,
    ) -> Result<RetractJob, ApiError> {
        let (tenant,) = (field("tenant_id", TenantId::parse(tenant_id)),).validated()?;
        ctx.check_tenant(&tenant)?;
        let (options, request_id) = jobs::options(raw, request_id)?;
        // A repeated request re-attaches to its job even if the checks would now answer
        // differently (a mailbox found inaccessible, the delivery purged, Graph down).
        if let Some(job) = self
            .store
            .find_job_by_request(&tenant, &request_id, &options)
            .await?
        {
            return Ok(job);
        }
        let message = InternetMessageId::parse(&options.message_id)
            .map_err(|e| ApiError::Internal(e.0.into()))?;
        let delivery = self.store.get_delivery(&tenant, &message).await?;
        let domains = self.store.all_domains(&tenant).await?;
        let problems = self
            .store
            .mailbox_problems(&tenant, &delivery.recipients)
            .await?;
        let targets = jobs::targets(&options, &delivery, &domains, &problems)?;
        let linked = self
            .store
            .get_tenant(&tenant)
            .await?
            .microsoft_tenant_id
            .ok_or_else(|| ApiError::FailedPrecondition {
                reason: "TENANT_NOT_LINKED",
                message: "the tenant is not linked to Microsoft 365 yet; grant permissions first"
                    .into(),
            })?;
        let graph = self
            .graph
            .as_ref()
            .ok_or_else(|| ApiError::FailedPrecondition {
                reason: "GRAPH_NOT_CONFIGURED",
                message: "the Microsoft Graph app registration is not configured".into(),
            })?;
        if let Some(email) = &ctx.caller.email
            && !self.admins.exists(graph, &linked, email).await?
        {
            return Err(ApiError::PermissionDenied {
                reason: "ADMIN_MAILBOX_NOT_FOUND",
                message: format!(
                    "{email} is not a mailbox of this tenant's Microsoft 365; retracting needs an administrator with a mailbox there"
                ),
            });
        }
        let job_id = uuid::Uuid::now_v7().to_string();
        let audit = ctx.audit(
            &tenant,
            AuditSection::Retract,
            "retract_dispatched",
            job_id.clone(),
            serde_json::json!({
                "job_id": job_id,
                "internet_message_id": options.message_id,
                "recipients": targets.iter().map(|(t, _)| t.mailbox.clone()).collect::<Vec<_>>(),
                "options": options,
                "request_id": request_id,
            }),
        );
        let new = NewJob {
            id: job_id,
            request_id,
            options,
            requested_by: ctx.caller.actor().to_owned(),
            targets,
        };
        let (job, created) = self.store.create_job(&tenant, new, audit).await?;
        if created {
            self.engine.wake();
        }
        Ok(job)
    }

    /// The events of `job` after `after`: stored ones, then live ones, Heartbeats while idle;
    /// ends after JobFinished, at the caller's deadline, or when the server stops. A watcher
    /// that leaves does not affect the job.
    fn follow(
        &self,
        job: RetractJob,
        after: i64,
        deadline: Option<tokio::time::Instant>,
    ) -> mpsc::Receiver<Result<pb::RetractEvent, Status>> {
        let (tx, rx) = mpsc::channel(64);
        let (store, hub, watch, stopping) = (
            self.store.clone(),
            self.hub.clone(),
            self.watch.clone(),
            self.stopping.clone(),
        );
        tokio::spawn(async move {
            let mut live = hub.subscribe(&job.id);
            let proto_job = pb::RetractJob::from(job.clone());
            let mut last = after;
            let mut quiet_since = tokio::time::Instant::now();
            loop {
                let events = match store.events_after(&job.id, last, 200).await {
                    Ok(events) => events,
                    Err(err) => {
                        let _ = tx.send(Err(Status::from(ApiError::from(err)))).await;
                        return;
                    }
                };
                for e in &events {
                    if tx.send(Ok(jobs::event(e, &proto_job))).await.is_err() {
                        return;
                    }
                    last = e.sequence;
                    if matches!(e.kind, EventKind::JobFinished { .. }) {
                        return;
                    }
                }
                if !events.is_empty() {
                    quiet_since = tokio::time::Instant::now();
                    continue;
                }
                // A finished job has nothing more after its last event (or was purged).
                match store.job(&job.id).await {
                    Ok(current) if current.state.is_final() && last >= current.last_sequence => {
                        return;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        let _ = tx.send(Err(Status::from(ApiError::from(err)))).await;
                        return;
                    }
                }
                let until_deadline = deadline.unwrap_or_else(|| {
                    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
                });
                tokio::select! {
                    _ = live.changed() => {}
                    () = tokio::time::sleep(watch.poll) => {}
                    () = tokio::time::sleep_until(quiet_since + watch.heartbeat) => {
                        if tx.send(Ok(jobs::heartbeat(&job.id, last))).await.is_err() {
                            return;
                        }
                        quiet_since = tokio::time::Instant::now();
                    }
                    () = tokio::time::sleep_until(until_deadline) => {
                        let _ = tx.send(Err(Status::deadline_exceeded("the caller's deadline passed; watch again from the last sequence"))).await;
                        return;
                    }
                    () = stopping.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("the server is shutting down; watch again from the last sequence"))).await;
                        return;
                    }
                }
            }
        });
        rx
    }
}

/// The caller's deadline from `grpc-timeout` (e.g. `5S`, `250m`), if it sent one.
fn deadline<T>(request: &Request<T>) -> Option<tokio::time::Instant> {
    let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let duration = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    tokio::time::Instant::now().checked_add(duration)
}

/// An optional filter: empty means "no filter", anything else must parse.
fn optional<T>(
    raw: &str,
    parse: fn(&str) -> Result<T, ValidationError>,
) -> Result<Option<T>, ValidationError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        parse(raw).map(Some)
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RetractService for RetractApi {
    type RetractStream = EventStream<pb::RetractResponse>;
    type WatchRetractStream = EventStream<pb::WatchRetractResponse>;

    async fn record_delivery(
        &self,
        request: Request<pb::RecordDeliveryRequest>,
    ) -> Result<Response<pb::RecordDeliveryResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let mut violations = Violations::default();
        let tenant = violations.check("tenant_id", TenantId::parse(&r.tenant_id));
        let delivery = match &r.delivery {
            Some(d) => deliveries::parse(&mut violations, "delivery", d),
            None => {
                violations.push("delivery", "is required");
                None
            }
        };
        violations.finish()?;
        let (Some(tenant), Some(delivery)) = (tenant, delivery) else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        ctx.check_tenant(&tenant)?;
        let message_id = delivery.message_id.clone();
        let outcomes = self
            .store
            .record_deliveries(&tenant, vec![delivery])
            .await
            .map_err(ApiError::from)?;
        let stored = self
            .store
            .get_delivery(&tenant, &message_id)
            .await
            .map_err(ApiError::from)?;
        let outcome = outcomes
            .first()
            .copied()
            .map_or(pb::RecordOutcome::Unspecified, Into::into);
        Ok(Response::new(pb::RecordDeliveryResponse {
            delivery: Some(stored.into()),
            outcome: outcome.into(),
        }))
    }

    async fn record_deliveries(
        &self,
        request: Request<pb::RecordDeliveriesRequest>,
    ) -> Result<Response<pb::RecordDeliveriesResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let mut violations = Violations::default();
        let tenant = violations.check("tenant_id", TenantId::parse(&r.tenant_id));
        if r.deliveries.is_empty() || r.deliveries.len() > NewDelivery::MAX_BATCH {
            violations.push(
                "deliveries",
                &format!("must hold 1 to {} deliveries", NewDelivery::MAX_BATCH),
            );
        }
        let parsed: Vec<Option<NewDelivery>> = r
            .deliveries
            .iter()
            .take(NewDelivery::MAX_BATCH)
            .enumerate()
            .map(|(i, d)| deliveries::parse(&mut violations, &format!("deliveries[{i}]"), d))
            .collect();
        violations.finish()?;
        let Some(tenant) = tenant else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        ctx.check_tenant(&tenant)?;
        let (groups, index_of) = deliveries::merge_repeats(parsed.into_iter().flatten().collect());
        let outcomes = self
            .store
            .record_deliveries(&tenant, groups)
            .await
            .map_err(ApiError::from)?;
        let per_request: Vec<pb::RecordOutcome> = index_of
            .iter()
            .map(|&g| {
                outcomes
                    .get(g)
                    .copied()
                    .map_or(pb::RecordOutcome::Unspecified, Into::into)
            })
            .collect();
        let count = |o: RecordOutcome| {
            i32::try_from(outcomes.iter().filter(|x| **x == o).count()).unwrap_or(i32::MAX)
        };
        Ok(Response::new(pb::RecordDeliveriesResponse {
            outcomes: per_request.into_iter().map(Into::into).collect(),
            created_count: count(RecordOutcome::Created),
            merged_count: count(RecordOutcome::Merged),
            unchanged_count: count(RecordOutcome::Unchanged),
        }))
    }

    async fn search_deliveries(
        &self,
        request: Request<pb::SearchDeliveriesRequest>,
    ) -> Result<Response<pb::SearchDeliveriesResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (
            tenant,
            message_id,
            sender,
            recipient,
            subject_contains,
            delivered_after,
            delivered_before,
            size,
        ) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field(
                "internet_message_id",
                optional(&r.internet_message_id, InternetMessageId::parse),
            ),
            field("sender", optional(&r.sender, EmailAddress::parse)),
            field("recipient", optional(&r.recipient, EmailAddress::parse)),
            field("subject_contains", optional_text(&r.subject_contains, 200)),
            field(
                "delivered_after",
                convert::optional_time(r.delivered_after.as_ref()),
            ),
            field(
                "delivered_before",
                convert::optional_time(r.delivered_before.as_ref()),
            ),
            field("page_size", PageSize::parse(r.page_size)),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let filter = DeliveryFilter {
            message_id,
            sender,
            recipient,
            subject_contains,
            delivered_after,
            delivered_before,
        };
        let query = format!("SearchDeliveries tenant={tenant} {}", filter.fingerprint());
        let (after,) = (field(
            "page_token",
            PageToken::decode::<DeliveryCursor>(&query, &r.page_token),
        ),)
            .validated()?;
        let page = self
            .store
            .search_deliveries(&tenant, &filter, &PageRequest { size, after })
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.next_page_token(&query, |(d, id)| (d.delivered_at, id.clone()));
        Ok(Response::new(pb::SearchDeliveriesResponse {
            deliveries: page.items.into_iter().map(|(d, _)| d.into()).collect(),
            next_page_token,
        }))
    }

    async fn get_retract_options(
        &self,
        request: Request<pb::GetRetractOptionsRequest>,
    ) -> Result<Response<pb::GetRetractOptionsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, message_id) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field(
                "internet_message_id",
                InternetMessageId::parse(&r.internet_message_id),
            ),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let delivery = self
            .store
            .get_delivery(&tenant, &message_id)
            .await
            .map_err(ApiError::from)?;
        let domains = self
            .store
            .all_domains(&tenant)
            .await
            .map_err(ApiError::from)?;
        let problems = self
            .store
            .mailbox_problems(&tenant, &delivery.recipients)
            .await
            .map_err(ApiError::from)?;
        let recipients = delivery
            .recipients
            .iter()
            .map(|address| {
                let eligibility = Eligibility::assess(address, &domains, &problems);
                convert::recipient_option(address, &eligibility)
            })
            .collect();
        Ok(Response::new(pb::GetRetractOptionsResponse {
            delivery: Some(delivery.into()),
            recipients,
        }))
    }

    async fn retract(
        &self,
        request: Request<pb::RetractRequest>,
    ) -> Result<Response<Self::RetractStream>, Status> {
        let ctx = CallContext::of(&request)?;
        let until = deadline(&request);
        let r = request.get_ref();
        let job = self
            .start(&ctx, &r.tenant_id, r.options.as_ref(), &r.request_id)
            .await?;
        let events = ReceiverStream::new(self.follow(job, 0, until))
            .map(|e| e.map(|event| pb::RetractResponse { event: Some(event) }));
        Ok(Response::new(Box::pin(events)))
    }

    async fn start_retract(
        &self,
        request: Request<pb::StartRetractRequest>,
    ) -> Result<Response<pb::StartRetractResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let job = self
            .start(&ctx, &r.tenant_id, r.options.as_ref(), &r.request_id)
            .await?;
        Ok(Response::new(pb::StartRetractResponse {
            job: Some(job.into()),
        }))
    }

    async fn watch_retract(
        &self,
        request: Request<pb::WatchRetractRequest>,
    ) -> Result<Response<Self::WatchRetractStream>, Status> {
        let ctx = CallContext::of(&request)?;
        let until = deadline(&request);
        let r = request.get_ref();
        let (tenant, job_id) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("job_id", validate::uuid(&r.job_id, "a job id")),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        if r.after_sequence < 0 {
            return Err(ApiError::InvalidArgument(vec![FieldViolation {
                field: "after_sequence".into(),
                description: "must not be negative".into(),
            }])
            .into());
        }
        let job = self
            .store
            .get_job(&tenant, &job_id)
            .await
            .map_err(ApiError::from)?;
        let events = ReceiverStream::new(self.follow(job, r.after_sequence, until))
            .map(|e| e.map(|event| pb::WatchRetractResponse { event: Some(event) }));
        Ok(Response::new(Box::pin(events)))
    }

    async fn get_retract_job(
        &self,
        request: Request<pb::GetRetractJobRequest>,
    ) -> Result<Response<pb::GetRetractJobResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let (tenant, job_id) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("job_id", validate::uuid(&r.job_id, "a job id")),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let job = self
            .store
            .get_job(&tenant, &job_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::GetRetractJobResponse {
            job: Some(job.into()),
        }))
    }

    async fn list_retract_jobs(
        &self,
        request: Request<pb::ListRetractJobsRequest>,
    ) -> Result<Response<pb::ListRetractJobsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, state, message_id, created_after, created_before, size) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("state", jobs::state_filter(r.state)),
            field(
                "internet_message_id",
                optional(&r.internet_message_id, InternetMessageId::parse),
            ),
            field(
                "create_after",
                convert::optional_time(r.create_after.as_ref()),
            ),
            field(
                "create_before",
                convert::optional_time(r.create_before.as_ref()),
            ),
            field("page_size", PageSize::parse(r.page_size)),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let filter = JobFilter {
            state,
            message_id,
            created_after,
            created_before,
        };
        let query = format!("ListRetractJobs tenant={tenant} {filter:?}");
        let (after,) = (field(
            "page_token",
            PageToken::decode::<JobCursor>(&query, &r.page_token),
        ),)
            .validated()?;
        let page = self
            .store
            .list_jobs(&tenant, &filter, &PageRequest { size, after })
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.next_page_token(&query, |j| (j.created_at, j.id.clone()));
        Ok(Response::new(pb::ListRetractJobsResponse {
            jobs: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn cancel_retract_job(
        &self,
        request: Request<pb::CancelRetractJobRequest>,
    ) -> Result<Response<pb::CancelRetractJobResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let (tenant, job_id, reason) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("job_id", validate::uuid(&r.job_id, "a job id")),
            field("reason", optional_text(&r.reason, 500)),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let job = self
            .store
            .get_job(&tenant, &job_id)
            .await
            .map_err(ApiError::from)?;
        if job.state.is_final() {
            return Err(ApiError::FailedPrecondition {
                reason: "JOB_FINISHED",
                message: format!("the job already ended {}", job.state.as_str()),
            }
            .into());
        }
        self.store
            .request_cancel(&tenant, &job_id)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(job = %job_id, actor = ctx.caller.actor(), reason = reason.as_deref().unwrap_or(""), "retract job cancellation requested");
        self.engine.wake();
        let job = self
            .store
            .get_job(&tenant, &job_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CancelRetractJobResponse {
            job: Some(job.into()),
        }))
    }
}
