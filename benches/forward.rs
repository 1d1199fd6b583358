//! Forwarder benchmark (real `avro-edge forward` binary, real tansu broker; prints a table):
//! throughput from stdin to acknowledged (fsync `interval`), peak RSS (VmHWM) while fed a steady
//! 10,000 records/s for 10 s, start-to-first-send (process spawn → the forwarder's "first records
//! acknowledged" log line), and the stripped aarch64 binary sizes (default and `tls`) when they have been
//! built (`cargo build --release --target aarch64-unknown-linux-musl [--features tls --target-dir target/tls]`).
//! Targets: aarch64 ≤ 4 MB with tls, RSS ≤ 10 MB at 10k/s, start to first send ≤ 50 ms. Measures, never
//! asserts a target; but a run in which not every record was acknowledged (the forwarder's final `acked=`
//! count, or its exit status) makes the bench exit non-zero with a message instead of printing a rate or
//! an RSS for it. Peak RSS is sampled from /proc every 10 ms until the process exits, so it covers the
//! drain after stdin closes as well as the steady feed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use avro_edge_testkit::{Broker, Storage, unique_topic};

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
    format!(
        r#"{{"sensorId":"sensor-{}","timestamp":{},"temperature":{}.25,"humidity":48.5,"status":"NORMAL"}}"#,
        i % 50,
        1_764_028_800_000u64 + i as u64,
        i % 40
    ) + "\n"
}

fn spawn(dir: &Path, bootstrap: &str, topic: &str) -> Child {
    Command::new(BIN)
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

/// Records/s from the first byte on stdin to the process exit after the last record was acknowledged.
fn throughput(broker: &Broker, n: usize) -> (f64, Done) {
    let dir = tmpdir("tput");
    let input: String = (0..n).map(line).collect();
    let mut child = spawn(&dir, &broker.bootstrap(), &unique_topic("bench-tput"));
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
fn rss_at(broker: &Broker, rate: usize, secs: u64) -> (u64, Done) {
    let dir = tmpdir("rss");
    let mut child = spawn(&dir, &broker.bootstrap(), &unique_topic("bench-rss"));
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

/// Unix time in µs of a log line's RFC 3339 UTC timestamp (`2026-11-25T03:12:35.367019Z`).
fn log_time_us(ts: &str) -> Option<i64> {
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let micros: i64 = format!("{:0<6}", &frac[..frac.len().min(6)]).parse().ok()?;
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000) + micros)
}

/// Process spawn → "first records acknowledged" (ms), one record on stdin, topic already there.
fn start_to_first_send(broker: &Broker, topic: &str) -> Option<f64> {
    let dir = tmpdir("start");
    let t0 = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_micros() as i64;
    let mut child = spawn(&dir, &broker.bootstrap(), topic);
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

fn main() {
    let broker = match Broker::start(Storage::Memory) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("forward bench: tansu unavailable ({e}); nothing measured");
            return;
        }
    };
    let n = 200_000;
    let (rate, tput) = throughput(&broker, n);
    let (hwm_kb, rss) = rss_at(&broker, 10_000, 10);
    let failures: Vec<String> = [
        tput.complete("throughput run", n as u64),
        rss.complete("RSS run at 10,000 records/s for 10 s", 100_000),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        std::process::exit(1);
    }
    // Warm topic so the start measurement is the forwarder's own start (plus one produce round trip).
    let topic = unique_topic("bench-start");
    let _ = start_to_first_send(&broker, &topic);
    let mut starts: Vec<f64> = (0..5)
        .filter_map(|_| start_to_first_send(&broker, &topic))
        .collect();
    starts.sort_by(|a, b| a.total_cmp(b));
    let median = starts.get(starts.len() / 2).copied();

    let target = root().join("target");
    println!();
    println!("| measure | value | target |");
    println!("| --- | --- | --- |");
    println!(
        "| throughput stdin → acked (fsync interval, {n} records, acks=all) | {rate:.0} records/s (all {} acked) | - |",
        tput.acked
    );
    println!(
        "| peak RSS (VmHWM, sampled every 10 ms to exit) fed 10,000 records/s for 10 s | {:.1} MB ({hwm_kb} kB; all {} acked) | ≤ 10 MB |",
        hwm_kb as f64 / 1024.0,
        rss.acked
    );
    match median {
        Some(ms) => println!(
            "| start → first record acked (median of {}, min {:.1}, max {:.1}) | {ms:.1} ms | ≤ 50 ms |",
            starts.len(),
            starts.first().copied().unwrap_or(0.0),
            starts.last().copied().unwrap_or(0.0)
        ),
        None => println!("| start → first record acked | not measured | ≤ 50 ms |"),
    }
    println!(
        "| aarch64 static binary, stripped, default features | {} | - |",
        size(&target.join("aarch64-unknown-linux-musl/release/avro-edge"))
    );
    println!(
        "| aarch64 static binary, stripped, --features tls | {} | ≤ 4 MB |",
        size(&target.join("tls/aarch64-unknown-linux-musl/release/avro-edge"))
    );
}
