//! The Schema Registry client, the offline cache and the test registry, replayed against recorded exchanges (no broker).
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../registry_common/mod.rs"]
mod registry_common;

mod cli;
mod client;
mod replay;
mod server;
