//! One function per subcommand: call through [`Client`], print with [`Output`], say how it
//! ended with an [`Exit`].

use std::time::{Duration, Instant};

use clap::CommandFactory as _;
use retract_client::{Client, DevToken, pb};

use crate::{
    Exit,
    args::{
        Cli, Command, DeliveriesCommand, DomainsCommand, Mode, Outcome, RetractArgs, Section,
        State, TenantsCommand,
    },
    output::{Output, parse_time, short, time},
    progress::{follow, state_name},
    settings::{Problem, Settings},
};

/// Runs `command`.
pub async fn run(command: Command, settings: &Settings) -> anyhow::Result<Exit> {
    let out = settings.output;
    match command {
        Command::Token {
            subject,
            email,
            tenants,
            permissions,
            ttl_s,
        } => {
            let mut token = DevToken::service(&subject).valid_for(Duration::from_secs(ttl_s));
            token.email = email;
            token.tenants = tenants;
            token = if permissions.is_empty() {
                token.all_permissions()
            } else {
                permissions.iter().fold(token, |t, p| t.permission(p))
            };
            crate::say!("{}", token.mint()?);
            Ok(Exit::Ok)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "retractctl",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
        command => {
            let client = settings.connect()?;
            call(&client, out, command).await
        }
    }
}

async fn call(client: &Client, out: Output, command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Token { .. } | Command::Completions { .. } => Ok(Exit::Ok),
        Command::Tenants(c) => tenants(client, out, c).await,
        Command::Domains(c) => domains(client, out, c).await,
        Command::Grant {
            tenant_id,
            allow_relink,
            wait,
            wait_timeout_s,
        } => {
            grant(
                client,
                out,
                tenant_id,
                allow_relink,
                wait.then(|| Duration::from_secs(wait_timeout_s)),
            )
            .await
        }
        Command::VerifyDomains { tenant_id } => {
            let domains = client
                .verify_domains(pb::VerifyDomainsRequest { tenant_id })
                .await?
                .domains;
            print_domains(out, &domains);
            Ok(Exit::Ok)
        }
        Command::Deliveries(DeliveriesCommand::Search {
            tenant_id,
            message_id,
            sender,
            recipient,
            subject,
            after,
            before,
            limit,
        }) => {
            let request = pb::SearchDeliveriesRequest {
                tenant_id,
                internet_message_id: message_id.unwrap_or_default(),
                sender: sender.unwrap_or_default(),
                recipient: recipient.unwrap_or_default(),
                subject_contains: subject.unwrap_or_default(),
                delivery_after: after
                    .as_deref()
                    .map(parse_time)
                    .transpose()
                    .map_err(Problem::Usage)?,
                delivery_before: before
                    .as_deref()
                    .map(parse_time)
                    .transpose()
                    .map_err(Problem::Usage)?,
                ..Default::default()
            };
            search(client, out, request, limit).await
        }
        Command::Options {
            tenant_id,
            message_id,
        } => options(client, out, tenant_id, message_id).await,
        Command::Retract(args) => retract(client, out, args).await,
        Command::Watch {
            tenant_id,
            job_id,
            after,
            follow: f,
        } => {
            let events = client.watch(tenant_id.clone(), job_id, after);
            follow(client, out, &tenant_id, events, f.on_interrupt).await
        }
        Command::Jobs {
            tenant_id,
            states,
            message_id,
            requested_by,
            limit,
        } => {
            let request = pb::ListRetractJobsRequest {
                tenant_id,
                states: states.into_iter().map(|s| job_state(s) as i32).collect(),
                requested_by: requested_by.unwrap_or_default(),
                internet_message_id: message_id.unwrap_or_default(),
                ..Default::default()
            };
            jobs(client, out, request, limit).await
        }
        Command::Job { tenant_id, job_id } => {
            let job = client
                .get_retract_job(pb::GetRetractJobRequest { tenant_id, job_id })
                .await?
                .job
                .unwrap_or_default();
            print_job(out, &job);
            Ok(Exit::Ok)
        }
        Command::Targets {
            tenant_id,
            job_id,
            outcomes,
            depth,
        } => {
            let request = pb::ListRetractTargetsRequest {
                tenant_id,
                job_id,
                outcomes: outcomes.into_iter().map(|o| outcome(o) as i32).collect(),
                depth,
                ..Default::default()
            };
            targets(client, out, request).await
        }
        Command::Cancel {
            tenant_id,
            job_id,
            reason,
        } => {
            let job = client
                .cancel_retract_job(pb::CancelRetractJobRequest {
                    tenant_id,
                    job_id,
                    reason,
                })
                .await?
                .job
                .unwrap_or_default();
            if out.json() {
                out.line(&job, "RetractJob");
            } else {
                crate::say!(
                    "cancellation asked for job {} (now {})",
                    job.job_id,
                    state_name(job.state())
                );
            }
            Ok(Exit::Ok)
        }
        Command::Restore {
            tenant_id,
            job_id,
            reason,
            request_id,
            follow: f,
        } => {
            let events = client.restore(pb::RestoreRetractJobRequest {
                tenant_id: tenant_id.clone(),
                job_id,
                request_id: request_id.unwrap_or_default(),
                reason,
            });
            follow(client, out, &tenant_id, events, f.on_interrupt).await
        }
        Command::Audit {
            tenant_id,
            section,
            limit,
        } => audit(client, out, tenant_id, section, limit).await,
    }
}

/// Pages through a list RPC: `fetch(page_token)` → (items, next token), up to `limit` items.
async fn all_pages<T, F, Fut>(limit: usize, mut fetch: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(String, i32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), retract_client::Error>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let want = i32::try_from(limit.saturating_sub(items.len()).min(1000)).unwrap_or(1000);
        let (page, next) = fetch(token, want).await?;
        items.extend(page);
        if next.is_empty() || items.len() >= limit {
            items.truncate(limit);
            return Ok(items);
        }
        token = next;
    }
}

async fn tenants(client: &Client, out: Output, command: TenantsCommand) -> anyhow::Result<Exit> {
    let list = match command {
        TenantsCommand::List => {
            all_pages(usize::MAX, |page_token, page_size| async move {
                let r = client
                    .list_tenants(pb::ListTenantsRequest {
                        page_size,
                        page_token,
                    })
                    .await?;
                Ok((r.tenants, r.next_page_token))
            })
            .await?
        }
        TenantsCommand::Create {
            tenant_id,
            display_name,
        } => client
            .create_tenant(pb::CreateTenantRequest {
                tenant_id,
                display_name,
            })
            .await?
            .tenant
            .into_iter()
            .collect(),
        TenantsCommand::Get { tenant_id } => client
            .get_tenant(pb::GetTenantRequest { tenant_id })
            .await?
            .tenant
            .into_iter()
            .collect(),
    };
    if out.json() {
        list.iter().for_each(|t| out.line(t, "Tenant"));
    } else {
        let rows = list
            .iter()
            .map(|t| {
                vec![
                    t.tenant_id.clone(),
                    t.display_name.clone(),
                    or_dash(&t.microsoft_tenant_id),
                ]
            })
            .collect();
        out.table(&["TENANT", "NAME", "MICROSOFT TENANT"], rows);
    }
    Ok(Exit::Ok)
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.to_owned()
    }
}

fn print_domains(out: Output, domains: &[pb::Domain]) {
    if out.json() {
        domains.iter().for_each(|d| out.line(d, "Domain"));
        return;
    }
    let rows = domains
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                short(d.retract_status().as_str_name(), "RETRACT_STATUS_"),
                or_dash(&d.status_detail),
                time(d.last_check_time.as_ref()),
            ]
        })
        .collect();
    out.table(
        &["DOMAIN", "RETRACT STATUS", "REASON", "LAST CHECKED"],
        rows,
    );
}

async fn domains(client: &Client, out: Output, command: DomainsCommand) -> anyhow::Result<Exit> {
    let list = match command {
        DomainsCommand::List { tenant_id } => {
            all_pages(usize::MAX, |page_token, page_size| {
                let tenant_id = tenant_id.clone();
                async move {
                    let r = client
                        .list_domains(pb::ListDomainsRequest {
                            tenant_id,
                            page_size,
                            page_token,
                        })
                        .await?;
                    Ok((r.domains, r.next_page_token))
                }
            })
            .await?
        }
        DomainsCommand::Add { tenant_id, domain } => client
            .add_domain(pb::AddDomainRequest { tenant_id, domain })
            .await?
            .domain
            .into_iter()
            .collect(),
        DomainsCommand::Remove { tenant_id, domain } => client
            .remove_domain(pb::RemoveDomainRequest { tenant_id, domain })
            .await?
            .domain
            .into_iter()
            .collect(),
    };
    print_domains(out, &list);
    Ok(Exit::Ok)
}

async fn grant(
    client: &Client,
    out: Output,
    tenant_id: String,
    allow_relink: bool,
    wait: Option<Duration>,
) -> anyhow::Result<Exit> {
    let started = client
        .start_grant(pb::StartGrantRequest {
            tenant_id: tenant_id.clone(),
            allow_relink,
        })
        .await?;
    let mut grant = started.grant.unwrap_or_default();
    if out.json() {
        crate::say!(
            "{}",
            serde_json::json!({
                "consent_url": started.consent_url,
                "grant": crate::output::to_json(&grant, "Grant"),
            })
        );
    } else {
        crate::say!("Open this consent URL in the administrator's browser:");
        crate::say!("  {}", started.consent_url);
        crate::say!(
            "grant {} expires {}",
            grant.grant_id,
            time(grant.expire_time.as_ref())
        );
    }
    let Some(limit) = wait else {
        return Ok(Exit::Ok);
    };
    let until = Instant::now() + limit;
    let mut interrupts = crate::progress::Interrupts::new()?;
    if !out.json() {
        eprintln!(
            "waiting for the administrator's consent (Ctrl-C stops waiting; the link stays valid)…"
        );
    }
    while grant.state() == pb::GrantState::AwaitingConsent {
        if Instant::now() >= until {
            anyhow::bail!(retract_client::Error::from(tonic_deadline(&grant.grant_id)));
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = interrupts.recv() => return Ok(Exit::Detached),
        }
        grant = client
            .get_grant(pb::GetGrantRequest {
                tenant_id: tenant_id.clone(),
                grant_id: grant.grant_id.clone(),
            })
            .await?
            .grant
            .unwrap_or_default();
    }
    if out.json() {
        out.line(&grant, "Grant");
    } else {
        crate::say!(
            "grant {}: {}",
            grant.grant_id,
            short(grant.state().as_str_name(), "GRANT_STATE_")
        );
        if !grant.error.is_empty() {
            crate::say!("  {}: {}", grant.error, grant.error_description);
        }
        let rows = grant
            .domain_outcomes
            .iter()
            .map(|d| {
                vec![
                    d.domain.clone(),
                    short(d.retract_status().as_str_name(), "RETRACT_STATUS_"),
                    or_dash(&d.detail),
                ]
            })
            .collect();
        out.table(&["DOMAIN", "RETRACT STATUS", "REASON"], rows);
    }
    Ok(match grant.state() {
        pb::GrantState::Succeeded => Exit::Ok,
        pb::GrantState::PartiallySucceeded => Exit::CompletedWithErrors,
        _ => Exit::FailedOrCancelled,
    })
}

/// The error of a `--wait` that ran out of time.
fn tonic_deadline(grant_id: &str) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!(
        "grant {grant_id}: no consent before --wait-timeout-s; the link stays valid until it expires"
    ))
}

async fn search(
    client: &Client,
    out: Output,
    request: pb::SearchDeliveriesRequest,
    limit: usize,
) -> anyhow::Result<Exit> {
    let list = all_pages(limit, |page_token, page_size| {
        let request = pb::SearchDeliveriesRequest {
            page_token,
            page_size,
            ..request.clone()
        };
        async move {
            let r = client.search_deliveries(request).await?;
            Ok((r.deliveries, r.next_page_token))
        }
    })
    .await?;
    if out.json() {
        list.iter().for_each(|d| out.line(d, "Delivery"));
    } else {
        let rows = list
            .iter()
            .map(|d| {
                vec![
                    d.internet_message_id.clone(),
                    d.sender.clone(),
                    d.subject.clone(),
                    time(d.delivery_time.as_ref()),
                    d.recipients.len().to_string(),
                ]
            })
            .collect();
        out.table(
            &["MESSAGE ID", "SENDER", "SUBJECT", "DELIVERED", "RECIPIENTS"],
            rows,
        );
    }
    Ok(Exit::Ok)
}

async fn options(
    client: &Client,
    out: Output,
    tenant_id: String,
    message_id: String,
) -> anyhow::Result<Exit> {
    let mut first: Option<pb::GetRetractOptionsResponse> = None;
    let mut recipients = Vec::new();
    let mut page_token = String::new();
    loop {
        let mut r = client
            .get_retract_options(pb::GetRetractOptionsRequest {
                tenant_id: tenant_id.clone(),
                internet_message_id: message_id.clone(),
                page_size: 1000,
                page_token,
            })
            .await?;
        recipients.append(&mut r.recipients);
        page_token = std::mem::take(&mut r.next_page_token);
        first.get_or_insert(r);
        if page_token.is_empty() {
            break;
        }
    }
    let mut tab = first.unwrap_or_default();
    if out.json() {
        tab.recipients = recipients;
        tab.next_page_token.clear();
        out.line(&tab, "GetRetractOptionsResponse");
        return Ok(Exit::Ok);
    }
    let d = tab.delivery.unwrap_or_default();
    crate::say!(
        "{}  from {}  delivered {}",
        d.internet_message_id,
        d.sender,
        time(d.delivery_time.as_ref())
    );
    crate::say!("subject: {}", d.subject);
    let can = tab.caller_can_retract.unwrap_or_default();
    if can.allowed {
        crate::say!("you can retract: yes");
    } else {
        crate::say!("you can retract: no ({}: {})", can.code, can.detail);
    }
    if tab.conversations_available {
        crate::say!(
            "conversations: available, up to depth {}",
            tab.max_conversation_depth
        );
    } else {
        crate::say!("conversations: not available");
    }
    let rows = recipients
        .iter()
        .map(|r| {
            let last = r.last_retract.as_ref().map_or_else(
                || "-".to_owned(),
                |l| {
                    format!(
                        "{} {}",
                        l.job_id,
                        l.outcome
                            .map(|_| short(l.outcome().as_str_name(), "RECIPIENT_OUTCOME_"))
                            .unwrap_or_else(|| "running".into())
                    )
                },
            );
            vec![
                r.address.clone(),
                short(r.eligibility().as_str_name(), "ELIGIBILITY_"),
                or_dash(&r.detail),
                last,
                if r.delivered_after_last_retract {
                    "yes".into()
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    out.table(
        &[
            "RECIPIENT",
            "ELIGIBILITY",
            "DETAIL",
            "LAST RETRACT",
            "DELIVERED AGAIN",
        ],
        rows,
    );
    Ok(Exit::Ok)
}

async fn retract(client: &Client, out: Output, args: RetractArgs) -> anyhow::Result<Exit> {
    let include_conversations = args.conversations || args.depth > 0;
    let options = pb::RetractOptions {
        internet_message_id: args.message_id,
        recipients: args.recipients,
        include_conversations,
        conversation_depth: args.depth,
        delete_mode: match args.mode {
            Mode::Soft => pb::DeleteMode::Soft,
            Mode::Hard => pb::DeleteMode::Hard,
            Mode::Move => pb::DeleteMode::MoveToDeletedItems,
        }
        .into(),
        dry_run: args.dry_run,
        skip_ineligible: args.skip_ineligible,
        include_sender_copy: args.sender_copy,
        reason: args.reason,
    };
    let request_id = args
        .request_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if args.detach {
        let job = client
            .start_retract(pb::StartRetractRequest {
                tenant_id: args.tenant_id.clone(),
                options: Some(options),
                request_id,
            })
            .await?
            .job
            .unwrap_or_default();
        if out.json() {
            out.line(&job, "RetractJob");
        } else {
            crate::say!("job {} {}", job.job_id, state_name(job.state()));
            crate::say!(
                "follow it with: retractctl watch {} {}",
                args.tenant_id,
                job.job_id
            );
        }
        return Ok(Exit::Ok);
    }
    if !out.json() {
        crate::say!("request id {request_id}");
    }
    let events = client.retract(pb::RetractRequest {
        tenant_id: args.tenant_id.clone(),
        options: Some(options),
        request_id,
    });
    follow(
        client,
        out,
        &args.tenant_id,
        events,
        args.follow.on_interrupt,
    )
    .await
}

async fn jobs(
    client: &Client,
    out: Output,
    request: pb::ListRetractJobsRequest,
    limit: usize,
) -> anyhow::Result<Exit> {
    let list = all_pages(limit, |page_token, page_size| {
        let request = pb::ListRetractJobsRequest {
            page_token,
            page_size,
            ..request.clone()
        };
        async move {
            let r = client.list_retract_jobs(request).await?;
            Ok((r.jobs, r.next_page_token))
        }
    })
    .await?;
    if out.json() {
        list.iter().for_each(|j| out.line(j, "RetractJob"));
        return Ok(Exit::Ok);
    }
    let rows = list
        .iter()
        .map(|j| {
            let counts = j.counts.unwrap_or_default();
            let options = j.options.clone().unwrap_or_default();
            vec![
                j.job_id.clone(),
                short(j.kind().as_str_name(), "JOB_KIND_"),
                state_name(j.state()),
                options.internet_message_id,
                j.requested_by.clone(),
                time(j.create_time.as_ref()),
                format!("{}/{}", counts.done_count, counts.target_count),
            ]
        })
        .collect();
    out.table(
        &[
            "JOB",
            "KIND",
            "STATE",
            "MESSAGE",
            "REQUESTED BY",
            "CREATED",
            "DONE",
        ],
        rows,
    );
    Ok(Exit::Ok)
}

fn print_job(out: Output, job: &pb::RetractJob) {
    if out.json() {
        out.line(job, "RetractJob");
        return;
    }
    let options = job.options.clone().unwrap_or_default();
    let counts = job.counts.unwrap_or_default();
    let mode = short(options.delete_mode().as_str_name(), "DELETE_MODE_");
    let lines = [
        ("job", job.job_id.clone()),
        ("kind", short(job.kind().as_str_name(), "JOB_KIND_")),
        ("state", state_name(job.state())),
        ("message", options.internet_message_id.clone()),
        (
            "mode",
            if options.dry_run {
                format!("{mode} (dry run)")
            } else {
                mode
            },
        ),
        (
            "conversations",
            if options.include_conversations {
                format!("depth {}", options.conversation_depth.max(1))
            } else {
                "no".into()
            },
        ),
        ("reason", or_dash(&options.reason)),
        ("requested by", job.requested_by.clone()),
        ("created", time(job.create_time.as_ref())),
        ("started", time(job.start_time.as_ref())),
        ("finished", time(job.finish_time.as_ref())),
        (
            "mailboxes",
            format!(
                "{} of {} done: {} deleted, {} not found, {} already deleted, {} would delete, {} failed, {} skipped, {} cancelled, {} restored",
                counts.done_count,
                counts.target_count,
                counts.deleted_count,
                counts.not_found_count,
                counts.already_deleted_count,
                counts.would_delete_count,
                counts.failed_count,
                counts.skipped_count,
                counts.cancelled_count,
                counts.restored_count
            ),
        ),
        (
            "copies",
            format!(
                "{} found, {} deleted",
                counts.copies_found_count, counts.copies_deleted_count
            ),
        ),
        ("last sequence", job.last_sequence.to_string()),
    ];
    for (key, value) in lines {
        crate::say!("{key:>14}: {value}");
    }
    if !job.restores_job_id.is_empty() {
        crate::say!("{:>14}: {}", "restores", job.restores_job_id);
    }
    if let Some(f) = &job.failure {
        crate::say!("{:>14}: {} {}", "failure", f.code, f.detail);
    }
    if let Some(c) = &job.cancellation {
        crate::say!(
            "{:>14}: by {} ({})",
            "cancelled",
            c.requested_by,
            or_dash(&c.reason)
        );
    }
}

async fn targets(
    client: &Client,
    out: Output,
    request: pb::ListRetractTargetsRequest,
) -> anyhow::Result<Exit> {
    let list = all_pages(usize::MAX, |page_token, page_size| {
        let request = pb::ListRetractTargetsRequest {
            page_token,
            page_size,
            ..request.clone()
        };
        async move {
            let r = client.list_retract_targets(request).await?;
            Ok((r.targets, r.next_page_token))
        }
    })
    .await?;
    if out.json() {
        list.iter().for_each(|t| out.line(t, "TargetStatus"));
        return Ok(Exit::Ok);
    }
    let rows = list
        .iter()
        .map(|t| {
            vec![
                t.mailbox.clone(),
                t.depth.to_string(),
                t.outcome
                    .map(|_| short(t.outcome().as_str_name(), "RECIPIENT_OUTCOME_"))
                    .unwrap_or_else(|| "(working)".into()),
                format!("{}/{}", t.copies_deleted_count, t.copies_found_count),
                if t.was_read { "yes".into() } else { "-".into() },
                or_dash(&t.discovered_from),
                or_dash(&t.detail),
            ]
        })
        .collect();
    out.table(
        &[
            "MAILBOX",
            "DEPTH",
            "OUTCOME",
            "COPIES",
            "READ",
            "REACHED FROM",
            "DETAIL",
        ],
        rows,
    );
    Ok(Exit::Ok)
}

async fn audit(
    client: &Client,
    out: Output,
    tenant_id: String,
    section: Option<Section>,
    limit: usize,
) -> anyhow::Result<Exit> {
    let section = match section {
        None => pb::AuditSection::Unspecified,
        Some(Section::Tenants) => pb::AuditSection::Tenants,
        Some(Section::Domains) => pb::AuditSection::Domains,
        Some(Section::Retract) => pb::AuditSection::Retract,
    };
    let list = all_pages(limit, |page_token, page_size| {
        let request = pb::ListAuditEventsRequest {
            tenant_id: tenant_id.clone(),
            section: section.into(),
            page_size,
            page_token,
            ..Default::default()
        };
        async move {
            let r = client.list_audit_events(request).await?;
            Ok((r.events, r.next_page_token))
        }
    })
    .await?;
    if out.json() {
        list.iter().for_each(|e| out.line(e, "AuditEvent"));
        return Ok(Exit::Ok);
    }
    let rows = list
        .iter()
        .map(|e| {
            vec![
                time(e.occur_time.as_ref()),
                short(e.section().as_str_name(), "AUDIT_SECTION_"),
                short(e.action().as_str_name(), "AUDIT_ACTION_"),
                e.actor.clone(),
                e.target.clone(),
                short(e.outcome().as_str_name(), "AUDIT_OUTCOME_"),
            ]
        })
        .collect();
    out.table(
        &["TIME", "SECTION", "ACTION", "ACTOR", "TARGET", "OUTCOME"],
        rows,
    );
    Ok(Exit::Ok)
}

fn job_state(s: State) -> pb::JobState {
    match s {
        State::Queued => pb::JobState::Queued,
        State::Running => pb::JobState::Running,
        State::Succeeded => pb::JobState::Succeeded,
        State::CompletedWithErrors => pb::JobState::CompletedWithErrors,
        State::Failed => pb::JobState::Failed,
        State::Cancelled => pb::JobState::Cancelled,
    }
}

fn outcome(o: Outcome) -> pb::RecipientOutcome {
    match o {
        Outcome::Unfinished => pb::RecipientOutcome::Unspecified,
        Outcome::Deleted => pb::RecipientOutcome::Deleted,
        Outcome::NotFound => pb::RecipientOutcome::NotFound,
        Outcome::AlreadyDeleted => pb::RecipientOutcome::AlreadyDeleted,
        Outcome::WouldDelete => pb::RecipientOutcome::WouldDelete,
        Outcome::Failed => pb::RecipientOutcome::Failed,
        Outcome::Skipped => pb::RecipientOutcome::Skipped,
        Outcome::Cancelled => pb::RecipientOutcome::Cancelled,
        Outcome::Restored => pb::RecipientOutcome::Restored,
    }
}
