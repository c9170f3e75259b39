//! `POST /v1.0/$batch`: at most 20 sub-requests with unique ids; `dependsOn` ordering with 424
//! for failed dependencies; each sub-request runs through the full Graph stack (so it is
//! authenticated, throttled, logged and fault-injected on its own); at most 4 of one batch run at
//! once; answers may come back in any order.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use rand::seq::SliceRandom;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::context::GraphCx;
use super::error::{GraphError, json_response};
use crate::middleware::current_request_id;
use crate::record::BatchRef;

/// Most sub-requests in one batch.
pub const MAX_BATCH: usize = 20;
/// Most sub-requests of one batch that run at the same time.
pub const BATCH_PARALLELISM: usize = 4;

#[derive(Debug, Deserialize)]
struct BatchBody {
    requests: Vec<BatchItem>,
}

#[derive(Debug, Deserialize, Clone)]
struct BatchItem {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default, rename = "dependsOn")]
    depends_on: Vec<String>,
}

impl BatchItem {
    fn has_content_type(&self) -> bool {
        self.headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
    }
}

/// Checks the batch-wide rules; any violation fails the whole batch with 400.
fn validate(items: &[BatchItem]) -> Result<(), GraphError> {
    if items.is_empty() {
        return Err(GraphError::bad_request("Invalid batch payload format."));
    }
    if items.len() > MAX_BATCH {
        return Err(GraphError::bad_request(format!(
            "The number of requests in the batch ({}) exceeds the maximum of {MAX_BATCH}.",
            items.len()
        )));
    }
    let mut ids = HashSet::new();
    for item in items {
        if !ids.insert(item.id.to_ascii_lowercase()) {
            return Err(GraphError::bad_request(format!(
                "Request Id : {} is duplicated in the batch.",
                item.id
            )));
        }
    }
    for item in items {
        for dependency in &item.depends_on {
            if !ids.contains(&dependency.to_ascii_lowercase())
                || dependency.eq_ignore_ascii_case(&item.id)
            {
                return Err(GraphError::bad_request(format!(
                    "Request Id : {} depends on request {dependency}, which is not in the batch.",
                    item.id
                )));
            }
        }
        let writes = matches!(
            item.method.to_ascii_uppercase().as_str(),
            "POST" | "PATCH" | "PUT"
        );
        if (writes || item.body.is_some()) && (item.body.is_none() || !item.has_content_type()) {
            return Err(GraphError::bad_request(format!(
                "Write request id : {} does not contain Content-Type header or body.",
                item.id
            )));
        }
    }
    if has_cycle(items) {
        return Err(GraphError::bad_request(
            "The dependencies in the batch form a cycle.",
        ));
    }
    Ok(())
}

fn has_cycle(items: &[BatchItem]) -> bool {
    let index: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id.to_ascii_lowercase(), i))
        .collect();
    // 0 = unvisited, 1 = on the path, 2 = done.
    fn visit(
        i: usize,
        items: &[BatchItem],
        index: &HashMap<String, usize>,
        marks: &mut [u8],
    ) -> bool {
        match marks[i] {
            1 => return true,
            2 => return false,
            _ => {}
        }
        marks[i] = 1;
        for dependency in &items[i].depends_on {
            if let Some(&j) = index.get(&dependency.to_ascii_lowercase())
                && visit(j, items, index, marks)
            {
                return true;
            }
        }
        marks[i] = 2;
        false
    }
    let mut marks = vec![0u8; items.len()];
    (0..items.len()).any(|i| visit(i, items, &index, &mut marks))
}

/// One sub-response.
fn item_response(
    id: &str,
    status: u16,
    headers: &BTreeMap<String, String>,
    body: Option<Value>,
) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(id));
    object.insert("status".into(), json!(status));
    object.insert("headers".into(), json!(headers));
    if let Some(body) = body {
        object.insert("body".into(), body);
    }
    Value::Object(object)
}

fn item_error(id: &str, status: StatusCode, code: &str, message: &str) -> Value {
    let headers = BTreeMap::from([("Content-Type".to_owned(), "application/json".to_owned())]);
    let body = json!({ "error": { "code": code, "message": message, "innerError": { "request-id": current_request_id() } } });
    item_response(id, status.as_u16(), &headers, Some(body))
}

/// Turns a sub-request's URL into a path under `/v1.0`. Like Graph, an absolute URL or one that
/// repeats the version is taken as relative, so it fails with "Resource not found for the
/// segment …".
fn sub_request_uri(url: &str) -> Option<String> {
    // A raw '#' starts a fragment, which is not part of the request.
    let url = url.split('#').next().unwrap_or_default();
    let mut escaped = String::with_capacity(url.len() + 8);
    for c in url.chars() {
        match c {
            ' ' => escaped.push_str("%20"),
            '<' => escaped.push_str("%3C"),
            '>' => escaped.push_str("%3E"),
            '"' => escaped.push_str("%22"),
            '{' | '}' | '|' | '\\' | '^' | '`' => escaped.push_str(&format!("%{:02X}", c as u32)),
            c => escaped.push(c),
        }
    }
    let path = if escaped.starts_with('/') {
        format!("/v1.0{escaped}")
    } else {
        format!("/v1.0/{escaped}")
    };
    let lower = path.to_ascii_lowercase();
    (!lower.starts_with("/v1.0/$batch")).then_some(path)
}

async fn run_item(
    router: axum::Router,
    item: BatchItem,
    authorization: Option<HeaderValue>,
    batch_request_id: String,
) -> Value {
    let Some(uri) = sub_request_uri(&item.url) else {
        return item_error(
            &item.id,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid request URL.",
        );
    };
    let Ok(method) = Method::from_bytes(item.method.to_ascii_uppercase().as_bytes()) else {
        return item_error(
            &item.id,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid HTTP method.",
        );
    };
    let body = match &item.body {
        Some(Value::String(text)) => Body::from(text.clone()),
        Some(value) => Body::from(value.to_string()),
        None => Body::empty(),
    };
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in &item.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(authorization) = authorization {
        builder = builder.header(header::AUTHORIZATION, authorization);
    }
    let Ok(mut request) = builder.body(body) else {
        return item_error(
            &item.id,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid request URL or headers.",
        );
    };
    request.extensions_mut().insert(BatchRef {
        batch_request_id,
        item_id: item.id.clone(),
    });
    let Ok(response) = router.oneshot(request).await;
    let status = response.status().as_u16();
    let mut headers = BTreeMap::new();
    for name in [header::RETRY_AFTER, header::CONTENT_TYPE, header::LOCATION] {
        if let Some(value) = response.headers().get(&name).and_then(|v| v.to_str().ok()) {
            headers.insert(canonical_header(&name), value.to_owned());
        }
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    };
    item_response(&item.id, status, &headers, body)
}

fn canonical_header(name: &header::HeaderName) -> String {
    match name.as_str() {
        "retry-after" => "Retry-After".to_owned(),
        "content-type" => "Content-Type".to_owned(),
        "location" => "Location".to_owned(),
        other => other.to_owned(),
    }
}

fn succeeded(status: u16) -> bool {
    (200..300).contains(&status)
}

pub async fn batch(cx: GraphCx, headers: HeaderMap, body: Bytes) -> Result<Response, GraphError> {
    cx.inject_faults().await?;
    let parsed: BatchBody = serde_json::from_slice(&body)
        .map_err(|_| GraphError::bad_request("Invalid batch payload format."))?;
    let items = parsed.requests;
    validate(&items)?;
    let index: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id.to_ascii_lowercase(), i))
        .collect();
    let authorization = headers.get(header::AUTHORIZATION).cloned();
    let router = super::router(cx.sim.clone());
    let batch_request_id = current_request_id();

    let mut status: Vec<Option<u16>> = vec![None; items.len()];
    let mut started = vec![false; items.len()];
    let mut responses = Vec::with_capacity(items.len());
    let mut running = FuturesUnordered::new();
    loop {
        let mut progressed = true;
        while progressed {
            progressed = false;
            for (i, item) in items.iter().enumerate() {
                if started[i] || running.len() >= BATCH_PARALLELISM {
                    continue;
                }
                let dependencies: Vec<Option<u16>> = item
                    .depends_on
                    .iter()
                    .filter_map(|d| index.get(&d.to_ascii_lowercase()).map(|&j| status[j]))
                    .collect();
                if dependencies.iter().any(Option::is_none) {
                    continue;
                }
                started[i] = true;
                if dependencies.iter().flatten().any(|s| !succeeded(*s)) {
                    status[i] = Some(StatusCode::FAILED_DEPENDENCY.as_u16());
                    responses.push(item_error(
                        &item.id,
                        StatusCode::FAILED_DEPENDENCY,
                        "FailedDependency",
                        "Dependent request failed.",
                    ));
                    progressed = true;
                    continue;
                }
                let future = run_item(
                    router.clone(),
                    item.clone(),
                    authorization.clone(),
                    batch_request_id.clone(),
                );
                running.push(async move { (i, future.await) });
            }
        }
        let Some((i, response)) = running.next().await else {
            break;
        };
        status[i] = response
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok());
        responses.push(response);
    }
    if cx.sim.settings.read().shuffle_batch_responses {
        cx.sim.chaos.with_rng(|rng| responses.shuffle(rng));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "responses": responses }),
    ))
}
