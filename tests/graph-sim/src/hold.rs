//! A gate Graph requests wait at while a test holds it, so tests can line up concurrent
//! requests deterministically instead of relying on injected latency or sleeps.
//!
//! A held request has passed authentication and throttling (it occupies its concurrency slot)
//! and waits before latency, faults and the handler.

use std::sync::Arc;

use tokio::sync::watch;

/// The gate and how many requests wait at it.
#[derive(Debug)]
pub struct Gate {
    closed: watch::Sender<bool>,
    waiting: watch::Sender<usize>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            closed: watch::Sender::new(false),
            waiting: watch::Sender::new(0),
        }
    }
}

/// Counts a request as waiting until it leaves (also when its future is dropped).
struct Waiting<'a>(&'a watch::Sender<usize>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Gate {
    /// Waits while the gate is closed.
    pub async fn pass(&self) {
        let mut closed = self.closed.subscribe();
        if !*closed.borrow_and_update() {
            return;
        }
        self.waiting.send_modify(|n| *n += 1);
        let _waiting = Waiting(&self.waiting);
        // An error means the sender is gone, i.e. the simulator is shutting down.
        let _ = closed.wait_for(|closed| !*closed).await;
    }

    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    pub fn open(&self) {
        self.closed.send_replace(false);
    }

    pub fn waiting(&self) -> usize {
        *self.waiting.borrow()
    }

    /// Resolves once at least `n` requests wait at the gate.
    pub async fn until_waiting(&self, n: usize) {
        let mut waiting = self.waiting.subscribe();
        let _ = waiting.wait_for(|w| *w >= n).await;
    }
}

/// Holds Graph requests at the gate until released or dropped.
#[derive(Debug)]
pub struct Hold {
    gate: Arc<Gate>,
}

impl Hold {
    pub(crate) fn new(gate: Arc<Gate>) -> Self {
        gate.close();
        Self { gate }
    }

    /// Resolves once at least `n` Graph requests are held.
    pub async fn until_waiting(&self, n: usize) {
        self.gate.until_waiting(n).await;
    }

    /// How many Graph requests are held now.
    pub fn waiting(&self) -> usize {
        self.gate.waiting()
    }

    /// Lets every held request (and later ones) through.
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.gate.open();
    }
}
