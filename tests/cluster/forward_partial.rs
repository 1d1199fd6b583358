//! The real `avro-edge forward` binary on a 3-node Apache Kafka cluster (test kit, one per test) when one
//! partition fails and the others do not: a topic of 3 partitions with replication factor 1 (one leader per
//! node), the leader of one partition SIGKILLed between two streams. The records of the dead partition fail
//! and are retried alone; the records of the live partitions, acknowledged in the same windows, are not
//! sent again (before per-record acknowledgements the sender resent the rest of every such window: issue 7
//! point 7; this test then read back 373 duplicates of 3,000). Every record is counted by its id on
//! read-back: 0 lost, 0 duplicates.
//!
//! `#[ignore]`d (it needs Apache Kafka); with `cargo test -- --include-ignored` a missing broker fails it.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avro_edge::{Codec, Consumer, ConsumerConfig, OfflineCache, OffsetReset};
use avro_edge_testkit::{
    KafkaCluster, KafkaOpts, create_topic_with_configs, free_addr, metric, tmpdir, unique_topic,
    wait_metric,
};

const BIN: &str = env!("CARGO_BIN_EXE_avro-edge");

fn fixtures() -> PathBuf {
    avro_edge_testkit::root().join("fixtures")
}

/// Reading `i` of 6 sensors (the key is the sensorId); its id is its timestamp.
fn reading(i: u64) -> String {
    format!(
        r#"{{"sensorId":"s-{}","timestamp":{},"temperature":{}.5,"humidity":40.25,"status":"NORMAL"}}"#,
        i % 6,
        1_764_028_800_000u64 + i,
        i % 40
    )
}

fn feed(fwd: &mut Child, ids: std::ops::Range<u64>) {
    let text: String = ids.map(|i| reading(i) + "\n").collect();
    let stdin = fwd.stdin.as_mut().expect("piped stdin");
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.flush().unwrap();
}

/// Read all 3 partitions from the start until `n` distinct ids came, then one more second for
/// duplicates; (id → times read, per-key timestamps in partition order).
fn read_back(bootstrap: &str, topic: &str, n: usize) -> (HashMap<u64, usize>, Vec<(String, u64)>) {
    let parts: Vec<(&str, i32)> = (0..3).map(|p| (topic, p)).collect();
    let mut cfg = ConsumerConfig::assign(bootstrap, &parts);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    let mut c = Consumer::connect(cfg).unwrap();
    let codec = Codec::new(Arc::new(OfflineCache::new(fixtures().join("schema-cache"))));
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut order = Vec::new();
    let end = Instant::now() + Duration::from_secs(90);
    let mut extra: Option<Instant> = None;
    while Instant::now() < end && extra.is_none_or(|t| Instant::now() < t) {
        for r in c.poll(Duration::from_millis(300)).unwrap() {
            let v = codec.decode_json(r.value.as_deref().unwrap()).unwrap();
            let id = v["timestamp"].as_u64().unwrap() - 1_764_028_800_000;
            *seen.entry(id).or_default() += 1;
            order.push((v["sensorId"].as_str().unwrap().to_string(), id));
        }
        if seen.len() >= n && extra.is_none() {
            extra = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    let _ = c.close();
    (seen, order)
}

#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn one_dead_partition_resends_only_its_own_records() {
    let mut cluster = KafkaCluster::start(3, KafkaOpts::default()).expect("3-node Kafka cluster");
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("fwd-partial");
    create_topic_with_configs(&bootstrap, &topic, 3, &[]).unwrap();
    let dir = tmpdir("fwd-partial");
    let m = free_addr().unwrap();
    let log = dir.join("forward.log");
    let mut fwd = Command::new(BIN)
        .args(["forward", "--brokers", &bootstrap, "--topic", &topic])
        .args(["--subject", "sensor-data-value", "--schema-cache"])
        .arg(fixtures().join("schema-cache"))
        .arg("--spool")
        .arg(dir.join("spool"))
        .arg("--dead-letter")
        .arg(dir.join("dead-letter.ndjson"))
        .args(["--metrics-listen", &m, "--drain-timeout-ms", "90000"])
        .args(["--set", "kafka.linger_ms=2"])
        .args(["--set", "kafka.delivery_timeout_ms=4000"])
        .args(["--set", "kafka.request_timeout_ms=3000"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(120);
    feed(&mut fwd, 0..1500);
    wait_metric(&m, "acked_total", |v| v == 1500, limit, Some(&log));
    // Nothing in flight: kill the leader of partition 0 (the records for it are then never written,
    // so the producer cannot duplicate them), and stream on.
    let leader = cluster.leader(&topic, 0).unwrap().expect("a leader");
    let node = cluster.index_of(leader).expect("the leader's node");
    cluster.kill(node).unwrap();
    feed(&mut fwd, 1500..3000);
    wait_metric(&m, "retried_total", |v| v > 0, limit, Some(&log));
    let acked_while_down = metric(&m, "acked_total").unwrap_or(0);
    cluster.start_node(node).unwrap();
    drop(fwd.stdin.take());
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(st) = fwd.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = fwd.kill();
            panic!(
                "forwarder still running:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "forwarder exit {status}:\n{text}");
    let summary = text.lines().last().unwrap_or("").to_string();
    eprintln!(
        "one-dead-partition: acked {acked_while_down} of 3000 while partition 0 was down; {summary}"
    );
    assert!(summary.contains("acked=3000"), "{text}");

    let (seen, order) = read_back(&bootstrap, &topic, 3000);
    let lost = (0..3000).filter(|i| !seen.contains_key(i)).count();
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    eprintln!(
        "one-dead-partition: {} distinct, {lost} lost, {duplicates} duplicates",
        seen.len()
    );
    assert_eq!((lost, duplicates), (0, 0));
    // Per key, in feed order (a key lives on one partition; read order is offset order per partition).
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (key, id) in &order {
        if let Some(prev) = last.insert(key, *id) {
            assert!(prev < *id, "key {key}: {id} after {prev}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
