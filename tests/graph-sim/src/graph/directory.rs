//! `/organization`, `/domains`, `/me`, `/users/{id}` and `/users?$filter=`.

use axum::extract::{Path, RawQuery};
use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::context::GraphCx;
use super::error::{GraphError, json_response};
use super::render;
use crate::odata::{self, UserTerm};

fn collection(cx: &GraphCx, context: &str, value: Vec<Value>) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#{context}", cx.sim.graph_base())),
    );
    body.insert("value".into(), Value::Array(value));
    json_response(StatusCode::OK, &Value::Object(body))
}

pub async fn organization(cx: GraphCx) -> Result<Response, GraphError> {
    let _admission = cx.enter().await?;
    let world = cx.sim.world.read();
    let value: Vec<Value> = world
        .directory
        .tenant(&cx.claims.tid)
        .map(render::organization)
        .into_iter()
        .collect();
    drop(world);
    Ok(collection(&cx, "organization", value))
}

pub async fn domains(cx: GraphCx) -> Result<Response, GraphError> {
    let _admission = cx.enter().await?;
    let allowed = if cx.claims.is_app_only() {
        [
            "Domain.Read.All",
            "Domain.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ]
        .iter()
        .any(|r| cx.claims.has_role(r))
    } else {
        false
    };
    if !allowed {
        return Err(GraphError::directory_access_denied());
    }
    let world = cx.sim.world.read();
    let value: Vec<Value> = world
        .directory
        .tenant(&cx.claims.tid)
        .map(|t| t.domains.iter().map(render::domain).collect())
        .unwrap_or_default();
    drop(world);
    Ok(collection(&cx, "domains", value))
}

fn select_users(
    raw: Option<&str>,
) -> Result<(odata::QueryOptions, Option<Vec<&'static str>>), GraphError> {
    let options = odata::parse_query(raw)?;
    let select = match &options.select {
        Some(s) => Some(odata::parse_select(
            s,
            &render::USER_PROPERTIES,
            "microsoft.graph.user",
        )?),
        None => None,
    };
    Ok((options, select))
}

pub async fn me(cx: GraphCx, RawQuery(raw): RawQuery) -> Result<Response, GraphError> {
    let _admission = cx.enter_directory().await?;
    if cx.claims.is_app_only() {
        return Err(GraphError::bad_request(
            "/me request is only valid with delegated authentication flow.",
        ));
    }
    let (_, select) = select_users(raw.as_deref())?;
    let world = cx.sim.world.read();
    let user = world
        .directory
        .user_in_tenant(&cx.claims.tid, &cx.claims.oid)
        .ok_or_else(|| GraphError::resource_not_found(&cx.claims.oid))?;
    let mut body = render::user(user, select.as_deref());
    drop(world);
    if let Value::Object(object) = &mut body {
        object.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#users/$entity",
                cx.sim.graph_base()
            )),
        );
    }
    Ok(json_response(StatusCode::OK, &body))
}

pub async fn user(
    cx: GraphCx,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let _admission = cx.enter_directory().await?;
    let (_, select) = select_users(raw.as_deref())?;
    let world = cx.sim.world.read();
    let user = world
        .directory
        .user_in_tenant(&cx.claims.tid, &key)
        .ok_or_else(|| GraphError::resource_not_found(&key))?;
    if !cx.may_read_users(Some(&user.id)) {
        return Err(GraphError::directory_access_denied());
    }
    let mut body = render::user(user, select.as_deref());
    drop(world);
    if let Value::Object(object) = &mut body {
        object.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#users/$entity",
                cx.sim.graph_base()
            )),
        );
    }
    Ok(json_response(StatusCode::OK, &body))
}

fn matches(user: &crate::state::UserRecord, terms: &[UserTerm]) -> bool {
    terms.iter().any(|term| match term {
        UserTerm::Mail(v) => user.mail.eq_ignore_ascii_case(v),
        UserTerm::UserPrincipalName(v) => user.user_principal_name.eq_ignore_ascii_case(v),
        UserTerm::ProxyAddress(v) => user
            .proxy_addresses()
            .iter()
            .any(|p| p.eq_ignore_ascii_case(v)),
    })
}

pub async fn users(cx: GraphCx, RawQuery(raw): RawQuery) -> Result<Response, GraphError> {
    let _admission = cx.enter_directory().await?;
    if !cx.may_read_users(None) {
        return Err(GraphError::directory_access_denied());
    }
    let (options, select) = select_users(raw.as_deref())?;
    let terms = match &options.filter {
        Some(filter) => Some(odata::parse_user_filter(filter)?),
        None => None,
    };
    let world = cx.sim.world.read();
    let value: Vec<Value> = world
        .directory
        .users_of_tenant(&cx.claims.tid)
        .into_iter()
        .filter(|u| terms.as_deref().is_none_or(|t| matches(u, t)))
        .take(options.top.unwrap_or(100))
        .map(|u| render::user(u, select.as_deref()))
        .collect();
    drop(world);
    Ok(collection(&cx, "users", value))
}
