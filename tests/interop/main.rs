//! Independent peers: the Java client, librdkafka (Python), kafkajs, apache-avro/fastavro bytes, Java's partitioner.
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../consumer_support/mod.rs"]
mod consumer_support;
#[path = "../wire_support/mod.rs"]
mod wire_support;

mod avro;
mod consumer_peers;
mod java;
mod partitioner;
mod transactions;
