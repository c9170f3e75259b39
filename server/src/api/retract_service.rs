//! `retract.v1.RetractService`: recording and searching deliveries, the Retract tab. Retract
//! jobs (the rest of issue #6) answer UNIMPLEMENTED naming the missing capability.

use std::pin::Pin;

use futures::Stream;
use retract_proto::v1::{self as pb, retract_service_server::RetractService};
use tonic::{Request, Response, Status};

use super::{
    ApiError,
    context::{CallContext, unbuilt},
    convert, deliveries,
    validate::{Validated as _, Violations, field, optional_text},
};
use crate::{
    domain::{
        DeliveryFilter, Eligibility, EmailAddress, InternetMessageId, NewDelivery, PageRequest,
        PageSize, PageToken, RecordOutcome, TenantId, ValidationError,
    },
    store::{DeliveryCursor, Store},
};

/// The RetractService implementation.
#[derive(Clone)]
pub struct RetractApi {
    store: Store,
}

impl RetractApi {
    /// Serves deliveries and jobs from `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

const RETRACT: &str = "Retract jobs (issue #6)";

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
        unbuilt(&request, &request.get_ref().tenant_id, RETRACT)
    }

    async fn start_retract(
        &self,
        request: Request<pb::StartRetractRequest>,
    ) -> Result<Response<pb::StartRetractResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, RETRACT)
    }

    async fn watch_retract(
        &self,
        request: Request<pb::WatchRetractRequest>,
    ) -> Result<Response<Self::WatchRetractStream>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, RETRACT)
    }

    async fn get_retract_job(
        &self,
        request: Request<pb::GetRetractJobRequest>,
    ) -> Result<Response<pb::GetRetractJobResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, RETRACT)
    }

    async fn list_retract_jobs(
        &self,
        request: Request<pb::ListRetractJobsRequest>,
    ) -> Result<Response<pb::ListRetractJobsResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, RETRACT)
    }

    async fn cancel_retract_job(
        &self,
        request: Request<pb::CancelRetractJobRequest>,
    ) -> Result<Response<pb::CancelRetractJobResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, RETRACT)
    }
}
