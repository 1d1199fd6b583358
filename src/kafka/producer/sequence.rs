//! One partition's sequence numbers, kept as Java's `TxnPartitionEntry` keeps them for the
//! idempotent and the transactional producer alike ([`PartSeq`]): the producer id and epoch the
//! partition's sequences count for (not always the producer's latest: a partition moves to a new
//! epoch only once nothing of it is in flight on the old one), the next sequence, the stamp of
//! every sequenced batch not finished yet (in flight or back for a retry; by batch key, and key
//! order is sequence order), the last sequence the broker acknowledged, and whether a batch ended
//! without the producer knowing if the broker stored it.
//!
//! Must not decide anything: when a batch is stamped, when a partition restarts at sequence 0 and
//! when an epoch is bumped is said by `idempotence.rs`; this file keeps the numbers consistent.

use std::collections::BTreeMap;

use super::batch_key::BatchKey;

/// Producer id, epoch and base sequence a batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) producer: (i64, i16),
    pub(super) base: i32,
}

impl Stamp {
    /// As the record batch header takes it.
    pub(super) fn header(self) -> (i64, i16, i32) {
        (self.producer.0, self.producer.1, self.base)
    }
}

/// Java's `DefaultRecordBatch.incrementSequence`: sequences wrap to 0 after `i32::MAX`.
pub(super) fn incremented(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// A partition's sequence state (see the module doc).
#[derive(Debug, Default)]
pub(super) struct PartSeq {
    /// The producer id and epoch this partition's sequences count for.
    producer: Option<(i64, i16)>,
    /// The base sequence of the partition's next new batch.
    next: i32,
    /// Every sequenced batch not finished: its stamp and record count.
    sequenced: BTreeMap<BatchKey, (Stamp, i32)>,
    /// The last sequence the broker acknowledged under `producer`.
    last_acked: Option<i32>,
    /// A sequenced batch failed without the producer knowing whether it was stored: the
    /// sequence after it. No new batch is stamped until this is resolved.
    unresolved: Option<i32>,
}

impl PartSeq {
    /// The producer id and epoch the partition's sequences count for.
    pub(super) fn producer(&self) -> Option<(i64, i16)> {
        self.producer
    }

    /// The stamp of the batch with `key`, if it is sequenced and not finished.
    pub(super) fn stamp_of(&self, key: BatchKey) -> Option<Stamp> {
        self.sequenced.get(&key).map(|(s, _)| *s)
    }

    /// Whether a sequenced batch is not finished (in flight or waiting for its retry).
    pub(super) fn has_sequenced(&self) -> bool {
        !self.sequenced.is_empty()
    }

    /// Whether the broker acknowledged a batch of the partition under its current producer id
    /// and epoch. Until then the broker may not know the producer on the partition, and a
    /// partition that does not know it takes any first sequence (`ProducerAppendInfo.
    /// checkSequence`): a batch sent behind one that is refused without being stored (e.g.
    /// NOT_LEADER_OR_FOLLOWER on a topic just created) would be stored ahead of it, and the
    /// refused batch's retry would then be OUT_OF_ORDER until its delivery timeout.
    pub(super) fn acknowledged_any(&self) -> bool {
        self.last_acked.is_some()
    }

    /// The sequence after a batch whose fate is unknown, while that is not resolved.
    pub(super) fn unresolved(&self) -> Option<i32> {
        self.unresolved
    }

    /// Sequence a new batch of `records` records under the partition's producer id and epoch
    /// (`None` while it has none).
    pub(super) fn assign(&mut self, key: BatchKey, records: i32) -> Option<Stamp> {
        let stamp = Stamp {
            producer: self.producer?,
            base: self.next,
        };
        self.next = incremented(self.next, records);
        self.sequenced.insert(key, (stamp, records));
        Some(stamp)
    }

    /// Java's `startSequencesAtBeginning`: the partition's sequences count for `producer` from
    /// now on, starting at 0, and its unfinished batches are sequenced again from 0, in order.
    pub(super) fn start_at_beginning(&mut self, producer: (i64, i16)) {
        let mut next = 0;
        for (stamp, records) in self.sequenced.values_mut() {
            *stamp = Stamp {
                producer,
                base: next,
            };
            next = incremented(next, *records);
        }
        self.producer = Some(producer);
        self.next = next;
        self.last_acked = None;
        self.unresolved = None;
    }

    /// The batch with `key`, sent as `sent`, is stored: it is finished, and its last sequence
    /// acknowledged when it counts for the partition's producer.
    pub(super) fn acked(&mut self, key: BatchKey, sent: Stamp) {
        let Some((_, records)) = self.sequenced.remove(&key) else {
            return;
        };
        if Some(sent.producer) == self.producer {
            let last = incremented(sent.base, records - 1);
            self.last_acked = Some(self.last_acked.map_or(last, |l| l.max(last)));
        }
    }

    /// The batch with `key` failed for good: finished, but the broker may or may not have stored
    /// it, so the partition is unresolved (when it was sequenced).
    pub(super) fn failed(&mut self, key: BatchKey) {
        if let Some((stamp, records)) = self.sequenced.remove(&key) {
            let after = incremented(stamp.base, records);
            self.unresolved = Some(self.unresolved.map_or(after, |u| u.max(after)));
        }
    }

    /// A sequenced batch with `key` split in two (MESSAGE_TOO_LARGE, not stored): the first
    /// `first_records` keep its key and base, the rest go under `second` right after them.
    pub(super) fn split(&mut self, key: BatchKey, first_records: i32, second: BatchKey) {
        if let Some((stamp, records)) = self.sequenced.remove(&key) {
            let rest = Stamp {
                base: incremented(stamp.base, first_records),
                ..stamp
            };
            self.sequenced.insert(key, (stamp, first_records));
            self.sequenced
                .insert(second, (rest, records - first_records));
        }
    }

    /// Whether `seq` is the sequence after the last acknowledged one (Java's `isNextSequence`).
    pub(super) fn is_next(&self, seq: i32) -> bool {
        self.last_acked
            .map_or(seq == 0, |l| incremented(l, 1) == seq)
    }

    /// With nothing sequenced left, whether the unresolved batch is resolved (every sequence up
    /// to the next one was acknowledged after it: it was stored) or the partition needs a new
    /// epoch (Java's `maybeResolveSequences`); `None` while unresolved batches are in flight or
    /// nothing is unresolved.
    pub(super) fn resolve(&mut self) -> Option<bool> {
        if self.unresolved.is_none() || self.has_sequenced() {
            return None;
        }
        self.unresolved = None;
        Some(self.is_next(self.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E0: (i64, i16) = (7, 0);
    const E1: (i64, i16) = (7, 1);

    fn seq(producer: (i64, i16)) -> PartSeq {
        let mut s = PartSeq::default();
        s.start_at_beginning(producer);
        s
    }

    #[test]
    fn sequences_wrap_like_java() {
        assert_eq!(incremented(0, 5), 5);
        assert_eq!(incremented(i32::MAX - 5, 5), i32::MAX);
        assert_eq!(incremented(i32::MAX - 4, 5), 0);
        assert_eq!(incremented(i32::MAX, 1), 0);
        assert_eq!(incremented(i32::MAX - 1, 10), 8);
    }

    #[test]
    fn batches_are_sequenced_in_order_and_acknowledged() {
        let mut s = PartSeq::default();
        assert_eq!(s.assign((0, 0), 3), None, "no producer id yet");
        s.start_at_beginning(E0);
        let a = s.assign((0, 0), 3).unwrap();
        let b = s.assign((1, 0), 2).unwrap();
        assert_eq!((a.base, b.base), (0, 3));
        assert!(s.is_next(0) && !s.is_next(3));
        s.acked((0, 0), a);
        assert!(s.is_next(3));
        assert_eq!(s.stamp_of((1, 0)), Some(b));
        s.acked((1, 0), b);
        assert!(!s.has_sequenced() && s.is_next(5));
    }

    /// Java's startSequencesAtBeginning: the unfinished batches, in key order, from 0.
    #[test]
    fn starting_at_the_beginning_resequences_unfinished_batches_in_order() {
        let mut s = seq(E0);
        for (k, n) in [(4, 2), (5, 3), (6, 1)] {
            s.assign((k, 0), n);
        }
        s.acked((4, 0), s.stamp_of((4, 0)).unwrap());
        s.start_at_beginning(E1);
        let stamps: Vec<_> = [5, 6]
            .iter()
            .map(|k| s.stamp_of((*k, 0)).unwrap())
            .collect();
        assert_eq!(
            stamps,
            [
                Stamp {
                    producer: E1,
                    base: 0
                },
                Stamp {
                    producer: E1,
                    base: 3
                }
            ]
        );
        assert_eq!(s.assign((7, 0), 1).unwrap().base, 4);
        assert!(s.is_next(0), "nothing acknowledged under the new epoch");
    }

    /// An acknowledgement of a batch sent under an older epoch does not count for the new one.
    #[test]
    fn an_old_epoch_acknowledgement_does_not_move_the_new_epoch() {
        let mut s = seq(E0);
        let old = s.assign((0, 0), 5).unwrap();
        s.start_at_beginning(E1);
        s.acked((0, 0), old);
        assert!(s.is_next(0) && !s.is_next(5));
    }

    #[test]
    fn a_failed_batch_is_unresolved_until_nothing_is_in_flight() {
        let mut s = seq(E0);
        let a = s.assign((0, 0), 2).unwrap();
        let b = s.assign((1, 0), 2).unwrap();
        s.failed((0, 0));
        assert_eq!(s.unresolved(), Some(2));
        assert_eq!(s.resolve(), None, "b is still in flight");
        // b stored after a: a was stored too.
        s.acked((1, 0), b);
        assert_eq!(s.resolve(), Some(true));
        assert_eq!(s.unresolved(), None);
        // The last batch fails: nothing after it acknowledged, a gap is possible.
        let c = s.assign((2, 0), 1).unwrap();
        assert_eq!((a.base, c.base), (0, 4));
        s.failed((2, 0));
        assert_eq!(s.resolve(), Some(false));
        assert_eq!(s.resolve(), None, "resolved once");
    }

    #[test]
    fn a_split_batch_keeps_its_range() {
        let mut s = seq(E0);
        s.assign((0, 0), 1);
        s.assign((1, 0), 10);
        s.assign((2, 0), 1);
        s.split((1, 0), 5, (1, 5));
        assert_eq!(s.stamp_of((1, 0)).unwrap().base, 1);
        assert_eq!(s.stamp_of((1, 5)).unwrap().base, 6);
        s.start_at_beginning(E1);
        let bases: Vec<i32> = [(0, 0), (1, 0), (1, 5), (2, 0)]
            .iter()
            .map(|k| s.stamp_of(*k).unwrap().base)
            .collect();
        assert_eq!(bases, [0, 1, 6, 11]);
    }
}
