//! Batching per partition: callers append records to per-partition batches (record batch v2,
//! built incrementally) under one mutex. A key picks its partition with murmur2 (as Java does);
//! records without a key go to a sticky or round-robin partition. The first record for a topic
//! reads its partition count; `buffer_memory` bounds what is buffered (back-pressure).
//!
//! Must not send anything or complete a batch: the sender (`sender.rs`) takes sealed or
//! lingered batches from here.

use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use super::delivery::{DeliveryHandle, Outcome};
use super::state::{Batch, PartQueue, State, TopicState};
use super::{Partitioner, Producer, ProducerConfig};
use crate::kafka::KafkaError;
use crate::kafka::record::{BatchBuilder, partition_for_key};

/// The record timestamp (CreateTime): the time the record joins a batch, from the crate's one clock
/// (which tests can fake, see `crate::clock`).
fn now_ms() -> i64 {
    i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX)
}

impl Producer {
    /// Append one record to the open batch of its partition; returns the batch's outcome, the
    /// record's index in the batch and the partition.
    pub(super) fn append(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> Result<(Arc<Outcome>, i32, i32), KafkaError> {
        let cfg = &self.inner.cfg;
        let size = BatchBuilder::record_size(key, value, headers);
        if size > cfg.max_record_size {
            return Err(KafkaError::RecordTooLarge {
                size,
                limit: cfg.max_record_size,
            });
        }
        let start = Instant::now();
        let deadline = start + cfg.delivery_timeout;
        let st = self.inner.lock();
        if st.closed {
            return Err(KafkaError::Closed);
        }
        let st = self.known_topic(st, topic)?;
        let mut st = self.wait_for_room(st, size, deadline)?;
        if st.closed {
            return Err(KafkaError::Closed);
        }
        let State {
            topics,
            buffered,
            unfinished,
            stats,
            ..
        } = &mut *st;
        let ts = topics
            .get_mut(topic)
            .ok_or_else(|| KafkaError::UnknownTopic(topic.to_string()))?;
        let at = Stamp {
            start,
            deadline,
            ms: now_ms(),
        };
        let rec = (key, value, headers, size);
        let (put, wake) = put_record(ts, cfg, rec, &at)?;
        *buffered += put.grown;
        *unfinished += 1;
        stats.enqueued += 1;
        drop(st);
        if wake {
            self.inner.wake();
        }
        Ok((put.outcome, put.index, put.partition))
    }

    /// [`Producer::append`] for many records of one topic under one lock, one topic lookup and one
    /// clock read (they share a timestamp); a handle per record goes onto `out`, in order. A record
    /// that must wait or fail (a topic not known yet, a full buffer, too large, closed) goes
    /// through [`Producer::append`] on its own, with the lock released.
    pub(super) fn append_many(
        &self,
        topic: &str,
        records: &[(Option<&[u8]>, &[u8])],
        out: &mut Vec<DeliveryHandle>,
    ) {
        let mut i = 0;
        while i < records.len() {
            let no_headers = |j: usize| records.get(j).map(|&(k, v)| (k, v, &[][..]));
            i = self.append_run(topic, i, no_headers, out);
            if let Some(&(key, value)) = records.get(i) {
                out.push(self.enqueue(topic, key, value));
                i += 1;
            }
        }
    }

    /// Append records `rec(from)`, `rec(from + 1)`, ... (key, value, headers) of one topic under one
    /// lock, one topic lookup and one clock read, while each can go in without waiting or failing
    /// (see [`Producer::append_many`]); a handle per record onto `out`, in order. Returns the index
    /// of the first record not appended, which the caller sends through [`Producer::append`].
    pub(super) fn append_run<'r>(
        &self,
        topic: &str,
        from: usize,
        rec: impl Fn(usize) -> Option<Parts<'r>>,
        out: &mut Vec<DeliveryHandle>,
    ) -> usize {
        let cfg = &self.inner.cfg;
        let start = Instant::now();
        let at = Stamp {
            start,
            deadline: start + cfg.delivery_timeout,
            ms: now_ms(),
        };
        let mut i = from;
        let mut wake = false;
        let mut st = self.inner.lock();
        let State {
            topics,
            buffered,
            unfinished,
            stats,
            closed,
            ..
        } = &mut *st;
        if !*closed && let Some(ts) = topics.get_mut(topic) {
            while let Some((key, value, headers)) = rec(i) {
                let size = BatchBuilder::record_size(key, value, headers);
                let room = *buffered + size <= cfg.buffer_memory || *buffered == 0;
                if size > cfg.max_record_size || !room {
                    break;
                }
                let Ok((put, w)) = put_record(ts, cfg, (key, value, headers, size), &at) else {
                    break;
                };
                wake |= w;
                *buffered += put.grown;
                *unfinished += 1;
                stats.enqueued += 1;
                out.push(DeliveryHandle {
                    outcome: Ok((put.outcome, put.index)),
                    partition: put.partition,
                });
                i += 1;
            }
        }
        drop(st);
        if wake {
            self.inner.wake();
        }
        i
    }

    /// The first record for a topic reads its partition count (outside the lock).
    fn known_topic<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        topic: &str,
    ) -> Result<MutexGuard<'a, State>, KafkaError> {
        if st.topics.contains_key(topic) {
            return Ok(st);
        }
        drop(st);
        let n = self.partitions(topic)?;
        if n <= 0 {
            return Err(KafkaError::UnknownTopic(topic.to_string()));
        }
        let mut st = self.inner.lock();
        st.topics
            .entry(topic.to_string())
            .or_insert_with(|| TopicState {
                parts: (0..n).map(|_| PartQueue::default()).collect(),
                sticky: fastrand::i32(0..n),
                rr: fastrand::u32(..),
            });
        Ok(st)
    }

    /// Back-pressure: wait for room.
    fn wait_for_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        size: usize,
        deadline: Instant,
    ) -> Result<MutexGuard<'a, State>, KafkaError> {
        let cfg = &self.inner.cfg;
        let mut woken = false;
        while st.buffered + size > cfg.buffer_memory && st.buffered > 0 {
            if st.closed {
                return Err(KafkaError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KafkaError::Timeout {
                    what: "waiting for producer buffer space".into(),
                    after: cfg.delivery_timeout,
                });
            }
            // Once: the sender notifies `progress` on every turn of its loop, and a wake per
            // notification kept both threads switching while the buffer stayed full.
            if !woken {
                self.inner.wake();
                woken = true;
            }
            st = self
                .inner
                .progress
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(st)
    }
}

/// When records join their batches: the time for new batches' delivery deadline and the
/// record timestamp (CreateTime, ms).
struct Stamp {
    start: Instant,
    deadline: Instant,
    ms: i64,
}

/// Where [`put_record`] put a record: its batch's outcome, its index there, its partition, and
/// the bytes the batch grew by.
struct Put {
    outcome: Arc<Outcome>,
    index: i32,
    partition: i32,
    grown: usize,
}

/// A record: key, value, headers and its [`BatchBuilder::record_size`].
type Rec<'r> = (Option<&'r [u8]>, &'r [u8], &'r [(String, Vec<u8>)], usize);

/// A record as [`Producer::append_run`] is handed it: key, value and headers.
pub(super) type Parts<'r> = (Option<&'r [u8]>, &'r [u8], &'r [(String, Vec<u8>)]);

/// Append one record to the open batch of its partition (opening one if needed); also whether
/// the sender should wake up (a batch opened or sealed).
fn put_record(
    ts: &mut TopicState,
    cfg: &ProducerConfig,
    (key, value, headers, size): Rec<'_>,
    at: &Stamp,
) -> Result<(Put, bool), KafkaError> {
    let batch_size = cfg.batch_size;
    let partition = choose_partition(ts, key, cfg.partitioner);
    let q = ts
        .parts
        .get_mut(partition as usize)
        .ok_or_else(|| KafkaError::Protocol(format!("partition {partition} out of range")))?;
    let mut wake = open_batch(q, size, batch_size, at.start, at.deadline);
    let b = q
        .batches
        .back_mut()
        .ok_or_else(|| KafkaError::Protocol("no open batch".into()))?;
    let before = b.builder.size();
    let index = b.builder.len() as i32;
    b.builder.append(at.ms, key, Some(value), headers);
    let grown = b.builder.size() - before;
    if b.builder.size() >= batch_size {
        b.sealed = true;
        wake = true;
    }
    let put = Put {
        outcome: b.outcome.clone(),
        index,
        partition,
        grown,
    };
    Ok((put, wake))
}

/// The partition for a record: murmur2 of the key, else the partitioner's choice.
fn choose_partition(ts: &mut TopicState, key: Option<&[u8]>, partitioner: Partitioner) -> i32 {
    let n = ts.parts.len() as i32;
    match key {
        Some(k) => partition_for_key(k, n),
        None => match partitioner {
            Partitioner::RoundRobin => {
                ts.rr = ts.rr.wrapping_add(1);
                (ts.rr % n as u32) as i32
            }
            Partitioner::Sticky => {
                let open = ts
                    .parts
                    .get(ts.sticky as usize)
                    .and_then(|q| q.batches.back())
                    .is_some_and(|b| !b.sealed);
                if !open && n > 1 {
                    let next = fastrand::i32(0..n - 1);
                    ts.sticky = if next >= ts.sticky { next + 1 } else { next };
                }
                ts.sticky
            }
        },
    }
}

/// Start a new batch when the last one is sealed or `size` more bytes would overflow it (sealing
/// the old one); returns whether the sender should wake up.
fn open_batch(
    q: &mut PartQueue,
    size: usize,
    batch_size: usize,
    start: Instant,
    deadline: Instant,
) -> bool {
    let need_new = match q.batches.back() {
        Some(b) => b.sealed || (b.builder.size() + size > batch_size && !b.builder.is_empty()),
        None => true,
    };
    if need_new {
        if let Some(b) = q.batches.back_mut() {
            b.sealed = true;
        }
        q.batches.push_back(Batch {
            // Room for a full batch up front: records are appended in place, never moved (the
            // doubling of a growing buffer copied each byte once more; pages not written to
            // take no memory).
            builder: BatchBuilder::with_capacity(batch_size),
            outcome: Arc::new(Outcome::default()),
            first: 0,
            order: q.next_order,
            seq: None,
            created: start,
            deadline,
            attempts: 0,
            stalls: 0,
            sealed: false,
            last_error: None,
        });
        q.next_order += 1;
    }
    need_new
}
