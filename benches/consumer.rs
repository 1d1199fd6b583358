//! Consumer benchmark: our group consumer vs kafkajs (the reference service's library) reading
//! the same topic on the same tansu broker.
//!
//! Run: `cargo bench --bench consumer` (release). N SensorData-sized records (40-byte values) are
//! produced once into a 3-partition topic; then each side, in its own child process (ours: this
//! binary re-executed with `AVRO_EDGE_BENCH_CHILD=1`; theirs: `peers/node/peer.js consume
//! --quiet`), joins a fresh group from the earliest offset and reads all N. Reported: time from
//! the first record to the last, total time from connect (group join included; tansu's join is
//! part of it), msgs/s over the total, and the child's peak RSS (VmHWM). Prints a table; asserts nothing. `AVRO_EDGE_BENCH_N` overrides N (default 200,000).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use avro_edge::consumer::{Consumer, ConsumerConfig, OffsetReset};
use avro_edge::kafka::TopicSpec;
use avro_edge::producer::{Producer, ProducerConfig};
use avro_edge::testkit::{Broker, Storage, unique_topic};

fn vmhwm_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(-1)
}

/// The child: consume `n` records from `topic`, print `count secs rss_kb`.
fn child(bootstrap: &str, topic: &str, n: usize) {
    let mut cfg = ConsumerConfig::group(bootstrap, &unique_topic("bench-ours"), &[topic]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.session_timeout = Duration::from_secs(6);
    cfg.heartbeat_interval = Duration::from_secs(1);
    let start = Instant::now();
    let mut c = Consumer::connect(cfg).expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut biggest = 0usize;
    while count < n && Instant::now() < deadline {
        let got = c.poll(Duration::from_millis(500)).expect("poll");
        if !got.is_empty() {
            first.get_or_insert_with(Instant::now);
            biggest = biggest.max(got.len());
            count += got.len();
            bytes += got
                .iter()
                .map(|r| r.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>();
            last = Instant::now();
        }
    }
    let secs = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    let total = (last - start).as_secs_f64();
    eprintln!("ours: largest poll {biggest} records");
    println!("{count} {secs} {total} {} {bytes}", vmhwm_kb());
    let _ = c.close();
}

fn main() {
    let n: usize = std::env::var("AVRO_EDGE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let args: Vec<String> = std::env::args().collect();
    if std::env::var_os("AVRO_EDGE_BENCH_CHILD").is_some() {
        let (Some(b), Some(t)) = (args.get(1), args.get(2)) else {
            return;
        };
        child(b, t, n);
        return;
    }
    let broker = match Broker::start(Storage::Memory) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("consumer bench: no broker ({e})");
            return;
        }
    };
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("bench-consume");
    let mut pcfg = ProducerConfig::new([bootstrap.as_str()]);
    pcfg.auto_create = Some(TopicSpec {
        partitions: 3,
        replication: 1,
    });
    let p = Producer::connect(pcfg).expect("producer");
    let t = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("sensor-{}", i % 100);
        let mut value = vec![0u8, 0, 0, 0, 3];
        value.extend((0..35).map(|j| ((i + j) % 251) as u8));
        handles.push(p.enqueue(&topic, Some(key.as_bytes()), &value));
    }
    for h in handles {
        h.wait().expect("delivery");
    }
    eprintln!("produced {n} records in {:?}", t.elapsed());

    let exe = std::env::current_exe().expect("exe");
    let mut rows = Vec::new();
    let out = Command::new(&exe)
        .env("AVRO_EDGE_BENCH_CHILD", "1")
        .args([&bootstrap, &topic])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split_whitespace().collect();
    if let [count, secs, total, rss, _bytes] = f[..] {
        let num = |s: &str| s.parse::<f64>().unwrap_or(0.0);
        rows.push((
            "avro-edge Consumer (raw bytes)",
            num(count),
            num(secs),
            num(total),
            rss.to_string(),
        ));
    } else {
        eprintln!(
            "our child failed: {line} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let peer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/node/peer.js");
    let out = Command::new("node")
        .arg(&peer)
        .args([
            "consume",
            "--brokers",
            &bootstrap,
            "--topic",
            &topic,
            "--quiet",
            "--timeout",
            "300",
        ])
        .args([
            "--count",
            &n.to_string(),
            "--group",
            &unique_topic("bench-kafkajs"),
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value = text
                .lines()
                .last()
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_default();
            rows.push((
                "kafkajs 2.2.4 (eachMessage)",
                v["count"].as_f64().unwrap_or(0.0),
                v["secs"].as_f64().unwrap_or(0.0),
                v["total_secs"].as_f64().unwrap_or(0.0),
                v["rss_kb"].to_string(),
            ));
        }
        Ok(o) => eprintln!("kafkajs failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => eprintln!("kafkajs not run: {e}"),
    }

    println!(
        "\nconsume {n} records (40-byte values, 3 partitions, tansu memory, fresh group, earliest)"
    );
    println!(
        "| consumer | records | s first→last | s total (connect+join+read) | msgs/s (total) | peak RSS (KiB) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, count, secs, total, rss) in rows {
        let rate = if total > 0.0 { count / total } else { 0.0 };
        println!("| {name} | {count} | {secs:.2} | {total:.2} | {rate:.0} | {rss} |");
    }
}
