//! The on-disk record frame of a spool segment, and the scan that finds valid frames in a segment's bytes.
//!
//! Must not touch files: it encodes and checks bytes only. Must never trust a length it reads: every
//! length is bounded by [`MAX_PAYLOAD`] and by the bytes that are actually there.
//!
//! Segment = `SEGMENT_MAGIC` (8 bytes) then frames. Frame = `len: u32 LE` | `crc32c(payload): u32 LE` | payload.
//! Payload = `seq: u64 LE` | `timestamp_ms: u64 LE` | `topic_len: u16 LE` | topic (UTF-8) |
//! `key_len: u32 LE` (`u32::MAX` = no key) | key | value (the rest).

use crate::short_copy::extend;

/// The first 8 bytes of every segment file (format version 1).
pub const SEGMENT_MAGIC: &[u8; 8] = b"AESPOOL1";
/// Length + CRC.
pub const FRAME_HEADER: usize = 8;
/// seq + timestamp + topic length + key length.
pub const MIN_PAYLOAD: usize = 8 + 8 + 2 + 4;
/// Largest payload accepted (Kafka's default `message.max.bytes` is about 1 MiB).
pub const MAX_PAYLOAD: usize = 1024 * 1024 + 4096;
const NO_KEY: u32 = u32::MAX;

/// One decoded frame, borrowing from the segment bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The record's sequence number.
    pub seq: u64,
    /// When it was spooled, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The Kafka topic.
    pub topic: &'a str,
    /// The Kafka key, if any.
    pub key: Option<&'a [u8]>,
    /// The Kafka value.
    pub value: &'a [u8],
}

/// Encode one frame (header + payload).
#[cfg(test)]
pub fn encode(
    seq: u64,
    timestamp_ms: u64,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(seq, timestamp_ms, topic, key, value, &mut out)?;
    Some(out)
}

/// Encode one frame (header + payload) into `out`, replacing what it held (so one buffer serves every
/// append).
pub fn encode_into(
    seq: u64,
    timestamp_ms: u64,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    let topic_len = u16::try_from(topic.len()).ok()?;
    let key_len = match key {
        Some(k) => u32::try_from(k.len()).ok().filter(|l| *l != NO_KEY)?,
        None => NO_KEY,
    };
    let payload_len = MIN_PAYLOAD + topic.len() + key.map_or(0, <[u8]>::len) + value.len();
    if payload_len > MAX_PAYLOAD {
        return None;
    }
    out.clear();
    out.reserve(FRAME_HEADER + payload_len);
    extend(out, &(payload_len as u32).to_le_bytes());
    extend(out, &[0; 4]);
    extend(out, &seq.to_le_bytes());
    extend(out, &timestamp_ms.to_le_bytes());
    extend(out, &topic_len.to_le_bytes());
    extend(out, topic.as_bytes());
    extend(out, &key_len.to_le_bytes());
    if let Some(k) = key {
        extend(out, k);
    }
    extend(out, value);
    let crc = crc32c::crc32c(out.get(FRAME_HEADER..)?);
    out.get_mut(4..8)?.copy_from_slice(&crc.to_le_bytes());
    Some(())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The payload length announced by a frame header, if it is within bounds.
pub fn payload_len(header: &[u8]) -> Option<usize> {
    let len = u32_at(header, 0)? as usize;
    (MIN_PAYLOAD..=MAX_PAYLOAD).contains(&len).then_some(len)
}

/// Check the CRC and decode a payload.
pub fn decode_payload(crc: u32, payload: &[u8]) -> Option<FrameRef<'_>> {
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    let seq = u64_at(payload, 0)?;
    let timestamp_ms = u64_at(payload, 8)?;
    let topic_len = u16_at(payload, 16)? as usize;
    let topic = std::str::from_utf8(payload.get(18..18 + topic_len)?).ok()?;
    let at = 18 + topic_len;
    let key_len = u32_at(payload, at)?;
    let at = at + 4;
    let (key, at) = if key_len == NO_KEY {
        (None, at)
    } else {
        let end = at.checked_add(key_len as usize)?;
        (Some(payload.get(at..end)?), end)
    };
    let value = payload.get(at..)?;
    Some(FrameRef {
        seq,
        timestamp_ms,
        topic,
        key,
        value,
    })
}

/// Decode the frame starting at `pos` in `buf`; `after` is the sequence number it must exceed.
/// Returns the frame and the offset just past it.
pub fn parse_at(buf: &[u8], pos: usize, after: Option<u64>) -> Option<(FrameRef<'_>, usize)> {
    let header = buf.get(pos..pos.checked_add(FRAME_HEADER)?)?;
    let len = payload_len(header)?;
    let crc = u32_at(header, 4)?;
    let start = pos + FRAME_HEADER;
    let end = start.checked_add(len)?;
    // Cheap filter before the CRC: the sequence number must move forward.
    let seq = u64_at(buf, start)?;
    if after.is_some_and(|a| seq <= a) {
        return None;
    }
    let frame = decode_payload(crc, buf.get(start..end)?)?;
    Some((frame, end))
}

/// What a scan of one segment's bytes found.
#[derive(Debug, Default, Clone)]
pub struct SegmentScan {
    /// Valid frames: (start offset, end offset, seq, timestamp).
    pub frames: Vec<(usize, usize, u64, u64)>,
    /// Frames that failed their check in the middle of the segment and were skipped by resynchronising.
    pub corrupt_mid: u64,
    /// Bytes skipped while resynchronising past those frames.
    pub skipped_bytes: u64,
    /// Offset where the valid data ends, when the segment ends in a torn or corrupt tail.
    pub torn_tail_at: Option<usize>,
}

/// Scan a whole segment (including its magic). A frame that fails its checks is skipped by searching for
/// the next offset where a valid frame with a larger sequence number starts; when none follows, the rest is
/// a torn tail. `after` is the last sequence number of the previous segment.
pub fn scan(buf: &[u8], mut after: Option<u64>) -> SegmentScan {
    let mut out = SegmentScan::default();
    let mut pos = SEGMENT_MAGIC.len();
    while pos < buf.len() {
        if let Some((f, end)) = parse_at(buf, pos, after) {
            out.frames.push((pos, end, f.seq, f.timestamp_ms));
            after = Some(f.seq);
            pos = end;
            continue;
        }
        match (pos + 1..buf.len()).find(|&q| parse_at(buf, q, after).is_some()) {
            Some(q) => {
                out.corrupt_mid += 1;
                out.skipped_bytes += (q - pos) as u64;
                pos = q;
            }
            None => {
                out.torn_tail_at = Some(pos);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut b = SEGMENT_MAGIC.to_vec();
        for f in frames {
            b.extend_from_slice(f);
        }
        b
    }

    #[test]
    fn roundtrip_and_scan() {
        let a = encode(1, 10, "t", Some(b"k"), b"v1").unwrap();
        let b = encode(2, 11, "t", None, b"v2").unwrap();
        let buf = seg(&[a.clone(), b]);
        let s = scan(&buf, None);
        assert_eq!(s.frames.len(), 2);
        assert!(s.torn_tail_at.is_none());
        let (f, _) = parse_at(&buf, 8, None).unwrap();
        assert_eq!(
            (f.seq, f.topic, f.key, f.value),
            (1, "t", Some(&b"k"[..]), &b"v1"[..])
        );
        let (f, _) = parse_at(&buf, 8 + a.len(), Some(1)).unwrap();
        assert_eq!((f.seq, f.key, f.value), (2, None, &b"v2"[..]));
    }

    #[test]
    fn flipped_byte_in_middle_is_skipped_and_torn_tail_found() {
        let frames: Vec<_> = (1..=3)
            .map(|i| encode(i, 0, "t", None, b"value").unwrap())
            .collect();
        let mut buf = seg(&frames);
        let second = 8 + frames[0].len();
        buf[second + 20] ^= 0x40;
        let s = scan(&buf, None);
        assert_eq!(s.frames.iter().map(|f| f.2).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(s.corrupt_mid, 1);
        let cut = &buf[..buf.len() - 3];
        let s = scan(cut, None);
        assert_eq!(s.frames.iter().map(|f| f.2).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.torn_tail_at, Some(second));
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let mut buf = SEGMENT_MAGIC.to_vec();
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        buf.extend_from_slice(&[0xff; 40]);
        let s = scan(&buf, None);
        assert!(s.frames.is_empty());
        assert_eq!(s.torn_tail_at, Some(8));
    }
}
