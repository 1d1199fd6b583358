//! Forwarder benchmark (real `avro-edge forward` binary, the testkit's shared broker: Apache Kafka by
//! default, tansu with `AVRO_EDGE_TEST_BROKER=tansu`; prints a table):
//! throughput from stdin to acknowledged (fsync `interval`), peak RSS (VmHWM) while fed a steady
//! 10,000 records/s for 10 s, start-to-first-send (process spawn → the forwarder's "first records
//! acknowledged" log line), and the stripped aarch64 binary sizes (default and `tls`) when they have been
//! built (`cargo build --release --target aarch64-unknown-linux-musl [--features tls --target-dir TARGET/tls]`,
//! TARGET being `CARGO_TARGET_DIR` or else `target/`).
//! Targets: aarch64 ≤ 4 MB with tls, RSS ≤ 10 MB at 10k/s, start to first send ≤ 50 ms. Measures, never
//! asserts a target; but a run in which not every record was acknowledged (the forwarder's final `acked=`
//! count, or its exit status) makes the bench exit non-zero with a message instead of printing a rate or
//! an RSS for it. Peak RSS is sampled from /proc every 10 ms until the process exits, so it covers the
//! drain after stdin closes as well as the steady feed.
//!
//! Which binaries: the glibc and static musl release builds side by side, one column each (see
//! `common/builds.rs`; `scripts/bench-builds` makes both), else the bench-profile glibc binary cargo built
//! for this bench. Throughput and start are each the median of `AVRO_EDGE_BENCH_RUNS` runs (default 3),
//! the RSS run is one run per build. `AVRO_EDGE_BENCH_RSS_ONLY=1` measures the RSS run alone.
//!
//! Then the cost of exactly-once (`common/exactly_once.rs`), with the musl build (the bench-profile
//! binary when it is not built): throughput and p50/p99 stdin → committed latency without it and with
//! it at commit intervals of 100 ms and 1 s. `AVRO_EDGE_BENCH_EOS_ONLY=1` measures that table alone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use avro_edge_testkit::{BrokerKind, TestBroker, log_time_us, unique_topic};

#[path = "common/builds.rs"]
mod builds;
#[path = "common/exactly_once.rs"]
mod exactly_once;

/// The binary cargo built for this bench (bench profile, glibc): used when no release build is there.
const BIN: &str = env!("CARGO_BIN_EXE_avro-edge");

fn root() -> PathBuf {
    avro_edge_testkit::root()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("avro-edge-fwdbench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn line(i: usize) -> String {
    builds::sensor_line(i)
}

/// The forwarder on `dir`'s spool, stdin piped, `extra` arguments last (e.g. `--set k=v`).
fn spawn(bin: &Path, dir: &Path, bootstrap: &str, topic: &str, extra: &[&str]) -> Child {
    Command::new(bin)
        .args(["forward", "--brokers", bootstrap, "--topic", topic])
        .args(["--subject", "sensor-data-value", "--fsync", "interval"])
        .arg("--schema-cache")
        .arg(root().join("fixtures/schema-cache"))
        .arg("--spool")
        .arg(dir.join("spool"))
        .arg("--dead-letter")
        .arg(dir.join("dead.ndjson"))
        .args([
            "--set",
            "kafka.create_partitions=3",
            "--drain-timeout-ms",
            "60000",
        ])
        .args(extra)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("forward.log")).unwrap())
        .spawn()
        .unwrap()
}

fn acked(dir: &Path) -> u64 {
    let log = std::fs::read_to_string(dir.join("forward.log")).unwrap_or_default();
    log.rsplit("acked=")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A finished run: the forwarder's exit status, its final `acked=` count and its directory (log kept).
struct Done {
    ok: bool,
    acked: u64,
    dir: PathBuf,
}

impl Done {
    /// `Err` with a clear message unless the process exited 0 having acknowledged all `want` records.
    fn complete(&self, what: &str, want: u64) -> Result<(), String> {
        if self.ok && self.acked == want {
            return Ok(());
        }
        Err(format!(
            "forward bench: {what}: {} of {want} records acknowledged{}; no figure reported (log: {})",
            self.acked,
            if self.ok {
                ""
            } else {
                ", forwarder exited non-zero"
            },
            self.dir.join("forward.log").display()
        ))
    }
}

/// Records/s from the first byte on stdin to the process exit after the last record was acknowledged
/// (with `extra` arguments).
fn throughput(bin: &Path, bootstrap: &str, n: usize, extra: &[&str]) -> (f64, Done) {
    let dir = tmpdir("tput");
    let input: String = (0..n).map(line).collect();
    let mut child = spawn(bin, &dir, bootstrap, &unique_topic("bench-tput"), extra);
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let ok = child.wait().is_ok_and(|s| s.success());
    let secs = t.elapsed().as_secs_f64();
    let acked = acked(&dir);
    (n as f64 / secs, Done { ok, acked, dir })
}

/// The process's VmHWM (kB), if it is still there to read.
fn vmhwm_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Peak RSS (kB) fed `rate` records/s for `secs` seconds, sampled every 10 ms until the process exits
/// (the drain after stdin closes included), and how the run ended.
fn rss_at(bin: &Path, bootstrap: &str, rate: usize, secs: u64) -> (u64, Done) {
    let dir = tmpdir("rss");
    let mut child = spawn(bin, &dir, bootstrap, &unique_topic("bench-rss"), &[]);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let tick = Duration::from_millis(10);
    let per_tick = rate / 100;
    let start = Instant::now();
    let mut i = 0;
    let mut hwm = 0;
    for k in 0..(secs * 100) {
        let chunk: String = (i..i + per_tick).map(line).collect();
        i += per_tick;
        stdin.write_all(chunk.as_bytes()).unwrap();
        hwm = hwm.max(vmhwm_kb(pid).unwrap_or(0));
        let next = start + tick * (k as u32 + 1);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    drop(stdin);
    let status = loop {
        hwm = hwm.max(vmhwm_kb(pid).unwrap_or(0));
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => std::thread::sleep(tick),
            Err(_) => break child.wait().ok(),
        }
    };
    let ok = status.is_some_and(|s| s.success());
    let acked = acked(&dir);
    (hwm, Done { ok, acked, dir })
}

/// Process spawn → "first records acknowledged" (ms), one record on stdin, topic already there.
fn start_to_first_send(bin: &Path, bootstrap: &str, topic: &str) -> Option<f64> {
    let dir = tmpdir("start");
    let t0 = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_micros() as i64;
    let mut child = spawn(bin, &dir, bootstrap, topic, &[]);
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(line(0).as_bytes());
    }
    child.wait().ok()?;
    let log = std::fs::read_to_string(dir.join("forward.log")).ok()?;
    let l = log
        .lines()
        .find(|l| l.contains("first records acknowledged"))?;
    let t1 = log_time_us(l.split_whitespace().next()?)?;
    Some((t1 - t0) as f64 / 1000.0)
}

fn size(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{} B ({:.2} MiB)", m.len(), m.len() as f64 / 1_048_576.0),
        Err(_) => format!("not built ({})", path.display()),
    }
}

/// One build's figures.
struct Figures {
    name: String,
    rate: Option<f64>,
    rates: Vec<f64>,
    hwm_kb: Option<u64>,
    start_ms: Option<f64>,
    starts: Vec<f64>,
}

/// Measure one binary; failed runs are reported in `failures` and leave their figure out.
fn measure(
    name: &str,
    bin: &Path,
    bootstrap: &str,
    runs: usize,
    failures: &mut Vec<String>,
) -> Figures {
    let n = 200_000;
    let rss_only = std::env::var_os("AVRO_EDGE_BENCH_RSS_ONLY").is_some();
    let mut rates = Vec::new();
    for _ in 0..if rss_only { 0 } else { runs } {
        let (rate, tput) = throughput(bin, bootstrap, n, &[]);
        match tput.complete(&format!("{name}: throughput run"), n as u64) {
            Ok(()) => rates.push(rate),
            Err(e) => failures.push(e),
        }
    }
    let (hwm_kb, rss) = rss_at(bin, bootstrap, 10_000, 10);
    let hwm_kb = match rss.complete(
        &format!("{name}: RSS run at 10,000 records/s for 10 s"),
        100_000,
    ) {
        Ok(()) => Some(hwm_kb),
        Err(e) => {
            failures.push(e);
            None
        }
    };
    let mut starts = Vec::new();
    if !rss_only {
        // Warm topic so the start measurement is the forwarder's own start (plus one produce round trip).
        let topic = unique_topic("bench-start");
        let _ = start_to_first_send(bin, bootstrap, &topic);
        starts = (0..runs.max(5))
            .filter_map(|_| start_to_first_send(bin, bootstrap, &topic))
            .collect();
        starts.sort_by(|a, b| a.total_cmp(b));
    }
    Figures {
        name: name.to_string(),
        rate: (!rates.is_empty()).then(|| builds::median(rates.clone())),
        rates,
        hwm_kb,
        start_ms: starts.get(starts.len() / 2).copied(),
        starts,
    }
}

fn print_table(n: usize, figs: &[Figures], broker: &str) {
    println!();
    println!("forwarder, {broker}, acks=all, fsync interval");
    let names: Vec<&str> = figs.iter().map(|f| f.name.as_str()).collect();
    println!("| measure | {} | target |", names.join(" | "));
    println!("| --- |{} --- |", " ---: |".repeat(figs.len()));
    let row = |what: &str, cell: &dyn Fn(&Figures) -> String, target: &str| {
        let cells: Vec<String> = figs.iter().map(cell).collect();
        println!("| {what} | {} | {target} |", cells.join(" | "));
    };
    let span = |xs: &[f64]| match (
        xs.iter().copied().reduce(f64::min),
        xs.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => format!(" (runs {lo:.0}–{hi:.0})"),
        _ => String::new(),
    };
    row(
        &format!("throughput stdin → acked ({n} records), records/s, median"),
        &|f| match f.rate {
            Some(r) => format!("{r:.0}{}", span(&f.rates)),
            None => "not measured".into(),
        },
        "-",
    );
    row(
        "peak RSS (VmHWM, sampled every 10 ms to exit) fed 10,000 records/s for 10 s (100,000 acked)",
        &|f| match f.hwm_kb {
            Some(kb) => format!("{:.1} MiB ({kb} kB)", kb as f64 / 1024.0),
            None => "not measured".into(),
        },
        "≤ 6 MiB (musl)",
    );
    row(
        "start → first record acked, median",
        &|f| match f.start_ms {
            Some(ms) => format!(
                "{ms:.1} ms (of {}, {:.1}–{:.1})",
                f.starts.len(),
                f.starts.first().copied().unwrap_or(0.0),
                f.starts.last().copied().unwrap_or(0.0)
            ),
            None => "not measured".into(),
        },
        "≤ 50 ms",
    );
}

/// The table's last rows: the stripped aarch64 binaries' sizes, where `cargo build` put them
/// (`CARGO_TARGET_DIR` when set, else the repository's target/).
fn print_arm_sizes() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    println!(
        "| aarch64 static binary, stripped, default features | {} |",
        size(&target.join("aarch64-unknown-linux-musl/release/avro-edge"))
    );
    println!(
        "| aarch64 static binary, stripped, --features tls | {} |",
        size(&target.join("tls/aarch64-unknown-linux-musl/release/avro-edge"))
    );
}

fn main() {
    let broker = match TestBroker::shared() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("forward bench: no broker ({e}); nothing measured");
            std::process::exit(1);
        }
    };
    let bootstrap = broker.bootstrap();
    let broker_name = match broker.kind() {
        BrokerKind::Kafka => "Apache Kafka",
        BrokerKind::Tansu => "tansu memory storage",
    };
    let runs: usize = builds::env_count("AVRO_EDGE_BENCH_RUNS", 3);
    let (found, missing) = builds::builds();
    let mut bins: Vec<(String, PathBuf)> = found
        .iter()
        .map(|b| (format!("{} release", b.name), b.path.clone()))
        .collect();
    for m in &missing {
        eprintln!("forward bench: {m}");
    }
    if bins.is_empty() {
        bins.push(("glibc, bench profile".into(), PathBuf::from(BIN)));
    }
    let mut failures = Vec::new();
    let eos_only = std::env::var_os("AVRO_EDGE_BENCH_EOS_ONLY").is_some();
    if !eos_only {
        let figs: Vec<Figures> = bins
            .iter()
            .map(|(name, bin)| measure(name, bin, &bootstrap, runs, &mut failures))
            .collect();
        print_table(200_000, &figs, broker_name);
        print_arm_sizes();
    }
    let (eos_name, eos_bin) = (bins.iter())
        .find(|(name, _)| name.starts_with("musl"))
        .unwrap_or(&bins[0]);
    let rows = exactly_once::measure(eos_bin, &bootstrap, 100_000, runs, &mut failures);
    exactly_once::print(&rows, eos_name, broker_name, 100_000);
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        std::process::exit(1);
    }
}
