//! The Rust API: [`GraphSimBuilder`] seeds and starts a simulator, [`GraphSim`] is the running
//! simulator that tests read from and steer.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::core::{BaseUrls, Sim};
use crate::hold::Hold;
use crate::identity::issue;
use crate::identity::tokens::SigningError;
use crate::record::{RequestRecord, Service, ThrottleEvent};
use crate::seed::{App, ConversationIds, Fixture, Folder, Mail, PlacedMessage, Tenant};
use crate::settings::{FaultSettings, LatencySettings, Limits, Settings, SignIn};
use crate::state::{MailboxMessage, SeedError};

/// Every folder of one mailbox with its messages.
pub type MailboxContents = BTreeMap<Folder, Vec<MailboxMessage>>;

/// Why the simulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("inconsistent seed: {0}")]
    Seed(#[from] SeedError),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
}

/// A fixture file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read fixture: {0}")]
    Read(#[from] std::io::Error),
    #[error("invalid fixture: {0}")]
    Parse(#[from] serde_json::Error),
}

/// Why a token could not be minted through the handle.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no tenant {0}")]
    UnknownTenant(String),
    #[error("no app {0}")]
    UnknownApp(String),
    #[error("no user {0}")]
    UnknownUser(String),
    #[error(transparent)]
    Signing(#[from] SigningError),
}

/// Seeds and configures a simulator; [`GraphSimBuilder::start`] runs it.
#[derive(Debug, Clone, Default)]
pub struct GraphSimBuilder {
    fixture: Fixture,
    settings: Settings,
    rng_seed: Option<u64>,
    single_port: bool,
}

impl GraphSimBuilder {
    /// Replaces the whole seed.
    pub fn fixture(mut self, fixture: Fixture) -> Self {
        self.fixture = fixture;
        self
    }

    /// Adds everything in a JSON fixture to the seed.
    pub fn fixture_json(mut self, json: &str) -> Result<Self, serde_json::Error> {
        let more = Fixture::from_json(json)?;
        self.fixture.apps.extend(more.apps);
        self.fixture.tenants.extend(more.tenants);
        self.fixture.mails.extend(more.mails);
        self.fixture.messages.extend(more.messages);
        if more.conversation_ids != ConversationIds::default() {
            self.fixture.conversation_ids = more.conversation_ids;
        }
        Ok(self)
    }

    /// Adds everything in a JSON fixture file to the seed.
    pub fn fixture_file(self, path: impl AsRef<std::path::Path>) -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(path.as_ref())?;
        Ok(self.fixture_json(&text)?)
    }

    /// Registers an app (usable in every tenant that consented to it).
    pub fn app(mut self, app: App) -> Self {
        self.fixture.apps.push(app);
        self
    }

    /// Adds a tenant with its domains, consents and users.
    pub fn tenant(mut self, tenant: Tenant) -> Self {
        self.fixture.tenants.push(tenant);
        self
    }

    /// Delivers a mail (sender's copy in `sentitems`, recipients' in `inbox`).
    pub fn mail(mut self, mail: Mail) -> Self {
        self.fixture.mails.push(mail);
        self
    }

    /// Places one message copy in one folder.
    pub fn message(mut self, message: PlacedMessage) -> Self {
        self.fixture.messages.push(message);
        self
    }

    /// One `conversationId` per thread in every mailbox, instead of the default per-mailbox
    /// ids (see [`ConversationIds`]).
    pub fn global_conversation_ids(mut self) -> Self {
        self.fixture.conversation_ids = ConversationIds::Global;
        self
    }

    /// Replaces all start settings.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Throttling limits at start.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// Injected latency at start.
    pub fn latency(mut self, latency: LatencySettings) -> Self {
        self.settings.latency = latency;
        self
    }

    /// Injected faults at start.
    pub fn faults(mut self, faults: FaultSettings) -> Self {
        self.settings.faults = faults;
        self
    }

    /// What authorize / adminconsent do (default: decline).
    pub fn sign_in(mut self, sign_in: SignIn) -> Self {
        self.settings.sign_in = sign_in;
        self
    }

    /// Lifetime of issued tokens (whole seconds in the token; 0 issues expired tokens).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.token_lifetime_ms = lifetime.as_millis() as u64;
        self
    }

    /// Default page size of message lists (Graph: 10).
    pub fn page_size(mut self, size: usize) -> Self {
        self.settings.page_size = size;
        self
    }

    /// Seeds the random generator (fault draws, jitter, batch order, codes) for reproducible runs.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// Serves Graph and the identity platform on one port instead of two.
    pub fn single_port(mut self) -> Self {
        self.single_port = true;
        self
    }

    /// Starts on free ports of 127.0.0.1.
    pub async fn start(self) -> Result<GraphSim, StartError> {
        self.start_on(0, 0).await
    }

    /// Starts on the given ports of 127.0.0.1 (0 = any free port; `login_port` is ignored with
    /// [`GraphSimBuilder::single_port`]).
    pub async fn start_on(self, graph_port: u16, login_port: u16) -> Result<GraphSim, StartError> {
        let sim = Arc::new(Sim::new(self.fixture, self.settings, self.rng_seed)?);
        let bind = |port: u16| async move {
            crate::server::listen(port).map_err(|source| StartError::Bind { port, source })
        };
        let local = |listener: &TcpListener, port: u16| {
            listener
                .local_addr()
                .map_err(|source| StartError::Bind { port, source })
        };
        let shutdown = CancellationToken::new();
        let graph_listener = bind(graph_port).await?;
        let graph_addr = local(&graph_listener, graph_port)?;
        let graph_router =
            crate::graph::router(sim.clone()).merge(crate::admin::router(sim.clone()));
        let login_addr = if self.single_port {
            let router = graph_router.merge(crate::identity::router(sim.clone()));
            tokio::spawn(crate::server::serve(
                graph_listener,
                router,
                shutdown.clone(),
            ));
            graph_addr
        } else {
            let login_listener = bind(login_port).await?;
            let login_addr = local(&login_listener, login_port)?;
            let login_router: Router =
                crate::identity::router(sim.clone()).merge(crate::admin::router(sim.clone()));
            tokio::spawn(crate::server::serve(
                graph_listener,
                graph_router,
                shutdown.clone(),
            ));
            tokio::spawn(crate::server::serve(
                login_listener,
                login_router,
                shutdown.clone(),
            ));
            login_addr
        };
        sim.set_urls(BaseUrls {
            graph: format!("http://{graph_addr}"),
            login: format!("http://{login_addr}"),
        });
        Ok(GraphSim {
            sim,
            shutdown,
            graph_addr,
            login_addr,
        })
    }
}

/// A running simulator. Dropping it stops the listeners.
pub struct GraphSim {
    sim: Arc<Sim>,
    shutdown: CancellationToken,
    graph_addr: SocketAddr,
    login_addr: SocketAddr,
}

impl Drop for GraphSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl GraphSim {
    /// An empty simulator to seed and start.
    pub fn builder() -> GraphSimBuilder {
        GraphSimBuilder::default()
    }

    /// `http://127.0.0.1:{port}`; the service appends `/v1.0/…`.
    pub fn graph_base_url(&self) -> String {
        format!("http://{}", self.graph_addr)
    }

    /// `http://127.0.0.1:{port}`; the service appends `/{tenant}/oauth2/v2.0/token` etc.
    pub fn login_base_url(&self) -> String {
        format!("http://{}", self.login_addr)
    }

    /// The Graph listener's address.
    pub fn graph_addr(&self) -> SocketAddr {
        self.graph_addr
    }

    /// The identity-platform listener's address.
    pub fn login_addr(&self) -> SocketAddr {
        self.login_addr
    }

    /// Every request (Graph, `$batch` sub-requests and identity platform) in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.sim.recorder.requests()
    }

    /// Only the Graph requests.
    pub fn graph_requests(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.service == Service::Graph)
            .collect()
    }

    /// Requests dropped from the log because `max_recorded_requests` was reached.
    pub fn dropped_records(&self) -> u64 {
        self.sim.recorder.dropped()
    }

    /// Every 429 (and injected throttle) the simulator sent.
    pub fn throttle_events(&self) -> Vec<ThrottleEvent> {
        self.sim.recorder.throttles()
    }

    /// Most concurrent requests seen against one mailbox (any address, UPN or id of its user),
    /// counting the ones that were throttled.
    pub fn peak_concurrency(&self, mailbox: &str) -> usize {
        let Some(mail) = self.primary_address(mailbox) else {
            return 0;
        };
        self.sim.peak_concurrency().get(&mail).copied().unwrap_or(0)
    }

    /// Peak concurrency of every mailbox that was called, by primary address (lower case).
    pub fn peak_concurrency_by_mailbox(&self) -> HashMap<String, usize> {
        self.sim.peak_concurrency()
    }

    fn primary_address(&self, key: &str) -> Option<String> {
        self.sim
            .world
            .read()
            .directory
            .user_by_any(key)
            .map(|u| u.mail.to_ascii_lowercase())
    }

    /// Every folder of a mailbox (any address, UPN or id of its user).
    pub fn mailbox(&self, key: &str) -> Option<MailboxContents> {
        let world = self.sim.world.read();
        let user = world.directory.user_by_any(key)?;
        world.contents(&user.id)
    }

    /// The messages in one folder of a mailbox (empty for an unknown mailbox).
    pub fn messages_in(&self, key: &str, folder: Folder) -> Vec<MailboxMessage> {
        self.mailbox(key)
            .and_then(|mut c| c.remove(&folder))
            .unwrap_or_default()
    }

    /// Every copy of one internet message in a mailbox, in any folder (dumpster included):
    /// where did the service's deletes put them?
    pub fn copies_of(&self, key: &str, internet_message_id: &str) -> Vec<MailboxMessage> {
        self.mailbox(key)
            .into_iter()
            .flat_map(|contents| contents.into_values().flatten())
            .filter(|m| m.internet_message_id == internet_message_id)
            .collect()
    }

    /// The `conversationId` a mail's thread has in one mailbox (any address, UPN or id of its
    /// user); `None` for an unknown mailbox. It differs between mailboxes unless the simulator
    /// was built with [`GraphSimBuilder::global_conversation_ids`].
    pub fn conversation_id_in(&self, key: &str, mail: &Mail) -> Option<String> {
        let world = self.sim.world.read();
        let user = world.directory.user_by_any(key)?;
        world.with_mailbox(&user.id, |m| m.conversation_id(&mail.conversation()))
    }

    /// The folder id of a well-known folder in one mailbox (what `parentFolderId` says).
    pub fn folder_id(&self, key: &str, folder: Folder) -> Option<String> {
        let world = self.sim.world.read();
        let user = world.directory.user_by_any(key)?;
        world.with_mailbox(&user.id, |m| m.folder_id(folder).to_owned())
    }

    /// The object id of a user (any address or UPN).
    pub fn user_id(&self, key: &str) -> Option<String> {
        self.sim
            .world
            .read()
            .directory
            .user_by_any(key)
            .map(|u| u.id.clone())
    }

    /// Whether an administrator of `tenant` (id or domain) consented to `client_id`.
    pub fn has_consent(&self, tenant: &str, client_id: &str) -> bool {
        self.sim
            .world
            .read()
            .directory
            .tenant(tenant)
            .is_some_and(|t| t.consents.contains(client_id))
    }

    /// Changes an app registration in place (an administrator rotating its secret or
    /// certificates); `false` when no such app is registered.
    pub fn update_app(&self, client_id: &str, change: impl FnOnce(&mut App)) -> bool {
        match self.sim.world.write().directory.app_mut(client_id) {
            Some(app) => {
                change(app);
                true
            }
            None => false,
        }
    }

    /// Delivers a mail now.
    pub fn deliver(&self, mail: &Mail) {
        self.sim.world.write().deliver(mail);
    }

    /// Back to the seed and the start settings; logs, throttling state and grants cleared.
    pub fn reset(&self) -> Result<(), SeedError> {
        self.sim.reset()
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.sim.settings.read().clone()
    }

    /// Changes settings in place.
    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.sim.settings.write());
    }

    /// Changes injected latency from the next request on.
    pub fn set_latency(&self, latency: LatencySettings) {
        self.update_settings(|s| s.latency = latency);
    }

    /// Changes injected faults from the next request on.
    pub fn set_faults(&self, faults: FaultSettings) {
        self.update_settings(|s| s.faults = faults);
    }

    /// Changes throttling limits from the next request on.
    pub fn set_limits(&self, limits: Limits) {
        self.update_settings(|s| s.limits = limits);
    }

    /// Changes what authorize / adminconsent do.
    pub fn set_sign_in(&self, sign_in: SignIn) {
        self.update_settings(|s| s.sign_in = sign_in);
    }

    /// Holds Graph requests after authentication and throttling (so they occupy their
    /// concurrency slots) until the returned [`Hold`] is released or dropped.
    pub fn hold_graph_requests(&self) -> Hold {
        Hold::new(self.sim.gate.clone())
    }

    /// Every Graph call gets 429 for `duration`.
    pub fn start_throttle_storm(&self, duration: Duration) {
        self.sim.chaos.start_storm(Instant::now(), duration);
    }

    /// Every Graph call to `mailbox` (its `mail`) gets 429 with `Retry-After:
    /// retry_after_secs` for `duration`: Graph throttling one mailbox of the app (its
    /// per-mailbox limits), as it does when another app or an earlier burst used them up.
    pub fn throttle_mailbox(&self, mailbox: &str, duration: Duration, retry_after_secs: u64) {
        self.sim
            .chaos
            .throttle_mailbox(mailbox, Instant::now(), duration, retry_after_secs);
    }

    /// Ends a storm early.
    pub fn stop_throttle_storm(&self) {
        self.sim.chaos.stop_storm();
    }

    /// Moves the token clock forward (tokens issued before expire sooner).
    pub fn advance_clock(&self, by: Duration) {
        self.sim.advance_clock(by.as_secs() as i64);
    }

    /// Mints an app-only token as the token endpoint would (no consent check), valid for
    /// `lifetime_secs` (0 or negative: already expired).
    pub fn app_token(
        &self,
        tenant: &str,
        client_id: &str,
        lifetime_secs: i64,
    ) -> Result<String, MintError> {
        let (tenant_id, app) = {
            let world = self.sim.world.read();
            let tenant_id = world
                .directory
                .tenant(tenant)
                .map(|t| t.id.clone())
                .ok_or_else(|| MintError::UnknownTenant(tenant.to_owned()))?;
            let app = world
                .directory
                .app(client_id)
                .cloned()
                .ok_or_else(|| MintError::UnknownApp(client_id.to_owned()))?;
            (tenant_id, app)
        };
        Ok(issue::app_token(
            &self.sim,
            &tenant_id,
            &app,
            lifetime_secs,
        )?)
    }

    /// Mints a delegated token for `user` with the app's delegated permissions.
    pub fn user_token(
        &self,
        user: &str,
        client_id: &str,
        lifetime_secs: i64,
    ) -> Result<String, MintError> {
        let (user, app) = {
            let world = self.sim.world.read();
            let user = world
                .directory
                .user_by_any(user)
                .cloned()
                .ok_or_else(|| MintError::UnknownUser(user.to_owned()))?;
            let app = world
                .directory
                .app(client_id)
                .cloned()
                .ok_or_else(|| MintError::UnknownApp(client_id.to_owned()))?;
            (user, app)
        };
        Ok(issue::user_token(
            &self.sim,
            &user,
            &app,
            &app.delegated_permissions,
            lifetime_secs,
        )?)
    }
}
