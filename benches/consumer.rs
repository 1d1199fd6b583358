//! Consumer benchmark: our group consumer vs kafkajs (the reference service's library) reading
//! the same SensorData topic on the same broker, raw and decoded end to end.
//!
//! Run: `cargo bench --bench consumer` (release). N SensorData records are encoded by our codec
//! (Confluent framing, schema registered in the in-process test registry) and produced once into
//! a 3-partition topic. Then each reader, in its own child process (ours: this binary re-executed
//! with `AVRO_EDGE_BENCH_CHILD=1`; kafkajs: `peers/node/peer.js consume --quiet`), joins a fresh
//! group from the earliest offset and reads all N, either counting raw bytes or decoding every
//! value to JSON through the registry (ours: `PollAvro::poll_items` + `Codec`; kafkajs:
//! `@kafkajs/confluent-schema-registry` `decode`). Reported: time from the first record to the
//! last, total time from before connect (group join included; both clocks start before their
//! client connects), msgs/s over the total, peak RSS (VmHWM, read by both after the consumer is
//! closed/disconnected). Prints a table; a rate is printed only for a complete run (all N read, none
//! undecodable); an incomplete run makes the bench exit non-zero after the table.
//! `AVRO_EDGE_BENCH_N` overrides N (default 200,000). The broker is the testkit's shared one
//! ([`TestBroker::shared`]): `$AVRO_EDGE_KAFKA_BROKERS`, else an Apache Kafka node started for the run,
//! or tansu with `AVRO_EDGE_TEST_BROKER=tansu`. `BENCH_ONLY=avro-edge` (say) runs only the rows whose
//! name contains it. `AVRO_EDGE_BENCH_FETCH_MAX_BYTES`, `AVRO_EDGE_BENCH_PARTITION_FETCH_BYTES` and
//! `AVRO_EDGE_BENCH_BUFFERED_BYTES` override our consumer's `fetch_max_bytes`,
//! `fetch_partition_max_bytes` and `max_buffered_bytes` (to size the defaults).
//!
//! Command rows (the shipped binary: the glibc and static musl release builds side by side, see
//! `common/builds.rs`; `scripts/bench-builds` makes both): `avro-edge consume --from-beginning --max N`
//! through the same registry, JSON lines to a pipe, a fresh group each run, runs of the two builds
//! interleaved; wall time from spawn to exit (connect, join, read, decode, print, close), user and system
//! time and peak RSS from `/usr/bin/time`, each the median of `AVRO_EDGE_BENCH_RUNS` runs (default 3). A
//! run counts only if it exits 0 having printed N records. `BENCH_ONLY=command` runs only these rows.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use avro_edge::Codec;
use avro_edge::TestRegistry;
use avro_edge::TopicSpec;
use avro_edge::open_source;
use avro_edge::{Consumer, ConsumerConfig, Item, OffsetReset, PollAvro};
use avro_edge::{Producer, ProducerConfig};
use avro_edge_testkit::{BrokerKind, TestBroker, unique_topic};

#[path = "common/builds.rs"]
mod builds;

/// The command rows: `avro-edge consume` of the `n` records, glibc vs musl; false if a run failed.
fn command_rows(bootstrap: &str, topic: &str, registry: &str, n: usize, broker: &str) -> bool {
    let (found, missing) = builds::builds();
    for m in &missing {
        eprintln!("consumer bench: {m}");
    }
    let runs: usize = builds::env_count("AVRO_EDGE_BENCH_RUNS", 3);
    let ns = n.to_string();
    let mut results: Vec<Vec<builds::Timed>> = found.iter().map(|_| Vec::new()).collect();
    let mut ok = true;
    for _ in 0..runs {
        for (b, out) in found.iter().zip(results.iter_mut()) {
            let group = unique_topic("bench-cli-consume");
            let args = [
                "consume",
                "--brokers",
                bootstrap,
                "--topic",
                topic,
                "--group",
                &group,
                "--from-beginning",
                "--max",
                &ns,
                "--timeout",
                "30",
                "--registry",
                registry,
            ];
            match builds::timed(&b.path, &args, &[], None) {
                Ok(t) if t.ok && t.stdout.lines().count() == n => out.push(t),
                Ok(t) => {
                    ok = false;
                    eprintln!(
                        "{}: consume incomplete: {} lines; {}",
                        b.name,
                        t.stdout.lines().count(),
                        t.stderr.trim()
                    );
                }
                Err(e) => {
                    ok = false;
                    eprintln!("{}: consume not run: {e}", b.name);
                }
            }
        }
    }
    println!();
    println!(
        "avro-edge consume: {n} SensorData records decoded to JSON lines, 3 partitions, {broker}, fresh group from the beginning; release builds, median of {runs} interleaved runs"
    );
    builds::print_table(n, runs, &found, &results, &missing);
    ok
}

/// The child: consume `n` records from `topic` (decoding through `registry` unless it is "-"),
/// print `count bad secs total rss_kb`.
fn child(bootstrap: &str, topic: &str, registry: &str, n: usize) {
    let codec = (registry != "-")
        .then(|| Codec::new(open_source(&[registry.to_string()], None).expect("registry")));
    let mut cfg = ConsumerConfig::group(bootstrap, &unique_topic("bench-ours"), &[topic]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.session_timeout = Duration::from_secs(6);
    cfg.heartbeat_interval = Duration::from_secs(1);
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    if let Some(b) = var("AVRO_EDGE_BENCH_FETCH_MAX_BYTES") {
        cfg.fetch_max_bytes = b;
    }
    if let Some(b) = var("AVRO_EDGE_BENCH_PARTITION_FETCH_BYTES") {
        cfg.fetch_partition_max_bytes = b;
    }
    if let Some(b) = var("AVRO_EDGE_BENCH_BUFFERED_BYTES") {
        cfg.max_buffered_bytes = b as usize;
    }
    let start = Instant::now();
    let mut c = Consumer::connect(cfg).expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut count, mut bad) = (0usize, 0usize);
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while count < n && Instant::now() < deadline {
        let got = match &codec {
            Some(codec) => {
                let items = c
                    .poll_items(Duration::from_millis(500), codec)
                    .expect("poll");
                bad += items
                    .iter()
                    .filter(|i| matches!(i, Item::Undecodable { .. }))
                    .count();
                items.len()
            }
            None => c.poll(Duration::from_millis(500)).expect("poll").len(),
        };
        if got > 0 {
            first.get_or_insert_with(Instant::now);
            count += got;
            last = Instant::now();
        }
    }
    let secs = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    let total = (last - start).as_secs_f64();
    // Peak RSS after closing, where kafkajs reads its own (after disconnect).
    let _ = c.close();
    println!(
        "{count} {bad} {secs} {total} {}",
        avro_edge_testkit::peak_rss_kb()
    );
}

struct Row {
    name: &'static str,
    count: f64,
    bad: f64,
    secs: f64,
    total: f64,
    rss: String,
}

fn ours(
    exe: &PathBuf,
    bootstrap: &str,
    topic: &str,
    n: usize,
    registry: &str,
    name: &'static str,
) -> Option<Row> {
    let out = Command::new(exe)
        .env("AVRO_EDGE_BENCH_CHILD", "1")
        .env("AVRO_EDGE_BENCH_N", n.to_string())
        .args([bootstrap, topic, registry])
        .output()
        .expect("child");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let num = |s: &str| s.parse::<f64>().unwrap_or(0.0);
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        [count, bad, secs, total, rss] => Some(Row {
            name,
            count: num(count),
            bad: num(bad),
            secs: num(secs),
            total: num(total),
            rss: rss.to_string(),
        }),
        _ => {
            eprintln!(
                "{name} failed: {line} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
    }
}

fn kafkajs(
    bootstrap: &str,
    topic: &str,
    n: usize,
    registry: Option<&str>,
    name: &'static str,
) -> Option<Row> {
    let peer = avro_edge_testkit::root().join("peers/node/peer.js");
    let mut cmd = Command::new("node");
    cmd.arg(&peer)
        .args([
            "consume",
            "--brokers",
            bootstrap,
            "--topic",
            topic,
            "--quiet",
            "--timeout",
            "300",
        ])
        .args([
            "--count",
            &n.to_string(),
            "--group",
            &unique_topic("bench-kafkajs"),
        ]);
    if let Some(r) = registry {
        cmd.args(["--registry", r]);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value = text
                .lines()
                .last()
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_default();
            Some(Row {
                name,
                count: v["count"].as_f64().unwrap_or(0.0),
                bad: v["failed"].as_f64().unwrap_or(0.0),
                secs: v["secs"].as_f64().unwrap_or(0.0),
                total: v["total_secs"].as_f64().unwrap_or(0.0),
                rss: v["rss_kb"].to_string(),
            })
        }
        Ok(o) => {
            eprintln!("{name} failed: {}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            eprintln!("{name} not run: {e}");
            None
        }
    }
}

fn main() {
    let n: usize = builds::env_count("AVRO_EDGE_BENCH_N", 200_000);
    let args: Vec<String> = std::env::args().collect();
    if std::env::var_os("AVRO_EDGE_BENCH_CHILD").is_some() {
        if let (Some(b), Some(t), Some(r)) = (args.get(1), args.get(2), args.get(3)) {
            child(b, t, r, n);
        }
        return;
    }
    let broker = match TestBroker::shared() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("consumer bench: no broker ({e})");
            return;
        }
    };
    let bootstrap = broker.bootstrap();
    let registry = TestRegistry::start();
    let schema =
        std::fs::read_to_string(avro_edge_testkit::root().join("schemas/sensor-data.avsc"))
            .expect("schema");
    registry
        .register("sensor-data-value", &schema)
        .expect("register");
    let url = registry.url();
    let codec = Codec::new(open_source(std::slice::from_ref(&url), None).expect("registry"));

    let topic = unique_topic("bench-consume");
    let mut pcfg = ProducerConfig::new([bootstrap.as_str()]);
    pcfg.auto_create = Some(TopicSpec {
        partitions: 3,
        replication: 1,
    });
    let p = Producer::connect(pcfg).expect("producer");
    let t = Instant::now();
    let mut handles = Vec::with_capacity(n);
    let statuses = ["NORMAL", "WARNING", "CRITICAL"];
    for i in 0..n {
        let record = serde_json::json!({
            "sensorId": format!("sensor-{}", i % 100),
            "timestamp": 1_700_000_000_000i64 + i as i64,
            "temperature": if i % 7 == 0 { serde_json::Value::Null } else { serde_json::json!(20.0 + (i % 50) as f64 / 10.0) },
            "humidity": 40.5,
            "status": statuses[i % 3],
        });
        let value = codec
            .encode_json("sensor-data-value", &record)
            .expect("encode");
        let key = format!("sensor-{}", i % 100);
        handles.push(p.enqueue(&topic, Some(key.as_bytes()), &value));
    }
    for h in handles {
        h.wait().expect("delivery");
    }
    eprintln!("produced {n} SensorData records in {:?}", t.elapsed());

    let exe = std::env::current_exe().expect("exe");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let broker_name = match broker.kind() {
        BrokerKind::Kafka => "Apache Kafka",
        BrokerKind::Tansu => "tansu memory",
    };
    if only == "command" {
        if !command_rows(&bootstrap, &topic, &url, n, broker_name) {
            std::process::exit(1);
        }
        return;
    }
    let wanted = |name: &str| name.contains(only.as_str());
    let rows: Vec<Row> = [
        ("avro-edge Consumer, raw bytes", false, false),
        ("avro-edge Consumer + Codec, decoded JSON", false, true),
        ("kafkajs 2.2.4, raw bytes", true, false),
        ("kafkajs + confluent-schema-registry decode", true, true),
    ]
    .into_iter()
    .filter(|(name, _, _)| wanted(name))
    .filter_map(|(name, js, decode)| match (js, decode) {
        (false, false) => ours(&exe, &bootstrap, &topic, n, "-", name),
        (false, true) => ours(&exe, &bootstrap, &topic, n, &url, name),
        (true, false) => kafkajs(&bootstrap, &topic, n, None, name),
        (true, true) => kafkajs(&bootstrap, &topic, n, Some(&url), name),
    })
    .collect();

    let complete = |r: &Row| r.count == n as f64 && r.bad == 0.0 && r.total > 0.0;
    println!(
        "\nconsume {n} SensorData records (3 partitions, {}, fresh group, earliest; clocks start before connect; RSS read after close)",
        match broker.kind() {
            BrokerKind::Kafka => "Apache Kafka",
            BrokerKind::Tansu => "tansu memory",
        }
    );
    println!(
        "| consumer | records | undecodable | s first→last | s total (connect+join+read) | msgs/s (total) | peak RSS (KiB) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let rate = if complete(r) {
            format!("{:.0}", r.count / r.total)
        } else {
            "incomplete".to_string()
        };
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {rate} | {} |",
            r.name, r.count, r.bad, r.secs, r.total, r.rss
        );
    }
    let incomplete: Vec<&str> = rows
        .iter()
        .filter(|r| !complete(r))
        .map(|r| r.name)
        .collect();
    let commands_ok = only.is_empty() && command_rows(&bootstrap, &topic, &url, n, broker_name)
        || !only.is_empty();
    if !incomplete.is_empty() || !commands_ok {
        eprintln!(
            "consumer bench: incomplete run(s), no rate reported: {} (want {n} records, 0 undecodable)",
            incomplete.join(", ")
        );
        std::process::exit(1);
    }
}
