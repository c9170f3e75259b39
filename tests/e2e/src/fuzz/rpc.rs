//! Every RPC of `retract.v1` with generated hostile requests, as tenant `acme`'s
//! administrator (every permission): the server answers each with success or a clear
//! refusal (see [`super::verdict`]), never leaks tenant `globex`'s data, and answers
//! protobuf bytes that do not decode with `INVALID_ARGUMENT`.

use std::time::Duration;

use proptest::{prelude::*, test_runner::TestRunner};
use prost::{
    Message as _,
    bytes::{Buf as _, BufMut as _},
};
use retract_client::{Client, pb};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use super::{
    config, run_cases,
    strategies::{
        domain, email, enum_value, enum_values, int32, int64, or_hostile, recipients, tenant_id,
        text, timestamp, uuid_like,
    },
    verdict::{RequestFields, refusal_problem},
};
use crate::{
    db::Backend,
    on_both_backends,
    scenarios::{PHISH, World, crowd},
};

/// Cases per RPC (25 RPCs): about 15 s per backend, most of it the RPCs that write.
const CASES_PER_RPC: u32 = 200;
/// Cases of undecodable bodies, over every RPC.
const RAW_CASES: u32 = 1_000;
/// Longest an answer (or a stream's first message) may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

on_both_backends!(
    every_rpc_answers_hostile_requests_with_a_clear_status,
    undecodable_request_bodies_are_invalid_argument,
);

/// Ids of the fuzz world that requests should sometimes name.
#[derive(Clone, Debug)]
struct Known {
    job_ids: Vec<String>,
}

/// Contoso granted to `acme` with the phishing message recorded, a dry run and a soft
/// retract done; `globex`, another tenant, has its own domain and the same message id
/// delivered to its own mailbox (what must never show through `acme`).
async fn world(backend: Backend) -> (World, Known) {
    let w = crowd(backend, 3, |s| {
        s.rate_limit_per_second = 1e9;
        s.rate_limit_burst = 1e9;
    })
    .await;
    w.app.create_tenant("globex").await;
    w.app.add_domain("globex", "globex.example").await;
    w.app
        .service()
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "globex".into(),
            delivery: Some(pb::Delivery {
                internet_message_id: PHISH.into(),
                sender: "ceo@evil.example".into(),
                subject: "globex's own copy".into(),
                delivery_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 60,
                    nanos: 0,
                }),
                recipients: vec!["boss@globex.example".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("record globex's delivery");
    let mut job_ids = Vec::new();
    for (delete_mode, dry_run) in [(pb::DeleteMode::Soft, true), (pb::DeleteMode::Soft, false)] {
        let job = w
            .start(pb::RetractOptions {
                internet_message_id: PHISH.into(),
                delete_mode: delete_mode.into(),
                dry_run,
                ..Default::default()
            })
            .await;
        job_ids.push(job.job_id);
    }
    (w, Known { job_ids })
}

/// One generated call.
#[derive(Clone, Debug)]
enum Call {
    CreateTenant(pb::CreateTenantRequest),
    GetTenant(pb::GetTenantRequest),
    ListTenants(pb::ListTenantsRequest),
    AddDomain(pb::AddDomainRequest),
    RemoveDomain(pb::RemoveDomainRequest),
    ListDomains(pb::ListDomainsRequest),
    StartGrant(pb::StartGrantRequest),
    CompleteGrant(pb::CompleteGrantRequest),
    GetGrant(pb::GetGrantRequest),
    VerifyDomains(pb::VerifyDomainsRequest),
    RecordDelivery(pb::RecordDeliveryRequest),
    RecordDeliveries(pb::RecordDeliveriesRequest),
    SearchDeliveries(pb::SearchDeliveriesRequest),
    GetRetractOptions(pb::GetRetractOptionsRequest),
    Retract(pb::RetractRequest),
    StartRetract(pb::StartRetractRequest),
    WatchRetract(pb::WatchRetractRequest),
    GetRetractJob(pb::GetRetractJobRequest),
    ListRetractJobs(pb::ListRetractJobsRequest),
    ListRetractTargets(pb::ListRetractTargetsRequest),
    CancelRetractJob(pb::CancelRetractJobRequest),
    RestoreRetractJob(pb::RestoreRetractJobRequest),
    ListAuditEvents(pb::ListAuditEventsRequest),
    DeleteTenant(pb::DeleteTenantRequest),
    ExportAuditEvents(pb::ExportAuditEventsRequest),
}

impl Call {
    /// The method's gRPC path.
    fn path(&self) -> &'static str {
        match self {
            Self::CreateTenant(_) => "/retract.v1.TenantService/CreateTenant",
            Self::GetTenant(_) => "/retract.v1.TenantService/GetTenant",
            Self::ListTenants(_) => "/retract.v1.TenantService/ListTenants",
            Self::AddDomain(_) => "/retract.v1.TenantService/AddDomain",
            Self::RemoveDomain(_) => "/retract.v1.TenantService/RemoveDomain",
            Self::ListDomains(_) => "/retract.v1.TenantService/ListDomains",
            Self::StartGrant(_) => "/retract.v1.TenantService/StartGrant",
            Self::CompleteGrant(_) => "/retract.v1.TenantService/CompleteGrant",
            Self::GetGrant(_) => "/retract.v1.TenantService/GetGrant",
            Self::VerifyDomains(_) => "/retract.v1.TenantService/VerifyDomains",
            Self::RecordDelivery(_) => "/retract.v1.RetractService/RecordDelivery",
            Self::RecordDeliveries(_) => "/retract.v1.RetractService/RecordDeliveries",
            Self::SearchDeliveries(_) => "/retract.v1.RetractService/SearchDeliveries",
            Self::GetRetractOptions(_) => "/retract.v1.RetractService/GetRetractOptions",
            Self::Retract(_) => "/retract.v1.RetractService/Retract",
            Self::StartRetract(_) => "/retract.v1.RetractService/StartRetract",
            Self::WatchRetract(_) => "/retract.v1.RetractService/WatchRetract",
            Self::GetRetractJob(_) => "/retract.v1.RetractService/GetRetractJob",
            Self::ListRetractJobs(_) => "/retract.v1.RetractService/ListRetractJobs",
            Self::ListRetractTargets(_) => "/retract.v1.RetractService/ListRetractTargets",
            Self::CancelRetractJob(_) => "/retract.v1.RetractService/CancelRetractJob",
            Self::RestoreRetractJob(_) => "/retract.v1.RetractService/RestoreRetractJob",
            Self::ListAuditEvents(_) => "/retract.v1.AuditService/ListAuditEvents",
            Self::DeleteTenant(_) => "/retract.v1.TenantService/DeleteTenant",
            Self::ExportAuditEvents(_) => "/retract.v1.AuditService/ExportAuditEvents",
        }
    }

    /// Whether the method answers with a stream.
    fn streams(&self) -> bool {
        matches!(
            self,
            Self::Retract(_)
                | Self::WatchRetract(_)
                | Self::RestoreRetractJob(_)
                | Self::ExportAuditEvents(_)
        )
    }

    /// The request's protobuf encoding.
    fn encode(&self) -> Vec<u8> {
        match self {
            Self::CreateTenant(r) => r.encode_to_vec(),
            Self::GetTenant(r) => r.encode_to_vec(),
            Self::ListTenants(r) => r.encode_to_vec(),
            Self::AddDomain(r) => r.encode_to_vec(),
            Self::RemoveDomain(r) => r.encode_to_vec(),
            Self::ListDomains(r) => r.encode_to_vec(),
            Self::StartGrant(r) => r.encode_to_vec(),
            Self::CompleteGrant(r) => r.encode_to_vec(),
            Self::GetGrant(r) => r.encode_to_vec(),
            Self::VerifyDomains(r) => r.encode_to_vec(),
            Self::RecordDelivery(r) => r.encode_to_vec(),
            Self::RecordDeliveries(r) => r.encode_to_vec(),
            Self::SearchDeliveries(r) => r.encode_to_vec(),
            Self::GetRetractOptions(r) => r.encode_to_vec(),
            Self::Retract(r) => r.encode_to_vec(),
            Self::StartRetract(r) => r.encode_to_vec(),
            Self::WatchRetract(r) => r.encode_to_vec(),
            Self::GetRetractJob(r) => r.encode_to_vec(),
            Self::ListRetractJobs(r) => r.encode_to_vec(),
            Self::ListRetractTargets(r) => r.encode_to_vec(),
            Self::CancelRetractJob(r) => r.encode_to_vec(),
            Self::RestoreRetractJob(r) => r.encode_to_vec(),
            Self::ListAuditEvents(r) => r.encode_to_vec(),
            Self::DeleteTenant(r) => r.encode_to_vec(),
            Self::ExportAuditEvents(r) => r.encode_to_vec(),
        }
    }
}

/// An unset timestamp now and then a hostile one.
fn time_filter() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    or_hostile(Just(None), timestamp())
}

/// An empty filter now and then a hostile one.
fn text_filter() -> BoxedStrategy<String> {
    or_hostile(Just(String::new()), text())
}

/// A fresh UUID now and then a hostile id.
fn request_id() -> BoxedStrategy<String> {
    or_hostile(
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        uuid_like(Vec::new()),
    )
}

fn delivery() -> BoxedStrategy<pb::Delivery> {
    let recent = (1i64..86_400).prop_map(|ago| {
        Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - ago,
            nanos: 0,
        })
    });
    let known_recipients = proptest::collection::vec(
        proptest::sample::select(&super::strategies::KNOWN[3..6]).prop_map(str::to_owned),
        1..4,
    );
    (
        message_id(),
        or_hostile(Just("ceo@evil.example".to_owned()), email()),
        or_hostile(Just("Urgent wire transfer".to_owned()), text()),
        or_hostile(recent, timestamp()),
        or_hostile(known_recipients, recipients()),
        (time_filter(), time_filter(), or_hostile(Just(0), int32())),
    )
        .prop_map(
            |(internet_message_id, sender, subject, delivery_time, recipients, rest)| {
                pb::Delivery {
                    internet_message_id,
                    sender,
                    subject,
                    delivery_time,
                    recipients,
                    record_time: rest.0,
                    update_time: rest.1,
                    recipient_count: rest.2,
                }
            },
        )
        .boxed()
}

fn message_id() -> BoxedStrategy<String> {
    prop_oneof![8 => Just(PHISH.to_owned()), 1 => Just(String::new()), 2 => text()].boxed()
}

fn options() -> BoxedStrategy<pb::RetractOptions> {
    (
        message_id(),
        prop_oneof![2 => Just(Vec::new()), 1 => recipients()],
        any::<bool>(),
        or_hostile(0i32..=3, int32()),
        or_hostile(1i32..=3, enum_value()),
        prop_oneof![3 => Just(true), 1 => Just(false)],
        any::<bool>(),
        any::<bool>(),
        text_filter(),
    )
        .prop_map(
            |(
                internet_message_id,
                recipients,
                include_conversations,
                conversation_depth,
                delete_mode,
                dry_run,
                skip_ineligible,
                include_sender_copy,
                reason,
            )| pb::RetractOptions {
                internet_message_id,
                recipients,
                include_conversations,
                conversation_depth,
                delete_mode,
                dry_run,
                skip_ineligible,
                include_sender_copy,
                reason,
            },
        )
        .boxed()
}

/// A request of each RPC, by RPC.
fn calls(known: &Known) -> Vec<BoxedStrategy<Call>> {
    let job = || {
        or_hostile(
            proptest::sample::select(known.job_ids.clone()),
            uuid_like(known.job_ids.clone()),
        )
    };
    let page = || (or_hostile(0i32..=100, int32()), text_filter());
    vec![
        (
            or_hostile("[a-z][a-z0-9-]{0,20}", text()),
            or_hostile("[A-Za-z][A-Za-z ]{0,30}", text()),
        )
            .prop_map(|(tenant_id, display_name)| {
                Call::CreateTenant(pb::CreateTenantRequest {
                    tenant_id,
                    display_name,
                })
            })
            .boxed(),
        tenant_id()
            .prop_map(|tenant_id| Call::GetTenant(pb::GetTenantRequest { tenant_id }))
            .boxed(),
        page()
            .prop_map(|(page_size, page_token)| {
                Call::ListTenants(pb::ListTenantsRequest {
                    page_size,
                    page_token,
                })
            })
            .boxed(),
        (tenant_id(), or_hostile("[a-z]{1,10}\\.example", domain()))
            .prop_map(|(tenant_id, domain)| {
                Call::AddDomain(pb::AddDomainRequest { tenant_id, domain })
            })
            .boxed(),
        (tenant_id(), domain())
            .prop_map(|(tenant_id, domain)| {
                Call::RemoveDomain(pb::RemoveDomainRequest { tenant_id, domain })
            })
            .boxed(),
        (tenant_id(), page())
            .prop_map(|(tenant_id, (page_size, page_token))| {
                Call::ListDomains(pb::ListDomainsRequest {
                    tenant_id,
                    page_size,
                    page_token,
                })
            })
            .boxed(),
        // Not `acme`: a new consent attempt would put its domains back to PENDING and
        // stop every later retract of the run.
        (text(), any::<bool>())
            .prop_filter("not acme", |(t, _)| t != "acme")
            .prop_map(|(tenant_id, allow_relink)| {
                Call::StartGrant(pb::StartGrantRequest {
                    tenant_id,
                    allow_relink,
                })
            })
            .boxed(),
        (text(), text(), text(), text())
            .prop_map(|(state, code, error, error_description)| {
                Call::CompleteGrant(pb::CompleteGrantRequest {
                    state,
                    code,
                    error,
                    error_description,
                })
            })
            .boxed(),
        (tenant_id(), uuid_like(Vec::new()))
            .prop_map(|(tenant_id, grant_id)| {
                Call::GetGrant(pb::GetGrantRequest {
                    tenant_id,
                    grant_id,
                })
            })
            .boxed(),
        tenant_id()
            .prop_map(|tenant_id| Call::VerifyDomains(pb::VerifyDomainsRequest { tenant_id }))
            .boxed(),
        (tenant_id(), proptest::option::weighted(0.9, delivery()))
            .prop_map(|(tenant_id, delivery)| {
                Call::RecordDelivery(pb::RecordDeliveryRequest {
                    tenant_id,
                    delivery,
                })
            })
            .boxed(),
        (tenant_id(), proptest::collection::vec(delivery(), 0..4))
            .prop_map(|(tenant_id, deliveries)| {
                Call::RecordDeliveries(pb::RecordDeliveriesRequest {
                    tenant_id,
                    deliveries,
                })
            })
            .boxed(),
        (
            tenant_id(),
            (
                message_id(),
                or_hostile(Just(String::new()), email()),
                or_hostile(Just(String::new()), email()),
                text_filter(),
            ),
            (time_filter(), time_filter()),
            page(),
        )
            .prop_map(
                |(tenant_id, (id, sender, recipient, subject), (after, before), (size, token))| {
                    Call::SearchDeliveries(pb::SearchDeliveriesRequest {
                        tenant_id,
                        internet_message_id: id,
                        sender,
                        recipient,
                        subject_contains: subject,
                        delivery_after: after,
                        delivery_before: before,
                        page_size: size,
                        page_token: token,
                    })
                },
            )
            .boxed(),
        (tenant_id(), message_id(), page())
            .prop_map(
                |(tenant_id, internet_message_id, (page_size, page_token))| {
                    Call::GetRetractOptions(pb::GetRetractOptionsRequest {
                        tenant_id,
                        internet_message_id,
                        page_size,
                        page_token,
                    })
                },
            )
            .boxed(),
        (
            tenant_id(),
            proptest::option::weighted(0.9, options()),
            request_id(),
        )
            .prop_map(|(tenant_id, options, request_id)| {
                Call::Retract(pb::RetractRequest {
                    tenant_id,
                    options,
                    request_id,
                })
            })
            .boxed(),
        (
            tenant_id(),
            proptest::option::weighted(0.9, options()),
            request_id(),
        )
            .prop_map(|(tenant_id, options, request_id)| {
                Call::StartRetract(pb::StartRetractRequest {
                    tenant_id,
                    options,
                    request_id,
                })
            })
            .boxed(),
        (tenant_id(), job(), int64())
            .prop_map(|(tenant_id, job_id, after_sequence)| {
                Call::WatchRetract(pb::WatchRetractRequest {
                    tenant_id,
                    job_id,
                    after_sequence,
                })
            })
            .boxed(),
        (tenant_id(), job())
            .prop_map(|(tenant_id, job_id)| {
                Call::GetRetractJob(pb::GetRetractJobRequest { tenant_id, job_id })
            })
            .boxed(),
        (
            tenant_id(),
            or_hostile(Just(Vec::new()), enum_values()),
            (or_hostile(Just(String::new()), email()), message_id()),
            (time_filter(), time_filter()),
            page(),
        )
            .prop_map(
                |(tenant_id, states, (by, id), (after, before), (size, token))| {
                    Call::ListRetractJobs(pb::ListRetractJobsRequest {
                        tenant_id,
                        states,
                        requested_by: by,
                        internet_message_id: id,
                        create_after: after,
                        create_before: before,
                        page_size: size,
                        page_token: token,
                    })
                },
            )
            .boxed(),
        (
            tenant_id(),
            job(),
            or_hostile(Just(Vec::new()), enum_values()),
            or_hostile(Just(None), proptest::option::of(int32()).boxed()),
            page(),
        )
            .prop_map(|(tenant_id, job_id, outcomes, depth, (size, token))| {
                Call::ListRetractTargets(pb::ListRetractTargetsRequest {
                    tenant_id,
                    job_id,
                    outcomes,
                    depth,
                    page_size: size,
                    page_token: token,
                })
            })
            .boxed(),
        (tenant_id(), job(), text_filter())
            .prop_map(|(tenant_id, job_id, reason)| {
                Call::CancelRetractJob(pb::CancelRetractJobRequest {
                    tenant_id,
                    job_id,
                    reason,
                })
            })
            .boxed(),
        (tenant_id(), job(), request_id(), text_filter())
            .prop_map(|(tenant_id, job_id, request_id, reason)| {
                Call::RestoreRetractJob(pb::RestoreRetractJobRequest {
                    tenant_id,
                    job_id,
                    request_id,
                    reason,
                })
            })
            .boxed(),
        (
            tenant_id(),
            (
                or_hostile(0i32..=3, enum_value()),
                or_hostile(Just(0), enum_value()),
            ),
            (or_hostile(Just(String::new()), email()), text_filter()),
            (time_filter(), time_filter()),
            page(),
        )
            .prop_map(
                |(
                    tenant_id,
                    (section, action),
                    (actor, target),
                    (after, before),
                    (size, token),
                )| {
                    Call::ListAuditEvents(pb::ListAuditEventsRequest {
                        tenant_id,
                        section,
                        action,
                        actor,
                        target,
                        occur_after: after,
                        occur_before: before,
                        page_size: size,
                        page_token: token,
                    })
                },
            )
            .boxed(),
        // Never acme itself (confirmed, the caller could delete it): that would end every
        // later call of the run.
        (tenant_id(), any::<bool>(), text(), text())
            .prop_filter("not acme", |(t, _, _, _)| t != "acme")
            .prop_map(|(tenant_id, confirmed, confirm, reason)| {
                Call::DeleteTenant(pb::DeleteTenantRequest {
                    confirm: if confirmed {
                        tenant_id.clone()
                    } else {
                        confirm
                    },
                    tenant_id,
                    reason,
                })
            })
            .boxed(),
        (
            tenant_id(),
            prop_oneof![Just(String::new()), "[0-9]{1,20}", text()],
        )
            .prop_map(|(tenant_id, after_cursor)| {
                Call::ExportAuditEvents(pb::ExportAuditEventsRequest {
                    tenant_id,
                    after_cursor,
                })
            })
            .boxed(),
    ]
}

/// What an answer showed: tenant ids and mailbox addresses, to check for leaks.
#[derive(Debug, Default)]
struct Seen {
    tenants: Vec<String>,
    addresses: Vec<String>,
}

impl Seen {
    fn job(&mut self, job: Option<&pb::RetractJob>) {
        if let Some(job) = job {
            self.tenants.push(job.tenant_id.clone());
        }
    }

    fn event(&mut self, event: Option<&pb::RetractEvent>) {
        use pb::retract_event::Kind;
        match event.and_then(|e| e.kind.as_ref()) {
            Some(Kind::JobStarted(started)) => {
                self.job(started.job.as_ref());
                self.addresses
                    .extend(started.targets.iter().map(|t| t.mailbox.clone()));
            }
            Some(Kind::RecipientUpdate(update)) => self.addresses.push(update.mailbox.clone()),
            _ => {}
        }
    }
}

/// Sends `call` as `client`; for a stream, waits for its first message.
async fn send(client: &Client, call: Call) -> Result<Seen, Status> {
    let mut seen = Seen::default();
    let (tenants, retract, audit) = (
        client.tenant_service(),
        client.retract_service(),
        client.audit_service(),
    );
    let (mut tenants, mut retract, mut audit) = (tenants, retract, audit);
    match call {
        Call::CreateTenant(r) => drop(tenants.create_tenant(r).await?),
        Call::GetTenant(r) => {
            let t = tenants.get_tenant(r).await?.into_inner().tenant;
            seen.tenants.extend(t.map(|t| t.tenant_id));
        }
        Call::ListTenants(r) => {
            let page = tenants.list_tenants(r).await?.into_inner();
            seen.tenants
                .extend(page.tenants.into_iter().map(|t| t.tenant_id));
        }
        Call::AddDomain(r) => drop(tenants.add_domain(r).await?),
        Call::RemoveDomain(r) => {
            let d = tenants.remove_domain(r).await?.into_inner().domain;
            seen.tenants.extend(d.map(|d| d.tenant_id));
        }
        Call::ListDomains(r) => {
            let page = tenants.list_domains(r).await?.into_inner();
            seen.tenants
                .extend(page.domains.into_iter().map(|d| d.tenant_id));
        }
        Call::StartGrant(r) => drop(tenants.start_grant(r).await?),
        Call::CompleteGrant(r) => drop(tenants.complete_grant(r).await?),
        Call::GetGrant(r) => {
            let g = tenants.get_grant(r).await?.into_inner().grant;
            seen.tenants.extend(g.map(|g| g.tenant_id));
        }
        Call::VerifyDomains(r) => {
            let answer = tenants.verify_domains(r).await?.into_inner();
            seen.tenants
                .extend(answer.domains.into_iter().map(|d| d.tenant_id));
        }
        Call::RecordDelivery(r) => drop(retract.record_delivery(r).await?),
        Call::RecordDeliveries(r) => drop(retract.record_deliveries(r).await?),
        Call::SearchDeliveries(r) => {
            let page = retract.search_deliveries(r).await?.into_inner();
            seen.addresses
                .extend(page.deliveries.into_iter().flat_map(|d| d.recipients));
        }
        Call::GetRetractOptions(r) => {
            let answer = retract.get_retract_options(r).await?.into_inner();
            seen.addresses
                .extend(answer.recipients.into_iter().map(|o| o.address));
        }
        Call::Retract(r) => {
            let mut stream = retract.retract(r).await?.into_inner();
            let first = stream.message().await?;
            seen.event(first.and_then(|m| m.event).as_ref());
        }
        Call::StartRetract(r) => {
            let job = retract.start_retract(r).await?.into_inner().job;
            seen.job(job.as_ref());
        }
        Call::WatchRetract(r) => {
            let mut stream = retract.watch_retract(r).await?.into_inner();
            let first = stream.message().await?;
            seen.event(first.and_then(|m| m.event).as_ref());
        }
        Call::GetRetractJob(r) => {
            let job = retract.get_retract_job(r).await?.into_inner().job;
            seen.job(job.as_ref());
        }
        Call::ListRetractJobs(r) => {
            let page = retract.list_retract_jobs(r).await?.into_inner();
            for job in &page.jobs {
                seen.job(Some(job));
            }
        }
        Call::ListRetractTargets(r) => {
            let page = retract.list_retract_targets(r).await?.into_inner();
            seen.addresses
                .extend(page.targets.into_iter().map(|t| t.mailbox));
        }
        Call::CancelRetractJob(r) => {
            let job = retract.cancel_retract_job(r).await?.into_inner().job;
            seen.job(job.as_ref());
        }
        Call::RestoreRetractJob(r) => {
            let mut stream = retract.restore_retract_job(r).await?.into_inner();
            let first = stream.message().await?;
            seen.event(first.and_then(|m| m.event).as_ref());
        }
        Call::ListAuditEvents(r) => {
            let page = audit.list_audit_events(r).await?.into_inner();
            seen.tenants
                .extend(page.events.into_iter().map(|e| e.tenant_id));
        }
        Call::DeleteTenant(r) => drop(tenants.delete_tenant(r).await?),
        Call::ExportAuditEvents(r) => {
            let mut stream = audit.export_audit_events(r).await?.into_inner();
            while let Some(item) = stream.message().await? {
                seen.tenants.extend(item.event.map(|e| e.tenant_id));
            }
        }
    }
    Ok(seen)
}

/// Why `seen` shows data of a tenant other than `acme`, if it does.
fn leak(seen: &Seen) -> Option<String> {
    if let Some(t) = seen.tenants.iter().find(|t| *t != "acme") {
        return Some(format!(
            "the answer shows tenant {t:?} to acme's administrator"
        ));
    }
    seen.addresses
        .iter()
        .find(|a| a.ends_with("@globex.example"))
        .map(|a| format!("the answer shows globex's mailbox {a:?} to acme's administrator"))
}

/// An acceptable refusal's code name, or why it is not acceptable.
fn label(fields: &RequestFields, path: &str, status: &Status) -> Result<&'static str, String> {
    match refusal_problem(fields, path, status) {
        Some(problem) => Err(problem),
        None => Ok(code_name(status.code())),
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::OutOfRange => "OUT_OF_RANGE",
        _ => "OTHER",
    }
}

/// Sends `call` and judges the answer.
async fn judged(
    client: Client,
    fields: std::sync::Arc<RequestFields>,
    call: Call,
) -> Result<&'static str, String> {
    let path = call.path();
    let answer = tokio::time::timeout(ANSWER_WITHIN, send(&client, call))
        .await
        .map_err(|_| format!("{path} did not answer within {ANSWER_WITHIN:?}"))?;
    match answer {
        Ok(seen) => leak(&seen).map_or(Ok("OK"), Err),
        Err(status) => label(&fields, path, &status),
    }
}

async fn every_rpc_answers_hostile_requests_with_a_clear_status(backend: Backend) {
    let (w, known) = world(backend).await;
    let fields = std::sync::Arc::new(RequestFields::from_contract());
    let strategies = calls(&known);
    // Every method of the contract has a strategy.
    let mut covered = std::collections::BTreeSet::new();
    let mut runner = TestRunner::new(config(1));
    for strategy in &strategies {
        let call = strategy.new_tree(&mut runner).expect("a value").current();
        covered.insert(call.path().to_owned());
    }
    assert_eq!(covered, fields.methods(), "every RPC is fuzzed");

    for strategy in &strategies {
        let sample = strategy.new_tree(&mut runner).expect("a value").current();
        let client = w.admin();
        let fields = fields.clone();
        run_cases(sample.path(), CASES_PER_RPC, strategy, move |call| {
            Box::pin(judged(client.clone(), fields.clone(), call))
        });
    }
    // The server is still well after all of it.
    let job = w.job(&known.job_ids[0]).await;
    assert_eq!(job.tenant_id, "acme");
    w.app.stop().await;
}

/// Protobuf bytes that are not a valid encoding, or are one by chance.
fn raw_body(known: &Known) -> BoxedStrategy<(Call, Vec<u8>)> {
    let mutated = proptest::strategy::Union::new(calls(known)).prop_flat_map(|call| {
        let bytes = call.encode();
        let len = bytes.len();
        let edits = proptest::collection::vec((0..=len, any::<u8>(), 0u8..3), 1..4);
        (Just(call), Just(bytes), edits).prop_map(|(call, mut bytes, edits)| {
            for (at, byte, kind) in edits {
                let at = at.min(bytes.len());
                match kind {
                    0 => bytes.truncate(at),
                    1 if at < bytes.len() => bytes[at] = byte,
                    _ => bytes.insert(at, byte),
                }
            }
            (call, bytes)
        })
    });
    let broken: &[&[u8]] = &[
        // field 1 (a string) that is not UTF-8
        &[0x0a, 0x02, 0xff, 0xfe],
        // a length beyond the end
        &[0x0a, 0x05, b'a'],
        // wire type 7 does not exist
        &[0x0f],
        // field number 0
        &[0x00],
        // a varint that never ends
        &[
            0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        // an unterminated group
        &[0x0b],
        // a nested message (field 2) whose string is not UTF-8
        &[0x12, 0x04, 0x0a, 0x02, 0xc3, 0x28],
    ];
    let fixed = (
        proptest::strategy::Union::new(calls(known)),
        proptest::sample::select(broken.to_vec()),
    )
        .prop_map(|(call, bytes)| (call, bytes.to_vec()));
    let random = (
        proptest::strategy::Union::new(calls(known)),
        proptest::collection::vec(any::<u8>(), 0..64),
    );
    prop_oneof![3 => mutated, 2 => fixed, 1 => random].boxed()
}

/// A codec that sends and receives bytes as they are.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// Sends `body` as the request message of `call`'s method, as `token`'s caller.
async fn send_raw(
    channel: tonic::transport::Channel,
    token: String,
    call: &Call,
    body: Vec<u8>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(format!("channel not ready: {e}")))?;
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII token"),
    );
    let path = http::uri::PathAndQuery::from_static(call.path());
    if call.streams() {
        let mut stream = grpc
            .server_streaming(request, path, RawCodec)
            .await?
            .into_inner();
        stream.message().await?;
    } else {
        grpc.unary(request, path, RawCodec).await?;
    }
    Ok(())
}

/// The caller token of acme's administrator.
fn admin_token() -> String {
    retract_client::DevToken::admin("admin@contoso.com", "acme")
        .all_permissions()
        .mint()
        .expect("mint token")
}

async fn undecodable_request_bodies_are_invalid_argument(backend: Backend) {
    let (w, known) = world(backend).await;
    let fields = std::sync::Arc::new(RequestFields::from_contract());
    let channel = w.admin().channel();
    let token = admin_token();

    // The plainest case, by name: a string field that is not UTF-8.
    let status = send_raw(
        channel.clone(),
        token.clone(),
        &Call::GetTenant(pb::GetTenantRequest::default()),
        vec![0x0a, 0x02, 0xff, 0xfe],
    )
    .await
    .expect_err("not a GetTenantRequest");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let problem = refusal_problem(&fields, "/retract.v1.TenantService/GetTenant", &status);
    assert_eq!(problem, None, "{status:?}");

    run_cases(
        "raw bodies",
        RAW_CASES,
        &raw_body(&known),
        move |(call, body)| {
            let (channel, token, fields) = (channel.clone(), token.clone(), fields.clone());
            Box::pin(async move {
                let path = call.path();
                let answer =
                    tokio::time::timeout(ANSWER_WITHIN, send_raw(channel, token, &call, body))
                        .await
                        .map_err(|_| format!("{path} did not answer within {ANSWER_WITHIN:?}"))?;
                match answer {
                    Ok(()) => Ok("OK"),
                    Err(status) => label(&fields, path, &status),
                }
            })
        },
    );
    w.app.stop().await;
}
