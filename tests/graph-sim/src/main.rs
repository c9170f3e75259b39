//! `graph-sim`: runs the simulator from a JSON fixture until interrupted.
//!
//! ```text
//! graph-sim --fixture tests/graph-sim/sdk/fixture.json --port 8090 [--login-port 8091] [--settings s.json]
//! ```
//!
//! Prints one line `graph-sim graph=http://127.0.0.1:P login=http://127.0.0.1:Q` when ready.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use graph_sim::{GraphSim, Settings};

#[derive(Parser, Debug)]
#[command(about = "Microsoft Graph and identity-platform simulator (127.0.0.1 only)")]
struct Args {
    /// JSON fixture (see graph_sim::seed::Fixture).
    #[arg(long)]
    fixture: Option<PathBuf>,
    /// JSON settings (see graph_sim::Settings).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Graph port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Identity-platform port; without it both are served on --port.
    #[arg(long)]
    login_port: Option<u16>,
    /// Seed for fault draws and jitter.
    #[arg(long)]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let mut builder = GraphSim::builder();
    if let Some(path) = &args.fixture {
        builder = builder
            .fixture_file(path)
            .with_context(|| format!("loading {}", path.display()))?;
    }
    if let Some(path) = &args.settings {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let settings: Settings =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        builder = builder.settings(settings);
    }
    if let Some(seed) = args.seed {
        builder = builder.rng_seed(seed);
    }
    let sim = match args.login_port {
        Some(login_port) => builder.start_on(args.port, login_port).await?,
        None => builder.single_port().start_on(args.port, 0).await?,
    };
    println!(
        "graph-sim graph={} login={}",
        sim.graph_base_url(),
        sim.login_base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
