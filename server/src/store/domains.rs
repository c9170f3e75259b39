//! A tenant's registered mail domains.

use futures::FutureExt as _;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{
    Page, Store, StoreError, audit,
    entities::{domain, tenant},
    in_transaction,
};
use crate::domain::{
    AuditEntry, Domain, DomainName, PageRequest, RetractStatus, Tenant, TenantId, now,
};

impl Store {
    /// Registers `name` for `tenant` (status NOT_GRANTED) and writes `audit` with it.
    /// `NotFound` when the tenant does not exist; `AlreadyExists` when any tenant holds the name.
    pub async fn add_domain(
        &self,
        tenant: &TenantId,
        name: &DomainName,
        audit: AuditEntry,
    ) -> Result<Domain, StoreError> {
        let (tenant, name) = (tenant.clone(), name.clone());
        in_transaction(&self.db, move |txn| {
            async move {
                if !super::tenants::lock_tenant(txn, &tenant).await? {
                    return Err(StoreError::NotFound {
                        resource: "tenant",
                        id: tenant.to_string(),
                    });
                }
                let at = now();
                let row = domain::ActiveModel {
                    name: Set(name.as_str().to_owned()),
                    tenant_id: Set(tenant.as_str().to_owned()),
                    retract_status: Set(RetractStatus::NotGranted.as_str().to_owned()),
                    status_reason: Set(None),
                    last_checked_at: Set(None),
                    created_at: Set(at),
                    updated_at: Set(at),
                };
                let row = domain::Entity::insert(row)
                    .exec_with_returning(txn)
                    .await
                    .map_err(StoreError::on_insert("domain", name.as_str()))?;
                audit::insert(txn, audit).await?;
                domain_from_row(row)
            }
            .boxed()
        })
        .await
    }

    /// Removes `name` from `tenant` and writes `audit` with it; returns the domain as it was.
    /// `NotFound` unless this tenant holds the name.
    pub async fn remove_domain(
        &self,
        tenant: &TenantId,
        name: &DomainName,
        audit: AuditEntry,
    ) -> Result<Domain, StoreError> {
        let (tenant, name) = (tenant.clone(), name.clone());
        in_transaction(&self.db, move |txn| {
            async move {
                let not_found = || StoreError::NotFound {
                    resource: "domain",
                    id: name.to_string(),
                };
                let row = domain::Entity::find_by_id(name.as_str())
                    .filter(domain::Column::TenantId.eq(tenant.as_str()))
                    .one(txn)
                    .await?
                    .ok_or_else(not_found)?;
                let deleted = domain::Entity::delete_many()
                    .filter(domain::Column::Name.eq(name.as_str()))
                    .filter(domain::Column::TenantId.eq(tenant.as_str()))
                    .exec(txn)
                    .await?;
                if deleted.rows_affected == 0 {
                    return Err(not_found());
                }
                audit::insert(txn, audit).await?;
                domain_from_row(row)
            }
            .boxed()
        })
        .await
    }

    /// A tenant's domains ordered by name, after the name `page.after`.
    pub async fn list_domains(
        &self,
        tenant: &TenantId,
        page: &PageRequest<String>,
    ) -> Result<Page<Domain>, StoreError> {
        let mut query = domain::Entity::find().filter(domain::Column::TenantId.eq(tenant.as_str()));
        if let Some(after) = &page.after {
            query = query.filter(domain::Column::Name.gt(after.as_str()));
        }
        let rows = query
            .order_by_asc(domain::Column::Name)
            .limit(page.size.get() + 1)
            .all(&self.db)
            .await?;
        let domains = rows
            .into_iter()
            .map(domain_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Page::from_overfetch(domains, page.size.get()))
    }
}

impl Store {
    /// Every domain of a tenant, ordered by name.
    pub async fn all_domains(&self, tenant: &TenantId) -> Result<Vec<Domain>, StoreError> {
        let rows = domain::Entity::find()
            .filter(domain::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(domain::Column::Name)
            .all(&self.reads)
            .await?;
        rows.into_iter().map(domain_from_row).collect()
    }

    /// A tenant (or `NotFound`) and every one of its domains, ordered by name: one read.
    pub async fn tenant_and_domains(
        &self,
        tenant: &TenantId,
    ) -> Result<(Tenant, Vec<Domain>), StoreError> {
        let found = tenant::Entity::find_by_id(tenant.as_str())
            .find_with_related(domain::Entity)
            .all(&self.reads)
            .await?;
        let Some((row, domains)) = found.into_iter().next() else {
            return Err(StoreError::NotFound {
                resource: "tenant",
                id: tenant.to_string(),
            });
        };
        let mut domains = domains
            .into_iter()
            .map(domain_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        domains.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok((super::tenants::tenant_from_row(&row)?, domains))
    }
}

fn domain_from_row(row: domain::Model) -> Result<Domain, StoreError> {
    Ok(Domain {
        tenant_id: TenantId::parse(&row.tenant_id)
            .map_err(|e| StoreError::Corrupt(format!("domain tenant id: {e}")))?,
        retract_status: RetractStatus::from_stored(&row.retract_status).ok_or_else(|| {
            StoreError::Corrupt(format!("retract status {:?}", row.retract_status))
        })?,
        name: DomainName::from_stored(row.name),
        status_reason: row.status_reason,
        last_checked_at: row.last_checked_at,
        created_at: row.created_at,
    })
}
