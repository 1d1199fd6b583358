//! Faults on 3-broker Apache Kafka clusters: failover, idempotence, the forwarder under broker kills.
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../forward_bin_support/mod.rs"]
mod forward_bin_support;

mod eos_support;
mod exactly_once;
mod failover;
mod faults;
mod forward_partial;
mod idempotence;
