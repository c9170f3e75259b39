//! `retract.v1.TenantService`: tenants and domains (grants arrive with issue #5).

use retract_proto::v1::{self as pb, tenant_service_server::TenantService};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{
    ApiError,
    context::{CallContext, unbuilt},
    validate::{Validated as _, field},
};
use crate::{
    domain::{
        AuditSection, DisplayName, DomainName, NewTenant, PageRequest, PageSize, PageToken,
        TenantId,
    },
    store::Store,
};

/// The TenantService implementation.
#[derive(Clone)]
pub struct TenantApi {
    store: Store,
}

impl TenantApi {
    /// Serves tenants from `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

const GRANTS: &str = "Grant Permissions (admin consent and domain verification, issue #5)";

/// Page-token scope of ListTenants.
fn tenants_query() -> String {
    "ListTenants".to_owned()
}

/// Page-token scope of ListDomains for one tenant.
fn domains_query(tenant: &TenantId) -> String {
    format!("ListDomains tenant={tenant}")
}

#[tonic::async_trait]
impl TenantService for TenantApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (id, display_name) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("display_name", DisplayName::parse(&r.display_name)),
        )
            .validated()?;
        ctx.check_tenant(&id)?;
        let audit = ctx.audit(
            &id,
            AuditSection::Tenants,
            "tenant_created",
            id.as_str(),
            json!({ "display_name": display_name.as_str() }),
        );
        let tenant = self
            .store
            .create_tenant(NewTenant { id, display_name }, audit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant.into()),
        }))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let (id,) = (field(
            "tenant_id",
            TenantId::parse(&request.get_ref().tenant_id),
        ),)
            .validated()?;
        ctx.check_tenant(&id)?;
        let tenant = self.store.get_tenant(&id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(tenant.into()),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let query = tenants_query();
        let (size, after) = (
            field("page_size", PageSize::parse(r.page_size)),
            field(
                "page_token",
                PageToken::decode::<String>(&query, &r.page_token),
            ),
        )
            .validated()?;
        let page = self
            .store
            .list_tenants(&PageRequest { size, after })
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.next_page_token(&query, |tenant| tenant.id.to_string());
        // A service caller limited to some tenants sees only those.
        let tenants = page
            .items
            .into_iter()
            .filter(|t| ctx.caller.may_access(&t.id))
            .map(Into::into)
            .collect();
        Ok(Response::new(pb::ListTenantsResponse {
            tenants,
            next_page_token,
        }))
    }

    async fn add_domain(
        &self,
        request: Request<pb::AddDomainRequest>,
    ) -> Result<Response<pb::AddDomainResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, name) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("domain", DomainName::parse(&r.domain)),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let audit = ctx.audit(
            &tenant,
            AuditSection::Domains,
            "domain_added",
            name.as_str(),
            json!({ "domain": name.as_str(), "as_entered": r.domain }),
        );
        let domain = self
            .store
            .add_domain(&tenant, &name, audit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::AddDomainResponse {
            domain: Some(domain.into()),
        }))
    }

    async fn remove_domain(
        &self,
        request: Request<pb::RemoveDomainRequest>,
    ) -> Result<Response<pb::RemoveDomainResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, name) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("domain", DomainName::parse(&r.domain)),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let audit = ctx.audit(
            &tenant,
            AuditSection::Domains,
            "domain_removed",
            name.as_str(),
            json!({ "domain": name.as_str() }),
        );
        let domain = self
            .store
            .remove_domain(&tenant, &name, audit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RemoveDomainResponse {
            domain: Some(domain.into()),
        }))
    }

    async fn list_domains(
        &self,
        request: Request<pb::ListDomainsRequest>,
    ) -> Result<Response<pb::ListDomainsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, size) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("page_size", PageSize::parse(r.page_size)),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let query = domains_query(&tenant);
        let (after,) = (field(
            "page_token",
            PageToken::decode::<String>(&query, &r.page_token),
        ),)
            .validated()?;
        // An unknown tenant answers NOT_FOUND rather than an empty list.
        self.store
            .get_tenant(&tenant)
            .await
            .map_err(ApiError::from)?;
        let page = self
            .store
            .list_domains(&tenant, &PageRequest { size, after })
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.next_page_token(&query, |domain| domain.name.to_string());
        Ok(Response::new(pb::ListDomainsResponse {
            domains: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn start_grant(
        &self,
        request: Request<pb::StartGrantRequest>,
    ) -> Result<Response<pb::StartGrantResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, GRANTS)
    }

    async fn complete_grant(
        &self,
        _request: Request<pb::CompleteGrantRequest>,
    ) -> Result<Response<pb::CompleteGrantResponse>, Status> {
        Err(ApiError::Unimplemented(GRANTS).into())
    }

    async fn get_grant(
        &self,
        request: Request<pb::GetGrantRequest>,
    ) -> Result<Response<pb::GetGrantResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, GRANTS)
    }

    async fn verify_domains(
        &self,
        request: Request<pb::VerifyDomainsRequest>,
    ) -> Result<Response<pb::VerifyDomainsResponse>, Status> {
        unbuilt(&request, &request.get_ref().tenant_id, GRANTS)
    }
}
