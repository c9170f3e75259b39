//! The Rust client other services use (`retract-client`): a job's event stream that resumes
//! across a server restart mid-job, retries of idempotent calls only, typed errors, token
//! sources, deadlines.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use graph_sim::Folder;
use retract_client::{
    Code, ConnectOptions, DevToken, EventKind, IssuedToken, RefreshingToken, ResumePolicy,
    RetryPolicy, pb,
};

use crate::{
    app::TestApp,
    db::Backend,
    on_both_backends,
    scenarios::{PHISH, World, crowd},
};

on_both_backends!(
    the_event_stream_resumes_across_a_server_restart_mid_job,
    idempotent_calls_wait_for_a_server_that_comes_up_and_others_are_not_retried,
    throttled_calls_are_retried_after_the_servers_retry_info,
    errors_expose_the_reason_and_every_invalid_field,
    a_refreshing_token_is_fetched_again_only_near_its_expiry,
    a_call_deadline_ends_a_call_graph_holds,
);

fn admin_token() -> DevToken {
    DevToken::admin("admin@contoso.com", "acme").all_permissions()
}

fn soft_everyone() -> pb::RetractOptions {
    pb::RetractOptions {
        internet_message_id: PHISH.into(),
        delete_mode: pb::DeleteMode::Soft.into(),
        ..Default::default()
    }
}

/// The client's Retract stream is cut by a server restart mid-job (the old server ends it
/// with UNAVAILABLE, then nobody listens until the new one is up); the stream goes on by
/// itself and yields every event of the job once, in order, to JobFinished.
async fn the_event_stream_resumes_across_a_server_restart_mid_job(backend: Backend) {
    let w = crowd(backend, 12, |s| {
        s.mailbox_concurrency = 1;
        s.job_lease_ms = 1_000;
        s.shutdown_grace_ms = 2_000;
    })
    .await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(60),
        ..Default::default()
    });
    let client = ConnectOptions::new(format!("http://{}", w.app.addr))
        .token_source(admin_token())
        .connect()
        .await
        .expect("connects")
        .with_resume(ResumePolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            give_up_after: Duration::from_secs(60),
        });
    let mut events = client.retract(pb::RetractRequest {
        tenant_id: "acme".into(),
        options: Some(soft_everyone()),
        request_id: String::new(),
    });
    let mut seen = Vec::new();
    let mut done = 0;
    while done < 3 {
        let event = events.next().await.expect("more events").expect("an event");
        if let EventKind::Recipient(u) = event.kind()
            && u.phase() == pb::RecipientPhase::Done
        {
            done += 1;
        }
        seen.push(event);
    }
    let World { sim, app } = w;
    let app = app.restart_on_same_port().await;
    while let Some(event) = events.next().await {
        seen.push(event.expect("the stream resumes instead of failing"));
    }
    assert!(
        events.reconnects() >= 1,
        "the stream was interrupted and resumed"
    );
    let sequences: Vec<i64> = seen.iter().map(retract_client::Event::sequence).collect();
    let expected: Vec<i64> = (1..=i64::try_from(seen.len()).unwrap()).collect();
    assert_eq!(sequences, expected, "every event once, in order, no gap");
    let Some(EventKind::Finished(finished)) = seen.last().map(retract_client::Event::kind) else {
        panic!("the last event is JobFinished: {:?}", seen.last());
    };
    assert_eq!(finished.state(), pb::JobState::Succeeded);
    let mut mailboxes: Vec<String> = seen
        .iter()
        .filter_map(|e| match e.kind() {
            EventKind::Recipient(u) if u.phase() == pb::RecipientPhase::Done => {
                Some(u.mailbox.clone())
            }
            _ => None,
        })
        .collect();
    mailboxes.sort();
    let before = mailboxes.len();
    mailboxes.dedup();
    assert_eq!(before, 12, "each mailbox's DONE seen exactly once");
    assert_eq!(mailboxes.len(), 12);
    // Watching the finished job after its last event ends at once, without an event.
    let job_id = seen[0].job_id().to_owned();
    let mut after_the_end = client.watch("acme", job_id, events.last_sequence());
    let nothing = tokio::time::timeout(Duration::from_secs(10), after_the_end.next())
        .await
        .expect("ends at once instead of reconnecting");
    assert!(nothing.is_none(), "{nothing:?}");
    for i in 0..12 {
        let user = format!("user{i}@contoso.com");
        assert_eq!(
            sim.messages_in(&user, Folder::RecoverableItemsDeletions)
                .len(),
            1,
            "{user}'s copy is retracted"
        );
    }
    app.stop().await;
}

/// A port nobody listens on yet.
fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The client is pointed at a server that is still starting: ListTenants (idempotent) is
/// retried until it answers; CreateTenant (not idempotent) fails at once with UNAVAILABLE.
async fn idempotent_calls_wait_for_a_server_that_comes_up_and_others_are_not_retried(
    backend: Backend,
) {
    let addr = free_port();
    let retry = RetryPolicy {
        max_attempts: 60,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(250),
        ..RetryPolicy::default()
    };
    let client = ConnectOptions::new(format!("http://{addr}"))
        .token_source(DevToken::service("portal-backend").all_permissions())
        .retry(retry)
        .connect_lazy()
        .unwrap();
    // Retried, it would spend its 60 attempts (over 10 s of backoff) before failing.
    let started = std::time::Instant::now();
    let refused = client
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "early".into(),
            display_name: "Early".into(),
        })
        .await
        .expect_err("nobody listens yet");
    assert_eq!(refused.code(), Code::Unavailable, "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "CreateTenant was not retried: {:?}",
        started.elapsed()
    );
    let list = tokio::spawn({
        let client = client.clone();
        async move { client.list_tenants(pb::ListTenantsRequest::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let app = TestApp::spawn_with(backend, |s| s.listen_addr = addr).await;
    let tenants = list
        .await
        .unwrap()
        .expect("retried until the server answered");
    assert!(tenants.tenants.is_empty());
    app.stop().await;
}

/// Past the per-caller rate limit the server answers RESOURCE_EXHAUSTED with a RetryInfo:
/// the client waits that long and succeeds; without retries the delay is in the error.
async fn throttled_calls_are_retried_after_the_servers_retry_info(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.rate_limit_per_second = 4.0;
        s.rate_limit_burst = 1.0;
    })
    .await;
    let client = ConnectOptions::new(format!("http://{}", app.addr))
        .token_source(DevToken::service("portal-backend").all_permissions())
        .connect()
        .await
        .unwrap();
    let once = client.with_retry(RetryPolicy::none());
    once.list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("the burst allows one");
    let throttled = once
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect_err("the second at once is over the limit");
    let api = throttled.api().expect("the server's answer");
    assert_eq!(api.code(), Code::ResourceExhausted, "{throttled}");
    assert!(api.retry_delay().is_some(), "with a RetryInfo: {throttled}");
    for _ in 0..3 {
        client
            .list_tenants(pb::ListTenantsRequest::default())
            .await
            .expect("retried after the delay the server asked for");
    }
    app.stop().await;
}

async fn errors_expose_the_reason_and_every_invalid_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let endpoint = format!("http://{}", app.addr);
    let client = ConnectOptions::new(endpoint.clone())
        .token_source(DevToken::service("portal-backend").all_permissions())
        .connect()
        .await
        .unwrap();
    let err = client
        .add_domain(pb::AddDomainRequest {
            tenant_id: "acme".into(),
            domain: "*.acme.example".into(),
        })
        .await
        .expect_err("a wildcard is refused");
    let api = err.api().expect("the server's answer");
    assert_eq!(api.code(), Code::InvalidArgument);
    assert_eq!(api.error_reason(), Some(pb::ErrorReason::InvalidArgument));
    let fields: Vec<&str> = api
        .field_violations()
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["domain"], "{err}");

    let anonymous = ConnectOptions::new(endpoint).connect().await.unwrap();
    let err = anonymous
        .list_domains(pb::ListDomainsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        err.api().and_then(retract_client::ApiError::error_reason),
        Some(pb::ErrorReason::MissingCredentials)
    );
    app.stop().await;
}

fn counting_source(lifetime: Duration, margin: Duration) -> (RefreshingToken, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let source = RefreshingToken::new(margin, move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let token = DevToken::service("portal-backend")
                .all_permissions()
                .valid_for(lifetime)
                .mint()
                .map_err(|e| e.to_string())?;
            Ok(IssuedToken {
                token,
                expires_at: SystemTime::now() + lifetime,
            })
        }
    });
    (source, fetches)
}

async fn a_refreshing_token_is_fetched_again_only_near_its_expiry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let endpoint = format!("http://{}", app.addr);
    for (margin, expected) in [(Duration::ZERO, 1), (Duration::from_secs(120), 3)] {
        // A 60 s token: with no margin it lasts all three calls; with a 120 s margin it is
        // always "about to expire" and fetched for every call.
        let (source, fetches) = counting_source(Duration::from_secs(60), margin);
        let client = ConnectOptions::new(endpoint.clone())
            .token_source(source)
            .connect()
            .await
            .unwrap();
        for _ in 0..3 {
            client
                .list_tenants(pb::ListTenantsRequest::default())
                .await
                .expect("the fetched token is accepted");
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            expected,
            "margin {margin:?}"
        );
    }
    app.stop().await;
}

/// VerifyDomains waits on Graph, which holds every request: the client's deadline ends the
/// call with DEADLINE_EXCEEDED (and does not retry it).
async fn a_call_deadline_ends_a_call_graph_holds(backend: Backend) {
    let w = crowd(backend, 1, |_| {}).await;
    let client = ConnectOptions::new(format!("http://{}", w.app.addr))
        .token_source(admin_token())
        .deadline(Duration::from_millis(400))
        .connect()
        .await
        .unwrap();
    let hold = w.sim.hold_graph_requests();
    let started = std::time::Instant::now();
    let err = client
        .verify_domains(pb::VerifyDomainsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .expect_err("Graph holds the check past the deadline");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
    drop(hold);
    w.app.stop().await;
}
