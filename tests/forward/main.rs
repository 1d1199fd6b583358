//! The forwarder: configuration, the pipeline with scripted sinks, signals, and the real binary against Apache Kafka.
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../forward_bin_support/mod.rs"]
mod forward_bin_support;
#[path = "../forward_support/mod.rs"]
mod forward_support;
#[path = "../spool_support/mod.rs"]
mod spool_support;

mod broker;
mod clock;
mod clock_ahead;
mod config;
mod disk_full;
mod pipeline;
mod refusals;
mod registry;
mod signal;
