//! graph-sim: a Microsoft Graph and identity-platform simulator for retract's tests.
//!
//! It serves, over plain HTTP on 127.0.0.1, the Graph v1.0 calls and identity-platform flows
//! the service uses, with Microsoft's shapes, status codes and limits (see
//! `shared/design/graph.md`): tenant-scoped users and mailboxes, the three delete modes,
//! `$batch`, OData filters and paging, throttling with `Retry-After`, injected latency and
//! faults. It records every request so tests can assert on what the service did.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use graph_sim::{GraphSim, seed::{App, Domain, Mail, Tenant, User}};
//! let contoso = Tenant::new("Contoso")
//!     .domain(Domain::verified("contoso.com"))
//!     .consent("client-1")
//!     .user(User::new("alice@contoso.com"))
//!     .user(User::new("bob@contoso.com"));
//! let sim = GraphSim::builder()
//!     .app(App::new("client-1", "secret-1"))
//!     .tenant(contoso)
//!     .mail(Mail::new("<m1@contoso.com>", "alice@contoso.com").to(["bob@contoso.com"]))
//!     .start()
//!     .await?;
//! println!("graph at {}/v1.0, login at {}", sim.graph_base_url(), sim.login_base_url());
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! * [`handle`] — the Rust API: [`GraphSimBuilder`] (seed, settings, start) and [`GraphSim`]
//!   (base URLs, request log, peaks, mailbox contents, run-time settings, reset).
//! * [`seed`] — the seed model, also the JSON fixture format: apps, tenants, domains, users,
//!   groups, delivered mail (replies, forwards, drafts), placed messages.
//! * [`conversation`] — Outlook's `conversationIndex`: headers, child blocks, hop counts.
//! * [`settings`] — limits, latency, faults, sign-in behaviour, token lifetime.
//! * `state/` — the mutable world: directory (tenants, users, consents) and mailboxes.
//! * `identity/` — authorize, adminconsent, token endpoint, discovery, token signing.
//! * `graph/` — Graph routes: the per-call preamble (`context`), directory and mail handlers,
//!   `$batch`, JSON rendering, error shapes.
//! * `odata` — query options, string literals, the supported `$filter` forms.
//! * `throttle` — per-mailbox and per-app limits and `Retry-After` penalties.
//! * `faults`, `pipeline` — seeded latency and fault injection; `hold` — the gate tests use
//!   to line up concurrent requests without sleeping.
//! * `middleware`, `record` — request ids and the request / throttle logs.
//! * [`admin`] — the `/_sim/…` HTTP API mirroring the handle.
//! * `server` — the accept loop (with dropped-connection faults); `core` — shared state.
//!
//! # Conventions
//!
//! * Access tokens are HS256 JWTs under a random per-simulator key (opaque to clients, as
//!   Graph's are); id tokens are RS256 with a fixed test key published at
//!   `/{tenant}/discovery/v2.0/keys`.
//! * Ids are derived from the seed, so the same fixture yields the same ids on every run.

pub mod admin;
pub mod conversation;
mod core;
mod faults;
mod graph;
pub mod handle;
mod hold;
mod identity;
mod ids;
mod middleware;
pub mod odata;
mod pipeline;
mod record;
pub mod seed;
mod server;
pub mod settings;
mod state;
mod throttle;

pub use handle::{FixtureError, GraphSim, GraphSimBuilder, MailboxContents, MintError, StartError};
pub use hold::Hold;
pub use identity::tokens::{
    AccessClaims, GRAPH_AUDIENCE, IdClaims, SIGNING_KEY_EXPONENT, SIGNING_KEY_ID,
    SIGNING_KEY_MODULUS,
};
pub use record::{BatchRef, Fault, RequestRecord, Service, ThrottleEvent};
pub use seed::Folder;
pub use settings::{Endpoint, FaultSettings, Latency, LatencySettings, Limits, Settings, SignIn};
pub use state::{Address, InternetMessageHeader, MailboxMessage, SeedError};
pub use throttle::ThrottleReason;
