//! Batch compression for SensorData, per codec (none, gzip, snappy, lz4, zstd), printed as tables
//! (no criterion, no timed asserts):
//!
//! 1. Bytes on the wire per record, offline, from our record-batch writer (`BatchBuilder`, the
//!    producer's own): the forwarder's default send of 500 records (`SenderOptions::batch_records`;
//!    500 SensorData records are ~29 KiB, well under the producer's 256 KiB `batch_size`), keyed by
//!    `sensorId` as the forwarder does, into a 1-partition topic (one batch) and a 3-partition topic
//!    (one batch per partition, murmur2 as the producer does). A figure is the record batches'
//!    bytes (header, records, compression) divided by the records; the Produce request around them
//!    adds ~100 bytes per request on top. Also the CPU time to compress one 500-record batch.
//! 2. Producer msgs/s per codec against Apache Kafka (the test kit's broker, or
//!    `AVRO_EDGE_KAFKA_BROKERS`): the same readings through `Producer::enqueue`, producer defaults
//!    (256 KiB batches, linger 5 ms, acks=all), 3 partitions, flushed; the median of `BENCH_RUNS`
//!    (default 3) rounds run round-robin over the codecs, so load on a shared machine falls on each
//!    alike. The broker decompresses every batch to validate it, on the same machine.
//! 3. The forwarder through a 64 kbit/s link, per codec (`common/slow_link.rs`): the `avro-edge
//!    forward` binary (the glibc release build of `scripts/bench-builds` when there) sends the same
//!    readings as NDJSON through the test kit's TCP proxy to a Kafka node of its own; bytes on the
//!    link per reading, seconds, the forwarder's CPU per reading. This is the measurement the
//!    forwarder's default compression is chosen from (README).
//!
//! The readings: 5,000 SensorData records of a gateway with 40 sensors each reporting every 15 s
//! (the fixture's sensor names and value ranges, temperature and humidity as random walks, ~1 % of
//! values missing, mostly NORMAL), Confluent-framed by our codec from the offline schema cache.
//!
//! Run: `cargo bench --bench compression`. `AVRO_EDGE_BENCH_N` sets the records per producer run
//! (default 300,000); `AVRO_EDGE_BENCH_OFFLINE=1` prints the first table only,
//! `AVRO_EDGE_BENCH_SLOW_ONLY=1` skips the second; `AVRO_EDGE_BENCH_SLOW_N` sets the readings sent
//! through the slow link (default 2,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use avro_edge::__test::BatchBuilder;
use avro_edge::{
    Codec, Compression, OfflineCache, Producer, ProducerConfig, TopicSpec, partition_for_key,
};
use avro_edge_testkit::{TestBroker, root, unique_topic};
use serde_json::json;

#[path = "common/builds.rs"]
mod builds;
#[path = "common/slow_link.rs"]
mod slow_link;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];
/// The forwarder's default send (`SenderOptions::batch_records`).
const SEND: usize = 500;
const READINGS: usize = 5_000;
const SENSORS: usize = 40;

/// (key, Confluent-framed value, timestamp ms) of the generated readings.
type Reading = (Vec<u8>, Vec<u8>, i64);

/// The generated readings, framed by our codec.
fn readings(json: &[serde_json::Value]) -> Vec<Reading> {
    let codec = Codec::new(Arc::new(OfflineCache::new(
        root().join("fixtures/schema-cache"),
    )));
    json.iter()
        .map(|v| {
            let value = codec
                .encode_json("sensor-data-value", v)
                .expect("SensorData encodes");
            let id = v["sensorId"].as_str().unwrap_or_default();
            let ts = v["timestamp"].as_i64().unwrap_or_default();
            (id.as_bytes().to_vec(), value, ts)
        })
        .collect()
}

/// The readings as natural JSON, in the order a gateway takes them.
fn reading_values() -> Vec<serde_json::Value> {
    let kinds = [
        ("greenhouse", 24.0, 40.0),
        ("cold-store", 3.5, 52.0),
        ("boiler-room", 31.0, 30.0),
    ];
    let mut seed = 0x9e37_79b9u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        f64::from(seed) / f64::from(u32::MAX)
    };
    let mut state: Vec<(String, f64, f64)> = (0..SENSORS)
        .map(|s| {
            let (kind, t, h) = kinds[s % kinds.len()];
            (format!("{kind}-{}", s / kinds.len() + 1), t, h)
        })
        .collect();
    let t0 = 1_764_028_800_000i64;
    (0..READINGS)
        .map(|k| {
            let s = k % SENSORS;
            let ts = t0 + (k / SENSORS) as i64 * 15_000 + s as i64 * 37;
            let (id, t, h) = &mut state[s];
            *t += (rnd() - 0.5) * 0.4;
            *h += (rnd() - 0.5) * 0.6;
            let status = match rnd() {
                x if x < 0.005 => "CRITICAL",
                x if x < 0.03 => "WARNING",
                _ => "NORMAL",
            };
            let temperature = (rnd() > 0.01).then(|| (*t * 100.0).round() / 100.0);
            let humidity = (rnd() > 0.01).then(|| (*h * 10.0).round() / 10.0);
            json!({"sensorId": id, "timestamp": ts, "temperature": temperature,
                "humidity": humidity, "status": status})
        })
        .collect()
}

/// Batch bytes for one send of `recs` into `partitions` partitions (one batch per partition).
fn send_bytes(recs: &[Reading], partitions: i32, c: Compression) -> usize {
    let mut builders: Vec<BatchBuilder> = (0..partitions).map(|_| BatchBuilder::new()).collect();
    for (k, v, ts) in recs {
        let p = partition_for_key(k, partitions) as usize;
        builders[p].append(*ts, Some(k), Some(v), &[]);
    }
    builders
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| b.finish(c).expect("batch").len())
        .sum()
}

fn wire_table(recs: &[Reading]) {
    let avg_value = recs.iter().map(|r| r.1.len()).sum::<usize>() as f64 / recs.len() as f64;
    let sends: Vec<&[Reading]> = recs.chunks(SEND).collect();
    println!(
        "SensorData on the wire: {} readings ({SENSORS} sensors, Confluent-framed Avro values of {avg_value:.1} B on average, key sensorId), sent {SEND} at a time (the forwarder's default)",
        recs.len()
    );
    println!(
        "| codec | B/record, 1 partition | vs none | B/record, 3 partitions | vs none | compress one 500-record batch (µs, best of 9) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let per_record = |partitions: i32, c: Compression| {
        let total: usize = sends.iter().map(|s| send_bytes(s, partitions, c)).sum();
        total as f64 / recs.len() as f64
    };
    let (none1, none3) = (
        per_record(1, Compression::None),
        per_record(3, Compression::None),
    );
    for c in CODECS {
        let (one, three) = (per_record(1, c), per_record(3, c));
        let mut b = BatchBuilder::new();
        for (k, v, ts) in sends[0] {
            b.append(*ts, Some(k), Some(v), &[]);
        }
        let us = compress_us(&b, c);
        println!(
            "| {c} | {one:.1} | {:.0} % | {three:.1} | {:.0} % | {us:.0} |",
            100.0 * one / none1,
            100.0 * three / none3
        );
    }
    println!();
}

/// CPU time to finish one batch with `c`, in µs: the best of 9 rounds of 50 (on a loaded machine
/// the fastest round is the one least disturbed).
fn compress_us(b: &BatchBuilder, c: Compression) -> f64 {
    (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..50 {
                std::hint::black_box(b.finish(c).expect("batch"));
            }
            start.elapsed().as_secs_f64() * 1e6 / 50.0
        })
        .fold(f64::INFINITY, f64::min)
}

/// One producer run: msgs/s, or why not.
fn produce(bootstrap: &str, recs: &[Reading], c: Compression, n: usize) -> Result<f64, String> {
    let topic = unique_topic(&format!("bench-compression-{c}"));
    let mut cfg = ProducerConfig::new([bootstrap]);
    cfg.compression = c;
    cfg.auto_create = Some(TopicSpec {
        partitions: 3,
        replication: 1,
    });
    let p = Producer::connect(cfg).map_err(|e| e.to_string())?;
    p.partitions(&topic).map_err(|e| e.to_string())?;
    let start = Instant::now();
    for i in 0..n {
        let (k, v, _) = &recs[i % recs.len()];
        drop(p.enqueue(&topic, Some(k), v));
    }
    p.flush(Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let st = p.stats();
    let _ = p.close();
    if st.acked != n as u64 || st.failed != 0 {
        return Err(format!("{} acked, {} failed of {n}", st.acked, st.failed));
    }
    Ok(n as f64 / secs)
}

fn rate_table(recs: &[Reading]) -> Result<(), String> {
    let n: usize = std::env::var("AVRO_EDGE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let rounds: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let broker = TestBroker::shared().map_err(|e| e.to_string())?;
    let bootstrap = broker.bootstrap();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); CODECS.len()];
    for _ in 0..rounds {
        for (i, c) in CODECS.iter().enumerate() {
            rates[i].push(produce(&bootstrap, recs, *c, n)?);
        }
    }
    println!(
        "Producer msgs/s, SensorData ({n} records per run, cycled from {} readings), 3 partitions, acks=all, linger 5 ms, 256 KiB batches, test broker {bootstrap} ({:?}): median of {rounds} round-robin rounds",
        recs.len(),
        broker.kind()
    );
    println!("| codec | msgs/s (median) | min | max |");
    println!("| --- | ---: | ---: | ---: |");
    for (c, r) in CODECS.iter().zip(&mut rates) {
        r.sort_by(f64::total_cmp);
        println!(
            "| {c} | {:.0} | {:.0} | {:.0} |",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1]
        );
    }
    Ok(())
}

fn main() {
    let values = reading_values();
    let recs = readings(&values);
    wire_table(&recs);
    if std::env::var_os("AVRO_EDGE_BENCH_OFFLINE").is_some() {
        return;
    }
    let slow = std::env::var_os("AVRO_EDGE_BENCH_SLOW_ONLY").is_some();
    let mut failed = false;
    if !slow && let Err(e) = rate_table(&recs) {
        eprintln!("compression bench: producer part not run: {e}");
        failed = true;
    }
    if let Err(e) = slow_link::table(&values) {
        eprintln!("compression bench: slow-link part not run: {e}");
        failed = true;
    }
    if failed && avro_edge_testkit::in_ci() {
        std::process::exit(1);
    }
}
