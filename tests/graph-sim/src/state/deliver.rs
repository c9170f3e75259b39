//! Delivery: how a seeded [`Mail`] becomes message copies — the sender's in `sentitems` (or
//! `drafts`), each recipient's in `inbox` (groups expanded to their members) — and what every
//! copy carries: thread, `conversationIndex`, transport headers.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Address, InternetMessageHeader, NewMessage, SeedError, World, local_part};
use crate::seed::{Folder, Mail, PlacedMessage, default_sent};

/// What a later reply or forward inherits from a message seeded before it.
#[derive(Debug, Clone)]
pub(super) struct ThreadEntry {
    thread: String,
    index: Option<String>,
    references: Vec<String>,
}

/// Groups nested deeper than this are not expanded further (loops end here too).
const MAX_GROUP_DEPTH: usize = 8;

impl World {
    fn address(&self, address: &str) -> Address {
        let name = match self.directory.user_by_any(address) {
            Some(user) => user.display_name.clone(),
            None => self
                .directory
                .group(address)
                .map_or_else(|| local_part(address), |g| g.display_name.clone()),
        };
        Address {
            name,
            address: address.to_owned(),
        }
    }

    fn addresses(&self, list: &[String]) -> Vec<Address> {
        list.iter().map(|a| self.address(a)).collect()
    }

    /// User ids an address reaches: a user's mailbox, a group's members (recursively), or
    /// nothing (an outside address).
    fn mailboxes_reached(&self, address: &str, depth: usize, into: &mut Vec<String>) {
        if let Some(user) = self.directory.user_by_any(address) {
            into.push(user.id.clone());
        } else if let Some(group) = self.directory.group(address)
            && depth < MAX_GROUP_DEPTH
        {
            for member in group.members.clone() {
                self.mailboxes_reached(&member, depth + 1, into);
            }
        }
    }

    /// Delivers a mail: the sender's copy to `sentitems` (a draft's to `drafts` and nowhere
    /// else), recipients' copies to `inbox`.
    pub fn deliver(&mut self, mail: &Mail) {
        let sent = mail.sent_or_default();
        let parent = mail
            .in_reply_to
            .as_ref()
            .and_then(|p| self.threads.get(p))
            .cloned();
        let thread = mail
            .conversation_id
            .clone()
            .or_else(|| parent.as_ref().map(|p| p.thread.clone()))
            .unwrap_or_else(|| mail.conversation());
        let parent_index = mail
            .parent_conversation_index
            .clone()
            .or_else(|| parent.as_ref().and_then(|p| p.index.clone()));
        let index = mail.resolve_index(parent_index.as_deref());
        let references = match (&mail.in_reply_to, &parent) {
            (Some(in_reply_to), Some(parent)) if mail.references.is_empty() => {
                let mut references = parent.references.clone();
                references.push(in_reply_to.clone());
                references
            }
            (Some(in_reply_to), None) if mail.references.is_empty() => vec![in_reply_to.clone()],
            _ => mail.references.clone(),
        };
        self.threads
            .entry(mail.internet_message_id.clone())
            .or_insert_with(|| ThreadEntry {
                thread: thread.clone(),
                index: index.clone(),
                references: references.clone(),
            });
        let base = NewMessage {
            folder: if mail.draft {
                Folder::Drafts
            } else {
                Folder::SentItems
            },
            internet_message_id: mail.internet_message_id.clone(),
            thread,
            conversation_index: index,
            in_reply_to: mail.in_reply_to.clone(),
            references,
            is_draft: mail.draft,
            headers: None,
            subject: mail.subject.clone(),
            body: mail.body.clone(),
            is_read: true,
            from: Some(self.address(&mail.from)),
            to: self.addresses(&mail.to),
            cc: self.addresses(&mail.cc),
            bcc: self.addresses(&mail.bcc),
            sent,
        };
        if (mail.keep_sent_copy || mail.draft)
            && let Some(sender) = self.directory.user_by_any(&mail.from)
        {
            self.insert_into(&sender.id.clone(), base.clone());
        }
        if mail.draft {
            return;
        }
        let mut reached = Vec::new();
        for recipient in mail.to.iter().chain(&mail.cc).chain(&mail.bcc) {
            self.mailboxes_reached(recipient, 0, &mut reached);
        }
        let headers = transport_headers(&base);
        let mut delivered = HashSet::new();
        for user_id in reached {
            if !delivered.insert(user_id.to_ascii_lowercase()) {
                continue;
            }
            for _ in 0..mail.copies.max(1) {
                let copy = NewMessage {
                    folder: Folder::Inbox,
                    is_read: false,
                    bcc: Vec::new(),
                    headers: Some(headers.clone()),
                    ..base.clone()
                };
                self.insert_into(&user_id, copy);
            }
        }
    }

    pub(super) fn place(&mut self, placed: &PlacedMessage) -> Result<(), SeedError> {
        let user_id = self
            .directory
            .user_by_any(&placed.mailbox)
            .map(|u| u.id.clone())
            .ok_or_else(|| SeedError::UnknownMailbox(placed.mailbox.clone()))?;
        let thread = placed
            .conversation_id
            .clone()
            .unwrap_or_else(|| crate::ids::conversation_id(&placed.internet_message_id));
        let index = placed.resolved_conversation_index();
        self.threads
            .entry(placed.internet_message_id.clone())
            .or_insert_with(|| ThreadEntry {
                thread: thread.clone(),
                index: index.clone(),
                references: Vec::new(),
            });
        let mut message = NewMessage {
            folder: placed.folder,
            internet_message_id: placed.internet_message_id.clone(),
            thread,
            conversation_index: index,
            in_reply_to: None,
            references: Vec::new(),
            is_draft: placed.is_draft(),
            headers: None,
            subject: placed.subject.clone(),
            body: String::new(),
            is_read: placed.is_read,
            from: placed.from.as_deref().map(|a| self.address(a)),
            to: self.addresses(&placed.to),
            cc: self.addresses(&placed.cc),
            bcc: self.addresses(&placed.bcc),
            sent: placed.sent.unwrap_or_else(default_sent),
        };
        // A copy that arrived (not one the owner sent or is still writing) has transport headers.
        let owner_sent = placed
            .from
            .as_deref()
            .and_then(|f| self.directory.user_by_any(f))
            .is_some_and(|u| u.id.eq_ignore_ascii_case(&user_id));
        if !message.is_draft && !owner_sent {
            message.headers = Some(transport_headers(&message));
        }
        self.insert_into(&user_id, message);
        Ok(())
    }
}

fn rfc5322_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn mailbox_list(list: &[Address]) -> String {
    list.iter()
        .map(|a| format!("{} <{}>", a.name, a.address))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subject without reply/forward prefixes (Outlook's `Thread-Topic`).
fn topic(subject: &str) -> &str {
    let mut rest = subject.trim_start();
    loop {
        let lower = rest.get(..4).map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some("re: " | "fw: ") => rest = rest[4..].trim_start(),
            _ => {
                if rest
                    .get(..5)
                    .is_some_and(|p| p.eq_ignore_ascii_case("fwd: "))
                {
                    rest = rest[5..].trim_start();
                } else {
                    return rest;
                }
            }
        }
    }
}

/// The headers a delivered copy carries (what `internetMessageHeaders` returns): the transport
/// trace, the RFC 5322 originator, destination and identification fields (no Bcc), and
/// Outlook's `Thread-Topic` / `Thread-Index`.
fn transport_headers(message: &NewMessage) -> Vec<InternetMessageHeader> {
    let mut headers = Vec::new();
    let mut push = |name: &str, value: String| {
        headers.push(InternetMessageHeader {
            name: name.to_owned(),
            value,
        });
    };
    let sender_domain = message
        .from
        .as_ref()
        .and_then(|f| f.address.rsplit_once('@').map(|(_, d)| d.to_owned()))
        .unwrap_or_else(|| "localhost".to_owned());
    push(
        "Received",
        format!(
            "from mail.{sender_domain} by graph-sim.mail.protection.outlook.com with SMTP; {}",
            rfc5322_date(message.sent)
        ),
    );
    if let Some(from) = &message.from {
        push("From", mailbox_list(std::slice::from_ref(from)));
    }
    if !message.to.is_empty() {
        push("To", mailbox_list(&message.to));
    }
    if !message.cc.is_empty() {
        push("CC", mailbox_list(&message.cc));
    }
    push("Subject", message.subject.clone());
    push("Thread-Topic", topic(&message.subject).to_owned());
    if let Some(index) = &message.conversation_index {
        push("Thread-Index", index.clone());
    }
    push("Date", rfc5322_date(message.sent));
    push("Message-ID", message.internet_message_id.clone());
    if !message.references.is_empty() {
        push("References", message.references.join(" "));
    }
    if let Some(parent) = &message.in_reply_to {
        push("In-Reply-To", parent.clone());
    }
    push("MIME-Version", "1.0".to_owned());
    push("Content-Type", "text/plain; charset=\"utf-8\"".to_owned());
    headers
}
