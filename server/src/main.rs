//! `retract-server`: loads settings, installs logging (and trace export), and serves until
//! SIGINT or SIGTERM ([`retract_server::startup::run_from_environment`]).

/// mimalloc: thread-local heaps for the many small allocations of a job in flight (glibc's
/// malloc cost a fifth of the engine's CPU at 4,000 mailboxes, issue #13).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    retract_server::startup::run_from_environment().await?;
    Ok(())
}
