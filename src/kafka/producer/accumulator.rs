//! Batching per partition: callers append records to per-partition batches (record batch v2,
//! built incrementally) under one mutex. A key picks its partition with murmur2 (as Java does);
//! records without a key go to a sticky or round-robin partition. The first record for a topic
//! reads its partition count; `buffer_memory` bounds what is buffered (back-pressure).
//!
//! Must not send anything or complete a batch: the sender (`sender.rs`) takes sealed or
//! lingered batches from here.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use super::delivery::Outcome;
use super::{Partitioner, Producer, ProducerStats};
use crate::kafka::KafkaError;
use crate::kafka::record::{BatchBuilder, partition_for_key};

/// A batch's place in its partition's order ([`Batch::key`]).
pub(super) type BatchKey = (u64, i32);

pub(super) struct Batch {
    pub(super) builder: BatchBuilder,
    pub(super) outcome: Arc<Outcome>,
    /// Index of this batch's first record in `outcome` (not 0 for the second part of a split).
    pub(super) first: i32,
    /// Creation order in its partition: with `first`, where a batch returning for a retry goes
    /// back in the queue (see [`Batch::key`]).
    pub(super) order: u64,
    /// Producer id, epoch and base sequence once the idempotent producer gave it one; kept
    /// across retries (that is what lets the broker drop a duplicate).
    pub(super) seq: Option<(i64, i16, i32)>,
    pub(super) created: Instant,
    pub(super) deadline: Instant,
    pub(super) attempts: u32,
    /// Times the batch went back unsent (no leader, leader unreachable): not counted against
    /// `retries`, only in the backoff.
    pub(super) stalls: u32,
    pub(super) sealed: bool,
    pub(super) last_error: Option<KafkaError>,
}

impl Batch {
    /// The batch's place in its partition's order (the two halves of a split share `order`).
    pub(super) fn key(&self) -> (u64, i32) {
        (self.order, self.first)
    }

    /// Complete every record of this batch with `r`.
    pub(super) fn complete(&self, r: Result<Option<i64>, KafkaError>) {
        self.outcome
            .complete(self.first, self.builder.len() as i32, r);
    }
}

#[derive(Default)]
pub(super) struct PartQueue {
    pub(super) batches: VecDeque<Batch>,
    /// Keys ([`Batch::key`]) of the batches taken for sending and not finished yet.
    pub(super) in_flight: BTreeSet<(u64, i32)>,
    /// The key of a taken batch whose request is not written yet: the next batch waits, so the
    /// partition's requests reach the broker in order.
    pub(super) writing: Option<(u64, i32)>,
    /// `order` of the partition's next new batch.
    pub(super) next_order: u64,
    /// A batch refused for good (its key), the newest batch in flight then, and the error the
    /// ones between fail with: they must not be stored before the refused batch's good records
    /// are sent again. Cleared when nothing is in flight.
    pub(super) refused: Option<(BatchKey, BatchKey, KafkaError)>,
    pub(super) retry_at: Option<Instant>,
    /// The next sequence number for a batch of this partition (idempotent producer).
    pub(super) next_seq: i32,
    /// The producer id and epoch `next_seq` counts for; another one (after an epoch bump or a
    /// new producer id) restarts the sequence at 0.
    pub(super) seq_owner: Option<(i64, i16)>,
}

pub(super) struct TopicState {
    pub(super) parts: Vec<PartQueue>,
    pub(super) sticky: i32,
    pub(super) rr: u32,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) topics: HashMap<String, TopicState>,
    /// Bytes in unfinished batches.
    pub(super) buffered: usize,
    /// Records appended and not yet completed.
    pub(super) unfinished: usize,
    pub(super) flushing: usize,
    pub(super) closed: bool,
    pub(super) in_flight_requests: usize,
    pub(super) stats: ProducerStats,
    pub(super) idem: super::idempotence::Idem,
}

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
        let batch_size = cfg.batch_size;
        let partitioner = cfg.partitioner;
        let ts = st
            .topics
            .get_mut(topic)
            .ok_or_else(|| KafkaError::UnknownTopic(topic.to_string()))?;
        let partition = choose_partition(ts, key, partitioner);
        let q = ts
            .parts
            .get_mut(partition as usize)
            .ok_or_else(|| KafkaError::Protocol(format!("partition {partition} out of range")))?;
        let mut wake = open_batch(q, size, batch_size, start, deadline);
        let b = q
            .batches
            .back_mut()
            .ok_or_else(|| KafkaError::Protocol("no open batch".into()))?;
        let before = b.builder.size();
        let index = b.builder.len() as i32;
        b.builder.append(now_ms(), key, Some(value), headers);
        let grown = b.builder.size() - before;
        if b.builder.size() >= batch_size {
            b.sealed = true;
            wake = true;
        }
        let outcome = b.outcome.clone();
        st.buffered += grown;
        st.unfinished += 1;
        st.stats.enqueued += 1;
        drop(st);
        if wake {
            self.inner.wake();
        }
        Ok((outcome, index, partition))
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
            self.inner.wake();
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
            builder: BatchBuilder::new(),
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

impl PartQueue {
    /// Put a batch back where its key says (retries return in order, before newer batches).
    pub(super) fn requeue(&mut self, b: Batch) {
        let key = b.key();
        let at = (self.batches.iter())
            .position(|q| q.key() > key)
            .unwrap_or(self.batches.len());
        self.batches.insert(at, b);
    }

    /// Whether a batch older than `key` is in flight or waiting for its retry.
    pub(super) fn has_older_than(&self, key: (u64, i32)) -> bool {
        self.in_flight.range(..key).next().is_some()
            || self.batches.front().is_some_and(|b| b.key() < key)
    }
}

/// Clear `q`'s in-flight marks for the batch with `key` (it finished or came back).
pub(super) fn landed(q: &mut PartQueue, key: (u64, i32)) {
    q.in_flight.remove(&key);
    if q.writing == Some(key) {
        q.writing = None;
    }
    if q.in_flight.is_empty() {
        q.refused = None;
    }
}
