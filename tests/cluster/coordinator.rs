//! The consumer group while its coordinator fails, on a 3-node Apache Kafka cluster (issue 15):
//! two `avro-edge consume` members of one group (the command's default session timeout, 10 s, and
//! heartbeat interval, 3 s), a producer writing steadily, and the coordinator's broker either
//! SIGKILLed and started again 18 s later, or SIGSTOPped for longer than the session timeout and
//! then SIGCONTed (a hung coordinator). Counted from the members' own logs and output: the joins
//! of each member after the fault and their generations, how long after the new coordinator was
//! named the last join came, and every record id (read, missing, repeated). Asserted: at most two
//! rejoins per member, the last within one session timeout of the new coordinator, no id missing.
//!
//! Must not time the members' reading (the machine is shared): it counts events; the one bound it
//! asserts is the issue's own (stable within a session timeout of the new coordinator).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use avro_edge::{OutRecord, Producer};
use avro_edge_testkit::{KafkaCluster, KafkaOpts, cluster_producer_config, unique_topic};

use crate::consumer_support::{id_schema_cache, id_value, printed_ids};
use crate::group_support::coordinator_index;

/// The members' session timeout (`avro-edge consume`'s default, as in the runs).
const SESSION: Duration = Duration::from_secs(10);
/// Partitions of the test topic (replication factor 3).
const PARTITIONS: i32 = 6;
/// The feed: this many records, then a pause of [`FEED_PAUSE`] (about 1,000 a second).
const FEED_CHUNK: u64 = 25;
const FEED_PAUSE: Duration = Duration::from_millis(25);
/// How long the feed goes on after the fault (the issue watched the group for 40 s after the
/// broker came back).
const FEED_AFTER_FAULT: Duration = Duration::from_secs(60);
/// The members' log filter: info, and the heartbeat thread's failures (debug).
const MEMBER_LOG: &str = "info,avro_edge::kafka::consumer::heartbeat=debug";
/// Generous: a 2-core machine shared with other builds runs three JVMs here.
const LONG: Duration = Duration::from_secs(180);

/// The fault done to the coordinator's broker.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL, then start it again after this long.
    Kill { back_after: Duration },
    /// SIGSTOP for this long, then SIGCONT.
    Pause { for_: Duration },
}

/// One `avro-edge consume` member: the ids it printed and its log lines, each with when it came.
struct Member {
    child: Child,
    ids: Arc<Mutex<Vec<i64>>>,
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    readers: Vec<JoinHandle<()>>,
}

fn spawn_member(bootstrap: &str, topic: &str, group: &str, cache: &std::path::Path) -> Member {
    let mut child = Command::new(env!("CARGO_BIN_EXE_avro-edge"))
        .args(["consume", "--brokers", bootstrap, "--topic", topic])
        .args(["--group", group, "--from-beginning", "--timeout", "600"])
        .arg("--schema-cache")
        .arg(cache)
        .env("AVRO_EDGE_LOG", MEMBER_LOG)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("avro-edge consume");
    let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let (ids, out) = printed_ids(child.stdout.take().expect("stdout"));
    let stderr = child.stderr.take().expect("stderr");
    let err = {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push((Instant::now(), line));
            }
        })
    };
    Member {
        child,
        ids,
        log,
        readers: vec![out, err],
    }
}

impl Member {
    /// Its "joined group" lines: (when, generation, assignment).
    fn joins(&self) -> Vec<(Instant, i32, String)> {
        (self.log.lock().unwrap().iter())
            .filter(|(_, l)| l.contains("joined group"))
            .map(|(at, l)| {
                let generation = field(l, "generation").parse().unwrap_or(-1);
                (*at, generation, field(l, "assignment").to_string())
            })
            .collect()
    }

    /// How many of its log lines contain `text`, from `since` on.
    fn lines_with(&self, text: &str, since: Instant) -> usize {
        (self.log.lock().unwrap().iter())
            .filter(|(at, l)| *at >= since && l.contains(text))
            .count()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// The value of `name=value` in a log line (tracing's fmt layout), or "".
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=");
    line.find(&key)
        .map(|i| &line[i + key.len()..])
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("")
}

/// A producer writing ids 0, 1, 2... in chunks until stopped; `sent` counts acknowledged ids.
struct Feed {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handle: JoinHandle<Producer>,
}

fn steady_feed(bootstrap: &str, topic: &str) -> Feed {
    let p = Producer::connect(cluster_producer_config(bootstrap, PARTITIONS, 3)).expect("producer");
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let topic = topic.to_string();
    let handle = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut next = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let chunk: Vec<OutRecord> = (next..next + FEED_CHUNK)
                    .map(|i| OutRecord {
                        key: Some(format!("k{i}").into_bytes()),
                        value: id_value(i as i64),
                        headers: Vec::new(),
                    })
                    .collect();
                for (i, d) in (next..).zip(p.send_batch(&topic, &chunk)) {
                    d.unwrap_or_else(|e| panic!("record {i}: {e}"));
                }
                next += FEED_CHUNK;
                sent.store(next, Ordering::SeqCst);
                std::thread::sleep(FEED_PAUSE);
            }
            p
        })
    };
    Feed { stop, sent, handle }
}

impl Feed {
    /// Stop and return how many ids were acknowledged.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .join()
            .expect("feed")
            .close()
            .expect("producer close");
        self.sent.load(Ordering::SeqCst)
    }
}

/// Wait until `cond` holds, or fail with `what` after `within`.
fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Do `fault` to the coordinator's broker (node index `coord`); return when the cluster named a
/// new coordinator (the leader of `__consumer_offsets` on another node), or the broker's return
/// if it stayed the coordinator. Returns once the broker is back.
fn inflict(c: &mut KafkaCluster, coord: usize, fault: Fault) -> Instant {
    let old = c.node_id(coord);
    let at = Instant::now();
    let back_after = match fault {
        Fault::Kill { back_after } => {
            c.kill(coord).unwrap();
            back_after
        }
        Fault::Pause { for_ } => {
            c.pause(coord).unwrap();
            for_
        }
    };
    eprintln!("{fault:?} on node {old}, the group's coordinator");
    let named = c
        .wait_new_leader("__consumer_offsets", 0, old, back_after)
        .ok()
        .map(|l| (l, Instant::now()));
    std::thread::sleep(back_after.saturating_sub(at.elapsed()));
    match fault {
        Fault::Kill { .. } => c.start_node(coord).unwrap(),
        Fault::Pause { .. } => c.resume(coord).unwrap(),
    }
    eprintln!("node {old} back {:?} after the fault", at.elapsed());
    match named {
        Some((l, when)) => {
            eprintln!(
                "new coordinator node {l} named {:?} after the fault",
                when - at
            );
            when
        }
        None => {
            eprintln!("no other coordinator named while node {old} was out");
            Instant::now()
        }
    }
}

/// One run: the feed, two members, `fault` to the coordinator; the counts, printed as a row and
/// asserted (see the module doc).
fn coordinator_fault(fault: Fault) {
    avro_edge_testkit::init_logs();
    let mut c = KafkaCluster::start(
        3,
        KafkaOpts {
            ready_timeout: LONG,
            // Kafka's default (the test kit's is 6 s): the new coordinator is named ~10 s after
            // the fault, after the members' sessions ran out (10 s from a heartbeat up to 3 s
            // before the fault), which is when the runs churned.
            broker_session_timeout: Duration::from_secs(9),
            ..KafkaOpts::default()
        },
    )
    .expect("3-node Kafka cluster");
    let bootstrap = c.bootstrap();
    let (topic, group) = (unique_topic("coord"), unique_topic("g-coord"));
    let cache = id_schema_cache("coordinator");
    let feed = steady_feed(&bootstrap, &topic);
    wait_for("first records acknowledged", LONG, || {
        feed.sent.load(Ordering::SeqCst) > 0
    });
    let members: Vec<Member> = (0..2)
        .map(|_| spawn_member(&bootstrap, &topic, &group, &cache))
        .collect();
    wait_for("both members reading in one generation", LONG, || {
        let gens: BTreeSet<i32> = (members.iter())
            .filter_map(|m| m.joins().last().map(|j| j.1))
            .collect();
        let reading = (members.iter()).all(|m| !m.ids.lock().unwrap().is_empty());
        reading && gens.len() == 1 && members.iter().all(|m| !m.joins().is_empty())
    });
    std::thread::sleep(Duration::from_secs(3));
    let before: Vec<i32> = (members.iter())
        .map(|m| m.joins().last().map_or(-1, |j| j.1))
        .collect();
    let coord = coordinator_index(&c, &group);
    let fault_at = Instant::now();
    let named = inflict(&mut c, coord, fault);
    std::thread::sleep(FEED_AFTER_FAULT.saturating_sub(fault_at.elapsed()));
    let n = feed.stop();
    let read = |m: &Member| {
        m.ids
            .lock()
            .unwrap()
            .iter()
            .copied()
            .collect::<BTreeSet<i64>>()
    };
    wait_for("every id read", LONG, || {
        let all: BTreeSet<i64> = members.iter().flat_map(read).collect();
        (0..n as i64).all(|i| all.contains(&i))
    });
    // Watch a little longer: a group that churns shows it here.
    std::thread::sleep(SESSION);
    report(fault, &members, &before, fault_at, named, n);
    for m in members {
        m.stop();
    }
}

/// Print the run's row and assert it (see the module doc).
fn report(
    fault: Fault,
    members: &[Member],
    before: &[i32],
    fault_at: Instant,
    named: Instant,
    n: u64,
) {
    let mut count: BTreeMap<i64, usize> = BTreeMap::new();
    for m in members {
        for id in m.ids.lock().unwrap().iter() {
            *count.entry(*id).or_default() += 1;
        }
    }
    let missing: Vec<i64> = (0..n as i64).filter(|i| !count.contains_key(i)).collect();
    let repeated: usize = count.values().map(|c| c - 1).sum();
    let read: usize = count.values().sum();
    let mut last_join = None;
    let mut rows = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let after: Vec<(Instant, i32, String)> =
            m.joins().into_iter().filter(|j| j.0 > fault_at).collect();
        last_join = last_join.max(after.last().map(|j| j.0));
        let gens: Vec<i32> = after.iter().map(|j| j.1).collect();
        let expired = m.lines_with("for a session timeout", fault_at);
        let found = (m.log.lock().unwrap().iter())
            .find(|(at, l)| *at > fault_at && l.contains("found coordinator"))
            .map(|(at, _)| *at - fault_at);
        eprintln!(
            "member {i}: generation {} before; {} rejoins after the fault, generations {gens:?}; \
             {expired} session-timeout lines; heartbeat found the coordinator {found:?} after \
             the fault; last assignment {:?}",
            before[i],
            after.len(),
            after.last().map(|j| j.2.as_str()),
        );
        rows.push((after.len(), gens));
        let log = m.log.lock().unwrap();
        let lines: Vec<String> = (log.iter())
            .filter(|(at, _)| *at >= fault_at)
            .map(|(at, l)| format!("  +{:.1}s {l}", (*at - fault_at).as_secs_f64()))
            .collect();
        eprintln!(
            "member {i} log after the fault (last 40 lines):\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
    let settled = last_join.map_or(Duration::ZERO, |t| t.saturating_duration_since(named));
    eprintln!(
        "ROW {fault:?}: rejoins per member {:?}; stable {settled:?} after the new coordinator \
         was named; {n} produced, {read} read, {} missing, {repeated} repeated",
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "ids never read: {:?}...",
        &missing[..missing.len().min(20)]
    );
    for (i, (rejoins, gens)) in rows.iter().enumerate() {
        assert!(
            *rejoins <= 2,
            "member {i} rejoined {rejoins} times after the fault (generations {gens:?})"
        );
    }
    assert!(
        settled <= SESSION,
        "the group was last rejoined {settled:?} after the new coordinator was named"
    );
}

/// Issue 15 "Why" 2: the coordinator's broker SIGKILLed mid-stream and started again 18 s later.
/// Each member rejoins at most twice, the group is stable within a session timeout of the new
/// coordinator, every id is read.
#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn group_settles_after_its_coordinator_is_killed() {
    coordinator_fault(Fault::Kill {
        back_after: Duration::from_secs(18),
    });
}

/// A hung coordinator: its broker SIGSTOPped for longer than the session timeout, then SIGCONTed.
/// Its connection is dropped and the coordinator looked up again (not reused); the group settles
/// as after a kill and every id is read.
#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn group_settles_after_its_coordinator_hangs() {
    coordinator_fault(Fault::Pause {
        for_: SESSION + Duration::from_secs(5),
    });
}
