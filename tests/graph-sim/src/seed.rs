//! What the simulator starts with: tenants, app registrations, users and mail.
//!
//! The same types are the JSON fixture format (`serde`) and the Rust builders, so a fixture file
//! and a test's builder chain describe exactly the same world.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
            display_name: None,
            redirect_uris: Vec::new(),
            application_permissions: default_application_permissions(),
            delegated_permissions: default_delegated_permissions(),
        }
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

    /// Folders `/messages` searches: everything but the Recoverable Items dumpster.
    pub fn is_user_visible(self) -> bool {
        !matches!(
            self,
            Folder::RecoverableItemsDeletions | Folder::RecoverableItemsPurges
        )
    }
}

/// A message delivered from a sender to recipients.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    pub internet_message_id: String,
    /// Derived from the internet message id when absent.
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    pub from: String,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    #[serde(default)]
    pub bcc: Vec<String>,
    /// Defaults to a fixed instant so fixtures are reproducible.
    #[serde(default)]
    pub sent: Option<DateTime<Utc>>,
    /// How many copies land in each recipient's inbox (several copies of one message).
    #[serde(default = "one")]
    pub copies: u32,
    /// Whether the sender's copy is kept in `sentitems` (when the sender is a simulated user).
    #[serde(default = "yes")]
    pub keep_sent_copy: bool,
}

fn one() -> u32 {
    1
}

impl Mail {
    /// A message with a conversation of its own.
    pub fn new(internet_message_id: impl Into<String>, from: impl Into<String>) -> Self {
        let internet_message_id = internet_message_id.into();
        Self {
            conversation_id: Some(ids::conversation_id(&internet_message_id)),
            internet_message_id,
            subject: String::new(),
            body: String::new(),
            from: from.into(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            sent: None,
            copies: 1,
            keep_sent_copy: true,
        }
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Sets the plain-text body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds To recipients (each simulated one gets a copy in `inbox`).
    pub fn to<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.to.extend(addresses.into_iter().map(Into::into));
        self
    }

    /// Adds Cc recipients.
    pub fn cc<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cc.extend(addresses.into_iter().map(Into::into));
        self
    }

    /// Adds Bcc recipients (only the sender's copy lists them).
    pub fn bcc<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.bcc.extend(addresses.into_iter().map(Into::into));
        self
    }

    /// Sets when the mail was sent.
    pub fn sent_at(mut self, sent: DateTime<Utc>) -> Self {
        self.sent = Some(sent);
        self
    }

    /// Delivers `n` copies to each recipient's inbox.
    pub fn copies(mut self, n: u32) -> Self {
        self.copies = n;
        self
    }

    /// Does not keep a copy in the sender's `sentitems`.
    pub fn without_sent_copy(mut self) -> Self {
        self.keep_sent_copy = false;
        self
    }

    /// The conversation id this mail has.
    pub fn conversation(&self) -> String {
        self.conversation_id
            .clone()
            .unwrap_or_else(|| ids::conversation_id(&self.internet_message_id))
    }

    /// A reply from `from` to this mail's sender: new internet message id, same conversation.
    pub fn reply(&self, internet_message_id: impl Into<String>, from: impl Into<String>) -> Mail {
        let mut reply = self.follow_up(internet_message_id, from, "RE: ");
        reply.to = vec![self.from.clone()];
        reply
    }

    /// A forward by `from` (add recipients with [`Mail::to`]): new internet message id, same
    /// conversation.
    pub fn forward(&self, internet_message_id: impl Into<String>, from: impl Into<String>) -> Mail {
        self.follow_up(internet_message_id, from, "FW: ")
    }

    fn follow_up(
        &self,
        internet_message_id: impl Into<String>,
        from: impl Into<String>,
        prefix: &str,
    ) -> Mail {
        Mail {
            internet_message_id: internet_message_id.into(),
            conversation_id: Some(self.conversation()),
            subject: format!("{prefix}{}", self.subject),
            body: self.body.clone(),
            from: from.into(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            sent: self.sent.map(|s| {
                s.checked_add_signed(chrono::Duration::minutes(5))
                    .unwrap_or(s)
            }),
            copies: 1,
            keep_sent_copy: true,
        }
    }
}

/// One message copy placed directly into a folder of one mailbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlacedMessage {
    /// UPN, primary address or alias of the mailbox owner.
    pub mailbox: String,
    #[serde(default)]
    pub folder: Folder,
    pub internet_message_id: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    #[serde(default)]
    pub bcc: Vec<String>,
    #[serde(default)]
    pub is_read: bool,
    #[serde(default)]
    pub sent: Option<DateTime<Utc>>,
}

impl PlacedMessage {
    pub fn new(
        mailbox: impl Into<String>,
        folder: Folder,
        internet_message_id: impl Into<String>,
    ) -> Self {
        Self {
            mailbox: mailbox.into(),
            folder,
            internet_message_id: internet_message_id.into(),
            conversation_id: None,
            subject: String::new(),
            from: None,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            is_read: false,
            sent: None,
        }
    }

    /// Marks the copy as read.
    pub fn read(mut self) -> Self {
        self.is_read = true;
        self
    }

    /// Sets the sender.
    pub fn from(mut self, address: impl Into<String>) -> Self {
        self.from = Some(address.into());
        self
    }

    /// Puts the copy into an existing conversation.
    pub fn conversation_id(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }
}
