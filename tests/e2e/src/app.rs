//! [`TestApp`]: the server library on 127.0.0.1:0 against a fresh database.

use std::{net::SocketAddr, time::Duration};

use retract_client::{Client, DevToken, pb};
use retract_server::{Application, Settings, StartupError};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::db::{Backend, Outage, TestDb};

/// A running server and the database it owns.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its Prometheus endpoint listens, when `metrics_listen` was set.
    pub metrics_addr: Option<SocketAddr>,
    client: Client,
    db: TestDb,
    settings: Settings,
    health: retract_server::health::ServiceHealth,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<Result<(), StartupError>>,
}

/// Settings tuned for tests: port 0, fast health probes, short grace.
pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: database_url.to_owned(),
        database_max_connections: 4,
        database_acquire_timeout_ms: 2_000,
        sqlite_busy_timeout_ms: 100,
        health_probe_interval_ms: 50,
        health_probe_timeout_ms: 1_000,
        shutdown_grace_ms: 1_000,
        cors_allowed_origins: vec!["https://portal.example".to_owned()],
        ..Settings::default()
    }
}

impl TestApp {
    /// Starts a server on a fresh database of `backend`.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server on a fresh database of `backend`, after `adjust` changes its settings.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Self {
        match Self::try_spawn_with(backend, adjust).await {
            Ok(app) => app,
            Err((err, db)) => {
                db.drop_database().await;
                panic!("server does not start: {err}")
            }
        }
    }

    /// Like [`Self::spawn_with`], but hands back the start-up error (and the database, to drop).
    pub async fn try_spawn_with(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
    ) -> Result<Self, (StartupError, TestDb)> {
        Self::try_spawn_on(TestDb::migrated(backend).await, adjust).await
    }

    /// Starts a server on `db` as it is (e.g. empty, with `migrate_on_start` off).
    pub async fn spawn_on(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> Self {
        match Self::try_spawn_on(db, adjust).await {
            Ok(app) => app,
            Err((err, db)) => {
                db.drop_database().await;
                panic!("server does not start: {err}")
            }
        }
    }

    async fn try_spawn_on(
        db: TestDb,
        adjust: impl FnOnce(&mut Settings),
    ) -> Result<Self, (StartupError, TestDb)> {
        let mut settings = test_settings(&db.url);
        adjust(&mut settings);
        match Application::build(settings.clone()).await {
            Ok(app) => Ok(Self::run(app, db, settings)),
            Err(err) => Err((err, db)),
        }
    }

    /// Runs a built server in the background, with a lazy client to it.
    fn run(app: Application, db: TestDb, settings: Settings) -> Self {
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let health = app.health();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            stopped.await.ok();
        }));
        // Lazily: TLS tests bring their own clients and never use this one.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint URL")
            .connect_lazy();
        let client = Client::from_channel(channel);
        Self {
            addr,
            metrics_addr,
            client,
            db,
            settings,
            health,
            shutdown,
            server,
        }
    }

    /// The settings it was started with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What the server's background parts report (engine, Graph credential).
    pub fn health(&self) -> &retract_server::health::ServiceHealth {
        &self.health
    }

    /// A client without a token.
    pub fn anonymous(&self) -> Client {
        self.client.anonymous()
    }

    /// A client calling with `token`.
    pub fn with_token(&self, token: &DevToken) -> Client {
        self.client
            .with_token(&token.mint().expect("mint token"))
            .expect("token is ASCII")
    }

    /// The platform service (all tenants, every permission), as the admin portal backend calls.
    pub fn service(&self) -> Client {
        self.with_token(&DevToken::service("portal-backend").all_permissions())
    }

    /// A human administrator of `tenant` with every permission.
    pub fn admin(&self, email: &str, tenant: &str) -> Client {
        self.with_token(&DevToken::admin(email, tenant).all_permissions())
    }

    /// Creates a tenant through the API as the platform service.
    pub async fn create_tenant(&self, tenant_id: &str) -> pb::Tenant {
        self.service()
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: tenant_id.to_owned(),
                display_name: format!("{tenant_id} Ltd"),
            })
            .await
            .expect("create tenant")
            .into_inner()
            .tenant
            .expect("tenant in response")
    }

    /// Registers a domain through the API as the platform service.
    pub async fn add_domain(&self, tenant_id: &str, domain: &str) -> pb::Domain {
        self.service()
            .tenant_service()
            .add_domain(pb::AddDomainRequest {
                tenant_id: tenant_id.to_owned(),
                domain: domain.to_owned(),
            })
            .await
            .expect("add domain")
            .into_inner()
            .domain
            .expect("domain in response")
    }

    /// A tenant's audit events, newest first (one page of up to 1000).
    pub async fn audit_events(&self, tenant_id: &str) -> Vec<pb::AuditEvent> {
        self.service()
            .audit_service()
            .list_audit_events(pb::ListAuditEventsRequest {
                tenant_id: tenant_id.to_owned(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("list audit events")
            .into_inner()
            .events
    }

    /// A second handle on the server's database, for arranging state no RPC sets (what the
    /// retract engine will record, domain statuses Microsoft would decide).
    pub async fn store(&self) -> retract_server::store::Store {
        retract_server::store::Store::connect(&retract_server::store::DatabaseOptions {
            url: self.db.url.clone(),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(10),
        })
        .await
        .expect("connect to the test database")
    }

    /// The database's URL, for raw checks of what no RPC shows (e.g. that a secret is gone).
    pub fn database_url(&self) -> &str {
        &self.db.url
    }

    /// Takes the database away from the server until the outage ends.
    pub async fn database_outage(&self) -> Outage {
        self.db.outage().await
    }

    /// Asks the server to stop, waits for it (failing the test if it does not stop within
    /// `limit`), and removes its database.
    pub async fn stop_within(self, limit: Duration) {
        self.shutdown.send(()).ok();
        tokio::time::timeout(limit, self.server)
            .await
            .expect("server stops within the limit")
            .expect("server task does not panic")
            .expect("server stops cleanly");
        self.db.drop_database().await;
    }

    /// Stops the server (as a deploy or a crash would) and starts a new one on the same
    /// database and settings.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// Like [`Self::restart`], on the same address: clients that stay connected to it (a
    /// resuming stream, a lazy channel) reach the new server.
    pub async fn restart_on_same_port(self) -> Self {
        let addr = self.addr;
        self.restart_with(|s| s.listen_addr = addr).await
    }

    async fn restart_with(self, adjust: impl FnOnce(&mut Settings)) -> Self {
        let Self {
            db,
            mut settings,
            shutdown,
            server,
            ..
        } = self;
        adjust(&mut settings);
        shutdown.send(()).ok();
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("server stops")
            .expect("server task does not panic")
            .expect("server stops cleanly");
        let app = Application::build(settings.clone())
            .await
            .expect("server restarts");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let health = app.health();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            stopped.await.ok();
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint URL")
            .connect_lazy();
        Self {
            addr,
            metrics_addr,
            client: Client::from_channel(channel),
            db,
            settings,
            health,
            shutdown,
            server,
        }
    }

    /// Stops the server and removes its database.
    pub async fn stop(self) {
        self.stop_within(Duration::from_secs(10)).await;
    }
}

/// An audit event's action as the trail stores it, e.g. `retract_finished`.
pub fn action(e: &pb::AuditEvent) -> String {
    e.action()
        .as_str_name()
        .trim_start_matches("AUDIT_ACTION_")
        .to_ascii_lowercase()
}
