//! The blocking group consumer: join, assign, fetch, commit; records decoded through the codec.
//!
//! Record batches from Fetch answers are decoded here (v2 format, none/gzip/snappy), with every
//! length checked against the bytes that are really there and decompression capped, so a hostile
//! or broken broker cannot make us panic or allocate without bound.
//!
//! Must not drop a record it cannot decode: it returns it as an error item with its coordinates.

use std::collections::BTreeMap;
use std::io::Read;

use bytes::Bytes;

use crate::error::ErrorKind;
use crate::kafka::group::TopicPartitions;

/// One record as fetched: coordinates, metadata and the raw key/value bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create time, or log-append time if the topic says so).
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// `None` for a tombstone.
    pub value: Option<Bytes>,
}

/// A record batch in a Fetch answer that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("corrupt record batch at offset {offset}: {reason}")]
    Corrupt { offset: i64, reason: String },
    #[error("record batch at offset {offset} uses {what}, which avro-edge does not read")]
    Unsupported { offset: i64, what: &'static str },
    #[error("record batch at offset {offset} decompresses to more than {limit} bytes")]
    TooLarge { offset: i64, limit: usize },
}

impl ErrorKind for BatchError {
    fn kind(&self) -> &'static str {
        match self {
            BatchError::Corrupt { .. } => "corrupt-record-batch",
            BatchError::Unsupported { .. } => "unsupported-record-format",
            BatchError::TooLarge { .. } => "record-batch-too-large",
        }
    }
}

/// Bytes of the v2 batch header, from the base offset through the record count.
const BATCH_HEADER_LEN: usize = 61;
/// The smallest possible v2 record: length, attributes, timestamp and offset deltas, key and
/// value lengths, header count, one byte each.
const MIN_RECORD_LEN: usize = 7;

/// A cursor over untrusted bytes: every read checks what is left.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn varlong(&mut self) -> Option<i64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        self.varlong().and_then(|v| i32::try_from(v).ok())
    }

    /// A varint length followed by that many bytes; -1 means null.
    fn nullable_bytes(&mut self, whole: &Bytes) -> Option<Option<Bytes>> {
        let len = self.varint()?;
        if len < 0 {
            return Some(None);
        }
        let start = whole.len() - self.buf.len();
        self.take(len as usize)?;
        Some(Some(whole.slice(start..start + len as usize)))
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decompress with an output cap: gzip (all members) or snappy (xerial framing or raw).
fn decompress(codec: u8, data: &[u8], offset: i64, limit: usize) -> Result<Vec<u8>, BatchError> {
    let corrupt = |reason: String| BatchError::Corrupt { offset, reason };
    match codec {
        1 => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(data)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| corrupt(format!("gzip: {e}")))?;
            if out.len() > limit {
                return Err(BatchError::TooLarge { offset, limit });
            }
            Ok(out)
        }
        2 => {
            const XERIAL: &[u8; 8] = b"\x82SNAPPY\x00";
            let mut out = Vec::new();
            let raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
                let n = snap::raw::decompress_len(block).map_err(|e| corrupt(format!("snappy: {e}")))?;
                if out.len().saturating_add(n) > limit {
                    return Err(BatchError::TooLarge { offset, limit });
                }
                let start = out.len();
                out.resize(start + n, 0);
                snap::raw::Decoder::new()
                    .decompress(block, &mut out[start..])
                    .map_err(|e| corrupt(format!("snappy: {e}")))?;
                Ok(())
            };
            if data.len() >= 16 && &data[..8] == XERIAL {
                let mut c = Cursor { buf: &data[16..] };
                while !c.buf.is_empty() {
                    let len = c.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
                    let block = len.and_then(|l| c.take(l)).ok_or_else(|| corrupt("snappy: truncated block".into()))?;
                    raw_block(block, &mut out)?;
                }
            } else {
                raw_block(data, &mut out)?;
            }
            Ok(out)
        }
        3 => Err(BatchError::Unsupported { offset, what: "lz4 compression" }),
        4 => Err(BatchError::Unsupported { offset, what: "zstd compression" }),
        _ => Err(corrupt(format!("unknown compression codec {codec}"))),
    }
}

/// What one partition's Fetch data gave.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub records: Vec<RawRecord>,
    /// The offset after the last whole batch, when there was one: the next fetch position, even
    /// if every record in it was a control record or below the requested offset.
    pub next_offset: Option<i64>,
}

/// Decode the `records` bytes of one Fetch partition: whole v2 batches in order; a trailing partial
/// batch (the broker cuts at the byte limit) is left for the next fetch. Records below `from` (a
/// batch is returned whole even when we asked for its middle) and control records are left out.
/// `limit` caps the decompressed size of one batch.
pub(crate) fn decode_fetched(
    topic: &str,
    partition: i32,
    data: &Bytes,
    from: i64,
    limit: usize,
) -> Result<Fetched, BatchError> {
    let mut out = Fetched::default();
    let mut pos = 0usize;
    while data.len() - pos >= 12 {
        let base_offset = be_i64(data, pos);
        let batch_len = be_i32(data, pos + 8);
        let corrupt = |reason: &str| BatchError::Corrupt { offset: base_offset, reason: reason.to_string() };
        if batch_len < 0 {
            return Err(corrupt("negative batch length"));
        }
        let total = 12 + batch_len as usize;
        if data.len() - pos < total {
            break; // partial batch at the end of the answer
        }
        let batch = data.slice(pos..pos + total);
        pos += total;
        if batch.len() < 17 {
            return Err(corrupt("batch shorter than its header"));
        }
        let magic = batch[16];
        if magic != 2 {
            return Err(BatchError::Unsupported { offset: base_offset, what: "a pre-0.11 message set (magic 0/1)" });
        }
        if batch.len() < BATCH_HEADER_LEN {
            return Err(corrupt("batch shorter than its header"));
        }
        let crc = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
        if crc32c::crc32c(&batch[21..]) != crc {
            return Err(corrupt("CRC-32C mismatch"));
        }
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        let last_offset_delta = be_i32(&batch, 23);
        let first_timestamp = be_i64(&batch, 27);
        let max_timestamp = be_i64(&batch, 35);
        let count = be_i32(&batch, 57);
        let log_append_time = attributes & 0x08 != 0;
        let control = attributes & 0x20 != 0;
        out.next_offset = Some(base_offset.saturating_add(i64::from(last_offset_delta)).saturating_add(1));
        if count < 0 {
            return Err(corrupt("negative record count"));
        }
        if control || count == 0 {
            continue;
        }
        let body_slice = batch.slice(BATCH_HEADER_LEN..);
        let body: Bytes = match (attributes & 0x07) as u8 {
            0 => body_slice,
            c => Bytes::from(decompress(c, &body_slice, base_offset, limit)?),
        };
        if (count as usize).saturating_mul(MIN_RECORD_LEN) > body.len() {
            return Err(corrupt("record count larger than the batch can hold"));
        }
        let mut c = Cursor { buf: &body[..] };
        for _ in 0..count {
            let rec = read_record(&mut c, &body).ok_or_else(|| corrupt("truncated or malformed record"))?;
            let offset = base_offset.saturating_add(rec.offset_delta);
            if offset < from {
                continue;
            }
            out.records.push(RawRecord {
                topic: topic.to_string(),
                partition,
                offset,
                timestamp: if log_append_time { max_timestamp } else { first_timestamp.saturating_add(rec.timestamp_delta) },
                key: rec.key,
                headers: rec.headers,
                value: rec.value,
            });
        }
    }
    Ok(out)
}

struct ParsedRecord {
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

fn read_record(c: &mut Cursor<'_>, whole: &Bytes) -> Option<ParsedRecord> {
    let len = c.varint()?;
    if len < 0 {
        return None;
    }
    let start = whole.len() - c.buf.len();
    let body = c.take(len as usize)?;
    let rec_bytes = whole.slice(start..start + body.len());
    let mut r = Cursor { buf: &rec_bytes[..] };
    r.take(1)?; // attributes: unused in v2
    let timestamp_delta = r.varlong()?;
    let offset_delta = i64::from(r.varint()?);
    let key = r.nullable_bytes(&rec_bytes)?;
    let value = r.nullable_bytes(&rec_bytes)?;
    let n = r.varint()?;
    if n < 0 || n as usize > r.buf.len() / 2 {
        return None; // each header takes at least two bytes
    }
    let mut headers = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let klen = r.varint()?;
        if klen < 0 {
            return None;
        }
        let k = String::from_utf8_lossy(r.take(klen as usize)?).into_owned();
        let v = r.nullable_bytes(&rec_bytes)?;
        headers.push((k, v));
    }
    Some(ParsedRecord { timestamp_delta, offset_delta, key, value, headers })
}

/// Per-partition fetch positions and committed offsets for the partitions we own.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    parts: BTreeMap<(String, i32), PartState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PartState {
    /// The next offset to fetch (and, once records up to it were handed out, to commit).
    position: Option<i64>,
    /// The last offset committed (or read back from the group), if any.
    committed: Option<i64>,
}

impl Positions {
    /// Own exactly `assignment`; partitions kept keep their state, others are dropped.
    pub fn set_assignment(&mut self, assignment: &TopicPartitions) {
        let mut next = BTreeMap::new();
        for (t, ps) in assignment {
            for &p in ps {
                let key = (t.clone(), p);
                let st = self.parts.get(&key).copied().unwrap_or_default();
                next.insert(key, st);
            }
        }
        self.parts = next;
    }

    pub fn owned(&self) -> impl Iterator<Item = &(String, i32)> {
        self.parts.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Partitions that have no fetch position yet.
    pub fn missing(&self) -> Vec<(String, i32)> {
        self.parts.iter().filter(|(_, s)| s.position.is_none()).map(|(k, _)| k.clone()).collect()
    }

    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts.get(&(topic.to_string(), partition)).and_then(|s| s.position)
    }

    /// Move the position (only for owned partitions: a late answer for a revoked one is ignored).
    pub fn set_position(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(s) = self.parts.get_mut(&(topic.to_string(), partition)) {
            s.position = Some(offset);
        }
    }

    /// The group's committed offset: it also becomes the position when there was none.
    pub fn set_committed(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(s) = self.parts.get_mut(&(topic.to_string(), partition)) {
            s.committed = Some(offset);
            if s.position.is_none() {
                s.position = Some(offset);
            }
        }
    }

    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts.get(&(topic.to_string(), partition)).and_then(|s| s.committed)
    }

    /// Positions that moved since the last commit: what `commit()` sends.
    pub fn uncommitted(&self) -> Vec<((String, i32), i64)> {
        self.parts
            .iter()
            .filter_map(|(k, s)| match s.position {
                Some(p) if s.committed != Some(p) => Some((k.clone(), p)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn record(offset: i64, value: &[u8]) -> Record {
        let mut headers = IndexMap::new();
        headers.insert(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"hv")));
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 1_700_000_000_000 + offset,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::copy_from_slice(value)),
            headers,
        }
    }

    /// Batches written by kafka-protocol's own encoder: an independent writer for our reader.
    fn batch(records: &[Record], compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression })
            .unwrap();
        buf.freeze()
    }

    #[test]
    fn reads_plain_gzip_and_snappy_batches() {
        for compression in [Compression::None, Compression::Gzip, Compression::Snappy] {
            let recs: Vec<Record> = (10..20).map(|o| record(o, &vec![o as u8; 300])).collect();
            let data = batch(&recs, compression);
            let got = decode_fetched("t", 3, &data, 0, 1 << 20).unwrap();
            assert_eq!(got.next_offset, Some(20), "{compression:?}");
            assert_eq!(got.records.len(), 10);
            for (r, want) in got.records.iter().zip(&recs) {
                assert_eq!((r.topic.as_str(), r.partition, r.offset), ("t", 3, want.offset));
                assert_eq!(r.timestamp, want.timestamp);
                assert_eq!(r.key, want.key);
                assert_eq!(r.value, want.value);
                assert_eq!(r.headers, vec![("h".to_string(), Some(Bytes::from_static(b"hv")))]);
            }
        }
    }

    #[test]
    fn skips_records_below_the_position_and_stops_at_a_partial_batch() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(&[record(0, b"a"), record(1, b"b")], Compression::None));
        let second = batch(&[record(2, b"c")], Compression::None);
        data.extend_from_slice(&second[..second.len() - 3]);
        let got = decode_fetched("t", 0, &data.freeze(), 1, 1 << 20).unwrap();
        assert_eq!(got.records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![1]);
        assert_eq!(got.next_offset, Some(2));
    }

    #[test]
    fn corrupt_and_hostile_batches_are_errors() {
        let good = batch(&[record(5, b"v")], Compression::None);
        // flipped byte in the body: CRC mismatch
        let mut bad = good.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let e = decode_fetched("t", 0, &Bytes::from(bad), 0, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), "corrupt-record-batch");
        // a record count of 2^31-1 with a valid CRC: refused before any allocation
        let mut huge = good.to_vec();
        huge[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&huge[21..]);
        huge[17..21].copy_from_slice(&crc.to_be_bytes());
        let e = decode_fetched("t", 0, &Bytes::from(huge), 0, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), "corrupt-record-batch");
        // legacy magic
        let mut old = good.to_vec();
        old[16] = 1;
        assert_eq!(decode_fetched("t", 0, &Bytes::from(old), 0, 1 << 20).unwrap_err().kind(), "unsupported-record-format");
        // random bytes never panic
        let mut seed = 0x1234_5678u32;
        for len in 0..400 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let _ = decode_fetched("t", 0, &Bytes::from(junk), 0, 1 << 20);
        }
    }

    #[test]
    fn decompression_is_capped() {
        let recs: Vec<Record> = (0..50).map(|o| record(o, &[0u8; 10_000])).collect();
        for compression in [Compression::Gzip, Compression::Snappy] {
            let data = batch(&recs, compression);
            assert!(data.len() < 100_000);
            match decode_fetched("t", 0, &data, 0, 5_000) {
                Err(e) => assert_eq!(e.kind(), "record-batch-too-large", "{compression:?}"),
                Ok(f) => panic!("{compression:?}: {} records, {} bytes compressed", f.records.len(), data.len()),
            }
        }
    }

    #[test]
    fn positions_track_assignment_commit_and_progress() {
        let mut p = Positions::default();
        let a: TopicPartitions = [("t".to_string(), vec![0, 1])].into_iter().collect();
        p.set_assignment(&a);
        assert_eq!(p.missing().len(), 2);
        p.set_committed("t", 0, 7);
        p.set_position("t", 1, 0);
        assert_eq!(p.position("t", 0), Some(7));
        assert_eq!(p.uncommitted(), vec![(("t".to_string(), 1), 0)]);
        p.set_position("t", 0, 9);
        p.set_committed("t", 1, 0);
        assert_eq!(p.uncommitted(), vec![(("t".to_string(), 0), 9)]);
        // Rebalance keeps partition 1's state, drops 0, adds 2 without a position.
        let b: TopicPartitions = [("t".to_string(), vec![1, 2])].into_iter().collect();
        p.set_assignment(&b);
        assert_eq!(p.position("t", 0), None);
        assert_eq!(p.position("t", 1), Some(0));
        assert_eq!(p.missing(), vec![("t".to_string(), 2)]);
        // Late answers for partitions we no longer own are ignored.
        p.set_position("t", 0, 100);
        assert_eq!(p.position("t", 0), None);
    }
}
