//! `retract.v1.TenantService`: tenants, their domains with their retract status, and the
//! Grant Permissions flow (admin consent, completion, re-verification).

use retract_proto::v1::{self as pb, tenant_service_server::TenantService};
use tonic::{Request, Response, Status};

use super::{
    ApiError,
    context::CallContext,
    convert,
    validate::{self, Validated as _, field},
};
use crate::{
    auth::TenantScope,
    consent::{Actor, CompletionParams, Consent},
    domain::{
        AuditAction, AuditDetails, DisplayName, DomainName, NewTenant, PageRequest, PageSize,
        PageToken, TenantId, ValidationError, now,
    },
    store::Store,
};

/// The TenantService implementation.
#[derive(Clone)]
pub struct TenantApi {
    store: Store,
    consent: Consent,
    /// How long a deleted tenant's audit trail is kept (`None`: forever).
    deleted_audit_kept: Option<chrono::Duration>,
}

/// Most characters of DeleteTenant's `reason`.
const MAX_DELETE_REASON_CHARS: usize = 500;

impl TenantApi {
    /// Serves tenants from `store` and grants through `consent`; a deleted tenant's audit
    /// trail is kept for `deleted_audit_kept`.
    pub fn new(
        store: Store,
        consent: Consent,
        deleted_audit_kept: Option<chrono::Duration>,
    ) -> Self {
        Self {
            store,
            consent,
            deleted_audit_kept,
        }
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<pb::DeleteTenantResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let confirmed = if r.confirm == r.tenant_id {
            Ok(())
        } else {
            Err(ValidationError(
                "must repeat tenant_id exactly to confirm the deletion".into(),
            ))
        };
        let (tenant, (), reason) = (
            ctx.tenant(&r.tenant_id),
            field("confirm", confirmed),
            field(
                "reason",
                validate::optional_text(&r.reason, MAX_DELETE_REASON_CHARS),
            ),
        )
            .validated_for(&ctx)?;
        // The details (what went) are known inside the deletion's transaction.
        let mut entry = ctx.audit(
            &tenant,
            AuditAction::TenantDeleted,
            tenant.as_str(),
            AuditDetails::TenantCreated {
                display_name: String::new(),
            },
        );
        let deletion = self
            .store
            .delete_tenant(
                &tenant,
                ctx.caller.actor(),
                self.deleted_audit_kept,
                move |d| {
                    entry.details = AuditDetails::TenantDeleted {
                        reason,
                        microsoft_tenant_id: d
                            .microsoft_tenant_id
                            .as_ref()
                            .map(ToString::to_string),
                        domains: d.domains.iter().map(ToString::to_string).collect(),
                        delivery_count: d.delivery_count,
                        job_count: d.job_count,
                        audit_purge_at: d.audit_purge_at,
                    };
                    entry
                },
            )
            .await?;
        tracing::info!(tenant = %tenant, actor = %ctx.caller.actor(), "tenant deleted");
        Ok(pb::DeleteTenantResponse {
            domain_count: i32::try_from(deletion.domains.len()).unwrap_or(i32::MAX),
            delivery_count: i64::try_from(deletion.delivery_count).unwrap_or(i64::MAX),
            job_count: i64::try_from(deletion.job_count).unwrap_or(i64::MAX),
            audit_purge_time: deletion.audit_purge_at.map(convert::timestamp),
        })
    }

    async fn create(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<pb::CreateTenantResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (id, display_name) = (
            ctx.tenant(&r.tenant_id),
            field("display_name", DisplayName::parse(&r.display_name)),
        )
            .validated_for(&ctx)?;
        let audit = ctx.audit(
            &id,
            AuditAction::TenantCreated,
            id.as_str(),
            AuditDetails::TenantCreated {
                display_name: display_name.as_str().to_owned(),
            },
        );
        let tenant = self
            .store
            .create_tenant(NewTenant { id, display_name }, audit)
            .await?;
        Ok(pb::CreateTenantResponse {
            tenant: Some(tenant.into()),
        })
    }

    async fn tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<pb::GetTenantResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let (id,) = (ctx.tenant(&request.get_ref().tenant_id),).validated_for(&ctx)?;
        let tenant = self.store.get_tenant(&id).await?;
        Ok(pb::GetTenantResponse {
            tenant: Some(tenant.into()),
        })
    }

    async fn tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<pb::ListTenantsResponse, ApiError> {
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
            .await?;
        let next_page_token = page.next_page_token(&query, |tenant| tenant.id.to_string());
        let tenants = page.items.into_iter().map(Into::into).collect();
        Ok(pb::ListTenantsResponse {
            tenants,
            next_page_token,
        })
    }

    async fn add(
        &self,
        request: Request<pb::AddDomainRequest>,
    ) -> Result<pb::AddDomainResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, name) = (
            ctx.tenant(&r.tenant_id),
            field("domain", DomainName::parse(&r.domain)),
        )
            .validated_for(&ctx)?;
        let audit = ctx.audit(
            &tenant,
            AuditAction::DomainAdded,
            name.as_str(),
            AuditDetails::DomainChanged {
                domain: name.to_string(),
                as_entered: Some(r.domain.clone()),
            },
        );
        let domain = self.store.add_domain(&tenant, &name, audit).await?;
        Ok(pb::AddDomainResponse {
            domain: Some(domain.into()),
        })
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveDomainRequest>,
    ) -> Result<pb::RemoveDomainResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, name) = (
            ctx.tenant(&r.tenant_id),
            field("domain", DomainName::parse(&r.domain)),
        )
            .validated_for(&ctx)?;
        let audit = ctx.audit(
            &tenant,
            AuditAction::DomainRemoved,
            name.as_str(),
            AuditDetails::DomainChanged {
                domain: name.to_string(),
                as_entered: None,
            },
        );
        let domain = self.store.remove_domain(&tenant, &name, audit).await?;
        Ok(pb::RemoveDomainResponse {
            domain: Some(domain.into()),
        })
    }

    async fn domains(
        &self,
        request: Request<pb::ListDomainsRequest>,
    ) -> Result<pb::ListDomainsResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, size) = (
            ctx.tenant(&r.tenant_id),
            field("page_size", PageSize::parse(r.page_size)),
        )
            .validated_for(&ctx)?;
        let query = domains_query(&tenant);
        let (after,) = (field(
            "page_token",
            PageToken::decode::<String>(&query, &r.page_token),
        ),)
            .validated()?;
        // An unknown tenant answers NOT_FOUND rather than an empty list.
        self.store.get_tenant(&tenant).await?;
        let page = self
            .store
            .list_domains(&tenant, &PageRequest { size, after })
            .await?;
        let next_page_token = page.next_page_token(&query, |domain| domain.name.to_string());
        Ok(pb::ListDomainsResponse {
            domains: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    async fn grant_start(
        &self,
        request: Request<pb::StartGrantRequest>,
    ) -> Result<pb::StartGrantResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant,) = (ctx.tenant(&r.tenant_id),).validated_for(&ctx)?;
        let actor = Actor {
            name: ctx.caller.actor().to_owned(),
            request_id: ctx.request_id.clone(),
        };
        let (grant, consent_url) = self.consent.start(&tenant, r.allow_relink, &actor).await?;
        Ok(pb::StartGrantResponse {
            grant: Some(convert::grant(grant, now())),
            consent_url,
        })
    }

    async fn grant_complete(
        &self,
        request: Request<pb::CompleteGrantRequest>,
    ) -> Result<pb::CompleteGrantResponse, ApiError> {
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
        if let Some(tenant) = self.consent.tenant_of_state(&state).await? {
            ctx.check_tenant(&tenant)?;
        }
        let params = CompletionParams {
            state,
            code,
            error,
            error_description,
        };
        let grant = self.consent.complete(&params).await?;
        Ok(pb::CompleteGrantResponse {
            grant: Some(convert::grant(grant, now())),
        })
    }

    async fn grant(
        &self,
        request: Request<pb::GetGrantRequest>,
    ) -> Result<pb::GetGrantResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (tenant, id) = (
            ctx.tenant(&r.tenant_id),
            field("grant_id", validate::uuid(&r.grant_id, "a grant id")),
        )
            .validated_for(&ctx)?;
        let grant = self.store.get_grant(&tenant, &id).await?;
        Ok(pb::GetGrantResponse {
            grant: Some(convert::grant(grant, now())),
        })
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyDomainsRequest>,
    ) -> Result<pb::VerifyDomainsResponse, ApiError> {
        let ctx = CallContext::of(&request)?;
        let (tenant,) = (ctx.tenant(&request.get_ref().tenant_id),).validated_for(&ctx)?;
        let actor = Actor {
            name: ctx.caller.actor().to_owned(),
            request_id: ctx.request_id.clone(),
        };
        self.consent.verify(&tenant, &actor).await?;
        let domains = self.store.all_domains(&tenant).await?;
        Ok(pb::VerifyDomainsResponse {
            domains: domains.into_iter().map(Into::into).collect(),
        })
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
        Ok(Response::new(self.create(request).await?))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        Ok(Response::new(self.tenant(request).await?))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        Ok(Response::new(self.tenants(request).await?))
    }

    async fn add_domain(
        &self,
        request: Request<pb::AddDomainRequest>,
    ) -> Result<Response<pb::AddDomainResponse>, Status> {
        Ok(Response::new(self.add(request).await?))
    }

    async fn remove_domain(
        &self,
        request: Request<pb::RemoveDomainRequest>,
    ) -> Result<Response<pb::RemoveDomainResponse>, Status> {
        Ok(Response::new(self.remove(request).await?))
    }

    async fn list_domains(
        &self,
        request: Request<pb::ListDomainsRequest>,
    ) -> Result<Response<pb::ListDomainsResponse>, Status> {
        Ok(Response::new(self.domains(request).await?))
    }

    async fn start_grant(
        &self,
        request: Request<pb::StartGrantRequest>,
    ) -> Result<Response<pb::StartGrantResponse>, Status> {
        Ok(Response::new(self.grant_start(request).await?))
    }

    async fn complete_grant(
        &self,
        request: Request<pb::CompleteGrantRequest>,
    ) -> Result<Response<pb::CompleteGrantResponse>, Status> {
        Ok(Response::new(self.grant_complete(request).await?))
    }

    async fn get_grant(
        &self,
        request: Request<pb::GetGrantRequest>,
    ) -> Result<Response<pb::GetGrantResponse>, Status> {
        Ok(Response::new(self.grant(request).await?))
    }

    async fn verify_domains(
        &self,
        request: Request<pb::VerifyDomainsRequest>,
    ) -> Result<Response<pb::VerifyDomainsResponse>, Status> {
        Ok(Response::new(self.verify(request).await?))
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        Ok(Response::new(self.delete(request).await?))
    }
}
