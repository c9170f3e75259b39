//! The caller and request id of one call, tenant checks, and audit entries made from them.

use tonic::Request;

use super::ApiError;
use crate::{
    auth::Caller,
    domain::{AuditAction, AuditDetails, AuditEntry, AuditOutcome, TenantId},
};

/// Metadata key of the request id shared with callers and the audit trail.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Who is calling and under which request id.
pub struct CallContext {
    /// The authenticated caller.
    pub caller: Caller,
    /// The caller's `x-request-id` when it is sane (1-128 visible ASCII), else a new UUID.
    pub request_id: String,
}

impl CallContext {
    /// Reads the context the auth layer left on `request`.
    pub fn of<T>(request: &Request<T>) -> Result<Self, ApiError> {
        let caller = request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| {
                ApiError::Internal(
                    "request reached a handler without an authenticated caller".into(),
                )
            })?;
        let request_id = request
            .metadata()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        Ok(Self { caller, request_id })
    }

    /// The request's `tenant_id` field, parsed (checked against the caller by
    /// [`super::validate::Validated::validated_for`]).
    pub fn tenant(&self, raw: &str) -> Result<TenantId, super::FieldViolation> {
        super::validate::field("tenant_id", TenantId::parse(raw))
    }

    /// Refuses a caller whose token does not cover `tenant`. Checked before any lookup, so a
    /// caller learns nothing about other tenants' resources (PERMISSION_DENIED before NOT_FOUND).
    pub fn check_tenant(&self, tenant: &TenantId) -> Result<(), ApiError> {
        if self.caller.may_access(tenant) {
            Ok(())
        } else {
            Err(tenant_not_allowed(tenant))
        }
    }

    /// An audit entry of a successful action by this caller.
    pub fn audit(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        target: impl Into<String>,
        details: AuditDetails,
    ) -> AuditEntry {
        AuditEntry {
            tenant_id: tenant.clone(),
            actor: self.caller.actor().to_owned(),
            action,
            target: target.into(),
            outcome: AuditOutcome::Succeeded,
            correlation_id: self.request_id.clone(),
            details,
        }
    }
}

/// The refusal of a caller whose token does not cover `tenant`.
pub fn tenant_not_allowed(tenant: &TenantId) -> ApiError {
    ApiError::denied(
        super::error::Reason::TenantNotAllowed,
        format!("the caller may not act on tenant {tenant:?}"),
        vec![("tenant_id", tenant.to_string())],
    )
}
