//! The idempotent producer's rules, as Kafka's Java client has them (`TransactionManager`,
//! `RecordAccumulator.shouldStopDrainBatchesForPartition`): a producer id and epoch from
//! InitProducerId (asked of any broker, retriable errors retried with backoff), and a sequence
//! number per partition stamped into each batch when it is first taken for sending and kept
//! across its retries (so the broker drops a batch it already has instead of storing it twice).
//!
//! Each partition's sequences count for a producer id and epoch of their own ([`PartSeq`]). When a
//! partition's sequence can no longer be trusted (the broker answered OUT_OF_ORDER_SEQUENCE_NUMBER
//! for the batch it should have taken next, or UNKNOWN_PRODUCER_ID; or a batch ended without the
//! producer knowing whether it was stored, and the batches after it did not tell), the epoch is
//! bumped locally (KIP-360; a new producer id when it is exhausted) and that partition's
//! unfinished batches are sequenced again from 0 under it, in order. Every other partition moves
//! to the new epoch, at 0, with its next new batch, but only once nothing of it is in flight on
//! the old one: until then no new batch of it is taken (a new-epoch batch at sequence 0 would
//! start the broker's new epoch, and a retry of an old-epoch batch the broker had stored would be
//! stored again behind it). No new batch is taken either while a batch's fate is unresolved.
//!
//! A transactional producer gets its id and epoch from its transaction coordinator instead
//! (`transaction/`, through [`init_request`]), and never bumps its epoch locally (Java's
//! `maybeTransitionToErrorState` and `maybeResolveSequences`): where the idempotent producer
//! would bump, the transaction becomes abortable, OUT_OF_ORDER_SEQUENCE_NUMBER or
//! UNKNOWN_PRODUCER_ID for the batch the broker should take next fails that batch instead of
//! retrying it, and the abort bumps the epoch at the coordinator, after which every partition's
//! sequence starts again at 0 ([`reset_all`], Java's `resetSequenceNumbers`).
//!
//! Must not send Produce requests or complete batches: the sender does both; this module only
//! says which id, epoch and sequence a batch carries, and when it may be taken.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::Inner;
use super::sequence::Stamp;
use super::state::{Batch, Idem, PartQueue, State};
use crate::kafka::conn::Conn;
use crate::kafka::{KafkaError, Target};

/// Kafka's UNKNOWN_PRODUCER_ID: the broker has no state for the producer id on the partition.
const UNKNOWN_PRODUCER_ID: i16 = 59;

/// The stamp written into `b` when it was last taken.
fn sent(b: &Batch) -> Option<Stamp> {
    b.seq.map(|(id, epoch, base)| Stamp {
        producer: (id, epoch),
        base,
    })
}

/// Give `b`, its partition's oldest waiting batch, the producer id, epoch and base sequence it
/// carries when taken now; `false`: it must wait. A batch back for a retry carries its stamp (the
/// new one if its partition was sequenced anew). A new batch waits while there is no producer
/// id, while a batch of its partition is unresolved, and while batches of its partition are
/// unfinished on an older epoch; then its partition moves to the latest epoch, at sequence 0
/// (Java's `maybeUpdateProducerIdAndEpoch`).
pub(super) fn stamp(idem: &Idem, q: &mut PartQueue, b: &mut Batch) -> bool {
    let Some(latest) = idem.producer else {
        return false;
    };
    let key = b.key();
    let stamp = match q.seq.stamp_of(key) {
        Some(s) => s,
        None => {
            if q.seq.unresolved().is_some() {
                return false;
            }
            if q.seq.producer() != Some(latest) {
                if q.seq.has_sequenced() {
                    return false;
                }
                q.seq.start_at_beginning(latest);
            }
            match q.seq.assign(key, b.builder.len() as i32) {
                Some(s) => s,
                None => return false,
            }
        }
    };
    if sent(b) != Some(stamp) {
        b.seq = Some(stamp.header());
        b.builder.set_producer(b.seq);
        b.builder.set_transactional(idem.transactional);
    }
    true
}

/// Java's `requestEpochBumpForPartition`: `topic`/`partition` needs a new epoch, bumped (once
/// for every partition that asks until then) before the sender takes batches again.
/// A transactional producer bumps no epoch itself: its transaction must be aborted instead
/// (the abort bumps the epoch at the coordinator).
fn request_bump(idem: &mut Idem, topic: &str, partition: i32) {
    if idem.transactional {
        tracing::info!(
            topic,
            partition,
            "the partition's sequence may have a gap: the transaction must be aborted"
        );
        idem.sequence_lost = true;
        return;
    }
    idem.bump_required = true;
    idem.rewrite.insert((topic.to_string(), partition));
}

/// Before the sender takes batches: resolve the partitions whose unresolved batches are all done
/// (a possible gap in their sequences needs a new epoch), then bump the epoch if asked and
/// sequence the partitions that asked anew from 0 under it (Java's `maybeResolveSequences` and
/// `bumpIdempotentEpochAndResetIdIfNeeded`). With the epoch exhausted the producer asks for a new
/// id, and those partitions wait for it.
pub(super) fn prepare(st: &mut State) {
    for (topic, ts) in st.topics.iter_mut() {
        for (p, q) in ts.parts.iter_mut().enumerate() {
            if q.seq.resolve() == Some(false) {
                tracing::info!(topic = %topic, partition = p, "a batch of the partition failed and no later one was acknowledged: its sequence may have a gap; the partition needs a new epoch");
                request_bump(&mut st.idem, topic, p as i32);
            }
        }
    }
    let idem = &mut st.idem;
    if idem.bump_required {
        idem.bump_required = false;
        let before = idem.producer;
        idem.producer = match before {
            Some((id, epoch)) if epoch < i16::MAX => Some((id, epoch + 1)),
            _ => None,
        };
        tracing::info!(?before, after = ?idem.producer, partitions = ?idem.rewrite, "bumped the producer epoch; these partitions are sequenced again from 0");
    }
    let Some(latest) = idem.producer else {
        return;
    };
    for (topic, p) in std::mem::take(&mut idem.rewrite) {
        if let Some(q) = (st.topics.get_mut(&topic)).and_then(|ts| ts.parts.get_mut(p as usize)) {
            q.seq.start_at_beginning(latest);
        }
    }
}

/// Whether the broker's OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID (`code`) for `b`
/// shows a gap in its partition's sequence (Java's `TransactionManager.canRetry`): the broker
/// lost the producer, or `b` is the batch it should have taken next (after the last acknowledged
/// one, or right after an unresolved one). Otherwise the answer is the consequence of an earlier
/// batch's failure (that one goes again first), or `b` was sequenced anew while in flight.
pub(super) fn is_gap(q: &PartQueue, b: &Batch, code: i16) -> bool {
    let Some(sent) = sent(b) else {
        return false;
    };
    if q.seq.stamp_of(b.key()) != Some(sent) {
        return false;
    }
    code == UNKNOWN_PRODUCER_ID
        || match q.seq.unresolved() {
            None => q.seq.is_next(sent.base),
            Some(next) => sent.base == next,
        }
}

/// The broker answered OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID (`code`) for `b`,
/// which is retried: its partition needs a new epoch when the answer shows a gap ([`is_gap`]);
/// otherwise `b` is retried as it is. (A transactional producer does not retry a gap: the
/// sender fails that batch, and the transaction is aborted.)
pub(super) fn sequence_refused(
    idem: &mut Idem,
    q: &PartQueue,
    topic: &str,
    partition: i32,
    b: &Batch,
    code: i16,
) {
    if is_gap(q, b, code) {
        tracing::info!(
            topic,
            partition,
            code,
            base_sequence = ?b.seq.map(|s| s.2),
            "the broker's sequence differs from ours"
        );
        request_bump(idem, topic, partition);
    }
}

/// Whether a transactional producer's sequences may have a gap: marked lost, or a partition has a
/// batch of unknown fate not resolved yet. Its abort then bumps the epoch.
pub(super) fn sequences_unsure(st: &State) -> bool {
    st.idem.sequence_lost
        || (st.topics.values())
            .flat_map(|ts| ts.parts.iter())
            .any(|q| q.seq.unresolved().is_some())
}

/// Java's `resetSequenceNumbers`, after a transactional producer's epoch was bumped at the
/// coordinator (nothing is in flight then): every partition's sequence starts again at 0 under
/// the new epoch when its next batch is taken.
pub(super) fn reset_all(st: &mut State) {
    for q in st.topics.values_mut().flat_map(|ts| ts.parts.iter_mut()) {
        q.seq = Default::default();
    }
    st.idem.sequence_lost = false;
}

/// `b` is finished: stored (`ok`; a duplicate the broker had counts), or failed for good (its
/// partition is unresolved: it may be stored or not). A batch stored as it was sent before its
/// partition was sequenced anew leaves a gap in the new sequences: the partition needs another
/// new epoch.
pub(super) fn finished(
    idem: &mut Idem,
    q: &mut PartQueue,
    topic: &str,
    partition: i32,
    b: &Batch,
    ok: bool,
) {
    let key = b.key();
    match sent(b) {
        Some(sent) if ok => {
            let current = q.seq.stamp_of(key);
            q.seq.acked(key, sent);
            if current.is_some_and(|c| c != sent) {
                request_bump(idem, topic, partition);
            }
        }
        _ => q.seq.failed(key),
    }
}

/// Whether the sender should ask for a producer id now (none, none asked, backoff over, and
/// records waiting); marks the request as running.
pub(super) fn start_init(st: &mut State, now: Instant) -> bool {
    let idem = &st.idem;
    if idem.transactional
        || idem.producer.is_some()
        || idem.init_running
        || idem.init_retry_at.is_some_and(|t| t > now)
    {
        return false;
    }
    let waiting = st
        .topics
        .values()
        .any(|t| t.parts.iter().any(|q| !q.batches.is_empty()));
    if waiting {
        st.idem.init_running = true;
    }
    waiting
}

/// When the sender should look again for a producer id retry.
pub(super) fn init_retry_at(st: &State) -> Option<Instant> {
    (st.idem.producer.is_none() && !st.idem.init_running)
        .then_some(st.idem.init_retry_at)
        .flatten()
}

/// A transactional InitProducerId's fields: the id, the transaction timeout, and the producer id
/// and epoch to bump (KIP-360; sent from version 3 on).
pub(super) struct TxnInit<'a> {
    pub(super) id: &'a str,
    pub(super) timeout: Duration,
    pub(super) bump: Option<(i64, i16)>,
}

/// One InitProducerId on `conn`: the idempotent producer's (`txn` `None`) or a transactional
/// one's. The answer's error code is the caller's to judge.
pub(super) async fn init_request(
    conn: &Conn,
    txn: Option<TxnInit<'_>>,
) -> Result<InitProducerIdResponse, KafkaError> {
    let version = conn.version_for::<InitProducerIdRequest>()?;
    let mut req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX);
    if let Some(t) = txn {
        let ms = t.timeout.as_millis().min(i32::MAX as u128) as i32;
        req = req
            .with_transactional_id(Some(StrBytes::from_string(t.id.to_string()).into()))
            .with_transaction_timeout_ms(ms);
        if let Some((id, epoch)) = t.bump.filter(|_| version >= 3) {
            req = req
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch);
        }
    }
    conn.request_at(&req, version).await
}

async fn ask_producer_id(inner: &Inner) -> Result<(i64, i16), KafkaError> {
    let conn = inner.client.conn(&Target::Any).await?;
    let resp = init_request(&conn, None).await?;
    match KafkaError::from_code(resp.error_code, "InitProducerId") {
        Some(e) => Err(e),
        None => Ok((resp.producer_id.0, resp.producer_epoch)),
    }
}

/// Ask any broker for a producer id. A retriable failure is tried again after a backoff; any
/// other is returned: it fails the records waiting for an id (later records ask again).
pub(super) async fn init_producer_id(inner: &Inner) -> Option<KafkaError> {
    let res = ask_producer_id(inner).await;
    let cfg = &inner.cfg;
    let mut st = inner.lock();
    let idem = &mut st.idem;
    idem.init_running = false;
    match res {
        Ok(p) => {
            tracing::info!(producer_id = p.0, epoch = p.1, "idempotent producer id");
            idem.producer = Some(p);
            idem.init_attempts = 0;
            idem.init_error = None;
            None
        }
        Err(e) => {
            let backoff = crate::kafka::client::backoff(
                cfg.retry_backoff,
                cfg.retry_backoff_max,
                idem.init_attempts,
            );
            idem.init_attempts = idem.init_attempts.saturating_add(1);
            idem.init_retry_at = Some(Instant::now() + backoff);
            idem.init_error = Some(e.clone());
            tracing::warn!(error = %e, kind = crate::error::ErrorKind::kind(&e).as_str(), "InitProducerId failed");
            (!e.is_retriable()).then_some(e)
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kafka::producer::state::TopicState;
    use crate::kafka::record::BatchBuilder;

    /// A sealed batch of `records` one-byte records, created now with its deadline now.
    pub(in crate::kafka::producer) fn batch(order: u64, records: usize) -> Batch {
        let mut builder = BatchBuilder::new();
        for _ in 0..records {
            builder.append(0, None, Some(b"v"), &[]);
        }
        let now = Instant::now();
        Batch {
            builder,
            outcome: Arc::new(Default::default()),
            first: 0,
            order,
            seq: None,
            created: now,
            deadline: now,
            attempts: 0,
            stalls: 0,
            sealed: true,
            last_error: None,
        }
    }

    /// Producer id 7, epoch 0, and topics of one partition each.
    fn state(topics: &[&str]) -> State {
        let mut st = State::default();
        st.idem.producer = Some((7, 0));
        for t in topics {
            let ts = TopicState {
                parts: vec![PartQueue::default()],
                sticky: 0,
                rr: 0,
            };
            st.topics.insert(t.to_string(), ts);
        }
        st
    }

    fn take(st: &mut State, topic: &str, b: &mut Batch) -> bool {
        let q = &mut st.topics.get_mut(topic).unwrap().parts[0];
        stamp(&st.idem, q, b)
    }

    fn done(st: &mut State, topic: &str, b: &Batch, ok: bool) {
        let q = &mut st.topics.get_mut(topic).unwrap().parts[0];
        finished(&mut st.idem, q, topic, 0, b, ok);
    }

    fn out_of_order(st: &mut State, topic: &str, b: &Batch) {
        let q = &st.topics[topic].parts[0];
        sequence_refused(&mut st.idem, q, topic, 0, b, 45);
    }

    /// Java's drain rule: a partition with a batch in flight on the old epoch takes no new batch
    /// after another partition bumped the epoch; once that batch is done it moves to the new
    /// epoch at sequence 0.
    #[test]
    fn a_bump_elsewhere_waits_for_the_old_epoch_batches_in_flight() {
        let mut st = state(&["t", "x"]);
        let (mut b1, mut x1, mut n1) = (batch(0, 3), batch(0, 1), batch(1, 2));
        assert!(take(&mut st, "t", &mut b1) && take(&mut st, "x", &mut x1));
        assert_eq!((b1.seq, x1.seq), (Some((7, 0, 0)), Some((7, 0, 0))));
        // x's batch is refused for good: unresolved, then a new epoch for x.
        done(&mut st, "x", &x1, false);
        prepare(&mut st);
        assert_eq!(st.idem.producer, Some((7, 1)));
        assert!(!take(&mut st, "t", &mut n1), "n1 waits for b1");
        assert_eq!(n1.seq, None);
        // b1 is stored (its retry's answer, say): t moves to epoch 1 from 0.
        done(&mut st, "t", &b1, true);
        prepare(&mut st);
        assert!(take(&mut st, "t", &mut n1));
        assert_eq!(n1.seq, Some((7, 1, 0)));
        assert_eq!(st.idem.producer, Some((7, 1)), "no second bump");
    }

    /// A gap (OUT_OF_ORDER for the batch the broker should take next) sequences the partition's
    /// unfinished batches again from 0 under a new epoch, in order; the same answer for a batch
    /// sequenced anew since it was sent asks for nothing more.
    #[test]
    fn a_gap_resequences_the_partition_in_order() {
        let mut st = state(&["t"]);
        let mut bs: Vec<Batch> = (0..3).map(|o| batch(o, 2)).collect();
        for b in bs.iter_mut() {
            assert!(take(&mut st, "t", b));
        }
        out_of_order(&mut st, "t", &bs[0]);
        prepare(&mut st);
        assert_eq!(st.idem.producer, Some((7, 1)));
        out_of_order(&mut st, "t", &bs[1]);
        assert!(!st.idem.bump_required, "sequenced anew while in flight");
        let seqs: Vec<_> = (bs.iter_mut())
            .map(|b| {
                assert!(take(&mut st, "t", b));
                b.seq
            })
            .collect();
        assert_eq!(seqs, [Some((7, 1, 0)), Some((7, 1, 2)), Some((7, 1, 4))]);
    }

    /// A batch that failed without the producer knowing whether it was stored: no new batch of
    /// its partition until the others are done; a later batch acknowledged resolves it (it was
    /// stored), none does not (a new epoch).
    #[test]
    fn an_unresolved_batch_holds_new_batches_until_resolved() {
        let mut st = state(&["t"]);
        let (mut a, mut b, mut c) = (batch(0, 1), batch(1, 1), batch(2, 1));
        assert!(take(&mut st, "t", &mut a) && take(&mut st, "t", &mut b));
        done(&mut st, "t", &a, false);
        assert!(!take(&mut st, "t", &mut c), "unresolved");
        done(&mut st, "t", &b, true);
        prepare(&mut st);
        assert!(take(&mut st, "t", &mut c));
        assert_eq!((c.seq, st.idem.producer), (Some((7, 0, 2)), Some((7, 0))));
        let mut d = batch(3, 1);
        done(&mut st, "t", &c, false);
        prepare(&mut st);
        assert!(take(&mut st, "t", &mut d));
        assert_eq!((d.seq, st.idem.producer), (Some((7, 1, 0)), Some((7, 1))));
    }

    /// A transactional producer bumps no epoch itself: a failed batch with nothing acknowledged
    /// after it marks the transaction's sequence lost (the abort then bumps the epoch at the
    /// coordinator), and after `reset_all` the partition starts again at 0 under the new epoch.
    #[test]
    fn a_transactional_gap_aborts_instead_of_bumping() {
        let mut st = state(&["t"]);
        st.idem.transactional = true;
        let (mut a, mut b) = (batch(0, 2), batch(1, 1));
        assert!(take(&mut st, "t", &mut a));
        done(&mut st, "t", &a, false);
        assert!(sequences_unsure(&st), "unresolved");
        prepare(&mut st);
        assert_eq!(st.idem.producer, Some((7, 0)), "no local bump");
        assert!(st.idem.sequence_lost);
        st.idem.producer = Some((7, 1));
        reset_all(&mut st);
        assert!(!sequences_unsure(&st));
        assert!(take(&mut st, "t", &mut b));
        assert_eq!(b.seq, Some((7, 1, 0)));
    }
}
