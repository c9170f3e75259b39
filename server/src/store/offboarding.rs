//! Offboarding: deleting a tenant with everything it holds. Its tombstone (`deleted_tenants`)
//! keeps the id from being reused (the audit trail stays readable under it), and drives two
//! purges in small transactions: its data (at once, and again by the retention sweep should
//! the process stop midway) and, once its retention has passed, its audit trail.

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};

use super::{
    Store, StoreError, audit,
    entities::{
        audit_event, deleted_tenant, delivery, delivery_recipient, domain, grant, mailbox_status,
        retract_job, tenant,
    },
    in_transaction,
    jobs::purge_job_slice,
    parse_stored,
};
use crate::domain::{
    AuditEntry, DomainName, JobState, MicrosoftTenantId, TenantDeletion, TenantId, now,
};

impl Store {
    /// Deletes `tenant` for `deleted_by`: in one transaction, refuses while a job of it has not
    /// ended (`TenantHasActiveJobs`), leaves its tombstone, removes its domains, consent
    /// attempts and the tenant itself, and writes the audit entry `audit` makes of what goes;
    /// then starts purging its deliveries, jobs (targets, events, removed copies) and mailbox
    /// statuses in the background, a slice at a time. `audit_kept` is how long its audit trail
    /// stays (`None`: forever); the tombstone records until when, so that a later change of
    /// the retention does not change what this caller was told.
    pub async fn delete_tenant(
        &self,
        tenant: &TenantId,
        deleted_by: &str,
        audit_kept: Option<chrono::Duration>,
        audit: impl FnOnce(&TenantDeletion) -> AuditEntry + Send + 'static,
    ) -> Result<TenantDeletion, StoreError> {
        let (id, by) = (tenant.clone(), deleted_by.to_owned());
        let deletion = in_transaction(&self.db, move |txn| {
            async move {
                let t = id.as_str();
                // Locked first: a transaction adding rows under the tenant (a job, a
                // delivery, a consent attempt, a domain: see `lock_tenant`) either commits
                // before the checks below, which then see what it added, or waits for this
                // deletion and is refused.
                let row = tenant::Entity::find_by_id(t)
                    .lock_exclusive()
                    .one(txn)
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        resource: "tenant",
                        id: t.to_owned(),
                    })?;
                let active = retract_job::Entity::find()
                    .filter(retract_job::Column::TenantId.eq(t))
                    .filter(
                        retract_job::Column::State
                            .is_in([JobState::Queued.as_str(), JobState::Running.as_str()]),
                    )
                    .count(txn)
                    .await?;
                if active > 0 {
                    return Err(StoreError::TenantHasActiveJobs {
                        tenant: t.to_owned(),
                        jobs: active,
                    });
                }
                let domains: Vec<String> = domain::Entity::find()
                    .select_only()
                    .column(domain::Column::Name)
                    .filter(domain::Column::TenantId.eq(t))
                    .order_by_asc(domain::Column::Name)
                    .into_tuple()
                    .all(txn)
                    .await?;
                let domains = domains
                    .iter()
                    .map(|d| parse_stored("domain", d, DomainName::parse))
                    .collect::<Result<Vec<_>, _>>()?;
                let delivery_count = delivery::Entity::find()
                    .filter(delivery::Column::TenantId.eq(t))
                    .count(txn)
                    .await?;
                let job_count = retract_job::Entity::find()
                    .filter(retract_job::Column::TenantId.eq(t))
                    .count(txn)
                    .await?;
                let at = now();
                let audit_purge_at = audit_kept.map(|keep| at + keep);
                deleted_tenant::Entity::insert(deleted_tenant::ActiveModel {
                    tenant_id: Set(t.to_owned()),
                    deleted_at: Set(at),
                    deleted_by: Set(by),
                    data_purged_at: Set(None),
                    audit_purged_at: Set(None),
                    audit_purge_at: Set(audit_purge_at),
                    audit_purge_recorded: Set(true),
                })
                .exec(txn)
                .await
                .map_err(StoreError::on_insert("deleted tenant", t))?;
                domain::Entity::delete_many()
                    .filter(domain::Column::TenantId.eq(t))
                    .exec(txn)
                    .await?;
                grant::Entity::delete_many()
                    .filter(grant::Column::TenantId.eq(t))
                    .exec(txn)
                    .await?;
                tenant::Entity::delete_by_id(t).exec(txn).await?;
                let deletion = TenantDeletion {
                    tenant_id: id.clone(),
                    microsoft_tenant_id: row
                        .microsoft_tenant_id
                        .as_deref()
                        .map(|m| parse_stored("Microsoft tenant id", m, MicrosoftTenantId::parse))
                        .transpose()?,
                    domains,
                    delivery_count,
                    job_count,
                    audit_purge_at,
                };
                audit::insert(txn, audit(&deletion)).await?;
                Ok(deletion)
            }
            .boxed()
        })
        .await?;
        // The tenant is gone for every caller now; its rows go a slice at a time, in the
        // background so that a caller's deadline cannot cut the purge short. Should the
        // process stop midway, the retention sweep finishes it.
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                match store.purge_deleted_tenant_data(PURGE_ROWS).await {
                    Ok(0) => return,
                    Ok(_) => tokio::task::yield_now().await,
                    Err(err) => {
                        tracing::warn!(error = %err, "deleted tenant's purge interrupted; the retention sweep finishes it");
                        return;
                    }
                }
            }
        });
        Ok(deletion)
    }

    /// Whether `tenant` was deleted (its id is never used again).
    pub(super) async fn is_deleted_tenant(
        db: &impl ConnectionTrait,
        tenant: &str,
    ) -> Result<bool, StoreError> {
        Ok(deleted_tenant::Entity::find_by_id(tenant)
            .one(db)
            .await?
            .is_some())
    }

    /// One slice of the purge of deleted tenants' data (up to `max_rows` rows, one
    /// transaction, counting every row it deletes: one kind of row at a time, children before
    /// the rows they belong to, so that nothing cascades); a tenant with nothing left is
    /// marked purged. Answers the rows removed plus the tenants marked: 0 when no purge is
    /// pending.
    pub async fn purge_deleted_tenant_data(&self, max_rows: u64) -> Result<u64, StoreError> {
        let max_rows = Ord::max(max_rows, 1);
        in_transaction(&self.db, move |txn| {
            async move {
                let Some(t) = deleted_tenant::Entity::find()
                    .filter(deleted_tenant::Column::DataPurgedAt.is_null())
                    .order_by_asc(deleted_tenant::Column::DeletedAt)
                    .one(txn)
                    .await?
                else {
                    return Ok(0);
                };
                let t = t.tenant_id;
                let job: Option<String> = retract_job::Entity::find()
                    .select_only()
                    .column(retract_job::Column::Id)
                    .filter(retract_job::Column::TenantId.eq(t.as_str()))
                    .limit(1)
                    .into_tuple()
                    .one(txn)
                    .await?;
                if let Some(job) = job {
                    return purge_job_slice(txn, &job, max_rows).await;
                }
                // Recipients before their deliveries, so that no delete cascades to more
                // rows than the slice counts (a delivery has up to 10,000).
                let recipients: Vec<(String, String)> = delivery_recipient::Entity::find()
                    .select_only()
                    .column(delivery_recipient::Column::DeliveryId)
                    .column(delivery_recipient::Column::Address)
                    .filter(delivery_recipient::Column::TenantId.eq(t.as_str()))
                    .limit(max_rows)
                    .into_tuple()
                    .all(txn)
                    .await?;
                if !recipients.is_empty() {
                    let keys = recipients
                        .into_iter()
                        .fold(Condition::any(), |any, (d, a)| {
                            any.add(
                                Condition::all()
                                    .add(delivery_recipient::Column::DeliveryId.eq(d))
                                    .add(delivery_recipient::Column::Address.eq(a)),
                            )
                        });
                    return Ok(delivery_recipient::Entity::delete_many()
                        .filter(delivery_recipient::Column::TenantId.eq(t.as_str()))
                        .filter(keys)
                        .exec(txn)
                        .await?
                        .rows_affected);
                }
                let deliveries: Vec<String> = delivery::Entity::find()
                    .select_only()
                    .column(delivery::Column::Id)
                    .filter(delivery::Column::TenantId.eq(t.as_str()))
                    .limit(max_rows)
                    .into_tuple()
                    .all(txn)
                    .await?;
                if !deliveries.is_empty() {
                    return Ok(delivery::Entity::delete_many()
                        .filter(delivery::Column::Id.is_in(deliveries.iter().map(String::as_str)))
                        .exec(txn)
                        .await?
                        .rows_affected);
                }
                let statuses = mailbox_status::Entity::delete_many()
                    .filter(mailbox_status::Column::TenantId.eq(t.as_str()))
                    .exec(txn)
                    .await?
                    .rows_affected;
                if statuses > 0 {
                    return Ok(statuses);
                }
                mark(txn, &t, deleted_tenant::Column::DataPurgedAt).await?;
                tracing::info!(tenant = %t, "deleted tenant's data purged");
                Ok(1)
            }
            .boxed()
        })
        .await
    }

    /// One slice of the purge of the deleted tenants' audit trails due at `at` (up to
    /// `max_rows` events, one transaction): those whose purge time, recorded at the deletion,
    /// has passed, and those of tombstones that recorded none (made before migration 10)
    /// deleted more than `unrecorded_kept` before `at` — the retention configured now
    /// (`None`: kept). A trail with nothing left is marked purged (the tombstone stays: the
    /// id is never reused). Answers the events removed plus the tombstones marked: 0 when
    /// none is due.
    pub async fn purge_deleted_tenant_audit(
        &self,
        at: DateTime<Utc>,
        unrecorded_kept: Option<chrono::Duration>,
        max_rows: u64,
    ) -> Result<u64, StoreError> {
        use deleted_tenant::Column;
        let max_rows = Ord::max(max_rows, 1);
        let mut due = Condition::any().add(Column::AuditPurgeAt.lte(at));
        if let Some(keep) = unrecorded_kept {
            due = due.add(
                Condition::all()
                    .add(Column::AuditPurgeRecorded.eq(false))
                    .add(Column::DeletedAt.lt(at - keep)),
            );
        }
        in_transaction(&self.db, move |txn| {
            async move {
                let Some(t) = deleted_tenant::Entity::find()
                    .filter(Column::AuditPurgedAt.is_null())
                    .filter(due)
                    .order_by_asc(Column::DeletedAt)
                    .one(txn)
                    .await?
                else {
                    return Ok(0);
                };
                let t = t.tenant_id;
                let ids: Vec<i64> = audit_event::Entity::find()
                    .select_only()
                    .column(audit_event::Column::Id)
                    .filter(audit_event::Column::TenantId.eq(t.as_str()))
                    .order_by_asc(audit_event::Column::Id)
                    .limit(max_rows)
                    .into_tuple()
                    .all(txn)
                    .await?;
                if let Some(last) = ids.last() {
                    return Ok(audit_event::Entity::delete_many()
                        .filter(audit_event::Column::TenantId.eq(t.as_str()))
                        .filter(audit_event::Column::Id.lte(*last))
                        .exec(txn)
                        .await?
                        .rows_affected);
                }
                mark(txn, &t, deleted_tenant::Column::AuditPurgedAt).await?;
                tracing::info!(tenant = %t, "deleted tenant's audit trail purged after its retention");
                Ok(1)
            }
            .boxed()
        })
        .await
    }
}

/// Rows one purge transaction removes at most.
pub const PURGE_ROWS: u64 = 500;

async fn mark(
    txn: &sea_orm::DatabaseTransaction,
    tenant: &str,
    column: deleted_tenant::Column,
) -> Result<(), StoreError> {
    deleted_tenant::Entity::update_many()
        .col_expr(column, Expr::value(Some(now())))
        .filter(deleted_tenant::Column::TenantId.eq(tenant))
        .exec(txn)
        .await?;
    Ok(())
}
