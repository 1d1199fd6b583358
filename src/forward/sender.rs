//! The sender: drains the spool in order through the sink, one window (a batch read from the spool) at a
//! time, with an acknowledgement per record ([`super::window`]):
//! - a round sends the window's pending records, one `send_batch` per topic, each topic's in spool order;
//! - a record the sink acknowledged is settled; so is a record the broker refused for good
//!   ([`RecordSink::permanent`]: too large, invalid timestamp, ...), once it is in the dead-letter file
//!   with the broker's reason and counted (`forward_dead_lettered{kind}`). The broker refuses whole
//!   batches, so a record refused together with others is first sent again alone (its topic then goes
//!   one record per call, in spool order, until that is done): only a record refused on its own is
//!   dead-lettered, and its batch neighbours are delivered;
//! - the spool's acknowledged cursor moves over the settled prefix only; records settled out of order are
//!   remembered in the window, so after a failure the retry (after a backoff that doubles up to its
//!   maximum) sends only the records whose send failed, and nothing new is read until the window is
//!   settled. Records of one partition never overtake each other: the retry sends a topic's failed
//!   records in spool order before anything read later, and the sink fails the records behind a failed
//!   one in its partition (the producer does, see `kafka::producer::sender`). Not yet closed: the
//!   producer fails the batches queued behind a failed one only on a retriable error, so when one call
//!   puts two batches into a partition and the first is refused for good, the second can land before the
//!   first one's good records, which are sent again alone.
//!
//! A crash or a stop with a window partly settled: the spool still holds everything from the first
//! pending record on, so the next run sends those again, the ones acknowledged out of order included: at
//! most one window (`batch_records`) of duplicates, which the spool counts as possible duplicates.
//!
//! Must never release a record the sink did not acknowledge unless it is in the dead-letter file (when
//! that file cannot be written the record stays pending), never dead-letter for an error that fixing the
//! setup cures (authentication, an unknown topic, ...: those are retried), and never reorder. Holds
//! records back (in the spool) while the system clock is below its lower bound (`clock_check`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::clock_check::{self, ClockGate};
use super::dead_letter::{DeadLetter, Refused};
use super::metrics::{Metrics, add};
use super::window::{Taken, Window};
use super::{OutRecord, RecordSink};
use crate::error::{ErrorKind, Kind};
use crate::spool::{Spool, SpoolError};

/// Exponential backoff between failed sends.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

/// How the sender drains the spool.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    pub batch_records: usize,
    pub batch_bytes: usize,
    pub backoff: Backoff,
    /// How long one wait for new records lasts (also the fsync tick).
    pub poll: Duration,
    /// A partial batch waits this long for more records before it is sent, so that a steady trickle
    /// goes out in full batches (one cursor write per batch) instead of one record per send.
    pub linger: Duration,
    /// Hold records while the system clock is below its lower bound (`clock_check`).
    pub clock_check: bool,
    /// The gateway named in every record's headers with its sequence number
    /// (`crate::dedupe::headers`); `None`: no headers (`forward.headers = false`).
    pub headers: Option<String>,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            batch_records: 500,
            batch_bytes: 1 << 20,
            backoff: Backoff {
                min: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            clock_check: true,
            poll: Duration::from_millis(50),
            linger: Duration::from_millis(5),
            headers: None,
        }
    }
}

pub(super) fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
}

/// Run until `stop` is set.
pub fn run<S: RecordSink>(
    spool: &Spool,
    mut sink: S,
    metrics: &Metrics,
    dead: &DeadLetter,
    stop: &AtomicBool,
    opts: &SenderOptions,
) {
    let mut backoff = opts.backoff.min;
    let mut first_ack = true;
    let mut clock = ClockGate::new(
        crate::clock::BUILD_TIME_MS,
        spool.status().oldest_unacked_ms,
    );
    let mut window = Window::default();
    // A read failed after handing out part of its records: read again from the acknowledged cursor
    // once the window is released.
    let mut reread = false;
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = spool.tick() {
            tracing::error!(error = %e, "spool fsync failed");
            metrics.set_error(e.kind(), &e.to_string());
        }
        // The bound only grows: while the clock is below the known one, there is no need to read.
        if opts.clock_check && clock.held(crate::clock::now_ms(), metrics) {
            sleep_unless(stop, clock_check::RECHECK);
            continue;
        }
        if window.is_empty() {
            match next_window(spool, metrics, stop, opts, &mut clock, &mut reread) {
                Ok(Some(w)) => window = w,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "spool read failed");
                    metrics.set_error(e.kind(), &e.to_string());
                    spool.rewind();
                    sleep_unless(stop, backoff);
                    backoff = (backoff * 2).min(opts.backoff.max);
                    continue;
                }
            }
        }
        let round = send_round(&mut sink, &mut window, dead, metrics);
        if let Some(last) = window.release()
            && let Err(e) = spool.ack_through(&last)
        {
            tracing::error!(error = %e, "spool ack failed");
            metrics.set_error(e.kind(), &e.to_string());
        }
        if reread && window.is_empty() {
            reread = false;
            spool.rewind();
        }
        if first_ack && round.acked > 0 {
            first_ack = false;
            // Start-to-first-send is measured from this line (benches/forward.rs).
            tracing::info!(records = round.acked, "first records acknowledged");
        }
        // Whatever is still pending is sent again (after a failure, or alone after a refusal).
        let resend = window.pending() as u64;
        add(&metrics.retried, resend);
        match round.failure {
            None => backoff = opts.backoff.min,
            Some((kind, message)) => {
                tracing::warn!(kind = %kind, error = %message, resend, backoff_ms = backoff.as_millis() as u64, "send failed; will resend the records that were not acknowledged");
                metrics.set_error(kind, &message);
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(opts.backoff.max);
                // `drop_oldest` may have released some of them meanwhile: those are not sent again.
                window.forget_below(spool.status().acked_seq);
            }
        }
    }
}

/// Read the next window from the spool (waiting up to `poll`, then `linger` for a fuller batch); `None`
/// when there is nothing to send yet or the clock holds the records back (they are read again later).
pub(super) fn next_window(
    spool: &Spool,
    metrics: &Metrics,
    stop: &AtomicBool,
    opts: &SenderOptions,
    clock: &mut ClockGate,
    reread: &mut bool,
) -> Result<Option<Window>, SpoolError> {
    let mut batch = spool.read_batch(opts.batch_records, opts.batch_bytes, opts.poll)?;
    if batch.is_empty() {
        return Ok(None);
    }
    if batch.len() < opts.batch_records && !opts.linger.is_zero() {
        sleep_unless(stop, opts.linger);
        match spool.read_batch(
            opts.batch_records - batch.len(),
            opts.batch_bytes,
            Duration::ZERO,
        ) {
            Ok(more) => batch.extend(more),
            Err(e) => {
                // Send what was read; the failed read may have moved the read position past records
                // it did not hand out, so read again from the cursor once this window is released.
                *reread = true;
                tracing::error!(error = %e, "spool read failed");
                metrics.set_error(e.kind(), &e.to_string());
            }
        }
    }
    // Records spooled by a later clock than the current one: hold them (read again after the rewind).
    if opts.clock_check
        && clock.hold_batch(
            batch.iter().map(|r| r.timestamp_ms),
            crate::clock::now_ms(),
            metrics,
        )
    {
        spool.rewind();
        sleep_unless(stop, clock_check::RECHECK);
        return Ok(None);
    }
    Ok(Some(Window::new(batch, opts.headers.as_deref())))
}

/// What one round of sends did.
#[derive(Default)]
struct Round {
    /// Records the sink acknowledged.
    acked: u64,
    /// The first failure that leaves records pending: kind and message.
    failure: Option<(Kind, String)>,
}

/// Send every pending record of the window, one `send_batch` per topic (one per record for a topic
/// with a record to send alone), and settle what was acknowledged or refused for good (dead-lettered);
/// what failed otherwise stays pending.
fn send_round<S: RecordSink>(
    sink: &mut S,
    window: &mut Window,
    dead: &DeadLetter,
    metrics: &Metrics,
) -> Round {
    let mut round = Round::default();
    for topic in window.topics() {
        if window.one_by_one(&topic) {
            // In spool order, and no further after a failure: a later record of the failed one's
            // partition must not overtake it.
            for i in window.pending_of(&topic) {
                let taken = window.take_at(i);
                if !send_taken(sink, window, taken, dead, metrics, &mut round) {
                    break;
                }
            }
        } else {
            let taken = window.take(&topic);
            send_taken(sink, window, taken, dead, metrics, &mut round);
        }
    }
    add(&metrics.acked, round.acked);
    round
}

/// Send records taken from the window in one call and settle them (see [`send_round`]). A record
/// refused for good in a call with others is not dead-lettered yet: the broker refuses whole batches
/// (INVALID_TIMESTAMP, INVALID_RECORD, a MESSAGE_TOO_LARGE the producer did not split), so it is sent
/// again alone, which tells the refused record from its neighbours. False when a record failed for a
/// reason that is not permanent.
fn send_taken<S: RecordSink>(
    sink: &mut S,
    window: &mut Window,
    taken: Taken,
    dead: &DeadLetter,
    metrics: &Metrics,
    round: &mut Round,
) -> bool {
    let n = taken.records.len();
    if n == 0 {
        return true;
    }
    add(&metrics.sent, n as u64);
    let mut results = sink.send_batch(&taken.topic, &taken.records).into_iter();
    let mut settled = true;
    for (i, out) in taken.at.into_iter().zip(taken.records) {
        let e = match results.next() {
            Some(Ok(_)) => {
                round.acked += 1;
                continue;
            }
            Some(Err(e)) => e,
            None => {
                round.failure.get_or_insert_with(|| {
                    (
                        Kind::NotAcknowledged,
                        "the sink returned no result for a record".into(),
                    )
                });
                window.put_back(i, out);
                settled = false;
                continue;
            }
        };
        if let Some(rejection) = S::permanent(&e) {
            if n > 1 {
                window.send_alone(i, out);
                continue;
            }
            let spooled_ms = window.record(i).map_or(0, |r| r.timestamp_ms);
            if dead_letter(dead, metrics, &taken.topic, &out, spooled_ms, rejection, &e) {
                continue;
            }
        }
        round
            .failure
            .get_or_insert_with(|| (e.kind(), e.to_string()));
        window.put_back(i, out);
        settled = false;
    }
    settled
}

/// Write a record the broker refused for good to the dead-letter file and count it; false when the file
/// cannot be written (the record then stays pending, and is retried).
pub(super) fn dead_letter<E: ErrorKind>(
    dead: &DeadLetter,
    metrics: &Metrics,
    topic: &str,
    out: &OutRecord,
    spooled_ms: u64,
    rejection: Kind,
    e: &E,
) -> bool {
    let message = e.to_string();
    let refused = Refused {
        topic,
        key: out.key.as_deref(),
        value: &out.value,
        spooled_ms,
        kind: e.kind(),
        rejection,
        message: &message,
    };
    if let Err(io) = dead.write_record(&refused) {
        tracing::error!(error = %io, path = %dead.path().display(), "cannot write the dead-letter file; the refused record stays in the spool");
        metrics.set_error(Kind::DeadLetterIo, &io.to_string());
        return false;
    }
    metrics.count_refused(rejection);
    tracing::warn!(topic, kind = e.kind().as_str(), rejection = rejection.as_str(), error = %message, "record refused by the broker for good: dead-lettered");
    metrics.set_error(e.kind(), &message);
    true
}

#[cfg(test)]
mod tests {
    //! The sender against a scripted sink: per-record acknowledgements, retries of only what failed,
    //! order per partition, permanent refusals dead-lettered.

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
    }

    impl ErrorKind for FakeError {
        fn kind(&self) -> Kind {
            match self {
                FakeError::Down(_) => Kind::BrokerUnreachable,
                FakeError::TooLarge(_) => Kind::RecordTooLarge,
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
                FakeError::Down(_) => None,
            }
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
            log: log.clone(),
            down: vec![("a".into(), 1)],
            down_calls: 1,
            too_large: Vec::new(),
            whole_call: false,
            short_first: None,
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
            log: log.clone(),
            // Partition 0 is down on the first two calls (a retriable error: retried, not dropped);
            // record 3 (partition 1) is too large.
            down: vec![("a".into(), 0)],
            down_calls: 2,
            too_large: vec![3],
            whole_call: false,
            short_first: None,
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
            log: log.clone(),
            down: Vec::new(),
            down_calls: 0,
            too_large: vec![2],
            whole_call: true,
            short_first: None,
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
            log: log.clone(),
            down: Vec::new(),
            down_calls: 0,
            too_large: Vec::new(),
            whole_call: false,
            short_first: Some(3),
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
}
