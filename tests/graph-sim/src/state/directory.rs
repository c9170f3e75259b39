//! Entra ID as the simulator sees it: tenants, domains, app registrations, consents, users.

use std::collections::{HashMap, HashSet};

use crate::seed::{App, GroupKind, MailboxKind};

/// A tenant with its domains and the apps its administrators consented to.
#[derive(Clone, Debug)]
pub struct TenantRecord {
    pub id: String,
    pub display_name: String,
    pub domains: Vec<DomainRecord>,
    pub consents: HashSet<String>,
}

#[derive(Clone, Debug)]
pub struct DomainRecord {
    pub name: String,
    pub verified: bool,
    pub email: bool,
    pub default: bool,
    pub initial: bool,
}

/// A user of one tenant.
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: String,
    pub tenant_id: String,
    pub user_principal_name: String,
    pub mail: String,
    pub display_name: String,
    pub aliases: Vec<String>,
    pub mailbox: MailboxKind,
    pub access_policy_excluded: bool,
    pub admin: bool,
}

impl UserRecord {
    /// `proxyAddresses` as Exchange writes them: `SMTP:` for the primary, `smtp:` for aliases.
    pub fn proxy_addresses(&self) -> Vec<String> {
        std::iter::once(format!("SMTP:{}", self.mail))
            .chain(self.aliases.iter().map(|a| format!("smtp:{a}")))
            .collect()
    }
}

/// A Microsoft 365 group or distribution list: an address, not a user or mailbox.
#[derive(Clone, Debug)]
pub struct GroupRecord {
    pub tenant_id: String,
    pub mail: String,
    pub display_name: String,
    pub kind: GroupKind,
    pub members: Vec<String>,
}

/// All directory objects, with the indexes the lookups need.
#[derive(Debug, Default)]
pub struct Directory {
    tenants: HashMap<String, TenantRecord>,
    tenant_by_domain: HashMap<String, String>,
    apps: HashMap<String, App>,
    users: HashMap<String, UserRecord>,
    user_by_upn: HashMap<String, String>,
    user_by_address: HashMap<String, String>,
    /// Groups by lower-case address; never found by the user lookups.
    groups: HashMap<String, GroupRecord>,
}

impl Directory {
    pub fn insert_tenant(&mut self, tenant: TenantRecord) {
        for domain in &tenant.domains {
            self.tenant_by_domain
                .insert(domain.name.to_ascii_lowercase(), tenant.id.clone());
        }
        self.tenants.insert(tenant.id.to_ascii_lowercase(), tenant);
    }

    pub fn insert_app(&mut self, app: App) {
        self.apps.insert(app.client_id.clone(), app);
    }

    pub fn insert_user(&mut self, user: UserRecord) {
        let id = user.id.to_ascii_lowercase();
        self.user_by_upn
            .insert(user.user_principal_name.to_ascii_lowercase(), id.clone());
        for address in std::iter::once(&user.mail)
            .chain(&user.aliases)
            .chain([&user.user_principal_name])
        {
            self.user_by_address
                .insert(address.to_ascii_lowercase(), id.clone());
        }
        self.users.insert(id, user);
    }

    pub fn has_user_key(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.users.contains_key(&key)
            || self.user_by_address.contains_key(&key)
            || self.groups.contains_key(&key)
    }

    pub fn insert_group(&mut self, group: GroupRecord) {
        self.groups.insert(group.mail.to_ascii_lowercase(), group);
    }

    /// A group by its address (delivery expands it; Graph's `/users` lookups never find it).
    pub fn group(&self, address: &str) -> Option<&GroupRecord> {
        self.groups.get(&address.to_ascii_lowercase())
    }

    /// A tenant by id or by one of its domain names (as the identity platform accepts both).
    pub fn tenant(&self, id_or_domain: &str) -> Option<&TenantRecord> {
        let key = id_or_domain.to_ascii_lowercase();
        self.tenants.get(&key).or_else(|| {
            self.tenant_by_domain
                .get(&key)
                .and_then(|id| self.tenants.get(&id.to_ascii_lowercase()))
        })
    }

    pub fn tenant_mut(&mut self, id: &str) -> Option<&mut TenantRecord> {
        self.tenants.get_mut(&id.to_ascii_lowercase())
    }

    pub fn tenants(&self) -> impl Iterator<Item = &TenantRecord> {
        self.tenants.values()
    }

    pub fn app_mut(&mut self, client_id: &str) -> Option<&mut App> {
        self.apps.get_mut(client_id)
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.get(client_id)
    }

    pub fn user(&self, id: &str) -> Option<&UserRecord> {
        self.users.get(&id.to_ascii_lowercase())
    }

    /// `/users/{id or userPrincipalName}` inside one tenant. Aliases and a primary address that
    /// differs from the UPN are *not* found this way, as in Graph.
    pub fn user_in_tenant(&self, tenant_id: &str, key: &str) -> Option<&UserRecord> {
        let key = key.to_ascii_lowercase();
        let user = self
            .users
            .get(&key)
            .or_else(|| self.user_by_upn.get(&key).and_then(|id| self.users.get(id)))?;
        user.tenant_id
            .eq_ignore_ascii_case(tenant_id)
            .then_some(user)
    }

    /// Any address, UPN or id of any tenant (seeding and the test handle use this).
    pub fn user_by_any(&self, key: &str) -> Option<&UserRecord> {
        let key = key.to_ascii_lowercase();
        self.users.get(&key).or_else(|| {
            self.user_by_address
                .get(&key)
                .and_then(|id| self.users.get(id))
        })
    }

    /// Users of one tenant in a stable order.
    pub fn users_of_tenant(&self, tenant_id: &str) -> Vec<&UserRecord> {
        let mut users: Vec<&UserRecord> = self
            .users
            .values()
            .filter(|u| u.tenant_id.eq_ignore_ascii_case(tenant_id))
            .collect();
        users.sort_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name));
        users
    }
}
