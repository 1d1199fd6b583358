//! Shared by the cluster's consumer-group tests (failover.rs, coordinator.rs): where a group's
//! coordinator lives, and the one-field Avro records (`{"id": long}`, schema id 1) that
//! `avro-edge consume` decodes from an offline schema cache.
//!
//! Must not assert anything about the consumer.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use avro_edge_testkit::{KafkaCluster, tmpdir};

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

/// A schema cache (in a fresh temp dir named after `name`) holding schema id 1, `{"id": long}`.
pub fn id_schema_cache(name: &str) -> PathBuf {
    let dir = tmpdir(name);
    let cache = dir.join("cache");
    std::fs::create_dir_all(cache.join("ids")).unwrap();
    std::fs::create_dir_all(cache.join("subjects")).unwrap();
    std::fs::write(
        cache.join("ids/1.avsc"),
        r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"}]}"#,
    )
    .unwrap();
    cache
}

/// Record `id` in the Confluent wire format with schema id 1 (`{"id": long}`).
pub fn id_value(id: i64) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0, 1];
    avro_long(id, &mut v);
    v
}

/// Zig-zag varint, as Avro writes a `long`.
fn avro_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}
