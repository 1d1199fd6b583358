//! The producer's shared state, under its one mutex: per topic and partition the queue of
//! batches ([`PartQueue`]) with its in-flight marks and sequence numbers ([`PartSeq`]), the buffer
//! counters, and the idempotent producer's id and pending epoch bump ([`Idem`]). The accumulator
//! appends to it, the sender takes from it and completes, and the idempotence rules stamp and
//! reset it; each of those imports this file, none of them another for its types.
//!
//! Must not decide anything: it holds state and keeps a partition's queue in order (`requeue`,
//! `landed`); when to send, retry, or bump an epoch is decided by the others.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::ProducerStats;
use super::batch_key::BatchKey;
use super::delivery::Outcome;
use super::sequence::PartSeq;
use crate::kafka::KafkaError;
use crate::kafka::record::BatchBuilder;

pub(super) struct Batch {
    pub(super) builder: BatchBuilder,
    pub(super) outcome: Arc<Outcome>,
    /// Index of this batch's first record in `outcome` (not 0 for the second part of a split).
    pub(super) first: i32,
    /// Creation order in its partition: with `first`, where a batch returning for a retry goes
    /// back in the queue (see [`Batch::key`]).
    pub(super) order: u64,
    /// The producer id, epoch and base sequence written into the batch when it was last taken
    /// (idempotent producer). The one it must carry is its partition's ([`PartSeq`]): the same
    /// across retries (that is what lets the broker drop a duplicate) unless its partition was
    /// sequenced anew.
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
    /// A batch failed for good (its key), the newest batch in flight then, and the error the
    /// ones between fail with when they come back: they must not be stored before the failed
    /// batch's records are sent again. Cleared when nothing is in flight.
    pub(super) refused: Option<(BatchKey, BatchKey, KafkaError)>,
    pub(super) retry_at: Option<Instant>,
    /// The partition's sequence numbers (idempotent producer).
    pub(super) seq: PartSeq,
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
    pub(super) txn: super::transaction::txn::Txn,
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
    /// A partition's sequences may still count for an older epoch ([`PartSeq::producer`]).
    pub(super) producer: Option<(i64, i16)>,
    /// A partition needs a new epoch: bump it before the sender takes batches again.
    pub(super) bump_required: bool,
    /// The partitions whose unfinished batches are sequenced again from 0 under the bumped
    /// epoch (Java's `partitionsToRewriteSequences`).
    pub(super) rewrite: BTreeSet<(String, i32)>,
    /// An InitProducerId request is out.
    pub(super) init_running: bool,
    /// Not before this time (backoff after a failed InitProducerId).
    pub(super) init_retry_at: Option<Instant>,
    /// InitProducerId failures in a row.
    pub(super) init_attempts: u32,
    /// Why the last InitProducerId failed: the error of batches that time out waiting for an id.
    pub(super) init_error: Option<KafkaError>,
    /// A transactional producer: its id comes from `transaction/`, and it never bumps its
    /// epoch locally.
    pub(super) transactional: bool,
    /// A transactional producer's partition sequence may have a gap (where the idempotent
    /// producer would bump its epoch): the transaction must be aborted, and the abort bumps it.
    pub(super) sequence_lost: bool,
}
