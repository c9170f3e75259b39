//! The command line: every flag and subcommand, with the help text operators read.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// What `--help` ends with: the exit codes and where settings come from.
const AFTER_HELP: &str = "\
Settings come from flags, then RETRACT_* environment variables, then the config file
(--config, RETRACT_CONFIG, or ~/.config/retractctl/config.toml), e.g.:
  endpoint = \"https://retract.internal:50051\"
  token_file = \"/run/secrets/retract-token\"
  ca_file = \"/etc/retract/ca.pem\"
  cert_file = \"/etc/retract/client.pem\"   # mTLS
  key_file = \"/etc/retract/client.key\"
  output = \"json\"

Exit codes:
  0  done (a job: SUCCEEDED; a grant: every domain granted)
  1  an unexpected error (INTERNAL, UNKNOWN, a broken stream)
  2  usage: a bad flag or argument, or the server refused a field (INVALID_ARGUMENT, OUT_OF_RANGE)
  3  a job COMPLETED_WITH_ERRORS, or a grant PARTIALLY_SUCCEEDED
  4  a job FAILED or was CANCELLED, or a grant FAILED or EXPIRED
  5  unauthenticated or permission denied (UNAUTHENTICATED, PERMISSION_DENIED, no token)
  6  not found (NOT_FOUND)
  7  refused in this state (FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED)
  8  the server is unreachable or busy (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED)
  9  detached at Ctrl-C: the job keeps running; follow it with `retractctl watch` (`--detach`, asked for, exits 0)

With --output json every result is JSON (the contract's messages in ProtoJSON with proto field
names, defaults included): one object per line for lists and for job events.";

/// Command line for the retract service: tenants, domains and grants, deliveries, the Retract
/// tab, retract jobs with live progress, restores, and the audit trail.
#[derive(Parser)]
#[command(version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Args, Clone)]
#[command(next_help_heading = "Connection and output (every command)")]
pub struct Global {
    /// The server's address [default: http://127.0.0.1:50051].
    #[arg(long, env = "RETRACT_ENDPOINT", global = true)]
    pub endpoint: Option<String>,
    /// The caller token (see `retractctl token`).
    #[arg(long, env = "RETRACT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A file holding the caller token (read at start).
    #[arg(long, env = "RETRACT_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// A PEM certificate authority to trust for an `https://` endpoint instead of the system's
    /// roots (a private CA, like the quickstart's `--tls-ca-file`).
    #[arg(long, env = "RETRACT_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate chain, for a server that requires mTLS.
    #[arg(long, env = "RETRACT_CERT_FILE", global = true, requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `--cert-file`.
    #[arg(long, env = "RETRACT_KEY_FILE", global = true, requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Check the server's certificate for this name instead of the endpoint's host.
    #[arg(long, env = "RETRACT_TLS_DOMAIN_NAME", global = true)]
    pub tls_domain_name: Option<String>,
    /// Deadline of each call, in seconds (streams are not bounded by it) [default: 30].
    #[arg(long, env = "RETRACT_TIMEOUT_S", global = true)]
    pub timeout_s: Option<u64>,
    /// human (tables, progress bars) or json [default: human].
    #[arg(long, short = 'o', env = "RETRACT_OUTPUT", global = true)]
    pub output: Option<OutputFormat>,
    /// The config file [default: ~/.config/retractctl/config.toml, if it exists].
    #[arg(long, env = "RETRACT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// How results are printed.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Tables and progress bars.
    Human,
    /// JSON, one object per line.
    Json,
}

/// What to do on Ctrl-C while following a job.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// Ask whether to cancel the job or detach (detach when stdin is not a terminal).
    Ask,
    /// Cancel the job and follow it to its end.
    Cancel,
    /// Stop following; the job keeps running.
    Detach,
}

/// How a retract removes each copy.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Recoverable (Graph DELETE): restorable.
    Soft,
    /// Purged (Graph permanentDelete): not restorable.
    Hard,
    /// Moved to Deleted Items, where the user still sees it: restorable.
    Move,
}

/// A section of the audit trail.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Tenants.
    Tenants,
    /// Domains and grants.
    Domains,
    /// Retract and restore jobs.
    Retract,
}

/// A job state, as a filter.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a worker.
    Queued,
    /// Being processed.
    Running,
    /// Every target finished without failure.
    Succeeded,
    /// Every target finished; some failed.
    CompletedWithErrors,
    /// Could not run.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// A target's outcome, as a filter.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished yet.
    Unfinished,
    /// Deleted.
    Deleted,
    /// No copy found.
    NotFound,
    /// Already gone.
    AlreadyDeleted,
    /// Dry run: would be deleted.
    WouldDelete,
    /// Failed.
    Failed,
    /// Skipped as ineligible.
    Skipped,
    /// Cancelled.
    Cancelled,
    /// Put back (restore jobs).
    Restored,
}

/// How to follow a job.
#[derive(Args, Clone, Copy)]
pub struct Follow {
    /// What Ctrl-C does while the job is followed.
    #[arg(long, value_enum, default_value_t = OnInterrupt::Ask)]
    pub on_interrupt: OnInterrupt,
}

#[derive(Subcommand)]
pub enum Command {
    /// Prints a development caller token signed with the public development key.
    Token {
        /// `sub` of the token.
        #[arg(long, default_value = "retractctl")]
        subject: String,
        /// `email`: a human administrator's address (omit for a service caller).
        #[arg(long)]
        email: Option<String>,
        /// A tenant the caller may act on (repeat); `*` for every tenant.
        #[arg(long = "tenant", default_value = "*")]
        tenants: Vec<String>,
        /// A permission (repeat); default: all of them.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_s: u64,
    },
    /// Tenants (service callers with `tenants.manage`).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// A tenant's mail domains and their Retract status.
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Grant Permissions: prints the Microsoft consent URL for the administrator's browser;
    /// with --wait, waits for the consent and shows each domain's outcome.
    Grant {
        /// The tenant id.
        tenant_id: String,
        /// Allow linking the tenant to another Microsoft 365 tenant than its current one.
        #[arg(long)]
        allow_relink: bool,
        /// Wait until the administrator has consented (or declined), then show the outcome.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 900)]
        wait_timeout_s: u64,
    },
    /// Re-checks every domain of a tenant against its Microsoft 365 tenant.
    VerifyDomains {
        /// The tenant id.
        tenant_id: String,
    },
    /// Delivered messages, as the gateway records them.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// The Retract tab: who can be retracted for a delivered message, and why not.
    Options {
        /// The tenant id.
        tenant_id: String,
        /// The message's internet message id, e.g. `<abc@mail.example>`.
        message_id: String,
    },
    /// Retracts a delivered message, showing live progress per depth until the job ends.
    Retract(RetractArgs),
    /// Follows a job's progress to its end (resuming after a lost connection).
    Watch {
        /// The tenant id.
        tenant_id: String,
        /// The job id.
        job_id: String,
        /// Start after this event sequence number (0: from the job's start).
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[command(flatten)]
        follow: Follow,
    },
    /// Lists a tenant's jobs, newest first.
    Jobs {
        /// The tenant id.
        tenant_id: String,
        /// Only jobs in this state (repeat for several).
        #[arg(long = "state", value_enum)]
        states: Vec<State>,
        /// Only jobs retracting this internet message id.
        #[arg(long)]
        message_id: Option<String>,
        /// Only jobs requested by this caller (an email or a token subject).
        #[arg(long)]
        requested_by: Option<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Shows one job: state, options, counters, times.
    Job {
        /// The tenant id.
        tenant_id: String,
        /// The job id.
        job_id: String,
    },
    /// The per-recipient table of a job.
    Targets {
        /// The tenant id.
        tenant_id: String,
        /// The job id.
        job_id: String,
        /// Only targets with this outcome (repeat for several).
        #[arg(long = "outcome", value_enum)]
        outcomes: Vec<Outcome>,
        /// Only targets of this depth.
        #[arg(long)]
        depth: Option<i32>,
    },
    /// Cancels a running job; work already done stays done.
    Cancel {
        /// The tenant id.
        tenant_id: String,
        /// The job id.
        job_id: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Undoes a finished SOFT or MOVE retract: puts every copy it removed back, with live
    /// progress.
    Restore {
        /// The tenant id.
        tenant_id: String,
        /// The retract job to undo.
        job_id: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
        /// Idempotency key (a UUID); repeat it to re-attach to the same restore job.
        #[arg(long)]
        request_id: Option<String>,
        #[command(flatten)]
        follow: Follow,
    },
    /// A tenant's audit trail, newest first.
    Audit {
        /// The tenant id.
        tenant_id: String,
        /// Only this section.
        #[arg(long, value_enum)]
        section: Option<Section>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Prints a shell completion script, e.g. `retractctl completions bash > /etc/bash_completion.d/retractctl`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// Lists every tenant.
    List,
    /// Creates a tenant.
    Create {
        /// The tenant id (a-z, 0-9, '-').
        tenant_id: String,
        /// Its display name.
        display_name: String,
    },
    /// Shows one tenant.
    Get {
        /// The tenant id.
        tenant_id: String,
    },
}

#[derive(Subcommand)]
pub enum DomainsCommand {
    /// Lists a tenant's domains with their Retract status (GRANTED, or FAILED with the reason).
    List {
        /// The tenant id.
        tenant_id: String,
    },
    /// Registers a domain for a tenant.
    Add {
        /// The tenant id.
        tenant_id: String,
        /// The domain name.
        domain: String,
    },
    /// Removes a domain from a tenant.
    Remove {
        /// The tenant id.
        tenant_id: String,
        /// The domain name.
        domain: String,
    },
}

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// Finds deliveries, newest first.
    Search {
        /// The tenant id.
        tenant_id: String,
        /// Only this internet message id.
        #[arg(long)]
        message_id: Option<String>,
        /// Only from this sender address.
        #[arg(long)]
        sender: Option<String>,
        /// Only to this recipient address.
        #[arg(long)]
        recipient: Option<String>,
        /// Only subjects containing this text.
        #[arg(long)]
        subject: Option<String>,
        /// Only delivered at or after this time (RFC 3339, e.g. 2026-11-27T10:00:00Z).
        #[arg(long)]
        after: Option<String>,
        /// Only delivered before this time (RFC 3339).
        #[arg(long)]
        before: Option<String>,
        /// At most this many deliveries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `retractctl retract`.
#[derive(Args)]
pub struct RetractArgs {
    /// The tenant id.
    pub tenant_id: String,
    /// The message's internet message id.
    pub message_id: String,
    /// A recipient to retract from (repeat); default: every eligible one.
    #[arg(long = "recipient")]
    pub recipients: Vec<String>,
    /// Also retract replies and forwards inside the managed domains (depth 1 unless --depth).
    #[arg(long)]
    pub conversations: bool,
    /// How many hops of replies and forwards to follow (1-5); implies --conversations.
    #[arg(long, default_value_t = 0)]
    pub depth: i32,
    /// How each copy is removed.
    #[arg(long, value_enum, default_value_t = Mode::Soft)]
    pub mode: Mode,
    /// Find and report only; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip (and report) recipients that are not eligible instead of refusing.
    #[arg(long)]
    pub skip_ineligible: bool,
    /// Also retract the internal sender's Sent Items copy.
    #[arg(long)]
    pub sender_copy: bool,
    /// Why, for the audit trail.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Idempotency key (a UUID); repeat it to re-attach to the same job.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Start the job, print it, and do not follow it.
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub follow: Follow,
}
