//! Housekeeping in the background: deliveries and finished retract jobs (with their events)
//! older than the configured ages are removed (audit events are kept: the trail outlives
//! what it describes), consent attempts nobody came back to are ended so their domains
//! do not stay PENDING, a deleted tenant's data purge interrupted midway is finished, and a
//! deleted tenant's audit trail is removed once its retention has passed.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Why a domain failed when its consent attempt was abandoned.
pub const CONSENT_ABANDONED: &str = "consent attempt expired; press Grant Permissions again";

/// Why a domain failed when its consent attempt was interrupted while completing.
pub const CONSENT_INTERRUPTED: &str = "the consent could not be completed (the service was interrupted); press Grant Permissions again";

/// How long things are kept; `None` keeps them forever.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Deliveries, by delivery time.
    pub deliveries: Option<chrono::Duration>,
    /// Finished retract jobs and their events, by finish time.
    pub jobs: Option<chrono::Duration>,
    /// A deleted tenant's audit trail, by deletion time. DeleteTenant records in the
    /// tombstone when the trail goes; the sweep applies this setting itself only to
    /// tombstones from before such times were recorded.
    pub deleted_tenant_audit: Option<chrono::Duration>,
    /// A consent attempt still completing this long after its URL expired was interrupted.
    pub consent_completion: Duration,
}

/// Ends abandoned consent attempts and removes what is past `keep`, now and then every
/// `interval`, until `stop`.
pub async fn sweep_periodically(
    store: Store,
    keep: Retention,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        match store.expire_stale_grants(CONSENT_ABANDONED).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "ended abandoned consent attempts"),
            Err(err) => {
                tracing::warn!(error = %err, "consent attempt sweep failed; trying again later");
            }
        }
        match store
            .fail_interrupted_grants(keep.consent_completion, CONSENT_INTERRUPTED)
            .await
        {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(
                failed,
                "failed consent attempts interrupted while completing"
            ),
            Err(err) => {
                tracing::warn!(error = %err, "interrupted-consent sweep failed; trying again later");
            }
        }
        if let Some(keep) = keep.deliveries {
            purge_deliveries(&store, keep).await;
        }
        if let Some(keep) = keep.jobs {
            purge_jobs(&store, keep, &stop).await;
        }
        purge_deleted_tenants(&store, keep.deleted_tenant_audit, &stop).await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Rows one job-retention transaction removes at most.
pub const JOB_PURGE_ROWS_PER_TRANSACTION: u64 = 500;

/// Removes finished jobs past `keep`, a few hundred rows a transaction, yielding between
/// them so that other writers (SQLite has one writing connection) are never held up for long.
async fn purge_jobs(store: &Store, keep: chrono::Duration, stop: &CancellationToken) {
    let cutoff = chrono::Utc::now() - keep;
    let mut removed = 0u64;
    while !stop.is_cancelled() {
        match store
            .purge_jobs_finished_before(cutoff, JOB_PURGE_ROWS_PER_TRANSACTION)
            .await
        {
            Ok(0) => break,
            Ok(rows) => {
                removed += rows;
                tokio::task::yield_now().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "job retention sweep failed; trying again later");
                break;
            }
        }
    }
    if removed > 0 {
        tracing::info!(rows = removed, %cutoff, "removed retract jobs past retention");
    }
}

/// Finishes deleted tenants' data purges (a deletion interrupted midway), then removes the
/// audit trails whose time has come, a slice a transaction: each at the time its deletion
/// recorded; those of tombstones made before such times were recorded `audit_kept` (the
/// retention configured now) after their deletion.
pub async fn purge_deleted_tenants(
    store: &Store,
    audit_kept: Option<chrono::Duration>,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        match store
            .purge_deleted_tenant_data(crate::store::PURGE_ROWS)
            .await
        {
            Ok(0) => break,
            Ok(_) => tokio::task::yield_now().await,
            Err(err) => {
                tracing::warn!(error = %err, "deleted-tenant purge failed; trying again later");
                return;
            }
        }
    }
    let at = chrono::Utc::now();
    while !stop.is_cancelled() {
        match store
            .purge_deleted_tenant_audit(at, audit_kept, crate::store::PURGE_ROWS)
            .await
        {
            Ok(0) => break,
            Ok(_) => tokio::task::yield_now().await,
            Err(err) => {
                tracing::warn!(error = %err, "deleted-tenant audit purge failed; trying again later");
                return;
            }
        }
    }
}

async fn purge_deliveries(store: &Store, keep: chrono::Duration) {
    let cutoff = chrono::Utc::now() - keep;
    loop {
        match store.purge_deliveries_before(cutoff).await {
            // Purges go in slices; a full slice means more may be left.
            Ok(removed) if removed >= 10_000 => {}
            Ok(removed) => {
                if removed > 0 {
                    tracing::info!(removed, %cutoff, "removed deliveries past retention");
                }
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "retention sweep failed; trying again later");
                return;
            }
        }
    }
}
