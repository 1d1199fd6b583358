//! The exactly-once sender against a scripted transactional sink that keeps what a
//! read_committed consumer would see: records of committed transactions only.

use std::sync::{Arc, Mutex};

use super::*;
use crate::forward::clock_check::Distrust;
use crate::forward::{Delivery, OutRecord, Refusal, Snapshot};
use crate::spool::{FsyncPolicy, SpoolOptions};

#[derive(Debug, thiserror::Error)]
enum FakeError {
    #[error("broker down")]
    Down,
    #[error("record {0} is too large")]
    TooLarge(u8),
    #[error("fenced")]
    Fenced,
    #[error("not allowed to write the topic")]
    Denied,
    #[error("SASL authentication failed")]
    Auth,
    #[error("timestamp out of range")]
    Ahead(RefusedTimestamp),
    #[error("not allowed while committing")]
    Committing,
}

impl ErrorKind for FakeError {
    fn kind(&self) -> Kind {
        match self {
            FakeError::Down => Kind::BrokerUnreachable,
            FakeError::TooLarge(_) => Kind::RecordTooLarge,
            FakeError::Fenced => Kind::ProducerFenced,
            FakeError::Denied => Kind::TopicAuthorizationFailed,
            FakeError::Auth => Kind::AuthFailed,
            FakeError::Ahead(_) => Kind::InvalidTimestamp,
            FakeError::Committing => Kind::TransactionState,
        }
    }
}

/// What the broker would hold: committed records and positions, and the open transaction.
#[derive(Default)]
struct Broker {
    committed: Vec<u8>,
    position: Option<u64>,
    open: Option<Vec<u8>>,
    calls: usize,
    starts: usize,
    aborts: usize,
    /// Send calls (1-based) that fail with a retriable error.
    fail_calls: Vec<usize>,
    too_large: Vec<u8>,
    /// The commit (1-based) at which another instance fenced this one.
    fenced_at_commit: Option<usize>,
    /// The commit (1-based) that the coordinator completes but whose answer is lost (it times out);
    /// the producer is then stuck committing (an abort is refused) until it starts again.
    lost_commit: Option<usize>,
    committing: bool,
    commits: usize,
    /// The first send calls refused for a cause that fixing the setup cures (an ACL).
    denied_calls: usize,
    /// The first send calls refused as ahead of the broker's clock, with what it accepted.
    ahead_calls: Option<(usize, RefusedTimestamp)>,
    /// The first starts refused (the credentials).
    refused_starts: usize,
    /// The spool directory, and the clock distrust kept there at the first send taken.
    spool_dir: Option<std::path::PathBuf>,
    distrust_when_taken: Option<Option<Distrust>>,
}

struct Sink(Arc<Mutex<Broker>>);

impl RecordSink for Sink {
    type Error = FakeError;
    fn send_batch(&mut self, _: &str, records: &[OutRecord]) -> Vec<Result<Delivery, FakeError>> {
        let mut b = self.0.lock().unwrap();
        b.calls += 1;
        if b.calls <= b.denied_calls {
            return records.iter().map(|_| Err(FakeError::Denied)).collect();
        }
        if let Some((_, t)) = b.ahead_calls.filter(|(n, _)| b.calls <= *n) {
            return records.iter().map(|_| Err(FakeError::Ahead(t))).collect();
        }
        if b.distrust_when_taken.is_none() {
            b.distrust_when_taken = Some(b.spool_dir.as_deref().and_then(Distrust::load));
        }
        let fail = b.fail_calls.contains(&b.calls);
        let refused = records.iter().find(|r| b.too_large.contains(&r.value[0]));
        let out = records.iter().map(|r| {
            if fail {
                return Err(FakeError::Down);
            }
            if let Some(bad) = refused {
                return Err(FakeError::TooLarge(bad.value[0]));
            }
            b.open
                .as_mut()
                .expect("sent inside a transaction")
                .push(r.value[0]);
            Ok(Delivery {
                partition: 0,
                offset: None,
            })
        });
        let out: Vec<_> = out.collect();
        out
    }
    fn permanent(e: &FakeError) -> Option<Kind> {
        matches!(e, FakeError::TooLarge(_)).then_some(Kind::MessageTooLarge)
    }
    fn refusal(e: &FakeError) -> Option<Refusal> {
        let (kind, timestamp) = match e {
            FakeError::Denied => (Kind::TopicAuthorizationFailed, None),
            FakeError::Auth => (Kind::AuthFailed, None),
            FakeError::Ahead(t) => (Kind::ClockAheadOfBroker, Some(*t)),
            _ => return None,
        };
        Some(Refusal { kind, timestamp })
    }
    fn transactions(&mut self) -> Option<&mut dyn Transactions<Error = FakeError>> {
        Some(self)
    }
}

impl Transactions for Sink {
    type Error = FakeError;
    fn start(&mut self, gateway: &str) -> Result<Option<u64>, FakeError> {
        assert_eq!(gateway, "gw");
        let mut b = self.0.lock().unwrap();
        b.starts += 1;
        if b.starts <= b.refused_starts {
            return Err(FakeError::Auth);
        }
        b.open = None;
        b.committing = false;
        Ok(b.position)
    }
    fn begin(&mut self) -> Result<(), FakeError> {
        let mut b = self.0.lock().unwrap();
        assert!(b.open.is_none(), "begin inside a transaction");
        b.open = Some(Vec::new());
        Ok(())
    }
    fn commit(&mut self, position: Option<u64>) -> Result<(), FakeError> {
        let mut b = self.0.lock().unwrap();
        b.commits += 1;
        if b.fenced_at_commit == Some(b.commits) {
            return Err(FakeError::Fenced);
        }
        let open = b.open.take().expect("commit of an open transaction");
        b.committed.extend(open);
        if let Some(p) = position {
            assert!(b.position.is_none_or(|q| p > q), "positions only go up");
            b.position = Some(p);
        }
        if b.lost_commit == Some(b.commits) {
            b.committing = true;
            return Err(FakeError::Down);
        }
        Ok(())
    }
    fn abort(&mut self) -> Result<(), FakeError> {
        let mut b = self.0.lock().unwrap();
        b.aborts += 1;
        if b.committing {
            return Err(FakeError::Committing);
        }
        b.open = None;
        Ok(())
    }
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("avro-edge-eos-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Spool records 0..n, run the sender until the spool is empty (or 10 s), stop it.
fn drain(tag: &str, n: u8, broker: &Arc<Mutex<Broker>>) -> (Option<(Kind, String)>, u64) {
    let (fatal, left, _) = drain_for(tag, n, broker, Duration::from_secs(10), false);
    (fatal, left)
}

/// [`drain`] for at most `limit`, with the clock gate on or off; also the metrics at the end.
fn drain_for(
    tag: &str,
    n: u8,
    broker: &Arc<Mutex<Broker>>,
    limit: Duration,
    clock_check: bool,
) -> (Option<(Kind, String)>, u64, Snapshot) {
    let run = Run {
        limit,
        clock_check,
        ..Run::default()
    };
    let ran = run_sender(tag, n, broker, &run);
    (ran.fatal, ran.left, ran.snap)
}

/// How [`run_sender`] runs the sender.
struct Run {
    /// Stop it after this long, if the spool is not empty before.
    limit: Duration,
    clock_check: bool,
    commit_interval: Duration,
    /// The inputs have ended ([`Spool::interrupt`]) when the sender starts, as in the forwarder's drain.
    inputs_ended: bool,
    /// The records were spooled by this run's inputs (after the spool was opened), not left by an
    /// earlier run: a committed position at or above them is this run's own or another spool's.
    spooled_by_this_run: bool,
}

/// What [`run_sender`] saw.
struct Ran {
    /// Why the sender stopped for good, if it did.
    fatal: Option<(Kind, String)>,
    /// Records left in the spool after the sender returned (its last commit included).
    left: u64,
    /// The metrics at the end.
    snap: Snapshot,
    /// Records in the spool when the sender was told to stop.
    left_at_stop: u64,
}

impl Default for Run {
    /// As [`drain`] runs it: 10 s at most, no clock gate, a commit every 20 ms, records left by an
    /// earlier run and the inputs still running.
    fn default() -> Run {
        Run {
            limit: Duration::from_secs(10),
            clock_check: false,
            commit_interval: Duration::from_millis(20),
            inputs_ended: false,
            spooled_by_this_run: false,
        }
    }
}

/// Spool records 0..n, run the sender as `run_as` says until the spool is empty (or
/// `run_as.limit`), stop it.
fn run_sender(tag: &str, n: u8, broker: &Arc<Mutex<Broker>>, run_as: &Run) -> Ran {
    let Run {
        limit,
        clock_check,
        commit_interval,
        inputs_ended,
        spooled_by_this_run,
    } = *run_as;
    let dir = tmpdir(tag);
    let opts = SpoolOptions {
        fsync: FsyncPolicy::Never,
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(&dir.join("spool"), opts).unwrap();
    let next_seq_at_open = spool.status().next_seq;
    for i in 0..n {
        spool.append("t", Some(b"k"), &[i]).unwrap();
    }
    if inputs_ended {
        spool.interrupt();
    }
    let dead = DeadLetter::open(&dir.join("dead.ndjson"), 1 << 20).unwrap();
    let (metrics, stop, fatal) = (Metrics::default(), AtomicBool::new(false), Fatal::default());
    let mut send = SenderOptions {
        batch_records: 5,
        linger: Duration::ZERO,
        clock_check,
        ..SenderOptions::default()
    };
    broker.lock().unwrap().spool_dir = Some(spool.dir().to_path_buf());
    send.backoff.min = Duration::from_millis(1);
    let opts = ExactlyOnceOptions {
        send,
        commit_interval,
        gateway: "gw".into(),
        next_seq_at_open: match spooled_by_this_run {
            true => next_seq_at_open,
            false => spool.status().next_seq,
        },
    };
    let left_at_stop = std::thread::scope(|s| {
        let watch = s.spawn(|| {
            let end = Instant::now() + limit;
            while spool.status().records > 0 && fatal.get().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            let left = spool.status().records;
            stop.store(true, Ordering::Relaxed);
            left
        });
        run(
            &spool,
            Sink(broker.clone()),
            &metrics,
            &dead,
            &stop,
            &opts,
            &fatal,
        );
        watch.join().unwrap()
    });
    let left = spool.status().records;
    let snap = metrics.snapshot(&spool.status());
    let _ = std::fs::remove_dir_all(&dir);
    Ran {
        fatal: fatal.get(),
        left,
        snap,
        left_at_stop,
    }
}

#[test]
fn a_failed_send_aborts_and_the_transaction_goes_again_whole() {
    let broker = Arc::new(Mutex::new(Broker {
        fail_calls: vec![3],
        ..Broker::default()
    }));
    let (fatal, left) = drain("abort", 20, &broker);
    assert!(fatal.is_none() && left == 0);
    let b = broker.lock().unwrap();
    assert_eq!(
        b.committed,
        (0..20).collect::<Vec<u8>>(),
        "each record once, in order"
    );
    assert_eq!(b.position, Some(19));
    assert!(b.aborts >= 1, "the failed transaction was aborted");
}

#[test]
fn a_restart_releases_what_was_committed_without_sending_it() {
    let broker = Arc::new(Mutex::new(Broker {
        committed: (0..=11).collect(),
        position: Some(11),
        ..Broker::default()
    }));
    let (fatal, left) = drain("restart", 20, &broker);
    assert!(fatal.is_none() && left == 0);
    let b = broker.lock().unwrap();
    assert_eq!(b.committed, (0..20).collect::<Vec<u8>>());
    assert_eq!(b.calls, 2, "only 12..20 sent: two windows");
}

#[test]
fn a_record_refused_alone_is_dead_lettered_and_the_rest_committed_once() {
    let broker = Arc::new(Mutex::new(Broker {
        too_large: vec![7],
        ..Broker::default()
    }));
    let (fatal, left) = drain("refused", 12, &broker);
    assert!(fatal.is_none() && left == 0);
    let b = broker.lock().unwrap();
    let want: Vec<u8> = (0..12).filter(|i| *i != 7).collect();
    assert_eq!(b.committed, want);
    assert!(b.aborts >= 2, "refused in its batch, then alone");
}

#[test]
fn a_fenced_producer_stops_the_sender_and_commits_nothing() {
    let broker = Arc::new(Mutex::new(Broker {
        fenced_at_commit: Some(1),
        ..Broker::default()
    }));
    let (fatal, left) = drain("fenced", 10, &broker);
    let (kind, message) = fatal.expect("stopped for good");
    assert_eq!((kind, message.as_str()), (Kind::ProducerFenced, "fenced"));
    assert_eq!(left, 10, "every record stays in the spool");
    assert!(broker.lock().unwrap().committed.is_empty());
}

/// A position written from another spool (a reused gateway id): releasing "committed" records
/// would drop this spool's own; the sender stops instead and keeps them.
#[test]
fn a_position_above_the_spool_stops_the_sender_and_keeps_the_records() {
    let broker = Arc::new(Mutex::new(Broker {
        position: Some(500),
        ..Broker::default()
    }));
    let (fatal, left) = drain("behind", 20, &broker);
    let (kind, message) = fatal.expect("stopped for good");
    assert_eq!(kind, Kind::SpoolBehindPosition, "{message}");
    assert!(message.contains("position 500"), "{message}");
    assert_eq!(left, 20, "every record stays in the spool");
    assert_eq!(broker.lock().unwrap().calls, 0, "nothing sent");
}

/// An ACL refusal in a send: counted in `forward_refusals_total` under its kind as the plain
/// sender counts it, nothing dead-lettered, and every record committed once it is given back.
#[test]
fn a_refused_send_is_counted_and_held_as_the_plain_sender_does() {
    let broker = Arc::new(Mutex::new(Broker {
        denied_calls: 3,
        ..Broker::default()
    }));
    let (fatal, left, snap) = drain_for("denied", 12, &broker, Duration::from_secs(10), false);
    assert!(fatal.is_none() && left == 0, "{fatal:?} {left}");
    let b = broker.lock().unwrap();
    assert_eq!(b.committed, (0..12).collect::<Vec<u8>>());
    // Three refused sends of the first window (5 records each).
    assert_eq!(
        snap.forward_refusals,
        std::collections::BTreeMap::from([("topic-authorization-failed".to_string(), 15)])
    );
    assert!(snap.forward_dead_lettered.is_empty(), "{snap:?}");
    assert_eq!(snap.held, None, "sending went through again");
    assert_eq!(
        snap.last_error.as_ref().map(|e| e.kind.as_str()),
        Some("topic-authorization-failed")
    );
}

/// Timestamps refused as ahead of the broker's clock: the clock gate hears it before the records
/// go again (the spool times above what the broker accepted are distrusted, in the spool
/// directory), the refusals are counted, and the records are committed once taken.
#[test]
fn a_timestamp_refused_as_ahead_tells_the_clock_gate() {
    let now = crate::clock::now_ms() as i64;
    let t = RefusedTimestamp {
        timestamp_ms: now,
        accepted_from_ms: 0,
        accepted_until_ms: now - 3_600_000,
    };
    let broker = Arc::new(Mutex::new(Broker {
        ahead_calls: Some((2, t)),
        ..Broker::default()
    }));
    let (fatal, left, snap) = drain_for("ahead", 8, &broker, Duration::from_secs(10), true);
    assert!(fatal.is_none() && left == 0, "{fatal:?} {left}");
    let b = broker.lock().unwrap();
    assert_eq!(b.committed, (0..8).collect::<Vec<u8>>());
    assert_eq!(
        b.distrust_when_taken,
        Some(Some(Distrust {
            spool_times_above_ms: t.accepted_until_ms as u64,
            until_seq: None,
        })),
        "the refusal reached the clock gate before the records were taken"
    );
    assert_eq!(snap.forward_refusals["clock-ahead-of-broker"], 10);
    assert!(!snap.clock_insane, "a refused time is no lower bound");
}

/// The producer's start refused for a cause that fixing the setup cures (the credentials): held
/// under its kind (what `spool status`, the status line and the exit code show), counted, never
/// dead-lettered; the records wait.
#[test]
fn a_refused_start_holds_the_records_under_its_kind() {
    let broker = Arc::new(Mutex::new(Broker {
        refused_starts: usize::MAX,
        ..Broker::default()
    }));
    let (fatal, left, snap) = drain_for("start", 7, &broker, Duration::from_millis(400), false);
    assert!(fatal.is_none(), "{fatal:?}");
    assert_eq!(left, 7, "every record stays in the spool");
    let held = snap.held.as_ref().expect("held");
    assert_eq!((held.reason.as_str(), held.refusal), ("auth-failed", true));
    assert_eq!(snap.held_records, 7);
    assert_eq!(
        snap.last_error.as_ref().map(|e| e.kind.as_str()),
        Some("auth-failed")
    );
    // Each refused start counts one window (5 records).
    let refused = snap.forward_refusals["auth-failed"];
    assert!(refused >= 5 && refused % 5 == 0, "{refused}");
    assert_eq!(broker.lock().unwrap().calls, 0, "nothing sent");
}

/// Cured, the refused start goes through and every record is committed once.
#[test]
fn a_start_refused_then_allowed_delivers_everything_once() {
    let broker = Arc::new(Mutex::new(Broker {
        refused_starts: 2,
        ..Broker::default()
    }));
    let (fatal, left, snap) = drain_for("start-ok", 7, &broker, Duration::from_secs(10), false);
    assert!(fatal.is_none() && left == 0, "{fatal:?} {left}");
    assert_eq!(
        broker.lock().unwrap().committed,
        (0..7).collect::<Vec<u8>>()
    );
    assert_eq!(snap.forward_refusals["auth-failed"], 10);
    assert_eq!(snap.held, None);
}

#[test]
fn once_the_inputs_ended_and_all_was_sent_it_commits_without_waiting_for_the_interval() {
    let broker = Arc::new(Mutex::new(Broker::default()));
    let run = Run {
        limit: Duration::from_secs(20),
        commit_interval: Duration::from_secs(3600),
        inputs_ended: true,
        ..Run::default()
    };
    let ran = run_sender("ended", 12, &broker, &run);
    assert!(ran.fatal.is_none());
    assert_eq!(
        ran.left_at_stop, 0,
        "released by a commit before the stop, not by the one at the stop"
    );
    let b = broker.lock().unwrap();
    assert_eq!(b.committed, (0..12).collect::<Vec<u8>>());
    assert_eq!(
        (b.commits, b.calls),
        (1, 3),
        "one transaction of three windows"
    );
}

#[test]
fn while_the_inputs_run_a_transaction_waits_for_its_interval() {
    let broker = Arc::new(Mutex::new(Broker::default()));
    let run = Run {
        limit: Duration::from_millis(500),
        commit_interval: Duration::from_secs(3600),
        ..Run::default()
    };
    let ran = run_sender("running", 12, &broker, &run);
    assert!(ran.fatal.is_none());
    assert_eq!(ran.left_at_stop, 12, "nothing committed before the stop");
    assert_eq!(ran.left, 0, "the stop commits what was sent");
    let b = broker.lock().unwrap();
    assert_eq!(
        (b.commits, b.calls),
        (1, 3),
        "all sent, committed once, at the stop"
    );
    assert_eq!(b.committed, (0..12).collect::<Vec<u8>>());
}

#[test]
fn a_commit_whose_answer_was_lost_is_read_back_as_this_runs_own_position() {
    let broker = Arc::new(Mutex::new(Broker {
        lost_commit: Some(1),
        ..Broker::default()
    }));
    let run = Run {
        spooled_by_this_run: true,
        ..Run::default()
    };
    let ran = run_sender("lost-commit", 20, &broker, &run);
    assert!(
        ran.fatal.is_none(),
        "not taken for another spool's position: {:?}",
        ran.fatal
    );
    assert_eq!(ran.left_at_stop, 0);
    let b = broker.lock().unwrap();
    assert_eq!(
        b.committed,
        (0..20).collect::<Vec<u8>>(),
        "each record once: the lost commit's records released, not sent again"
    );
    assert_eq!(
        b.starts, 2,
        "the producer started again after the refused abort"
    );
}
