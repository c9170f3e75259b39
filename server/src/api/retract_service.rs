//! `retract.v1.RetractService`: recording and searching deliveries, the Retract tab, and
//! retract jobs — starting them, watching their events, reading, listing and cancelling them.
//! Each RPC reads its request, hands the work to the store or the engine, and converts the
//! answer.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt as _};
use retract_proto::{
    framed::{EventFrame, OptionsFrame, retract_service_server::RetractService},
    v1 as pb,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use tonic_types::StatusExt as _;

use super::{
    ApiError, FieldViolation,
    context::CallContext,
    convert, deliveries,
    error::Reason,
    jobs,
    validate::{self, Validated as _, Violations, field, optional_text},
};
use crate::{
    auth::{AuthRejection, Permission, StreamCaps, StreamSlot},
    domain::{
        DeliveryFilter, EmailAddress, InternetMessageId, JobId, JobState, NewDelivery, PageRequest,
        PageSize, PageToken, RecordOutcome, RetractJob, RetractOptions, TargetOutcome, Tenant,
        ValidationError, merge_repeats,
    },
    engine::{Dispatch, DispatchError, Engine, RestoreDispatch, Watcher},
    store::{
        CancelRequest, DeliveryCursor, JobCursor, JobFilter, Store, TargetCursor, TargetFilter,
    },
};

/// The RetractService implementation.
#[derive(Clone)]
pub struct RetractApi {
    store: Store,
    engine: Engine,
    watcher: Watcher,
    streams: Arc<StreamCaps>,
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl RetractApi {
    /// Serves deliveries and jobs from `store`, starting jobs on `engine` and following them
    /// with `watcher`.
    /// `streams` caps the streams open at once (Retract, WatchRetract, RestoreRetractJob).
    pub fn new(store: Store, engine: Engine, watcher: Watcher, streams: Arc<StreamCaps>) -> Self {
        Self {
            store,
            engine,
            watcher,
            streams,
        }
    }

    /// Reads a retract request and dispatches its job (or finds the one its request id made).
    async fn start(
        &self,
        ctx: &CallContext,
        tenant_id: &str,
        options: Option<&pb::RetractOptions>,
        request_id: &str,
    ) -> Result<RetractJob, ApiError> {
        let (tenant,) = (ctx.tenant(tenant_id),).validated_for(ctx)?;
        let (options, request_id) = jobs::options(options, request_id)?;
        let message_id = options.message_id.clone();
        let dispatch = Dispatch {
            tenant: tenant.clone(),
            options,
            request_id,
            requested_by: ctx.caller.actor().to_owned(),
            administrator: administrator(ctx),
            trace_id: ctx.request_id.clone(),
        };
        self.engine
            .dispatch(dispatch)
            .await
            .map_err(|e| jobs::dispatch_error(e, &tenant, Some(&message_id), None))
    }

    async fn retract_stream(
        &self,
        request: Request<pb::RetractRequest>,
    ) -> Result<EventStream<EventFrame>, ApiError> {
        let ctx = CallContext::of(&request)?;
        let slot = self.open_stream(&ctx)?;
        let until = deadline(&request);
        let r = request.get_ref();
        let job = self
            .start(&ctx, &r.tenant_id, r.options.as_ref(), &r.request_id)
            .await?;
        Ok(self.follow(job, 0, until, slot))
    }

    async fn start_job(
        &self,
        request: Request<pb::StartRetractRequest>,
    ) -> Result<pb::StartRetractResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let job = self
            .start(&ctx, &r.tenant_id, r.options.as_ref(), &r.request_id)
            .await?;
        Ok(pb::StartRetractResponse {
            job: Some(job.into()),
        })
    }

    /// A slot for one more stream of the caller (checked before a retract starts its job, so
    /// that a refused stream starts nothing).
    fn open_stream(&self, ctx: &CallContext) -> Result<StreamSlot, ApiError> {
        self.streams
            .try_open(&ctx.caller.subject)
            .map_err(ApiError::TooManyStreams)
    }

    /// The events of `job` after `after`, encoded (live ones once for all of this replica's
    /// watchers of the job); the stream holds `slot` while it is open.
    fn follow(
        &self,
        job: RetractJob,
        after: i64,
        deadline: Option<tokio::time::Instant>,
        slot: StreamSlot,
    ) -> EventStream<EventFrame> {
        let events = self.watcher.follow(&job, after, deadline);
        let proto_job = pb::RetractJob::from(job);
        Box::pin(ReceiverStream::new(events).map(move |item| {
            let _open = &slot;
            match item {
                Ok(watched) => Ok(jobs::frame(&watched, &proto_job)),
                Err(end) => Err(Status::from(ApiError::from(end))),
            }
        }))
    }

    async fn record_one(
        &self,
        request: Request<pb::RecordDeliveryRequest>,
    ) -> Result<pb::RecordDeliveryResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let delivery = match &r.delivery {
            Some(d) => {
                let mut violations = Violations::default();
                let parsed = deliveries::parse(&mut violations, "delivery", d);
                violations.or_value(parsed)
            }
            None => Err(FieldViolation {
                field: "delivery".into(),
                description: "is required".into(),
            }
            .into()),
        };
        let (tenant, delivery) = (ctx.tenant(&r.tenant_id), delivery).validated_for(&ctx)?;
        let message_id = delivery.message_id.clone();
        let outcomes = self
            .store
            .record_deliveries(&tenant, vec![delivery])
            .await?;
        let stored = self.store.get_delivery(&tenant, &message_id).await?;
        let outcome = outcomes
            .first()
            .copied()
            .map_or(pb::RecordOutcome::Unspecified, Into::into);
        Ok(pb::RecordDeliveryResponse {
            delivery: Some(stored.into()),
            outcome: outcome.into(),
        })
    }

    async fn record_batch(
        &self,
        request: Request<pb::RecordDeliveriesRequest>,
    ) -> Result<pb::RecordDeliveriesResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let mut violations = Violations::default();
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
        let batch = violations.or_value(Some(parsed.into_iter().flatten().collect::<Vec<_>>()));
        let (tenant, batch) = (ctx.tenant(&r.tenant_id), batch).validated_for(&ctx)?;
        let (groups, index_of) = merge_repeats(batch);
        let outcomes = self.store.record_deliveries(&tenant, groups).await?;
        let per_request: Vec<i32> = index_of
            .iter()
            .map(|&g| {
                outcomes
                    .get(g)
                    .copied()
                    .map_or(pb::RecordOutcome::Unspecified, Into::into)
                    .into()
            })
            .collect();
        let count = |o: RecordOutcome| {
            i32::try_from(outcomes.iter().filter(|x| **x == o).count()).unwrap_or(i32::MAX)
        };
        Ok(pb::RecordDeliveriesResponse {
            outcomes: per_request,
            created_count: count(RecordOutcome::Created),
            merged_count: count(RecordOutcome::Merged),
            unchanged_count: count(RecordOutcome::Unchanged),
        })
    }

    async fn search(
        &self,
        request: Request<pb::SearchDeliveriesRequest>,
    ) -> Result<pb::SearchDeliveriesResponse, ApiError> {
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
            ctx.tenant(&r.tenant_id),
            field(
                "internet_message_id",
                optional(&r.internet_message_id, InternetMessageId::parse),
            ),
            field("sender", optional(&r.sender, EmailAddress::parse)),
            field("recipient", optional(&r.recipient, EmailAddress::parse)),
            field("subject_contains", optional_text(&r.subject_contains, 200)),
            field(
                "delivery_after",
                convert::optional_time(r.delivery_after.as_ref()),
            ),
            field(
                "delivery_before",
                convert::optional_time(r.delivery_before.as_ref()),
            ),
            field("page_size", PageSize::parse(r.page_size)),
        )
            .validated_for(&ctx)?;
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
            .await?;
        let next_page_token = page.next_page_token(&query, |(d, id)| (d.delivered_at, id.clone()));
        Ok(pb::SearchDeliveriesResponse {
            deliveries: page.items.into_iter().map(|(d, _)| d.into()).collect(),
            next_page_token,
        })
    }

    async fn options_tab(
        &self,
        request: Request<pb::GetRetractOptionsRequest>,
    ) -> Result<OptionsFrame, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, message_id, size) = (
            ctx.tenant(&r.tenant_id),
            field(
                "internet_message_id",
                InternetMessageId::parse(&r.internet_message_id),
            ),
            field("page_size", recipients_page_size(r.page_size)),
        )
            .validated_for(&ctx)?;
        let query = format!("GetRetractOptions tenant={tenant} message={message_id}");
        let (after,) = (field(
            "page_token",
            PageToken::decode::<EmailAddress>(&query, &r.page_token),
        ),)
            .validated()?;
        let tab = self
            .engine
            .retract_tab(&tenant, &message_id, &PageRequest { size, after })
            .await?;
        let precondition = self.precondition(&ctx, &tab.tenant).await?;
        let next_page_token = tab
            .recipients
            .rows()
            .next_page_token(&query, |row| row.address.clone());
        Ok(OptionsFrame {
            delivery: Some(tab.delivery.into()),
            recipients: tab.recipients.wire(convert::recipient_options),
            caller_can_retract: Some(precondition),
            conversations_available: true,
            max_conversation_depth: i32::from(RetractOptions::MAX_DEPTH),
            next_page_token,
        })
    }

    /// Whether this caller could press Retract on `tenant` now, as StartRetract would answer.
    async fn precondition(
        &self,
        ctx: &CallContext,
        tenant: &Tenant,
    ) -> Result<pb::RetractPrecondition, ApiError> {
        let refused = |err: ApiError| -> Result<pb::RetractPrecondition, ApiError> {
            let status = Status::from(err);
            let code = status
                .get_error_details()
                .error_info()
                .map(|i| i.reason.clone())
                .unwrap_or_default();
            Ok(pb::RetractPrecondition {
                allowed: false,
                code,
                detail: status.message().to_owned(),
            })
        };
        if !ctx.caller.has(Permission::RetractMessage) {
            return refused(ApiError::from(AuthRejection::MissingPermission {
                permission: Permission::RetractMessage.as_str(),
            }));
        }
        match self
            .engine
            .check_dispatcher_of(tenant, administrator(ctx))
            .await
        {
            Ok(_) => Ok(pb::RetractPrecondition {
                allowed: true,
                code: String::new(),
                detail: String::new(),
            }),
            // The database failing is this call's failure, not an answer about the caller.
            Err(DispatchError::Store(err)) => Err(err.into()),
            Err(err) => refused(jobs::dispatch_error(err, &tenant.id, None, None)),
        }
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRetractRequest>,
    ) -> Result<EventStream<EventFrame>, ApiError> {
        let ctx = CallContext::of(&request)?;
        let slot = self.open_stream(&ctx)?;
        let until = deadline(&request);
        let r = request.get_ref();
        let (tenant, job_id) = (
            ctx.tenant(&r.tenant_id),
            field("job_id", JobId::parse(&r.job_id)),
        )
            .validated_for(&ctx)?;
        let (after,) = (field("after_sequence", not_negative(r.after_sequence)),).validated()?;
        let job = self.store.tenant_job(&tenant, &job_id).await?;
        if after > job.last_sequence {
            return Err(ApiError::OutOfRange {
                reason: Reason::SequenceOutOfRange,
                message: format!(
                    "after_sequence {after} is beyond the job's last event ({})",
                    job.last_sequence
                ),
                metadata: vec![
                    ("job_id", job.id.to_string()),
                    ("last_sequence", job.last_sequence.to_string()),
                ],
            });
        }
        Ok(self.follow(job, after, until, slot))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetRetractJobRequest>,
    ) -> Result<pb::GetRetractJobResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let (tenant, job_id) = (
            ctx.tenant(&r.tenant_id),
            field("job_id", JobId::parse(&r.job_id)),
        )
            .validated_for(&ctx)?;
        let job = self.store.tenant_job(&tenant, &job_id).await?;
        Ok(pb::GetRetractJobResponse {
            job: Some(job.into()),
        })
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListRetractJobsRequest>,
    ) -> Result<pb::ListRetractJobsResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, states, requested_by, message_id, created_after, created_before, size) = (
            ctx.tenant(&r.tenant_id),
            field("states", states(&r.states)),
            field("requested_by", optional_text(&r.requested_by, 320)),
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
            .validated_for(&ctx)?;
        let filter = JobFilter {
            states,
            requested_by,
            message_id,
            created_after,
            created_before,
        };
        let query = format!("ListRetractJobs tenant={tenant} {}", filter.fingerprint());
        let (after,) = (field(
            "page_token",
            PageToken::decode::<JobCursor>(&query, &r.page_token),
        ),)
            .validated()?;
        let page = self
            .store
            .list_jobs(&tenant, &filter, &PageRequest { size, after })
            .await?;
        let next_page_token = page.next_page_token(&query, |j| (j.created_at, j.id.to_string()));
        Ok(pb::ListRetractJobsResponse {
            jobs: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRetractJobRequest>,
    ) -> Result<pb::CancelRetractJobResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let (tenant, job_id, reason) = (
            ctx.tenant(&r.tenant_id),
            field("job_id", JobId::parse(&r.job_id)),
            field("reason", optional_text(&r.reason, 500)),
        )
            .validated_for(&ctx)?;
        let request = CancelRequest {
            requested_by: ctx.caller.actor().to_owned(),
            reason,
        };
        let job = self
            .engine
            .cancel(&tenant, &job_id, request, ctx.request_id.clone())
            .await
            .map_err(|e| jobs::dispatch_error(e, &tenant, None, Some(&job_id)))?;
        tracing::info!(job = %job_id, actor = ctx.caller.actor(), "retract job cancellation requested");
        Ok(pb::CancelRetractJobResponse {
            job: Some(job.into()),
        })
    }

    async fn restore(
        &self,
        request: Request<pb::RestoreRetractJobRequest>,
    ) -> Result<EventStream<EventFrame>, ApiError> {
        let ctx = CallContext::of(&request)?;
        let slot = self.open_stream(&ctx)?;
        let until = deadline(&request);
        let r = request.get_ref();
        let (tenant, job_id, request_id, reason) = (
            ctx.tenant(&r.tenant_id),
            field("job_id", JobId::parse(&r.job_id)),
            field("request_id", validate::uuid(&r.request_id, "a request id")),
            field(
                "reason",
                optional_text(&r.reason, RetractOptions::MAX_REASON_CHARS),
            ),
        )
            .validated_for(&ctx)?;
        let dispatch = RestoreDispatch {
            tenant: tenant.clone(),
            job: job_id.clone(),
            request_id,
            reason,
            requested_by: ctx.caller.actor().to_owned(),
            administrator: administrator(&ctx),
            trace_id: ctx.request_id.clone(),
        };
        let job = self
            .engine
            .dispatch_restore(dispatch)
            .await
            .map_err(|e| jobs::dispatch_error(e, &tenant, None, Some(&job_id)))?;
        tracing::info!(job = %job.id, restores = %job_id, actor = ctx.caller.actor(), "restore job dispatched");
        Ok(self.follow(job, 0, until, slot))
    }

    async fn list_targets(
        &self,
        request: Request<pb::ListRetractTargetsRequest>,
    ) -> Result<pb::ListRetractTargetsResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, job_id, outcomes, depth, size) = (
            ctx.tenant(&r.tenant_id),
            field("job_id", JobId::parse(&r.job_id)),
            field("outcomes", outcomes(&r.outcomes)),
            field("depth", r.depth.map(RetractOptions::depth).transpose()),
            field("page_size", PageSize::parse(r.page_size)),
        )
            .validated_for(&ctx)?;
        let filter = TargetFilter { outcomes, depth };
        let query = format!(
            "ListRetractTargets tenant={tenant} job={job_id} {}",
            filter.fingerprint()
        );
        let (after,) = (field(
            "page_token",
            PageToken::decode::<TargetCursor>(&query, &r.page_token),
        ),)
            .validated()?;
        // The tenant check of the job, before its targets are read.
        self.store.tenant_job(&tenant, &job_id).await?;
        let (page, as_of) = self
            .store
            .list_targets(&job_id, &filter, &PageRequest { size, after })
            .await?;
        let next_page_token =
            page.next_page_token(&query, |t| (t.target.depth, t.target.mailbox.to_string()));
        Ok(pb::ListRetractTargetsResponse {
            targets: page.items.iter().map(jobs::target_status).collect(),
            next_page_token,
            as_of_sequence: as_of,
        })
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

/// The administrator a caller is, for the mailbox check: its email claim, parsed (a claim
/// that is not an address cannot be a mailbox); `None` for service callers.
fn administrator(ctx: &CallContext) -> Option<Result<EmailAddress, String>> {
    ctx.caller
        .email
        .as_deref()
        .map(|e| EmailAddress::parse(e).map_err(|_| e.to_owned()))
}

/// The Retract tab lists up to 1,000 recipients a page (default 1,000).
fn recipients_page_size(raw: i32) -> Result<PageSize, ValidationError> {
    if raw == 0 {
        Ok(PageSize::max())
    } else {
        PageSize::parse(raw)
    }
}

fn states(raw: &[i32]) -> Result<Vec<JobState>, ValidationError> {
    let mut states = Vec::new();
    for s in raw {
        match jobs::state_filter(*s)? {
            Some(state) if !states.contains(&state) => states.push(state),
            Some(_) => {}
            None => {
                return Err(ValidationError(
                    "must not contain JOB_STATE_UNSPECIFIED".into(),
                ));
            }
        }
    }
    Ok(states)
}

fn outcomes(raw: &[i32]) -> Result<Vec<Option<TargetOutcome>>, ValidationError> {
    let mut outcomes = Vec::new();
    for o in raw {
        let outcome = jobs::outcome_filter(*o)?;
        if !outcomes.contains(&outcome) {
            outcomes.push(outcome);
        }
    }
    Ok(outcomes)
}

fn not_negative(sequence: i64) -> Result<i64, ValidationError> {
    if sequence < 0 {
        Err(ValidationError("must not be negative".into()))
    } else {
        Ok(sequence)
    }
}

#[tonic::async_trait]
impl RetractService for RetractApi {
    type RetractStream = EventStream<EventFrame>;
    type WatchRetractStream = EventStream<EventFrame>;
    type RestoreRetractJobStream = EventStream<EventFrame>;

    async fn record_delivery(
        &self,
        request: Request<pb::RecordDeliveryRequest>,
    ) -> Result<Response<pb::RecordDeliveryResponse>, Status> {
        Ok(Response::new(self.record_one(request).await?))
    }

    async fn record_deliveries(
        &self,
        request: Request<pb::RecordDeliveriesRequest>,
    ) -> Result<Response<pb::RecordDeliveriesResponse>, Status> {
        Ok(Response::new(self.record_batch(request).await?))
    }

    async fn search_deliveries(
        &self,
        request: Request<pb::SearchDeliveriesRequest>,
    ) -> Result<Response<pb::SearchDeliveriesResponse>, Status> {
        Ok(Response::new(self.search(request).await?))
    }

    async fn get_retract_options(
        &self,
        request: Request<pb::GetRetractOptionsRequest>,
    ) -> Result<Response<OptionsFrame>, Status> {
        Ok(Response::new(self.options_tab(request).await?))
    }

    async fn retract(
        &self,
        request: Request<pb::RetractRequest>,
    ) -> Result<Response<Self::RetractStream>, Status> {
        Ok(Response::new(self.retract_stream(request).await?))
    }

    async fn start_retract(
        &self,
        request: Request<pb::StartRetractRequest>,
    ) -> Result<Response<pb::StartRetractResponse>, Status> {
        Ok(Response::new(self.start_job(request).await?))
    }

    async fn watch_retract(
        &self,
        request: Request<pb::WatchRetractRequest>,
    ) -> Result<Response<Self::WatchRetractStream>, Status> {
        Ok(Response::new(self.watch(request).await?))
    }

    async fn get_retract_job(
        &self,
        request: Request<pb::GetRetractJobRequest>,
    ) -> Result<Response<pb::GetRetractJobResponse>, Status> {
        Ok(Response::new(self.get_job(request).await?))
    }

    async fn list_retract_jobs(
        &self,
        request: Request<pb::ListRetractJobsRequest>,
    ) -> Result<Response<pb::ListRetractJobsResponse>, Status> {
        Ok(Response::new(self.list_jobs(request).await?))
    }

    async fn cancel_retract_job(
        &self,
        request: Request<pb::CancelRetractJobRequest>,
    ) -> Result<Response<pb::CancelRetractJobResponse>, Status> {
        Ok(Response::new(self.cancel(request).await?))
    }

    async fn list_retract_targets(
        &self,
        request: Request<pb::ListRetractTargetsRequest>,
    ) -> Result<Response<pb::ListRetractTargetsResponse>, Status> {
        Ok(Response::new(self.list_targets(request).await?))
    }

    async fn restore_retract_job(
        &self,
        request: Request<pb::RestoreRetractJobRequest>,
    ) -> Result<Response<Self::RestoreRetractJobStream>, Status> {
        Ok(Response::new(self.restore(request).await?))
    }
}
