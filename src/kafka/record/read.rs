//! Reading record batches (v2; none, gzip, snappy, lz4, zstd) from Fetch answers, with every length checked
//! against the bytes that are really there and decompression capped, so a hostile or broken
//! broker cannot make us panic or allocate without bound.
//!
//! Must not do I/O, and must not drop a batch it cannot read silently: the error is reported
//! with the offset where reading stopped.

use std::sync::Arc;

use bytes::Bytes;

use super::BATCH_HEADER_LEN;
use super::aborted::{Aborted, AbortedFilter, TxnBatch};
use super::compression::decompress;
use super::cursor::Cursor;
use super::error::BatchError;

/// One record as fetched: coordinates, metadata and the raw key/value bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// Shared by every record of the partition (no allocation per record).
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset in the partition.
    pub offset: i64,
    /// Milliseconds since the epoch (create time, or log-append time if the topic says so).
    pub timestamp: i64,
    /// The record key, if any.
    pub key: Option<Bytes>,
    /// The record headers, in order (a header value may be null).
    pub headers: Vec<(String, Option<Bytes>)>,
    /// `None` for a tombstone.
    pub value: Option<Bytes>,
}

/// The smallest possible v2 record: length, attributes, timestamp and offset deltas, key and
/// value lengths, header count, one byte each.
const MIN_RECORD_LEN: usize = 7;

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What one partition's Fetch data gave.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub records: Vec<RawRecord>,
    /// The offset after the last whole batch, when there was one: the next fetch position, even
    /// if every record in it was a control record or below the requested offset.
    pub next_offset: Option<i64>,
    /// The first batch that could not be read; `records` and `next_offset` cover what came before it.
    pub error: Option<BatchError>,
    /// Base offset of the first whole batch in the answer (Kafka: at or below the fetch offset).
    pub first_base: Option<i64>,
}

/// Decode the `records` bytes of one Fetch partition: whole v2 batches in order; a trailing partial
/// batch (the broker cuts at the byte limit) is left for the next fetch. Records below `from` (a
/// batch is returned whole even when we asked for its middle) and control records are left out.
/// `committed`: read_committed, with the answer's aborted transactions, whose batches are left out
/// too (`aborted.rs`); `None`: read_uncommitted. `limit` caps the decompressed size of one batch.
/// A batch that cannot be read stops the decoding: what came before it is kept, and the error is
/// reported in `error`.
pub(crate) fn decode_fetched(
    topic: &str,
    partition: i32,
    data: &Bytes,
    from: i64,
    limit: usize,
    committed: Option<&[Aborted]>,
) -> Fetched {
    let mut out = Fetched::default();
    let mut filter = committed.map(AbortedFilter::new);
    if let Err(e) = decode_batches(
        topic,
        partition,
        data,
        from,
        limit,
        filter.as_mut(),
        &mut out,
    ) {
        out.error = Some(e);
    }
    out
}

fn decode_batches(
    topic: &str,
    partition: i32,
    data: &Bytes,
    from: i64,
    limit: usize,
    mut filter: Option<&mut AbortedFilter>,
    out: &mut Fetched,
) -> Result<(), BatchError> {
    let topic_name: Arc<str> = Arc::from(topic);
    // Room for the records of the whole batches up front (one allocation, not a doubling series);
    // the counts are untrusted, so the hint is capped by what the bytes could hold uncompressed.
    out.records.reserve(records_hint(data));
    let mut pos = 0usize;
    while data.len() - pos >= 12 {
        let base_offset = be_i64(data, pos);
        let batch_len = be_i32(data, pos + 8);
        let corrupt = |reason: &str| BatchError::Corrupt {
            offset: base_offset,
            reason: reason.to_string(),
        };
        if batch_len < 0 {
            return Err(corrupt("negative batch length"));
        }
        let total = 12 + batch_len as usize;
        if data.len() - pos < total {
            break; // partial batch at the end of the answer
        }
        let batch = data.slice(pos..pos + total);
        pos += total;
        let h = read_header(&batch, base_offset)?;
        out.first_base.get_or_insert(base_offset);
        if h.count < 0 {
            return Err(corrupt("negative record count"));
        }
        if let Some(f) = filter.as_deref_mut()
            && h.producer_id >= 0
        {
            let abort_marker = h.control && control_type(&batch, &h, limit)? == Some(ABORT);
            let b = TxnBatch {
                producer_id: h.producer_id,
                transactional: h.transactional,
                abort_marker,
                last_offset: h.next - 1,
            };
            if f.skips(b) {
                out.next_offset = Some(h.next);
                continue;
            }
        }
        if h.control || h.count == 0 {
            out.next_offset = Some(h.next);
            continue;
        }
        let kept = out.records.len();
        if let Err(e) = read_records(&batch, &h, &topic_name, partition, from, limit, out) {
            out.records.truncate(kept);
            return Err(e);
        }
        out.next_offset = Some(h.next);
    }
    Ok(())
}

/// How many records the whole batches in `data` hold, as their headers say, capped by what the
/// bytes could hold uncompressed (the counts are untrusted): room to reserve for them.
pub(crate) fn records_hint(data: &Bytes) -> usize {
    record_count_hint(data).min(data.len() / MIN_RECORD_LEN)
}

/// The records counts of the whole batches in `data`, as their headers say (untrusted).
fn record_count_hint(data: &Bytes) -> usize {
    let (mut pos, mut n) = (0usize, 0usize);
    while data.len() - pos >= BATCH_HEADER_LEN {
        let Ok(len) = usize::try_from(be_i32(data, pos + 8)) else {
            break;
        };
        let total = 12 + len;
        if total < BATCH_HEADER_LEN || data.len() - pos < total {
            break;
        }
        n = n.saturating_add(usize::try_from(be_i32(data, pos + 57)).unwrap_or(0));
        pos += total;
    }
    n
}

/// The fields of a v2 batch header that reading needs.
struct BatchHeader {
    base_offset: i64,
    /// The compression codec (attributes & 0x07).
    codec: u8,
    log_append_time: bool,
    transactional: bool,
    control: bool,
    first_timestamp: i64,
    max_timestamp: i64,
    /// -1 when the batch has no producer id.
    producer_id: i64,
    count: i32,
    /// The offset after the batch.
    next: i64,
}

/// Check a whole batch's magic, header length and CRC-32C, and read its header.
fn read_header(batch: &Bytes, base_offset: i64) -> Result<BatchHeader, BatchError> {
    let corrupt = |reason: &str| BatchError::Corrupt {
        offset: base_offset,
        reason: reason.to_string(),
    };
    if batch.len() < 17 {
        return Err(corrupt("batch shorter than its header"));
    }
    let magic = batch[16];
    if magic != 2 {
        return Err(BatchError::Unsupported {
            offset: base_offset,
            what: "a pre-0.11 message set (magic 0/1)",
        });
    }
    if batch.len() < BATCH_HEADER_LEN {
        return Err(corrupt("batch shorter than its header"));
    }
    let crc = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
    if crc32c::crc32c(&batch[21..]) != crc {
        return Err(corrupt("CRC-32C mismatch"));
    }
    let attributes = i16::from_be_bytes([batch[21], batch[22]]);
    let last_offset_delta = be_i32(batch, 23);
    Ok(BatchHeader {
        base_offset,
        codec: (attributes & 0x07) as u8,
        log_append_time: attributes & 0x08 != 0,
        transactional: attributes & 0x10 != 0,
        control: attributes & 0x20 != 0,
        first_timestamp: be_i64(batch, 27),
        max_timestamp: be_i64(batch, 35),
        producer_id: be_i64(batch, 43),
        count: be_i32(batch, 57),
        next: base_offset
            .saturating_add(i64::from(last_offset_delta))
            .saturating_add(1),
    })
}

/// The records of one data batch (decompressed if need be) into `out.records`, leaving out those
/// below `from`. On an error some of the batch's records may have been pushed: the caller drops them.
fn read_records(
    batch: &Bytes,
    h: &BatchHeader,
    topic_name: &Arc<str>,
    partition: i32,
    from: i64,
    limit: usize,
    out: &mut Fetched,
) -> Result<(), BatchError> {
    let base_offset = h.base_offset;
    let corrupt = |reason: &str| BatchError::Corrupt {
        offset: base_offset,
        reason: reason.to_string(),
    };
    let body = records_of(batch, h, limit)?;
    if (h.count as usize).saturating_mul(MIN_RECORD_LEN) > body.len() {
        return Err(corrupt("record count larger than the batch can hold"));
    }
    let mut c = Cursor { buf: &body[..] };
    for _ in 0..h.count {
        let rec =
            read_record(&mut c, &body).ok_or_else(|| corrupt("truncated or malformed record"))?;
        let offset = base_offset.saturating_add(rec.offset_delta);
        if offset < from {
            continue;
        }
        out.records.push(RawRecord {
            topic: topic_name.clone(),
            partition,
            offset,
            timestamp: if h.log_append_time {
                h.max_timestamp
            } else {
                h.first_timestamp.saturating_add(rec.timestamp_delta)
            },
            key: rec.key,
            headers: rec.headers,
            value: rec.value,
        });
    }
    Ok(())
}

/// A batch's records section, decompressed (at most `limit` bytes).
fn records_of(batch: &Bytes, h: &BatchHeader, limit: usize) -> Result<Bytes, BatchError> {
    let body = batch.slice(BATCH_HEADER_LEN..);
    Ok(match h.codec {
        0 => body,
        c => Bytes::from(decompress(c, &body, h.base_offset, limit)?),
    })
}

/// A control record's type, in its key after the key's version: ABORT.
const ABORT: i16 = 0;

/// The type of a control batch's marker (its first record's key: version, then type; 0 ABORT,
/// 1 COMMIT); `None` when the key is too short to say.
fn control_type(batch: &Bytes, h: &BatchHeader, limit: usize) -> Result<Option<i16>, BatchError> {
    let body = records_of(batch, h, limit)?;
    let rec = read_record(&mut Cursor { buf: &body[..] }, &body).ok_or(BatchError::Corrupt {
        offset: h.base_offset,
        reason: "truncated or malformed control record".into(),
    })?;
    Ok(rec
        .key
        .filter(|k| k.len() >= 4)
        .map(|k| i16::from_be_bytes([k[2], k[3]])))
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
    let mut r = Cursor {
        buf: &rec_bytes[..],
    };
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
    Some(ParsedRecord {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use bytes::BytesMut;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn record(offset: i64, value: &[u8]) -> Record {
        let mut headers = IndexMap::new();
        headers.insert(
            StrBytes::from_static_str("h"),
            Some(Bytes::from_static(b"hv")),
        );
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

    fn decode(
        topic: &str,
        partition: i32,
        data: &Bytes,
        from: i64,
        limit: usize,
    ) -> Result<Fetched, BatchError> {
        let mut f = decode_fetched(topic, partition, data, from, limit, None);
        match f.error.take() {
            Some(e) => Err(e),
            None => Ok(f),
        }
    }

    /// Batches written by kafka-protocol's own encoder: an independent writer for our reader.
    fn batch(records: &[Record], compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn reads_plain_gzip_and_snappy_batches() {
        for compression in [Compression::None, Compression::Gzip, Compression::Snappy] {
            let recs: Vec<Record> = (10..20).map(|o| record(o, &vec![o as u8; 300])).collect();
            let data = batch(&recs, compression);
            let got = decode("t", 3, &data, 0, 1 << 20).unwrap();
            assert_eq!(got.next_offset, Some(20), "{compression:?}");
            assert_eq!(got.records.len(), 10);
            for (r, want) in got.records.iter().zip(&recs) {
                assert_eq!((&*r.topic, r.partition, r.offset), ("t", 3, want.offset));
                assert_eq!(r.timestamp, want.timestamp);
                assert_eq!(r.key, want.key);
                assert_eq!(r.value, want.value);
                assert_eq!(
                    r.headers,
                    vec![("h".to_string(), Some(Bytes::from_static(b"hv")))]
                );
            }
        }
    }

    #[test]
    fn skips_records_below_the_position_and_stops_at_a_partial_batch() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(
            &[record(0, b"a"), record(1, b"b")],
            Compression::None,
        ));
        let second = batch(&[record(2, b"c")], Compression::None);
        data.extend_from_slice(&second[..second.len() - 3]);
        let got = decode("t", 0, &data.freeze(), 1, 1 << 20).unwrap();
        assert_eq!(
            got.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(got.next_offset, Some(2));
    }

    #[test]
    fn corrupt_and_hostile_batches_are_errors() {
        let good = batch(&[record(5, b"v")], Compression::None);
        // flipped byte in the body: CRC mismatch
        let mut bad = good.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let e = decode("t", 0, &Bytes::from(bad), 0, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), "corrupt-record-batch");
        // a record count of 2^31-1 with a valid CRC: refused before any allocation
        let mut huge = good.to_vec();
        huge[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&huge[21..]);
        huge[17..21].copy_from_slice(&crc.to_be_bytes());
        let e = decode("t", 0, &Bytes::from(huge), 0, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), "corrupt-record-batch");
        // legacy magic
        let mut old = good.to_vec();
        old[16] = 1;
        assert_eq!(
            decode("t", 0, &Bytes::from(old), 0, 1 << 20)
                .unwrap_err()
                .kind(),
            "unsupported-record-format"
        );
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
            let _ = decode("t", 0, &Bytes::from(junk), 0, 1 << 20);
        }
    }

    #[test]
    fn records_land_in_one_exact_allocation() {
        let mut data = BytesMut::new();
        for base in [0i64, 100, 200] {
            let recs: Vec<Record> = (base..base + 37).map(|o| record(o, b"v")).collect();
            data.extend_from_slice(&batch(&recs, Compression::None));
        }
        let got = decode("t", 0, &data.freeze(), 0, 1 << 20).unwrap();
        assert_eq!(got.records.len(), 111);
        assert_eq!(got.records.capacity(), 111, "sized from the batch headers");
    }

    #[test]
    fn a_batch_that_breaks_midway_gives_none_of_its_records() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(&[record(0, b"a")], Compression::None));
        // Two records, but a header (with a valid CRC) that says three: the third does not parse.
        let mut bad = batch(&[record(1, b"b"), record(2, b"c")], Compression::None).to_vec();
        bad[57..61].copy_from_slice(&3i32.to_be_bytes());
        let crc = crc32c::crc32c(&bad[21..]);
        bad[17..21].copy_from_slice(&crc.to_be_bytes());
        data.extend_from_slice(&bad);
        let f = decode_fetched("t", 0, &data.freeze(), 0, 1 << 20, None);
        assert_eq!(
            f.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0]
        );
        assert_eq!(f.next_offset, Some(1));
        assert_eq!(
            f.error.map(|e| e.kind().as_str()),
            Some("corrupt-record-batch")
        );
    }

    #[test]
    fn a_bad_batch_keeps_what_came_before_it() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(
            &[record(0, b"a"), record(1, b"b")],
            Compression::None,
        ));
        let mut bad = batch(&[record(2, b"c")], Compression::None).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        data.extend_from_slice(&bad);
        data.extend_from_slice(&batch(&[record(3, b"d")], Compression::None));
        let f = decode_fetched("t", 0, &data.freeze(), 0, 1 << 20, None);
        assert_eq!(
            f.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(
            f.next_offset,
            Some(2),
            "the position stops at the bad batch"
        );
        assert_eq!(
            f.error.map(|e| e.kind().as_str()),
            Some("corrupt-record-batch")
        );
    }

    #[test]
    fn decompression_is_capped() {
        let recs: Vec<Record> = (0..50).map(|o| record(o, &[0u8; 10_000])).collect();
        for compression in [Compression::Gzip, Compression::Snappy] {
            let data = batch(&recs, compression);
            assert!(data.len() < 100_000);
            match decode("t", 0, &data, 0, 5_000) {
                Err(e) => assert_eq!(e.kind(), "record-batch-too-large", "{compression:?}"),
                Ok(f) => panic!(
                    "{compression:?}: {} records, {} bytes compressed",
                    f.records.len(),
                    data.len()
                ),
            }
        }
    }
}
