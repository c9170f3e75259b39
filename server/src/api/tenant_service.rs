//! `retract.v1.TenantService`: tenants and domains (grants arrive with issue #5).

use retract_proto::v1::{self as pb, tenant_service_server::TenantService};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{
    ApiError,
    context::CallContext,
    validate::{self, Validated as _, field},
};
use crate::{
    auth::TenantScope,
    consent::{Actor, CompletionParams, Consent},
    domain::{
        AuditSection, DisplayName, DomainName, NewTenant, PageRequest, PageSize, PageToken,
        TenantId, ValidationError,
    },
    store::Store,
};

/// The TenantService implementation.
#[derive(Clone)]
pub struct TenantApi {
    store: Store,
    consent: Consent,
}

impl TenantApi {
    /// Serves tenants from `store` and grants through `consent`.
    pub fn new(store: Store, consent: Consent) -> Self {
        Self { store, consent }
    }
}

/// Validates a redirect's `state`.
fn consent_state(raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty() || raw.len() > 512 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError(
            "must be the state Microsoft returned".into(),
        ));
    }
    Ok(raw.to_owned())
}

/// An optional redirect parameter, bounded.
fn redirect_param(raw: &str) -> Result<Option<String>, ValidationError> {
    if raw.len() > 4096 {
        return Err(ValidationError("must be at most 4096 characters".into()));
    }
    Ok(Some(raw.to_owned()).filter(|v| !v.is_empty()))
}

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
        // A service caller limited to some tenants sees only those, filtered in the query so
        // pages and tokens never carry other tenants' ids.
        let only = match &ctx.caller.tenants {
            TenantScope::All => None,
            TenantScope::Only(tenants) => Some(tenants),
        };
        let page = self
            .store
            .list_tenants(only, &PageRequest { size, after })
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.next_page_token(&query, |tenant| tenant.id.to_string());
        let tenants = page.items.into_iter().map(Into::into).collect();
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
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant,) = (field("tenant_id", TenantId::parse(&r.tenant_id)),).validated()?;
        ctx.check_tenant(&tenant)?;
        let actor = Actor {
            name: ctx.caller.actor().to_owned(),
            request_id: ctx.request_id.clone(),
        };
        let (grant, consent_url) = self
            .consent
            .start(&tenant, r.allow_relink, &actor)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::StartGrantResponse {
            grant: Some(grant.into()),
            consent_url,
        }))
    }

    async fn complete_grant(
        &self,
        request: Request<pb::CompleteGrantRequest>,
    ) -> Result<Response<pb::CompleteGrantResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (state, code, error, error_description) = (
            field("state", consent_state(&r.state)),
            field("code", redirect_param(&r.code)),
            field("error", redirect_param(&r.error)),
            field("error_description", redirect_param(&r.error_description)),
        )
            .validated()?;
        // Whoever holds the state completes the attempt, but a caller scoped to other tenants
        // learns nothing from it.
        if let Some(tenant) = self
            .consent
            .tenant_of_state(&state)
            .await
            .map_err(ApiError::from)?
        {
            ctx.check_tenant(&tenant)?;
        }
        let params = CompletionParams {
            state,
            code,
            error,
            error_description,
        };
        let grant = self
            .consent
            .complete(&params)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CompleteGrantResponse {
            grant: Some(grant.into()),
        }))
    }

    async fn get_grant(
        &self,
        request: Request<pb::GetGrantRequest>,
    ) -> Result<Response<pb::GetGrantResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, id) = (
            field("tenant_id", TenantId::parse(&r.tenant_id)),
            field("grant_id", validate::uuid(&r.grant_id, "a grant id")),
        )
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let grant = self
            .store
            .get_grant(&tenant, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::GetGrantResponse {
            grant: Some(grant.into()),
        }))
    }

    async fn verify_domains(
        &self,
        request: Request<pb::VerifyDomainsRequest>,
    ) -> Result<Response<pb::VerifyDomainsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let (tenant,) = (field(
            "tenant_id",
            TenantId::parse(&request.get_ref().tenant_id),
        ),)
            .validated()?;
        ctx.check_tenant(&tenant)?;
        let actor = Actor {
            name: ctx.caller.actor().to_owned(),
            request_id: ctx.request_id.clone(),
        };
        self.consent
            .verify(&tenant, &actor)
            .await
            .map_err(ApiError::from)?;
        let domains = self
            .store
            .all_domains(&tenant)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::VerifyDomainsResponse {
            domains: domains.into_iter().map(Into::into).collect(),
        }))
    }
}
