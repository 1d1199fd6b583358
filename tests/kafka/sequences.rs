//! The idempotent producer against fake brokers that keep a [`FakeLog`]: Kafka's broker-side
//! producer-state rules (a window of 5 batches for duplicates, OUT_OF_ORDER_SEQUENCE_NUMBER for a
//! gap, a new epoch only from sequence 0, an older epoch fenced), applied to the requests the
//! producer sends, so each test counts what a real broker would store. Answers a leader would hold
//! for its followers (acks=all) are held by the fake broker, with the requests behind them on the
//! connection read but not processed (a broker mutes a connection until it has answered), and
//! released by the test, so every scenario runs in the same order on every run: no test here
//! depends on timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use avro_edge::{DeliveryHandle, ErrorKind, Producer, ProducerConfig};
use avro_edge_testkit::fake_log::{
    INVALID_RECORD, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, answered_with, refusal,
};
use avro_edge_testkit::{Appended, Call, FakeBroker, FakeLog, RawBatch, Reply};

const T: &str = "t";
const X: &str = "x";
/// Kafka's CLUSTER_AUTHORIZATION_FAILED: a refusal for good that is not the record's fault.
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// How a node answers Produce requests (an `AtomicU8` per node).
const ANSWER: u8 = 0;
/// The log's answers, held back until the test releases them.
const HOLD: u8 = 1;
/// REQUEST_TIMED_OUT for every batch, held back until the test releases it: the leader appended
/// the batches, its followers never acknowledged them (what a leader with SIGSTOPped followers
/// answers, acks=all).
const HOLD_TIMED_OUT: u8 = 2;

/// A node's Produce answer from the log, as `mode[node]` says.
fn answer(log: &FakeLog, mode: &[AtomicU8], call: &Call) -> Reply {
    if call.key != 0 {
        return Reply::Honest;
    }
    let resp = log.produce(call);
    match mode
        .get(call.node as usize)
        .map(|m| m.load(Ordering::SeqCst))
    {
        Some(HOLD) => Reply::Held(call.answer(&resp)),
        Some(HOLD_TIMED_OUT) => Reply::Held(call.answer(&answered_with(resp, REQUEST_TIMED_OUT))),
        _ => Reply::Body(call.answer(&resp)),
    }
}

fn modes<const N: usize>() -> Arc<[AtomicU8; N]> {
    Arc::new(std::array::from_fn(|_| AtomicU8::new(ANSWER)))
}

/// Idempotent, one record per batch (linger 0), and timeouts no test reaches: only the fake's
/// answers decide.
fn config(bootstrap: &str) -> ProducerConfig {
    let mut cfg = ProducerConfig::new([bootstrap]);
    cfg.linger = Duration::ZERO;
    cfg.request_timeout = Duration::from_secs(120);
    cfg.delivery_timeout = Duration::from_secs(300);
    cfg
}

/// Wait (at most `limit`) until `done()`; whether it happened.
fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let end = Instant::now() + limit;
    while !done() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Wait until the log was asked to append `n` batches to `topic` (a hang guard, not a timing).
fn wait_seen(log: &FakeLog, topic: &str, n: usize) {
    assert!(
        wait_for(Duration::from_secs(60), || log.seen(topic, 0).len() >= n),
        "the fake broker never got batch {n} of {topic}: {:?}",
        log.seen(topic, 0)
    );
}

/// Wait until `broker` has received `n` Produce requests (processed or waiting behind a held
/// answer; a hang guard, not a timing).
fn wait_received(broker: &FakeBroker, n: usize) {
    assert!(
        wait_for(Duration::from_secs(60), || broker.calls(0) >= n),
        "the fake broker never received Produce request {n}"
    );
}

fn value(b: &RawBatch) -> String {
    let v = b.records[0].value.as_deref().unwrap_or_default();
    String::from_utf8_lossy(v).into_owned()
}

/// (value of the first record, epoch, base sequence) per stored batch, for the assertions and
/// the evidence printed.
fn layout(log: &FakeLog, topic: &str) -> Vec<(String, i16, i32)> {
    (log.stored(topic, 0).iter())
        .map(|b| (value(b), b.producer_epoch, b.base_sequence))
        .collect()
}

/// Every stored batch's (epoch, base sequence) above the previous one's: no batch stored again
/// under a later epoch or sequence, none out of order.
fn assert_increasing(stored: &[(String, i16, i32)]) {
    for w in stored.windows(2) {
        assert!(
            (w[0].1, w[0].2) < (w[1].1, w[1].2),
            "(epoch, sequence) not increasing in log order: {stored:?}"
        );
    }
}

fn wait_all(handles: Vec<(&str, DeliveryHandle)>) {
    for (what, h) in handles {
        h.wait().unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// Issue 15, "Why" 3. Partition t-0 has b1 (epoch 0) in flight, its answer held by the leader
/// (followers stopped); x-0, on another broker, refuses a 2 KB record for good (its
/// `max.message.bytes` is 1024), which bumps the producer's epoch. A record n1 enqueued on t-0
/// then must not go out under the new epoch while b1 is in flight on the old one: if it does
/// (epoch 1, sequence 0), the broker takes it as the start of epoch 1, and b1's retry, sequenced
/// anew behind it, is stored a second time. Each record must be stored once, and the stored
/// batches' (epoch, sequence) must increase in log order.
#[test]
fn a_bump_on_another_partition_does_not_restamp_a_batch_in_flight() {
    let log = Arc::new(FakeLog::new());
    log.max_message_bytes(X, 1024);
    let hold = modes::<2>();
    let (l, h) = (log.clone(), hold.clone());
    let nodes = FakeBroker::cluster(
        2,
        |topic| i32::from(topic == X),
        move |call| answer(&l, &h[..], call),
    )
    .unwrap();
    let p = Producer::connect(config(nodes[0].addr())).unwrap();
    p.send(T, None, b"id-0").unwrap();
    // x's metadata now: asked later, it would wait behind the held answers on node 0.
    assert_eq!(p.partitions(X).unwrap(), 1);
    hold[0].store(HOLD_TIMED_OUT, Ordering::SeqCst);
    let b1 = p.enqueue(T, None, b"id-1");
    wait_seen(&log, T, 2);
    let refused = p
        .send(X, None, &[b'x'; 2048])
        .expect_err("x-0 refuses a batch over 1024 bytes");
    assert_eq!(refused.kind().as_str(), "message-too-large", "{refused}");
    let n1 = p.enqueue(T, None, b"id-2");
    // The old producer sent n1 at once; the fixed one holds it until b1 is done. Waiting a while
    // for it only decides which of the two runs here; the assertions below hold either way.
    let n1_went_early = wait_for(Duration::from_secs(3), || nodes[0].calls(0) >= 3);
    hold[0].store(ANSWER, Ordering::SeqCst);
    nodes[0].release();
    wait_all(vec![("b1", b1), ("n1", n1)]);
    p.close().unwrap();
    let stored = layout(&log, T);
    eprintln!(
        "t-0 stored (value, epoch, base sequence): {stored:?}; n1 sent while b1 was in flight: \
         {n1_went_early}; appends asked: {:?}",
        log.seen(T, 0)
    );
    let values: Vec<&str> = stored.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(values, ["id-0", "id-1", "id-2"], "{stored:?}");
    assert_increasing(&stored);
    assert!(
        !n1_went_early,
        "n1 went out while b1 was in flight: {stored:?}"
    );
}

/// What came of a one-record batch refused with a code while two batches were behind it.
struct Behind {
    /// The refused record's error.
    refused: avro_edge::KafkaError,
    /// The two records behind it: `stored`, or their error kind.
    kinds: Vec<String>,
    /// Whether the record sent afterwards was delivered.
    after: bool,
    /// What t-0 stored.
    stored: Vec<(String, i16, i32)>,
}

/// A one-record batch refused with `code` while two batches of its partition are in flight
/// behind it (the broker refuses those as out of sequence: a gap), then one more record.
fn one_refused_two_behind(code: i16) -> Behind {
    let log = Arc::new(FakeLog::new());
    log.refuse_with(move |_, records| {
        (records.iter())
            .any(|r| r.value.as_deref() == Some(b"refused".as_slice()))
            .then_some(code)
    });
    let hold = modes::<1>();
    let (l, h) = (log.clone(), hold.clone());
    let broker = FakeBroker::start(move |call| answer(&l, &h[..], call)).unwrap();
    let p = Producer::connect(config(broker.addr())).unwrap();
    p.send(T, None, b"id-0").unwrap();
    hold[0].store(HOLD, Ordering::SeqCst);
    let refused = p.enqueue(T, None, b"refused");
    wait_seen(&log, T, 2);
    let behind: Vec<DeliveryHandle> = (1..=2)
        .map(|i| {
            let h = p.enqueue(T, None, format!("id-{i}").as_bytes());
            wait_received(&broker, 2 + i);
            h
        })
        .collect();
    // The answers as a broker gives them, in order: the refusal, then two gaps.
    hold[0].store(ANSWER, Ordering::SeqCst);
    broker.release();
    let e = refused.wait().expect_err("refused for good");
    let kinds: Vec<String> = (behind.into_iter())
        .map(|h| {
            h.wait()
                .map_or_else(|e| e.kind().as_str().to_string(), |_| "stored".into())
        })
        .collect();
    let after = p.send(T, None, b"id-3");
    p.close().unwrap();
    let stored = layout(&log, T);
    eprintln!("refused: {e}; behind it: {kinds:?}; then {after:?}; t-0 stored: {stored:?}");
    Behind {
        refused: e,
        kinds,
        after: after.is_ok(),
        stored,
    }
}

/// Issue 15, "Why" 3, second part. A one-record batch refused for good for a reason that is not
/// the record's (CLUSTER_AUTHORIZATION_FAILED: the caller keeps the record and sends it again
/// once the setup is fixed) with two batches in flight behind it: those must fail with the
/// retriable `behind-refused` (the caller sends them again after it, in order), not be sequenced
/// anew under a bumped epoch and stored ahead of it, as they were when only batches of several
/// records were guarded.
#[test]
fn a_one_record_batch_refused_for_good_guards_the_batches_behind_it() {
    let Behind {
        refused: e,
        kinds,
        after,
        stored,
    } = one_refused_two_behind(CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(e.code(), Some(CLUSTER_AUTHORIZATION_FAILED), "{e}");
    assert_eq!(kinds, ["behind-refused", "behind-refused"], "{stored:?}");
    assert!(after, "the partition goes on after the refusal");
    let values: Vec<&str> = stored.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(values, ["id-0", "id-3"], "{stored:?}");
    assert_increasing(&stored);
}

/// The same with a record refused for its own sake (INVALID_RECORD: it is dead-lettered, never
/// sent again): nothing behind it can overtake it, so the two batches behind it are sequenced
/// again under a new epoch, in order, and stored once (as Java's producer does), as is the
/// record after them.
#[test]
fn batches_behind_a_record_refused_for_its_own_sake_are_resequenced_and_stored_once() {
    let Behind {
        refused: e,
        kinds,
        after,
        stored,
    } = one_refused_two_behind(INVALID_RECORD);
    assert_eq!(e.kind().as_str(), "invalid-record", "{e}");
    assert_eq!(kinds, ["stored", "stored"], "{stored:?}");
    assert!(after, "the partition goes on after the refusal");
    let values: Vec<&str> = stored.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(values, ["id-0", "id-1", "id-2", "id-3"], "{stored:?}");
    assert_increasing(&stored);
}

/// The partition that needs a new epoch (the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER: another
/// writer took sequences of our producer id) has three batches in flight: all three are sequenced
/// again from 0 under the new epoch, in order, and each is stored once.
#[test]
fn a_partition_reset_resequences_its_batches_in_flight_in_order() {
    let log = Arc::new(FakeLog::new());
    let hold = modes::<1>();
    let (l, h) = (log.clone(), hold.clone());
    let broker = FakeBroker::start(move |call| answer(&l, &h[..], call)).unwrap();
    let p = Producer::connect(config(broker.addr())).unwrap();
    p.send(T, None, b"id-0").unwrap();
    log.lose_sequences(T, 0, 10);
    hold[0].store(HOLD, Ordering::SeqCst);
    let handles: Vec<(&str, DeliveryHandle)> = ["id-1", "id-2", "id-3"]
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let h = p.enqueue(T, None, v.as_bytes());
            if i == 0 {
                wait_seen(&log, T, 2);
            } else {
                wait_received(&broker, 2 + i);
            }
            (v, h)
        })
        .collect();
    hold[0].store(ANSWER, Ordering::SeqCst);
    broker.release();
    wait_all(handles);
    p.close().unwrap();
    let stored = layout(&log, T);
    eprintln!(
        "t-0 stored: {stored:?}; appends asked: {:?}",
        log.seen(T, 0)
    );
    let epoch = stored[0].1;
    assert_eq!(
        stored,
        [
            ("id-0".to_string(), epoch, 0),
            ("id-1".to_string(), epoch + 1, 0),
            ("id-2".to_string(), epoch + 1, 1),
            ("id-3".to_string(), epoch + 1, 2),
        ]
    );
}

/// About 8 s of NOT_ENOUGH_REPLICAS (12 answers in a row, nothing appended; the default backoff
/// doubles from 100 ms to 1 s): retries are bounded by the delivery timeout only, as in Java, so
/// the record is delivered once the ISR is back, once.
#[test]
fn not_enough_replicas_for_a_while_does_not_fail_the_batch() {
    let log = Arc::new(FakeLog::new());
    let refusals = Arc::new(AtomicUsize::new(0));
    let (l, n) = (log.clone(), refusals.clone());
    let broker = FakeBroker::start(move |call| {
        if call.key == 0 && n.fetch_add(1, Ordering::SeqCst) < 12 {
            return Reply::Body(call.answer(&refusal(call, NOT_ENOUGH_REPLICAS)));
        }
        answer(&l, &[], call)
    })
    .unwrap();
    let mut cfg = ProducerConfig::new([broker.addr()]);
    cfg.delivery_timeout = Duration::from_secs(120);
    let p = Producer::connect(cfg).unwrap();
    let started = Instant::now();
    let d = p.send(T, None, b"id-0");
    let took = started.elapsed();
    let stats = p.stats();
    p.close().unwrap();
    eprintln!(
        "{} NOT_ENOUGH_REPLICAS answers over {took:?}; {d:?}; {stats:?}",
        refusals.load(Ordering::SeqCst).min(12)
    );
    d.unwrap_or_else(|e| panic!("failed after {took:?} of NOT_ENOUGH_REPLICAS: {e}"));
    assert_eq!(layout(&log, T).len(), 1);
    assert_eq!(log.seen(T, 0), [Appended::Stored(0)]);
}

/// Kafka's NOT_LEADER_OR_FOLLOWER: refused before anything is appended (a topic just created whose
/// leader is not ready yet).
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// A partition that does not know the producer yet takes any first sequence. The first batch of a
/// new producer on t-0 (id-0, sequence 0) is refused with NOT_LEADER_OR_FOLLOWER, nothing stored,
/// its answer held while id-1 and id-2 are enqueued: sent behind it at once, they would be stored
/// first (sequences 1 and 2, accepted from an unknown producer), and id-0's retry refused
/// OUT_OF_ORDER_SEQUENCE_NUMBER until its delivery timeout (seen twice under load on a topic just
/// created: a produce run stalled at 100,096 records, then failed hundreds). The producer sends one
/// batch of a partition at a time until one is acknowledged: all three stored once, in order.
#[test]
fn a_new_producers_first_batch_refused_unstored_is_not_overtaken() {
    let log = Arc::new(FakeLog::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let (l, c) = (log.clone(), calls.clone());
    let broker = FakeBroker::start(move |call| {
        if call.key != 0 {
            return Reply::Honest;
        }
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::Held(call.answer(&refusal(call, NOT_LEADER_OR_FOLLOWER)));
        }
        Reply::Body(call.answer(&l.produce(call)))
    })
    .unwrap();
    let mut cfg = config(broker.addr());
    cfg.delivery_timeout = Duration::from_secs(10);
    let p = Producer::connect(cfg).unwrap();
    let first = p.enqueue(T, None, b"id-0");
    wait_received(&broker, 1);
    let rest: Vec<(&str, DeliveryHandle)> = ["id-1", "id-2"]
        .into_iter()
        .map(|v| (v, p.enqueue(T, None, v.as_bytes())))
        .collect();
    // Time for the batches behind to go out if the producer sent them (the old one did, here).
    std::thread::sleep(Duration::from_millis(300));
    broker.release();
    let mut handles = vec![("id-0", first)];
    handles.extend(rest);
    wait_all(handles);
    p.close().unwrap();
    let stored = layout(&log, T);
    eprintln!(
        "t-0 stored: {stored:?}; appends asked: {:?}",
        log.seen(T, 0)
    );
    let values: Vec<String> = (log.stored(T, 0).iter())
        .flat_map(|b| b.records.iter())
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, ["id-0", "id-1", "id-2"], "each once, in order");
    assert_increasing(&stored);
}
