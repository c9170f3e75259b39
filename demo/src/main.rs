//! `retract-demo`: the quickstart. Starts graph-sim (a simulated Microsoft 365 tenant,
//! Contoso) and retract-server on an embedded SQLite file in one process, grants permissions
//! through the real consent flow, records a delivered phishing message, and prints a caller
//! token and the commands that retract it. The production server does not link the simulator.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use graph_sim::{
    GraphSim, SignIn,
    seed::{App, Domain, Mail, Tenant, User},
};
use retract_client::{Client, DevToken, pb};
use retract_server::{Application, Settings, telemetry};

const CLIENT_ID: &str = "5f0c4b8e-3d2a-4c61-9b7e-1a2b3c4d5e6f";
const CLIENT_SECRET: &str = "demo-client-secret";
const MESSAGE: &str = "<urgent-wire-transfer@evil.example>";
/// The idempotency key the printed Retract command uses (the database is new at every start).
const REQUEST_ID: &str = "6a0ee4c2-7c1e-4c62-9d7e-2f4b5a6c7d8e";

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(
        retract_server::config::LogFormat::Human,
        "warn,retract_server=info",
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", cli.database));
    }

    let users = ["alice", "bob", "carol", "dave"];
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
    let phish = Mail::new(MESSAGE, "ceo@evil.example")
        .subject("Urgent: wire transfer today")
        .to(["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"]);
    let reply = phish
        .reply("<re-urgent@contoso.com>", "bob@contoso.com")
        .to(["dave@contoso.com"]);
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(contoso)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(phish)
        .mail(reply)
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
        ..Settings::default()
    };
    let app = Application::build(settings)
        .await
        .context("starting retract-server")?;
    let addr = app.local_addr();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = tokio::signal::ctrl_c().await;
    }));

    let service = DevToken::service("demo-portal").all_permissions().mint()?;
    let client = Client::connect(format!("http://{addr}"))
        .await?
        .with_token(&service)?;
    seed(&client).await?;

    let admin = DevToken::admin("admin@contoso.com", "acme")
        .all_permissions()
        .mint()?;
    println!(
        "\nretract is running on {addr} (SQLite file {db}), with a simulated Microsoft 365 tenant
Contoso at {graph}. Tenant `acme` owns contoso.com (Granted), and {MESSAGE} was delivered to
alice, bob and carol @contoso.com.

Caller token of admin@contoso.com (all permissions, 1 hour):
  export TOKEN={admin}

See who can be retracted, then retract it and watch every mailbox:
  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\",\"internet_message_id\":\"{MESSAGE}\"}}' {addr} retract.v1.RetractService/GetRetractOptions
  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\",\"request_id\":\"{REQUEST_ID}\",\"options\":{{\"internet_message_id\":\"{MESSAGE}\",\"delete_mode\":\"DELETE_MODE_SOFT\"}}}}' {addr} retract.v1.RetractService/Retract
  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\",\"section\":\"AUDIT_SECTION_RETRACT\"}}' {addr} retract.v1.AuditService/ListAuditEvents

The same with buf curl (gRPC, not Connect):
  buf curl --protocol grpc --http2-prior-knowledge -H \"authorization: Bearer $TOKEN\" -d '{{\"tenant_id\":\"acme\"}}' http://{addr}/retract.v1.TenantService/ListDomains

Or retractctl:
  export RETRACT_TOKEN=$TOKEN RETRACT_ENDPOINT=http://{addr}
  cargo run -q -p retract-client --bin retractctl -- options acme '{MESSAGE}'
  cargo run -q -p retract-client --bin retractctl -- retract acme '{MESSAGE}' --mode soft

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
async fn seed(client: &Client) -> anyhow::Result<()> {
    client
        .tenants()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "acme".into(),
            display_name: "Acme (demo)".into(),
        })
        .await?;
    client
        .tenants()
        .add_domain(pb::AddDomainRequest {
            tenant_id: "acme".into(),
            domain: "contoso.com".into(),
        })
        .await?;
    let consent_url = client
        .tenants()
        .start_grant(pb::StartGrantRequest {
            tenant_id: "acme".into(),
            allow_relink: false,
        })
        .await?
        .into_inner()
        .consent_url;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = browser.get(&consent_url).send().await?;
    let callback = answer
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .context("the simulated Microsoft did not redirect back")?
        .to_owned();
    let page = reqwest::get(&callback).await?;
    anyhow::ensure!(
        page.status().is_success(),
        "consent callback answered {}",
        page.status()
    );
    client
        .retract()
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
                recipients: vec![
                    "alice@contoso.com".into(),
                    "bob@contoso.com".into(),
                    "carol@contoso.com".into(),
                ],
                ..Default::default()
            }),
        })
        .await?;
    Ok(())
}
