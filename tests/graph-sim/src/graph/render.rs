//! Graph's JSON shapes for messages, users, domains and the organization.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::state::{Address, DomainRecord, MailboxMessage, TenantRecord, UserRecord};

/// Properties of `microsoft.graph.message` that `$select` may name.
pub const MESSAGE_PROPERTIES: [&str; 31] = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "uniqueBody",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
];

/// Properties Graph returns only when `$select` names them.
const SELECT_ONLY: [&str; 2] = ["uniqueBody", "internetMessageHeaders"];

/// Properties of `microsoft.graph.user` that `$select` may name.
pub const USER_PROPERTIES: [&str; 13] = [
    "id",
    "displayName",
    "userPrincipalName",
    "mail",
    "proxyAddresses",
    "givenName",
    "surname",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "businessPhones",
    "accountEnabled",
];

/// What a user looks like without `$select`.
const USER_DEFAULT: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn recipient(address: &Address) -> Value {
    json!({ "emailAddress": { "name": address.name, "address": address.address } })
}

fn recipients(list: &[Address]) -> Value {
    Value::Array(list.iter().map(recipient).collect())
}

fn message_property(message: &MailboxMessage, folder_id: &str, name: &str) -> Value {
    match name {
        "id" => json!(message.id),
        "createdDateTime" | "lastModifiedDateTime" | "receivedDateTime" => {
            json!(timestamp(message.received))
        }
        "sentDateTime" => json!(timestamp(message.sent)),
        "changeKey" => json!(change_key(message)),
        "categories" | "replyTo" => json!([]),
        "hasAttachments" | "isDeliveryReceiptRequested" | "isReadReceiptRequested" => {
            json!(false)
        }
        "isDraft" => json!(message.is_draft),
        "internetMessageId" => json!(message.internet_message_id),
        "subject" => json!(message.subject),
        "bodyPreview" => json!(message.body.chars().take(255).collect::<String>()),
        "importance" => json!("normal"),
        "parentFolderId" => json!(folder_id),
        "conversationId" => json!(message.conversation_id),
        "conversationIndex" => json!(message.conversation_index),
        "isRead" => json!(message.is_read),
        "webLink" => json!(format!(
            "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
            message.id
        )),
        "inferenceClassification" => json!("focused"),
        "body" | "uniqueBody" => json!({ "contentType": "text", "content": message.body }),
        "sender" | "from" => message.from.as_ref().map_or(Value::Null, recipient),
        "toRecipients" => recipients(&message.to),
        "ccRecipients" => recipients(&message.cc),
        "bccRecipients" => recipients(&message.bcc),
        "flag" => json!({ "flagStatus": "notFlagged" }),
        "internetMessageHeaders" => message.headers.as_ref().map_or(Value::Null, |headers| {
            Value::Array(
                headers
                    .iter()
                    .map(|h| json!({ "name": h.name, "value": h.value }))
                    .collect(),
            )
        }),
        _ => Value::Null,
    }
}

fn change_key(message: &MailboxMessage) -> String {
    format!("CQAAABYAAAA{:016X}", message.serial)
}

/// A message; with `select`, only `@odata.etag`, `id` and the selected properties. Like Graph,
/// a copy without transport headers (Sent Items, drafts) has no `internetMessageHeaders` key.
pub fn message(
    message: &MailboxMessage,
    folder_id: &str,
    select: Option<&[&'static str]>,
) -> Value {
    let mut object = Map::new();
    object.insert(
        "@odata.etag".into(),
        json!(format!("W/\"{}\"", change_key(message))),
    );
    object.insert("id".into(), json!(message.id));
    let names: &[&str] = match select {
        Some(names) => names,
        None => &MESSAGE_PROPERTIES,
    };
    for name in names
        .iter()
        .filter(|n| select.is_some() || !SELECT_ONLY.contains(n))
        .filter(|n| **n != "internetMessageHeaders" || message.headers.is_some())
    {
        object.insert(
            (*name).to_owned(),
            message_property(message, folder_id, name),
        );
    }
    Value::Object(object)
}

fn user_property(user: &UserRecord, name: &str) -> Value {
    match name {
        "id" => json!(user.id),
        "displayName" => json!(user.display_name),
        "userPrincipalName" => json!(user.user_principal_name),
        "mail" => json!(user.mail),
        "proxyAddresses" => json!(user.proxy_addresses()),
        "businessPhones" => json!([]),
        "accountEnabled" => json!(true),
        _ => Value::Null,
    }
}

/// A user; `proxyAddresses` only appears when selected, as in Graph.
pub fn user(user: &UserRecord, select: Option<&[&'static str]>) -> Value {
    let names: &[&str] = select.unwrap_or(&USER_DEFAULT);
    let mut object = Map::new();
    for name in names {
        object.insert((*name).to_owned(), user_property(user, name));
    }
    if select.is_some() {
        object.insert("id".into(), json!(user.id));
    }
    Value::Object(object)
}

fn supported_services(domain: &DomainRecord) -> Value {
    if domain.verified && domain.email {
        json!(["Email", "OfficeCommunicationsOnline"])
    } else {
        json!([])
    }
}

pub fn domain(domain: &DomainRecord) -> Value {
    json!({
        "authenticationType": "Managed",
        "availabilityStatus": null,
        "id": domain.name,
        "isAdminManaged": true,
        "isDefault": domain.default,
        "isInitial": domain.initial,
        "isRoot": true,
        "isVerified": domain.verified,
        "passwordNotificationWindowInDays": null,
        "passwordValidityPeriodInDays": null,
        "supportedServices": supported_services(domain),
        "state": null,
    })
}

pub fn organization(tenant: &TenantRecord) -> Value {
    let verified: Vec<Value> = tenant
        .domains
        .iter()
        .filter(|d| d.verified)
        .map(|d| {
            json!({
                "capabilities": if d.email { "Email, OfficeCommunicationsOnline" } else { "None" },
                "isDefault": d.default,
                "isInitial": d.initial,
                "name": d.name,
                "type": "Managed",
            })
        })
        .collect();
    json!({
        "id": tenant.id,
        "displayName": tenant.display_name,
        "tenantType": "AAD",
        "verifiedDomains": verified,
    })
}
