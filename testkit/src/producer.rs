//! The producer settings the cluster fault tests share (kafka_failover, kafka_idempotence): the topic
//! auto-created with the test's partitions and replication, a delivery timeout that outlasts a leader
//! election, and a request timeout short enough to notice a dead broker.
//!
//! Must not start anything: it only builds a configuration.

use std::time::Duration;

use avro_edge::{ProducerConfig, TopicSpec};

/// A producer config for `bootstrap` (`host:port`, comma-separated) that creates missing topics with
/// `partitions` partitions and replication factor `replication`; delivery timeout 60 s, request
/// timeout 10 s.
pub fn cluster_producer_config(
    bootstrap: &str,
    partitions: i32,
    replication: i16,
) -> ProducerConfig {
    let mut cfg = ProducerConfig::new(bootstrap.split(','));
    cfg.auto_create = Some(TopicSpec {
        partitions,
        replication,
    });
    cfg.delivery_timeout = Duration::from_secs(60);
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}
