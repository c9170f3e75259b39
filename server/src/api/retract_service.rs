//! `retract.v1.RetractService`: deliveries and retract jobs arrive with issue #6. Until then
//! every RPC answers UNIMPLEMENTED naming the missing capability.

use std::pin::Pin;

use futures::Stream;
use retract_proto::v1::{self as pb, retract_service_server::RetractService};
use tonic::{Request, Response, Status};

use super::context::unbuilt;

/// The RetractService implementation.
#[derive(Clone, Default)]
pub struct RetractApi;

const DELIVERIES: &str = "Recording and searching deliveries (issue #6)";
const RETRACT: &str = "Retract jobs (issue #6)";

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RetractService for RetractApi {
    type RetractStream = EventStream<pb::RetractResponse>;
    type WatchRetractStream = EventStream<pb::WatchRetractResponse>;

    async fn record_delivery(
        &self,
        request: Request<pb::RecordDeliveryRequest>,
    ) -> Result<Response<pb::RecordDeliveryResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, DELIVERIES)
    }

    async fn record_deliveries(
        &self,
        request: Request<pb::RecordDeliveriesRequest>,
    ) -> Result<Response<pb::RecordDeliveriesResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, DELIVERIES)
    }

    async fn search_deliveries(
        &self,
        request: Request<pb::SearchDeliveriesRequest>,
    ) -> Result<Response<pb::SearchDeliveriesResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, DELIVERIES)
    }

    async fn get_retract_options(
        &self,
        request: Request<pb::GetRetractOptionsRequest>,
    ) -> Result<Response<pb::GetRetractOptionsResponse>, Status> {
        unbuilt(
            &request,
            &request.get_ref().tenant_id,
            "The Retract tab (issue #6)",
        )
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
