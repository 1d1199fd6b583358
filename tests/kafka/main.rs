//! The Kafka client, producer and consumer (library and CLI) against one Apache Kafka node, and hostile answers from a fake broker.
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../consumer_support/mod.rs"]
mod consumer_support;

mod broker_smoke;
mod cli_errors;
mod compaction;
mod consumer;
mod consumer_cli;
mod consumer_fetch;
mod consumer_offsets;
mod hostile;
mod producer;
mod producer_cli;
mod sequences;
mod transactions;
