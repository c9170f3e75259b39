//! The authenticated caller.

use std::collections::BTreeSet;

use crate::domain::TenantId;

/// A permission named after the product's roles, as carried in a token's `permissions` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// "EMS - Retract Message": start and cancel retracts.
    RetractMessage,
    /// Read retract options, jobs and events.
    RetractRead,
    /// Record deliveries (the gateway).
    DeliveriesWrite,
    /// Manage domains and permission grants.
    DomainsManage,
    /// Create and list tenants (service callers).
    TenantsManage,
    /// Read the audit trail.
    AuditRead,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Self; 6] = [
        Self::RetractMessage,
        Self::RetractRead,
        Self::DeliveriesWrite,
        Self::DomainsManage,
        Self::TenantsManage,
        Self::AuditRead,
    ];

    /// The claim value, e.g. `retract.message`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetractMessage => "retract.message",
            Self::RetractRead => "retract.read",
            Self::DeliveriesWrite => "deliveries.write",
            Self::DomainsManage => "domains.manage",
            Self::TenantsManage => "tenants.manage",
            Self::AuditRead => "audit.read",
        }
    }

    /// Reads a claim value; unknown values are `None` (ignored, never an error, so that new
    /// permissions can be issued before every replica knows them).
    pub fn from_claim(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == value)
    }
}

/// Which of our tenants a caller may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant: service callers whose token says `tenants: ["*"]`.
    All,
    /// Exactly these tenants.
    Only(BTreeSet<TenantId>),
}

/// The authenticated identity of a request, placed in its extensions by [`super::AuthLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: a stable id of the caller.
    pub subject: String,
    /// A human administrator's address; absent for service callers.
    pub email: Option<String>,
    /// The tenants it may act on.
    pub tenants: TenantScope,
    /// What it may do.
    pub permissions: BTreeSet<Permission>,
}

impl Caller {
    /// The name the audit trail records: the email of a human, else the token subject.
    pub fn actor(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.subject)
    }

    /// Whether the caller holds `permission`.
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Whether the caller may act on `tenant`.
    pub fn may_access(&self, tenant: &TenantId) -> bool {
        match &self.tenants {
            TenantScope::All => true,
            TenantScope::Only(tenants) => tenants.contains(tenant),
        }
    }
}
