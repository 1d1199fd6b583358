//! Producer benchmark: our producer vs confluent-kafka (librdkafka) on the same broker, and the
//! `avro-edge produce` command of the glibc and static musl builds side by side.
//!
//! Run: `cargo bench --bench producer` (release). The broker is the testkit's shared one
//! ([`TestBroker::shared`]): `$AVRO_EDGE_KAFKA_BROKERS`, else an Apache Kafka node started for the run,
//! or tansu (memory storage) with `AVRO_EDGE_TEST_BROKER=tansu`.
//!
//! Library rows: each side runs in its own child process
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
//!
//! Command rows (the shipped binary, [`builds`]: `scripts/bench-builds` makes both release builds): N
//! SensorData NDJSON lines on stdin of `avro-edge produce --acks all` (parse + Avro encode through the
//! offline schema cache + produce), each run into a fresh 3-partition topic created beforehand, runs of the
//! two builds interleaved; wall time from spawn to exit, user and system CPU time and peak RSS from
//! `/usr/bin/time`, each the median of `AVRO_EDGE_BENCH_RUNS` runs (default 5). A run counts only if the
//! command exits 0 having acknowledged all N. `BENCH_ONLY=cli` (or `=lib`) runs one half.

use std::process::Command;
use std::time::Duration;

use avro_edge::__test::{self as kafka, Client, ClientConfig};
use avro_edge::TopicSpec;
use avro_edge_testkit::{BrokerKind, TestBroker, python, unique_topic};

#[path = "common/builds.rs"]
mod builds;
#[path = "common/produce_child.rs"]
mod produce_child;

const PARTITIONS: i32 = 3;
use produce_child::{DISTINCT, child};

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

fn broker_name(kind: BrokerKind) -> &'static str {
    match kind {
        BrokerKind::Kafka => "Apache Kafka",
        BrokerKind::Tansu => "tansu memory storage",
    }
}

/// The library rows: ours vs librdkafka, each in a child process; false if a run was incomplete.
fn library_rows(client: &Client, bootstrap: &str, broker: &str, n: usize) -> bool {
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
        .args([bootstrap, ours.as_str()])
        .output()
        .expect("run child");
    match parse("avro-edge (Rust, smol)", &out) {
        Some(r) => runs.push(Run {
            stored: stored(client, &ours),
            ..r
        }),
        None => eprintln!("our child failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
    let script = avro_edge_testkit::root().join("peers/python/bench_produce.py");
    match Command::new(python())
        .arg(&script)
        .args([bootstrap, &theirs, &n.to_string(), &DISTINCT.to_string()])
        .output()
    {
        Ok(out) => match parse("confluent-kafka (librdkafka)", &out) {
            Some(r) => runs.push(Run {
                stored: stored(client, &theirs),
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
        "producer: {n} records x 40 B ({DISTINCT} distinct, built before timing and cycled on both sides), {PARTITIONS} partitions, acks=all, linger 5 ms, metadata fetched before timing, {broker}"
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
    if !incomplete.is_empty() || runs.len() < 2 {
        eprintln!(
            "producer bench: incomplete run(s), no rate reported: {} (want {n} acked, 0 failed, {n} stored)",
            incomplete.join(", ")
        );
        return false;
    }
    true
}

/// One `avro-edge produce` run of `input` (`n` lines) into a fresh topic; None (and a message) unless
/// it exited 0 with all `n` acknowledged.
fn produce_once(
    client: &Client,
    build: &builds::Build,
    bootstrap: &str,
    input: &[u8],
    n: usize,
) -> Option<builds::Timed> {
    let topic = unique_topic("bench-cli-produce");
    let spec = TopicSpec {
        partitions: PARTITIONS,
        replication: 1,
    };
    kafka::block_on(client.create_topic(&topic, spec)).expect("create topic");
    let cache = avro_edge_testkit::root().join("fixtures/schema-cache");
    let cache = cache.to_string_lossy();
    let args = [
        "produce",
        "--brokers",
        bootstrap,
        "--topic",
        &topic,
        "--subject",
        "sensor-data-value",
        "--schema-cache",
        &cache,
        "--acks",
        "all",
    ];
    let t = match builds::timed(&build.path, &args, &[], Some(input)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: produce not run: {e}", build.name);
            return None;
        }
    };
    let want = format!("sent {n} acked {n} failed 0 ");
    if t.ok && t.stdout.contains(&want) {
        return Some(t);
    }
    eprintln!(
        "{}: produce incomplete: {} {}",
        build.name,
        t.stdout.trim(),
        t.stderr.trim()
    );
    None
}

/// The command rows: `avro-edge produce` of `n` SensorData lines, glibc vs musl; false if a run failed.
fn command_rows(client: &Client, bootstrap: &str, broker: &str, n: usize) -> bool {
    let (found, missing) = builds::builds();
    for m in &missing {
        eprintln!("producer bench: {m}");
    }
    let runs: usize = builds::env_count("AVRO_EDGE_BENCH_RUNS", 5);
    let input = builds::sensor_lines(n);
    let mut results: Vec<Vec<builds::Timed>> = found.iter().map(|_| Vec::new()).collect();
    let mut ok = true;
    for _ in 0..runs {
        for (b, out) in found.iter().zip(results.iter_mut()) {
            match produce_once(client, b, bootstrap, input.as_bytes(), n) {
                Some(t) => out.push(t),
                None => ok = false,
            }
        }
    }
    println!();
    println!(
        "avro-edge produce: {n} SensorData NDJSON lines (parse + encode + produce), acks=all, {PARTITIONS} partitions, {broker}; release builds, median of {runs} interleaved runs"
    );
    builds::print_table(n, runs, &found, &results, &missing);
    ok
}

fn main() {
    let n: usize = builds::env_count("AVRO_EDGE_BENCH_N", 200_000);
    if std::env::var_os("AVRO_EDGE_BENCH_CHILD").is_some() {
        let args: Vec<String> = std::env::args().collect();
        let (Some(b), Some(t)) = (args.get(1), args.get(2)) else {
            eprintln!("child mode needs BOOTSTRAP TOPIC");
            std::process::exit(2);
        };
        child(b, t, n);
        return;
    }
    let broker = match TestBroker::shared() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("producer bench: no broker ({e})");
            std::process::exit(1);
        }
    };
    let bootstrap = broker.bootstrap();
    let name = broker_name(broker.kind());
    let client = Client::new(ClientConfig {
        bootstrap: vec![bootstrap.clone()],
        ..ClientConfig::default()
    })
    .expect("client");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut ok = true;
    if only.is_empty() || only == "lib" {
        ok &= library_rows(&client, &bootstrap, name, n);
    }
    if only.is_empty() || only == "cli" {
        ok &= command_rows(&client, &bootstrap, name, n);
    }
    if !ok {
        std::process::exit(1);
    }
}
