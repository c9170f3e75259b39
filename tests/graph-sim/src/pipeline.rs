//! Latency and fault injection shared by the Graph and identity handlers.

use crate::core::Sim;
use crate::faults::FaultPlan;
use crate::record::{CallSlot, Fault};
use crate::server::ConnKill;
use crate::settings::Endpoint;

/// Sleeps the injected latency of `endpoint`, then draws its faults. The fault (if any) is noted
/// in `slot`; the caller answers it in its own service's shape.
pub async fn delay_and_draw(sim: &Sim, endpoint: Endpoint, slot: &CallSlot) -> Option<Fault> {
    let (latency, plan) = {
        let settings = sim.settings.read();
        let plan = if settings.faults.applies_to(endpoint) {
            sim.chaos.plan(&settings.faults)
        } else {
            FaultPlan::default()
        };
        (settings.latency.for_endpoint(endpoint), plan)
    };
    if !latency.is_zero() {
        tokio::time::sleep(sim.chaos.delay(latency)).await;
    }
    let mut info = slot.lock();
    if plan.slow_body {
        info.slow_body = true;
        info.fault = Some(Fault::SlowBody);
    }
    if plan.fault.is_some() {
        info.fault = plan.fault;
    }
    plan.fault
}

/// Drops the connection and never returns, when the request has a connection of its own;
/// returns at once for `$batch` sub-requests, which the caller then fails with a 500.
pub async fn drop_connection(kill: Option<&ConnKill>) {
    if let Some(kill) = kill {
        kill.trigger();
        std::future::pending::<()>().await;
    }
}
