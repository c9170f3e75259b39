//! One [`Client`] method per unary RPC: the token source's token, the deadline, and retries
//! of the idempotent ones by the client's [`crate::RetryPolicy`].

use std::future::Future;

use crate::{ApiError, Client, Error, pb};

/// Whether a failed call may be sent again.
#[derive(Clone, Copy)]
enum Retry {
    /// Sending it twice has the effect of sending it once.
    Idempotent,
    /// It is not.
    Never,
}

impl Client {
    /// Sends `message` through `rpc`, retrying an idempotent call by the retry policy.
    async fn unary<Req, Resp, F, Fut>(
        &self,
        retry: Retry,
        message: Req,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(Client, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        // The deadline is the whole call's, retries and the token's fetch included: each
        // attempt gets what is left, and no retry waits past it.
        let end = self.deadline.map(|d| tokio::time::Instant::now() + d);
        let left = || end.map(|end| end.saturating_duration_since(tokio::time::Instant::now()));
        let mut attempt = 1;
        loop {
            let request = match left() {
                None => self.request(message.clone(), None).await?,
                Some(left) => tokio::time::timeout(left, self.request(message.clone(), Some(left)))
                    .await
                    .map_err(|_| {
                        Error::Token(
                            "fetching the token took longer than the call's deadline".into(),
                        )
                    })??,
            };
            let status = match rpc(self.clone(), request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            let err = ApiError::from_status(&status);
            let delay = match retry {
                Retry::Idempotent => self.retry.delay_after(attempt, &err),
                Retry::Never => None,
            };
            match delay {
                Some(delay) if left().is_none_or(|left| delay < left) => {
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(err.into()),
            }
            attempt += 1;
        }
    }
}

/// Declares `Client::$name(request) -> Result<response, Error>` calling `$service.$rpc`.
macro_rules! unary {
    ($($(#[$doc:meta])* $name:ident: $service:ident.$rpc:ident($req:ty) -> $resp:ty, $retry:ident;)+) => {
        impl Client {$(
            $(#[$doc])*
            pub async fn $name(&self, request: $req) -> Result<$resp, Error> {
                self.unary(Retry::$retry, request, |client, request| async move {
                    client.$service().$rpc(request).await
                })
                .await
            }
        )+}
    };
}

unary! {
    /// CreateTenant (not retried).
    create_tenant: tenant_service.create_tenant(pb::CreateTenantRequest) -> pb::CreateTenantResponse, Never;
    /// GetTenant.
    get_tenant: tenant_service.get_tenant(pb::GetTenantRequest) -> pb::GetTenantResponse, Idempotent;
    /// ListTenants (one page).
    list_tenants: tenant_service.list_tenants(pb::ListTenantsRequest) -> pb::ListTenantsResponse, Idempotent;
    /// AddDomain (not retried).
    add_domain: tenant_service.add_domain(pb::AddDomainRequest) -> pb::AddDomainResponse, Never;
    /// RemoveDomain (not retried).
    remove_domain: tenant_service.remove_domain(pb::RemoveDomainRequest) -> pb::RemoveDomainResponse, Never;
    /// ListDomains (one page).
    list_domains: tenant_service.list_domains(pb::ListDomainsRequest) -> pb::ListDomainsResponse, Idempotent;
    /// StartGrant (not retried: each call is a new consent attempt).
    start_grant: tenant_service.start_grant(pb::StartGrantRequest) -> pb::StartGrantResponse, Never;
    /// CompleteGrant (not retried: its state is single-use).
    complete_grant: tenant_service.complete_grant(pb::CompleteGrantRequest) -> pb::CompleteGrantResponse, Never;
    /// GetGrant.
    get_grant: tenant_service.get_grant(pb::GetGrantRequest) -> pb::GetGrantResponse, Idempotent;
    /// VerifyDomains (a re-check: idempotent).
    verify_domains: tenant_service.verify_domains(pb::VerifyDomainsRequest) -> pb::VerifyDomainsResponse, Idempotent;
    /// RecordDelivery (recording the same delivery again changes nothing: retried).
    record_delivery: retract_service.record_delivery(pb::RecordDeliveryRequest) -> pb::RecordDeliveryResponse, Idempotent;
    /// RecordDeliveries (all or nothing, merge rules as RecordDelivery: retried).
    record_deliveries: retract_service.record_deliveries(pb::RecordDeliveriesRequest) -> pb::RecordDeliveriesResponse, Idempotent;
    /// SearchDeliveries (one page).
    search_deliveries: retract_service.search_deliveries(pb::SearchDeliveriesRequest) -> pb::SearchDeliveriesResponse, Idempotent;
    /// GetRetractOptions: the Retract tab (one page of recipients).
    get_retract_options: retract_service.get_retract_options(pb::GetRetractOptionsRequest) -> pb::GetRetractOptionsResponse, Idempotent;
    /// GetRetractJob.
    get_retract_job: retract_service.get_retract_job(pb::GetRetractJobRequest) -> pb::GetRetractJobResponse, Idempotent;
    /// ListRetractJobs (one page).
    list_retract_jobs: retract_service.list_retract_jobs(pb::ListRetractJobsRequest) -> pb::ListRetractJobsResponse, Idempotent;
    /// ListRetractTargets (one page).
    list_retract_targets: retract_service.list_retract_targets(pb::ListRetractTargetsRequest) -> pb::ListRetractTargetsResponse, Idempotent;
    /// CancelRetractJob (not retried: each cancellation is audited).
    cancel_retract_job: retract_service.cancel_retract_job(pb::CancelRetractJobRequest) -> pb::CancelRetractJobResponse, Never;
    /// ListAuditEvents (one page).
    list_audit_events: audit_service.list_audit_events(pb::ListAuditEventsRequest) -> pb::ListAuditEventsResponse, Idempotent;
}

impl Client {
    /// StartRetract, retried: an empty `request_id` is replaced by a new UUID first, so a
    /// retry re-attaches to the job the first attempt may have started.
    pub async fn start_retract(
        &self,
        mut request: pb::StartRetractRequest,
    ) -> Result<pb::StartRetractResponse, Error> {
        if request.request_id.is_empty() {
            request.request_id = uuid::Uuid::new_v4().to_string();
        }
        self.unary(Retry::Idempotent, request, |client, request| async move {
            client.retract_service().start_retract(request).await
        })
        .await
    }
}
