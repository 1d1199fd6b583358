//! A compacted topic on Apache Kafka, where the log cleaner has really removed records (offsets
//! with gaps between the survivors): the library `Consumer` and `avro-edge consume` deliver every
//! surviving record, in offset order, once, across the gaps — with small fetches, so that many
//! fetches start at an offset the cleaner removed. Kafka answers such a fetch with the next batch;
//! the consumer must read past the gap, never "step back" (tansu's workaround, which runs only
//! when the broker is tansu) and never stall.
//!
//! What survived is read independently of the consumer under test: raw Fetch requests and
//! kafka-protocol's own decoder (`avro_edge_testkit::fetch_partition`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avro_edge::{
    Codec, Consumer, ConsumerConfig, OfflineCache, OffsetReset, OutRecord, Producer,
    ProducerConfig, TopicSpec,
};
use avro_edge_testkit::{KafkaCluster, KafkaOpts, fetch_partition, read_client, unique_topic};

const BIN: &str = env!("CARGO_BIN_EXE_avro-edge");
/// Sensors updated over and over (the cleaner keeps only the latest of each). In even waves every
/// third record has a key of its own instead and survives (gaps inside a batch); odd waves update
/// the sensors only, so the cleaner removes their batches whole (gaps between batches: a fetch
/// from there gets a batch that starts above its offset, where tansu's probe would step back).
const KEYS: u64 = 10;
/// Records per wave.
const WAVE: u64 = 100;
/// The tansu workaround's debug line (src/kafka/consumer/fetch.rs, `accept_or_probe`).
const PROBE_LINE: &str = "stepping back";
/// Smallest fetch size the consumer allows (1 KiB): one small batch per fetch.
const SMALL_FETCH: i32 = 1024;

fn fixtures() -> std::path::PathBuf {
    avro_edge_testkit::root().join("fixtures")
}

/// Captured library logs (debug), to look for the probe's line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> Captured {
        let c = Captured::default();
        let writer = c.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("avro_edge=debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only tracing subscriber of this test binary");
        c
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// One node whose topics are compacted eagerly: a new segment every 300 ms (on the next
/// append), the cleaner checking every 200 ms and cleaning any dirty share.
fn compacting_node() -> KafkaCluster {
    let props = [
        ("log.cleanup.policy", "compact"),
        ("log.roll.ms", "300"),
        ("log.cleaner.backoff.ms", "200"),
        ("log.cleaner.min.cleanable.ratio", "0.01"),
        ("log.cleaner.min.compaction.lag.ms", "0"),
        ("log.segment.delete.delay.ms", "1000"),
    ];
    let opts = KafkaOpts {
        extra_props: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..KafkaOpts::default()
    };
    KafkaCluster::start(1, opts).expect("Kafka node")
}

/// A SensorData record whose timestamp is its unique id; key = its sensor.
fn record(codec: &Codec, id: u64) -> OutRecord {
    let sensor = if id.is_multiple_of(3) && (id / WAVE).is_multiple_of(2) {
        format!("once-{id}")
    } else {
        format!("s-{}", id % KEYS)
    };
    let v = serde_json::json!({"sensorId": sensor, "timestamp": id, "temperature": 20.5,
        "humidity": 40.25, "status": "NORMAL"});
    OutRecord {
        key: Some(sensor.into_bytes()),
        value: codec.encode_json("sensor-data-value", &v).expect("encodes"),
        headers: Vec::new(),
    }
}

fn id_of(codec: &Codec, value: &[u8]) -> u64 {
    let v = codec.decode_json(value).expect("decodes");
    v["timestamp"].as_u64().expect("timestamp")
}

/// (offset, id) of every record in the partition, read with raw Fetch requests.
fn log_now(bootstrap: &str, topic: &str, codec: &Codec) -> Vec<(i64, u64)> {
    let client = read_client(bootstrap);
    let recs = fetch_partition(&client, topic, 0, Duration::from_secs(10)).expect("raw fetch");
    client.close();
    (recs.iter())
        .map(|r| (r.offset, id_of(codec, r.value.as_deref().expect("a value"))))
        .collect()
}

/// Places where offsets are missing between two surviving records.
fn gaps(log: &[(i64, u64)]) -> usize {
    log.windows(2).filter(|w| w[1].0 > w[0].0 + 1).count()
}

/// Produce waves of updates to the same keys until the cleaner has left gaps between the offsets,
/// then wait until the log stops changing (nothing left to clean below the active segment).
fn compacted_log(bootstrap: &str, topic: &str, codec: &Codec) -> (Vec<(i64, u64)>, u64) {
    let mut cfg = ProducerConfig::new([bootstrap]);
    cfg.auto_create = Some(TopicSpec {
        partitions: 1,
        replication: 1,
    });
    let p = Producer::connect(cfg).expect("producer");
    let started = Instant::now();
    let mut produced = 0u64;
    let mut log = Vec::new();
    // Gaps inside batches, and at least one whole batch (an odd wave) removed.
    let widest = |log: &[(i64, u64)]| log.windows(2).map(|w| w[1].0 - w[0].0).max();
    while gaps(&log) < 3 || widest(&log).unwrap_or(0) <= WAVE as i64 {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no compaction after {produced} records: {} records, {} gaps",
            log.len(),
            gaps(&log)
        );
        let wave: Vec<OutRecord> = (produced..produced + WAVE)
            .map(|id| record(codec, id))
            .collect();
        for d in p.send_batch(topic, &wave) {
            d.expect("acknowledged");
        }
        produced += WAVE;
        // The next wave rolls a new segment only once this one is older than log.roll.ms.
        std::thread::sleep(Duration::from_millis(400));
        log = log_now(bootstrap, topic, codec);
    }
    p.close().expect("producer close");
    let mut stable_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let again = log_now(bootstrap, topic, codec);
        if again != log {
            (log, stable_since) = (again, Instant::now());
        } else if stable_since.elapsed() >= Duration::from_secs(3) {
            return (log, produced);
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the log keeps changing"
        );
    }
}

/// Read the partition with the library consumer (small fetches): (offset, id) in delivery order
/// and how many polls came back empty before the last survivor.
fn consume_library(
    bootstrap: &str,
    topic: &str,
    codec: &Codec,
    want: usize,
) -> (Vec<(i64, u64)>, usize) {
    let mut cfg = ConsumerConfig::assign(bootstrap, &[(topic, 0)]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.fetch_partition_max_bytes = SMALL_FETCH;
    let mut c = Consumer::connect(cfg).expect("consumer");
    let (mut got, mut empty) = (Vec::new(), 0);
    let started = Instant::now();
    while got.len() < want && started.elapsed() < Duration::from_secs(120) {
        let recs = c.poll(Duration::from_secs(5)).expect("poll");
        empty += usize::from(recs.is_empty());
        for r in recs {
            got.push((r.offset, id_of(codec, r.value.as_deref().expect("a value"))));
        }
    }
    // Nothing more comes after the last survivor.
    got.extend(
        (c.poll(Duration::from_secs(2)).expect("poll").iter()).map(|r| {
            (
                r.offset,
                id_of(codec, r.value.as_deref().unwrap_or_default()),
            )
        }),
    );
    c.close().expect("close");
    (got, empty)
}

/// `avro-edge consume` (small fetches, debug logs): the ids it printed, and its stderr.
fn consume_cli(bootstrap: &str, topic: &str, want: usize) -> (Vec<u64>, String) {
    let out = Command::new(BIN)
        .args(["consume", "--brokers", bootstrap, "--topic", topic])
        .args(["--group", &unique_topic("g-compact"), "--from-beginning"])
        .args(["--max", &want.to_string(), "--timeout", "60"])
        .arg("--schema-cache")
        .arg(fixtures().join("schema-cache"))
        .args(["-X", &format!("max.partition.fetch.bytes={SMALL_FETCH}")])
        .env("RUST_LOG", "avro_edge=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("avro-edge consume");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "consume failed:\n{stderr}");
    let ids = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["timestamp"].as_u64().expect("timestamp")
        })
        .collect();
    (ids, stderr)
}

#[test]
#[ignore = "needs Apache Kafka"]
fn a_compacted_topic_is_read_across_its_gaps() {
    let logs = Captured::install();
    let c = compacting_node();
    let bootstrap = c.bootstrap();
    let topic = unique_topic("compacted");
    let codec = Codec::new(Arc::new(OfflineCache::new(fixtures().join("schema-cache"))));
    let (log, produced) = compacted_log(&bootstrap, &topic, &codec);
    let last = log.last().map_or(0, |r| r.0);
    let widest = log.windows(2).map(|w| w[1].0 - w[0].0 - 1).max();
    eprintln!(
        "{produced} records produced; {} survive at offsets 0..={last} ({} gaps, the widest \
         {widest:?} offsets); first offsets {:?}",
        log.len(),
        gaps(&log),
        &log.iter().map(|r| r.0).take(12).collect::<Vec<_>>()
    );
    assert!((log.len() as u64) < produced, "the cleaner removed records");

    let (got, empty) = consume_library(&bootstrap, &topic, &codec, log.len());
    eprintln!(
        "library consumer: {} records, {empty} empty polls",
        got.len()
    );
    assert_eq!(got, log, "every survivor, in offset order, once");
    assert!(empty <= 1, "{empty} empty polls: the consumer stalled");
    let probes = logs.text().matches(PROBE_LINE).count();
    assert_eq!(probes, 0, "the consumer probed on Kafka:\n{}", logs.text());

    let (ids, stderr) = consume_cli(&bootstrap, &topic, log.len());
    let want: Vec<u64> = log.iter().map(|r| r.1).collect();
    eprintln!("avro-edge consume: {} records", ids.len());
    assert_eq!(ids, want, "consume prints every survivor, in order, once");
    assert!(
        !stderr.contains(PROBE_LINE),
        "consume probed on Kafka:\n{stderr}"
    );
}
