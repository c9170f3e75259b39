//! The server as a process: what `retract-server`'s `main` does, here so that anything
//! linking the library (the bench starts the server as its own process from its own binary)
//! runs exactly the same thing.

use crate::{Application, Settings, StartupError, config::ConfigError, telemetry};

/// Why the server process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings do not load.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// Trace export cannot start.
    #[error("cannot export traces: {0}")]
    Traces(String),
    /// The server cannot start, or failed while serving.
    #[error(transparent)]
    Startup(#[from] StartupError),
}

/// Loads settings (defaults, TOML, `RETRACT_*`, flags), installs logging (and trace export),
/// and serves until SIGINT or SIGTERM.
///
/// # Errors
/// Settings that do not load, a server that cannot start, or a failure while serving.
pub async fn run_from_environment() -> Result<(), RunError> {
    let huge_pages = without_transparent_huge_pages();
    let settings = Settings::load()?;
    // Kept until the end: dropping it sends the spans still buffered.
    let traces = settings
        .otlp_endpoint
        .as_deref()
        .map(telemetry::Tracing::new)
        .transpose()
        .map_err(RunError::Traces)?;
    telemetry::init(settings.log_format, &settings.log_filter, traces.as_ref());
    if let Err(err) = huge_pages {
        tracing::warn!(%err, "transparent huge pages stay as the system sets them");
    }
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Turns transparent huge pages off for this process (and any child it would start), before
/// it holds much memory.
///
/// mimalloc marks its arenas for huge pages (and a system set to `always` would use them
/// anyway): each 2 MiB piece of an arena touched at all is then faulted in, and zeroed, whole.
/// At the peak of a 10,000-mailbox job 62 of the server's 135 MiB of anonymous memory were
/// such pages (`AnonHugePages` in `/proc/<pid>/smaps_rollup`). Elsewhere than Linux there is
/// nothing to turn off.
fn without_transparent_huge_pages() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::set_thp_disable(true).map_err(|e| e.to_string())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(())
    }
}
