//! The `[forward]` section: how the forwarder delivers ([`ForwardSettings`]): exactly-once
//! (Kafka transactions that also store the spool position), the records' gateway headers, and
//! the gateway id both are named after.
//!
//! Must not read or judge values (`validate` does) nor start anything: it only holds them.

use std::time::Duration;

/// How the forwarder delivers (`[forward]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSettings {
    /// Each send window one Kafka transaction that also writes this gateway's spool position
    /// (`forward.exactly_once`, default false).
    pub exactly_once: bool,
    /// How long a transaction gathers send windows before it commits
    /// (`forward.commit_interval_ms`, default 100 ms).
    pub commit_interval: Duration,
    /// The compacted topic of committed positions (`forward.positions_topic`, default
    /// `avro-edge-positions`).
    pub positions_topic: String,
    /// This gateway's name (`forward.gateway_id`); `None`: the spool's id.
    pub gateway_id: Option<String>,
    /// Records carry the `avro-edge-gateway` and `avro-edge-seq` headers (`forward.headers`,
    /// default true).
    pub headers: bool,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        ForwardSettings {
            exactly_once: false,
            commit_interval: Duration::from_millis(100),
            positions_topic: "avro-edge-positions".into(),
            gateway_id: None,
            headers: true,
        }
    }
}
