//! Shared by the consumer tests (tests/kafka/consumer.rs and consumer_offsets.rs,
//! tests/interop/consumer_peers.rs, the group tests in tests/cluster): log setup, a producer for
//! test topics, group settings, polling until N records arrived, and the one-field Avro records
//! (`{"id": long}`, schema id 1) that `avro-edge consume` decodes from an offline schema cache.
//!
//! Must not assert anything about the consumer beyond order per partition (`check_in_order`).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ChildStdout;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use avro_edge::TopicSpec;
use avro_edge::{
    Compression, Consumer, ConsumerConfig, OffsetReset, OutRecord, Producer, ProducerConfig,
    RawRecord,
};
use avro_edge_testkit::tmpdir;

/// Library logs on stderr when `RUST_LOG` is set (e.g. `RUST_LOG=avro_edge=debug`).
pub use avro_edge_testkit::init_logs;

pub fn producer(bootstrap: &str, partitions: i32) -> Producer {
    producer_with(bootstrap, partitions, Compression::None)
}

/// [`producer`] writing batches with `compression`.
pub fn producer_with(bootstrap: &str, partitions: i32, compression: Compression) -> Producer {
    init_logs();
    let mut cfg = ProducerConfig::new([bootstrap]);
    cfg.compression = compression;
    cfg.auto_create = Some(TopicSpec {
        partitions,
        replication: 1,
    });
    cfg.delivery_timeout = Duration::from_secs(20);
    cfg.request_timeout = Duration::from_secs(10);
    Producer::connect(cfg).expect("producer")
}

/// Produce `n` records round the partitions explicitly (key `k{i}`, a header, value `v{i}-...`);
/// returns (partition, offset) → (key, value) as the broker acknowledged them.
pub fn produce(
    p: &Producer,
    topic: &str,
    n: usize,
    tag: &str,
) -> BTreeMap<(i32, i64), (Vec<u8>, Vec<u8>)> {
    let records: Vec<OutRecord> = (0..n)
        .map(|i| OutRecord {
            key: Some(format!("k{i}").into_bytes()),
            value: format!("{tag}-{i}-{}", "x".repeat(i % 50)).into_bytes(),
            headers: vec![("seq".to_string(), i.to_string().into_bytes())],
        })
        .collect();
    let mut out = BTreeMap::new();
    for (r, d) in records.iter().zip(p.send_batch(topic, &records)) {
        let d = d.expect("delivery");
        let offset = d.offset.expect("acks=all gives an offset");
        out.insert(
            (d.partition, offset),
            (r.key.clone().unwrap_or_default(), r.value.clone()),
        );
    }
    out
}

pub fn group_cfg(bootstrap: &str, group: &str, topic: &str) -> ConsumerConfig {
    let mut cfg = ConsumerConfig::group(bootstrap, group, &[topic]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.session_timeout = Duration::from_secs(6);
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.rebalance_timeout = Duration::from_secs(10);
    cfg.request_timeout = Duration::from_secs(20);
    cfg
}

/// Poll until `n` records arrived (or the deadline passes).
pub fn poll_n(c: &mut Consumer, n: usize, within: Duration) -> Vec<RawRecord> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(c.poll(Duration::from_millis(500)).expect("poll"));
    }
    got
}

pub fn check_in_order(got: &[RawRecord]) {
    let mut last: HashMap<i32, i64> = HashMap::new();
    for r in got {
        if let Some(prev) = last.insert(r.partition, r.offset) {
            assert!(
                r.offset > prev,
                "partition {} went from {prev} to {}",
                r.partition,
                r.offset
            );
        }
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

/// The ids `avro-edge consume` prints (one JSON line per `{"id": long}` record), collected from
/// its stdout by a thread until the stream ends.
pub fn printed_ids(stdout: ChildStdout) -> (Arc<Mutex<Vec<i64>>>, JoinHandle<()>) {
    let ids: Arc<Mutex<Vec<i64>>> = Arc::default();
    let out = ids.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            out.lock().unwrap().push(v["id"].as_i64().expect("an id"));
        }
    });
    (ids, reader)
}
