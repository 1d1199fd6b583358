//! The producer's shared state, under its one mutex: per topic and partition the queue of
//! batches ([`PartQueue`]) with its in-flight marks and sequence numbers, the buffer counters,
//! and the idempotent producer's id ([`Idem`]). The accumulator appends to it, the sender takes
//! from it and completes, and the idempotence rules stamp and reset it; each of those imports
//! this file, none of them another for its types.
//!
//! Must not decide anything: it holds state and keeps a partition's queue in order (`requeue`,
//! `landed`); when to send, retry, or bump an epoch is decided by the others.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::ProducerStats;
use super::delivery::Outcome;
use crate::kafka::KafkaError;
use crate::kafka::record::BatchBuilder;

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
    pub(super) idem: Idem,
    /// The transactional producer's state (`transaction.rs`); unused otherwise.
    pub(super) txn: super::transaction::Txn,
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

/// Producer id state, under the producer's state lock.
#[derive(Default)]
pub(super) struct Idem {
    /// Producer id and epoch; `None` until InitProducerId answered (or after the epoch ran out).
    pub(super) producer: Option<(i64, i16)>,
    /// An InitProducerId request is out.
    pub(super) init_running: bool,
    /// Not before this time (backoff after a failed InitProducerId).
    pub(super) init_retry_at: Option<Instant>,
    /// InitProducerId failures in a row.
    pub(super) init_attempts: u32,
    /// Why the last InitProducerId failed: the error of batches that time out waiting for an id.
    pub(super) init_error: Option<KafkaError>,
    /// A transactional producer: its id comes from `transaction.rs`, and it never bumps its
    /// epoch locally.
    pub(super) transactional: bool,
}
