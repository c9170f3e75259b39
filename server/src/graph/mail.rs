//! Mailbox operations a retract needs: find the mailbox, find every copy of a message, delete
//! a copy in the chosen mode. Values put into OData filters are escaped as string literals
//! and percent-encoded, so a hostile message id or address cannot change the query.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::Deserialize;

use super::{GraphClient, GraphError};
pub use crate::domain::DeleteMode;
use crate::{
    domain::{EmailAddress, InternetMessageId, MicrosoftTenantId},
    telemetry::metrics,
};

/// Bytes percent-encoded in query values and path segments: all but RFC 3986 unreserved.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query value or a path segment.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, ENCODE).to_string()
}

/// An OData string literal: quoted, with every `'` doubled.
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Well-known folders a retract looks into beyond the mailbox-wide search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// Deleted Items (`deleteditems`), where MOVE_TO_DELETED_ITEMS puts copies.
    DeletedItems,
    /// Recoverable Items\Deletions (`recoverableitemsdeletions`), where DELETE puts copies;
    /// the mailbox-wide `/messages` search does not cover it.
    RecoverableItemsDeletions,
}

impl Folder {
    /// Graph's well-known folder name.
    pub fn well_known_name(self) -> &'static str {
        match self {
            Self::DeletedItems => "deleteditems",
            Self::RecoverableItemsDeletions => "recoverableitemsdeletions",
        }
    }
}

/// How each delete mode is asked of Graph, relative to the message's URL: method, path
/// suffix, JSON body. The single-request and the `$batch` paths both read it.
fn delete_call(mode: DeleteMode) -> (Method, &'static str, Option<serde_json::Value>) {
    match mode {
        DeleteMode::Soft => (Method::DELETE, "", None),
        DeleteMode::Hard => (
            Method::POST,
            "/permanentDelete",
            Some(serde_json::json!({})),
        ),
        DeleteMode::MoveToDeletedItems => (
            Method::POST,
            "/move",
            Some(serde_json::json!({ "destinationId": Folder::DeletedItems.well_known_name() })),
        ),
    }
}

/// A mailbox found in the Microsoft tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRef {
    /// Graph's user id, or the address itself (see [`MailboxRef::addressed`]).
    pub id: String,
    /// The address the retract asked for.
    pub address: String,
}

impl MailboxRef {
    /// The mailbox addressed by `address` itself, as Graph's `/users/{userPrincipalName}`
    /// takes it: no directory read first. When Graph does not know the address that way (an
    /// alias), the mail call answers an unknown user ([`GraphError::is_unknown_user`]) and
    /// [`GraphClient::find_by_alias`] finds the mailbox.
    pub fn addressed(address: &EmailAddress) -> Self {
        Self {
            id: address.to_string(),
            address: address.to_string(),
        }
    }
}

/// One copy of a message in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageCopy {
    /// Graph's item id.
    pub id: String,
    /// Whether the user had read it.
    #[serde(default)]
    pub is_read: bool,
    /// The folder it is in.
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    /// This mailbox's id of its conversation (ids differ between mailboxes).
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Its position in the thread (base64), the same in every mailbox.
    #[serde(default)]
    pub conversation_index: Option<String>,
    /// Its `Message-ID`.
    #[serde(default)]
    pub internet_message_id: Option<String>,
    /// Never sent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub is_draft: bool,
    /// Who sent it (listed in conversations).
    #[serde(default)]
    pub from: Option<Recipient>,
    /// To recipients (listed in conversations).
    #[serde(default, deserialize_with = "null_as_default")]
    pub to_recipients: Vec<Recipient>,
    /// Cc recipients (listed in conversations).
    #[serde(default, deserialize_with = "null_as_default")]
    pub cc_recipients: Vec<Recipient>,
    /// Bcc recipients: only the sender's copy knows them (listed in conversations).
    #[serde(default, deserialize_with = "null_as_default")]
    pub bcc_recipients: Vec<Recipient>,
}

/// A field Graph may send as `null`: read as its default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Graph's `recipient`: `{"emailAddress": {"name", "address"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// The address part.
    #[serde(default)]
    pub email_address: RecipientAddress,
}

/// The address of a [`Recipient`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RecipientAddress {
    /// The SMTP address as Graph gives it (not validated).
    #[serde(default)]
    pub address: String,
}

/// Most `References` entries read from one message.
const MAX_REFERENCES: usize = 100;

/// A message's threading headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadHeaders {
    /// The message it answers.
    pub in_reply_to: Option<String>,
    /// Its ancestors, oldest first.
    pub references: Vec<String>,
}

impl ThreadHeaders {
    /// How many hops below `ancestor` the message is, by its headers: 1 when it answers
    /// `ancestor`, else from where `ancestor` stands in `References`; `None` when unrelated.
    pub fn hops_below(&self, ancestor: &str) -> Option<u8> {
        if let Some(at) = self.references.iter().position(|r| r == ancestor) {
            return u8::try_from(self.references.len() - at).ok();
        }
        (self.in_reply_to.as_deref() == Some(ancestor)).then_some(1)
    }
}

/// What a mailbox search asks Graph for.
const COPY_FIELDS: &str =
    "id,isRead,parentFolderId,conversationId,conversationIndex,internetMessageId";
/// What a conversation listing asks Graph for (recipients, to follow the thread).
const CONVERSATION_FIELDS: &str = "id,isRead,parentFolderId,conversationId,conversationIndex,internetMessageId,isDraft,from,toRecipients,ccRecipients,bccRecipients";

/// What deleting a copy found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// It was there and is gone now; `new_id` is its id where it went, when Graph says (a
    /// moved message gets a new id).
    Deleted {
        /// Its id in Deleted Items after a move.
        new_id: Option<String>,
    },
    /// It was already gone (deleted between find and delete).
    AlreadyGone,
}

/// What moving a copy back found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// It is in the destination now, under this id.
    Moved {
        /// Its new id.
        new_id: Option<String>,
    },
    /// No message has that id any more (moved or purged since).
    Gone,
}

/// One request on one message of a mailbox: the method, the path after
/// `/users/{user}/messages/{id}`, and the JSON body.
struct MessageCall {
    item: String,
    method: Method,
    suffix: &'static str,
    body: Option<serde_json::Value>,
}

/// How a [`MessageCall`] ended: done (with the answer's JSON body, if any), or the message
/// was not there.
enum Answer {
    Done(Option<serde_json::Value>),
    Gone,
}

impl From<Answer> for Deleted {
    fn from(answer: Answer) -> Self {
        match answer {
            Answer::Done(body) => Self::Deleted {
                new_id: answered_id(body.as_ref()),
            },
            Answer::Gone => Self::AlreadyGone,
        }
    }
}

impl From<Answer> for Moved {
    fn from(answer: Answer) -> Self {
        match answer {
            Answer::Done(body) => Self::Moved {
                new_id: answered_id(body.as_ref()),
            },
            Answer::Gone => Self::Gone,
        }
    }
}

/// Each call's answer as what its caller asked for.
fn typed<T: From<Answer>>(answers: Vec<Result<Answer, GraphError>>) -> Vec<Result<T, GraphError>> {
    answers
        .into_iter()
        .map(|answer| answer.map(T::from))
        .collect()
}

/// The `id` of a message in an answer's body.
fn answered_id(body: Option<&serde_json::Value>) -> Option<String> {
    body.and_then(|b| b.get("id"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

#[derive(Deserialize)]
struct User {
    id: String,
}

#[derive(Deserialize)]
struct Users {
    value: Vec<User>,
}

impl GraphClient {
    /// Finds the mailbox of `address`: directly by address first (one directory read); only
    /// when that is unknown, by `mail` or a secondary SMTP address (aliases). `None` when no
    /// user has the address.
    pub async fn resolve_mailbox(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        address: &EmailAddress,
    ) -> Result<Option<MailboxRef>, GraphError> {
        let direct = format!(
            "{}/users/{}?$select=id",
            self.base,
            encode(address.as_str())
        );
        match self
            .request_json::<User>(microsoft_tenant, None, Method::GET, &direct, None)
            .await
        {
            Ok(user) => Ok(Some(MailboxRef {
                id: user.id,
                address: address.to_string(),
            })),
            Err(err) if err.is_unknown_user() => {
                self.find_by_alias(microsoft_tenant, address).await
            }
            Err(err) => Err(err),
        }
    }

    /// Finds the mailbox whose `mail` or secondary SMTP address is `address` (for an address
    /// Graph does not know as a user id or principal name). `None` when no user has it.
    pub async fn find_by_alias(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        address: &EmailAddress,
    ) -> Result<Option<MailboxRef>, GraphError> {
        let literal = odata_string(address.as_str());
        let smtp = odata_string(&format!("smtp:{address}"));
        let filter = format!("mail eq {literal} or proxyAddresses/any(x:x eq {smtp})");
        let url = format!("{}/users?$filter={}&$select=id", self.base, encode(&filter));
        let users: Users = self
            .request_json(microsoft_tenant, None, Method::GET, &url, None)
            .await?;
        Ok(users.value.into_iter().next().map(|u| MailboxRef {
            id: u.id,
            address: address.to_string(),
        }))
    }

    /// Every copy of `message` in `mailbox`, every page: in all user-visible folders, or in
    /// one well-known `folder`.
    pub async fn find_copies(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        folder: Option<Folder>,
        message: &InternetMessageId,
    ) -> Result<Vec<MessageCopy>, GraphError> {
        let filter = format!("internetMessageId eq {}", odata_string(message.as_str()));
        self.messages(microsoft_tenant, mailbox, folder, &filter, COPY_FIELDS)
            .await
    }

    /// The threading headers of one message (`In-Reply-To`, and `References` oldest first),
    /// for a message whose `conversationIndex` is missing or malformed. A copy without
    /// transport headers (Sent Items, drafts) has none.
    pub async fn thread_headers(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        message_id: &str,
    ) -> Result<ThreadHeaders, GraphError> {
        #[derive(Deserialize)]
        struct Header {
            name: String,
            value: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct WithHeaders {
            #[serde(default)]
            internet_message_headers: Vec<Header>,
        }
        let url = format!(
            "{}/users/{}/messages/{}?$select=internetMessageHeaders",
            self.base,
            encode(&mailbox.id),
            encode(message_id)
        );
        let answer: WithHeaders = self
            .request_json(microsoft_tenant, Some(&mailbox.id), Method::GET, &url, None)
            .await?;
        let ids = |value: &str| -> Vec<String> {
            value
                .split_whitespace()
                .filter(|t| t.starts_with('<') && t.ends_with('>'))
                .take(MAX_REFERENCES)
                .map(str::to_owned)
                .collect()
        };
        let mut headers = ThreadHeaders::default();
        for header in answer.internet_message_headers {
            if header.name.eq_ignore_ascii_case("in-reply-to") {
                headers.in_reply_to = ids(&header.value).into_iter().next();
            } else if header.name.eq_ignore_ascii_case("references") {
                headers.references = ids(&header.value);
            }
        }
        Ok(headers)
    }

    /// Every message of one conversation in `mailbox` (`conversation_id` is that mailbox's
    /// id of it), every page, with senders and recipients: in all user-visible folders, or in
    /// one well-known `folder`. No `$orderby`: Graph refuses it with this filter
    /// (`InefficientFilter`); callers order what they need.
    pub async fn list_conversation(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        folder: Option<Folder>,
        conversation_id: &str,
    ) -> Result<Vec<MessageCopy>, GraphError> {
        let filter = format!("conversationId eq {}", odata_string(conversation_id));
        self.messages(
            microsoft_tenant,
            mailbox,
            folder,
            &filter,
            CONVERSATION_FIELDS,
        )
        .await
    }

    /// Every page of the messages matching `filter` (built with [`odata_string`]) in
    /// `mailbox`, or in one of its well-known folders.
    async fn messages(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        folder: Option<Folder>,
        filter: &str,
        select: &str,
    ) -> Result<Vec<MessageCopy>, GraphError> {
        let scope = match folder {
            None => String::new(),
            Some(folder) => format!("/mailFolders/{}", folder.well_known_name()),
        };
        let url = format!(
            "{}/users/{}{scope}/messages?$filter={}&$select={select}",
            self.base,
            encode(&mailbox.id),
            encode(filter)
        );
        self.get_all(microsoft_tenant, Some(&mailbox.id), &url)
            .await
    }

    /// Deletes one copy in `mode`.
    pub async fn delete_copy(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        copy: &MessageCopy,
        mode: DeleteMode,
    ) -> Result<Deleted, GraphError> {
        self.delete_copies(microsoft_tenant, mailbox, std::slice::from_ref(copy), mode)
            .await
            .pop()
            .unwrap_or_else(|| Err(GraphError::Transport("no answer for a delete".into())))
    }

    /// Deletes several copies in one mailbox in `mode` (see [`Self::on_messages`]): each copy's
    /// own answer, in order.
    pub async fn delete_copies(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        copies: &[MessageCopy],
        mode: DeleteMode,
    ) -> Vec<Result<Deleted, GraphError>> {
        let calls: Vec<MessageCall> = copies
            .iter()
            .map(|copy| {
                let (method, suffix, body) = delete_call(mode);
                MessageCall {
                    item: copy.id.clone(),
                    method,
                    suffix,
                    body,
                }
            })
            .collect();
        typed(self.on_messages(microsoft_tenant, mailbox, &calls).await)
    }

    /// Moves copies of one mailbox, each `(item id, destination folder id)`: each copy's own
    /// answer, in order. A restore moves copies back to where a retract took them from (out
    /// of Deleted Items, or out of Recoverable Items\Deletions).
    pub async fn move_copies(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        moves: &[(String, String)],
    ) -> Vec<Result<Moved, GraphError>> {
        let calls: Vec<MessageCall> = moves
            .iter()
            .map(|(item, destination)| MessageCall {
                item: item.clone(),
                method: Method::POST,
                suffix: "/move",
                body: Some(serde_json::json!({ "destinationId": destination })),
            })
            .collect();
        typed(self.on_messages(microsoft_tenant, mailbox, &calls).await)
    }

    /// One message call directly.
    async fn on_message(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        call: &MessageCall,
    ) -> Result<Answer, GraphError> {
        let url = format!(
            "{}/users/{}/messages/{}{}",
            self.base,
            encode(&mailbox.id),
            encode(&call.item),
            call.suffix
        );
        match self
            .request(
                microsoft_tenant,
                Some(&mailbox.id),
                call.method.clone(),
                &url,
                call.body.clone(),
            )
            .await
        {
            // Done, whatever the body: an unreadable one only loses the new id.
            Ok(response) => Ok(Answer::Done(
                super::client::bounded_body(response)
                    .await
                    .ok()
                    .and_then(|body| serde_json::from_slice(&body).ok()),
            )),
            Err(err) if is_item_gone(&err) => Ok(Answer::Gone),
            Err(err) => Err(err),
        }
    }
}

/// Most sub-requests Graph accepts in one `$batch`.
const BATCH_LIMIT: usize = 20;

#[derive(Deserialize)]
struct BatchAnswer {
    responses: Vec<BatchItem>,
}

#[derive(Deserialize)]
struct BatchItem {
    id: String,
    status: u16,
    #[serde(default)]
    headers: std::collections::HashMap<String, String>,
    #[serde(default)]
    body: Option<serde_json::Value>,
}

impl GraphClient {
    /// Calls on several messages of one mailbox: one directly, more through `$batch` (up to
    /// 20 per batch), which saves round trips (not throttling quota: every sub-request
    /// counts). Throttled or failed sub-requests are retried after their `Retry-After` or a
    /// backoff, within the retry budget; each call's own answer comes back, in order.
    async fn on_messages(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: &MailboxRef,
        calls: &[MessageCall],
    ) -> Vec<Result<Answer, GraphError>> {
        if calls.len() <= 1 {
            let mut out = Vec::new();
            for call in calls {
                out.push(self.on_message(microsoft_tenant, mailbox, call).await);
            }
            return out;
        }
        let mut results: Vec<Option<Result<Answer, GraphError>>> =
            (0..calls.len()).map(|_| None).collect();
        for (chunk_no, chunk) in calls.chunks(BATCH_LIMIT).enumerate() {
            let offset = chunk_no * BATCH_LIMIT;
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                let requests: Vec<serde_json::Value> = pending
                    .iter()
                    .map(|&i| batch_request(&mailbox.id, &chunk[i], i))
                    .collect();
                let weight = u32::try_from(pending.len().min(4)).unwrap_or(4);
                let sent = tokio::time::Instant::now();
                let answer = match super::client::parse_url(&format!("{}/$batch", self.base)) {
                    Ok(url) => {
                        self.request_weighted(
                            microsoft_tenant,
                            Some(&mailbox.id),
                            weight,
                            u32::try_from(pending.len()).unwrap_or(u32::MAX),
                            Method::POST,
                            url,
                            Some(serde_json::json!({ "requests": requests })),
                        )
                        .await
                    }
                    Err(err) => Err(err),
                };
                let answer = match answer {
                    Ok(response) => {
                        super::client::read_json::<BatchAnswer>(response, "batch answer").await
                    }
                    Err(err) => Err(err),
                };
                let answer = match answer {
                    Ok(answer) => answer,
                    Err(err) => {
                        for &i in &pending {
                            results[offset + i] = Some(Err(err.clone()));
                        }
                        break;
                    }
                };
                let mut retry = Vec::new();
                let mut wait = std::time::Duration::ZERO;
                let mut asked = false;
                for item in answer.responses {
                    let Some(i) = item
                        .id
                        .parse::<usize>()
                        .ok()
                        .filter(|i| pending.contains(i))
                    else {
                        continue;
                    };
                    match batch_outcome(item) {
                        Err(err) => match self.retry_wait(&err, attempt) {
                            Some(after) if throttled_for(&err).is_some() => {
                                metrics::graph_throttled("$batch.item", err.code());
                                asked = true;
                                self.throttled(Some(&mailbox.id), sent, &err);
                                wait = wait.max(after);
                                retry.push(i);
                            }
                            Some(after) => {
                                wait = wait.max(after);
                                retry.push(i);
                            }
                            None => results[offset + i] = Some(Err(err)),
                        },
                        done => results[offset + i] = Some(done),
                    }
                }
                // Sub-requests the answer did not mention are retried too.
                for &i in &pending {
                    if results[offset + i].is_none() && !retry.contains(&i) {
                        retry.push(i);
                    }
                }
                if !retry.is_empty() {
                    if attempt >= self.retry_policy().max_attempts {
                        for &i in &retry {
                            results[offset + i] = Some(Err(GraphError::Transport(
                                "batch sub-request kept failing".into(),
                            )));
                        }
                        break;
                    }
                    metrics::graph_retry("$batch.item", wait, asked);
                    tokio::time::sleep(wait).await;
                }
                pending = retry;
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(GraphError::Transport(
                        "no answer for a batch sub-request".into(),
                    ))
                })
            })
            .collect()
    }
}

fn batch_request(user: &str, call: &MessageCall, id: usize) -> serde_json::Value {
    // Batch URLs are relative to the version: `/users/…`, not `/v1.0/users/…`.
    let url = format!(
        "/users/{}/messages/{}{}",
        encode(user),
        encode(&call.item),
        call.suffix
    );
    let mut request =
        serde_json::json!({ "id": id.to_string(), "method": call.method.as_str(), "url": url });
    if let Some(body) = &call.body {
        request["body"] = body.clone();
        request["headers"] = serde_json::json!({ "Content-Type": "application/json" });
    }
    request
}

fn batch_outcome(item: BatchItem) -> Result<Answer, GraphError> {
    if (200..300).contains(&item.status) {
        return Ok(Answer::Done(item.body));
    }
    let retry_after = item
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| super::client::parse_retry_after(v));
    let error = GraphError::from_answer(
        item.status,
        retry_after,
        item.body.as_ref().unwrap_or(&serde_json::Value::Null),
    );
    if is_item_gone(&error) {
        return Ok(Answer::Gone);
    }
    Err(error)
}

/// A 429's `Retry-After`: how long Graph throttles the app on this mailbox.
fn throttled_for(err: &GraphError) -> Option<Duration> {
    match err {
        GraphError::Api {
            status: 429,
            retry_after,
            ..
        } => *retry_after,
        _ => None,
    }
}

/// Graph's answer for a message that is no longer there.
fn is_item_gone(err: &GraphError) -> bool {
    matches!(err, GraphError::Api { status: 404, code, .. } if code == "ErrorItemNotFound")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_literals_double_quotes_and_encoding_hides_query_syntax() {
        let hostile = "<x' or internetMessageId ne 'y@evil>";
        let literal = odata_string(hostile);
        assert_eq!(literal, "'<x'' or internetMessageId ne ''y@evil>'");
        let encoded = encode(&format!("internetMessageId eq {literal}"));
        assert!(
            !encoded.contains(['\'', ' ', '&', '#', '+', '<', '>', '=']),
            "{encoded}"
        );
        assert_eq!(encode("a+b#c&d=e%f"), "a%2Bb%23c%26d%3De%25f");
    }
}
