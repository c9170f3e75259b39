//! One Exchange mailbox: folders and message copies, and the three delete modes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids;
use crate::seed::{ConversationIds, Folder};

/// A name and SMTP address, as in Graph's `emailAddress`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Address {
    pub name: String,
    pub address: String,
}

/// One RFC 5322 header, as in Graph's `internetMessageHeaders`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InternetMessageHeader {
    pub name: String,
    pub value: String,
}

/// One message copy in one mailbox.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MailboxMessage {
    /// The item id (changes when the message is moved, soft-deleted or restored).
    pub id: String,
    pub folder: Folder,
    pub internet_message_id: String,
    /// This mailbox's id of the thread (differs between mailboxes unless conversation ids are
    /// global).
    pub conversation_id: String,
    /// The seed's thread key, the same in every mailbox.
    pub thread: String,
    /// Base64 `conversationIndex`; `None` renders as `null`.
    pub conversation_index: Option<String>,
    /// The parent's internet message id (replies and forwards).
    pub in_reply_to: Option<String>,
    /// Ancestors' internet message ids, oldest first.
    pub references: Vec<String>,
    pub is_draft: bool,
    /// Transport headers: only copies that were delivered have them (not the sender's Sent
    /// Items copy, not drafts); `internetMessageHeaders` is absent otherwise.
    pub headers: Option<Vec<InternetMessageHeader>>,
    pub subject: String,
    pub body: String,
    pub is_read: bool,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// Only the sender's copy knows the Bcc recipients.
    pub bcc: Vec<Address>,
    pub sent: DateTime<Utc>,
    pub received: DateTime<Utc>,
    /// Insertion order; breaks ties in the default sort.
    #[serde(skip)]
    pub serial: u64,
}

/// What a new copy looks like before the mailbox gives it an id.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub folder: Folder,
    pub internet_message_id: String,
    /// The thread key; the mailbox turns it into its own conversation id.
    pub thread: String,
    pub conversation_index: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub is_draft: bool,
    pub headers: Option<Vec<InternetMessageHeader>>,
    pub subject: String,
    pub body: String,
    pub is_read: bool,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub sent: DateTime<Utc>,
}

/// Why a message operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemError {
    /// No such item where Graph can see it (`ErrorItemNotFound`).
    NotFound,
}

/// A mailbox: every message copy with the folder it is in.
#[derive(Debug)]
pub struct Mailbox {
    user_id: String,
    conversation_ids: ConversationIds,
    folder_ids: BTreeMap<Folder, String>,
    messages: Vec<MailboxMessage>,
    next_serial: u64,
}

impl Mailbox {
    pub fn new(user_id: &str, conversation_ids: ConversationIds) -> Self {
        let folder_ids = Folder::ALL
            .into_iter()
            .map(|f| (f, ids::folder_id(user_id, f.well_known_name())))
            .collect();
        Self {
            user_id: user_id.to_owned(),
            conversation_ids,
            folder_ids,
            messages: Vec::new(),
            next_serial: 1,
        }
    }

    /// This mailbox's `conversationId` for a thread.
    pub fn conversation_id(&self, thread: &str) -> String {
        match self.conversation_ids {
            ConversationIds::PerMailbox => ids::mailbox_conversation_id(&self.user_id, thread),
            ConversationIds::Global => thread.to_owned(),
        }
    }

    pub fn folder_id(&self, folder: Folder) -> &str {
        self.folder_ids.get(&folder).map_or("", String::as_str)
    }

    /// A folder by well-known name or folder id.
    pub fn resolve_folder(&self, name_or_id: &str) -> Option<Folder> {
        Folder::from_well_known(name_or_id).or_else(|| {
            self.folder_ids
                .iter()
                .find(|(_, id)| id.as_str() == name_or_id)
                .map(|(f, _)| *f)
        })
    }

    fn next_id(&mut self) -> (String, u64) {
        let serial = self.next_serial;
        self.next_serial += 1;
        (ids::item_id(&self.user_id, serial), serial)
    }

    pub fn insert(&mut self, new: NewMessage) -> String {
        let (id, serial) = self.next_id();
        // Deterministic arrival: one second after sending, plus the insertion order in ms.
        let received = new
            .sent
            .checked_add_signed(
                chrono::Duration::seconds(1) + chrono::Duration::milliseconds(serial as i64),
            )
            .unwrap_or(new.sent);
        let conversation_id = self.conversation_id(&new.thread);
        self.messages.push(MailboxMessage {
            id: id.clone(),
            folder: new.folder,
            internet_message_id: new.internet_message_id,
            conversation_id,
            thread: new.thread,
            conversation_index: new.conversation_index,
            in_reply_to: new.in_reply_to,
            references: new.references,
            is_draft: new.is_draft,
            headers: new.headers,
            subject: new.subject,
            body: new.body,
            is_read: new.is_read,
            from: new.from,
            to: new.to,
            cc: new.cc,
            bcc: new.bcc,
            sent: new.sent,
            received,
            serial,
        });
        id
    }

    /// Messages Graph lists for `/messages` (all user-visible folders) or one folder, newest
    /// first.
    pub fn list(&self, folder: Option<Folder>) -> Vec<&MailboxMessage> {
        let mut found: Vec<&MailboxMessage> = self
            .messages
            .iter()
            .filter(|m| match folder {
                Some(f) => m.folder == f,
                None => m.folder.is_user_visible(),
            })
            .collect();
        found.sort_by(|a, b| b.received.cmp(&a.received).then(b.serial.cmp(&a.serial)));
        found
    }

    /// A message addressable by id: any folder but Recoverable Items\Purges.
    pub fn get(&self, id: &str) -> Option<&MailboxMessage> {
        self.messages
            .iter()
            .find(|m| m.id == id && m.folder.is_addressable())
    }

    fn position(&self, id: &str) -> Result<usize, ItemError> {
        self.messages
            .iter()
            .position(|m| m.id == id && m.folder.is_addressable())
            .ok_or(ItemError::NotFound)
    }

    /// Puts the copy at `at` into `folder` under a new item id (Exchange's ids name the folder,
    /// so every move changes them). Answers the copy in place: a copy can be large (a mail to
    /// 10,000 recipients carries all of them), so a delete must not clone it.
    fn relocate(&mut self, at: usize, folder: Folder) -> &MailboxMessage {
        let (new_id, _) = self.next_id();
        let message = &mut self.messages[at];
        message.id = new_id;
        message.folder = folder;
        message
    }

    /// `DELETE`: the copy goes to Recoverable Items\Deletions under a new id (the old id then
    /// answers `ErrorItemNotFound`). A copy already in Deletions goes to Purges, as a purge
    /// from Recover Deleted Items does.
    pub fn soft_delete(&mut self, id: &str) -> Result<(), ItemError> {
        let at = self.position(id)?;
        if self.messages[at].folder == Folder::RecoverableItemsDeletions {
            self.messages[at].folder = Folder::RecoverableItemsPurges;
        } else {
            self.relocate(at, Folder::RecoverableItemsDeletions);
        }
        Ok(())
    }

    /// `permanentDelete` (also of a copy in Deletions): the copy goes to Recoverable
    /// Items\Purges, where Graph cannot reach it.
    pub fn purge(&mut self, id: &str) -> Result<(), ItemError> {
        let at = self.position(id)?;
        self.messages[at].folder = Folder::RecoverableItemsPurges;
        Ok(())
    }

    /// `move` (also out of Recoverable Items\Deletions, which restores the copy): the copy
    /// gets a new id in the destination folder.
    pub fn move_to(&mut self, id: &str, destination: Folder) -> Result<&MailboxMessage, ItemError> {
        let at = self.position(id)?;
        Ok(self.relocate(at, destination))
    }

    /// Every copy grouped by folder (for tests).
    pub fn contents(&self) -> BTreeMap<Folder, Vec<MailboxMessage>> {
        let mut by_folder: BTreeMap<Folder, Vec<MailboxMessage>> =
            Folder::ALL.into_iter().map(|f| (f, Vec::new())).collect();
        for message in &self.messages {
            by_folder
                .entry(message.folder)
                .or_default()
                .push(message.clone());
        }
        by_folder
    }
}
