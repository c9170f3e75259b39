//! Tests of graph-sim itself: one test per rule it models, each through a real HTTP client
//! against a simulator on a free port.

mod batch;
mod conversations;
mod directory;
mod faults;
mod fixture;
mod identity;
mod messages;
mod recoverable;
mod support;
mod throttling;
