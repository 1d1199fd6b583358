//! The two x86_64 builds of the `avro-edge` binary the benches run side by side (glibc, and the static
//! musl build the gateways ship), and a timer that reports a child's wall, user and system time and peak
//! RSS. Shared by the producer, consumer and forward benches through `#[path]`.
//!
//! Both builds use the release profile, as shipped (`opt-level = "s"`, fat LTO), each in its own target
//! directory so that `cargo bench` (whose bench profile writes `target/release/avro-edge`) never
//! overwrites them: `scripts/bench-builds` makes both. `AVRO_EDGE_BENCH_GLIBC_BIN` and
//! `AVRO_EDGE_BENCH_MUSL_BIN` point at other binaries. Must not decide what a bench measures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One build of the binary.
pub struct Build {
    /// "glibc" or "musl static".
    pub name: &'static str,
    pub path: PathBuf,
}

/// The cargo target directory this bench was built in (`<target>/release/deps/<bench>`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn build(name: &'static str, env: &str, triple: &str) -> Result<Build, String> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join(triple).join("release/avro-edge"));
    if path.is_file() {
        Ok(Build { name, path })
    } else {
        Err(format!(
            "{name}: not built ({}; scripts/bench-builds builds it, or set {env})",
            path.display()
        ))
    }
}

/// The glibc and musl release builds that exist; a line for each that does not.
pub fn builds() -> (Vec<Build>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for b in [
        build(
            "glibc",
            "AVRO_EDGE_BENCH_GLIBC_BIN",
            "x86_64-unknown-linux-gnu",
        ),
        build(
            "musl static",
            "AVRO_EDGE_BENCH_MUSL_BIN",
            "x86_64-unknown-linux-musl",
        ),
    ] {
        match b {
            Ok(b) => found.push(b),
            Err(e) => missing.push(e),
        }
    }
    (found, missing)
}

/// A finished child: its output and what `/usr/bin/time` said about it.
pub struct Timed {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    /// Wall-clock seconds, measured here (spawn to exit).
    pub wall: f64,
    pub user: f64,
    pub sys: f64,
    /// Peak resident set size (KiB), the kernel's `ru_maxrss`.
    pub max_rss_kb: u64,
}

/// Run `bin args…` under `/usr/bin/time`, `input` on its stdin (from a thread), stdout and stderr
/// collected; `env` added to its environment.
pub fn timed(
    bin: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<&[u8]>,
) -> std::io::Result<Timed> {
    use std::io::Write;
    let times = std::env::temp_dir().join(format!(
        "avro-edge-bench-time-{}-{}",
        std::process::id(),
        std::thread::current().name().unwrap_or("main")
    ));
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(&times)
        .arg(bin)
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let writer = match (child.stdin.take(), input) {
        (Some(mut stdin), Some(input)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || stdin.write_all(&input)))
        }
        _ => None,
    };
    let out = child.wait_with_output()?;
    let wall = start.elapsed().as_secs_f64();
    if let Some(w) = writer {
        let _ = w.join();
    }
    let text = std::fs::read_to_string(&times).unwrap_or_default();
    let _ = std::fs::remove_file(&times);
    let nums: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let (user, sys, rss) = match nums[..] {
        [u, s, m] => (u, s, m),
        _ => (0.0, 0.0, 0.0),
    };
    Ok(Timed {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wall,
        user,
        sys,
        max_rss_kb: rss as u64,
    })
}

/// The side-by-side table of a bench that ran each build `runs` times over `n` records: medians of the
/// complete runs, and the wall time against glibc's.
pub fn print_table(
    n: usize,
    runs: usize,
    found: &[Build],
    results: &[Vec<Timed>],
    missing: &[String],
) {
    println!(
        "| build | runs complete | wall s | msgs/s | user s | sys s | peak RSS (MiB) | wall vs glibc |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut glibc_wall = None;
    for (b, ts) in found.iter().zip(results) {
        if ts.is_empty() {
            println!("| {} | 0/{runs} | - | - | - | - | - | - |", b.name);
            continue;
        }
        let med = |f: fn(&Timed) -> f64| median(ts.iter().map(f).collect());
        let wall = med(|t| t.wall);
        if b.name == "glibc" {
            glibc_wall = Some(wall);
        }
        println!(
            "| {} | {}/{runs} | {wall:.2} | {:.0} | {:.2} | {:.2} | {:.1} | {} |",
            b.name,
            ts.len(),
            n as f64 / wall,
            med(|t| t.user),
            med(|t| t.sys),
            med(|t| t.max_rss_kb as f64) / 1024.0,
            glibc_wall
                .map(|g| format!("{:.2}x", wall / g))
                .unwrap_or_else(|| "-".into())
        );
    }
    for m in missing {
        println!("| {m} | | | | | | | |");
    }
}

/// The median of `xs` (the upper one of an even count); 0 when empty.
/// A count from the environment (`AVRO_EDGE_BENCH_N`, `AVRO_EDGE_BENCH_RUNS`), else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// One SensorData NDJSON line (what `produce` and `forward` read), record `i`.
pub fn sensor_line(i: usize) -> String {
    format!(
        r#"{{"sensorId":"sensor-{}","timestamp":{},"temperature":{}.25,"humidity":48.5,"status":"NORMAL"}}"#,
        i % 50,
        1_764_028_800_000u64 + i as u64,
        i % 40
    ) + "\n"
}

/// `n` SensorData NDJSON lines.
pub fn sensor_lines(n: usize) -> String {
    (0..n).map(sensor_line).collect()
}
