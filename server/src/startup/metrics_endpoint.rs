//! The Prometheus endpoint: `GET /metrics` on a port of its own, rendered by the `metrics`
//! recorder. Gauges the database knows (jobs by state, pool connections) are refreshed on each
//! scrape.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::StartupError;
use crate::{store::Store, telemetry::metrics};

/// Longest a scrape waits for the database's gauges; past it they keep their last value.
const GAUGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Installs the process's recorder and binds `addr`.
pub(super) async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    metrics::install().map_err(|e| StartupError::Config(format!("metrics: {e}")))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    tracing::info!(%local, "metrics endpoint listening (GET /metrics)");
    Ok((listener, local))
}

/// Serves `/metrics` until `stopping`.
pub(super) async fn serve(listener: TcpListener, store: Store, stopping: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(store);
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stopping.cancelled_owned())
        .await
    {
        tracing::warn!(error = %err, "metrics endpoint stopped");
    }
}

async fn scrape(State(store): State<Store>) -> impl IntoResponse {
    if let Some(pool) = store.pool_usage() {
        metrics::db_pool(pool.open, pool.idle, pool.max);
    }
    match tokio::time::timeout(GAUGE_TIMEOUT, store.jobs_by_state()).await {
        Ok(Ok(counts)) => {
            for state in crate::domain::JobState::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| *s == state)
                    .map_or(0, |(_, n)| *n);
                metrics::jobs_in_state(state.as_str(), n);
            }
        }
        Ok(Err(err)) => tracing::debug!(error = %err, "metrics: cannot count jobs"),
        Err(_) => tracing::debug!("metrics: counting jobs timed out"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render().unwrap_or_default(),
    )
}
