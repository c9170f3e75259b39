//! `retract.v1.AuditService`: reading the audit trail.

use std::pin::Pin;

use futures::Stream;
use retract_proto::v1::{self as pb, audit_service_server::AuditService};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    ApiError,
    context::CallContext,
    convert,
    validate::{Validated as _, field, optional_text},
};
use crate::{
    domain::{AuditFilter, PageRequest, PageSize, PageToken, ValidationError, now},
    store::Store,
};

/// Events one export query reads.
const EXPORT_BATCH: u64 = 500;

type ExportStream =
    Pin<Box<dyn Stream<Item = Result<pb::ExportAuditEventsResponse, Status>> + Send>>;

/// The AuditService implementation.
#[derive(Clone)]
pub struct AuditApi {
    store: Store,
    /// How old an event must be to be exported (a transaction that commits late, with a
    /// lower id, is not passed over by a cursor).
    export_settle: chrono::Duration,
}

impl AuditApi {
    /// Serves the audit trail from `store`; the export holds back events younger than
    /// `export_settle`.
    pub fn new(store: Store, export_settle: std::time::Duration) -> Self {
        Self {
            store,
            export_settle: chrono::Duration::from_std(export_settle)
                .unwrap_or(chrono::Duration::MAX),
        }
    }

    async fn export(
        &self,
        request: Request<pb::ExportAuditEventsRequest>,
    ) -> Result<ExportStream, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, after) = (
            ctx.tenant(&r.tenant_id),
            field("after_cursor", export_cursor(&r.after_cursor)),
        )
            .validated_for(&ctx)?;
        // The stream ends at what was written (and settled) when it began.
        let until = now() - self.export_settle;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut after = after;
            loop {
                let batch = match store
                    .audit_events_after(&tenant, after, until, EXPORT_BATCH)
                    .await
                {
                    Ok(batch) if batch.is_empty() => return,
                    Ok(batch) => batch,
                    Err(err) => {
                        let _gone = tx.send(Err(ApiError::from(err).into())).await;
                        return;
                    }
                };
                for event in batch {
                    after = event.id;
                    let item = pb::ExportAuditEventsResponse {
                        cursor: event.id.to_string(),
                        event: Some(event.into()),
                    };
                    if tx.send(Ok(item)).await.is_err() {
                        return; // the caller left
                    }
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
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

/// An export's resume cursor: empty (from the start) or an event id it sent.
fn export_cursor(raw: &str) -> Result<i64, ValidationError> {
    if raw.is_empty() {
        return Ok(0);
    }
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ValidationError("is not a cursor this export sent".into()))
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    type ExportAuditEventsStream = ExportStream;

    async fn export_audit_events(
        &self,
        request: Request<pb::ExportAuditEventsRequest>,
    ) -> Result<Response<Self::ExportAuditEventsStream>, Status> {
        Ok(Response::new(self.export(request).await?))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        Ok(Response::new(self.list(request).await?))
    }
}
