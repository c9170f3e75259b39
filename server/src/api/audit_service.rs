//! `retract.v1.AuditService`: reading the audit trail.

use retract_proto::v1::{self as pb, audit_service_server::AuditService};
use tonic::{Request, Response, Status};

use super::{
    ApiError,
    context::CallContext,
    convert,
    validate::{Validated as _, field, optional_text},
};
use crate::{
    domain::{AuditFilter, PageRequest, PageSize, PageToken},
    store::Store,
};

/// The AuditService implementation.
#[derive(Clone)]
pub struct AuditApi {
    store: Store,
}

impl AuditApi {
    /// Serves the audit trail from `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn list(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<pb::ListAuditEventsResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, section, action, actor, target, occurred_after, occurred_before, size) = (
            ctx.tenant(&r.tenant_id),
            field("section", convert::audit_section(r.section)),
            field("action", convert::audit_action(r.action)),
            field("actor", optional_text(&r.actor, 320)),
            field("target", optional_text(&r.target, 1024)),
            field(
                "occur_after",
                convert::optional_time(r.occur_after.as_ref()),
            ),
            field(
                "occur_before",
                convert::optional_time(r.occur_before.as_ref()),
            ),
            field("page_size", PageSize::parse(r.page_size)),
        )
            .validated_for(&ctx)?;
        let filter = AuditFilter {
            section,
            action,
            actor,
            target,
            occurred_after,
            occurred_before,
        };
        let query = format!("ListAuditEvents tenant={tenant} {}", filter.fingerprint());
        let (after,) = (field(
            "page_token",
            PageToken::decode::<i64>(&query, &r.page_token),
        ),)
            .validated()?;
        let page = self
            .store
            .list_audit_events(&tenant, &filter, &PageRequest { size, after })
            .await?;
        let next_page_token = page.next_page_token(&query, |event| event.id);
        Ok(pb::ListAuditEventsResponse {
            events: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        Ok(Response::new(self.list(request).await?))
    }
}
