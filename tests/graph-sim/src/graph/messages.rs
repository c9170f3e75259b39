//! Mail calls: list/search messages, get, the three delete modes, folder listings.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::context::{GraphCx, MailboxTarget};
use super::error::{GraphError, json_response};
use super::render;
use crate::odata::{self, MessageFilter, MessageOrder, QueryOptions};
use crate::seed::Folder;
use crate::state::{ItemError, MailboxMessage};

fn parse_select(options: &QueryOptions) -> Result<Option<Vec<&'static str>>, GraphError> {
    options
        .select
        .as_deref()
        .map(|s| {
            odata::parse_select(
                s,
                &render::MESSAGE_PROPERTIES,
                "Microsoft.OutlookServices.Message",
            )
        })
        .transpose()
}

/// `GET /users/{user}/messages`: every user-visible folder.
pub async fn list(
    cx: GraphCx,
    Path(user): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    list_in(cx, user, None, raw).await
}

/// `GET /users/{user}/mailFolders/{folder}/messages`.
pub async fn list_folder(
    cx: GraphCx,
    Path((user, folder)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    list_in(cx, user, Some(folder), raw).await
}

async fn list_in(
    cx: GraphCx,
    user: String,
    folder: Option<String>,
    raw: Option<String>,
) -> Result<Response, GraphError> {
    let options = odata::parse_query(raw.as_deref())?;
    let filter = options
        .filter
        .as_deref()
        .map(odata::parse_message_filter)
        .transpose()?;
    let order = options
        .orderby
        .as_deref()
        .map(odata::parse_message_order)
        .transpose()?;
    if matches!(filter, Some(MessageFilter::ConversationId(_))) && order.is_some() {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "InefficientFilter",
            "The restriction or sort order is too complex for this operation.",
        ));
    }
    let select = parse_select(&options)?;
    let (target, _admission) = cx.enter_mailbox(&user, false).await?;
    let page_size = options
        .top
        .unwrap_or_else(|| cx.sim.settings.read().page_size);
    let skip = options.skip.unwrap_or(0);
    let (page, total) = {
        let world = cx.sim.world.read();
        world
            .with_mailbox(&target.user_id, |mailbox| {
                let folder = match &folder {
                    Some(name) => Some(
                        mailbox
                            .resolve_folder(name)
                            .filter(|f| {
                                f.is_user_visible() || *f == Folder::RecoverableItemsDeletions
                            })
                            .ok_or_else(GraphError::id_malformed)?,
                    ),
                    None => None,
                };
                let mut found: Vec<&MailboxMessage> = mailbox
                    .list(folder)
                    .into_iter()
                    .filter(|m| match &filter {
                        Some(MessageFilter::InternetMessageId(id)) => m.internet_message_id == *id,
                        Some(MessageFilter::ConversationId(id)) => m.conversation_id == *id,
                        None => true,
                    })
                    .collect();
                sort(&mut found, order);
                let total = found.len();
                let page: Vec<Value> = found
                    .into_iter()
                    .skip(skip)
                    .take(page_size)
                    .map(|m| render::message(m, mailbox.folder_id(m.folder), select.as_deref()))
                    .collect();
                Ok::<_, GraphError>((page, total))
            })
            .ok_or_else(|| GraphError::invalid_user(&user))??
    };
    let mut body = serde_json::Map::new();
    let context_path = match &folder {
        Some(f) => format!("users('{user}')/mailFolders('{f}')/messages"),
        None => format!("users('{user}')/messages"),
    };
    let context_select = options
        .select
        .as_deref()
        .map(|s| format!("({s})"))
        .unwrap_or_default();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/v1.0/$metadata#{context_path}{context_select}",
            cx.sim.graph_base()
        )),
    );
    if options
        .count
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("true"))
    {
        body.insert("@odata.count".into(), json!(total));
    }
    body.insert("value".into(), Value::Array(page));
    if skip + page_size < total && page_size > 0 {
        let next_skip = if cx.sim.settings.read().next_link_loops {
            skip
        } else {
            skip + page_size
        };
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(
                &cx,
                &user,
                folder.as_deref(),
                &options,
                next_skip
            )),
        );
    }
    Ok(json_response(StatusCode::OK, &Value::Object(body)))
}

fn sort(found: &mut [&MailboxMessage], order: Option<MessageOrder>) {
    match order {
        None | Some(MessageOrder::ReceivedDesc) => {}
        Some(MessageOrder::ReceivedAsc) => {
            found.sort_by(|a, b| a.received.cmp(&b.received).then(a.serial.cmp(&b.serial)));
        }
        Some(MessageOrder::SentDesc) => {
            found.sort_by(|a, b| b.sent.cmp(&a.sent).then(b.serial.cmp(&a.serial)));
        }
        Some(MessageOrder::SentAsc) => {
            found.sort_by(|a, b| a.sent.cmp(&b.sent).then(a.serial.cmp(&b.serial)));
        }
    }
}

/// Absolute URL of the next page. Like Graph's message paging it is offset based: a client that
/// deletes while it pages skips messages unless it starts over.
fn next_link(
    cx: &GraphCx,
    user: &str,
    folder: Option<&str>,
    options: &QueryOptions,
    skip: usize,
) -> String {
    let path_user =
        percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC).to_string();
    let path = match folder {
        Some(f) => format!("/v1.0/users/{path_user}/mailFolders/{f}/messages"),
        None => format!("/v1.0/users/{path_user}/messages"),
    };
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(f) = &options.filter {
        pairs.push(("$filter", f.clone()));
    }
    if let Some(s) = &options.select {
        pairs.push(("$select", s.clone()));
    }
    if let Some(o) = &options.orderby {
        pairs.push(("$orderby", o.clone()));
    }
    if let Some(t) = options.top {
        pairs.push(("$top", t.to_string()));
    }
    pairs.push(("$skip", skip.to_string()));
    let base = cx
        .sim
        .settings
        .read()
        .next_link_base
        .clone()
        .unwrap_or_else(|| cx.sim.graph_base().to_owned());
    format!("{}{path}?{}", base, odata::encode_query(&pairs))
}

fn check_id(id: &str) -> Result<(), GraphError> {
    if crate::ids::is_well_formed_item_id(id) {
        Ok(())
    } else {
        Err(GraphError::id_malformed())
    }
}

fn item_error(error: ItemError) -> GraphError {
    match error {
        ItemError::NotFound => GraphError::item_not_found(),
    }
}

fn on_mailbox<T>(
    cx: &GraphCx,
    target: &MailboxTarget,
    f: impl FnOnce(&mut crate::state::Mailbox) -> Result<T, GraphError>,
) -> Result<T, GraphError> {
    let world = cx.sim.world.read();
    world
        .with_mailbox(&target.user_id, f)
        .ok_or_else(GraphError::item_not_found)?
}

/// `GET /users/{user}/messages/{id}`.
pub async fn get(
    cx: GraphCx,
    Path((user, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let options = odata::parse_query(raw.as_deref())?;
    let select = parse_select(&options)?;
    check_id(&id)?;
    let (target, _admission) = cx.enter_mailbox(&user, false).await?;
    let mut body = on_mailbox(&cx, &target, |mailbox| {
        let message = mailbox.get(&id).ok_or_else(GraphError::item_not_found)?;
        Ok(render::message(
            message,
            mailbox.folder_id(message.folder),
            select.as_deref(),
        ))
    })?;
    if let Value::Object(object) = &mut body {
        object.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#users('{user}')/messages/$entity",
                cx.sim.graph_base()
            )),
        );
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `DELETE /users/{user}/messages/{id}`: to Recoverable Items\Deletions.
pub async fn delete(
    cx: GraphCx,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, GraphError> {
    check_id(&id)?;
    let (target, _admission) = cx.enter_mailbox(&user, true).await?;
    on_mailbox(&cx, &target, |mailbox| {
        mailbox.soft_delete(&id).map_err(item_error)
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /users/{user}/messages/{id}/permanentDelete`: to Recoverable Items\Purges.
pub async fn permanent_delete(
    cx: GraphCx,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, GraphError> {
    check_id(&id)?;
    let (target, _admission) = cx.enter_mailbox(&user, true).await?;
    on_mailbox(&cx, &target, |mailbox| {
        mailbox.purge(&id).map_err(item_error)
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /users/{user}/messages/{id}/move {"destinationId"}`: 201 with the moved copy's new id.
pub async fn move_message(
    cx: GraphCx,
    Path((user, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, GraphError> {
    check_id(&id)?;
    let destination = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("destinationId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            GraphError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidRequest",
                "The request body must contain destinationId.",
            )
        })?;
    let (target, _admission) = cx.enter_mailbox(&user, true).await?;
    let body = on_mailbox(&cx, &target, |mailbox| {
        let folder = mailbox
            .resolve_folder(&destination)
            .filter(|f| *f != Folder::RecoverableItemsPurges)
            .ok_or_else(GraphError::id_malformed)?;
        let folder_id = mailbox.folder_id(folder).to_owned();
        let moved = mailbox.move_to(&id, folder).map_err(item_error)?;
        Ok(render::message(moved, &folder_id, None))
    })?;
    Ok(json_response(StatusCode::CREATED, &body))
}
