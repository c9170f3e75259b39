//! `retract-demo`: the quickstart. Starts graph-sim (a simulated Microsoft 365 tenant,
//! Contoso) and retract-server on an embedded SQLite file in one process, grants permissions
//! through the real consent flow, records a delivered phishing message, and prints a caller
//! token and the commands that retract it. The production server does not link the simulator.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::Parser;
use graph_sim::{
    GraphSim, Latency, LatencySettings, SignIn,
    seed::{App, Domain, Mail, Tenant, User},
};
use retract_client::{Client, DevToken, pb};
use retract_server::{Application, Settings, telemetry};

const CLIENT_ID: &str = "5f0c4b8e-3d2a-4c61-9b7e-1a2b3c4d5e6f";
const CLIENT_SECRET: &str = "demo-client-secret";
const MESSAGE: &str = "<urgent-wire-transfer@evil.example>";
/// The idempotency key the printed Retract command uses (the database is new at every start).
const REQUEST_ID: &str = "6a0ee4c2-7c1e-4c62-9d7e-2f4b5a6c7d8e";
/// The idempotency key of the printed Retract with conversations.
const CONVERSATION_REQUEST_ID: &str = "0d3a7c1e-5b2f-4e8a-9c6d-1f2e3a4b5c6d";

/// Runs retract with a simulated Microsoft 365 tenant, ready for a retract.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Address of the gRPC port.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// The SQLite file (recreated at every start).
    #[arg(long, default_value = "retract-demo.db")]
    database: String,
    /// A browser origin allowed to call over gRPC-Web (CORS), e.g. `http://127.0.0.1:8080`;
    /// repeat the flag for more. None by default: browsers are refused.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// PEM certificate chain: serve TLS with it (browsers then speak HTTP/2).
    #[arg(long, requires_all = ["tls_key_file", "tls_ca_file"])]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// PEM CA certificate the demo trusts for its own calls to the TLS server (seeding).
    #[arg(long, requires = "tls_cert_file")]
    tls_ca_file: Option<PathBuf>,
    /// Also deliver the message to this many more mailboxes (user01…@contoso.com).
    #[arg(long, default_value_t = 0)]
    extra_recipients: usize,
    /// Latency the simulated Microsoft Graph adds to every request once seeded, in ms.
    #[arg(long, default_value_t = 0)]
    graph_latency_ms: u64,
    /// Up to this much more random latency per Graph request, in ms.
    #[arg(long, default_value_t = 0)]
    graph_jitter_ms: u64,
    /// Mailboxes one retract job processes at once (default: the server's).
    #[arg(long)]
    mailbox_concurrency: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(
        retract_server::config::LogFormat::Human,
        "warn,retract_server=info",
        None,
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", cli.database));
    }

    let users = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let extra: Vec<String> = (1..=cli.extra_recipients)
        .map(|n| format!("user{n:02}@contoso.com"))
        .collect();
    let mut recipients: Vec<String> = ["alice", "bob", "carol"]
        .map(|u| format!("{u}@contoso.com"))
        .to_vec();
    recipients.extend(extra.iter().cloned());
    let mut contoso = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(
            User::new("admin@contoso.com")
                .admin()
                .display_name("Contoso Admin"),
        );
    for user in users {
        contoso = contoso.user(User::new(format!("{user}@contoso.com")));
    }
    for user in &extra {
        contoso = contoso.user(User::new(user.clone()));
    }
    let phish = Mail::new(MESSAGE, "ceo@evil.example")
        .subject("Urgent: wire transfer today")
        .to(recipients.clone());
    let reply = phish
        .reply("<re-urgent@contoso.com>", "bob@contoso.com")
        .to(["dave@contoso.com"]);
    // The conversation a depth-2 retract follows: Alice forwarded the phish to Erin (hop 1),
    // who forwarded it to Frank (hop 2) and to a partner outside (reported, not followed).
    let forward = phish
        .forward("<fw-urgent@contoso.com>", "alice@contoso.com")
        .to(["erin@contoso.com"]);
    let forward_again = forward
        .forward("<fw-fw-urgent@contoso.com>", "erin@contoso.com")
        .to(["frank@contoso.com", "partner@fabrikam.example"]);
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(contoso)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(phish)
        .mail(reply)
        .mail(forward)
        .mail(forward_again)
        .start()
        .await
        .context("starting graph-sim")?;

    let settings = Settings {
        listen_addr: cli.listen,
        database_url: format!("sqlite://{}?mode=rwc", cli.database),
        graph_base_url: sim.graph_base_url(),
        login_base_url: sim.login_base_url(),
        graph_client_id: CLIENT_ID.to_owned(),
        graph_client_secret: Some(CLIENT_SECRET.into()),
        log_filter: "warn,retract_server=info".to_owned(),
        cors_allowed_origins: cli.cors_origins.clone(),
        tls_cert_file: cli.tls_cert_file.clone(),
        tls_key_file: cli.tls_key_file.clone(),
        mailbox_concurrency: cli
            .mailbox_concurrency
            .unwrap_or(Settings::default().mailbox_concurrency),
        ..Settings::default()
    };
    let app = Application::build(settings)
        .await
        .context("starting retract-server")?;
    let addr = app.local_addr();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = tokio::signal::ctrl_c().await;
    }));

    let ca = match &cli.tls_ca_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let scheme = if ca.is_some() { "https" } else { "http" };
    let service = DevToken::service("demo-portal").all_permissions().mint()?;
    let client = Client::connect_trusting(format!("{scheme}://{addr}"), ca.as_deref())
        .await
        .context("connecting to retract-server")?
        .with_token(&service)?;
    seed(&client, ca.as_deref(), &recipients).await?;
    if cli.graph_latency_ms > 0 || cli.graph_jitter_ms > 0 {
        sim.set_latency(LatencySettings {
            default: Latency::with_jitter(cli.graph_latency_ms, cli.graph_jitter_ms),
            ..LatencySettings::default()
        });
    }
    let more = match extra.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    if !cli.cors_origins.is_empty() {
        println!(
            "gRPC-Web (CORS) allowed from: {}",
            cli.cors_origins.join(", ")
        );
    }

    let (grpcurl_tls, buf_tls, retractctl_tls) = match &cli.tls_ca_file {
        Some(ca) => (
            format!("-cacert {}", ca.display()),
            format!("--cacert {}", ca.display()),
            format!(" RETRACT_CA_FILE={}", ca.display()),
        ),
        None => (
            "-plaintext".to_owned(),
            "--http2-prior-knowledge".to_owned(),
            String::new(),
        ),
    };
    let admin = DevToken::admin("admin@contoso.com", "acme")
        .all_permissions()
        .mint()?;
    println!(
        "\nretract is running on {addr} (SQLite file {db}), with a simulated Microsoft 365 tenant
Contoso at {graph}. Tenant `acme` owns contoso.com (Granted), and {MESSAGE} was delivered to
alice, bob and carol @contoso.com{more}. Bob replied to it (to Dave too), Alice forwarded it to
Erin, and Erin forwarded that to Frank and to a partner outside: a conversation two hops deep.

Caller token of admin@contoso.com (all permissions, 1 hour):
  export TOKEN={admin}

See who can be retracted, then retract it and watch every mailbox:
  grpcurl {grpcurl_tls} -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\",\"internet_message_id\":\"{MESSAGE}\"}}' {addr} retract.v1.RetractService/GetRetractOptions
  grpcurl {grpcurl_tls} -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\",\"request_id\":\"{REQUEST_ID}\",\"options\":{{\"internet_message_id\":\"{MESSAGE}\",\"delete_mode\":\"DELETE_MODE_SOFT\"}}}}' {addr} retract.v1.RetractService/Retract
  grpcurl {grpcurl_tls} -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\",\"section\":\"AUDIT_SECTION_RETRACT\"}}' {addr} retract.v1.AuditService/ListAuditEvents

Or follow the conversation too — replies and forwards inside contoso.com, two hops deep (the
stream shows a ConversationUpdate for each mailbox and the depth each was reached at):
  grpcurl {grpcurl_tls} -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\",\"request_id\":\"{CONVERSATION_REQUEST_ID}\",\"options\":{{\"internet_message_id\":\"{MESSAGE}\",\"delete_mode\":\"DELETE_MODE_SOFT\",\"include_conversations\":true,\"conversation_depth\":2}}}}' {addr} retract.v1.RetractService/Retract

The same with buf curl (gRPC, not Connect):
  buf curl --protocol grpc {buf_tls} -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\"}}' {scheme}://{addr}/retract.v1.TenantService/ListDomains

Or retractctl:
  export RETRACT_TOKEN=$TOKEN RETRACT_ENDPOINT={scheme}://{addr}{retractctl_tls}
  cargo run -q -p retract-client --bin retractctl -- domains list acme
  cargo run -q -p retract-client --bin retractctl -- options acme '{MESSAGE}'
  cargo run -q -p retract-client --bin retractctl -- retract acme '{MESSAGE}' --mode soft
  cargo run -q -p retract-client --bin retractctl -- retract acme '{MESSAGE}' --mode soft --depth 2
  cargo run -q -p retract-client --bin retractctl -- jobs acme      # then: targets / watch / restore acme JOB

Mailbox contents as the simulator sees them: curl {graph}/_sim/mailboxes/alice@contoso.com
Ctrl-C stops.",
        db = cli.database,
        graph = sim.graph_base_url(),
    );
    server.await??;
    Ok(())
}

/// Creates tenant `acme` with contoso.com, grants permissions through the consent flow as the
/// simulated administrator would in a browser, and records the delivery.
async fn seed(client: &Client, ca: Option<&[u8]>, recipients: &[String]) -> anyhow::Result<()> {
    client
        .tenant_service()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "acme".into(),
            display_name: "Acme (demo)".into(),
        })
        .await?;
    client
        .tenant_service()
        .add_domain(pb::AddDomainRequest {
            tenant_id: "acme".into(),
            domain: "contoso.com".into(),
        })
        .await?;
    let consent_url = client
        .tenant_service()
        .start_grant(pb::StartGrantRequest {
            tenant_id: "acme".into(),
            allow_relink: false,
        })
        .await?
        .into_inner()
        .consent_url;
    let mut browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca {
        browser = browser.add_root_certificate(reqwest::Certificate::from_pem(ca)?);
    }
    let browser = browser.build()?;
    let answer = browser.get(&consent_url).send().await?;
    let callback = answer
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .context("the simulated Microsoft did not redirect back")?
        .to_owned();
    let page = browser.get(&callback).send().await?;
    anyhow::ensure!(
        page.status().is_success(),
        "consent callback answered {}",
        page.status()
    );
    client
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "acme".into(),
            delivery: Some(pb::Delivery {
                internet_message_id: MESSAGE.into(),
                sender: "ceo@evil.example".into(),
                subject: "Urgent: wire transfer today".into(),
                delivery_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 600,
                    nanos: 0,
                }),
                recipients: recipients.to_vec(),
                ..Default::default()
            }),
        })
        .await?;
    Ok(())
}
