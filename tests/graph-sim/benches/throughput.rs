//! Throughput of simple authenticated Graph GETs with latency injection and throttling off.
//!
//! `cargo bench -p graph-sim` — drives `GET /v1.0/organization` and `GET` of one message from
//! a bounded number of client tasks for a bounded time, prints the rate against the bound, and
//! exits non-zero below it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use graph_sim::seed::{App, Mail, Tenant, User};
use graph_sim::{Folder, GraphSim, Limits};

const CLIENTS: usize = 32;
const WARM_UP: Duration = Duration::from_millis(500);
const RUN: Duration = Duration::from_secs(3);
const BOUND: f64 = 20_000.0;

async fn drive(client: reqwest::Client, url: String, token: String) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let measuring_from = started + WARM_UP;
    let deadline = measuring_from + RUN;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, token, count, errors) = (
                client.clone(),
                url.clone(),
                token.clone(),
                count.clone(),
                errors.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    let ok = match client.get(&url).bearer_auth(&token).send().await {
                        Ok(response) => {
                            response.status().is_success() && response.bytes().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    if now >= measuring_from {
                        if ok {
                            count.fetch_add(1, Ordering::Relaxed);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "requests failed during the bench"
    );
    count.load(Ordering::Relaxed) as f64 / RUN.as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let passed = runtime.block_on(async {
        let tenant = Tenant::new("Bench").consent("bench-app").user(User::new("alice@bench.com"));
        let tenant_id = tenant.id().to_owned();
        let sim = GraphSim::builder()
            .app(App::new("bench-app", "bench-secret"))
            .tenant(tenant)
            .mail(Mail::new("<bench@bench.com>", "someone@elsewhere.com").to(["alice@bench.com"]))
            .limits(Limits::unlimited())
            .start()
            .await
            .expect("start graph-sim");
        let token = sim.app_token(&tenant_id, "bench-app", 3600).expect("token");
        let message_id = sim.messages_in("alice@bench.com", Folder::Inbox)[0].id.clone();
        let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().expect("client");
        let mut passed = true;
        for (name, path) in [
            ("GET /organization", "/v1.0/organization".to_owned()),
            ("GET message", format!("/v1.0/users/alice@bench.com/messages/{message_id}?$select=id,isRead")),
        ] {
            let rate = drive(client.clone(), format!("{}{path}", sim.graph_base_url()), token.clone()).await;
            let verdict = if rate >= BOUND { "PASS" } else { "FAIL" };
            passed &= rate >= BOUND;
            println!("graph-sim throughput ({name}, {CLIENTS} clients): {rate:.0} req/s (bound: >= {BOUND:.0} req/s) {verdict}");
        }
        passed
    });
    if !passed {
        std::process::exit(1);
    }
}
