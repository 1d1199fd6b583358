//! The forward bench's exactly-once table (issue 16): for the forwarder without and with
//! `forward.exactly_once` (commit intervals 100 ms and 1 s), and without its gateway headers (on by
//! default, in the other rows), on the same broker and binary,
//! - throughput stdin → committed: `n` records written to stdin at once, until the process exits
//!   having committed (acknowledged) them all; the median of `runs` runs;
//! - latency stdin → committed: a steady `rate` records/s for `secs` seconds, each reading's
//!   `timestamp` field set to the wall clock when it is written to stdin; a read_committed
//!   consumer (fetch wait 10 ms) reads the topic meanwhile, and the latency of a reading is the
//!   time it is read minus that timestamp (p50 and p99 over every reading). Without exactly-once
//!   "committed" is "acknowledged" (the records are not in transactions).
//!
//! Must not assert a speed: it prints, and fails only a run that did not deliver every record.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use avro_edge::{Codec, Consumer, ConsumerConfig, IsolationLevel, OfflineCache, OffsetReset};
use avro_edge_testkit::unique_topic;

/// One configuration's figures.
pub struct Row {
    pub label: String,
    pub rates: Vec<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub samples: usize,
}

/// The configurations measured: label and `--set` arguments.
fn configs() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "exactly-once off, no gateway headers",
            vec!["--set", "forward.headers=false"],
        ),
        ("exactly-once off", vec![]),
        (
            "exactly-once, commit every 100 ms",
            vec![
                "--set",
                "forward.exactly_once=true",
                "--set",
                "forward.commit_interval_ms=100",
            ],
        ),
        (
            "exactly-once, commit every 1 s",
            vec![
                "--set",
                "forward.exactly_once=true",
                "--set",
                "forward.commit_interval_ms=1000",
            ],
        ),
    ]
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A reading stamped with the time it is written.
fn stamped_line(i: usize, ms: u64) -> String {
    format!(
        r#"{{"sensorId":"sensor-{}","timestamp":{ms},"temperature":{}.25,"humidity":48.5,"status":"NORMAL"}}"#,
        i % 50,
        i % 40
    ) + "\n"
}

/// Read `topic` (3 partitions) with read_committed until `stop`, returning each reading's
/// latency (read time − its timestamp), ms.
fn read_latencies(bootstrap: &str, topic: &str, stop: &AtomicBool) -> Vec<f64> {
    let parts: Vec<(&str, i32)> = (0..3).map(|p| (topic, p)).collect();
    let mut cfg = ConsumerConfig::assign(bootstrap, &parts);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.isolation_level = IsolationLevel::ReadCommitted;
    cfg.fetch_max_wait = Duration::from_millis(10);
    let codec = Codec::new(Arc::new(OfflineCache::new(
        avro_edge_testkit::root().join("fixtures/schema-cache"),
    )));
    let mut out = Vec::new();
    let Ok(mut c) = Consumer::connect(cfg) else {
        return out;
    };
    while !stop.load(Ordering::Relaxed) {
        let Ok(records) = c.poll(Duration::from_millis(50)) else {
            continue;
        };
        let at = now_ms();
        for r in records {
            if let Some(v) = r.value.as_deref().and_then(|v| codec.decode_json(v).ok())
                && let Some(ts) = v["timestamp"].as_u64()
            {
                out.push(at.saturating_sub(ts) as f64);
            }
        }
    }
    let _ = c.close();
    out
}

/// Write `per_tick` stamped readings every 10 ms for `secs` s, then close stdin; false when a
/// write failed.
fn feed(mut stdin: std::process::ChildStdin, per_tick: usize, secs: u64) -> bool {
    let tick = Duration::from_millis(10);
    let start = Instant::now();
    for k in 0..(secs * 100) {
        let ms = now_ms();
        let chunk: String = (0..per_tick).map(|i| stamped_line(i, ms)).collect();
        if stdin.write_all(chunk.as_bytes()).is_err() {
            return false;
        }
        if let Some(d) = (start + tick * (k as u32 + 1)).checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    true
}

/// Feed `rate` stamped readings a second for `secs` s and measure their latency to a
/// read_committed reader; `None` when the run did not deliver them all.
fn latency(
    bin: &Path,
    bootstrap: &str,
    extra: &[&str],
    rate: usize,
    secs: u64,
) -> Option<(f64, f64, usize)> {
    let dir = super::tmpdir("eos-lat");
    let topic = unique_topic("bench-eos-lat");
    // Create the topic (and warm the forwarder's path) before the clock starts.
    let mut warm = super::spawn(bin, &dir, bootstrap, &topic, extra);
    if let Some(mut stdin) = warm.stdin.take() {
        let _ = stdin.write_all(stamped_line(0, now_ms()).as_bytes());
    }
    warm.wait().ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (bootstrap, topic, stop) = (bootstrap.to_string(), topic.clone(), stop.clone());
        std::thread::spawn(move || read_latencies(&bootstrap, &topic, &stop))
    };
    let mut child = super::spawn(bin, &dir, bootstrap, &topic, extra);
    let per_tick = (rate / 100).max(1);
    let fed = child
        .stdin
        .take()
        .is_some_and(|stdin| feed(stdin, per_tick, secs));
    let ok = child.wait().is_ok_and(|s| s.success()) && fed;
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let mut lat = reader.join().ok()?;
    let want = per_tick * (secs as usize) * 100 + 1;
    if !ok || lat.len() < want {
        eprintln!(
            "forward bench: latency run {extra:?}: {} of {want} read (log: {})",
            lat.len(),
            dir.join("forward.log").display()
        );
        return None;
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let _ = std::fs::remove_dir_all(&dir);
    Some((pct(0.50), pct(0.99), lat.len()))
}

/// Every configuration's throughput (`runs` runs of `n` records) and latency.
pub fn measure(
    bin: &Path,
    bootstrap: &str,
    n: usize,
    runs: usize,
    failures: &mut Vec<String>,
) -> Vec<Row> {
    let (rate, secs) = (2_000, 15);
    let mut rows = Vec::new();
    for (label, extra) in configs() {
        let mut rates = Vec::new();
        for _ in 0..runs {
            let (r, done) = super::throughput(bin, bootstrap, n, &extra);
            match done.complete(&format!("{label}: throughput run"), n as u64) {
                Ok(()) => rates.push(r),
                Err(e) => failures.push(e),
            }
        }
        let lat = latency(bin, bootstrap, &extra, rate, secs);
        if lat.is_none() {
            failures.push(format!("forward bench: {label}: latency run incomplete"));
        }
        rows.push(Row {
            label: label.to_string(),
            rates,
            p50_ms: lat.map(|l| l.0),
            p99_ms: lat.map(|l| l.1),
            samples: lat.map_or(0, |l| l.2),
        });
    }
    rows
}

/// The table.
pub fn print(rows: &[Row], build: &str, broker: &str, n: usize) {
    println!();
    println!("forwarder exactly-once cost, {build}, {broker}, acks=all, fsync interval 100 ms");
    println!(
        "| configuration | throughput stdin → committed ({n} records), records/s, median (runs) | latency stdin → committed at 2,000 records/s for 15 s, p50 | p99 |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for r in rows {
        let runs: Vec<String> = r.rates.iter().map(|x| format!("{x:.0}")).collect();
        let rate = if r.rates.is_empty() {
            "not measured".to_string()
        } else {
            format!(
                "{:.0} ({})",
                super::builds::median(r.rates.clone()),
                runs.join(", ")
            )
        };
        let ms = |x: Option<f64>| x.map_or("not measured".to_string(), |v| format!("{v:.0} ms"));
        println!(
            "| {} | {rate} | {} (of {}) | {} |",
            r.label,
            ms(r.p50_ms),
            r.samples,
            ms(r.p99_ms)
        );
    }
}
