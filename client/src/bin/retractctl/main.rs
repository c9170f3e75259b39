//! `retractctl`: the operator's command line for retract, on the `retract-client` crate —
//! tenants, domains and grants, deliveries, the Retract tab, retract jobs with live progress
//! bars, watch/jobs/targets/cancel/restore, the audit trail; `--output json` everywhere.
//!
//! # Layout
//! - `args`: the flags and subcommands (`--help` documents the exit codes).
//! - `settings`: flags → environment → config file → defaults, and the connection.
//! - `commands`: one function per subcommand.
//! - `progress`: following a job (bars per depth, Ctrl-C).
//! - `output`: ProtoJSON lines and tables.

mod args;
mod commands;
mod output;
mod progress;
mod settings;

use std::process::ExitCode;

use clap::Parser as _;
use retract_client::Code;

/// Prints a line on stdout; a closed stdout (`retractctl … | head`) ends the program quietly.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::write_line(format_args!($($arg)*)) };
}

/// The body of [`say!`].
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write to stdout: {e}");
        std::process::exit(Exit::Unexpected as i32);
    }
}

/// What `retractctl` exits with (documented in `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Unexpected = 1,
    Usage = 2,
    CompletedWithErrors = 3,
    FailedOrCancelled = 4,
    Denied = 5,
    NotFound = 6,
    Refused = 7,
    Unavailable = 8,
    Detached = 9,
}

impl Exit {
    /// The exit code an error amounts to.
    fn of(err: &anyhow::Error) -> Self {
        if let Some(settings::Problem::Usage(_)) = err.downcast_ref() {
            return Self::Usage;
        }
        if let Some(settings::Problem::NoToken) = err.downcast_ref() {
            return Self::Denied;
        }
        let Some(err) = err.downcast_ref::<retract_client::Error>() else {
            return Self::Unexpected;
        };
        match err.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::Usage,
            Code::Unauthenticated | Code::PermissionDenied => Self::Denied,
            Code::NotFound => Self::NotFound,
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => Self::Refused,
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                Self::Unavailable
            }
            _ => Self::Unexpected,
        }
    }
}

/// Prints `err` on stderr: as a JSON object with `--output json`, else as text with each
/// invalid field on its own line.
fn report(err: &anyhow::Error, json: bool) {
    let api = err
        .downcast_ref::<retract_client::Error>()
        .and_then(retract_client::Error::api);
    if json {
        let value = match api {
            Some(api) => serde_json::json!({ "error": {
                "code": api.code().to_string(),
                "reason": api.reason(),
                "message": api.message(),
                "field_violations": api.field_violations().iter()
                    .map(|v| serde_json::json!({ "field": v.field, "description": v.description }))
                    .collect::<Vec<_>>(),
            }}),
            None => serde_json::json!({ "error": { "message": format!("{err:#}") } }),
        };
        eprintln!("{value}");
        return;
    }
    match api {
        Some(api) => {
            let code = api.code().to_string();
            let reason = api
                .reason()
                .filter(|r| *r != code)
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            eprintln!("error: {code}{reason}: {}", api.message());
            for v in api.field_violations() {
                eprintln!("  {}: {}", v.field, v.description);
            }
        }
        None => eprintln!("error: {err:#}"),
    }
}

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let settings = match settings::Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(err) => {
            report(&err, cli.global.output == Some(args::OutputFormat::Json));
            return ExitCode::from(Exit::of(&err) as u8);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(Exit::Unexpected as u8);
        }
    };
    let exit = match runtime.block_on(commands::run(cli.command, &settings)) {
        Ok(exit) => exit,
        Err(err) => {
            report(&err, settings.output.json());
            Exit::of(&err)
        }
    };
    // A Ctrl-C prompt may still be reading stdin on a blocking thread: do not wait for it.
    runtime.shutdown_background();
    ExitCode::from(exit as u8)
}
