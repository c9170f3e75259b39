//! retract-server: takes delivered email back out of Microsoft 365 mailboxes.
//!
//! The server is this library; `main.rs` only loads [`config::Settings`], installs logging and
//! runs [`startup::Application`]. Tests build the same `Application` on port 0.
//!
//! # Layout
//! - [`config`]: the one settings struct (defaults → TOML → `RETRACT_*` env → flags).
//! - [`domain`]: validated types (`TenantId`, `DomainName`, page tokens, audit vocabulary).
//! - [`api`]: the tonic services; proto ⇄ domain conversion and the one error → `Status` table,
//!   nothing else.
//! - [`auth`]: bearer JWT → `Caller`, and the per-RPC permission table.
//! - [`consent`]: Grant Permissions: admin consent, the browser callback, domain verification.
//! - [`engine`]: retract jobs: accepting them, workers, leases, per-mailbox work, the event
//!   log, and watches that follow a job.
//! - [`graph`]: Microsoft Graph and the identity platform (app-token cache, typed errors,
//!   mailbox operations, the administrator-mailbox check).
//! - [`store`]: sea-orm persistence on SQLite or PostgreSQL, audit written in the same
//!   transaction as each change.
//! - [`health`]: database-aware `grpc.health.v1` status.
//! - [`kept`]: values kept in memory under the version they were made from (the Retract tab).
//! - [`retention`]: removing deliveries past their retention.
//! - [`startup`]: building the server (layers, reflection, health) and graceful shutdown.
//! - [`telemetry`]: structured logs, Prometheus metrics, OpenTelemetry traces.
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod auth;
pub mod config;
pub mod consent;
pub mod domain;
pub mod engine;
pub mod graph;
pub mod health;
pub mod kept;
pub mod retention;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod text;

pub use config::Settings;
pub use startup::{Application, StartupError};
