//! Faults on 3-broker Apache Kafka clusters: failover, idempotence, the forwarder under broker kills,
//! a consumer group whose coordinator dies or hangs.
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../consumer_support/mod.rs"]
mod consumer_support;
#[path = "../forward_bin_support/mod.rs"]
mod forward_bin_support;

mod coordinator;
mod eos_support;
mod exactly_once;
mod failover;
mod faults;
mod forward_partial;
mod group_support;
mod idempotence;
mod mixed_epoch;
