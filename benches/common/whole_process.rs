//! The yardsticks bench's whole-process table: the commands a user runs, timed from spawn to exit
//! under `/usr/bin/time` on the same broker, rounds interleaved. Produce: `kcat -P` (librdkafka in
//! C, Debian's `kcat`) reading `key:value` lines whose values are as long as our Avro frames, acks=all,
//! idempotent, linger 5 ms; `avro-edge produce` (NDJSON → Avro → Kafka, acks=all, idempotent) of the
//! glibc and static musl builds. Consume: `kcat -C` of the topic our glibc produce wrote (raw values,
//! no group, from the beginning to the end), `avro-edge consume` of the same topic (decoded to JSON
//! lines, a fresh group, `--max N`) of both builds. msgs/s is N over the whole process's wall time
//! (start, metadata, InitProducerId or group join, leave included); CPU is user + system.
//!
//! Must not assert on speed; a run that did not move all N records is left out of its row's medians
//! (the row shows how many runs were complete) and makes the bench exit non-zero.

use std::path::{Path, PathBuf};

use avro_edge::{Codec, OfflineCache};
use avro_edge_testkit::root;

use super::builds;

/// One command's row: its name and its complete runs.
pub struct Row {
    pub side: &'static str,
    pub name: String,
    pub runs: Vec<builds::Timed>,
    pub failed: usize,
}

/// The inputs: NDJSON for ours, `key:value` lines of the same lengths for kcat.
pub struct Inputs {
    ndjson: String,
    kcat: String,
}

/// The records of the NDJSON lines, and kcat's lines with values as long as their Avro frames.
pub fn inputs(n: usize) -> Inputs {
    let codec = Codec::new(std::sync::Arc::new(OfflineCache::new(
        root().join("fixtures/schema-cache"),
    )));
    let ndjson = builds::sensor_lines(n);
    let mut kcat = String::with_capacity(n * 48);
    for (i, line) in ndjson.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("sensor line");
        let len = codec
            .encode_json("sensor-data-value", &v)
            .expect("SensorData encodes")
            .len();
        let value: String = (0..len)
            .map(|j| char::from(b'a' + ((i * 7 + j) % 26) as u8))
            .collect();
        kcat.push_str(&format!(
            "{}:{value}\n",
            v["sensorId"].as_str().unwrap_or("")
        ));
    }
    Inputs { ndjson, kcat }
}

fn kcat() -> PathBuf {
    PathBuf::from("kcat")
}

/// Keep `t` in `row` if `complete` says it moved all records.
fn keep(
    row: &mut Row,
    t: std::io::Result<builds::Timed>,
    complete: impl Fn(&builds::Timed) -> bool,
) {
    match t {
        Ok(t) if t.ok && complete(&t) => row.runs.push(t),
        Ok(t) => {
            row.failed += 1;
            eprintln!(
                "yardsticks: {} incomplete: {}",
                row.name,
                t.stderr
                    .lines()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        Err(e) => {
            row.failed += 1;
            eprintln!("yardsticks: {} not run: {e}", row.name);
        }
    }
}

/// `kcat -P` of the inputs into `topic`.
pub fn kcat_produce(row: &mut Row, bootstrap: &str, topic: &str, inp: &Inputs) {
    let args = [
        "-P",
        "-b",
        bootstrap,
        "-t",
        topic,
        "-K:",
        "-X",
        "acks=all",
        "-X",
        "enable.idempotence=true",
        "-X",
        "linger.ms=5",
    ];
    let t = builds::timed(&kcat(), &args, &[], Some(inp.kcat.as_bytes()));
    keep(row, t, |t| !t.stderr.contains("ERROR"));
}

/// `avro-edge produce` of the inputs into `topic`; every record acknowledged.
pub fn ours_produce(
    row: &mut Row,
    bin: &Path,
    bootstrap: &str,
    topic: &str,
    inp: &Inputs,
    n: usize,
) {
    let cache = root().join("fixtures/schema-cache");
    let args = [
        "produce",
        "--brokers",
        bootstrap,
        "--topic",
        topic,
        "--subject",
        "sensor-data-value",
        "--schema-cache",
        &cache.to_string_lossy(),
        "--key-field",
        "sensorId",
    ];
    let t = builds::timed(bin, &args, &[], Some(inp.ndjson.as_bytes()));
    let want = format!("acked {n} failed 0");
    keep(row, t, |t| {
        t.stdout.contains(&want) || t.stderr.contains(&want)
    });
}

/// `kcat -C` of the whole `topic` (all `n` records: the end offsets it reports add up to `n`).
pub fn kcat_consume(row: &mut Row, bootstrap: &str, topic: &str, n: usize) {
    let args = ["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e"];
    let t = builds::timed(&kcat(), &args, &[], None);
    keep(row, t, |t| {
        let ends: u64 = t
            .stderr
            .lines()
            .filter_map(|l| l.split("at offset ").nth(1))
            .filter_map(|s| s.split(':').next()?.trim().parse::<u64>().ok())
            .sum();
        ends == n as u64
    });
}

/// `avro-edge consume` of `n` records of `topic` in a fresh group, one JSON line each.
pub fn ours_consume(
    row: &mut Row,
    bin: &Path,
    bootstrap: &str,
    topic: &str,
    group: &str,
    n: usize,
) {
    let cache = root().join("fixtures/schema-cache");
    let ns = n.to_string();
    let args = [
        "consume",
        "--brokers",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--from-beginning",
        "--max",
        &ns,
        "--timeout",
        "30",
        "--schema-cache",
        &cache.to_string_lossy(),
    ];
    let t = builds::timed(bin, &args, &[], None);
    keep(row, t, |t| t.stdout.lines().count() == n);
}

/// The table: medians of the complete runs; each row's rate against the kcat row of its side. False
/// if any run was incomplete.
pub fn print(rows: &[Row], n: usize, broker: &str) -> bool {
    println!();
    println!(
        "whole processes: {n} SensorData records, 3 partitions, {broker}; produce acks=all idempotent linger 5 ms, consume from the beginning (ours decodes to JSON lines in a fresh group, kcat prints raw values, no group); msgs/s = N / wall time from spawn to exit; median of interleaved rounds"
    );
    println!(
        "| side | command | runs complete | wall s | msgs/s | vs kcat | CPU µs/record | peak RSS (MiB) | RSS vs kcat |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut all = true;
    let mut kcat: Option<(f64, f64)> = None;
    for r in rows {
        let total = r.runs.len() + r.failed;
        all &= r.failed == 0 && !r.runs.is_empty();
        if r.runs.is_empty() {
            println!(
                "| {} | {} | 0/{total} | incomplete | | | | | |",
                r.side, r.name
            );
            continue;
        }
        let med = |f: fn(&builds::Timed) -> f64| builds::median(r.runs.iter().map(f).collect());
        let (wall, cpu, rss) = (
            med(|t| t.wall),
            med(|t| t.user + t.sys),
            med(|t| t.max_rss_kb as f64) / 1024.0,
        );
        if r.name.starts_with("kcat") {
            kcat = Some((wall, rss));
        }
        let (vs, rss_vs) = match kcat {
            Some((w, m)) => (format!("{:.2}x", w / wall), format!("{:.2}x", rss / m)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {}/{total} | {wall:.2} | {:.0} | {vs} | {:.2} | {rss:.1} | {rss_vs} |",
            r.side,
            r.name,
            r.runs.len(),
            n as f64 / wall,
            cpu * 1e6 / n as f64,
        );
    }
    all
}
