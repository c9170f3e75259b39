//! One Exchange mailbox: folders and message copies, and the three delete modes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids;
use crate::seed::Folder;

/// A name and SMTP address, as in Graph's `emailAddress`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Address {
    pub name: String,
    pub address: String,
}

/// One message copy in one mailbox.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MailboxMessage {
    /// The item id (changes when the message is moved).
    pub id: String,
    pub folder: Folder,
    pub internet_message_id: String,
    pub conversation_id: String,
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
    pub conversation_id: String,
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
    folder_ids: BTreeMap<Folder, String>,
    messages: Vec<MailboxMessage>,
    next_serial: u64,
}

impl Mailbox {
    pub fn new(user_id: &str) -> Self {
        let folder_ids = Folder::ALL
            .into_iter()
            .map(|f| (f, ids::folder_id(user_id, f.well_known_name())))
            .collect();
        Self {
            user_id: user_id.to_owned(),
            folder_ids,
            messages: Vec::new(),
            next_serial: 1,
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
        self.messages.push(MailboxMessage {
            id: id.clone(),
            folder: new.folder,
            internet_message_id: new.internet_message_id,
            conversation_id: new.conversation_id,
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

    /// A message addressable by id (anything but the Recoverable Items dumpster).
    pub fn get(&self, id: &str) -> Option<&MailboxMessage> {
        self.messages
            .iter()
            .find(|m| m.id == id && m.folder.is_user_visible())
    }

    fn position(&self, id: &str) -> Result<usize, ItemError> {
        self.messages
            .iter()
            .position(|m| m.id == id && m.folder.is_user_visible())
            .ok_or(ItemError::NotFound)
    }

    /// `DELETE`: the copy goes to Recoverable Items\Deletions.
    pub fn soft_delete(&mut self, id: &str) -> Result<(), ItemError> {
        let at = self.position(id)?;
        self.messages[at].folder = Folder::RecoverableItemsDeletions;
        Ok(())
    }

    /// `permanentDelete`: the copy goes to Recoverable Items\Purges.
    pub fn purge(&mut self, id: &str) -> Result<(), ItemError> {
        let at = self.position(id)?;
        self.messages[at].folder = Folder::RecoverableItemsPurges;
        Ok(())
    }

    /// `move`: the copy gets a new id in the destination folder.
    pub fn move_to(&mut self, id: &str, destination: Folder) -> Result<MailboxMessage, ItemError> {
        let at = self.position(id)?;
        let (new_id, _) = self.next_id();
        let message = &mut self.messages[at];
        message.id = new_id;
        message.folder = destination;
        Ok(message.clone())
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
