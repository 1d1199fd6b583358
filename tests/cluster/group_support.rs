//! Shared by the cluster's consumer-group tests (failover.rs, coordinator.rs): where a group's
//! coordinator lives.
//!
//! Must not assert anything about the consumer.

use std::time::{Duration, Instant};

use avro_edge_testkit::KafkaCluster;

/// Java's `String.hashCode` (ASCII), as Kafka uses to place a group on `__consumer_offsets`.
fn java_hash(s: &str) -> i32 {
    s.bytes()
        .fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(b as i32))
}

/// The node index of `group`'s coordinator: the leader of its `__consumer_offsets` partition.
pub fn coordinator_index(c: &KafkaCluster, group: &str) -> usize {
    // The test kit runs `__consumer_offsets` with 1 partition (Kafka's default is 50).
    let count = if c.leader("__consumer_offsets", 1).ok().flatten().is_some() {
        50
    } else {
        1
    };
    let p = (java_hash(group) & 0x7fff_ffff) % count;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(l)) = c.leader("__consumer_offsets", p) {
            return c.index_of(l).expect("node index");
        }
        assert!(
            Instant::now() < deadline,
            "no leader for __consumer_offsets-{p}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
