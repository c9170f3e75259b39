//! Seeded mail: delivered messages with their threads (replies, forwards, drafts) and single
//! copies placed into one folder.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{Folder, yes};
use crate::{conversation, ids};

/// When a seed does not say when a message was sent (fixed, so fixtures are reproducible).
pub fn default_sent() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A reply or forward is sent this long after its parent unless told otherwise.
const FOLLOW_UP_DELAY_MINUTES: i64 = 5;

/// What a message's `conversationIndex` is.
///
/// JSON: `"derived"` (the default), `"missing"`, `"malformed"` or `{"value": "<base64>"}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConversationIndex {
    /// As Outlook sets it: a child of the parent's index (the one in
    /// [`Mail::parent_conversation_index`], or that of the seeded message named by
    /// [`Mail::in_reply_to`]); a new 22-byte header when there is no usable parent.
    #[default]
    Derived,
    /// Exactly this base64 value.
    Value(String),
    /// No index at all (`conversationIndex` renders as `null`), as from some non-Outlook senders.
    Missing,
    /// Valid base64 that is not an index (wrong length and reserved byte).
    Malformed,
}

/// A message delivered from a sender to recipients.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    pub internet_message_id: String,
    /// The thread this mail belongs to (the simulator's key, from which each mailbox's
    /// `conversationId` is derived). When absent: the thread of the seeded message named by
    /// `in_reply_to`, else a new thread derived from the internet message id.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The `conversationIndex` every copy of this mail carries.
    #[serde(default)]
    pub conversation_index: ConversationIndex,
    /// The parent's index, recorded by [`Mail::reply`] / [`Mail::forward`]; a derived index is
    /// this plus one child block.
    #[serde(default)]
    pub parent_conversation_index: Option<String>,
    /// The parent's internet message id (a reply or forward): the `In-Reply-To` header.
    #[serde(default)]
    pub in_reply_to: Option<String>,
    /// Ancestors' internet message ids, oldest first: the `References` header. When empty and
    /// `in_reply_to` names a seeded message: that message's references plus its id.
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    /// The sender: a simulated user (who keeps a copy in `sentitems`) or any outside address.
    pub from: String,
    /// Recipients: simulated users, groups (expanded to their members) or outside addresses
    /// (listed on the copies, delivered nowhere).
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
    /// Never sent: one copy in the sender's `drafts` (`isDraft: true`), none for recipients.
    #[serde(default)]
    pub draft: bool,
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
            conversation_index: ConversationIndex::Derived,
            parent_conversation_index: None,
            in_reply_to: None,
            references: Vec::new(),
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
            draft: false,
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

    /// Never sent: only a copy in the sender's `drafts`, with `isDraft: true`.
    pub fn draft(mut self) -> Self {
        self.draft = true;
        self
    }

    /// No `conversationIndex` on any copy (renders as `null`).
    pub fn without_conversation_index(mut self) -> Self {
        self.conversation_index = ConversationIndex::Missing;
        self
    }

    /// A `conversationIndex` that is base64 but not a valid index.
    pub fn malformed_conversation_index(mut self) -> Self {
        self.conversation_index = ConversationIndex::Malformed;
        self
    }

    /// Exactly this base64 `conversationIndex`.
    pub fn with_conversation_index(mut self, value: impl Into<String>) -> Self {
        self.conversation_index = ConversationIndex::Value(value.into());
        self
    }

    /// When the mail was sent (the fixed default when the seed does not say).
    pub fn sent_or_default(&self) -> DateTime<Utc> {
        self.sent.unwrap_or_else(default_sent)
    }

    /// The thread key this mail has (see [`Mail::conversation_id`]; each mailbox's
    /// `conversationId` is derived from it unless conversation ids are global).
    pub fn conversation(&self) -> String {
        self.conversation_id
            .clone()
            .unwrap_or_else(|| ids::conversation_id(&self.internet_message_id))
    }

    /// The base64 `conversationIndex` every copy will carry, when the mail alone decides it
    /// (`None` for a missing index, or a derived one whose parent is only known at delivery).
    pub fn conversation_index(&self) -> Option<String> {
        let parent = self.parent_conversation_index.as_deref();
        if parent.is_none() && self.in_reply_to.is_some() {
            return match &self.conversation_index {
                ConversationIndex::Derived => None,
                _ => self.resolve_index(None),
            };
        }
        self.resolve_index(parent)
    }

    /// The index given the parent's (`None`: no parent or none known).
    pub(crate) fn resolve_index(&self, parent: Option<&str>) -> Option<String> {
        let imid = &self.internet_message_id;
        match &self.conversation_index {
            ConversationIndex::Value(value) => Some(value.clone()),
            ConversationIndex::Missing => None,
            ConversationIndex::Malformed => Some(conversation::malformed(imid)),
            ConversationIndex::Derived => {
                let sent = self.sent_or_default();
                let bytes = match parent
                    .and_then(conversation::decode)
                    .filter(|p| conversation::is_well_formed(p))
                {
                    Some(parent) => conversation::child(&parent, imid, sent),
                    None => conversation::header(imid, sent),
                };
                Some(conversation::encode(&bytes))
            }
        }
    }

    /// A reply from `from` to this mail's sender: new internet message id, same thread, a child
    /// conversation index, `In-Reply-To` / `References` naming this mail. Follow-ups record
    /// this mail's index as it is now, so finish the parent (e.g. [`Mail::sent_at`]) first.
    pub fn reply(&self, internet_message_id: impl Into<String>, from: impl Into<String>) -> Mail {
        let mut reply = self.follow_up(internet_message_id, from, "RE: ");
        reply.to = vec![self.from.clone()];
        reply
    }

    /// A reply to the sender and every To and Cc recipient except the replier.
    pub fn reply_all(
        &self,
        internet_message_id: impl Into<String>,
        from: impl Into<String>,
    ) -> Mail {
        let mut reply = self.follow_up(internet_message_id, from, "RE: ");
        let others = |list: &[String]| -> Vec<String> {
            list.iter()
                .filter(|a| !a.eq_ignore_ascii_case(&reply.from))
                .cloned()
                .collect()
        };
        let mut to = others(std::slice::from_ref(&self.from));
        to.extend(others(&self.to));
        reply.cc = others(&self.cc);
        reply.to = to;
        reply
    }

    /// A forward by `from` (add recipients with [`Mail::to`]): new internet message id, same
    /// thread, a child conversation index.
    pub fn forward(&self, internet_message_id: impl Into<String>, from: impl Into<String>) -> Mail {
        self.follow_up(internet_message_id, from, "FW: ")
    }

    /// A forward sent as a new message (e.g. the content pasted into a fresh mail, or sent from
    /// a client that does not keep threads): same subject and body, but a conversation, index
    /// header and headers of its own — nothing relates it to this mail.
    pub fn forward_as_new(
        &self,
        internet_message_id: impl Into<String>,
        from: impl Into<String>,
    ) -> Mail {
        let mut mail = Mail::new(internet_message_id, from)
            .subject(format!("FW: {}", self.subject))
            .body(self.body.clone());
        mail.sent = Some(self.follow_up_time());
        mail
    }

    fn follow_up_time(&self) -> DateTime<Utc> {
        let sent = self.sent_or_default();
        sent.checked_add_signed(chrono::Duration::minutes(FOLLOW_UP_DELAY_MINUTES))
            .unwrap_or(sent)
    }

    fn follow_up(
        &self,
        internet_message_id: impl Into<String>,
        from: impl Into<String>,
        prefix: &str,
    ) -> Mail {
        let mut references = self.references.clone();
        references.push(self.internet_message_id.clone());
        Mail {
            internet_message_id: internet_message_id.into(),
            conversation_id: Some(self.conversation()),
            conversation_index: ConversationIndex::Derived,
            parent_conversation_index: self.conversation_index(),
            in_reply_to: Some(self.internet_message_id.clone()),
            references,
            subject: format!("{prefix}{}", self.subject),
            body: self.body.clone(),
            from: from.into(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            sent: Some(self.follow_up_time()),
            copies: 1,
            keep_sent_copy: true,
            draft: false,
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
    /// The thread key (see [`Mail::conversation_id`]).
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// A new header derived from the internet message id unless told otherwise.
    #[serde(default)]
    pub conversation_index: ConversationIndex,
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
    /// `isDraft`; when absent, true exactly for a copy in `drafts`.
    #[serde(default)]
    pub is_draft: Option<bool>,
    #[serde(default)]
    pub sent: Option<DateTime<Utc>>,
}

impl PlacedMessage {
    /// A copy of `internet_message_id` in `folder` of `mailbox`.
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
            conversation_index: ConversationIndex::Derived,
            subject: String::new(),
            from: None,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            is_read: false,
            is_draft: None,
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

    /// Sets what `conversationIndex` the copy has.
    pub fn conversation_index(mut self, index: ConversationIndex) -> Self {
        self.conversation_index = index;
        self
    }

    /// Sets `isDraft` regardless of the folder.
    pub fn draft(mut self, is_draft: bool) -> Self {
        self.is_draft = Some(is_draft);
        self
    }

    /// `isDraft` as it will render.
    pub fn is_draft(&self) -> bool {
        self.is_draft.unwrap_or(self.folder == Folder::Drafts)
    }

    /// The base64 `conversationIndex` the copy will carry.
    pub fn resolved_conversation_index(&self) -> Option<String> {
        let imid = &self.internet_message_id;
        let sent = self.sent.unwrap_or_else(default_sent);
        match &self.conversation_index {
            ConversationIndex::Value(value) => Some(value.clone()),
            ConversationIndex::Missing => None,
            ConversationIndex::Malformed => Some(conversation::malformed(imid)),
            ConversationIndex::Derived => {
                Some(conversation::encode(&conversation::header(imid, sent)))
            }
        }
    }
}
