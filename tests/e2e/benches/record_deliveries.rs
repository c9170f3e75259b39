//! RecordDeliveries throughput: the gateway's highest-volume call, through the real server
//! (gRPC, auth, validation, store) on SQLite and, with RETRACT_TEST_POSTGRES_URL set, on
//! PostgreSQL (issue #13 item 7). Batches of 1,000 deliveries with 3 recipients each, sent by
//! two concurrent clients.
//!
//! Printed side by side for each backend, in one run:
//! - **ours**: deliveries/s through the full gRPC path;
//! - **the bound**: the target (SQLite ≥ 5,000/s, PostgreSQL ≥ 20,000/s), PASS/FAIL;
//! - **the local floor**: the same rows written by two concurrent raw connections straight
//!   into the same database, one statement per table per batch in one transaction
//!   (PostgreSQL: `INSERT … SELECT FROM UNNEST($1::text[], …)`; SQLite: one multi-row
//!   `INSERT … VALUES`), with no lookup, no merge and no gRPC: what the database itself
//!   allows here. On PostgreSQL also the same in 20 statements of 50 rows per table: sqlx
//!   0.9.0 leaves Nagle's algorithm on (transact-rs/sqlx#4335), so a statement whose
//!   message outgrows the socket's first 16 KiB send buffer waits 40 ms for a delayed ACK,
//!   and the one-statement floor measures that stall as much as the database. Ours as a
//!   share of the better floor is the ratio.
//!
//! Exits 1 when a bound is missed. `RETRACT_BENCH_BACKEND=sqlite|postgres` runs only one.
//!
//! `cargo bench -p retract-e2e --bench record_deliveries`

use std::time::{Duration, Instant};

use prost_types::Timestamp;
use retract_client::{DevToken, pb};
use retract_e2e::{app::TestApp, db::Backend};
use sea_orm::{ConnectionTrait as _, Database, DbBackend, Statement, TransactionTrait as _, Value};

const BATCHES_PER_CLIENT: usize = 10;
const CLIENTS: usize = 2;
const BATCH: usize = 1_000;
const RECIPIENTS: usize = 3;
const TENANT: &str = "acme";

fn bound(backend: Backend) -> f64 {
    match backend {
        Backend::Sqlite => 5_000.0,
        Backend::Postgres => 20_000.0,
    }
}

fn batch(prefix: &str, client: usize, n: usize) -> Vec<pb::Delivery> {
    (0..BATCH)
        .map(|i| pb::Delivery {
            internet_message_id: format!("<{prefix}-{client}-{n}-{i}@gateway.example>"),
            sender: format!("sender{i}@outside.example"),
            subject: format!("Message {i} of batch {n}"),
            delivery_time: Some(Timestamp {
                seconds: 1_750_000_000 + i as i64,
                nanos: 0,
            }),
            recipients: (0..RECIPIENTS)
                .map(|r| format!("user{}@acme.example", (i + r) % 500))
                .collect(),
            ..Default::default()
        })
        .collect()
}

fn all_batches(prefix: &str) -> Vec<Vec<Vec<pb::Delivery>>> {
    (0..CLIENTS)
        .map(|c| {
            (0..BATCHES_PER_CLIENT)
                .map(|n| batch(prefix, c, n))
                .collect()
        })
        .collect()
}

fn per_second(started: Instant) -> f64 {
    let elapsed = started.elapsed().max(Duration::from_millis(1));
    (CLIENTS * BATCHES_PER_CLIENT * BATCH) as f64 / elapsed.as_secs_f64()
}

/// Ours: the batches through RecordDeliveries.
async fn ours(app: &TestApp) -> f64 {
    let gateway = app.with_token(&DevToken::service("gateway").permission("deliveries.write"));
    // Warm up: connections, statement caches.
    gateway
        .retract_service()
        .record_deliveries(pb::RecordDeliveriesRequest {
            tenant_id: TENANT.into(),
            deliveries: batch("warm", 0, 0),
        })
        .await
        .expect("warm-up batch");
    let batches = all_batches("ours");
    let started = Instant::now();
    let clients = batches.into_iter().map(|own| {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            for deliveries in own {
                let r = gateway
                    .retract_service()
                    .record_deliveries(pb::RecordDeliveriesRequest {
                        tenant_id: TENANT.into(),
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
    per_second(started)
}

/// The local floor: the same rows, raw, one statement per table per batch — or, with
/// `pieces` > 1, each batch's rows in that many statements per table (on PostgreSQL: small
/// enough messages that sqlx 0.9.0's Nagle stall does not hit them; see the module docs).
async fn floor(backend: Backend, url: &str, prefix: &str, pieces: usize) -> f64 {
    let db = Database::connect(url).await.expect("connect for the floor");
    let batches = all_batches(prefix);
    let started = Instant::now();
    let clients = batches.into_iter().map(|own| {
        let db = db.clone();
        tokio::spawn(async move {
            for deliveries in own {
                let txn = db.begin().await.expect("begin");
                for piece in deliveries.chunks(BATCH.div_ceil(pieces)) {
                    let (deliveries, recipients) = raw_statements(backend, piece);
                    txn.execute_raw(deliveries).await.expect("raw deliveries");
                    txn.execute_raw(recipients).await.expect("raw recipients");
                }
                txn.commit().await.expect("commit");
            }
        })
    });
    for client in clients {
        client.await.expect("floor task");
    }
    let rate = per_second(started);
    db.close().await.ok();
    rate
}

/// The two INSERTs of one batch, as the database's own fastest single statement.
fn raw_statements(backend: Backend, batch: &[pb::Delivery]) -> (Statement, Statement) {
    let at = chrono::Utc::now();
    let mut d: [Vec<Value>; 10] = Default::default();
    let mut r: [Vec<Value>; 4] = Default::default();
    for item in batch {
        let id = uuid::Uuid::now_v7().to_string();
        let seconds = item.delivery_time.as_ref().map_or(0, |t| t.seconds);
        let delivered = chrono::DateTime::from_timestamp(seconds, 0).expect("time");
        let row: [Value; 10] = [
            id.clone().into(),
            TENANT.into(),
            item.internet_message_id.clone().into(),
            item.sender.clone().into(),
            item.subject.clone().into(),
            item.subject.to_lowercase().into(),
            delivered.into(),
            at.into(),
            at.into(),
            (item.recipients.len() as i32).into(),
        ];
        for (column, value) in d.iter_mut().zip(row) {
            column.push(value);
        }
        for address in &item.recipients {
            let row: [Value; 4] = [
                id.clone().into(),
                TENANT.into(),
                address.clone().into(),
                Some(delivered).into(),
            ];
            for (column, value) in r.iter_mut().zip(row) {
                column.push(value);
            }
        }
    }
    let deliveries = "deliveries (id, tenant_id, internet_message_id, sender, subject, \
                      subject_folded, delivered_at, recorded_at, updated_at, recipient_count)";
    let recipients = "delivery_recipients (delivery_id, tenant_id, address, last_delivered_at)";
    match backend {
        Backend::Postgres => (
            pg_unnest(
                deliveries,
                &[
                    "text",
                    "text",
                    "text",
                    "text",
                    "text",
                    "text",
                    "timestamptz",
                    "timestamptz",
                    "timestamptz",
                    "int4",
                ],
                d.into_iter().collect(),
            ),
            pg_unnest(
                recipients,
                &["text", "text", "text", "timestamptz"],
                r.into_iter().collect(),
            ),
        ),
        Backend::Sqlite => (sqlite_values(deliveries, &d), sqlite_values(recipients, &r)),
    }
}

fn pg_unnest(table: &str, types: &[&str], columns: Vec<Vec<Value>>) -> Statement {
    let params = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let values = columns
        .into_iter()
        .map(|column| {
            let ty = column.first().expect("a row").array_type();
            Value::Array(ty, Some(Box::new(column)))
        })
        .collect::<Vec<_>>();
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("INSERT INTO {table} SELECT * FROM UNNEST({params})"),
        values,
    )
}

fn sqlite_values(table: &str, columns: &[Vec<Value>]) -> Statement {
    let width = columns.len();
    let rows = columns[0].len();
    let row = format!("({})", vec!["?"; width].join(", "));
    let sql = format!(
        "INSERT INTO {table} VALUES {}",
        vec![row.as_str(); rows].join(", ")
    );
    let mut values = Vec::with_capacity(width * rows);
    for i in 0..rows {
        for column in columns {
            values.push(column[i].clone());
        }
    }
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

async fn measure(backend: Backend) -> bool {
    let app = TestApp::spawn_with(backend, |s| s.rate_limit_per_second = 0.0).await;
    app.create_tenant(TENANT).await;
    let single = floor(backend, app.database_url(), "floor", 1).await;
    let pieces = match backend {
        Backend::Postgres => Some(floor(backend, app.database_url(), "floor-pieces", 20).await),
        Backend::Sqlite => None,
    };
    let ours = ours(&app).await;
    app.stop().await;
    let bound = bound(backend);
    let pass = ours >= bound;
    let best = pieces.map_or(single, |p| p.max(single));
    println!(
        "RecordDeliveries on {:<8} ours {ours:>6.0} deliveries/s | bound >= {bound:.0}/s {} | \
         local floor, raw INSERTs on the same database: one statement per table {single:.0}/s{} \
         | ours/best floor {:.2}",
        backend.name(),
        if pass { "PASS" } else { "FAIL" },
        pieces.map_or(String::new(), |p| format!(
            ", 20 statements of 50 rows per table {p:.0}/s"
        )),
        ours / best,
    );
    pass
}

#[tokio::main]
async fn main() {
    let only = std::env::var("RETRACT_BENCH_BACKEND").ok();
    let wanted = |b: Backend| only.as_deref().is_none_or(|o| o == b.name());
    let mut pass = true;
    if wanted(Backend::Sqlite) {
        pass &= measure(Backend::Sqlite).await;
    }
    if wanted(Backend::Postgres) {
        if retract_e2e::db::postgres_admin_url().is_some() {
            pass &= measure(Backend::Postgres).await;
        } else {
            println!("RecordDeliveries on postgres: skipped (set RETRACT_TEST_POSTGRES_URL)");
        }
    }
    if !pass {
        std::process::exit(1);
    }
}
