//! The forwarder (the real `avro-edge forward` binary) on a 3-broker Apache Kafka cluster (topics
//! with replication factor 3, `min.insync.replicas=2`, one cluster per test) while brokers fail:
//! the leader of the busiest partition SIGKILLed mid-stream, a rolling restart of all three
//! brokers, two of three brokers down (acks=all cannot be met), the leader SIGSTOPped (a hung
//! broker). Every reading carries a unique id; the topic is read back and every id counted (lost,
//! duplicates); each test prints its row of the fault table and asserts it exactly: 0 lost,
//! 0 duplicates, nothing dead-lettered. Kill → next acknowledgement is measured and printed, never
//! asserted (speed goes to benches).
//!
//! The tansu-era forwarder scenarios (broker down at start, broker and forwarder SIGKILL, torn
//! spool) run on Kafka in tests/forward/broker.rs; the producer's and the consumer group's
//! failovers in tests/cluster/failover.rs.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::eos_support::create_topic;
use crate::forward_bin_support::{
    Fwd, PARTITIONS, Tally, check, command, ids_of, print_row, read_back, readings, tail,
};
use avro_edge::partition_for_key;
use avro_edge_testkit::{KafkaCluster, KafkaOpts, free_addr, metric, unique_topic, wait_metric};

/// Sensors in the readings (their ids are the record keys).
const SENSORS: usize = 7;
/// Readings available to a steady feed (it stops earlier, once the scenario is over).
const FEED_LINES: usize = 150_000;
/// A steady feed: this many lines every [`FEED_PAUSE`] (about 2,000 a second).
const FEED_CHUNK: usize = 50;
const FEED_PAUSE: Duration = Duration::from_millis(25);
/// The producer settings of the streaming scenarios: the forwarder's delivery timeout (60 s), a
/// request timeout of 10 s (the default 30 s would only make a hung broker cost longer).
const STREAM_SETS: [&str; 2] = [
    "kafka.delivery_timeout_ms=60000",
    "kafka.request_timeout_ms=10000",
];
/// The forwarder's log filter: info, and the producer's retries (debug).
const LOG: &str = "info,avro_edge::kafka::producer=debug";
/// Generous: a 2-core machine shared with other builds runs three JVMs here.
const LONG: Duration = Duration::from_secs(180);

/// The scenarios run one at a time (each runs three JVMs and a forwarder; in parallel on a small
/// machine they would measure each other).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn cluster() -> KafkaCluster {
    let t = Instant::now();
    let opts = KafkaOpts {
        // Also how long a restarted node may take (the rolling restart, 2 of 3 down).
        ready_timeout: LONG,
        ..KafkaOpts::default()
    };
    let c = KafkaCluster::start(3, opts).expect("3-node Kafka cluster");
    eprintln!("cluster of 3 up in {:?}: {}", t.elapsed(), c.bootstrap());
    c
}

/// The partition the most readings go to (keys `s-0` … `s-6`, round robin), and its share.
fn busiest_partition() -> (i32, f64) {
    let mut per = [0usize; PARTITIONS as usize];
    for s in 0..SENSORS {
        per[partition_for_key(format!("s-{s}").as_bytes(), PARTITIONS) as usize] += 1;
    }
    let (p, n) = (per.iter().enumerate())
        .max_by_key(|(_, n)| **n)
        .expect("partitions");
    (p as i32, *n as f64 / SENSORS as f64)
}

/// The forwarder's command line for a scenario: its metrics on `metrics`, `sets` (`key=value`),
/// `RUST_LOG=log`.
fn forwarder(
    c: &KafkaCluster,
    topic: &str,
    dir: &std::path::Path,
    metrics: &str,
    sets: &[&str],
    log: &str,
) -> std::process::Command {
    let mut extra = vec!["--metrics-listen", metrics];
    for s in sets {
        extra.extend(["--set", s]);
    }
    let mut cmd = command(dir, &c.bootstrap(), topic, &extra);
    cmd.env("RUST_LOG", log);
    cmd
}

/// One fault scenario: the cluster, a topic on it, a forwarder with a metrics endpoint.
struct Scenario {
    c: KafkaCluster,
    topic: String,
    dir: PathBuf,
    metrics: String,
    fwd: Fwd,
    lines: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    feeder: Option<std::thread::JoinHandle<usize>>,
    /// Lines fed with [`feed`](Self::feed) (the steady feeder counts its own).
    fed: usize,
    _alone: MutexGuard<'static, ()>,
}

impl Scenario {
    /// Cluster, topic (replication 3), forwarder with `sets` (`key=value`) and `RUST_LOG=log`.
    fn start(tag: &str, sets: &[&str], log: &str) -> Scenario {
        let alone = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = cluster();
        let topic = unique_topic(&format!("faults-{tag}"));
        create_topic(&c.bootstrap(), &topic);
        let dir = avro_edge_testkit::tmpdir(&format!("faults-{tag}"));
        let metrics = free_addr().expect("free port");
        let cmd = forwarder(&c, &topic, &dir, &metrics, sets, log);
        let fwd = Fwd::start(cmd, dir.join("forward.log"), false);
        Scenario {
            c,
            topic,
            dir,
            metrics,
            fwd,
            lines: Arc::new(readings(FEED_LINES, SENSORS)),
            stop: Arc::default(),
            feeder: None,
            fed: 0,
            _alone: alone,
        }
    }

    /// SIGKILL the forwarder and start it again on its spool with no input (it drains and
    /// exits); returns its log's "spool opened" line.
    fn kill_and_restart_forwarder(&mut self, sets: &[&str], log: &str) -> String {
        let _ = self.fwd.child.kill();
        let _ = self.fwd.child.wait();
        let (c, dir) = (&self.c, &self.dir);
        let cmd = forwarder(c, &self.topic, dir, &self.metrics, sets, log);
        self.fwd = Fwd::start(cmd, dir.join("forward-restarted.log"), true);
        let opened = "spool opened";
        self.fwd.wait_log(opened, LONG);
        let text = self.fwd.log_text();
        text.lines()
            .find(|l| l.contains(opened))
            .unwrap_or_default()
            .to_string()
    }

    /// Feed the readings up to line `to` at once.
    fn feed(&mut self, to: usize) {
        self.fwd.feed(&self.lines[self.fed..to]);
        self.fed = to;
    }

    /// Feed the readings steadily (about 2,000 a second) until [`finish`](Self::finish).
    fn feed_steadily(&mut self) {
        let (lines, stop) = (self.lines.clone(), self.stop.clone());
        self.feeder = Some(self.fwd.feed_until(lines, FEED_CHUNK, FEED_PAUSE, stop));
    }

    /// A forwarder counter (`avro_edge_<name>`), 0 while the endpoint does not answer.
    fn metric(&self, name: &str) -> u64 {
        metric(&self.metrics, name).unwrap_or(0)
    }

    fn wait_metric(&self, name: &str, cond: impl Fn(u64) -> bool) -> u64 {
        wait_metric(&self.metrics, name, cond, LONG, Some(&self.fwd.log))
    }

    /// After a fault at `at`, with `spooled` records accepted by then: how long until the
    /// forwarder acknowledged past them (it acknowledges in order, so every record accepted before
    /// the fault, those for the failed broker's partitions included, is then acknowledged).
    fn ack_clock(&self, at: Instant, spooled: u64) -> Duration {
        loop {
            let now = self.metric("acked_total");
            if now > spooled {
                return at.elapsed();
            }
            assert!(
                at.elapsed() < LONG,
                "acked_total stuck at {now} ({spooled} spooled at the fault); log:\n{}",
                tail(&self.fwd.log_text(), 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Let `more` records be acknowledged beyond now (the stream goes on after the fault).
    fn wait_progress(&self, more: u64) {
        let target = self.metric("acked_total") + more;
        self.wait_metric("acked_total", |v| v >= target);
    }

    /// Stop the feed (stdin closes), let the forwarder drain and exit, read the topic back and
    /// count every fed id; nothing dead-lettered, nothing lost, one partition per key.
    fn finish(self, name: &str) -> Outcome {
        let Scenario {
            c,
            topic,
            dir,
            mut fwd,
            lines,
            stop,
            feeder,
            fed,
            ..
        } = self;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let fed = feeder.map_or(fed, |f| f.join().expect("feeder"));
        fwd.close_stdin();
        let log = fwd.wait_ok(LONG);
        // Nothing dead-lettered: no bad input line, no record the broker refused for good.
        let none = log.contains(" dead_lettered=0") && log.contains(" forward_dead_lettered=0");
        assert!(none, "{name}: dead letters:\n{}", tail(&log, 20));
        let warnings: Vec<&str> = (log.lines())
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        eprintln!(
            "{name}: {} warnings in {}, the first:\n{}",
            warnings.len(),
            dir.display(),
            warnings[..warnings.len().min(10)].join("\n")
        );
        let got = read_back(&c.bootstrap(), &topic, fed, LONG);
        let t = check(&got, &ids_of(&lines[..fed]), name);
        Outcome { t, fed, log, dir }
    }
}

/// What a scenario ended with; its directory (spool, forwarder log) is kept when a later
/// assertion fails.
struct Outcome {
    t: Tally,
    fed: usize,
    log: String,
    dir: PathBuf,
}

impl Outcome {
    /// The forwarder's last summary line (`acked=… retried=…`).
    fn summary(&self) -> &str {
        (self.log.lines())
            .rev()
            .find(|l| l.contains("acked="))
            .and_then(|l| l.find("received=").map(|at| &l[at..]))
            .unwrap_or("")
    }

    /// Print the row; then the duplicates must be 0 (expects idempotence and per-record
    /// acknowledgements where a retry stored a batch twice); the directory goes on success.
    fn report(self, scenario: &str, note: &str) {
        // The producer's debug line for a batch sent again after its answer was lost (it may
        // have been stored: without idempotence, a possible duplicate).
        let resent = (self.log.lines())
            .filter(|l| l.contains("retrying batch") && l.contains("sent=true"))
            .count();
        let note = format!(
            "{note}; producer retries of a sent batch: {resent}; {}",
            self.summary()
        );
        print_row(scenario, self.fed, &self.t, &note);
        assert_eq!(
            self.t.duplicates,
            0,
            "{scenario}: duplicates (log in {})",
            self.dir.display()
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILL the leader of the busiest partition while the forwarder streams: 0 lost, 0 duplicates;
/// kill → acknowledged again measured.
#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn forward_survives_the_busiest_leader_being_killed() {
    let sets = STREAM_SETS;
    let mut s = Scenario::start("kill", &sets, LOG);
    let (busiest, share) = busiest_partition();
    let leader = (s.c.leader(&s.topic, busiest).unwrap()).expect("leader");
    s.feed_steadily();
    s.wait_metric("acked_total", |v| v >= 4000);
    let spooled = s.metric("spooled_total");
    s.c.kill(s.c.index_of(leader).unwrap()).unwrap();
    let took = s.ack_clock(Instant::now(), spooled);
    let new_leader =
        s.c.wait_new_leader(&s.topic, busiest, leader, LONG)
            .unwrap();
    s.wait_progress(2000);
    eprintln!(
        "killed node {leader} (leader of partition {busiest}, {:.0} % of the records) with \
         {spooled} spooled; acknowledged past them {took:?} later; new leader {new_leader}",
        share * 100.0
    );
    let out = s.finish("forward, busiest leader SIGKILLed");
    let note = format!(
        "kill -> acknowledged past every record accepted before it: {:.1} s",
        took.as_secs_f64()
    );
    out.report("forward, leader of the busiest partition SIGKILLed", &note);
}

/// A rolling restart (controlled shutdown, start, wait until every replica is back in sync) of
/// all three brokers while the forwarder streams: 0 lost, 0 duplicates.
#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn forward_survives_a_rolling_restart() {
    let sets = STREAM_SETS;
    let mut s = Scenario::start("rolling", &sets, LOG);
    s.feed_steadily();
    s.wait_metric("acked_total", |v| v >= 2000);
    let started = Instant::now();
    for i in 0..s.c.node_count() {
        let t = Instant::now();
        s.c.stop(i).unwrap();
        s.c.start_node(i).unwrap();
        s.c.wait_in_sync(&s.topic, PARTITIONS, 3, LONG).unwrap();
        s.wait_progress(1000);
        eprintln!(
            "node {} restarted and in sync in {:?}; acked {}",
            s.c.node_id(i),
            t.elapsed(),
            s.metric("acked_total")
        );
    }
    let took = started.elapsed();
    let out = s.finish("forward, rolling restart");
    let note = format!(
        "3 brokers restarted one by one in {:.0} s",
        took.as_secs_f64()
    );
    out.report("forward, rolling restart of all 3 brokers", &note);
}

/// Two of three brokers down (the partitions' in-sync set is one broker, below
/// `min.insync.replicas=2`, so acks=all cannot be met): the records wait in the spool, none is
/// dead-lettered, and all are delivered once the brokers return.
#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn forward_waits_while_acks_all_cannot_be_met() {
    let sets = [
        "kafka.delivery_timeout_ms=10000",
        "kafka.request_timeout_ms=5000",
    ];
    let mut s = Scenario::start("two-down", &sets, LOG);
    let (first, second) = (2000, 5000);
    s.feed(first);
    s.wait_metric("acked_total", |v| v == first as u64);
    s.c.stop(1).unwrap();
    s.c.stop(2).unwrap();
    let down = Instant::now();
    s.feed(second);
    s.wait_metric("spooled_total", |v| v == second as u64);
    // The sender tried, failed (delivery timeout) and keeps the records for a later retry.
    s.wait_metric("retried_total", |v| v > 0);
    let waiting = s.metric("spool_records");
    let acked_down = s.metric("acked_total");
    let dead = s.metric("dead_lettered_total");
    eprintln!(
        "two brokers down for {:?}: acked {acked_down}, {waiting} records waiting in the spool, \
         {dead} dead-lettered; log:\n{}",
        down.elapsed(),
        tail(&s.fwd.log_text(), 8)
    );
    assert_eq!(
        acked_down, first as u64,
        "acknowledged without 2 in-sync replicas"
    );
    assert_eq!(
        waiting,
        (second - first) as u64,
        "records wait in the spool"
    );
    assert_eq!(dead, 0, "nothing dead-lettered");
    let back = Instant::now();
    s.c.start_node(1).unwrap();
    s.c.start_node(2).unwrap();
    s.wait_metric("acked_total", |v| v >= second as u64);
    let recovered = back.elapsed();
    let out = s.finish("forward, 2 of 3 brokers down");
    assert_eq!(out.t.delivered, second, "{}", out.summary());
    let note = format!(
        "{} records waited in the spool, 0 dead-lettered; all acked {:.1} s after the brokers \
         were started again",
        second - first,
        recovered.as_secs_f64()
    );
    out.report("forward, 2 of 3 brokers down (acks=all unmet)", &note);
}

/// SIGSTOP the leader of the busiest partition (a hung broker: its sockets stay open, nothing
/// answers): the produce request times out, the producer re-routes to the new leader; 0 lost.
#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn forward_survives_a_hung_leader() {
    let sets = STREAM_SETS;
    let mut s = Scenario::start("stop", &sets, LOG);
    let (busiest, _) = busiest_partition();
    let leader = (s.c.leader(&s.topic, busiest).unwrap()).expect("leader");
    let index = s.c.index_of(leader).unwrap();
    s.feed_steadily();
    s.wait_metric("acked_total", |v| v >= 4000);
    let spooled = s.metric("spooled_total");
    s.c.pause(index).unwrap();
    let took = s.ack_clock(Instant::now(), spooled);
    let new_leader =
        s.c.wait_new_leader(&s.topic, busiest, leader, LONG)
            .unwrap();
    s.wait_progress(2000);
    s.c.resume(index).unwrap();
    eprintln!(
        "SIGSTOPped node {leader} (leader of partition {busiest}) with {spooled} spooled; \
         acknowledged past them {took:?} later; new leader {new_leader}"
    );
    let out = s.finish("forward, busiest leader SIGSTOPped");
    let timeouts = (out.log.lines())
        .filter(|l| l.contains("timed out"))
        .count();
    let note = format!(
        "{timeouts} request-timeout log lines; stop -> acknowledged past every record accepted \
         before it: {:.1} s",
        took.as_secs_f64()
    );
    assert!(timeouts > 0, "no request timed out on the hung leader");
    out.report(
        "forward, leader of the busiest partition SIGSTOPped (hung)",
        &note,
    );
}

/// SIGKILL the forwarder while it streams to the cluster (the brokers stay up) and start it again
/// on its spool: nothing lost; what it had sent but not yet seen acknowledged is sent again: at
/// most one send window (the sender's `batch_records`, 500), and no more duplicates than that.
#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn forward_killed_mid_stream_resends_at_most_one_window() {
    const N: usize = 50_000;
    let sets = STREAM_SETS;
    let mut s = Scenario::start("fwd-kill", &sets, LOG);
    s.feed(N);
    // Every line accepted (spooled) before the kill: a line read but not yet spooled is not
    // the forwarder's to deliver.
    s.wait_metric("spooled_total", |v| v == N as u64);
    let (acked, spooled) = (s.metric("acked_total"), s.metric("spooled_total"));
    let opened = s.kill_and_restart_forwarder(&sets, LOG);
    let resent: u64 = (opened.split_whitespace())
        .find_map(|f| f.strip_prefix("possible_duplicates="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no possible_duplicates in {opened:?}"));
    eprintln!(
        "forwarder SIGKILLed at acked {acked}, spooled {spooled} of {N}; restarted: {resent} \
         records to resend"
    );
    let out = s.finish("forward, forwarder SIGKILLed");
    assert_eq!(out.t.delivered, N, "{}", out.summary());
    let note = format!(
        "killed at {acked} acknowledged, {spooled} spooled; {resent} records sent before the kill, \
         unacknowledged, resent"
    );
    let (dups, dir) = (out.t.duplicates, out.dir.clone());
    print_row(
        "forward, forwarder SIGKILLed, restarted on its spool",
        N,
        &out.t,
        &note,
    );
    // At most, not below: the whole window in flight can be stored by Kafka just before the kill
    // (one run: 500 of 500), and a new process is a new producer, idempotent or not.
    assert!(resent <= 500, "{resent} resent: more than one send window");
    assert!(dups as u64 <= resent, "{dups} duplicates, {resent} resent");
    let _ = std::fs::remove_dir_all(dir);
}
