//! The sender loop (thread `avro-edge-producer`, running a smol executor): it sends a batch when
//! it is full (`batch_size` bytes), when its `linger` has passed, or on `flush`. All ready batches
//! for one leader go in one Produce request; requests to different leaders run concurrently.
//! Retriable errors (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, timeouts, lost connections, ...)
//! are retried with exponential backoff and jitter (KIP-580) until the batch's `delivery_timeout`
//! runs out (or `retries`, unbounded by default, as in Java); metadata is refreshed when the error
//! says leaders moved. A batch that could not be sent at all (its partition has no leader, or the
//! leader does not accept a connection) goes back with the same backoff without using up
//! `retries`, until its `delivery_timeout`: it stalls alone.
//! An idempotent producer first gets its producer id, and stamps each batch with its sequence
//! when taking it (the rules, with when a partition must wait, are in `idempotence.rs`);
//! DUPLICATE_SEQUENCE_NUMBER counts as delivered, OUT_OF_ORDER_SEQUENCE_NUMBER and
//! UNKNOWN_PRODUCER_ID are retried as those rules say. MESSAGE_TOO_LARGE for a batch of several
//! records puts its two halves back in the partition (with its sequence range) instead of failing
//! it; any other error no retry can fix fails that batch's records, and the partition goes on. A
//! transactional producer sends a partition's first batch of a transaction only once the
//! partition is in the transaction (AddPartitionsToTxn, `transaction/`), names its
//! transactional id in every Produce request, and does not retry a sequence gap (the
//! transaction is aborted instead).
//!
//! Up to `max_in_flight` batches of a partition are in flight (5 for the idempotent producer, 1
//! otherwise; for the idempotent producer 1 until the broker acknowledged a batch of the
//! partition under its producer id and epoch, as a partition that does not know the producer yet
//! takes any sequence), and the next one is taken only once the previous one's request is written
//! ([`Conn::send_at`](crate::kafka::conn::Conn::send_at)): a partition's requests reach the
//! broker in order, and it answers them in order. On a retry order is kept as Java's producer
//! keeps it: a batch back for a retry goes into its partition by creation order and goes again
//! only once the batches sent before it are done.
//!
//! Must not let a batch overtake an older one of its partition. For the same reason a batch that
//! fails for good fails the batches of its partition behind it (those queued at once, those in
//! flight when they come back with an error), when the caller may send its records again: with
//! its own error when that is retriable (out of time or retries), else with the retriable
//! `behind-refused` (behind a batch of several records refused as a whole, e.g. INVALID_RECORD,
//! or behind one refused for a reason that is not its records', e.g. CLUSTER_AUTHORIZATION_FAILED or
//! INVALID_TIMESTAMP, a `setup_refusal`, one record or many): stored before the caller sends the failed batch's records again, they
//! would come first. Behind a single record refused for its own sake (`permanent_rejection`: too
//! large, invalid), which is never sent again, the partition goes on. (A batch behind a failed
//! one already written can still be stored when the broker does not check its sequence:
//! idempotence off with `max_in_flight` > 1.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::state::{Batch, Idem, PartQueue, landed};
use super::{Acks, Inner, idempotence, transaction, unsent};
use crate::kafka::{KafkaError, Target};

/// Kafka's DUPLICATE_SEQUENCE_NUMBER: the broker already stored this batch.
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;

/// One batch taken for sending.
struct Taken {
    topic: String,
    partition: i32,
    batch: Batch,
}

pub(super) async fn sender_loop(inner: Arc<Inner>, ex: Arc<smol::Executor<'static>>) {
    loop {
        let now = Instant::now();
        let ready = take_ready(&inner, now);
        inner.progress.notify_all();
        if ready.finished {
            return;
        }
        if ready.add_partitions {
            ex.spawn(transaction::add_partitions(inner.clone()))
                .detach();
        }
        if ready.init {
            let inner = inner.clone();
            ex.spawn(async move {
                if let Some(e) = idempotence::init_producer_id(&inner).await {
                    unsent::fail_unsent(&inner, &e);
                }
                inner.progress.notify_all();
                inner.wake();
            })
            .detach();
        }
        if !ready.taken.is_empty() {
            let inner2 = inner.clone();
            let ex2 = ex.clone();
            let taken = ready.taken;
            ex.spawn(async move {
                dispatch(inner2.clone(), ex2, taken).await;
                inner2.lock().in_flight_requests -= 1;
                inner2.wake();
            })
            .detach();
            continue;
        }
        let closed = inner.lock().closed;
        if closed {
            unsent::fail_unsent(&inner, &KafkaError::Closed);
        }
        let wait = ready.next_wake.saturating_duration_since(Instant::now());
        let rx = inner.wake_rx.clone();
        smol::future::or(
            async {
                let _ = rx.recv().await;
            },
            async {
                smol::Timer::after(wait).await;
            },
        )
        .await;
    }
}

/// What [`take_ready`] found.
struct Ready {
    /// Batches to send now.
    taken: Vec<Taken>,
    /// When to look again.
    next_wake: Instant,
    /// The producer is closed with nothing left to do.
    finished: bool,
    /// The idempotent producer needs a producer id: ask for one.
    init: bool,
    /// The transactional producer has partitions to add to its transaction: add them.
    add_partitions: bool,
}

/// Under the state lock: fail batches whose delivery timeout passed and take every ready one
/// (at most one per partition; an idempotent producer only once it has a producer id, each batch
/// with its sequence).
fn take_ready(inner: &Inner, now: Instant) -> Ready {
    let mut taken: Vec<Taken> = Vec::new();
    let mut expired: Vec<(Batch, usize)> = Vec::new();
    let mut next_wake = now + Duration::from_secs(1);
    let mut guard = inner.lock();
    let idempotent = inner.cfg.idempotent();
    let transactional = inner.cfg.transactional();
    let init = idempotent && idempotence::start_init(&mut guard, now);
    if let Some(at) = idempotence::init_retry_at(&guard) {
        next_wake = next_wake.min(at);
    }
    let st = &mut *guard;
    if idempotent {
        idempotence::prepare(st);
    }
    let flushing = st.flushing > 0 || st.closed;
    let linger = inner.cfg.linger;
    let max_in_flight = inner.cfg.in_flight_per_partition();
    let mut peak = 0;
    for (name, ts) in st.topics.iter_mut() {
        for (p, q) in ts.parts.iter_mut().enumerate() {
            if !has_room(q, idempotent, max_in_flight) {
                continue;
            }
            expire_due(&mut st.idem, q, name, p as i32, now, &mut expired);
            if !front_ready(q, now, linger, flushing, &mut next_wake) {
                continue;
            }
            if transactional && !transaction::may_send(&mut st.txn, name, p as i32) {
                continue;
            }
            let Some(mut b) = q.batches.pop_front() else {
                continue;
            };
            if idempotent && !idempotence::stamp(&st.idem, q, &mut b) {
                // No producer id yet, or batches of the partition on an older epoch or of
                // unknown fate still unfinished: wait (woken when those finish).
                q.batches.push_front(b);
                continue;
            }
            b.sealed = true;
            q.in_flight.insert(b.key());
            q.writing = Some(b.key());
            peak = peak.max(q.in_flight.len() as u64);
            taken.push(Taken {
                topic: name.clone(),
                partition: p as i32,
                batch: b,
            });
        }
    }
    st.stats.peak_in_flight = st.stats.peak_in_flight.max(peak);
    let add_partitions = transactional && transaction::start_add(&mut st.txn, now);
    if let Some(at) = transaction::add_retry_at(&st.txn) {
        next_wake = next_wake.min(at);
    }
    // Completed under the state lock (lock order: state, then outcome), so `flush`
    // never sees `unfinished` drop before the handles have their result.
    for (b, n) in expired.drain(..) {
        st.buffered = st.buffered.saturating_sub(b.builder.size());
        st.unfinished = st.unfinished.saturating_sub(n);
        st.stats.failed += n as u64;
        let err = (b.last_error.clone())
            .or_else(|| st.idem.init_error.clone())
            .unwrap_or(KafkaError::Timeout {
                what: "record delivery".into(),
                after: inner.cfg.delivery_timeout,
            });
        b.complete(Err(err));
    }
    if !taken.is_empty() {
        st.in_flight_requests += 1;
    }
    let finished = st.closed
        && st.in_flight_requests == 0
        && st
            .topics
            .values()
            .all(|t| (t.parts.iter()).all(|q| q.batches.is_empty() && q.in_flight.is_empty()));
    Ready {
        taken,
        next_wake,
        finished,
        init,
        add_partitions,
    }
}

/// Whether the partition may have one more batch in flight: none being written, fewer than
/// `max_in_flight` in flight, and for the idempotent producer one at a time until the broker
/// acknowledged one under the partition's producer id and epoch (see
/// `PartSeq::acknowledged_any`).
fn has_room(q: &PartQueue, idempotent: bool, max_in_flight: usize) -> bool {
    let limit = if idempotent && !q.seq.acknowledged_any() {
        1
    } else {
        max_in_flight
    };
    q.writing.is_none() && q.in_flight.len() < limit
}

/// With nothing of the partition in flight, fail its oldest batch when its delivery timeout
/// passed, and with it every batch queued behind it: appended later, they would be stored ahead
/// of the expired records when the caller sends those again (the rule for a batch that fails for
/// good, see the module doc).
fn expire_due(
    idem: &mut Idem,
    q: &mut PartQueue,
    topic: &str,
    partition: i32,
    now: Instant,
    expired: &mut Vec<(Batch, usize)>,
) {
    if !q.in_flight.is_empty() || q.batches.front().is_none_or(|b| b.deadline > now) {
        return;
    }
    let due: Vec<Batch> = q.batches.drain(..).collect();
    for b in due {
        // Sequenced and sent before, it may be stored or not: unresolved.
        idempotence::finished(idem, q, topic, partition, &b, false);
        let n = b.builder.len();
        expired.push((b, n));
    }
}

/// Whether the partition's oldest batch may go now: not a retry while batches sent before it are
/// in flight (they come back too and go again behind it, in order), its retry backoff over, and
/// sealed, lingered long enough, flushed or followed by another batch. Lowers `next_wake` to when
/// it may.
fn front_ready(
    q: &mut PartQueue,
    now: Instant,
    linger: Duration,
    flushing: bool,
    next_wake: &mut Instant,
) -> bool {
    let Some(front) = q.batches.front() else {
        return false;
    };
    if front.last_error.is_some() && !q.in_flight.is_empty() {
        return false;
    }
    *next_wake = (*next_wake).min(front.deadline);
    if let Some(at) = q.retry_at {
        if at > now {
            *next_wake = (*next_wake).min(at);
            return false;
        }
        q.retry_at = None;
    }
    let ready_at = front.created + linger;
    let ready = front.sealed || flushing || ready_at <= now || q.batches.len() > 1;
    if !ready {
        *next_wake = (*next_wake).min(ready_at);
    }
    ready
}

/// Fail every batch queued in `topic`/`partition` with `e` (their records were appended before the
/// batch ahead of them failed for good).
fn fail_queued_behind(inner: &Inner, topic: &str, partition: i32, e: &KafkaError) {
    {
        let mut st = inner.lock();
        let queued: Vec<_> =
            match (st.topics.get_mut(topic)).and_then(|ts| ts.parts.get_mut(partition as usize)) {
                Some(q) => {
                    let queued: Vec<_> = q.batches.drain(..).collect();
                    queued.iter().for_each(|b| q.seq.failed(b.key()));
                    queued
                }
                None => return,
            };
        if !queued.is_empty() {
            let records: usize = queued.iter().map(|b| b.builder.len()).sum();
            tracing::debug!(topic = %topic, partition, records, "failing the batches queued behind a failed one");
        }
        for b in queued {
            st.buffered = st.buffered.saturating_sub(b.builder.size());
            st.unfinished = st.unfinished.saturating_sub(b.builder.len());
            st.stats.failed += b.builder.len() as u64;
            b.complete(Err(e.clone()));
        }
    }
    inner.progress.notify_all();
}

/// Partitions added to a topic since we first saw it become usable for later records.
fn grow_partitions(inner: &Inner, topic: &str, n: usize) {
    let mut st = inner.lock();
    if let Some(ts) = st.topics.get_mut(topic)
        && ts.parts.len() < n
    {
        tracing::info!(
            topic,
            from = ts.parts.len(),
            to = n,
            "topic has more partitions"
        );
        ts.parts.resize_with(n, PartQueue::default);
    }
}

/// The request carrying these batches is written (or failed to be): their partitions may send
/// their next batch.
fn written(inner: &Inner, batches: &[Taken]) {
    {
        let mut st = inner.lock();
        for t in batches {
            if let Some(q) =
                (st.topics.get_mut(&t.topic)).and_then(|ts| ts.parts.get_mut(t.partition as usize))
                && q.writing == Some(t.batch.key())
            {
                q.writing = None;
            }
        }
    }
    inner.wake();
}

/// Group taken batches by leader and send one Produce request per leader, concurrently.
async fn dispatch(inner: Arc<Inner>, ex: Arc<smol::Executor<'static>>, taken: Vec<Taken>) {
    let mut by_leader: HashMap<i32, Vec<Taken>> = HashMap::new();
    for t in taken {
        let deadline = t.batch.deadline;
        let meta = match inner.client.topic(&t.topic, deadline).await {
            Ok(meta) => meta,
            Err(e) => {
                finish_unsent(&inner, t, e);
                continue;
            }
        };
        grow_partitions(&inner, &t.topic, meta.partitions.len());
        match meta.leader(t.partition) {
            Some(l) => by_leader.entry(l).or_default().push(t),
            None => {
                inner.client.invalidate(&t.topic);
                let e = KafkaError::Kafka {
                    code: 5,
                    name: "LeaderNotAvailable".into(),
                    context: format!("no leader known for {}-{}", t.topic, t.partition),
                };
                // This partition stalls (with backoff) until a leader appears; others go on.
                finish_unsent(&inner, t, e);
            }
        }
    }
    let tasks: Vec<_> = by_leader
        .into_iter()
        .map(|(leader, batches)| ex.spawn(produce_to(inner.clone(), leader, batches)))
        .collect();
    for t in tasks {
        t.await;
    }
}

/// One Produce request to `leader` for its batches; every batch ends in [`finish`].
async fn produce_to(inner: Arc<Inner>, leader: i32, batches: Vec<Taken>) {
    let cfg = &inner.cfg;
    let (topics, ok) = encode_batches(&inner, batches);
    if ok.is_empty() {
        return;
    }
    let deadline = ok
        .iter()
        .map(|t| t.batch.deadline)
        .min()
        .unwrap_or_else(Instant::now);
    let req = ProduceRequest::default()
        .with_transactional_id(transaction::produce_id(cfg))
        .with_acks(cfg.acks.wire())
        .with_timeout_ms(cfg.request_timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(topics);
    // One connect attempt, not reconnects until the batch deadline: a leader that does not
    // answer may be dead, and the metadata refresh finds its successor (Kafka moves leadership
    // within its broker session timeout).
    let conn = match inner
        .client
        .conn_once(&Target::Node(leader), deadline)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(leader, error = %e, "leader unreachable; refreshing metadata");
            for t in ok {
                inner.client.invalidate(&t.topic);
                finish_unsent(&inner, t, e.clone());
            }
            return;
        }
    };
    let version = match conn.version_for::<ProduceRequest>() {
        Ok(v) => transaction::produce_version(cfg, v),
        Err(e) => {
            for t in ok {
                finish(&inner, t, Err(e.clone()));
            }
            return;
        }
    };
    if cfg.acks == Acks::None {
        let r = conn.send_no_response(&req, version).await;
        for t in ok {
            finish(&inner, t, r.clone().map(|_| None));
        }
        return;
    }
    // The next batch of these partitions is written only after this request is.
    let sent = conn.send_at(&req, version).await;
    written(&inner, &ok);
    let res = match sent {
        Ok(sent) => sent.response(&conn).await,
        Err(e) => Err(e),
    };
    match res {
        Err(e) => {
            // A timeout: the leader may be hung (its sockets open; the reconnect's handshake
            // will tell), or waiting for a hung follower; the metadata refresh finds a new
            // leader once the controller fences a hung broker. (A produce timeout alone does
            // not make a broker suspect: with acks=all it may be another broker's fault.)
            for t in ok {
                if matches!(e, KafkaError::Timeout { .. }) {
                    inner.client.invalidate(&t.topic);
                }
                finish(&inner, t, Err(e.clone()));
            }
        }
        Ok(resp) => complete_from_response(&inner, ok, &resp),
    }
}

/// Finish (compress) each batch into the request's topic data; a batch that fails to encode
/// is finished with the error. Returns the topic data and the batches in it.
fn encode_batches(inner: &Inner, batches: Vec<Taken>) -> (Vec<TopicProduceData>, Vec<Taken>) {
    let cfg = &inner.cfg;
    let mut topics: Vec<TopicProduceData> = Vec::new();
    let mut ok: Vec<Taken> = Vec::with_capacity(batches.len());
    for t in batches {
        match t.batch.builder.finish(cfg.compression) {
            Ok(bytes) => {
                let pd = PartitionProduceData::default()
                    .with_index(t.partition)
                    .with_records(Some(Bytes::from(bytes)));
                match topics.iter_mut().find(|d| d.name.0.as_str() == t.topic) {
                    Some(d) => d.partition_data.push(pd),
                    None => topics.push(
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(t.topic.clone())))
                            .with_partition_data(vec![pd]),
                    ),
                }
                ok.push(t);
            }
            Err(e) => finish(inner, t, Err(e)),
        }
    }
    (topics, ok)
}

/// Each batch's partition answer: its base offset, or its error code.
fn complete_from_response(inner: &Inner, ok: Vec<Taken>, resp: &ProduceResponse) {
    for t in ok {
        let pr = resp
            .responses
            .iter()
            .filter(|r| r.name.0.as_str() == t.topic)
            .flat_map(|r| r.partition_responses.iter())
            .find(|p| p.index == t.partition);
        let res = match pr {
            None => Err(KafkaError::Protocol(format!(
                "no produce response for {}-{}",
                t.topic, t.partition
            ))),
            // The broker has this batch already (a retry of one it stored): delivered.
            Some(p) if p.error_code == DUPLICATE_SEQUENCE_NUMBER => {
                tracing::debug!(topic = %t.topic, partition = t.partition, "duplicate batch dropped by the broker");
                Ok((p.base_offset >= 0).then_some(p.base_offset))
            }
            Some(p) if p.error_code != 0 => {
                // The first record error says what the broker checked (e.g. the timestamp range
                // INVALID_TIMESTAMP was judged by, which `refused_timestamp` reads).
                let record_error = (p.record_errors.first())
                    .and_then(|r| r.batch_index_error_message.as_ref())
                    .map(|m| format!("; {}", m.as_str()));
                let msg = p
                    .error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default()
                    + record_error.as_deref().unwrap_or("");
                Err(KafkaError::from_code(
                    p.error_code,
                    format!("produce {}-{} {msg}", t.topic, t.partition),
                )
                .unwrap_or_else(|| {
                    KafkaError::Protocol("error code 0 reported as an error".into())
                }))
            }
            Some(p) => Ok(Some(p.base_offset)),
        };
        finish(inner, t, res);
    }
}

/// Complete a batch, or put it back at the front of its partition for a retry.
fn finish(inner: &Inner, t: Taken, res: Result<Option<i64>, KafkaError>) {
    finish_as(inner, t, res, true)
}

/// A batch that was never written (no leader known, leader unreachable): retried with backoff
/// until its delivery deadline, without using up `retries` (nothing was sent twice).
fn finish_unsent(inner: &Inner, t: Taken, e: KafkaError) {
    finish_as(inner, t, Err(e), false)
}

fn finish_as(inner: &Inner, t: Taken, mut res: Result<Option<i64>, KafkaError>, sent: bool) {
    let Taken {
        topic,
        partition,
        mut batch,
    } = t;
    let key = batch.key();
    if let Err(e) = &res {
        if e.needs_metadata_refresh() {
            inner.client.invalidate(&topic);
        }
        if too_large(e) && batch.builder.len() > 1 {
            split(inner, &topic, partition, batch);
            return;
        }
        if let Some(behind) = behind_refused(inner, &topic, partition, key) {
            res = Err(behind);
        } else {
            batch = match retry(inner, &topic, partition, batch, e, sent) {
                None => return,
                Some(b) => b,
            };
            // The caller has every record's result: it reports them (once per cause, not per batch).
            tracing::debug!(topic = %topic, partition, records = batch.builder.len(), error = %e, kind = crate::error::ErrorKind::kind(e).as_str(), "batch failed");
            // Its records go back to the caller, to be sent again: nothing of the partition
            // sent after them may be stored before them. (Not a single record refused for its
            // own sake: that one is never sent again, and the partition goes on.)
            if batch.builder.len() > 1 || e.permanent_rejection().is_none() {
                guard_behind(inner, &topic, partition, key, e);
            }
        }
    }
    let n = batch.builder.len();
    let size = batch.builder.size();
    let ok = res.is_ok();
    // Counters before the outcome (a caller woken by it sees them); `unfinished` after it (so
    // when `flush` returns, every handle already has its result).
    {
        let mut st = inner.lock();
        if ok {
            st.stats.acked += n as u64;
        } else {
            st.stats.failed += n as u64;
        }
    }
    batch.complete(res);
    {
        let mut st = inner.lock();
        let st = &mut *st;
        if let Some(q) = st
            .topics
            .get_mut(&topic)
            .and_then(|ts| ts.parts.get_mut(partition as usize))
        {
            landed(q, key);
            idempotence::finished(&mut st.idem, q, &topic, partition, &batch, ok);
        }
        st.buffered = st.buffered.saturating_sub(size);
        st.unfinished = st.unfinished.saturating_sub(n);
    }
    inner.progress.notify_all();
    inner.wake();
}

/// A batch of `topic`/`partition` with `key`, in flight when an older one was refused for good:
/// the error it fails with instead of a retry.
fn behind_refused(
    inner: &Inner,
    topic: &str,
    partition: i32,
    key: (u64, i32),
) -> Option<KafkaError> {
    let st = inner.lock();
    let q = (st.topics.get(topic)).and_then(|ts| ts.parts.get(partition as usize))?;
    match &q.refused {
        Some((from, upto, e)) if *from < key && key <= *upto => Some(e.clone()),
        _ => None,
    }
}

/// The batch with `key` failed for good with `e` and its records go back to the caller, to be
/// sent again: the batches queued behind it fail now, and those in flight behind it when they
/// come back with an error (one written already may still be stored: with several in flight and
/// idempotence off nothing can stop it; with idempotence the broker refuses it as out of
/// sequence). A retriable `e` (out of time or retries) is their error too; a refusal for good
/// gives them `behind-refused`, a retriable kind: the caller sends them again in order.
fn guard_behind(inner: &Inner, topic: &str, partition: i32, key: (u64, i32), e: &KafkaError) {
    let err = if e.is_retriable() {
        e.clone()
    } else {
        KafkaError::BehindRefused {
            topic: topic.to_string(),
            partition,
            cause: e
                .permanent_rejection()
                .unwrap_or_else(|| crate::error::ErrorKind::kind(e)),
        }
    };
    {
        let mut st = inner.lock();
        if let Some(q) =
            (st.topics.get_mut(topic)).and_then(|ts| ts.parts.get_mut(partition as usize))
            && let Some(upto) = q.in_flight.last().copied().filter(|u| *u > key)
        {
            q.refused = Some((key, upto, err.clone()));
        }
    }
    fail_queued_behind(inner, topic, partition, &err);
}

/// Put a failed batch back in its partition, in order, when the error allows a retry (retries
/// are bounded by `retries` and the batch's delivery timeout); gives the batch back when it fails
/// for good.
///
/// OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID for a sequenced batch are retried too,
/// without using up `retries`: the idempotence rules say whether its partition needs a new epoch
/// (then its batches are sequenced again from 0) or the answer is the consequence of an older
/// batch's failure (retried behind it).
/// Whether OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID (`code`) for `batch` shows a gap in
/// its partition's sequence (`idempotence::is_gap`).
fn sequence_gap(inner: &Inner, topic: &str, partition: i32, batch: &Batch, code: i16) -> bool {
    let st = inner.lock();
    (st.topics.get(topic))
        .and_then(|ts| ts.parts.get(partition as usize))
        .is_some_and(|q| idempotence::is_gap(q, batch, code))
}

fn retry(
    inner: &Inner,
    topic: &str,
    partition: i32,
    mut batch: Batch,
    e: &KafkaError,
    sent: bool,
) -> Option<Batch> {
    let cfg = &inner.cfg;
    let key = batch.key();
    let sequence = (e.code())
        .filter(|c| matches!(c, 45 | 59))
        .filter(|_| batch.seq.is_some())
        .filter(|&code| {
            !(cfg.transactional() && sequence_gap(inner, topic, partition, &batch, code))
        });
    let counted = sent && sequence.is_none();
    let backoff = crate::kafka::client::backoff(
        cfg.retry_backoff,
        cfg.retry_backoff_max,
        batch.attempts + batch.stalls,
    );
    let retry = (e.is_retriable() || sequence.is_some())
        && (!counted || batch.attempts < cfg.retries)
        && Instant::now() + backoff < batch.deadline;
    if !retry {
        return Some(batch);
    }
    tracing::debug!(topic = %topic, partition, attempts = batch.attempts, stalls = batch.stalls, sent, error = %e, "retrying batch");
    inner.retries.note(e);
    if counted {
        batch.attempts += 1;
    } else {
        batch.stalls += 1;
    }
    batch.last_error = Some(e.clone());
    let mut st = inner.lock();
    st.stats.retried_batches += 1;
    let st = &mut *st;
    let Some(q) = (st.topics.get_mut(topic)).and_then(|ts| ts.parts.get_mut(partition as usize))
    else {
        // The partition is unknown to us (cannot happen: topics are never dropped).
        return Some(batch);
    };
    landed(q, key);
    if let Some(code) = sequence {
        idempotence::sequence_refused(&mut st.idem, q, topic, partition, &batch, code);
    }
    q.requeue(batch);
    q.retry_at = Some(Instant::now() + backoff);
    inner.wake();
    None
}

/// MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE: the batch (or one of its records) is over the
/// broker's or the topic's limit.
fn too_large(e: &KafkaError) -> bool {
    matches!(e.code(), Some(10 | 18))
}

/// A batch of several records the broker refused as too large: split it in two halves that go
/// back to the front of the partition, in order, to be sent (and sequenced) again. Repeated, only
/// a single record that is too large on its own fails.
fn split(inner: &Inner, topic: &str, partition: i32, mut batch: Batch) {
    let n = batch.builder.len();
    let tail = batch.builder.split_off(n / 2);
    tracing::info!(
        topic,
        partition,
        records = n,
        "batch too large for the broker; splitting it"
    );
    let mut st = inner.lock();
    let Some(q) = st
        .topics
        .get_mut(topic)
        .and_then(|ts| ts.parts.get_mut(partition as usize))
    else {
        return;
    };
    landed(q, batch.key());
    let second = Batch {
        builder: tail,
        outcome: batch.outcome.clone(),
        first: batch.first + (n / 2) as i32,
        order: batch.order,
        seq: None,
        created: batch.created,
        deadline: batch.deadline,
        attempts: batch.attempts,
        stalls: batch.stalls,
        sealed: true,
        last_error: batch.last_error.clone(),
    };
    // Both halves are sequenced when taken, in the range the batch had (split_off cleared it).
    q.seq.split(batch.key(), (n / 2) as i32, second.key());
    batch.seq = None;
    q.requeue(second);
    q.requeue(batch);
    drop(st);
    inner.wake();
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;
