//! `grpc.health.v1.Health`: per-service status that follows the database, and NOT_SERVING for
//! everything (the overall `""` too) once shutdown begins.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::store::Store;

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
