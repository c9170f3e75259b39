//! Panics inside the engine: a job whose processing panicked is failed with a reason rather
//! than left leased, and the worker loop itself is restarted if it ever unwinds. What happened
//! is kept in [`EngineHealth`] for health reporting.

use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::{
    domain::{JobFailure, JobId, JobState},
    store::StoreError,
};

/// What the engine's supervisor has seen, for health reporting.
#[derive(Debug, Default)]
pub struct EngineHealth {
    running: AtomicBool,
    panics: AtomicU64,
    restarts: AtomicU64,
    last_panic: Mutex<Option<String>>,
}

impl EngineHealth {
    /// Whether the worker loop runs now.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Panics caught so far (in a job or in the loop).
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Times the worker loop was restarted after a panic.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The message of the latest panic.
    pub fn last_panic(&self) -> Option<String> {
        self.last_panic
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn record_panic(&self, message: &str) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        *self
            .last_panic
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.to_owned());
    }
}

/// A caught panic's message.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Runs `work`; a panic becomes `Err(message)`, recorded in `health`.
pub(super) async fn catching<T>(
    health: &EngineHealth,
    work: impl Future<Output = T>,
) -> Result<T, String> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(value) => Ok(value),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            health.record_panic(&message);
            Err(message)
        }
    }
}

/// Runs `run` until `stop`, starting it again (after `pause`) whenever it panics.
pub(super) async fn restarting<F, Fut>(
    health: &EngineHealth,
    stop: &CancellationToken,
    pause: Duration,
    mut run: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        health.running.store(true, Ordering::Relaxed);
        let outcome = catching(health, run()).await;
        health.running.store(false, Ordering::Relaxed);
        match outcome {
            Ok(()) => return,
            Err(message) => {
                tracing::error!(panic = %message, "the retract engine panicked; restarting it");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        health.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

impl Engine {
    /// What the supervisor has seen.
    pub fn health(&self) -> std::sync::Arc<EngineHealth> {
        self.health.clone()
    }

    /// [`Engine::run`] under supervision: restarted if it ever unwinds.
    pub async fn run_supervised(self, stop: CancellationToken) {
        let health = self.health.clone();
        let pause = self.settings.poll_interval;
        restarting(&health, &stop, pause, || self.clone().run(stop.clone())).await;
    }

    /// Processes a claimed job; if that panics, fails the job with the reason (while this
    /// worker still holds its lease) so that it is neither left leased nor retried into the
    /// same panic by every replica.
    pub(super) async fn process_supervised(
        &self,
        job_id: &JobId,
        stop: &CancellationToken,
    ) -> Result<(), StoreError> {
        let message = match catching(&self.health, self.process(job_id, stop)).await {
            Ok(outcome) => return outcome,
            Err(message) => message,
        };
        tracing::error!(job = %job_id, panic = %message, "a retract job panicked; failing it");
        let job = self.store.job_for_worker(job_id).await?;
        if job.state.is_final() {
            return Ok(());
        }
        let failure = JobFailure {
            code: "INTERNAL".to_owned(),
            detail:
                "internal error while processing the job (see the server log); start a new retract"
                    .to_owned(),
        };
        self.finish(
            &job,
            JobState::Failed,
            failure.detail.clone(),
            Some(failure),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[tokio::test]
    async fn a_worker_loop_that_panics_is_restarted_and_the_panic_is_visible() {
        let health = EngineHealth::default();
        let stop = CancellationToken::new();
        let runs = AtomicU32::new(0);
        restarting(&health, &stop, Duration::from_millis(1), || async {
            if runs.fetch_add(1, Ordering::Relaxed) < 2 {
                panic!("boom {}", runs.load(Ordering::Relaxed));
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(health.panics(), 2);
        assert_eq!(health.restarts(), 2);
        assert_eq!(health.last_panic().as_deref(), Some("boom 2"));
        assert!(!health.is_running());
    }

    #[tokio::test]
    async fn a_stopped_server_does_not_restart_a_panicked_loop() {
        let health = EngineHealth::default();
        let stop = CancellationToken::new();
        stop.cancel();
        restarting(&health, &stop, Duration::from_secs(3600), || async {
            panic!("once");
        })
        .await;
        assert_eq!((health.panics(), health.restarts()), (1, 0));
    }
}
