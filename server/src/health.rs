//! `grpc.health.v1.Health`: per-service status that follows the database, and NOT_SERVING for
//! everything (the overall `""` too) once shutdown begins; [`ServiceHealth`], what the
//! background parts have seen (the engine's supervisor, Microsoft's verdict on our app
//! credential), for readiness to read.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{engine::EngineHealth, graph::AppCredential, store::Store};

/// What the background parts of this process report about themselves.
#[derive(Clone)]
pub struct ServiceHealth {
    /// The retract engine's supervisor: running, panics, restarts.
    pub engine: Arc<EngineHealth>,
    /// The Graph app credential (`None` without an app registration).
    pub graph_credential: Option<Arc<AppCredential>>,
}

impl ServiceHealth {
    /// Why Microsoft rejects this service's own Graph credential (a wrong or expired secret,
    /// an unknown certificate), while it does: a configuration error of the whole service.
    pub fn graph_credential_rejection(&self) -> Option<String> {
        self.graph_credential
            .as_ref()
            .and_then(|c| c.health().rejection())
    }
}

/// The services whose status is reported, besides the overall `""`.
pub const SERVICES: [&str; 3] = [
    "retract.v1.TenantService",
    "retract.v1.RetractService",
    "retract.v1.AuditService",
];

/// Sets the overall status and every service's status.
pub async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Probes the database every `interval` until `stop` fires, reporting SERVING while probes
/// succeed within `timeout` and NOT_SERVING while they do not. Transitions are logged.
pub async fn follow_database(
    store: Store,
    reporter: HealthReporter,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut serving = None;
    loop {
        let healthy = match tokio::time::timeout(timeout, store.probe()).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                if serving != Some(false) {
                    tracing::warn!(error = %err, "database probe failed: reporting NOT_SERVING");
                }
                false
            }
            Err(_) => {
                if serving != Some(false) {
                    tracing::warn!(?timeout, "database probe timed out: reporting NOT_SERVING");
                }
                false
            }
        };
        if stop.is_cancelled() {
            return;
        }
        if serving != Some(healthy) {
            if healthy && serving.is_some() {
                tracing::info!("database reachable again: reporting SERVING");
            }
            let status = if healthy {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_all(&reporter, status).await;
            serving = Some(healthy);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
