//! The simulated world: the directory plus one mailbox per user, built from a [`Fixture`].

mod deliver;
mod directory;
mod mailbox;

use std::collections::{BTreeMap, HashMap, HashSet};

use parking_lot::Mutex;

pub use directory::{Directory, DomainRecord, GroupRecord, TenantRecord, UserRecord};
pub use mailbox::{Address, InternetMessageHeader, ItemError, Mailbox, MailboxMessage, NewMessage};

use crate::seed::{Fixture, Folder};

/// A fixture that cannot describe a consistent world.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedError {
    #[error("tenant id {0} is used twice")]
    DuplicateTenant(String),
    #[error("domain {0} belongs to two tenants")]
    DuplicateDomain(String),
    #[error("address, UPN or id {0} belongs to two users")]
    DuplicateUser(String),
    #[error("app {0} is registered twice")]
    DuplicateApp(String),
    #[error("message for {0}: no such simulated mailbox")]
    UnknownMailbox(String),
}

/// The whole mutable state. Mailboxes have their own locks so mail calls to different mailboxes
/// do not contend.
#[derive(Debug)]
pub struct World {
    pub directory: Directory,
    mailboxes: HashMap<String, Mutex<Mailbox>>,
    /// Every message delivered or placed so far, by internet message id: what a later reply or
    /// forward naming it in `in_reply_to` inherits.
    threads: HashMap<String, deliver::ThreadEntry>,
}

impl World {
    pub fn build(fixture: &Fixture) -> Result<World, SeedError> {
        let mut directory = Directory::default();
        let mut seen_tenants = HashSet::new();
        let mut seen_domains = HashSet::new();
        for app in &fixture.apps {
            if directory.app(&app.client_id).is_some() {
                return Err(SeedError::DuplicateApp(app.client_id.clone()));
            }
            directory.insert_app(app.clone());
        }
        let mut mailboxes = HashMap::new();
        for tenant in &fixture.tenants {
            if !seen_tenants.insert(tenant.id.to_ascii_lowercase()) {
                return Err(SeedError::DuplicateTenant(tenant.id.clone()));
            }
            let initial = tenant.initial_domain();
            let has_default = tenant.domains.iter().any(|d| d.default);
            let mut domains = vec![DomainRecord {
                name: initial.clone(),
                verified: true,
                email: true,
                default: !has_default,
                initial: true,
            }];
            domains.extend(
                tenant
                    .domains
                    .iter()
                    .filter(|d| !d.name.eq_ignore_ascii_case(&initial))
                    .map(|d| DomainRecord {
                        name: d.name.clone(),
                        verified: d.verified,
                        email: d.email,
                        default: d.default,
                        initial: false,
                    }),
            );
            for domain in &domains {
                if !seen_domains.insert(domain.name.to_ascii_lowercase()) {
                    return Err(SeedError::DuplicateDomain(domain.name.clone()));
                }
            }
            directory.insert_tenant(TenantRecord {
                id: tenant.id.clone(),
                display_name: tenant.display_name.clone(),
                domains,
                consents: tenant.consented_apps.iter().cloned().collect(),
            });
            for user in &tenant.users {
                let record = UserRecord {
                    id: user.object_id(),
                    tenant_id: tenant.id.clone(),
                    user_principal_name: user.user_principal_name.clone(),
                    mail: user.primary_mail().to_owned(),
                    display_name: user
                        .display_name
                        .clone()
                        .unwrap_or_else(|| local_part(&user.user_principal_name)),
                    aliases: user.aliases.clone(),
                    mailbox: user.mailbox,
                    access_policy_excluded: user.access_policy_excluded,
                    admin: user.admin,
                };
                for key in [&record.id, &record.user_principal_name, &record.mail]
                    .into_iter()
                    .chain(&record.aliases)
                {
                    if directory.has_user_key(key) {
                        return Err(SeedError::DuplicateUser(key.clone()));
                    }
                }
                mailboxes.insert(
                    record.id.to_ascii_lowercase(),
                    Mutex::new(Mailbox::new(&record.id, fixture.conversation_ids)),
                );
                directory.insert_user(record);
            }
            for group in &tenant.groups {
                if directory.has_user_key(&group.mail) {
                    return Err(SeedError::DuplicateUser(group.mail.clone()));
                }
                directory.insert_group(GroupRecord {
                    tenant_id: tenant.id.clone(),
                    mail: group.mail.clone(),
                    display_name: group
                        .display_name
                        .clone()
                        .unwrap_or_else(|| local_part(&group.mail)),
                    kind: group.kind,
                    members: group.members.clone(),
                });
            }
        }
        let mut world = World {
            directory,
            mailboxes,
            threads: HashMap::new(),
        };
        for mail in &fixture.mails {
            world.deliver(mail);
        }
        for placed in &fixture.messages {
            world.place(placed)?;
        }
        Ok(world)
    }

    fn insert_into(&mut self, user_id: &str, message: NewMessage) {
        if let Some(mailbox) = self.mailboxes.get(&user_id.to_ascii_lowercase()) {
            mailbox.lock().insert(message);
        }
    }

    /// Runs `f` on the mailbox of `user_id` under its lock.
    pub fn with_mailbox<T>(&self, user_id: &str, f: impl FnOnce(&mut Mailbox) -> T) -> Option<T> {
        self.mailboxes
            .get(&user_id.to_ascii_lowercase())
            .map(|m| f(&mut m.lock()))
    }

    /// Snapshot of every folder of one mailbox.
    pub fn contents(&self, user_id: &str) -> Option<BTreeMap<Folder, Vec<MailboxMessage>>> {
        self.with_mailbox(user_id, |m| m.contents())
    }
}

fn local_part(address: &str) -> String {
    address.split('@').next().unwrap_or(address).to_owned()
}
