//! The exactly-once forwarder's scenarios on a 3-broker Apache Kafka cluster (tests/cluster/
//! exactly_once.rs): one spool directory across forwarder runs, each run fed the readings its
//! predecessors did not accept, a steady stream on stdin, SIGKILLs; what each run accepted is
//! read off the spool (its next sequence number, after the run, minus the one before it), so
//! "every accepted reading once" is exact. The topic is read back by three independent readers
//! (our consumer library, Java's consumer with `isolation.level=read_committed`, and
//! `avro-edge consume`), each counting every id. Also: the transaction coordinator of an id, and a
//! simulated power cut (the spool cut back to its last fsync, as the forwarder logged it).
//!
//! Must not assert what a scenario expects (the tests do): it runs, counts and reports.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::forward_bin_support::{BIN, Fwd, PARTITIONS, command, fixtures, ids_of, readings};
use avro_edge::{Codec, OfflineCache, Producer, ProducerConfig, Spool, TopicSpec};
use avro_edge_testkit::{KafkaCluster, KafkaOpts, free_addr, require_java_peer, unique_topic};

/// Generous: a 2-core machine shared with other builds runs three JVMs here.
pub const LONG: Duration = Duration::from_secs(240);
/// A steady feed: this many lines every [`Scenario::feed_pause`] (25 ms: 2,000 a second).
const FEED_CHUNK: usize = 50;
/// Sensors in the readings (their ids are the record keys).
pub const SENSORS: usize = 7;

/// A 3-node cluster (replication 3, `min.insync.replicas=2`) with a small transaction log.
pub fn cluster() -> KafkaCluster {
    let opts = KafkaOpts {
        ready_timeout: LONG,
        extra_props: vec![("transaction.state.log.num.partitions".into(), "3".into())],
        ..KafkaOpts::default()
    };
    let c = KafkaCluster::start(3, opts).expect("3-node Kafka cluster");
    eprintln!("cluster of 3 up: {}", c.bootstrap());
    c
}

/// Create `topic` with [`PARTITIONS`] partitions and replication factor 3. (The forwarder creates
/// missing topics with the broker's default replication, which the scenarios do not rely on.)
pub fn create_topic(bootstrap: &str, topic: &str) {
    let mut cfg = ProducerConfig::new(bootstrap.split(','));
    cfg.auto_create = Some(TopicSpec {
        partitions: PARTITIONS,
        replication: 3,
    });
    let p = Producer::connect(cfg).expect("producer");
    assert_eq!(p.partitions(topic).expect("topic created"), PARTITIONS);
    p.close().expect("producer close");
}

/// What one forwarder run's log said when it started on the spool.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// Records its spool counted as possibly sent before (the plain forwarder resends them).
    pub possible_duplicates: u64,
    /// Exactly-once: records at or below the committed position, released without sending.
    pub skipped: Option<u64>,
}

/// The running forwarder and its feeder.
struct Running {
    fwd: Fwd,
    start_seq: u64,
    stop: Arc<AtomicBool>,
    feeder: Option<std::thread::JoinHandle<usize>>,
}

/// A scenario: a topic on a cluster, one spool across forwarder runs.
pub struct Scenario {
    pub bootstrap: String,
    pub topic: String,
    pub dir: PathBuf,
    pub metrics: String,
    pub sets: Vec<String>,
    pub log: String,
    pub lines: Arc<Vec<String>>,
    /// Readings accepted (spooled) by the runs so far: a prefix of `lines`.
    pub accepted: usize,
    /// The pause between two chunks of the steady feed.
    pub feed_pause: Duration,
    pub starts: Vec<Start>,
    running: Option<Running>,
}

impl Scenario {
    /// A topic on `c`, `n` readings, the forwarder's `sets` (`key=value`) and `RUST_LOG=log`.
    pub fn new(c: &KafkaCluster, tag: &str, n: usize, sets: &[&str], log: &str) -> Scenario {
        let topic = unique_topic(&format!("eos-{tag}"));
        create_topic(&c.bootstrap(), &topic);
        Scenario {
            bootstrap: c.bootstrap(),
            topic,
            dir: avro_edge_testkit::tmpdir(&format!("eos-{tag}")),
            metrics: free_addr().expect("free port"),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            log: log.to_string(),
            lines: Arc::new(readings(n, SENSORS)),
            accepted: 0,
            feed_pause: Duration::from_millis(25),
            starts: Vec::new(),
            running: None,
        }
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// The spool's next sequence number (0 before it exists); the forwarder must be stopped.
    pub fn next_seq(&self) -> u64 {
        match Spool::inspect(&self.spool_dir()) {
            Ok((st, _)) => st.next_seq,
            Err(_) => 0,
        }
    }

    fn command(&self, sets: &[String]) -> Command {
        let mut extra = vec!["--metrics-listen".to_string(), self.metrics.clone()];
        for s in self.sets.iter().chain(sets) {
            extra.extend(["--set".to_string(), s.clone()]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut cmd = command(&self.dir, &self.bootstrap, &self.topic, &extra);
        cmd.env("RUST_LOG", &self.log);
        cmd
    }

    /// Start a forwarder on the spool, fed the readings not accepted yet, steadily; until
    /// [`kill`](Self::kill). Waits until its start is logged.
    pub fn run(&mut self) {
        let start_seq = self.next_seq();
        let log = self.dir.join(format!("forward-{}.log", self.starts.len()));
        let mut fwd = Fwd::start(self.command(&[]), log, false);
        let rest = Arc::new(self.lines[self.accepted..].to_vec());
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = fwd.feed_until(rest, FEED_CHUNK, self.feed_pause, stop.clone());
        fwd.wait_log("spool opened", LONG);
        self.running = Some(Running {
            fwd,
            start_seq,
            stop,
            feeder: Some(feeder),
        });
    }

    /// SIGKILL the forwarder; count what it accepted, from its spool. Returns its log.
    pub fn kill(&mut self) -> String {
        let Some(mut r) = self.running.take() else {
            return String::new();
        };
        r.stop.store(true, Ordering::SeqCst);
        r.fwd.child.kill().unwrap();
        r.fwd.child.wait().unwrap();
        let log = r.fwd.log_text();
        if let Some(f) = r.feeder.take() {
            let _ = f.join();
        }
        self.account(r.start_seq, &log);
        log
    }

    /// Stop feeding the running forwarder and close its stdin: it drains and exits 0.
    pub fn end_run(&mut self) -> String {
        let Some(mut r) = self.running.take() else {
            return String::new();
        };
        r.stop.store(true, Ordering::SeqCst);
        if let Some(f) = r.feeder.take() {
            let _ = f.join();
        }
        let log = r.fwd.wait_ok(LONG);
        self.account(r.start_seq, &log);
        log
    }

    /// Wait (up to `limit`) for the running forwarder to exit by itself; its status and log.
    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let mut r = self.running.take().expect("a running forwarder");
        let end = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(st) = r.fwd.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                std::time::Instant::now() < end,
                "the forwarder did not stop:\n{}",
                crate::forward_bin_support::tail(&r.fwd.log_text(), 20)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        r.stop.store(true, Ordering::SeqCst);
        if let Some(f) = r.feeder.take() {
            let _ = f.join();
        }
        let log = r.fwd.log_text();
        self.account(r.start_seq, &log);
        (status, log)
    }

    fn account(&mut self, start_seq: u64, log: &str) {
        let took = self.next_seq().saturating_sub(start_seq) as usize;
        self.accepted += took;
        self.starts.push(start_of(log));
        eprintln!(
            "run {}: accepted {took} readings ({} in all); {:?}",
            self.starts.len(),
            self.accepted,
            self.starts.last()
        );
    }

    /// The last run: the readings not accepted yet, stdin closed; it drains and exits 0.
    pub fn finish(&mut self) -> String {
        assert!(self.running.is_none(), "stop the running forwarder first");
        let start_seq = self.next_seq();
        let log = self.dir.join(format!("forward-{}.log", self.starts.len()));
        let mut fwd = Fwd::start(self.command(&[]), log, false);
        fwd.feed(&self.lines[self.accepted..]);
        fwd.close_stdin();
        let text = fwd.wait_ok(LONG);
        self.account(start_seq, &text);
        assert_eq!(
            self.accepted,
            self.lines.len(),
            "the last run accepted the rest"
        );
        text
    }

    /// The ids of the accepted readings.
    pub fn accepted_ids(&self) -> Vec<(String, i64)> {
        ids_of(&self.lines[..self.accepted])
    }

    /// Wait until the running forwarder's counter `name` reaches `at_least`.
    pub fn wait_metric(&self, name: &str, at_least: u64) -> u64 {
        let log = self.running.as_ref().map(|r| r.fwd.log.clone());
        avro_edge_testkit::wait_metric(&self.metrics, name, |v| v >= at_least, LONG, log.as_deref())
    }

    /// The running forwarder's counter `name` now (0 while its endpoint does not answer).
    pub fn metric(&self, name: &str) -> u64 {
        avro_edge_testkit::metric(&self.metrics, name).unwrap_or(0)
    }

    /// The gateway (spool) id.
    pub fn gateway(&self) -> String {
        std::fs::read_to_string(self.spool_dir().join("id"))
            .expect("spool id")
            .trim()
            .to_string()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if let Some(r) = self.running.as_mut() {
            r.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// The counts a "spool opened" and an exactly-once start line carry.
fn start_of(log: &str) -> Start {
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|n| n.parse().ok())
    };
    let mut s = Start::default();
    for line in log.lines() {
        if line.contains("spool opened") {
            s.possible_duplicates = field(line, "possible_duplicates=").unwrap_or(0);
        }
        if line.contains("records at or below the committed position released") {
            s.skipped = field(line, "skipped=");
        }
    }
    s
}

fn codec() -> Codec {
    Codec::new(Arc::new(OfflineCache::new(fixtures().join("schema-cache"))))
}

/// (sensorId, timestamp) of a Confluent-framed SensorData value.
fn id_of_value(codec: &Codec, value: &[u8]) -> (String, i64) {
    let v = codec.decode_json(value).expect("every record decodes");
    (
        v["sensorId"].as_str().unwrap().to_string(),
        v["timestamp"].as_i64().unwrap(),
    )
}

/// Every id Java's consumer (`isolation.level=read_committed`) reads from `topic` until `n`
/// records arrived (`n` = 0: until `timeout` passes).
pub fn java_read_committed(
    bootstrap: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<(String, i64)> {
    let peer = require_java_peer();
    let group = unique_topic("eos-java");
    let args = [
        "consume",
        bootstrap,
        topic,
        &group,
        &n.to_string(),
        &timeout.as_millis().to_string(),
        "read_committed",
    ];
    let out = peer.command(args).output().unwrap();
    assert!(
        out.status.success(),
        "Java consumer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codec = codec();
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| id_of_value(&codec, &unhex(l.split(' ').nth(3).unwrap())))
        .collect()
}

/// Every id `avro-edge consume` (read_committed, its default) prints for `topic`, reading until
/// `n` arrived or nothing came for 10 s; `dedupe`: with `--dedupe`.
pub fn cli_consume(bootstrap: &str, topic: &str, n: usize, dedupe: bool) -> Vec<(String, i64)> {
    let mut cmd = Command::new(BIN);
    cmd.args(["consume", "--brokers", bootstrap, "--topic", topic])
        .args(["--group", &unique_topic("eos-cli"), "--from-beginning"])
        .args(["--max", &n.to_string(), "--timeout", "10"])
        .arg("--schema-cache")
        .arg(fixtures().join("schema-cache"))
        .env("NO_COLOR", "1");
    if dedupe {
        cmd.arg("--dedupe");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "consume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["sensorId"].as_str().unwrap().to_string(),
                v["timestamp"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Read ids against the accepted ones: (duplicates, lost, never fed).
pub fn count(got: &[(String, i64)], accepted: &[(String, i64)]) -> (usize, usize, usize) {
    let mut seen: HashMap<&(String, i64), usize> = HashMap::new();
    for g in got {
        *seen.entry(g).or_default() += 1;
    }
    let want: std::collections::HashSet<&(String, i64)> = accepted.iter().collect();
    let dups = seen.values().map(|n| n - 1).sum();
    let lost = accepted.iter().filter(|id| !seen.contains_key(id)).count();
    let unknown = seen.keys().filter(|k| !want.contains(*k)).count();
    (dups, lost, unknown)
}

/// The node coordinating transactional id `id` (FindCoordinator, key type TRANSACTION).
pub fn transaction_coordinator(bootstrap: &str, id: &str) -> i32 {
    use avro_edge::__test::{self as kafka, Client, ClientConfig, Target};
    use kafka_protocol::messages::FindCoordinatorRequest;
    use kafka_protocol::protocol::StrBytes;
    let client = Client::new(ClientConfig {
        bootstrap: bootstrap.split(',').map(str::to_string).collect(),
        ..ClientConfig::default()
    })
    .unwrap();
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_string(id.to_string())]);
    let resp = kafka::block_on(client.request(&Target::Any, &req)).unwrap();
    let c = resp.coordinators.first().expect("a coordinator");
    assert_eq!(c.error_code, 0, "FindCoordinator {id}");
    client.close();
    c.node_id.0
}

/// What a simulated power cut did.
#[derive(Debug)]
pub struct Cut {
    /// Bytes cut off segment tails.
    pub bytes: u64,
    /// The readings in them: lost to the cut.
    pub readings: Vec<(String, i64)>,
    /// The cursor it set back to (acked, sent), as last synced.
    pub cursor: Option<(u64, u64)>,
}

/// A power cut after a SIGKILL: every spool segment cut back to the size it had at its last
/// fsync and the cursor file set back to its last synced value, both as the forwarder logged
/// them (`spool data synced`, `spool cursor synced`, debug level). A segment this run never
/// synced was synced before it started (it holds what an earlier run left). What the log does
/// not show (a sync whose line was not written yet) is cut too: harsher than a real power cut.
pub fn cut_to_last_sync(spool: &Path, log: &str) -> Cut {
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|n| n.parse().ok())
    };
    let mut synced: BTreeMap<u64, u64> = BTreeMap::new();
    let mut cursor = None;
    for line in log.lines() {
        if line.contains("spool data synced")
            && let (Some(seg), Some(bytes)) = (field(line, "segment="), field(line, "bytes="))
        {
            synced.insert(seg, bytes);
        }
        if line.contains("spool cursor synced")
            && let (Some(acked), Some(sent)) = (field(line, "acked="), field(line, "sent="))
        {
            cursor = Some((acked, sent));
        }
    }
    let codec = codec();
    let mut cut = Cut {
        bytes: 0,
        readings: Vec::new(),
        cursor,
    };
    for (seg, bytes) in &synced {
        let path = spool.join(format!("{seg:020}.seg"));
        let Ok(buf) = std::fs::read(&path) else {
            continue; // deleted since (acknowledged)
        };
        if buf.len() as u64 <= *bytes {
            continue;
        }
        let mut at = *bytes as usize;
        while let Some((f, end)) = avro_edge::__test::frame::parse_at(&buf, at, None) {
            cut.readings.push(id_of_value(&codec, f.value));
            at = end;
        }
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(*bytes).unwrap();
        cut.bytes += buf.len() as u64 - bytes;
    }
    if let Some((acked, sent)) = cursor {
        use avro_edge::__test::cursor::{self, Cursor, CursorFile};
        std::fs::remove_file(spool.join(cursor::FILE)).unwrap();
        CursorFile::open(spool, Cursor { acked, sent }).unwrap();
    }
    cut
}

/// The readings a spool holds (acknowledged or not, in a copy, so the original is untouched).
pub fn spool_ids(spool: &Path) -> Vec<(String, i64)> {
    let copy = spool.with_extension("copy");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(spool).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".seg") || name == "id" {
            std::fs::copy(e.path(), copy.join(&*name)).unwrap();
        }
    }
    // Without the cursor file, every record the segments hold is handed out.
    let (s, _) = Spool::open(&copy, avro_edge::SpoolOptions::default()).unwrap();
    let codec = codec();
    let mut ids = Vec::new();
    loop {
        let b = s.read_batch(10_000, 64 << 20, Duration::ZERO).unwrap();
        if b.is_empty() {
            break;
        }
        ids.extend(b.iter().map(|r| id_of_value(&codec, &r.value)));
    }
    s.close().unwrap();
    let _ = std::fs::remove_dir_all(&copy);
    ids
}
