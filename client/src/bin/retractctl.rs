//! `retractctl`: a small command line for retract — mint a development token, manage tenants
//! and domains, read the audit trail.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use retract_client::{Client, DevToken, pb};

/// Command line for the retract service.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The server's address.
    #[arg(
        long,
        env = "RETRACT_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    endpoint: String,
    /// A PEM certificate authority to trust for an `https://` endpoint (a private CA, like
    /// the quickstart's `--tls-ca-file`).
    #[arg(long, env = "RETRACT_CA_FILE", global = true)]
    ca_file: Option<std::path::PathBuf>,
    /// The caller token (see `retractctl token`).
    #[arg(long, env = "RETRACT_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Creates a tenant.
    CreateTenant {
        /// The tenant id (a-z, 0-9, '-').
        tenant_id: String,
        /// Its display name.
        display_name: String,
    },
    /// Lists tenants.
    ListTenants,
    /// Registers a domain for a tenant.
    AddDomain {
        /// The tenant id.
        tenant_id: String,
        /// The domain name.
        domain: String,
    },
    /// Removes a domain from a tenant.
    RemoveDomain {
        /// The tenant id.
        tenant_id: String,
        /// The domain name.
        domain: String,
    },
    /// Lists a tenant's domains with their retract status.
    ListDomains {
        /// The tenant id.
        tenant_id: String,
    },
    /// Shows who can be retracted for a delivered message (the Retract tab).
    Options {
        /// The tenant id.
        tenant_id: String,
        /// The message's internet message id, e.g. `<abc@mail.example>`.
        message_id: String,
    },
    /// Retracts a delivered message and streams each mailbox's progress to the end.
    Retract {
        /// The tenant id.
        tenant_id: String,
        /// The message's internet message id.
        message_id: String,
        /// A recipient to retract from (repeat); default: every eligible one.
        #[arg(long = "recipient")]
        recipients: Vec<String>,
        /// soft (recoverable), hard (purged) or move (to Deleted Items).
        #[arg(long, default_value = "soft")]
        mode: String,
        /// Find and report only; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also retract replies and forwards inside the managed domains, this many hops deep
        /// (1-5); 0 follows none.
        #[arg(long, default_value_t = 0)]
        depth: i32,
        /// Also retract the internal sender's Sent Items copy.
        #[arg(long)]
        sender_copy: bool,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
        /// Idempotency key (a UUID); repeat it to re-attach to the same job.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Lists a tenant's audit events, newest first.
    Audit {
        /// The tenant id.
        tenant_id: String,
        /// Only this section: tenants, domains or retract.
        #[arg(long)]
        section: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Token {
        subject,
        email,
        tenants,
        permissions,
        ttl_s,
    } = &cli.command
    {
        let mut token = DevToken::service(subject).valid_for(Duration::from_secs(*ttl_s));
        token.email.clone_from(email);
        token.tenants.clone_from(tenants);
        token = if permissions.is_empty() {
            token.all_permissions()
        } else {
            permissions.iter().fold(token, |t, p| t.permission(p))
        };
        println!("{}", token.mint()?);
        return Ok(());
    }
    let token = cli
        .token
        .context("no caller token: pass --token or set RETRACT_TOKEN (try `retractctl token`)")?;
    let ca = match &cli.ca_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let client = Client::connect_trusting(cli.endpoint.clone(), ca.as_deref())
        .await
        .with_context(|| format!("cannot connect to {}", cli.endpoint))?
        .with_token(&token)?;
    run(&client, cli.command).await
}

async fn run(client: &Client, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Token { .. } => unreachable!("handled before connecting"),
        Command::CreateTenant {
            tenant_id,
            display_name,
        } => {
            let tenant = client
                .tenants()
                .create_tenant(pb::CreateTenantRequest {
                    tenant_id,
                    display_name,
                })
                .await?
                .into_inner()
                .tenant
                .unwrap_or_default();
            println!(
                "created tenant {} ({})",
                tenant.tenant_id, tenant.display_name
            );
        }
        Command::ListTenants => {
            let mut page_token = String::new();
            loop {
                let page = client
                    .tenants()
                    .list_tenants(pb::ListTenantsRequest {
                        page_size: 1000,
                        page_token,
                    })
                    .await?
                    .into_inner();
                for t in page.tenants {
                    println!(
                        "{}\t{}\t{}",
                        t.tenant_id, t.display_name, t.microsoft_tenant_id
                    );
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
        }
        Command::AddDomain { tenant_id, domain } => {
            let d = client
                .tenants()
                .add_domain(pb::AddDomainRequest { tenant_id, domain })
                .await?
                .into_inner()
                .domain
                .unwrap_or_default();
            println!("added {} ({})", d.name, d.retract_status().as_str_name());
        }
        Command::RemoveDomain { tenant_id, domain } => {
            let d = client
                .tenants()
                .remove_domain(pb::RemoveDomainRequest { tenant_id, domain })
                .await?
                .into_inner()
                .domain
                .unwrap_or_default();
            println!("removed {}", d.name);
        }
        Command::ListDomains { tenant_id } => {
            let mut page_token = String::new();
            loop {
                let page = client
                    .tenants()
                    .list_domains(pb::ListDomainsRequest {
                        tenant_id: tenant_id.clone(),
                        page_size: 1000,
                        page_token,
                    })
                    .await?
                    .into_inner();
                for d in page.domains {
                    println!(
                        "{}\t{}\t{}",
                        d.name,
                        d.retract_status().as_str_name(),
                        d.status_detail
                    );
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
        }
        Command::Options {
            tenant_id,
            message_id,
        } => {
            let options = client
                .retract()
                .get_retract_options(pb::GetRetractOptionsRequest {
                    tenant_id,
                    internet_message_id: message_id,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for r in options.recipients {
                println!(
                    "{}\t{}\t{}",
                    r.address,
                    r.eligibility().as_str_name(),
                    r.detail
                );
            }
        }
        Command::Retract {
            tenant_id,
            message_id,
            recipients,
            mode,
            dry_run,
            depth,
            sender_copy,
            reason,
            request_id,
        } => {
            let delete_mode = match mode.as_str() {
                "soft" => pb::DeleteMode::Soft,
                "hard" => pb::DeleteMode::Hard,
                "move" => pb::DeleteMode::MoveToDeletedItems,
                other => anyhow::bail!("unknown mode {other:?}: soft, hard or move"),
            };
            let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let mut events = client
                .retract()
                .retract(pb::RetractRequest {
                    tenant_id,
                    options: Some(pb::RetractOptions {
                        internet_message_id: message_id,
                        recipients,
                        delete_mode: delete_mode.into(),
                        dry_run,
                        include_conversations: depth > 0,
                        conversation_depth: depth,
                        include_sender_copy: sender_copy,
                        reason,
                        ..Default::default()
                    }),
                    request_id: request_id.clone(),
                })
                .await?
                .into_inner();
            println!("request id {request_id}");
            while let Some(item) = events.message().await? {
                let Some(event) = item.event else { continue };
                match event.kind {
                    Some(pb::retract_event::Kind::JobStarted(s)) => {
                        let job = s.job.unwrap_or_default();
                        println!(
                            "#{} job {} started: {} mailboxes",
                            event.sequence,
                            job.job_id,
                            s.targets.len()
                        );
                    }
                    Some(pb::retract_event::Kind::RecipientUpdate(u))
                        if u.phase() == pb::RecipientPhase::Done =>
                    {
                        println!(
                            "#{} {}\t{}\tcopies {}/{}{}{}",
                            event.sequence,
                            u.mailbox,
                            u.outcome().as_str_name(),
                            u.copies_deleted_count,
                            u.copies_found_count,
                            if u.was_read { "\tread" } else { "" },
                            if u.detail.is_empty() {
                                String::new()
                            } else {
                                format!("\t{}", u.detail)
                            },
                        );
                    }
                    Some(pb::retract_event::Kind::ConversationUpdate(c)) => {
                        let discovered: Vec<String> = c
                            .discovered
                            .iter()
                            .map(|d| format!("{} (hop {})", d.mailbox, d.hop))
                            .collect();
                        let unfollowed: Vec<String> = c
                            .unfollowed
                            .iter()
                            .map(|u| format!("{} ({})", u.address, u.code))
                            .collect();
                        println!(
                            "#{} depth {} {}\tconversation: {} found, {} retracted, {} left{}{}",
                            event.sequence,
                            c.depth,
                            c.mailbox,
                            c.messages_found_count,
                            c.messages_retracted_count,
                            c.messages_left_count,
                            if discovered.is_empty() {
                                String::new()
                            } else {
                                format!("\tnext: {}", discovered.join(", "))
                            },
                            if unfollowed.is_empty() {
                                String::new()
                            } else {
                                format!("\tnot followed: {}", unfollowed.join(", "))
                            },
                        );
                    }
                    Some(pb::retract_event::Kind::JobFinished(f)) => {
                        println!(
                            "#{} finished {}: {}",
                            event.sequence,
                            f.state().as_str_name(),
                            f.detail
                        );
                        break;
                    }
                    _ => {}
                }
            }
        }
        Command::Audit { tenant_id, section } => {
            let section = match section.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => pb::AuditSection::Unspecified,
                Some("tenants") => pb::AuditSection::Tenants,
                Some("domains") => pb::AuditSection::Domains,
                Some("retract") => pb::AuditSection::Retract,
                Some(other) => {
                    anyhow::bail!("unknown section {other:?}: tenants, domains or retract")
                }
            };
            let page = client
                .audit()
                .list_audit_events(pb::ListAuditEventsRequest {
                    tenant_id,
                    section: section.into(),
                    page_size: 100,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for e in page.events {
                let when = e.occur_time.map(|t| t.seconds).unwrap_or_default();
                println!(
                    "{}\t{when}\t{}\t{}\t{}\t{}\t{}",
                    e.event_id,
                    e.section().as_str_name(),
                    e.action,
                    e.actor,
                    e.target,
                    e.outcome().as_str_name()
                );
            }
        }
    }
    Ok(())
}
