//! RecordDeliveries throughput: the gateway's highest-volume call, through the real server
//! (gRPC, auth, validation, store) on SQLite and, with RETRACT_TEST_POSTGRES_URL set, on
//! PostgreSQL. Batches of 1,000 deliveries with 3 recipients each, sent by two concurrent
//! clients. Prints deliveries/s and compares SQLite with the target of 5,000/s.
//!
//! `cargo bench -p retract-e2e --bench record_deliveries`

use std::time::{Duration, Instant};

use prost_types::Timestamp;
use retract_client::{DevToken, pb};
use retract_e2e::{app::TestApp, db::Backend};

const BATCHES_PER_CLIENT: usize = 10;
const CLIENTS: usize = 2;
const BATCH: usize = 1_000;
const SQLITE_TARGET: f64 = 5_000.0;

fn batch(client: usize, n: usize) -> Vec<pb::Delivery> {
    (0..BATCH)
        .map(|i| pb::Delivery {
            internet_message_id: format!("<bench-{client}-{n}-{i}@gateway.example>"),
            sender: format!("sender{i}@outside.example"),
            subject: format!("Message {i} of batch {n}"),
            delivery_time: Some(Timestamp {
                seconds: 1_750_000_000 + i as i64,
                nanos: 0,
            }),
            recipients: (0..3)
                .map(|r| format!("user{}@acme.example", (i + r) % 500))
                .collect(),
            ..Default::default()
        })
        .collect()
}

async fn measure(backend: Backend) -> f64 {
    let app = TestApp::spawn_with(backend, |s| s.rate_limit_per_second = 0.0).await;
    app.create_tenant("acme").await;
    let gateway = app.with_token(&DevToken::service("gateway").permission("deliveries.write"));
    // Warm up: connections, statement caches.
    gateway
        .retract_service()
        .record_deliveries(pb::RecordDeliveriesRequest {
            tenant_id: "acme".into(),
            deliveries: batch(99, 0),
        })
        .await
        .expect("warm-up batch");
    let batches: Vec<Vec<Vec<pb::Delivery>>> = (0..CLIENTS)
        .map(|c| (0..BATCHES_PER_CLIENT).map(|n| batch(c, n)).collect())
        .collect();
    let started = Instant::now();
    let clients = batches.into_iter().map(|own| {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            for deliveries in own {
                let r = gateway
                    .retract_service()
                    .record_deliveries(pb::RecordDeliveriesRequest {
                        tenant_id: "acme".into(),
                        deliveries,
                    })
                    .await
                    .expect("batch recorded")
                    .into_inner();
                assert_eq!(r.created_count as usize, BATCH);
            }
        })
    });
    for client in clients {
        client.await.expect("client task");
    }
    let elapsed = started.elapsed().max(Duration::from_millis(1));
    app.stop().await;
    (CLIENTS * BATCHES_PER_CLIENT * BATCH) as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let sqlite = measure(Backend::Sqlite).await;
    let verdict = if sqlite >= SQLITE_TARGET {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "RecordDeliveries on SQLite: {sqlite:.0} deliveries/s (bound: >= {SQLITE_TARGET:.0} deliveries/s) {verdict}"
    );
    if retract_e2e::db::postgres_admin_url().is_some() {
        let postgres = measure(Backend::Postgres).await;
        println!(
            "RecordDeliveries on PostgreSQL: {postgres:.0} deliveries/s (no bound; stated for comparison)"
        );
    } else {
        println!("RecordDeliveries on PostgreSQL: skipped (set RETRACT_TEST_POSTGRES_URL)");
    }
    if verdict == "FAIL" {
        std::process::exit(1);
    }
}
