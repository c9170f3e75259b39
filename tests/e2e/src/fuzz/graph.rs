//! Microsoft answering garbage: a proxy in front of graph-sim mutates the JSON of one kind
//! of answer (token, user lookups, message pages with `@odata.nextLink`, `$batch`, or any)
//! — fields dropped, types changed, huge numbers, nulls, nested garbage, NUL and huge
//! strings, truncated bodies, other statuses — and the real server retracts through it.
//! Every job ends, every mailbox done or FAILED with a reason, and the engine never panics.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    response::Response,
};
use graph_sim::{
    GraphSim, SignIn,
    seed::{App, Domain, Mail, Tenant, User},
};
use proptest::prelude::*;
use retract_client::pb;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{run_cases, strategies::NASTY};
use crate::{
    app::TestApp,
    db::Backend,
    on_both_backends,
    scenarios::{CLIENT_ID, CLIENT_SECRET, PHISH, granted_app},
};

/// Retracts through a mutating Microsoft: about 8 s per backend.
const CASES: u32 = 200;
/// Longest one job may take.
const JOB_WITHIN: Duration = Duration::from_secs(30);

on_both_backends!(garbage_from_microsoft_fails_mailboxes_with_a_reason);

/// Which answers a plan mutates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The identity platform's token endpoint.
    Token,
    /// `GET /users/{address}` and alias lookups.
    Users,
    /// Message pages (searches, conversations, thread headers).
    Messages,
    /// `$batch` answers.
    Batch,
    /// Every Graph answer.
    AnyGraph,
}

impl Target {
    fn matches(self, login: bool, path: &str, query: &str) -> bool {
        match self {
            Self::Token => login && path.ends_with("/token"),
            Self::Users => !login && path.contains("/users") && !path.contains("/messages"),
            Self::Messages => !login && path.contains("/messages") && !query.is_empty(),
            Self::Batch => !login && path.ends_with("/$batch"),
            Self::AnyGraph => !login,
        }
    }
}

/// One change to a JSON value, at the `at`-th node of a pre-order walk (modulo their count).
#[derive(Clone, Debug)]
enum Edit {
    /// Removes the node from its object or array.
    Remove(usize),
    /// Replaces the node.
    Replace(usize, Value),
    /// Adds `key: value` to the node if it is an object.
    Insert(usize, String, Value),
}

/// How one answer is spoiled.
#[derive(Clone, Debug)]
enum Spoil {
    /// JSON edits, then re-encoded.
    Edits(Vec<Edit>),
    /// The body cut after this fraction (per mille) of its bytes.
    Truncate(u16),
    /// A body that is not JSON at all.
    Body(Vec<u8>),
}

/// What the proxy does while a case runs.
#[derive(Clone, Debug)]
struct Plan {
    target: Target,
    spoil: Spoil,
    /// The status sent instead of the real one, if any.
    status: Option<u16>,
    /// How many matching answers are spoiled (later ones pass); `None`: all.
    times: Option<u8>,
}

fn hostile_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(i64::MIN)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(0.5)),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        proptest::sample::select(NASTY).prop_map(|s| Value::String(s.to_owned())),
        "\\PC{0,20}".prop_map(Value::String),
        Just(Value::String("y".repeat(200_000))),
        Just(Value::String("http://evil.example/v1.0/users".into())),
        Just(Value::String(String::new())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z@.]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Keys a Graph client looks for, to add where they do not belong (or again).
const KEYS: &[&str] = &[
    "@odata.nextLink",
    "value",
    "id",
    "error",
    "code",
    "message",
    "responses",
    "status",
    "headers",
    "body",
    "access_token",
    "expires_in",
    "token_type",
    "isRead",
    "internetMessageHeaders",
    "conversationIndex",
];

fn edit() -> BoxedStrategy<Edit> {
    prop_oneof![
        2 => any::<usize>().prop_map(Edit::Remove),
        3 => (any::<usize>(), hostile_json()).prop_map(|(at, v)| Edit::Replace(at, v)),
        2 => (any::<usize>(), proptest::sample::select(KEYS), hostile_json())
            .prop_map(|(at, k, v)| Edit::Insert(at, k.to_owned(), v)),
    ]
    .boxed()
}

fn plan() -> BoxedStrategy<Plan> {
    let target = prop_oneof![
        1 => Just(Target::Token),
        2 => Just(Target::Users),
        3 => Just(Target::Messages),
        2 => Just(Target::Batch),
        1 => Just(Target::AnyGraph),
    ];
    let spoil = prop_oneof![
        5 => proptest::collection::vec(edit(), 1..4).prop_map(Spoil::Edits),
        1 => (0u16..1000).prop_map(Spoil::Truncate),
        1 => prop_oneof![
            Just(Vec::new()),
            Just(b"<html>502 Bad Gateway</html>".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..32),
        ]
        .prop_map(Spoil::Body),
    ];
    let status = proptest::option::weighted(
        0.2,
        proptest::sample::select(vec![200u16, 201, 204, 400, 401, 404, 429, 500, 503]),
    );
    let times = proptest::option::weighted(0.5, 1u8..=3);
    (target, spoil, status, times)
        .prop_map(|(target, spoil, status, times)| Plan {
            target,
            spoil,
            status,
            times,
        })
        .boxed()
}

/// Applies `edit` to the `at`-th node of `value`'s pre-order walk (modulo the node count).
fn apply(value: &mut Value, edit: &Edit) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Object(map) => map.values().map(count).sum(),
            _ => 0,
        }
    }
    /// Applies `edit` at the node `at` steps into `v`'s walk; `Some(true)` when `v` itself
    /// should be removed by its parent.
    fn visit(v: &mut Value, at: &mut usize, edit: &Edit) -> Option<bool> {
        if *at == 0 {
            return Some(match edit {
                Edit::Remove(_) => true,
                Edit::Replace(_, new) => {
                    *v = new.clone();
                    false
                }
                Edit::Insert(_, key, new) => {
                    if let Value::Object(map) = v {
                        map.insert(key.clone(), new.clone());
                    }
                    false
                }
            });
        }
        *at -= 1;
        match v {
            Value::Array(items) => {
                for i in 0..items.len() {
                    if let Some(remove) = visit(&mut items[i], at, edit) {
                        if remove {
                            items.remove(i);
                        }
                        return Some(false);
                    }
                }
                None
            }
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    let child = map.get_mut(&key).expect("a key just listed");
                    if let Some(remove) = visit(child, at, edit) {
                        if remove {
                            map.remove(&key);
                        }
                        return Some(false);
                    }
                }
                None
            }
            _ => None,
        }
    }
    let (Edit::Remove(at) | Edit::Replace(at, _) | Edit::Insert(at, _, _)) = edit;
    let mut at = at % count(value);
    if visit(value, &mut at, edit) == Some(true) {
        *value = Value::Null;
    }
}

impl Spoil {
    fn body(&self, body: &[u8]) -> Vec<u8> {
        match self {
            Self::Edits(edits) => match serde_json::from_slice::<Value>(body) {
                Ok(mut value) => {
                    for edit in edits {
                        apply(&mut value, edit);
                    }
                    serde_json::to_vec(&value).expect("JSON encodes")
                }
                Err(_) => body.to_vec(),
            },
            Self::Truncate(per_mille) => {
                body[..body.len() * usize::from(*per_mille) / 1000].to_vec()
            }
            Self::Body(bytes) => bytes.clone(),
        }
    }
}

/// The proxy's shared state: the plan in force and how often it has struck.
#[derive(Default)]
struct Armed {
    plan: Option<Plan>,
    struck: u32,
}

/// One direction of the proxy: to graph-sim's Graph or to its identity platform.
#[derive(Clone)]
struct Proxy {
    login: bool,
    upstream: String,
    /// The upstream's base URL as answers spell it, and ours to put in its place.
    rewrite: (String, String),
    http: reqwest::Client,
    armed: Arc<Mutex<Armed>>,
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut upstream = proxy
        .http
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", proxy.upstream),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.send().await else {
        return Response::builder()
            .status(502)
            .body(Body::empty())
            .expect("a response");
    };
    let mut status = answer.status().as_u16();
    let mut headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).replace(&proxy.rewrite.0, &proxy.rewrite.1);
    let mut body = text.into_bytes();
    {
        let mut armed = proxy.armed.lock().expect("proxy state");
        let strikes = armed.struck;
        if let Some(plan) = armed.plan.clone()
            && plan.target.matches(
                proxy.login,
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
            )
            && plan.times.is_none_or(|t| strikes < u32::from(t))
        {
            armed.struck += 1;
            body = plan.spoil.body(&body);
            status = plan.status.unwrap_or(status);
        }
    }
    headers.remove(http::header::CONTENT_LENGTH);
    headers.remove(http::header::TRANSFER_ENCODING);
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
    *response.headers_mut() = headers;
    response
}

/// Serves `proxy` on 127.0.0.1:0 until `stop`, answers naming its upstream rewritten to
/// name the proxy; its base URL.
async fn serve(mut proxy: Proxy, stop: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("proxy address");
    proxy.rewrite.1 = format!("http://{addr}");
    let router = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .ok();
    });
    format!("http://{addr}")
}

/// The message of the world, delivered again after each case.
fn phish(users: &[String]) -> Mail {
    Mail::new(PHISH, "ceo@evil.example").to(users.to_vec())
}

/// graph-sim with three users who got the message twice (so deletes go through `$batch`),
/// paging one message at a time (so searches follow `@odata.nextLink`), behind the proxy;
/// our server granted through it.
async fn world(
    backend: Backend,
) -> (
    GraphSim,
    TestApp,
    Arc<Mutex<Armed>>,
    Vec<String>,
    CancellationToken,
) {
    let users: Vec<String> = (0..3).map(|i| format!("user{i}@contoso.com")).collect();
    let mut tenant = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin());
    for user in &users {
        tenant = tenant.user(User::new(user.clone()));
    }
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(tenant)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(phish(&users))
        .mail(phish(&users))
        .start()
        .await
        .expect("graph-sim starts");
    sim.update_settings(|s| s.page_size = 1);
    let armed = Arc::new(Mutex::new(Armed::default()));
    let stop = CancellationToken::new();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("proxy client");
    let (graph_upstream, login_upstream) = (sim.graph_base_url(), sim.login_base_url());
    let graph_proxy = Proxy {
        login: false,
        upstream: graph_upstream.clone(),
        rewrite: (graph_upstream.clone(), String::new()),
        http: http.clone(),
        armed: armed.clone(),
    };
    let graph = serve(graph_proxy, stop.clone()).await;
    let login_proxy = Proxy {
        login: true,
        upstream: login_upstream.clone(),
        rewrite: (login_upstream.clone(), String::new()),
        http,
        armed: armed.clone(),
    };
    let login = serve(login_proxy, stop.clone()).await;
    let app = granted_app(backend, &sim, users.clone(), |s| {
        s.graph_base_url = graph;
        s.login_base_url = login;
        s.graph_max_attempts = 3;
        s.graph_backoff_base_ms = 5;
        s.graph_backoff_max_ms = 20;
        s.graph_max_retry_after_ms = 100;
        // Each case polls its job: not what the rate limit is for.
        s.rate_limit_per_second = 1e9;
        s.rate_limit_burst = 1e9;
    })
    .await;
    (sim, app, armed, users, stop)
}

fn options() -> BoxedStrategy<pb::RetractOptions> {
    (
        proptest::sample::select(vec![
            pb::DeleteMode::Soft,
            pb::DeleteMode::MoveToDeletedItems,
            pb::DeleteMode::Hard,
        ]),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.3, 1i32..=2),
    )
        .prop_map(|(mode, dry_run, conversations)| pb::RetractOptions {
            internet_message_id: PHISH.into(),
            delete_mode: mode.into(),
            dry_run,
            include_conversations: conversations.is_some(),
            conversation_depth: conversations.unwrap_or(0),
            ..Default::default()
        })
        .boxed()
}

/// Why a job's end is not a clear one: not final, a mailbox without an outcome, a failure
/// without a readable reason.
fn unclear_end(job: &pb::RetractJob, targets: &[pb::TargetStatus]) -> Option<String> {
    let readable = |text: &str| !text.trim().is_empty() && !text.chars().any(char::is_control);
    match job.state() {
        pb::JobState::Queued | pb::JobState::Running | pb::JobState::Unspecified => {
            return Some(format!("the job did not end: {job:?}"));
        }
        pb::JobState::Failed => {
            let detail = job.failure.as_ref().map_or("", |f| f.detail.as_str());
            if !readable(detail) {
                return Some(format!("the job FAILED without a readable reason: {job:?}"));
            }
        }
        _ => {}
    }
    for target in targets {
        match target.outcome.map(pb::RecipientOutcome::try_from) {
            None => return Some(format!("{} has no outcome: {target:?}", target.mailbox)),
            Some(Ok(pb::RecipientOutcome::Failed)) if !readable(&target.detail) => {
                return Some(format!(
                    "{} FAILED without a readable reason: {target:?}",
                    target.mailbox
                ));
            }
            _ => {}
        }
    }
    None
}

/// Starts a retract as acme's administrator and waits for its end: `Ok(None)` when the
/// start was refused clearly (Microsoft's garbage reached the administrator check).
async fn retract_through(
    app: &TestApp,
    options: pb::RetractOptions,
) -> Result<Option<(pb::RetractJob, Vec<pb::TargetStatus>)>, String> {
    let admin = app.admin("admin@contoso.com", "acme");
    let started = admin
        .retract_service()
        .start_retract(pb::StartRetractRequest {
            tenant_id: "acme".into(),
            options: Some(options),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await;
    let job = match started {
        Ok(answer) => answer
            .into_inner()
            .job
            .expect("StartRetract answers with the job"),
        Err(status) => {
            use tonic::Code;
            let reason = tonic_types::StatusExt::get_error_details(&status)
                .error_info()
                .map(|i| i.reason.clone());
            return match (status.code(), reason.as_deref()) {
                (Code::Unavailable, Some("MICROSOFT_UNAVAILABLE"))
                | (Code::PermissionDenied, Some("ADMIN_MAILBOX_NOT_FOUND"))
                | (Code::FailedPrecondition, Some(_)) => Ok(None),
                _ => Err(format!("StartRetract refused unclearly: {status:?}")),
            };
        }
    };
    let ended = tokio::time::timeout(JOB_WITHIN, async {
        loop {
            let job = admin
                .retract_service()
                .get_retract_job(pb::GetRetractJobRequest {
                    tenant_id: "acme".into(),
                    job_id: job.job_id.clone(),
                })
                .await
                .map_err(|s| format!("GetRetractJob: {s:?}"))?
                .into_inner()
                .job
                .expect("the job");
            if !matches!(
                job.state(),
                pb::JobState::Queued | pb::JobState::Running | pb::JobState::Unspecified
            ) {
                return Ok::<_, String>(job);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| format!("the job did not end within {JOB_WITHIN:?}"))??;
    let targets = admin
        .retract_service()
        .list_retract_targets(pb::ListRetractTargetsRequest {
            tenant_id: "acme".into(),
            job_id: ended.job_id.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .map_err(|s| format!("ListRetractTargets: {s:?}"))?
        .into_inner()
        .targets;
    Ok(Some((ended, targets)))
}

async fn garbage_from_microsoft_fails_mailboxes_with_a_reason(backend: Backend) {
    let (sim, app, armed, users, stop) = world(backend).await;
    let (app, sim) = (Arc::new(app), Arc::new(sim));
    {
        let (app, armed, sim, users) = (app.clone(), armed.clone(), sim.clone(), users.clone());
        run_cases(
            "mutated Graph answers",
            CASES,
            &(plan(), options()),
            move |(plan, options)| {
                let (app, armed, sim, users) =
                    (app.clone(), armed.clone(), sim.clone(), users.clone());
                Box::pin(async move {
                    *armed.lock().expect("proxy state") = Armed {
                        plan: Some(plan),
                        struck: 0,
                    };
                    let outcome = retract_through(&app, options).await;
                    *armed.lock().expect("proxy state") = Armed::default();
                    sim.deliver(&phish(&users));
                    match outcome? {
                        Some((job, targets)) => match unclear_end(&job, &targets) {
                            Some(problem) => Err(problem),
                            None => Ok(job.state().as_str_name()),
                        },
                        None => Ok("START_REFUSED"),
                    }
                })
            },
        );
    }
    // Microsoft is itself again: the same engine retracts to the end, and nothing panicked.
    let clean = retract_through(
        &app,
        pb::RetractOptions {
            internet_message_id: PHISH.into(),
            delete_mode: pb::DeleteMode::Soft.into(),
            ..Default::default()
        },
    )
    .await
    .expect("a clean retract")
    .expect("the clean retract starts");
    assert_eq!(clean.0.state(), pb::JobState::Succeeded, "{:?}", clean.0);
    let health = &app.health().engine;
    assert_eq!(health.panics(), 0, "{:?}", health.last_panic());
    stop.cancel();
    drop(sim);
    let Ok(app) = Arc::try_unwrap(app) else {
        panic!("the app is still shared")
    };
    app.stop().await;
}
