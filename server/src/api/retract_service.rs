//! `retract.v1.RetractService`: recording and searching deliveries, the Retract tab, and
//! retract jobs — starting them, watching their events, reading, listing and cancelling them.
//! Each RPC reads its request, hands the work to the store or the engine, and converts the
//! answer; conversations (replies and forwards) answer UNIMPLEMENTED until issue #11.

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt as _};
use retract_proto::v1::{self as pb, retract_service_server::RetractService};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    ApiError, FieldViolation,
    context::CallContext,
    convert, deliveries, jobs,
    validate::{Validated as _, Violations, field, optional_text},
};
use crate::{
    domain::{
        DeliveryFilter, Eligibility, EmailAddress, InternetMessageId, JobId, NewDelivery,
        PageRequest, PageSize, PageToken, RecordOutcome, RetractJob, ValidationError,
        merge_repeats,
    },
    engine::{Dispatch, Engine, Watcher},
    store::{DeliveryCursor, JobCursor, JobFilter, Store},
};

/// The RetractService implementation.
#[derive(Clone)]
pub struct RetractApi {
    store: Store,
    engine: Engine,
    watcher: Watcher,
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl RetractApi {
    /// Serves deliveries and jobs from `store`, starting jobs on `engine` and following them
    /// with `watcher`.
    pub fn new(store: Store, engine: Engine, watcher: Watcher) -> Self {
        Self {
            store,
            engine,
            watcher,
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
        let administrator = ctx
            .caller
            .email
            .as_deref()
            .map(|e| EmailAddress::parse(e).map_err(|_| e.to_owned()));
        let dispatch = Dispatch {
            tenant,
            options,
            request_id,
            requested_by: ctx.caller.actor().to_owned(),
            administrator,
            trace_id: ctx.request_id.clone(),
        };
        Ok(self.engine.dispatch(dispatch).await?)
    }

    /// The events of `job` after `after`, as `wrap` makes them into stream items.
    fn follow<T: Send + 'static>(
        &self,
        job: RetractJob,
        after: i64,
        deadline: Option<tokio::time::Instant>,
        wrap: fn(pb::RetractEvent) -> T,
    ) -> EventStream<T> {
        let events = self.watcher.follow(&job, after, deadline);
        let proto_job = pb::RetractJob::from(job);
        Box::pin(ReceiverStream::new(events).map(move |item| match item {
            Ok(watched) => Ok(wrap(jobs::watched(watched, &proto_job))),
            Err(end) => Err(Status::from(ApiError::from(end))),
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
                "delivered_after",
                convert::optional_time(r.delivered_after.as_ref()),
            ),
            field(
                "delivered_before",
                convert::optional_time(r.delivered_before.as_ref()),
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
    ) -> Result<pb::GetRetractOptionsResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, message_id) = (
            ctx.tenant(&r.tenant_id),
            field(
                "internet_message_id",
                InternetMessageId::parse(&r.internet_message_id),
            ),
        )
            .validated_for(&ctx)?;
        let delivery = self.store.get_delivery(&tenant, &message_id).await?;
        let domains = self.store.all_domains(&tenant).await?;
        let problems = self
            .store
            .mailbox_problems(&tenant, &delivery.recipients)
            .await?;
        let recipients = delivery
            .recipients
            .iter()
            .map(|address| {
                let eligibility = Eligibility::assess(address, &domains, &problems);
                convert::recipient_option(address, &eligibility)
            })
            .collect();
        Ok(pb::GetRetractOptionsResponse {
            delivery: Some(delivery.into()),
            recipients,
        })
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRetractRequest>,
    ) -> Result<EventStream<pb::WatchRetractResponse>, ApiError> {
        let ctx = CallContext::of(&request)?;
        let until = deadline(&request);
        let r = request.get_ref();
        let (tenant, job_id, after) = (
            ctx.tenant(&r.tenant_id),
            field("job_id", JobId::parse(&r.job_id)),
            field("after_sequence", not_negative(r.after_sequence)),
        )
            .validated_for(&ctx)?;
        let job = self.store.tenant_job(&tenant, &job_id).await?;
        Ok(
            self.follow(job, after, until, |event| pb::WatchRetractResponse {
                event: Some(event),
            }),
        )
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
        let (tenant, state, message_id, created_after, created_before, size) = (
            ctx.tenant(&r.tenant_id),
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
            .validated_for(&ctx)?;
        let filter = JobFilter {
            state,
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
        let job = self.store.tenant_job(&tenant, &job_id).await?;
        if job.state.is_final() {
            return Err(ApiError::FailedPrecondition {
                reason: "JOB_FINISHED",
                message: format!("the job already ended {}", job.state.as_str()),
            });
        }
        self.store.request_cancel(&tenant, &job_id).await?;
        tracing::info!(job = %job_id, actor = ctx.caller.actor(), reason = reason.as_deref().unwrap_or(""), "retract job cancellation requested");
        self.engine.wake();
        let job = self.store.tenant_job(&tenant, &job_id).await?;
        Ok(pb::CancelRetractJobResponse {
            job: Some(job.into()),
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

fn not_negative(sequence: i64) -> Result<i64, ValidationError> {
    if sequence < 0 {
        Err(ValidationError("must not be negative".into()))
    } else {
        Ok(sequence)
    }
}

#[tonic::async_trait]
impl RetractService for RetractApi {
    type RetractStream = EventStream<pb::RetractResponse>;
    type WatchRetractStream = EventStream<pb::WatchRetractResponse>;

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
    ) -> Result<Response<pb::GetRetractOptionsResponse>, Status> {
        Ok(Response::new(self.options_tab(request).await?))
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
        Ok(Response::new(self.follow(job, 0, until, |event| {
            pb::RetractResponse { event: Some(event) }
        })))
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
}
