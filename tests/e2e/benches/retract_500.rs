//! Wall time of retracting one message from 500 mailboxes, with 20 ms of Graph latency per
//! request, through the real server and Graph client against graph-sim (SQLite). Each
//! mailbox needs three sequential Graph round trips (resolve, find, delete): a serial engine
//! needs 500 · 3 · 20 ms = 30 s before any other cost.
//!
//! `cargo bench -p retract-e2e --bench retract_500`

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use retract_client::pb;
use retract_e2e::{db::Backend, scenarios};

const MAILBOXES: usize = 500;
const LATENCY_MS: u64 = 20;
const BOUND: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    let w = scenarios::crowd(Backend::Sqlite, MAILBOXES, |s| {
        s.rate_limit_per_second = 0.0;
    })
    .await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(LATENCY_MS),
        ..Default::default()
    });
    let started = Instant::now();
    let mut stream = w
        .admin()
        .retract_service()
        .retract(pb::RetractRequest {
            tenant_id: "acme".into(),
            options: Some(pb::RetractOptions {
                internet_message_id: scenarios::PHISH.into(),
                delete_mode: pb::DeleteMode::Soft.into(),
                ..Default::default()
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("retract starts")
        .into_inner();
    let mut deleted = 0;
    while let Some(item) = stream.next().await {
        match item.expect("event").event.and_then(|e| e.kind) {
            Some(pb::retract_event::Kind::JobFinished(f)) => {
                deleted = f.counts.map_or(0, |c| c.deleted_count);
                break;
            }
            _ => continue,
        }
    }
    let elapsed = started.elapsed();
    let serial = Duration::from_millis(MAILBOXES as u64 * 3 * LATENCY_MS);
    let verdict = if elapsed <= BOUND && deleted as usize == MAILBOXES {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "retract of one message from {MAILBOXES} mailboxes, {LATENCY_MS} ms Graph latency: {:.2} s, {deleted} deleted (serial lower bound {:.0} s; bound: <= {} s) {verdict}",
        elapsed.as_secs_f64(),
        serial.as_secs_f64(),
        BOUND.as_secs()
    );
    w.app.stop().await;
    if verdict == "FAIL" {
        std::process::exit(1);
    }
}
