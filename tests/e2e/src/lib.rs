//! retract's end-to-end tests, in one test binary (each extra binary costs a link of the
//! whole server).
//!
//! # Layout
//! - [`db`]: a fresh database per test — an SQLite file in a temporary folder, or a PostgreSQL
//!   database copied from a migrated template — and a way to take it away (outages).
//! - [`app`]: [`app::TestApp`], the server library on 127.0.0.1:0 against such a database,
//!   called through `retract-client` with development tokens.
//! - [`backends`]: the [`on_both_backends!`] macro: one test body, run on SQLite and on
//!   PostgreSQL. With `RETRACT_TEST_POSTGRES_URL` unset the PostgreSQL half skips loudly; set,
//!   an unreachable server fails the test. Each finished body appends a line to
//!   `RETRACT_TEST_RUN_LOG` (if set) so CI can count what ran on each backend.
//! - [`process`]: the built `retract-server` binary as a real process (SIGKILL, SIGTERM) and
//!   a TCP proxy that takes PostgreSQL away from it, for the failure tests.
//! - [`fanout`]: the conversation fan-out of the `conversation_fanout` bench seeded into
//!   graph-sim (1,000 recipients, forwards two hops deep), and the copies it leaves.
//! - test modules (under `cfg(test)`), named after the product's stories; `fuzz` runs
//!   proptest over every RPC and over mutated Graph answers; `cli` runs the built
//!   `retractctl` as a process; `client_library` the Rust client's resuming streams, retries
//!   and typed errors.

pub mod app;
pub mod backends;
pub mod db;
pub mod fanout;
pub mod fixtures;
pub mod process;
pub mod scenarios;
pub mod status;

#[cfg(test)]
mod audit_trail;
#[cfg(test)]
mod callers;
#[cfg(test)]
mod cli;
#[cfg(test)]
mod client_library;
#[cfg(test)]
mod conversations;
#[cfg(test)]
mod deliveries;
#[cfg(test)]
mod domains;
#[cfg(test)]
mod failing_runs;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod grants;
#[cfg(test)]
mod graph_mail;
#[cfg(test)]
mod graph_tokens;
#[cfg(test)]
mod hostile_microsoft;
#[cfg(test)]
mod isolation;
#[cfg(test)]
mod issuer_keys;
#[cfg(test)]
mod job_read_model;
#[cfg(test)]
mod migrations;
#[cfg(test)]
mod observability;
#[cfg(test)]
mod offboarding;
#[cfg(test)]
mod offboarding_races;
#[cfg(test)]
mod operations;
#[cfg(test)]
mod process_failures;
#[cfg(test)]
mod restore;
#[cfg(test)]
mod retract;
#[cfg(test)]
mod tenants;
#[cfg(test)]
mod throttled;
#[cfg(test)]
mod transport_security;
#[cfg(test)]
mod watching;
