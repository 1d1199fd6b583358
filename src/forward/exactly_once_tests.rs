//! The exactly-once sender against a scripted transactional sink that keeps what a
//! read_committed consumer would see: records of committed transactions only.

use std::sync::{Arc, Mutex};

use super::*;
use crate::forward::{Delivery, OutRecord};
use crate::spool::{FsyncPolicy, SpoolOptions};

#[derive(Debug, thiserror::Error)]
enum FakeError {
    #[error("broker down")]
    Down,
    #[error("record {0} is too large")]
    TooLarge(u8),
    #[error("fenced")]
    Fenced,
}

impl ErrorKind for FakeError {
    fn kind(&self) -> Kind {
        match self {
            FakeError::Down => Kind::BrokerUnreachable,
            FakeError::TooLarge(_) => Kind::RecordTooLarge,
            FakeError::Fenced => Kind::ProducerFenced,
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
    commits: usize,
}

struct Sink(Arc<Mutex<Broker>>);

impl RecordSink for Sink {
    type Error = FakeError;
    fn send_batch(
        &mut self,
        _: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, FakeError>> {
        let mut b = self.0.lock().unwrap();
        b.calls += 1;
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
        b.open = None;
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
        Ok(())
    }
    fn abort(&mut self) -> Result<(), FakeError> {
        let mut b = self.0.lock().unwrap();
        b.aborts += 1;
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
    let dir = tmpdir(tag);
    let opts = SpoolOptions {
        fsync: FsyncPolicy::Never,
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(&dir.join("spool"), opts).unwrap();
    for i in 0..n {
        spool.append("t", Some(b"k"), &[i]).unwrap();
    }
    let dead = DeadLetter::open(&dir.join("dead.ndjson"), 1 << 20).unwrap();
    let (metrics, stop, fatal) = (Metrics::default(), AtomicBool::new(false), Fatal::default());
    let mut send = SenderOptions {
        batch_records: 5,
        linger: Duration::ZERO,
        clock_check: false,
        ..SenderOptions::default()
    };
    send.backoff.min = Duration::from_millis(1);
    let opts = ExactlyOnceOptions {
        send,
        commit_interval: Duration::from_millis(20),
        gateway: "gw".into(),
        next_seq_at_open: spool.status().next_seq,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let end = Instant::now() + Duration::from_secs(10);
            while spool.status().records > 0 && fatal.get().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
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
    });
    let left = spool.status().records;
    let _ = std::fs::remove_dir_all(&dir);
    (fatal.get(), left)
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
