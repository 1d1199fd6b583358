//! Writing record batches (v2): appended record by record, no per-record allocation, then
//! finished with its header, (compressed) records and CRC-32C. An idempotent producer stamps
//! its producer id, epoch and base sequence into the header ([`BatchBuilder::set_producer`]); a
//! batch the broker refuses as too large is split in two ([`BatchBuilder::split_off`]).
//!
//! Must not do I/O.

use bytes::BufMut;

use super::Compression;
use crate::kafka::KafkaError;

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

fn varint_len(v: i64) -> usize {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

fn put_bytes(buf: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i64);
            crate::short_copy::extend(buf, b);
        }
    }
}

/// Size of the fixed batch header (baseOffset .. recordCount).
pub const BATCH_HEADER_LEN: usize = 61;

/// Builds one record batch (magic 2), appending records as they come.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    records: Vec<u8>,
    count: i32,
    base_ts: i64,
    max_ts: i64,
    /// Producer id, epoch and base sequence for the header; `None`: not idempotent (-1s).
    producer: Option<(i64, i16, i32)>,
    /// The batch belongs to a transaction (attribute bit 4): consumers in read_committed hold
    /// it back until its transaction's marker, and skip it when that marker is an abort.
    transactional: bool,
}

fn get_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn get_varint(buf: &[u8]) -> Option<(i64, usize)> {
    get_uvarint(buf).map(|(u, n)| (((u >> 1) as i64) ^ -((u & 1) as i64), n))
}

/// One record as appended: its timestamp delta and the bytes after the offset delta (key,
/// value, headers). `None` if the bytes are not a record this builder wrote.
fn next_record(buf: &[u8]) -> Option<(i64, &[u8], usize)> {
    let (len, n) = get_varint(buf)?;
    let end = n.checked_add(usize::try_from(len).ok()?)?;
    let body = buf.get(n..end)?;
    let (ts_delta, a) = get_varint(body.get(1..)?)?;
    let (_, b) = get_varint(body.get(1 + a..)?)?;
    Some((ts_delta, body.get(1 + a + b..)?, end))
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new() -> BatchBuilder {
        BatchBuilder::default()
    }

    /// An empty batch with room for `bytes` of records: appending up to that never moves them.
    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        BatchBuilder {
            records: Vec::with_capacity(bytes),
            ..BatchBuilder::default()
        }
    }

    /// Records added so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was added yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed size of the batch so far, header included.
    pub fn size(&self) -> usize {
        BATCH_HEADER_LEN + self.records.len()
    }

    /// Encoded size a record would add (an upper bound within a few bytes).
    pub fn record_size(key: Option<&[u8]>, value: &[u8], headers: &[(String, Vec<u8>)]) -> usize {
        let h: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
        key.map_or(1, |k| k.len() + 5) + value.len() + 5 + h + 25
    }

    /// Stamp the idempotent producer's id, epoch and this batch's base sequence into the header
    /// (`None`: -1, -1, -1, a batch of a producer that is not idempotent).
    pub fn set_producer(&mut self, producer: Option<(i64, i16, i32)>) {
        self.producer = producer;
    }

    /// Mark the batch as part of a transaction (kept across [`BatchBuilder::split_off`]).
    pub fn set_transactional(&mut self, transactional: bool) {
        self.transactional = transactional;
    }

    /// Split the batch in two: this one keeps records `0..at`, the returned one has the rest,
    /// with their timestamps, keys, values and headers unchanged (offset deltas renumbered).
    /// The producer fields are cleared on both (a split batch is sequenced anew).
    pub fn split_off(&mut self, at: usize) -> BatchBuilder {
        let mut pos = 0;
        let mut kept = 0;
        let mut max_ts = self.base_ts;
        while kept < at {
            let Some((ts_delta, _, len)) = self.records.get(pos..).and_then(next_record) else {
                break;
            };
            max_ts = max_ts.max(self.base_ts + ts_delta);
            pos += len;
            kept += 1;
        }
        let tail = self.records.split_off(pos);
        let mut other = BatchBuilder::new();
        other.transactional = self.transactional;
        let mut at_byte = 0;
        while let Some((ts_delta, rest, len)) = tail.get(at_byte..).and_then(next_record) {
            other.push_record(self.base_ts + ts_delta, rest);
            at_byte += len;
        }
        self.count = kept as i32;
        self.max_ts = max_ts;
        self.producer = None;
        other
    }

    /// Append one record with its timestamp (ms since the epoch).
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
    ) {
        self.start_record(timestamp);
        let ts_delta = timestamp - self.base_ts;
        let offset_delta = self.count as i64;
        let mut body_len = 1 + varint_len(ts_delta) + varint_len(offset_delta);
        body_len += key.map_or(1, |k| varint_len(k.len() as i64) + k.len());
        body_len += value.map_or(1, |v| varint_len(v.len() as i64) + v.len());
        body_len += varint_len(headers.len() as i64);
        for (k, v) in headers {
            body_len += varint_len(k.len() as i64) + k.len() + varint_len(v.len() as i64) + v.len();
        }
        let r = &mut self.records;
        r.reserve(body_len + 5);
        put_varint(r, body_len as i64);
        r.push(0); // attributes
        put_varint(r, ts_delta);
        put_varint(r, offset_delta);
        put_bytes(r, key);
        put_bytes(r, value);
        put_varint(r, headers.len() as i64);
        for (k, v) in headers {
            put_bytes(r, Some(k.as_bytes()));
            put_bytes(r, Some(v));
        }
        self.count += 1;
    }

    fn start_record(&mut self, timestamp: i64) {
        if self.count == 0 {
            self.base_ts = timestamp;
            self.max_ts = timestamp;
        }
        self.max_ts = self.max_ts.max(timestamp);
    }

    /// Append a record whose key, value and headers are already encoded (`rest`).
    fn push_record(&mut self, timestamp: i64, rest: &[u8]) {
        self.start_record(timestamp);
        let ts_delta = timestamp - self.base_ts;
        let offset_delta = self.count as i64;
        let body_len = 1 + varint_len(ts_delta) + varint_len(offset_delta) + rest.len();
        let r = &mut self.records;
        r.reserve(body_len + 5);
        put_varint(r, body_len as i64);
        r.push(0); // attributes
        put_varint(r, ts_delta);
        put_varint(r, offset_delta);
        crate::short_copy::extend(r, rest);
        self.count += 1;
    }

    /// Finish the batch: header, (compressed) records, CRC-32C.
    pub fn finish(&self, compression: Compression) -> Result<Vec<u8>, KafkaError> {
        let mut out = Vec::with_capacity(self.size());
        out.put_i64(0); // base offset
        out.put_i32(0); // batch length, patched below
        out.put_i32(-1); // partition leader epoch
        out.put_i8(2); // magic
        out.put_u32(0); // crc, patched below
        let crc_start = out.len();
        out.put_i16(compression.attribute() | if self.transactional { 0x10 } else { 0 });
        out.put_i32(self.count.saturating_sub(1)); // last offset delta
        out.put_i64(self.base_ts);
        out.put_i64(self.max_ts);
        let (producer_id, epoch, base_sequence) = self.producer.unwrap_or((-1, -1, -1));
        out.put_i64(producer_id);
        out.put_i16(epoch);
        out.put_i32(base_sequence);
        out.put_i32(self.count);
        compression.compress_into(&self.records, &mut out)?;
        let batch_len = (out.len() - 12) as i32;
        out[8..12].copy_from_slice(&batch_len.to_be_bytes());
        let crc = crc32c::crc32c(&out[crc_start..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Our batches decode with kafka-protocol's independent decoder, for every codec.
    #[test]
    fn batches_decode_with_kafka_protocol() {
        for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
            let mut b = BatchBuilder::new();
            let headers = vec![("trace".to_string(), b"abc".to_vec())];
            b.append(1_700_000_000_000, Some(b"k1"), Some(b"value-one"), &headers);
            b.append(1_700_000_000_005, None, Some(&[0u8; 300]), &[]);
            b.append(1_700_000_000_003, Some(b""), None, &[]);
            let bytes = b.finish(c).unwrap();
            let r = avro_edge_testkit::decode_batches(Bytes::from(bytes)).unwrap();
            assert_eq!(r.len(), 3, "{c:?}");
            assert_eq!(r[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(r[0].value.as_deref(), Some(&b"value-one"[..]));
            assert_eq!(r[0].timestamp, 1_700_000_000_000);
            assert_eq!(r[0].headers.len(), 1);
            assert_eq!(r[1].key, None);
            assert_eq!(r[1].value.as_deref(), Some(&[0u8; 300][..]));
            assert_eq!(r[1].offset, 1);
            assert_eq!(r[1].timestamp, 1_700_000_000_005);
            assert_eq!(r[2].key.as_deref(), Some(&b""[..]));
            assert_eq!(r[2].value, None);
        }
    }

    /// Every codec, lz4 and zstd included (kafka-protocol reads them only with its C features),
    /// round-trips through our reader: records, offsets, timestamps and headers.
    #[test]
    fn batches_of_every_codec_read_back() {
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for c in codecs {
            let mut b = BatchBuilder::new();
            for i in 0..500u32 {
                let value = format!("reading-{i}-{}", "x".repeat(i as usize % 300));
                let key = (i % 3 != 0).then(|| format!("sensor-{}", i % 7));
                b.append(
                    1_700_000_000_000 + i64::from(i),
                    key.as_deref().map(str::as_bytes),
                    Some(value.as_bytes()),
                    &[("n".to_string(), i.to_be_bytes().to_vec())],
                );
            }
            let bytes = Bytes::from(b.finish(c).unwrap());
            assert_eq!(bytes[22] & 0x07, c.attribute() as u8, "{c}: codec bits");
            let f = super::super::decode_fetched("t", 1, &bytes, 0, 1 << 20, None);
            assert!(f.error.is_none(), "{c}: {:?}", f.error);
            assert_eq!(f.records.len(), 500, "{c}");
            for (i, r) in f.records.iter().enumerate() {
                let value = format!("reading-{i}-{}", "x".repeat(i % 300));
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
                assert_eq!(r.value.as_deref(), Some(value.as_bytes()), "{c}");
                let key = (i % 3 != 0).then(|| format!("sensor-{}", i % 7));
                assert_eq!(r.key.as_deref(), key.as_deref().map(str::as_bytes));
                let n = Bytes::copy_from_slice(&(i as u32).to_be_bytes());
                assert_eq!(r.headers, vec![("n".to_string(), Some(n))]);
            }
        }
    }

    /// The header carries the producer id, epoch and base sequence at Kafka's byte positions.
    #[test]
    fn producer_fields_land_in_the_header() {
        let mut b = BatchBuilder::new();
        b.append(1, None, Some(b"v"), &[]);
        let plain = b.finish(Compression::None).unwrap();
        assert_eq!(&plain[43..57], &[0xff; 14]);
        b.set_producer(Some((0x0102_0304_0506_0708, 9, 77)));
        let out = b.finish(Compression::None).unwrap();
        assert_eq!(
            i64::from_be_bytes(out[43..51].try_into().unwrap()),
            0x0102_0304_0506_0708
        );
        assert_eq!(i16::from_be_bytes(out[51..53].try_into().unwrap()), 9);
        assert_eq!(i32::from_be_bytes(out[53..57].try_into().unwrap()), 77);
        assert_eq!(
            avro_edge_testkit::decode_batches(Bytes::from(out))
                .unwrap()
                .len(),
            1
        );
    }

    /// Split halves hold the records in order with their timestamps, keys, values and headers.
    #[test]
    fn split_keeps_every_record_in_order() {
        let mut b = BatchBuilder::new();
        let headers = vec![("h".to_string(), b"x".to_vec())];
        for i in 0..5i64 {
            let v = vec![i as u8; 10 + i as usize * 200];
            b.append(1_000 + 7 * i, Some(&[i as u8]), Some(&v), &headers);
        }
        b.set_producer(Some((5, 0, 10)));
        let tail = b.split_off(2);
        assert_eq!((b.len(), tail.len()), (2, 3));
        assert_eq!(b.producer, None);
        let mut all = Vec::new();
        for part in [&b, &tail] {
            let bytes = part.finish(Compression::Gzip).unwrap();
            let recs = avro_edge_testkit::decode_batches(Bytes::from(bytes)).unwrap();
            for (j, r) in recs.iter().enumerate() {
                assert_eq!(r.offset, j as i64);
            }
            all.extend(recs);
        }
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.timestamp, 1_000 + 7 * i as i64);
            assert_eq!(r.key.as_deref(), Some(&[i as u8][..]));
            assert_eq!(r.value.as_ref().map(|v| v.len()), Some(10 + i * 200));
            assert_eq!(r.headers.len(), 1);
        }
        let mut one = BatchBuilder::new();
        one.append(3, None, Some(b"v"), &[]);
        let rest = one.split_off(1);
        assert_eq!((one.len(), rest.len()), (1, 0));
    }

    /// A transaction's batch carries attribute bit 4 (what read_committed consumers filter by),
    /// its halves after a split too; a plain batch does not.
    #[test]
    fn transactional_batches_carry_their_attribute_bit() {
        let mut b = BatchBuilder::new();
        for i in 0..4u8 {
            b.append(1, None, Some(&[i]), &[]);
        }
        assert_eq!(b.finish(Compression::Gzip).unwrap()[22], 1);
        b.set_transactional(true);
        let rest = b.split_off(2);
        for half in [&b, &rest] {
            let bytes = half.finish(Compression::Gzip).unwrap();
            assert_eq!(i16::from_be_bytes([bytes[21], bytes[22]]), 0x10 | 1);
        }
    }
}
