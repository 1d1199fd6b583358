//! Interop with Apache Kafka's own Java client (kafka-clients 4.1.1, peers/java/Peer.java) against
//! a real broker, byte for byte both ways, on 3-partition topics:
//! - our `Producer` → the Java consumer: every key and value (binary, empty, and Confluent-framed
//!   Avro SensorData encoded by our `Codec` from fixtures/) arrives unchanged at the offset we
//!   were acknowledged, and keyed records sit on the partition `partition_for_key` (murmur2) gives;
//! - the Java producer (its default partitioner) → our group `Consumer`: the same bytes, in the
//!   Java send order per partition, keyed records on our murmur2 partition, and the Avro values
//!   decode with our `Codec` to the fixture records and re-encode to the same bytes.
//!
//! Both directions run uncompressed and with lz4 and zstd batches (Java's lz4-java and zstd-jni
//! against our lz4_flex and ruzstd). Java's transactional producer → our consumer's
//! `isolation_level`: aborted, committed and open transactions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consumer_support::*;
use avro_edge::{
    Codec, Compression, Consumer, ConsumerConfig, IsolationLevel, OfflineCache, OffsetReset,
    OutRecord, partition_for_key,
};
use avro_edge_testkit::{require_broker, require_java_peer, root, run_with_input, unique_topic};
use serde_json::Value;

const PARTITIONS: i32 = 3;
const SUBJECT: &str = "sensor-data-value";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fixtures() -> PathBuf {
    root().join("fixtures")
}

fn codec() -> Codec {
    Codec::new(Arc::new(OfflineCache::new(fixtures().join("schema-cache"))))
}

/// The SensorData fixture readings as (natural JSON, Confluent-framed Avro by our codec): the
/// feed's valid lines (it also holds lines that are not JSON or break the schema, for the
/// forwarder's dead-letter tests; the same filter as tests/forward/pipeline.rs).
fn sensor_readings(codec: &Codec) -> Vec<(Value, Vec<u8>)> {
    let text = std::fs::read_to_string(fixtures().join("sensor-readings.ndjson")).unwrap();
    let good: Vec<(Value, Vec<u8>)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["timestamp"].is_i64() && v["status"] != "ON_FIRE")
        .map(|v| {
            let framed = codec.encode_json(SUBJECT, &v).unwrap();
            assert_eq!(framed[0], 0, "Confluent magic byte");
            (v, framed)
        })
        .collect();
    assert!(good.len() >= 50);
    good
}

/// The records both directions send: SensorData readings keyed by sensorId, then binary values
/// with every byte value (every 5th without a key, one empty value), all values distinct.
fn records(codec: &Codec) -> Vec<OutRecord> {
    let mut out: Vec<OutRecord> = sensor_readings(codec)
        .into_iter()
        .map(|(v, framed)| OutRecord {
            key: Some(v["sensorId"].as_str().unwrap().as_bytes().to_vec()),
            value: framed,
            headers: vec![],
        })
        .collect();
    for i in 0..40usize {
        let value = if i == 7 {
            Vec::new()
        } else {
            let mut v: Vec<u8> = (0..(i * 37) % 300 + 1)
                .map(|j| ((i * 131 + j * 7) % 256) as u8)
                .collect();
            v.extend_from_slice(&(i as u32).to_be_bytes()); // distinct
            v
        };
        out.push(OutRecord {
            key: (i % 5 != 0).then(|| format!("java-key-{i}\u{0}\u{ff}").into_bytes()),
            value,
            headers: vec![],
        });
    }
    out
}

/// One `partition offset key_hex value_hex` line of the Java consumer.
fn parse_java_line(line: &str) -> ((i32, i64), (Option<String>, String)) {
    let f: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(f.len(), 4, "Java consumer line {line:?}");
    let key = (f[2] != "-").then(|| f[2].to_string());
    (
        (f[0].parse().unwrap(), f[1].parse().unwrap()),
        (key, f[3].to_string()),
    )
}

#[test]
#[ignore = "needs a Kafka broker and the Java client"]
fn java_consumer_reads_what_our_producer_produced_byte_exact() {
    java_reads_ours(Compression::None);
}

#[test]
#[ignore = "needs a Kafka broker and the Java client"]
fn java_consumer_reads_our_lz4_batches_byte_exact() {
    java_reads_ours(Compression::Lz4);
}

#[test]
#[ignore = "needs a Kafka broker and the Java client"]
fn java_consumer_reads_our_zstd_batches_byte_exact() {
    java_reads_ours(Compression::Zstd);
}

fn java_reads_ours(compression: Compression) {
    let peer = require_java_peer();
    let broker = require_broker();
    let codec = codec();
    let topic = unique_topic(&format!("java-ours-{compression}"));
    let p = producer_with(&broker.bootstrap(), PARTITIONS, compression);
    assert_eq!(p.partitions(&topic).unwrap(), PARTITIONS);

    let records = records(&codec);
    let mut ours = BTreeMap::new();
    for (r, d) in records.iter().zip(p.send_batch(&topic, &records)) {
        let d = d.unwrap();
        if let Some(k) = &r.key {
            assert_eq!(d.partition, partition_for_key(k, PARTITIONS), "our murmur2");
        }
        ours.insert(
            (d.partition, d.offset.unwrap()),
            (r.key.as_deref().map(hex), hex(&r.value)),
        );
    }
    assert_eq!(ours.len(), records.len());

    let started = Instant::now();
    let n = records.len().to_string();
    let out = peer
        .command([
            "consume",
            &broker.bootstrap(),
            &topic,
            &unique_topic("g-java"),
            &n,
            "60000",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "Java consumer failed: {}", out.status);
    let mut theirs = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (at, kv) = parse_java_line(line);
        if let Some(k) = &kv.0 {
            assert_eq!(
                at.0,
                partition_for_key(&unhex(k), PARTITIONS),
                "Java reports keyed record {k} on the partition our murmur2 gives"
            );
        }
        assert!(theirs.insert(at, kv).is_none(), "offset {at:?} twice");
    }
    let parts: std::collections::BTreeSet<i32> = theirs.keys().map(|&(p, _)| p).collect();
    assert_eq!(
        parts.len(),
        PARTITIONS as usize,
        "records on every partition"
    );
    let avro = theirs
        .values()
        .filter(|(_, v)| v.starts_with("0000000003"))
        .count();
    assert_eq!(
        theirs, ours,
        "the Java consumer sees exactly our keys, values, partitions and offsets"
    );
    eprintln!(
        "avro-edge producer ({compression}) -> Java consumer: {} records byte-exact ({avro} Confluent-framed SensorData), Java run {:.1} s",
        theirs.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "needs a Kafka broker and the Java client"]
fn we_read_what_the_java_producer_wrote_byte_exact() {
    we_read_java(Compression::None);
}

#[test]
#[ignore = "needs a Kafka broker and the Java client"]
fn we_read_java_lz4_batches_byte_exact() {
    we_read_java(Compression::Lz4);
}

#[test]
#[ignore = "needs a Kafka broker and the Java client"]
fn we_read_java_zstd_batches_byte_exact() {
    we_read_java(Compression::Zstd);
}

fn we_read_java(compression: Compression) {
    let peer = require_java_peer();
    let broker = require_broker();
    let codec = codec();
    let topic = unique_topic(&format!("java-theirs-{compression}"));
    assert_eq!(
        producer(&broker.bootstrap(), PARTITIONS)
            .partitions(&topic)
            .unwrap(),
        PARTITIONS
    );

    let records = records(&codec);
    let readings = sensor_readings(&codec);
    let mut input = String::new();
    for r in &records {
        let key = r.key.as_deref().map_or_else(|| "-".to_string(), hex);
        input.push_str(&format!("{key} {}\n", hex(&r.value)));
    }
    let started = Instant::now();
    let mut cmd = peer.command([
        "produce",
        &broker.bootstrap(),
        &topic,
        &compression.to_string(),
    ]);
    let out = run_with_input(&mut cmd, input.as_bytes()).unwrap();
    assert!(out.status.success(), "Java producer failed: {}", out.status);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("acked {}", records.len())
    );
    let java_secs = started.elapsed().as_secs_f64();

    let mut c = Consumer::connect(group_cfg(
        &broker.bootstrap(),
        &unique_topic("g-ours"),
        &topic,
    ))
    .unwrap();
    let got = poll_n(&mut c, records.len(), Duration::from_secs(60));
    c.close().unwrap();
    assert_eq!(
        got.len(),
        records.len(),
        "every record the Java client acked"
    );
    check_in_order(&got);

    // Values are distinct, so each record we read names its index in the Java send order.
    let index: BTreeMap<&[u8], usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.value.as_slice(), i))
        .collect();
    assert_eq!(index.len(), records.len());
    let mut seen = vec![false; records.len()];
    let mut last_by_part: BTreeMap<i32, usize> = BTreeMap::new();
    let mut decoded = 0;
    for r in &got {
        let value = r.value.as_deref().expect("no tombstones were sent");
        let &i = index
            .get(value)
            .unwrap_or_else(|| panic!("unknown value {}", hex(value)));
        assert!(!seen[i], "record {i} twice");
        seen[i] = true;
        assert_eq!(
            r.key.as_deref(),
            records[i].key.as_deref(),
            "record {i}: key"
        );
        if let Some(k) = &records[i].key {
            assert_eq!(
                r.partition,
                partition_for_key(k, PARTITIONS),
                "record {i}: Java's partitioner and our murmur2 agree"
            );
        }
        if let Some(prev) = last_by_part.insert(r.partition, i) {
            assert!(
                prev < i,
                "partition {} keeps the Java send order",
                r.partition
            );
        }
        if i < readings.len() {
            let (want, framed) = &readings[i];
            assert_eq!(value, framed.as_slice());
            let back = codec.decode_json(value).unwrap();
            for field in ["sensorId", "timestamp", "status"] {
                assert_eq!(back[field], want[field], "record {i}: {field}");
            }
            assert_eq!(
                codec.encode_json(SUBJECT, &back).unwrap(),
                value,
                "record {i}: decoded and re-encoded to the same bytes"
            );
            decoded += 1;
        }
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(
        last_by_part.len(),
        PARTITIONS as usize,
        "records on every partition"
    );
    assert_eq!(decoded, readings.len());
    eprintln!(
        "Java producer ({compression}) -> avro-edge consumer: {} records byte-exact, {decoded} SensorData decoded and re-encoded identically, Java run {java_secs:.1} s",
        got.len()
    );
}

/// The values and offsets one consumer reads from `topic`-0 with `isolation`, polling until
/// `want` values arrived and then 2 s more (nothing else may come), and its position after.
fn read_isolated(
    bootstrap: &str,
    topic: &str,
    isolation: IsolationLevel,
    want: usize,
) -> (Vec<(i64, String)>, Option<i64>) {
    let mut cfg = ConsumerConfig::assign(bootstrap, &[(topic, 0)]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.isolation_level = isolation;
    let mut c = Consumer::connect(cfg).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    while quiet_until.is_none_or(|q| Instant::now() < q) && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(200)).unwrap() {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            got.push((r.offset, value));
        }
        if got.len() >= want && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_secs(2));
        }
    }
    let position = c.position(topic, 0);
    c.close().unwrap();
    (got, position)
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// isolation.level against Java's transactional producer: an aborted transaction, a committed
/// one, one left open and a plain record after it. read_committed gets exactly the committed
/// records and stops at the open transaction (the last stable offset); read_uncommitted gets
/// every data record; neither returns a transaction marker. Once the open transaction is
/// aborted, read_committed goes on past it to the plain record, skipping the aborted ones.
#[test]
#[ignore = "needs a Kafka broker and the Java client"]
fn read_committed_skips_aborted_and_open_transactions_of_the_java_producer() {
    const N: usize = 5;
    let peer = require_java_peer();
    let broker = require_broker();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("java-txn");
    assert_eq!(producer(&bootstrap, 1).partitions(&topic).unwrap(), 1);
    let mut java = peer
        .command(["transactions", &bootstrap, &topic, &N.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(java.stdout.take().unwrap()).lines();
    let open_line = lines.next().expect("the Java peer ended early").unwrap();
    let open: i64 = open_line.strip_prefix("open ").unwrap().parse().unwrap();

    let (committed, position) = read_isolated(&bootstrap, &topic, IsolationLevel::ReadCommitted, N);
    let got: Vec<String> = committed.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(got, values("committed", N));
    // Stopped at the last stable offset: the open transaction's first record.
    assert_eq!(position, Some(open));

    let (all, _) = read_isolated(
        &bootstrap,
        &topic,
        IsolationLevel::ReadUncommitted,
        3 * N + 1,
    );
    let got: Vec<String> = all.iter().map(|(_, v)| v.clone()).collect();
    let mut want = values("aborted", N);
    want.extend(values("committed", N));
    want.extend(values("open", N));
    want.push("after-open".into());
    assert_eq!(got, want, "every data record, no marker");
    // The offsets between the transactions held their markers: never returned.
    assert_eq!(all[N].0, all[N - 1].0 + 2, "the abort marker's offset");

    drop(java.stdin.take()); // the peer aborts the open transaction
    assert_eq!(lines.next().unwrap().unwrap(), "aborted");
    assert!(java.wait().unwrap().success());
    let (committed, _) = read_isolated(&bootstrap, &topic, IsolationLevel::ReadCommitted, N + 1);
    let got: Vec<String> = committed.iter().map(|(_, v)| v.clone()).collect();
    let mut want = values("committed", N);
    want.push("after-open".into());
    assert_eq!(got, want);
}
