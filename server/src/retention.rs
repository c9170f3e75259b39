//! Retention: deliveries older than the configured age are removed in the background
//! (audit events are kept; they have their own, longer life).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Removes deliveries older than `keep` now and then every `interval`, until `stop`.
pub async fn sweep_periodically(
    store: Store,
    keep: chrono::Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let cutoff = chrono::Utc::now() - keep;
        loop {
            match store.purge_deliveries_before(cutoff).await {
                // Purges go in slices; a full slice means more may be left.
                Ok(removed) if removed >= 10_000 => continue,
                Ok(removed) => {
                    if removed > 0 {
                        tracing::info!(removed, %cutoff, "removed deliveries past retention");
                    }
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "retention sweep failed; trying again later");
                    break;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
