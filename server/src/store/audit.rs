//! The audit trail: written inside the transaction of the change it describes, read newest first.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{Page, Store, StoreError, entities::audit_event, parse_stored};
use crate::domain::{
    AuditAction, AuditEntry, AuditEvent, AuditFilter, AuditOutcome, AuditSection, PageRequest,
    StoredAuditEntry, TenantId, now,
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
        section: Set(entry.action.section().as_str().to_owned()),
        action: Set(entry.action.as_str().to_owned()),
        target: Set(entry.target),
        outcome: Set(entry.outcome.as_str().to_owned()),
        request_id: Set(entry.correlation_id),
        details: Set(serde_json::to_value(&entry.details)
            .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?),
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
        if let Some(action) = filter.action {
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
            .all(&self.reads)
            .await?;
        let events = rows
            .into_iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(events, page.size.get()))
    }
}

impl Store {
    /// Up to `limit` of a tenant's audit events with an id above `after_id`, oldest first,
    /// written before `written_before` (the export leaves the newest seconds out, so that a
    /// transaction committing late with a lower id is not passed over).
    pub async fn audit_events_after(
        &self,
        tenant: &TenantId,
        after_id: i64,
        written_before: chrono::DateTime<chrono::Utc>,
        limit: u64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        use audit_event::Column;
        // In id order, up to the first event not yet settled: what follows it waits too, so
        // a cursor never passes an event (a filter on the time alone would skip one written
        // late, or by a replica whose clock runs ahead, then hand out the cursor beyond it).
        let rows = audit_event::Entity::find()
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::Id.gt(after_id))
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(&self.reads)
            .await?;
        rows.into_iter()
            .take_while(|row| row.occurred_at < written_before)
            .map(event_from_row)
            .collect()
    }
}

fn event_from_row(row: audit_event::Model) -> Result<AuditEvent, StoreError> {
    // The trail is append-only and outlives versions: details this version cannot read are
    // shown as absent, not refused.
    let details = serde_json::from_value(row.details).ok();
    Ok(AuditEvent {
        id: row.id,
        occurred_at: row.occurred_at,
        entry: StoredAuditEntry {
            section: AuditSection::from_stored(&row.section),
            outcome: AuditOutcome::from_stored(&row.outcome),
            action: AuditAction::from_stored(&row.action),
            tenant_id: parse_stored("audit tenant", &row.tenant_id, TenantId::parse)?,
            actor: row.actor,
            target: row.target,
            correlation_id: row.request_id,
            details,
        },
    })
}
