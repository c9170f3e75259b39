//! What the simulator starts with: tenants, app registrations, users and mail.
//!
//! The same types are the JSON fixture format (`serde`) and the Rust builders, so a fixture file
//! and a test's builder chain describe exactly the same world.

mod mail;

use serde::{Deserialize, Serialize};

pub use mail::{ConversationIndex, Mail, PlacedMessage, default_sent};

use crate::ids;

/// Application permissions an app registration asks for by default (what `.default` consents to).
pub const DEFAULT_APPLICATION_PERMISSIONS: [&str; 3] =
    ["User.Read.All", "Mail.ReadWrite", "Domain.Read.All"];
/// Delegated permissions an app registration asks for by default.
pub const DEFAULT_DELEGATED_PERMISSIONS: [&str; 1] = ["User.Read"];

/// The whole seeded world. `Fixture::default()` is empty.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Fixture {
    /// App registrations, usable from every tenant that consented to them.
    pub apps: Vec<App>,
    /// Microsoft tenants with their domains and users.
    pub tenants: Vec<Tenant>,
    /// Delivered mail: the sender's copy lands in `sentitems`, each recipient's in `inbox`.
    pub mails: Vec<Mail>,
    /// Single message copies placed directly into one mailbox folder.
    pub messages: Vec<PlacedMessage>,
    /// Whether a thread's `conversationId` differs between mailboxes (the default) or not.
    pub conversation_ids: ConversationIds,
}

/// How the `conversationId` of a copy is chosen.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConversationIds {
    /// A function of the mailbox and the thread, as Exchange's ids can differ between
    /// mailboxes: one mailbox's id finds nothing in another mailbox.
    #[default]
    PerMailbox,
    /// The thread key itself, the same in every mailbox.
    Global,
}

impl Fixture {
    /// Parses a JSON fixture.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// An app registration (multi-tenant, confidential client).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// The application (client) id.
    pub client_id: String,
    /// The one valid client secret.
    pub client_secret: String,
    /// When the secret expires (Unix seconds on the simulator's clock); after that it is
    /// answered with AADSTS7000222.
    #[serde(default)]
    pub client_secret_expires_unix: Option<i64>,
    /// PEM certificates registered as credentials: a `client_assertion` signed with one of
    /// their private keys (named by its `x5t#S256` thumbprint) authenticates the app.
    #[serde(default)]
    pub certificates: Vec<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Registered redirect URIs; empty means any redirect URI is accepted.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Static application permissions (app roles) granted on admin consent.
    #[serde(default = "default_application_permissions")]
    pub application_permissions: Vec<String>,
    /// Static delegated permissions granted by `.default` in a user sign-in.
    #[serde(default = "default_delegated_permissions")]
    pub delegated_permissions: Vec<String>,
}

fn default_application_permissions() -> Vec<String> {
    DEFAULT_APPLICATION_PERMISSIONS
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

fn default_delegated_permissions() -> Vec<String> {
    DEFAULT_DELEGATED_PERMISSIONS
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

impl App {
    /// An app registration with the default static permissions.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            client_secret_expires_unix: None,
            certificates: Vec::new(),
            display_name: None,
            redirect_uris: Vec::new(),
            application_permissions: default_application_permissions(),
            delegated_permissions: default_delegated_permissions(),
        }
    }

    /// Registers a PEM certificate as a credential of the app (call again to add more).
    pub fn certificate(mut self, pem: impl Into<String>) -> Self {
        self.certificates.push(pem.into());
        self
    }

    /// Restricts redirects to this URI (call again to register more).
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Replaces the static application permissions.
    pub fn application_permissions<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.application_permissions = permissions.into_iter().map(Into::into).collect();
        self
    }
}

/// A Microsoft tenant (Entra ID directory) with its Exchange Online organisation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// The tenant id (a GUID).
    pub id: String,
    pub display_name: String,
    /// Domains besides the initial `*.onmicrosoft.com` one, which is always added.
    #[serde(default)]
    pub domains: Vec<Domain>,
    /// Client ids of apps an administrator of this tenant has consented to.
    #[serde(default)]
    pub consented_apps: Vec<String>,
    #[serde(default)]
    pub users: Vec<User>,
    /// Microsoft 365 groups and distribution lists (directory objects without a user mailbox).
    #[serde(default)]
    pub groups: Vec<Group>,
}

impl Tenant {
    /// A tenant whose id is derived from `display_name` (stable across runs).
    pub fn new(display_name: impl Into<String>) -> Self {
        let display_name = display_name.into();
        Self {
            id: ids::stable_guid("tenant", &display_name),
            display_name,
            domains: Vec::new(),
            consented_apps: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// Overrides the tenant id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The tenant id (GUID).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Adds a domain.
    pub fn domain(mut self, domain: Domain) -> Self {
        self.domains.push(domain);
        self
    }

    /// Records that an administrator consented to `client_id` in this tenant.
    pub fn consent(mut self, client_id: impl Into<String>) -> Self {
        self.consented_apps.push(client_id.into());
        self
    }

    /// Adds a user (with a mailbox) to this tenant.
    pub fn user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }

    /// Adds a Microsoft 365 group or distribution list.
    pub fn group(mut self, group: Group) -> Self {
        self.groups.push(group);
        self
    }

    /// The initial domain Microsoft creates for every tenant.
    pub fn initial_domain(&self) -> String {
        let slug: String = self
            .display_name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let slug = if slug.is_empty() {
            "tenant".to_owned()
        } else {
            slug
        };
        format!("{slug}.onmicrosoft.com")
    }
}

/// A domain of a tenant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The fully qualified domain name.
    pub name: String,
    #[serde(default = "yes")]
    pub verified: bool,
    /// Whether `supportedServices` contains `Email`.
    #[serde(default = "yes")]
    pub email: bool,
    #[serde(default)]
    pub default: bool,
}

fn yes() -> bool {
    true
}

impl Domain {
    /// A verified domain that supports Email.
    pub fn verified(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verified: true,
            email: true,
            default: false,
        }
    }

    /// A domain added to the tenant but not verified (no services).
    pub fn unverified(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verified: false,
            email: false,
            default: false,
        }
    }

    /// A verified domain whose supported services do not include Email.
    pub fn without_email(mut self) -> Self {
        self.email = false;
        self
    }

    /// Makes this the tenant's default domain.
    pub fn default_domain(mut self) -> Self {
        self.default = true;
        self
    }
}

/// Whether Exchange Online serves a user's mailbox through REST.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MailboxKind {
    /// A licensed Exchange Online mailbox.
    #[default]
    Enabled,
    /// Unlicensed, inactive, soft-deleted or on-premises: 404 `MailboxNotEnabledForRESTAPI`.
    NotEnabled,
}

/// A user of a tenant, with a mailbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Object id (GUID); derived from the UPN when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub user_principal_name: String,
    /// Primary SMTP address; the UPN when absent.
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Secondary SMTP addresses (`smtp:` proxy addresses); found only through `$filter`.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub mailbox: MailboxKind,
    /// Excluded by an application access policy: 403 `ErrorAccessDenied` for app-only calls.
    #[serde(default)]
    pub access_policy_excluded: bool,
    /// A global administrator, who can consent for the tenant.
    #[serde(default)]
    pub admin: bool,
}

impl User {
    /// A licensed user whose UPN is also the primary SMTP address.
    pub fn new(user_principal_name: impl Into<String>) -> Self {
        Self {
            id: None,
            user_principal_name: user_principal_name.into(),
            mail: None,
            display_name: None,
            aliases: Vec::new(),
            mailbox: MailboxKind::Enabled,
            access_policy_excluded: false,
            admin: false,
        }
    }

    /// Sets the object id instead of deriving it from the UPN.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets a primary SMTP address different from the UPN.
    pub fn mail(mut self, mail: impl Into<String>) -> Self {
        self.mail = Some(mail.into());
        self
    }

    /// Sets the display name (default: the UPN's local part).
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Adds a secondary SMTP address.
    pub fn alias(mut self, address: impl Into<String>) -> Self {
        self.aliases.push(address.into());
        self
    }

    /// Unlicensed / on-premises: mail calls answer 404 `MailboxNotEnabledForRESTAPI`.
    pub fn unlicensed(mut self) -> Self {
        self.mailbox = MailboxKind::NotEnabled;
        self
    }

    /// Excluded by an application access policy: app-only mail calls answer 403.
    pub fn excluded_by_access_policy(mut self) -> Self {
        self.access_policy_excluded = true;
        self
    }

    /// Makes the user a global administrator, who can consent for the tenant.
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// The object id this user will have.
    pub fn object_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            ids::stable_guid("user", &self.user_principal_name.to_ascii_lowercase())
        })
    }

    /// The primary SMTP address.
    pub fn primary_mail(&self) -> &str {
        self.mail.as_deref().unwrap_or(&self.user_principal_name)
    }
}

/// What kind of group an address is.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// A Microsoft 365 group: its own group mailbox (conversations, not served under
    /// `/users`), members get a copy in their inbox.
    #[default]
    Microsoft365,
    /// A distribution list: Exchange expands it to its members' inboxes.
    DistributionList,
}

/// A group address: a directory object that is not a user. `GET /users/{address}` answers 404
/// `Request_ResourceNotFound`, a `/users?$filter=mail eq '…'` lookup finds nothing, mail calls
/// on it answer 404 `ErrorInvalidUser`; mail sent to it reaches each member's inbox with the
/// group address (not the members) on the To/Cc line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The group's SMTP address.
    pub mail: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub kind: GroupKind,
    /// Members' addresses (users of the tenant, other groups, or outside addresses).
    #[serde(default)]
    pub members: Vec<String>,
}

impl Group {
    /// A Microsoft 365 group.
    pub fn microsoft365(mail: impl Into<String>) -> Self {
        Self {
            mail: mail.into(),
            display_name: None,
            kind: GroupKind::Microsoft365,
            members: Vec::new(),
        }
    }

    /// A distribution list.
    pub fn distribution_list(mail: impl Into<String>) -> Self {
        Self {
            kind: GroupKind::DistributionList,
            ..Self::microsoft365(mail)
        }
    }

    /// Adds members.
    pub fn members<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.members.extend(addresses.into_iter().map(Into::into));
        self
    }
}

/// The well-known mail folders every simulated mailbox has.
#[derive(
    Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Folder {
    #[default]
    Inbox,
    Drafts,
    SentItems,
    DeletedItems,
    JunkEmail,
    Archive,
    /// Recoverable Items\Deletions: where `DELETE` puts a message.
    RecoverableItemsDeletions,
    /// Recoverable Items\Purges: where `permanentDelete` puts a message; not reachable via Graph.
    RecoverableItemsPurges,
}

impl Folder {
    pub const ALL: [Folder; 8] = [
        Folder::Inbox,
        Folder::Drafts,
        Folder::SentItems,
        Folder::DeletedItems,
        Folder::JunkEmail,
        Folder::Archive,
        Folder::RecoverableItemsDeletions,
        Folder::RecoverableItemsPurges,
    ];

    /// The Graph well-known folder name.
    pub fn well_known_name(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::Drafts => "drafts",
            Folder::SentItems => "sentitems",
            Folder::DeletedItems => "deleteditems",
            Folder::JunkEmail => "junkemail",
            Folder::Archive => "archive",
            Folder::RecoverableItemsDeletions => "recoverableitemsdeletions",
            Folder::RecoverableItemsPurges => "recoverableitemspurges",
        }
    }

    /// The folder's display name in Outlook.
    pub fn display_name(self) -> &'static str {
        match self {
            Folder::Inbox => "Inbox",
            Folder::Drafts => "Drafts",
            Folder::SentItems => "Sent Items",
            Folder::DeletedItems => "Deleted Items",
            Folder::JunkEmail => "Junk Email",
            Folder::Archive => "Archive",
            Folder::RecoverableItemsDeletions => "Deletions",
            Folder::RecoverableItemsPurges => "Purges",
        }
    }

    /// Parses a well-known name (case-insensitive).
    pub fn from_well_known(name: &str) -> Option<Folder> {
        Folder::ALL
            .into_iter()
            .find(|f| f.well_known_name().eq_ignore_ascii_case(name))
    }

    /// Folders whose copies Graph can address by id: all but Recoverable Items\Purges
    /// (Recoverable Items\Deletions can be listed, read, moved out of and purged).
    pub fn is_addressable(self) -> bool {
        self != Folder::RecoverableItemsPurges
    }

    /// Folders `/messages` searches: everything but the Recoverable Items dumpster.
    pub fn is_user_visible(self) -> bool {
        !matches!(
            self,
            Folder::RecoverableItemsDeletions | Folder::RecoverableItemsPurges
        )
    }
}
