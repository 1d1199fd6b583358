//! read_committed (`isolation.level`): which batches of a Fetch answer belong to aborted
//! transactions, decided as Java's `CompletedFetch` decides it. With each answer the broker lists
//! the aborted transactions that overlap it, as (producer id, first offset). Walking the batches
//! in offset order, a transaction whose first offset is at or below a batch's last offset marks its
//! producer as aborted; a transactional batch of a producer so marked is skipped whole; that
//! producer's ABORT marker (a control batch) clears the mark. Control batches themselves are never
//! records, in either isolation level (the reader leaves them out).
//!
//! Must not read records or do I/O: it sees batch headers, and whether a control batch is an
//! ABORT marker (the reader tells it).

use std::collections::HashSet;

/// One aborted transaction of a Fetch answer (`aborted_transactions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Aborted {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// The transaction's first offset in the partition.
    pub first_offset: i64,
}

/// What the filter needs of one batch with a producer id.
#[derive(Clone, Copy, Debug)]
pub(super) struct TxnBatch {
    pub producer_id: i64,
    /// The batch is part of a transaction (attribute bit 4).
    pub transactional: bool,
    /// A control batch whose marker is ABORT.
    pub abort_marker: bool,
    /// The offset of the batch's last record.
    pub last_offset: i64,
}

/// The aborted transactions of one Fetch answer (one partition), walked batch by batch.
pub(super) struct AbortedFilter {
    /// Not reached yet, the earliest first offset last (taken from the end).
    pending: Vec<Aborted>,
    /// Producers inside an aborted transaction at the current batch.
    aborted: HashSet<i64>,
}

impl AbortedFilter {
    pub(super) fn new(aborted: &[Aborted]) -> AbortedFilter {
        let mut pending = aborted.to_vec();
        pending.sort_unstable_by_key(|a| std::cmp::Reverse(a.first_offset));
        AbortedFilter {
            pending,
            aborted: HashSet::new(),
        }
    }

    /// Whether the batch is part of an aborted transaction (to be skipped whole). Batches come
    /// in offset order.
    pub(super) fn skips(&mut self, b: TxnBatch) -> bool {
        while let Some(a) = self.pending.last().copied()
            && a.first_offset <= b.last_offset
        {
            self.aborted.insert(a.producer_id);
            self.pending.pop();
        }
        if b.abort_marker {
            self.aborted.remove(&b.producer_id);
            return false;
        }
        b.transactional && self.aborted.contains(&b.producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::record::decode_fetched;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// One record as a producer (`pid`, or -1 for none) wrote it; `marker`: a control record of
    /// that type (0 ABORT, 1 COMMIT), written as Kafka writes it.
    fn record(offset: i64, pid: i64, transactional: bool, marker: Option<i16>) -> Record {
        let (key, value) = match marker {
            Some(t) => {
                let mut k = 0i16.to_be_bytes().to_vec();
                k.extend_from_slice(&t.to_be_bytes());
                let mut v = 0i16.to_be_bytes().to_vec();
                v.extend_from_slice(&7i32.to_be_bytes()); // coordinator epoch
                (Some(Bytes::from(k)), Some(Bytes::from(v)))
            }
            None => (None, Some(Bytes::from(format!("v{offset}")))),
        };
        Record {
            transactional,
            control: marker.is_some(),
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: if pid < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: if pid < 0 { -1 } else { offset as i32 },
            timestamp: 1_700_000_000_000,
            key,
            value,
            headers: IndexMap::new(),
        }
    }

    /// One batch per call, written by kafka-protocol's encoder (an independent writer).
    fn batch(out: &mut BytesMut, records: &[Record]) {
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(out, records.iter(), &options).unwrap();
    }

    /// A partition log with two producers' transactions, one aborted, one committed, a plain
    /// batch, and producer 1 aborting a second transaction after committing one.
    fn log() -> (Bytes, Vec<Aborted>) {
        let mut data = BytesMut::new();
        let txn = |o, pid| record(o, pid, true, None);
        batch(&mut data, &[txn(0, 1), txn(1, 1)]); // producer 1, aborted below
        batch(&mut data, &[txn(2, 2), txn(3, 2)]); // producer 2, committed below
        batch(&mut data, &[record(4, -1, false, None)]); // not transactional
        batch(&mut data, &[record(5, 1, true, Some(0))]); // ABORT producer 1
        batch(&mut data, &[record(6, 2, true, Some(1))]); // COMMIT producer 2
        batch(&mut data, &[txn(7, 1), txn(8, 1)]); // producer 1 again
        batch(&mut data, &[record(9, 1, true, Some(1))]); // COMMIT producer 1
        batch(&mut data, &[txn(10, 1)]); // producer 1, aborted below
        batch(&mut data, &[record(11, 1, true, Some(0))]); // ABORT producer 1
        let aborted = vec![
            Aborted {
                producer_id: 1,
                first_offset: 10,
            },
            Aborted {
                producer_id: 1,
                first_offset: 0,
            },
        ];
        (data.freeze(), aborted)
    }

    fn offsets(data: &Bytes, from: i64, committed: Option<&[Aborted]>) -> (Vec<i64>, Option<i64>) {
        let f = decode_fetched("t", 0, data, from, 1 << 20, committed);
        assert!(f.error.is_none(), "{:?}", f.error);
        (f.records.iter().map(|r| r.offset).collect(), f.next_offset)
    }

    #[test]
    fn read_committed_skips_aborted_transactions_and_never_returns_markers() {
        let (data, aborted) = log();
        assert_eq!(
            offsets(&data, 0, Some(&aborted)),
            (vec![2, 3, 4, 7, 8], Some(12))
        );
        // Fetched from inside the log (the broker lists only the transactions that reach it).
        assert_eq!(
            offsets(&data, 3, Some(&aborted[..1])),
            (vec![3, 4, 7, 8], Some(12))
        );
        // read_uncommitted: every data record, still no control record.
        assert_eq!(
            offsets(&data, 0, None),
            (vec![0, 1, 2, 3, 4, 7, 8, 10], Some(12))
        );
    }

    /// Only the aborted producer's *transactional* batches go: another producer's batch inside
    /// the aborted range, and a non-transactional batch of the same producer id, stay.
    #[test]
    fn the_aborted_range_is_per_producer_and_transactional_only() {
        let mut data = BytesMut::new();
        batch(&mut data, &[record(0, 1, true, None)]);
        batch(&mut data, &[record(1, 3, false, None)]);
        batch(&mut data, &[record(2, 1, false, None)]);
        batch(&mut data, &[record(3, 2, true, None)]);
        batch(&mut data, &[record(4, 1, true, None)]);
        let aborted = [Aborted {
            producer_id: 1,
            first_offset: 0,
        }];
        // No ABORT marker in this answer yet (the transaction is still open at its end): its
        // batches stay skipped.
        assert_eq!(
            offsets(&data.freeze(), 0, Some(&aborted)),
            (vec![1, 2, 3], Some(5))
        );
    }

    #[test]
    fn the_filter_marks_a_producer_from_its_first_offset_to_its_abort_marker() {
        let mut f = AbortedFilter::new(&[Aborted {
            producer_id: 9,
            first_offset: 20,
        }]);
        let b = |last_offset, abort_marker| TxnBatch {
            producer_id: 9,
            transactional: true,
            abort_marker,
            last_offset,
        };
        assert!(!f.skips(b(19, false)), "before its first offset");
        assert!(f.skips(b(25, false)));
        assert!(
            !f.skips(b(26, true)),
            "the marker itself is not a data batch"
        );
        assert!(!f.skips(b(30, false)), "after the marker");
    }
}
