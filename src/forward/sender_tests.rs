//! The sender against a scripted sink: per-record acknowledgements, retries of only what failed,
//! order per partition, permanent refusals dead-lettered, refusals that fixing the setup cures kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::*;
use crate::kafka::producer::Delivery;
use crate::spool::{FsyncPolicy, SpoolOptions};

#[derive(Debug, thiserror::Error)]
enum FakeError {
    #[error("partition {0} is down")]
    Down(i32),
    #[error("record {0} is too large")]
    TooLarge(u8),
    #[error("not allowed to write the topic")]
    Denied,
}

impl ErrorKind for FakeError {
    fn kind(&self) -> Kind {
        match self {
            FakeError::Down(_) => Kind::BrokerUnreachable,
            FakeError::TooLarge(_) => Kind::RecordTooLarge,
            FakeError::Denied => Kind::TopicAuthorizationFailed,
        }
    }
}

/// What the sink saw: every call (topic, record ids) and every acknowledged record per partition.
#[derive(Default)]
struct Log {
    calls: Vec<(String, Vec<u8>)>,
    stored: BTreeMap<(String, i32), Vec<u8>>,
}

/// Record `i` has value `[i]` and key `k<i % 4>`; its partition is the key's number % 2. The sink fails
/// the partitions in `down` on its first `down_calls` calls (a failed record fails every later one
/// of its partition in that call, as the producer does), and refuses the ids in `too_large` for good.
struct ScriptedSink {
    log: Arc<Mutex<Log>>,
    down: Vec<(String, i32)>,
    down_calls: usize,
    too_large: Vec<u8>,
    /// Refuse every record of a call that holds a too-large one (as a broker refuses a batch).
    whole_call: bool,
    /// On the first call, results for this many records only (the rest: no result).
    short_first: Option<usize>,
    /// The first calls refuse every record for a cause that fixing the setup cures (an ACL).
    refused_calls: usize,
}

/// A sink that stores everything: no partition down, nothing too large or refused.
fn sink(log: &Arc<Mutex<Log>>) -> ScriptedSink {
    ScriptedSink {
        log: log.clone(),
        down: Vec::new(),
        down_calls: 0,
        too_large: Vec::new(),
        whole_call: false,
        short_first: None,
        refused_calls: 0,
    }
}

fn partition_of(key: Option<&[u8]>) -> i32 {
    let k = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .unwrap_or("k0");
    k.trim_start_matches('k').parse::<i32>().unwrap_or(0) % 2
}

impl RecordSink for ScriptedSink {
    type Error = FakeError;
    fn send_batch(
        &mut self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, FakeError>> {
        let mut log = self.log.lock().unwrap();
        let ids: Vec<u8> = records.iter().map(|r| r.value[0]).collect();
        log.calls.push((topic.to_string(), ids.clone()));
        let failing = log.calls.len() <= self.down_calls;
        if log.calls.len() <= self.refused_calls {
            return ids.iter().map(|_| Err(FakeError::Denied)).collect();
        }
        let answered = match (log.calls.len(), self.short_first) {
            (1, Some(n)) => n,
            _ => records.len(),
        };
        if self.whole_call
            && let Some(bad) = ids.iter().find(|id| self.too_large.contains(id))
        {
            return ids.iter().map(|_| Err(FakeError::TooLarge(*bad))).collect();
        }
        records
            .iter()
            .take(answered)
            .map(|r| {
                let p = partition_of(r.key.as_deref());
                let id = r.value[0];
                if self.too_large.contains(&id) {
                    return Err(FakeError::TooLarge(id));
                }
                if failing && self.down.contains(&(topic.to_string(), p)) {
                    return Err(FakeError::Down(p));
                }
                let stored = log.stored.entry((topic.to_string(), p)).or_default();
                stored.push(id);
                Ok(Delivery {
                    partition: p,
                    offset: Some(stored.len() as i64 - 1),
                })
            })
            .collect()
    }

    fn permanent(error: &FakeError) -> Option<Kind> {
        match error {
            FakeError::TooLarge(_) => Some(Kind::MessageTooLarge),
            FakeError::Down(_) | FakeError::Denied => None,
        }
    }

    fn refusal(error: &FakeError) -> Option<super::super::Refusal> {
        matches!(error, FakeError::Denied).then_some(super::super::Refusal {
            kind: Kind::TopicAuthorizationFailed,
            timestamp: None,
        })
    }
}

fn tmpdir(tag: &str) -> PathBuf {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "avro-edge-sender-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Spool `topics[i]` records with ids 0.., run the sender until the spool is empty, stop it.
fn drain_through(
    dir: &std::path::Path,
    topics: &[&str],
    sink: ScriptedSink,
) -> super::super::Snapshot {
    let opts = SpoolOptions {
        fsync: FsyncPolicy::Never,
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(&dir.join("spool"), opts).unwrap();
    for (i, t) in topics.iter().enumerate() {
        let key = format!("k{}", i % 4);
        spool.append(t, Some(key.as_bytes()), &[i as u8]).unwrap();
    }
    let dead = DeadLetter::open(&dir.join("dead.ndjson"), 1 << 20).unwrap();
    let metrics = Metrics::default();
    let stop = AtomicBool::new(false);
    let opts = SenderOptions {
        batch_records: 100,
        backoff: Backoff {
            min: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        poll: Duration::from_millis(10),
        linger: Duration::ZERO,
        clock_check: false,
        ..SenderOptions::default()
    };
    std::thread::scope(|s| {
        s.spawn(|| run(&spool, sink, &metrics, &dead, &stop, &opts));
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        while spool.status().records > 0 {
            assert!(
                std::time::Instant::now() < give_up,
                "the spool never emptied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let snap = metrics.snapshot(&spool.status());
    spool.close().unwrap();
    snap
}

fn count(s: &super::super::Snapshot) -> (u64, u64, u64) {
    (s.sent, s.acked, s.retried)
}

#[test]
fn a_partial_failure_resends_only_the_failed_records_in_partition_order() {
    let dir = tmpdir("partial");
    // Ids 0..12 alternate topics a, a, b (ids 2, 5, 8, 11 go to b); partition = (id % 4) % 2.
    let topics: Vec<&str> = (0..12)
        .map(|i| if i % 3 == 2 { "b" } else { "a" })
        .collect();
    let log = Arc::new(Mutex::new(Log::default()));
    let sink = ScriptedSink {
        down: vec![("a".into(), 1)],
        down_calls: 1,
        ..sink(&log)
    };
    let m = drain_through(&dir, &topics, sink);
    let log = log.lock().unwrap();
    let a: Vec<u8> = (0..12).filter(|i| i % 3 != 2).collect();
    let b: Vec<u8> = vec![2, 5, 8, 11];
    let a_p1: Vec<u8> = a.iter().copied().filter(|i| i % 4 % 2 == 1).collect();
    assert_eq!(
        log.calls,
        [
            ("a".to_string(), a.clone()),
            ("b".to_string(), b.clone()),
            ("a".to_string(), a_p1.clone()),
        ],
        "one send per topic, then a retry of just the failed partition's records"
    );
    // Every record stored once, in spool order per partition.
    for ((topic, p), ids) in &log.stored {
        let want: Vec<u8> = (0..12u8)
            .filter(|i| topics[*i as usize] == topic && i32::from(i % 4 % 2) == *p)
            .collect();
        assert_eq!(ids, &want, "{topic}-{p}");
    }
    let n = a_p1.len() as u64;
    assert_eq!(count(&m), (12 + n, 12, n));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_refused_for_good_is_dead_lettered_and_the_rest_goes_on() {
    let dir = tmpdir("refused");
    let topics = vec!["a"; 8];
    let log = Arc::new(Mutex::new(Log::default()));
    let sink = ScriptedSink {
        // Partition 0 is down on the first two calls (a retriable error: retried, not dropped);
        // record 3 (partition 1) is too large.
        down: vec![("a".into(), 0)],
        down_calls: 2,
        too_large: vec![3],
        ..sink(&log)
    };
    let m = drain_through(&dir, &topics, sink);
    let log = log.lock().unwrap();
    assert_eq!(
        log.calls,
        [
            ("a".to_string(), (0..8).collect::<Vec<u8>>()),
            // Record 3 was refused in a batch: the topic goes one by one until it was sent alone,
            // stopping at the first failure (partition 0 is still down).
            ("a".to_string(), vec![0]),
            ("a".to_string(), vec![0]),
            ("a".to_string(), vec![2]),
            ("a".to_string(), vec![3]),
            ("a".to_string(), vec![4]),
            ("a".to_string(), vec![6]),
        ],
        "the refused record is sent once more alone, then never again"
    );
    assert_eq!(log.stored[&("a".to_string(), 0)], [0, 2, 4, 6]);
    assert_eq!(log.stored[&("a".to_string(), 1)], [1, 5, 7]);
    assert_eq!(count(&m), (14, 7, 10));
    let snap = m;
    assert_eq!(
        snap.forward_dead_lettered,
        BTreeMap::from([("message-too-large".to_string(), 1)])
    );
    assert!(
        snap.prometheus()
            .contains("avro_edge_forward_dead_lettered_total{kind=\"message-too-large\"} 1\n")
    );
    let text = std::fs::read_to_string(dir.join("dead.ndjson")).unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{text}");
    let e = &entries[0];
    assert_eq!(e["topic"], "a");
    assert_eq!(e["reason"]["kind"], "record-too-large");
    assert_eq!(e["reason"]["rejection"], "message-too-large");
    assert_eq!(e["reason"]["message"], "record 3 is too large");
    assert_eq!(e["value_base64"], "Aw==");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_batch_refused_for_one_record_delivers_its_neighbours() {
    let dir = tmpdir("neighbours");
    let topics = vec!["a"; 6];
    let log = Arc::new(Mutex::new(Log::default()));
    let sink = ScriptedSink {
        too_large: vec![2],
        whole_call: true,
        ..sink(&log)
    };
    let m = drain_through(&dir, &topics, sink);
    let log = log.lock().unwrap();
    let one = |i: u8| ("a".to_string(), vec![i]);
    assert_eq!(
        log.calls,
        [
            ("a".to_string(), (0..6).collect::<Vec<u8>>()),
            one(0),
            one(1),
            one(2),
            one(3),
            one(4),
            one(5),
        ]
    );
    assert_eq!(log.stored[&("a".to_string(), 0)], [0, 4]);
    assert_eq!(log.stored[&("a".to_string(), 1)], [1, 3, 5]);
    assert_eq!(count(&m), (12, 5, 6));
    assert_eq!(m.forward_dead_lettered["message-too-large"], 1);
    let text = std::fs::read_to_string(dir.join("dead.ndjson")).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(r#""value_base64":"Ag==""#), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_without_a_result_are_sent_again_and_nothing_else() {
    let dir = tmpdir("short");
    let log = Arc::new(Mutex::new(Log::default()));
    let sink = ScriptedSink {
        short_first: Some(3),
        ..sink(&log)
    };
    let m = drain_through(&dir, &["a"; 5], sink);
    let log = log.lock().unwrap();
    assert_eq!(
        log.calls,
        [
            ("a".to_string(), vec![0, 1, 2, 3, 4]),
            ("a".to_string(), vec![3, 4])
        ]
    );
    assert_eq!(count(&m), (7, 5, 2));
    assert_eq!(m.last_error.as_ref().unwrap().kind, "not-acknowledged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_refused_for_a_cause_the_setup_cures_stay_and_go_once_it_is_fixed() {
    let dir = tmpdir("denied");
    let log = Arc::new(Mutex::new(Log::default()));
    let sink = ScriptedSink {
        refused_calls: 3,
        ..sink(&log)
    };
    let m = drain_through(&dir, &["a"; 8], sink);
    let log = log.lock().unwrap();
    let all: Vec<u8> = (0..8).collect();
    let calls: Vec<Vec<u8>> = log.calls.iter().map(|(_, ids)| ids.clone()).collect();
    assert_eq!(
        calls,
        vec![all; 4],
        "the whole window again after each refusal"
    );
    assert_eq!(log.stored[&("a".to_string(), 0)], [0, 2, 4, 6]);
    assert_eq!(log.stored[&("a".to_string(), 1)], [1, 3, 5, 7]);
    assert!(m.forward_dead_lettered.is_empty(), "{m:?}");
    assert_eq!(
        m.forward_refusals,
        BTreeMap::from([("topic-authorization-failed".to_string(), 24)])
    );
    assert_eq!(m.held, None, "sending went through again");
    assert_eq!(
        m.last_error.as_ref().map(|e| e.kind.as_str()),
        Some("topic-authorization-failed")
    );
    let dead = std::fs::read_to_string(dir.join("dead.ndjson")).unwrap_or_default();
    assert_eq!(dead, "", "nothing dead-lettered");
    let _ = std::fs::remove_dir_all(&dir);
}
