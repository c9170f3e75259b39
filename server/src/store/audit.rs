//! The audit trail: written inside the transaction of the change it describes, read newest first.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{Page, Store, StoreError, entities::audit_event};
use crate::domain::{
    AuditEntry, AuditEvent, AuditFilter, AuditOutcome, AuditSection, PageRequest, StoredAuditEntry,
    TenantId, now,
};

/// Appends `entry` on `conn` (the transaction of the change it describes).
pub(super) async fn insert<C: ConnectionTrait>(
    conn: &C,
    entry: AuditEntry,
) -> Result<(), StoreError> {
    let row = audit_event::ActiveModel {
        id: NotSet,
        occurred_at: Set(now()),
        tenant_id: Set(entry.tenant_id.as_str().to_owned()),
        actor: Set(entry.actor),
        section: Set(entry.section.as_str().to_owned()),
        action: Set(entry.action.to_owned()),
        target: Set(entry.target),
        outcome: Set(entry.outcome.as_str().to_owned()),
        request_id: Set(entry.request_id),
        details: Set(entry.details),
    };
    audit_event::Entity::insert(row).exec(conn).await?;
    Ok(())
}

impl Store {
    /// A tenant's audit events matching `filter`, newest first, after the event id `page.after`.
    pub async fn list_audit_events(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        page: &PageRequest<i64>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        use audit_event::Column;
        let mut query = audit_event::Entity::find().filter(Column::TenantId.eq(tenant.as_str()));
        if let Some(section) = filter.section {
            query = query.filter(Column::Section.eq(section.as_str()));
        }
        if let Some(action) = &filter.action {
            query = query.filter(Column::Action.eq(action.as_str()));
        }
        if let Some(actor) = &filter.actor {
            query = query.filter(Column::Actor.eq(actor.as_str()));
        }
        if let Some(target) = &filter.target {
            query = query.filter(Column::Target.eq(target.as_str()));
        }
        if let Some(after) = filter.occurred_after {
            query = query.filter(Column::OccurredAt.gte(after));
        }
        if let Some(before) = filter.occurred_before {
            query = query.filter(Column::OccurredAt.lt(before));
        }
        if let Some(after_id) = page.after {
            query = query.filter(Column::Id.lt(after_id));
        }
        let rows = query
            .order_by_desc(Column::Id)
            .limit(page.size.get() + 1)
            .all(&self.db)
            .await?;
        let events = rows.into_iter().map(event_from_row).collect();
        Ok(Page::from_overfetch(events, page.size.get()))
    }
}

fn event_from_row(row: audit_event::Model) -> AuditEvent {
    AuditEvent {
        id: row.id,
        occurred_at: row.occurred_at,
        entry: StoredAuditEntry {
            section: AuditSection::from_stored(&row.section),
            outcome: AuditOutcome::from_stored(&row.outcome),
            tenant_id: row.tenant_id,
            actor: row.actor,
            action: row.action,
            target: row.target,
            request_id: row.request_id,
            details: row.details,
        },
    }
}
