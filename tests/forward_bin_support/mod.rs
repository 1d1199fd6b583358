//! The real `avro-edge forward` binary against a real broker, for the forwarder's broker and fault
//! tests (tests/forward/broker.rs, tests/cluster/faults.rs, tests/forward/disk_full.rs): start it
//! (optionally inside a wrapper such as `unshare … sh -c`), feed it readings with unique ids, wait
//! for its log or exit, read the topic back and count every id (lost, duplicates), and print the
//! results as a table.
//!
//! Must not assert anything about the forwarder beyond what every caller wants of a read-back
//! (`check`: no record that was never fed, nothing lost, one partition per key, first arrivals in
//! feed order per key): the scenario's own expectations (duplicates, counters) stay in the tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use avro_edge::{Codec, Consumer, ConsumerConfig, OfflineCache, OffsetReset};

pub const BIN: &str = env!("CARGO_BIN_EXE_avro-edge");
/// Partitions of the topics the forwarder creates (`kafka.create_partitions`) and reads back.
pub const PARTITIONS: i32 = 3;
/// `--set` defaults of [`Fwd::spawn`]; a caller's `--set KEY=…` replaces the one with that key.
pub const DEFAULT_SETS: [&str; 4] = [
    "kafka.create_partitions=3",
    "kafka.linger_ms=2",
    "kafka.delivery_timeout_ms=4000",
    "kafka.request_timeout_ms=3000",
];

pub fn fixtures() -> PathBuf {
    avro_edge_testkit::root().join("fixtures")
}

/// `n` valid readings over `sensors` sensors; each sensor's timestamps increase with the line number.
pub fn readings(n: usize, sensors: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"sensorId":"s-{}","timestamp":{},"temperature":{}.5,"humidity":40.25,"status":"NORMAL"}}"#,
                i % sensors,
                1_764_028_800_000u64 + i as u64,
                i % 40
            )
        })
        .collect()
}

/// (sensorId, timestamp) of a reading line.
pub fn id_of_line(line: &str) -> (String, i64) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    (
        v["sensorId"].as_str().unwrap().to_string(),
        v["timestamp"].as_i64().unwrap(),
    )
}

/// The ids of `lines`, in feed order.
pub fn ids_of(lines: &[String]) -> Vec<(String, i64)> {
    lines.iter().map(|l| id_of_line(l)).collect()
}

/// A running forwarder: its process and the file its stderr (the log) goes to.
pub struct Fwd {
    pub child: Child,
    pub log: PathBuf,
}

impl Fwd {
    /// Start the forwarder with its spool and dead-letter file in `dir`, stdin piped (or empty when
    /// `stdin_null`), the log in `dir`.
    pub fn spawn(
        dir: &Path,
        bootstrap: &str,
        topic: &str,
        extra: &[&str],
        stdin_null: bool,
    ) -> Fwd {
        Fwd::spawn_env(dir, bootstrap, topic, extra, stdin_null, &[])
    }

    /// [`Fwd::spawn`] with more environment variables.
    pub fn spawn_env(
        dir: &Path,
        bootstrap: &str,
        topic: &str,
        extra: &[&str],
        stdin_null: bool,
        env: &[(&str, &Path)],
    ) -> Fwd {
        let log = dir.join(format!("forward-{}.log", nanos()));
        let mut cmd = command(dir, bootstrap, topic, extra);
        cmd.envs(env.iter().copied());
        Fwd::start(cmd, log, stdin_null)
    }

    /// Start `cmd` (a [`command`], possibly [`wrapped`]) with its stderr to `log`.
    pub fn start(mut cmd: Command, log: PathBuf, stdin_null: bool) -> Fwd {
        cmd.stdin(if stdin_null {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
        Fwd {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    pub fn feed(&mut self, lines: &[String]) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        let mut buf = String::new();
        for l in lines {
            buf.push_str(l);
            buf.push('\n');
        }
        stdin.write_all(buf.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Feed `lines` from a thread in chunks of `chunk`, `pause` apart (a steady stream), until they
    /// run out or `stop` is set; then close stdin. The thread returns how many lines it fed (a
    /// forwarder whose input blocks blocks it too).
    pub fn feed_until(
        &mut self,
        lines: Arc<Vec<String>>,
        chunk: usize,
        pause: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<usize> {
        let mut stdin = self.child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let mut fed = 0;
            for part in lines.chunks(chunk.max(1)) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mut buf = String::new();
                for l in part {
                    buf.push_str(l);
                    buf.push('\n');
                }
                if stdin.write_all(buf.as_bytes()).is_err() {
                    break;
                }
                fed += part.len();
                std::thread::sleep(pause);
            }
            fed
        })
    }

    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no '{needle}' in the forwarder log:\n{}", self.log_text());
    }

    /// Wait for a clean exit (status 0); returns the log.
    pub fn wait_ok(self, limit: Duration) -> String {
        let (st, log) = self.wait_exit(limit);
        assert!(st.success(), "forwarder exit {st}:\n{log}");
        log
    }

    /// Wait for the forwarder to exit, however it does; returns its status and log.
    pub fn wait_exit(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, self.log_text());
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "forwarder still running after {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Fwd {
    /// A test that panics must not leave its forwarder running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The `avro-edge forward` command line (no stdio set): the fixture schema cache unless `extra`
/// names one, spool `dir/spool`, dead letters `dir/dead-letter.ndjson`, [`DEFAULT_SETS`] unless
/// `extra` sets the same key, a 60 s drain, `RUST_LOG=info`.
pub fn command(dir: &Path, bootstrap: &str, topic: &str, extra: &[&str]) -> Command {
    command_with(dir, bootstrap, topic, extra, &DEFAULT_SETS)
}

/// [`command`] with other `--set` defaults than [`DEFAULT_SETS`] (e.g. without
/// `kafka.create_partitions`, so that the forwarder does not create its topic).
pub fn command_with(
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    extra: &[&str],
    defaults: &[&str],
) -> Command {
    let cache = fixtures().join("schema-cache");
    let mut cmd = Command::new(BIN);
    cmd.args(["forward", "--brokers", bootstrap, "--topic", topic])
        .args(["--subject", "sensor-data-value"]);
    if !extra.contains(&"--schema-cache") {
        cmd.arg("--schema-cache").arg(&cache);
    }
    cmd.arg("--spool")
        .arg(dir.join("spool"))
        .arg("--dead-letter")
        .arg(dir.join("dead-letter.ndjson"));
    for &set in defaults {
        let key = set.split('=').next().unwrap_or(set);
        if !extra.iter().any(|e| e.starts_with(&format!("{key}="))) {
            cmd.args(["--set", set]);
        }
    }
    cmd.args(["--drain-timeout-ms", "60000"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

/// `inner` run by `sh -c script sh ARGS… PROGRAM INNER_ARGS…` under `prefix` (e.g. `unshare --user
/// --map-root-user --mount`): the script gets `args` as `$1…`, then runs the forwarder with `"$@"`
/// after a `shift`. Environment variables set on `inner` are kept.
pub fn wrapped(prefix: &[&str], script: &str, args: &[OsString], inner: &Command) -> Command {
    let (program, rest) = prefix.split_first().expect("a wrapper program");
    let mut cmd = Command::new(program);
    cmd.args(rest).args(["sh", "-c", script, "sh"]).args(args);
    cmd.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd
}

/// One record read back: where it is and its id.
#[derive(Debug, Clone)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub id: (String, i64),
}

/// Read the topic (all partitions, from the start) until `expected` distinct ids are there or `limit`
/// passes, then one more second to catch duplicates.
pub fn read_back(bootstrap: &str, topic: &str, expected: usize, limit: Duration) -> Vec<Got> {
    let parts: Vec<(&str, i32)> = (0..PARTITIONS).map(|p| (topic, p)).collect();
    let mut cfg = ConsumerConfig::assign(bootstrap, &parts);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    let mut c = Consumer::connect(cfg).unwrap();
    let codec = Codec::new(Arc::new(OfflineCache::new(fixtures().join("schema-cache"))));
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let end = Instant::now() + limit;
    let mut extra_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now > end || extra_until.is_some_and(|t| now > t) {
            break;
        }
        let recs = match c.poll(Duration::from_millis(300)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("read-back: poll error {e}");
                continue;
            }
        };
        for r in recs {
            let value = codec
                .decode_json(r.value.as_deref().unwrap())
                .expect("every record decodes");
            let id = (
                value["sensorId"].as_str().unwrap().to_string(),
                value["timestamp"].as_i64().unwrap(),
            );
            ids.insert(id.clone());
            out.push(Got {
                partition: r.partition,
                offset: r.offset,
                key: r.key.as_deref().map(<[u8]>::to_vec),
                id,
            });
        }
        if ids.len() >= expected && extra_until.is_none() {
            extra_until = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    let _ = c.close();
    out
}

/// Counts of a read-back against the ids that were fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Distinct fed ids read back.
    pub delivered: usize,
    /// Records read back beyond the first of each id.
    pub duplicates: usize,
    /// Fed ids not read back.
    pub lost: usize,
}

/// Every expected id arrived (duplicates counted); each key on one partition, the key is the sensorId,
/// and per key the first arrivals come in feed order.
pub fn check(got: &[Got], expected: &[(String, i64)], name: &str) -> Tally {
    let t = tally(got, expected, name);
    assert_eq!(t.lost, 0, "{name}: records lost");
    check_keys_and_order(got, name);
    t
}

/// Count delivered, duplicate and lost ids (no assertion but "nothing that was never fed").
pub fn tally(got: &[Got], expected: &[(String, i64)], name: &str) -> Tally {
    let mut seen: HashMap<&(String, i64), usize> = HashMap::new();
    for g in got {
        *seen.entry(&g.id).or_default() += 1;
    }
    let want: HashSet<&(String, i64)> = expected.iter().collect();
    let unexpected: Vec<_> = seen.keys().filter(|k| !want.contains(*k)).collect();
    assert!(
        unexpected.is_empty(),
        "{name}: records never fed: {unexpected:?}"
    );
    let lost = expected.iter().filter(|id| !seen.contains_key(id)).count();
    let t = Tally {
        delivered: seen.len(),
        duplicates: got.len() - seen.len(),
        lost,
    };
    eprintln!("{name}: {t:?}");
    t
}

fn check_keys_and_order(got: &[Got], name: &str) {
    let mut sorted = got.to_vec();
    sorted.sort_by_key(|g| (g.partition, g.offset));
    let mut part_of: HashMap<&str, i32> = HashMap::new();
    let mut first_seen: HashSet<&(String, i64)> = HashSet::new();
    let mut last_ts: BTreeMap<&str, i64> = BTreeMap::new();
    for g in &sorted {
        let key = g.id.0.as_str();
        assert_eq!(
            g.key.as_deref(),
            Some(key.as_bytes()),
            "{name}: key is the sensorId"
        );
        let p = *part_of.entry(key).or_insert(g.partition);
        assert_eq!(p, g.partition, "{name}: key {key} on two partitions");
        if first_seen.insert(&g.id) {
            let prev = last_ts.insert(key, g.id.1);
            if let Some(prev) = prev {
                assert!(prev < g.id.1, "{name}: key {key}: {} after {prev}", g.id.1);
            }
        }
    }
}

/// One scenario's line in the printed fault table.
pub fn print_row(scenario: &str, fed: usize, t: &Tally, note: &str) {
    eprintln!(
        "\n| scenario | fed | delivered | lost | duplicates | notes |\n| --- | --- | --- | --- | --- | --- |\n\
         | {scenario} | {fed} | {} | {} | {} | {note} |\n",
        t.delivered, t.lost, t.duplicates
    );
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
