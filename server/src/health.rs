//! `grpc.health.v1.Health`: per-service status that follows the database, and NOT_SERVING for
//! everything (the overall `""` too) once shutdown begins; [`ServiceHealth`], what the
//! background parts have seen (the engine's supervisor, Microsoft's verdict on our app
//! credential), for readiness to read.
//!
//! Two names are for orchestrators' probes (Kubernetes `grpc` probes name a service):
//! - [`LIVENESS`]: SERVING from start until shutdown begins — the process answers. It does not
//!   follow the database: restarting a replica because PostgreSQL is away helps nobody.
//! - [`READINESS`]: SERVING only while the database answers its probe, every migration this
//!   build knows is applied, and (with a Graph app registration) the retract engine's
//!   supervised loop runs; NOT_SERVING otherwise and from the start of shutdown, so traffic
//!   goes to other replicas.

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

/// The liveness probe's service name.
pub const LIVENESS: &str = "liveness";
/// The readiness probe's service name.
pub const READINESS: &str = "readiness";

/// Sets every status: the overall `""`, each service's, liveness and readiness (at start and
/// at shutdown).
pub async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    set_database_dependent(reporter, status).await;
    reporter.set_service_status(LIVENESS, status).await;
    reporter.set_service_status(READINESS, status).await;
}

/// Sets the overall status and every service's status (what follows the database).
async fn set_database_dependent(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

impl ServiceHealth {
    /// Why this replica should get no traffic now, given whether the database answered its
    /// probe; `None` when it is ready.
    async fn unready_reason(
        &self,
        store: &Store,
        database_reachable: bool,
        timeout: Duration,
    ) -> Option<String> {
        if !database_reachable {
            return Some("the database is unreachable".to_owned());
        }
        match tokio::time::timeout(timeout, store.pending_migrations()).await {
            Ok(Ok(pending)) if pending.is_empty() => {}
            Ok(Ok(pending)) => {
                return Some(format!(
                    "{} migrations are not applied ({}); run retract-migrate up",
                    pending.len(),
                    pending.join(", ")
                ));
            }
            Ok(Err(err)) => return Some(format!("cannot read the applied migrations: {err}")),
            Err(_) => return Some("reading the applied migrations timed out".to_owned()),
        }
        if self.graph_credential.is_some() && !self.engine.is_running() {
            return Some("the retract engine is not running".to_owned());
        }
        None
    }
}

/// Probes the database every `interval` until `stop` fires, reporting SERVING while probes
/// succeed within `timeout` and NOT_SERVING while they do not; liveness SERVING throughout;
/// readiness as [`ServiceHealth`]'s parts say (see the module docs). Transitions are logged.
pub async fn follow_database(
    store: Store,
    reporter: HealthReporter,
    parts: ServiceHealth,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    let mut serving = None;
    let mut unready: Option<Option<String>> = None;
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
        let reason = parts.unready_reason(&store, healthy, timeout).await;
        if stop.is_cancelled() {
            return;
        }
        if serving != Some(healthy) {
            if healthy && serving.is_some() {
                tracing::info!("database reachable again: reporting SERVING");
            }
            set_database_dependent(&reporter, status_of(healthy)).await;
            serving = Some(healthy);
        }
        if unready.as_ref() != Some(&reason) {
            match &reason {
                // Starting up (the engine not yet running) is no cause for alarm.
                Some(why) if unready.is_none() => tracing::info!(reason = %why, "not ready yet"),
                Some(why) => tracing::warn!(reason = %why, "not ready"),
                None => tracing::info!("ready"),
            }
            reporter
                .set_service_status(READINESS, status_of(reason.is_none()))
                .await;
            unready = Some(reason);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

fn status_of(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}
