//! Tenants.

use futures::FutureExt as _;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::LockType,
};

use super::{Page, Store, StoreError, audit, entities::tenant, in_transaction, parse_stored};
use crate::domain::{
    AuditEntry, DisplayName, MicrosoftTenantId, NewTenant, PageRequest, Tenant, TenantId, now,
};

impl Store {
    /// Creates a tenant and writes `audit` with it. `AlreadyExists` when the id is taken.
    pub async fn create_tenant(
        &self,
        new: NewTenant,
        audit: AuditEntry,
    ) -> Result<Tenant, StoreError> {
        in_transaction(&self.db, move |txn| {
            async move {
                let at = now();
                let row = tenant::ActiveModel {
                    tenant_id: Set(new.id.as_str().to_owned()),
                    display_name: Set(new.display_name.as_str().to_owned()),
                    microsoft_tenant_id: Set(None),
                    created_at: Set(at),
                    updated_at: Set(at),
                };
                let row = tenant::Entity::insert(row)
                    .exec_with_returning(txn)
                    .await
                    .map_err(StoreError::on_insert("tenant", new.id.as_str()))?;
                // A deleted tenant's id is never reused: its audit trail is still under it.
                // Checked after the insert: an insert under the id of a tenant whose
                // deletion is in flight waits (on the primary key) until that deletion
                // commits, so its tombstone is seen here; checked before, it would not be.
                if Store::is_deleted_tenant(txn, new.id.as_str()).await? {
                    return Err(StoreError::AlreadyExists {
                        resource: "tenant",
                        id: new.id.to_string(),
                    });
                }
                audit::insert(txn, audit).await?;
                tenant_from_row(&row)
            }
            .boxed()
        })
        .await
    }

    /// One tenant, or `NotFound`.
    pub async fn get_tenant(&self, id: &TenantId) -> Result<Tenant, StoreError> {
        tenant::Entity::find_by_id(id.as_str())
            .one(&self.reads)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                resource: "tenant",
                id: id.to_string(),
            })
            .and_then(|row| tenant_from_row(&row))
    }

    /// Tenants ordered by id, after the id `page.after`; only those in `only` when given.
    pub async fn list_tenants(
        &self,
        only: Option<&std::collections::BTreeSet<TenantId>>,
        page: &PageRequest<String>,
    ) -> Result<Page<Tenant>, StoreError> {
        let mut query = tenant::Entity::find();
        if let Some(only) = only {
            query = query.filter(tenant::Column::TenantId.is_in(only.iter().map(TenantId::as_str)));
        }
        if let Some(after) = &page.after {
            query = query.filter(tenant::Column::TenantId.gt(after.as_str()));
        }
        let rows = query
            .order_by_asc(tenant::Column::TenantId)
            .limit(page.size.get() + 1)
            .all(&self.db)
            .await?;
        let tenants = rows.iter().map(tenant_from_row).collect::<Result<_, _>>()?;
        Ok(Page::from_overfetch(tenants, page.size.get()))
    }
}

/// Whether `tenant` exists, its row locked against its deletion until `txn` ends. Every
/// transaction that adds rows under a tenant (a job, a delivery, a consent attempt, a
/// domain; a running job's own rows need none: a tenant is not deleted while one runs)
/// starts with this, so that a racing [`Store::delete_tenant`], which locks the row
/// `FOR UPDATE` before it looks at what the tenant holds, either waits for it and sees what
/// it added, or commits first: the lock then waits for that deletion and finds no tenant.
/// On PostgreSQL it is `FOR KEY SHARE` (what a foreign key takes: other updates of the row
/// go on); SQLite runs one write transaction at a time, and this is a read inside it.
pub(super) async fn lock_tenant(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
) -> Result<bool, StoreError> {
    Ok(tenant::Entity::find_by_id(tenant.as_str())
        .select_only()
        .column(tenant::Column::TenantId)
        .lock(LockType::KeyShare)
        .into_tuple::<String>()
        .one(txn)
        .await?
        .is_some())
}

pub(super) fn tenant_from_row(row: &tenant::Model) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: TenantId::parse(&row.tenant_id)
            .map_err(|e| StoreError::Corrupt(format!("tenant id {:?}: {e}", row.tenant_id)))?,
        display_name: DisplayName::parse(&row.display_name)
            .map_err(|e| StoreError::Corrupt(format!("tenant display name: {e}")))?,
        microsoft_tenant_id: row
            .microsoft_tenant_id
            .as_deref()
            .map(|id| parse_stored("Microsoft tenant id", id, MicrosoftTenantId::parse))
            .transpose()?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
