//! The admin API under `/_sim/…` (served on both listeners, never logged): read what happened
//! and change settings while running. The Rust handle ([`crate::GraphSim`]) offers the same.
//!
//! | call | effect |
//! |---|---|
//! | `GET /_sim/requests` | every request (JSON array of [`crate::RequestRecord`]) |
//! | `GET /_sim/throttles` | every 429 the simulator sent |
//! | `GET /_sim/peaks` | peak concurrency per mailbox |
//! | `GET /_sim/mailboxes/{address}` | folders and messages of one mailbox |
//! | `POST /_sim/mails` | deliver a [`crate::seed::Mail`] now |
//! | `POST /_sim/reset` | back to the seed and start settings |
//! | `GET`/`PUT /_sim/settings` | all [`crate::Settings`] |
//! | `PUT /_sim/latency`, `/_sim/faults`, `/_sim/limits`, `/_sim/sign-in` | one part of them |
//! | `POST /_sim/storm {"duration_ms"}`, `DELETE /_sim/storm` | 429 for every Graph call |
//! | `POST /_sim/clock {"advance_secs"}` | move token time forward |
//! | `POST`/`DELETE /_sim/hold`, `GET /_sim/hold` | hold / release Graph requests; how many wait |

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::core::Sim;
use crate::seed::Mail;
use crate::settings::{FaultSettings, LatencySettings, Limits, Settings, SignIn};

type Shared = State<Arc<Sim>>;

async fn requests(State(sim): Shared) -> Response {
    Json(sim.recorder.requests()).into_response()
}

async fn throttles(State(sim): Shared) -> Response {
    Json(sim.recorder.throttles()).into_response()
}

async fn peaks(State(sim): Shared) -> Response {
    Json(sim.peak_concurrency()).into_response()
}

async fn mailbox(State(sim): Shared, Path(address): Path<String>) -> Response {
    let world = sim.world.read();
    let contents = world
        .directory
        .user_by_any(&address)
        .and_then(|user| world.contents(&user.id));
    drop(world);
    match contents {
        Some(contents) => Json(contents).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no simulated mailbox {address}"),
        )
            .into_response(),
    }
}

async fn deliver(State(sim): Shared, Json(mail): Json<Mail>) -> StatusCode {
    sim.world.write().deliver(&mail);
    StatusCode::NO_CONTENT
}

async fn reset(State(sim): Shared) -> Response {
    match sim.reset() {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn get_settings(State(sim): Shared) -> Json<Settings> {
    Json(sim.settings.read().clone())
}

async fn put_settings(State(sim): Shared, Json(settings): Json<Settings>) -> StatusCode {
    *sim.settings.write() = settings;
    StatusCode::NO_CONTENT
}

async fn put_latency(State(sim): Shared, Json(latency): Json<LatencySettings>) -> StatusCode {
    sim.settings.write().latency = latency;
    StatusCode::NO_CONTENT
}

async fn put_faults(State(sim): Shared, Json(faults): Json<FaultSettings>) -> StatusCode {
    sim.settings.write().faults = faults;
    StatusCode::NO_CONTENT
}

async fn put_limits(State(sim): Shared, Json(limits): Json<Limits>) -> StatusCode {
    sim.settings.write().limits = limits;
    StatusCode::NO_CONTENT
}

async fn put_sign_in(State(sim): Shared, Json(sign_in): Json<SignIn>) -> StatusCode {
    sim.settings.write().sign_in = sign_in;
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Storm {
    duration_ms: u64,
}

async fn start_storm(State(sim): Shared, Json(storm): Json<Storm>) -> StatusCode {
    sim.chaos
        .start_storm(Instant::now(), Duration::from_millis(storm.duration_ms));
    StatusCode::NO_CONTENT
}

async fn stop_storm(State(sim): Shared) -> StatusCode {
    sim.chaos.stop_storm();
    StatusCode::NO_CONTENT
}

async fn hold(State(sim): Shared) -> StatusCode {
    sim.gate.close();
    StatusCode::NO_CONTENT
}

async fn release(State(sim): Shared) -> StatusCode {
    sim.gate.open();
    StatusCode::NO_CONTENT
}

async fn held(State(sim): Shared) -> Response {
    Json(json!({ "waiting": sim.gate.waiting() })).into_response()
}

#[derive(Deserialize)]
struct Clock {
    advance_secs: i64,
}

async fn advance_clock(State(sim): Shared, Json(clock): Json<Clock>) -> Response {
    sim.advance_clock(clock.advance_secs);
    Json(json!({ "now_unix": sim.now_unix() })).into_response()
}

/// The admin routes.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/_sim/requests", get(requests))
        .route("/_sim/throttles", get(throttles))
        .route("/_sim/peaks", get(peaks))
        .route("/_sim/mailboxes/{address}", get(mailbox))
        .route("/_sim/mails", post(deliver))
        .route("/_sim/reset", post(reset))
        .route("/_sim/settings", get(get_settings).put(put_settings))
        .route("/_sim/latency", put(put_latency))
        .route("/_sim/faults", put(put_faults))
        .route("/_sim/limits", put(put_limits))
        .route("/_sim/sign-in", put(put_sign_in))
        .route("/_sim/storm", post(start_storm).delete(stop_storm))
        .route("/_sim/clock", post(advance_clock))
        .route("/_sim/hold", post(hold).delete(release).get(held))
        .with_state(sim)
}
