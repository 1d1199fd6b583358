//! Producer benchmark: our producer vs confluent-kafka (librdkafka) on the same tansu broker.
//!
//! Run: `cargo bench --bench producer` (release). Each side runs in its own child process
//! (ours: this binary re-executed with `AVRO_EDGE_BENCH_CHILD=1`; theirs:
//! `peers/python/bench_produce.py`) and does the same work: it builds the same 1,000 distinct
//! SensorData-sized records (40-byte values, keys `sensor-<i % 100>`) before timing starts and
//! cycles them N times (record i is record `i % 1,000`). Cycling, not prebuilding all N, is the
//! fair choice for a forwarder, which streams its input: memory does not grow with N on either side
//! (prebuilding 200k records cost librdkafka's side ~34 MiB of RSS that was not the producer's).
//! Both fetch the topic's metadata before timing starts (ours `Producer::partitions`, theirs
//! `list_topics`), produce with acks=all and linger 5 ms, flush (120 s), and read their own peak RSS
//! (VmHWM) after the flush. Prints a table; a rate is printed only for a complete run (every record
//! acknowledged, none failed, all N read back from the broker); an incomplete run makes the bench
//! exit non-zero after the table. `AVRO_EDGE_BENCH_N` overrides N (default 200,000).

use std::process::Command;
use std::time::{Duration, Instant};

use avro_edge::__test::{self as kafka, Client, ClientConfig};
use avro_edge::TopicSpec;
use avro_edge::{Acks, Producer, ProducerConfig};
use avro_edge_testkit::{Broker, Storage, python, unique_topic};

const PARTITIONS: i32 = 3;
/// Distinct records built before timing and cycled on both sides (passed to bench_produce.py).
const DISTINCT: usize = 1000;

fn records() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..DISTINCT)
        .map(|i| {
            let key = format!("sensor-{}", i % 100).into_bytes();
            let mut value = vec![0u8, 0, 0, 0, 1];
            value.extend((0..35).map(|j| ((i + j) % 251) as u8));
            (key, value)
        })
        .collect()
}

fn child(bootstrap: &str, topic: &str, n: usize) {
    let recs = records();
    let mut cfg = ProducerConfig::new([bootstrap]);
    cfg.acks = Acks::All;
    cfg.linger = Duration::from_millis(5);
    let p = Producer::connect(cfg).expect("connect");
    p.partitions(topic).expect("metadata");
    let start = Instant::now();
    for i in 0..n {
        let (k, v) = &recs[i % DISTINCT];
        drop(p.enqueue(topic, Some(k), v));
    }
    let flushed = p.flush(Duration::from_secs(120));
    let secs = start.elapsed().as_secs_f64();
    let st = p.stats();
    let failed = st.failed
        + if flushed.is_err() {
            st.enqueued - st.acked - st.failed
        } else {
            0
        };
    println!(
        "{}",
        serde_json::json!({"msgs": n, "acked": st.acked, "secs": secs, "failed": failed, "vmhwm_kb": avro_edge_testkit::peak_rss_kb()})
    );
    let _ = p.close();
}

/// Records stored in `topic`, counted by fetching them all back (tansu 0.6.0's ListOffsets
/// "latest" lags behind what Fetch returns), to check each side's claim; -1 if the read-back failed.
fn stored(client: &Client, topic: &str) -> i64 {
    let mut total = 0;
    for partition in 0..PARTITIONS {
        match avro_edge_testkit::fetch_partition(client, topic, partition, Duration::ZERO) {
            Ok(records) => total += records.len() as i64,
            Err(_) => return -1,
        }
    }
    total
}

struct Run {
    stored: i64,
    name: &'static str,
    msgs: f64,
    acked: u64,
    secs: f64,
    failed: u64,
    rss_kb: i64,
}

fn parse(name: &'static str, out: &std::process::Output) -> Option<Run> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(Run {
        stored: -1,
        name,
        msgs: v["msgs"].as_f64()?,
        acked: v["acked"].as_u64()?,
        secs: v["secs"].as_f64()?,
        failed: v["failed"].as_u64()?,
        rss_kb: v["vmhwm_kb"].as_i64()?,
    })
}

fn main() {
    let n: usize = std::env::var("AVRO_EDGE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    if std::env::var_os("AVRO_EDGE_BENCH_CHILD").is_some() {
        let args: Vec<String> = std::env::args().collect();
        let (Some(b), Some(t)) = (args.get(1), args.get(2)) else {
            eprintln!("child mode needs BOOTSTRAP TOPIC");
            std::process::exit(2);
        };
        child(b, t, n);
        return;
    }
    let broker = match Broker::start(Storage::Memory) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("producer bench skipped: {e}");
            if avro_edge_testkit::in_ci() {
                std::process::exit(1);
            }
            return;
        }
    };
    let bootstrap = broker.bootstrap();
    let client = Client::new(ClientConfig {
        bootstrap: vec![bootstrap.clone()],
        ..ClientConfig::default()
    })
    .expect("client");
    let spec = TopicSpec {
        partitions: PARTITIONS,
        replication: 1,
    };
    let ours = unique_topic("bench-avro-edge");
    let theirs = unique_topic("bench-librdkafka");
    for t in [&ours, &theirs] {
        kafka::block_on(client.create_topic(t, spec)).expect("create topic");
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut runs = Vec::new();
    let out = Command::new(&exe)
        .env("AVRO_EDGE_BENCH_CHILD", "1")
        .env("AVRO_EDGE_BENCH_N", n.to_string())
        .args([&bootstrap, &ours])
        .output()
        .expect("run child");
    match parse("avro-edge (Rust, smol)", &out) {
        Some(r) => runs.push(Run {
            stored: stored(&client, &ours),
            ..r
        }),
        None => eprintln!("our child failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
    let script = avro_edge_testkit::root().join("peers/python/bench_produce.py");
    match Command::new(python())
        .arg(&script)
        .args([&bootstrap, &theirs, &n.to_string(), &DISTINCT.to_string()])
        .output()
    {
        Ok(out) => match parse("confluent-kafka (librdkafka)", &out) {
            Some(r) => runs.push(Run {
                stored: stored(&client, &theirs),
                ..r
            }),
            None => eprintln!(
                "librdkafka side failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        },
        Err(e) => eprintln!("librdkafka side not run: {e}"),
    }
    let complete = |r: &Run| r.failed == 0 && r.acked == n as u64 && r.stored == n as i64;
    println!();
    println!(
        "producer: {n} records x 40 B ({DISTINCT} distinct, built before timing and cycled on both sides), {PARTITIONS} partitions, acks=all, linger 5 ms, metadata fetched before timing, tansu memory storage"
    );
    println!(
        "| producer | msgs/s | seconds | acked | failed | stored on broker | peak RSS after flush (MiB) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &runs {
        let rate = if complete(r) {
            format!("{:.0}", r.msgs / r.secs)
        } else {
            "incomplete".to_string()
        };
        println!(
            "| {} | {rate} | {:.2} | {} | {} | {} | {:.1} |",
            r.name,
            r.secs,
            r.acked,
            r.failed,
            r.stored,
            r.rss_kb as f64 / 1024.0
        );
    }
    if let [a, b] = &runs[..]
        && complete(a)
        && complete(b)
    {
        println!(
            "ratio: {:.2}x librdkafka's msgs/s, {:.2} of its RSS",
            (a.msgs / a.secs) / (b.msgs / b.secs),
            a.rss_kb as f64 / b.rss_kb as f64
        );
    }
    let incomplete: Vec<&str> = runs
        .iter()
        .filter(|r| !complete(r))
        .map(|r| r.name)
        .collect();
    if !incomplete.is_empty() {
        eprintln!(
            "producer bench: incomplete run(s), no rate reported: {} (want {n} acked, 0 failed, {n} stored)",
            incomplete.join(", ")
        );
        std::process::exit(1);
    }
}
