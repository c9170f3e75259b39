//! Ready-made worlds for retract tests and benches: graph-sim with a Microsoft tenant whose
//! mailboxes received a phishing message, our server granted through the real consent flow,
//! and the delivery recorded.

use graph_sim::{
    GraphSim, SignIn,
    seed::{App, Domain, Mail, Tenant, User},
};
use retract_client::{Client, pb};
use tonic::{Status, Streaming};

use crate::{app::TestApp, db::Backend};

/// The app registration graph-sim knows.
pub const CLIENT_ID: &str = "7b2c1f3e-9a55-4a8e-9f53-2b7f2f1c0d22";
/// Its secret.
pub const CLIENT_SECRET: &str = "retract-test-secret";
/// The message everybody got.
pub const PHISH: &str = "<phish-1@evil.example>";

/// The simulator and our server.
pub struct World {
    /// The simulated Microsoft 365.
    pub sim: GraphSim,
    /// Our server.
    pub app: TestApp,
}

impl World {
    /// The security administrator: a human with a mailbox in Contoso.
    pub fn admin(&self) -> Client {
        self.app.admin("admin@contoso.com", "acme")
    }

    /// The administrator presses Retract on tenant `acme` (a new request id) and follows the
    /// job's stream.
    pub async fn retract(&self, options: pb::RetractOptions) -> Streaming<pb::RetractResponse> {
        self.admin()
            .retract_service()
            .retract(pb::RetractRequest {
                tenant_id: "acme".into(),
                options: Some(options),
                request_id: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .expect("the retract starts")
            .into_inner()
    }

    /// The administrator starts a retract on tenant `acme` (a new request id), as it answers.
    pub async fn try_start(
        &self,
        options: pb::RetractOptions,
    ) -> Result<tonic::Response<pb::StartRetractResponse>, Status> {
        self.admin()
            .retract_service()
            .start_retract(pb::StartRetractRequest {
                tenant_id: "acme".into(),
                options: Some(options),
                request_id: uuid::Uuid::new_v4().to_string(),
            })
            .await
    }

    /// The administrator starts a retract on tenant `acme`; the job it made.
    pub async fn start(&self, options: pb::RetractOptions) -> pb::RetractJob {
        self.try_start(options)
            .await
            .expect("the retract starts")
            .into_inner()
            .job
            .expect("StartRetract answers with the job")
    }

    /// The administrator reads job `job_id` of tenant `acme` (GetRetractJob).
    pub async fn job(&self, job_id: &str) -> pb::RetractJob {
        self.admin()
            .retract_service()
            .get_retract_job(pb::GetRetractJobRequest {
                tenant_id: "acme".into(),
                job_id: job_id.to_owned(),
            })
            .await
            .expect("get the job")
            .into_inner()
            .job
            .expect("GetRetractJob answers with the job")
    }

    /// The administrator restores retract job `job_id` of tenant `acme` with `request_id`,
    /// as it answers.
    pub async fn try_restore(
        &self,
        job_id: &str,
        request_id: &str,
    ) -> Result<Streaming<pb::RestoreRetractJobResponse>, Status> {
        self.admin()
            .retract_service()
            .restore_retract_job(pb::RestoreRetractJobRequest {
                tenant_id: "acme".into(),
                job_id: job_id.to_owned(),
                request_id: request_id.to_owned(),
                reason: "released by mistake: putting it back".into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The administrator restores retract job `job_id` of tenant `acme` (a new request id)
    /// and follows the restore job's stream.
    pub async fn restore(&self, job_id: &str) -> Streaming<pb::RestoreRetractJobResponse> {
        self.try_restore(job_id, &uuid::Uuid::new_v4().to_string())
            .await
            .expect("the restore starts")
    }

    /// The administrator watches `job_id` of tenant `acme` from after `after_sequence`.
    pub async fn watch(
        &self,
        job_id: String,
        after_sequence: i64,
    ) -> Streaming<pb::WatchRetractResponse> {
        self.admin()
            .retract_service()
            .watch_retract(pb::WatchRetractRequest {
                tenant_id: "acme".into(),
                job_id,
                after_sequence,
            })
            .await
            .expect("the watch starts")
            .into_inner()
    }
}

/// Contoso with `n` users (user0…) who each received the phishing mail, granted and
/// recorded.
pub async fn crowd(
    backend: Backend,
    n: usize,
    adjust: impl FnOnce(&mut retract_server::Settings),
) -> World {
    let (sim, users) = crowd_sim(n).await;
    let app = granted_app(backend, &sim, users, adjust).await;
    World { sim, app }
}

/// graph-sim with Contoso's `n` users (user0…), each holding one copy of the phishing
/// mail; and their addresses.
pub async fn crowd_sim(n: usize) -> (GraphSim, Vec<String>) {
    let users: Vec<String> = (0..n).map(|i| format!("user{i}@contoso.com")).collect();
    let mut tenant = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin());
    for user in &users {
        tenant = tenant.user(User::new(user.clone()));
    }
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(tenant)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(Mail::new(PHISH, "ceo@evil.example").to(users.clone()))
        .start()
        .await
        .expect("graph-sim starts");
    (sim, users)
}

/// Our server pointed at `sim` (fast retries and polling for tests): tenant `acme` with
/// contoso.com granted through the real consent flow, and the phishing message recorded as
/// delivered to `recipients`.
pub async fn granted_app(
    backend: Backend,
    sim: &GraphSim,
    recipients: Vec<String>,
    adjust: impl FnOnce(&mut retract_server::Settings),
) -> TestApp {
    let app = app_against(backend, sim, adjust).await;
    grant_and_record(&app.service(), recipients).await;
    app
}

/// Our server pointed at `sim` (fast retries and polling for tests), with no tenant yet.
pub async fn app_against(
    backend: Backend,
    sim: &GraphSim,
    adjust: impl FnOnce(&mut retract_server::Settings),
) -> TestApp {
    let (graph, login) = (sim.graph_base_url(), sim.login_base_url());
    TestApp::spawn_with(backend, |s| {
        s.graph_base_url = graph;
        s.login_base_url = login;
        s.graph_client_id = CLIENT_ID.to_owned();
        s.graph_client_secret = Some(CLIENT_SECRET.into());
        s.graph_backoff_base_ms = 20;
        s.graph_backoff_max_ms = 200;
        s.graph_max_attempts = 10;
        s.engine_poll_interval_ms = 50;
        s.watch_heartbeat_ms = 500;
        adjust(s);
    })
    .await
}

/// As the platform service on any server pointed at graph-sim: tenant `acme` with
/// contoso.com granted through the real consent flow (the browser's redirect followed to the
/// server's callback), and the phishing message recorded as delivered to `recipients`.
pub async fn grant_and_record(service: &Client, recipients: Vec<String>) {
    grant_and_record_as(service, "acme", "contoso.com", PHISH, recipients).await;
}

/// As [`grant_and_record`], for any tenant: `tenant_id` created with `domain` granted (graph-sim's
/// sign-in must approve as an administrator of the Microsoft tenant that holds `domain`), and
/// `message` recorded as delivered to `recipients`.
pub async fn grant_and_record_as(
    service: &Client,
    tenant_id: &str,
    domain: &str,
    message: &str,
    recipients: Vec<String>,
) {
    let mut tenants = service.tenant_service();
    tenants
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: tenant_id.into(),
            display_name: format!("{tenant_id} Ltd"),
        })
        .await
        .expect("create tenant");
    tenants
        .add_domain(pb::AddDomainRequest {
            tenant_id: tenant_id.into(),
            domain: domain.into(),
        })
        .await
        .expect("add domain");
    let consent_url = tenants
        .start_grant(pb::StartGrantRequest {
            tenant_id: tenant_id.into(),
            allow_relink: false,
        })
        .await
        .expect("start grant")
        .into_inner()
        .consent_url;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let redirect = browser.get(&consent_url).send().await.expect("authorize");
    let callback = redirect.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert_eq!(
        reqwest::get(&callback).await.expect("callback").status(),
        200
    );
    service
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: tenant_id.into(),
            delivery: Some(pb::Delivery {
                internet_message_id: message.into(),
                sender: "ceo@evil.example".into(),
                subject: "Urgent wire transfer".into(),
                delivery_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 600,
                    nanos: 0,
                }),
                recipients,
                ..Default::default()
            }),
        })
        .await
        .expect("record delivery");
}

/// A retract job of `tenant` over `mailboxes` (depth 0) as dispatch would make it, with its
/// audit entry, for tests that write jobs straight to the store (on a server without Graph,
/// whose engine claims nothing).
pub fn stored_job(
    tenant: &retract_server::domain::TenantId,
    mailboxes: &[&str],
    include_conversations: bool,
) -> (
    retract_server::store::NewJob,
    retract_server::domain::AuditEntry,
) {
    use retract_server::domain::{
        AuditAction, AuditDetails, AuditEntry, AuditOutcome, DeleteMode, EmailAddress,
        InternetMessageId, JobId, RetractOptions, Target,
    };
    let job_id = JobId::generate();
    let options = RetractOptions {
        message_id: InternetMessageId::parse(PHISH).unwrap(),
        recipients: Vec::new(),
        include_conversations,
        conversation_depth: if include_conversations { 3 } else { 0 },
        delete_mode: DeleteMode::Soft,
        dry_run: false,
        skip_ineligible: false,
        include_sender_copy: false,
        reason: None,
    };
    let targets = mailboxes
        .iter()
        .map(|m| {
            (
                Target {
                    mailbox: EmailAddress::parse(m).unwrap(),
                    depth: 0,
                },
                None,
            )
        })
        .collect();
    let new = retract_server::store::NewJob {
        id: job_id.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        options: options.clone(),
        requested_by: "admin@contoso.com".into(),
        targets,
        message: None,
        correlation_id: String::new(),
        restores: None,
    };
    let audit = AuditEntry {
        tenant_id: tenant.clone(),
        actor: "admin@contoso.com".into(),
        action: AuditAction::RetractDispatched,
        target: job_id.to_string(),
        outcome: AuditOutcome::Succeeded,
        correlation_id: String::new(),
        details: AuditDetails::RetractDispatched {
            job_id,
            options,
            request_id: String::new(),
            mailboxes: Vec::new(),
            mailbox_count: u32::try_from(mailboxes.len()).unwrap_or(u32::MAX),
        },
    };
    (new, audit)
}
