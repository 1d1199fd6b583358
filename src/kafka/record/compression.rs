//! Batch compression, both ways, all pure Rust: the codecs we write ([`Compression`]: gzip,
//! snappy, lz4 in Kafka's LZ4 frame format, zstd) and the capped decompression of the batches we
//! read (the same four).
//!
//! Must not do I/O, and must not let a batch decompress without bound: every codec stops at the
//! consumer's limit and reports [`BatchError::TooLarge`]; a frame that does not decode is
//! [`BatchError::Corrupt`], never a panic.

use std::io::{Read, Write};

use kafka_protocol::compression::{Compressor, Gzip, Snappy};

use super::cursor::Cursor;
use super::error::BatchError;
use crate::kafka::KafkaError;

/// Batch compression codecs (all pure Rust, written and read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Uncompressed (`compression.type=none`, the default).
    #[default]
    None,
    /// gzip (`compression.type=gzip`): compact, the most CPU.
    Gzip,
    /// Snappy (`compression.type=snappy`): fast, less compact.
    Snappy,
    /// LZ4 frames (`compression.type=lz4`): fast, 64 KiB independent blocks as Kafka's Java
    /// client writes them.
    Lz4,
    /// Zstandard (`compression.type=zstd`), written at ruzstd's fastest level (about zstd level 1).
    Zstd,
}

/// The one parser of compression names (CLI, config file, env): `none`, `gzip`, `snappy`, `lz4`,
/// `zstd`, any case.
impl std::str::FromStr for Compression {
    type Err = KafkaError;
    fn from_str(s: &str) -> Result<Compression, KafkaError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(KafkaError::Config(format!("'{s}': expected {NAMES}"))),
        }
    }
}

/// What [`Compression`]'s parser accepts, for messages.
const NAMES: &str = "none, gzip, snappy, lz4 or zstd";

/// The canonical spelling: `none`, `gzip`, `snappy`, `lz4`, `zstd`.
impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        })
    }
}

/// From a string, as [`FromStr`](std::str::FromStr).
impl<'de> serde::Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Compression, D::Error> {
        d.deserialize_any(crate::kafka::setting::FromStrVisitor::new(NAMES, false))
    }
}

impl Compression {
    /// The codec bits of a batch's attributes (Kafka's numbering).
    pub(super) fn attribute(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Append `records` to `out`, compressed with this codec.
    pub(super) fn compress_into(self, records: &[u8], out: &mut Vec<u8>) -> Result<(), KafkaError> {
        let failed = |codec: &str, e: &dyn std::fmt::Display| {
            KafkaError::Protocol(format!("compressing batch ({codec}): {e}"))
        };
        match self {
            Compression::None => out.extend_from_slice(records),
            Compression::Gzip => Gzip::compress(out, |b| {
                b.extend_from_slice(records);
                Ok(())
            })
            .map_err(|e| failed("gzip", &e))?,
            Compression::Snappy => Snappy::compress(out, |b| {
                b.extend_from_slice(records);
                Ok(())
            })
            .map_err(|e| failed("snappy", &e))?,
            Compression::Lz4 => lz4_frame(records, out).map_err(|e| failed("lz4", &e))?,
            Compression::Zstd => ruzstd::encoding::compress(
                records,
                out,
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
        }
        Ok(())
    }
}

/// One LZ4 frame as Kafka's Java client writes it (`KafkaLZ4BlockOutputStream`): 64 KiB blocks,
/// independent (the Java reader refuses linked blocks), no block or content checksum (the
/// batch's CRC-32C covers the bytes).
fn lz4_frame(records: &[u8], out: &mut Vec<u8>) -> Result<(), lz4_flex::frame::Error> {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent);
    let mut enc = FrameEncoder::with_frame_info(info, out);
    enc.write_all(records)?;
    enc.finish()?;
    Ok(())
}

/// Decompress one batch's records with an output cap of `limit` bytes: gzip (all members),
/// snappy (xerial framing or raw), lz4 (frames), zstd (frames). `offset` names the batch in errors.
pub(super) fn decompress(
    codec: u8,
    data: &[u8],
    offset: i64,
    limit: usize,
) -> Result<Vec<u8>, BatchError> {
    let name = match codec {
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => {
            return Err(corrupt(
                offset,
                format!("unknown compression codec {codec}"),
            ));
        }
    };
    if data.is_empty() {
        return Err(corrupt(offset, format!("{name}: no compressed data")));
    }
    match codec {
        1 => read_capped(
            flate2::read::MultiGzDecoder::new(data),
            "gzip",
            offset,
            limit,
        ),
        2 => unsnappy(data, offset, limit),
        3 => {
            lz4_frames_complete(data).map_err(|e| corrupt(offset, format!("lz4: {e}")))?;
            read_capped(
                lz4_flex::frame::FrameDecoder::new(data),
                "lz4",
                offset,
                limit,
            )
        }
        _ => unzstd(data, offset, limit),
    }
}

fn corrupt(offset: i64, reason: String) -> BatchError {
    BatchError::Corrupt { offset, reason }
}

/// Everything a streaming decoder gives, stopping one byte past `limit` (then `TooLarge`).
fn read_capped(
    decoder: impl Read,
    codec: &str,
    offset: i64,
    limit: usize,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(offset, format!("{codec}: {e}")))?;
    if out.len() > limit {
        return Err(BatchError::TooLarge { offset, limit });
    }
    Ok(out)
}

/// Walk the LZ4 frames' structure (headers and block lengths, no decoding): every frame must end
/// with its end mark, and blocks may be at most 4 MiB (the format's largest size). lz4_flex's
/// decoder takes input that stops between two blocks for a complete frame; this refuses it.
fn lz4_frames_complete(data: &[u8]) -> Result<(), &'static str> {
    const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
    let mut c = Cursor { buf: data };
    let truncated = "truncated frame";
    while !c.buf.is_empty() {
        if c.take(4) != Some(&MAGIC[..]) {
            return Err("not an LZ4 frame");
        }
        let fd = c.take(2).ok_or(truncated)?;
        let (flg, bd) = (fd[0], fd[1]);
        if !(4..=7).contains(&(bd >> 4)) {
            return Err("bad block size in the frame descriptor");
        }
        let block_checksum = flg & 0x10 != 0;
        let optional = if flg & 0x08 != 0 { 8 } else { 0 } + if flg & 0x01 != 0 { 4 } else { 0 };
        c.take(optional + 1).ok_or(truncated)?; // content size, dictionary id, header checksum
        loop {
            let b = c.take(4).ok_or(truncated)?;
            let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff;
            if len == 0 {
                break;
            }
            c.take(len as usize + if block_checksum { 4 } else { 0 })
                .ok_or(truncated)?;
        }
        if flg & 0x04 != 0 {
            c.take(4).ok_or(truncated)?; // content checksum
        }
    }
    Ok(())
}

/// Snappy, xerial-framed (Java's `SnappyOutputStream`) or one raw block; each block's length is
/// read from its header and checked against the cap before any allocation.
fn unsnappy(data: &[u8], offset: i64, limit: usize) -> Result<Vec<u8>, BatchError> {
    const XERIAL: &[u8; 8] = b"\x82SNAPPY\x00";
    let mut out = Vec::new();
    let raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let snappy = |e: snap::Error| corrupt(offset, format!("snappy: {e}"));
        let n = snap::raw::decompress_len(block).map_err(snappy)?;
        if out.len().saturating_add(n) > limit {
            return Err(BatchError::TooLarge { offset, limit });
        }
        let start = out.len();
        out.resize(start + n, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(snappy)?;
        Ok(())
    };
    if data.len() >= 16 && &data[..8] == XERIAL {
        let mut c = Cursor { buf: &data[16..] };
        while !c.buf.is_empty() {
            let len = c
                .take(4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let block = len
                .and_then(|l| c.take(l))
                .ok_or_else(|| corrupt(offset, "snappy: truncated block".into()))?;
            raw_block(block, &mut out)?;
        }
    } else {
        raw_block(data, &mut out)?;
    }
    Ok(out)
}

/// The largest zstd window we accept: the consumer's limit, but at least 8 MiB (zstd's level 19
/// window, so a frame from any usual level decodes) and at most ruzstd's 128 MiB (libzstd's
/// default `windowLogMax` too). The decoder reserves the window up front, so this bounds memory
/// as much as the output cap does.
fn zstd_max_window(limit: usize) -> u64 {
    (limit as u64).clamp(8 << 20, ruzstd::decoding::DEFAULT_MAX_WINDOW_SIZE)
}

/// Zstandard: one or more frames back to back (a frame's content checksum, when present, is
/// checked), the output capped at `limit` across all of them.
fn unzstd(data: &[u8], offset: i64, limit: usize) -> Result<Vec<u8>, BatchError> {
    use ruzstd::decoding::StreamingDecoder;
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    let zstd = |e: &dyn std::fmt::Display| corrupt(offset, format!("zstd: {e}"));
    let mut src = data;
    let mut out = Vec::new();
    loop {
        let mut frame =
            match StreamingDecoder::new_with_max_window_size(&mut src, zstd_max_window(limit)) {
                Ok(frame) => frame,
                Err(FrameDecoderError::WindowSizeTooBig { .. }) => {
                    return Err(BatchError::TooLarge { offset, limit });
                }
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    skip_bytes(&mut src, length as usize)
                        .ok_or_else(|| zstd(&"truncated frame"))?;
                    if src.is_empty() {
                        break;
                    }
                    continue;
                }
                Err(e) => return Err(zstd(&e)),
            };
        let room = (limit - out.len()) as u64;
        (&mut frame)
            .take(room + 1)
            .read_to_end(&mut out)
            .map_err(|e| zstd(&e))?;
        if out.len() > limit {
            return Err(BatchError::TooLarge { offset, limit });
        }
        let d = &frame.decoder;
        if let Some(want) = d.get_checksum_from_data()
            && d.get_calculated_checksum() != Some(want)
        {
            return Err(zstd(&"content checksum mismatch"));
        }
        if src.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// Step over `n` bytes, if there are that many.
fn skip_bytes(src: &mut &[u8], n: usize) -> Option<()> {
    *src = src.get(n..)?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        c.compress_into(data, &mut out).unwrap();
        out
    }

    fn unpack(c: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
        match c {
            Compression::None => Ok(data.to_vec()),
            c => decompress(c.attribute() as u8, data, 7, limit),
        }
    }

    /// xorshift bytes: incompressible.
    fn noise(n: usize, mut seed: u32) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect()
    }

    #[test]
    fn names_parse_any_case_and_round_trip() {
        assert_eq!("GZIP".parse::<Compression>().unwrap(), Compression::Gzip);
        assert_eq!(" Lz4 ".parse::<Compression>().unwrap(), Compression::Lz4);
        assert_eq!("ZSTD".parse::<Compression>().unwrap(), Compression::Zstd);
        for c in CODECS {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
        }
        let e = "brotli".parse::<Compression>().unwrap_err().to_string();
        assert!(
            e.contains("'brotli': expected none, gzip, snappy, lz4 or zstd"),
            "{e}"
        );
    }

    /// Small, repetitive, incompressible and multi-block (lz4 blocks are 64 KiB, zstd's 128 KiB).
    #[test]
    fn every_codec_round_trips() {
        let readings = include_bytes!("../../../fixtures/compression/readings.txt");
        let mut mixed = readings.repeat(120);
        mixed.extend(noise(200_000, 0x9e37_79b9));
        for data in [&b"x"[..], readings, &noise(70_000, 1), &mixed] {
            for c in CODECS {
                let packed = compress(c, data);
                let back = unpack(c, &packed, data.len()).unwrap_or_else(|e| panic!("{c}: {e}"));
                assert!(
                    back == data,
                    "{c}: {} bytes came back different",
                    data.len()
                );
            }
        }
        let z = compress(Compression::Zstd, &mixed);
        let l = compress(Compression::Lz4, &mixed);
        assert!(z.len() < mixed.len() && l.len() < mixed.len());
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
        assert_eq!(&l[..4], &[0x04, 0x22, 0x4d, 0x18], "lz4 frame magic");
        assert_eq!(l[4] & 0xe0, 0x60, "lz4 FLG: version 1, independent blocks");
        assert_eq!(l[5], 0x40, "lz4 BD: 64 KiB blocks, as Kafka's Java client");
    }

    /// Frames from the reference C tools (`zstd -19`, `lz4`) decode to the original.
    #[test]
    fn frames_from_the_reference_tools_decode() {
        let readings = include_bytes!("../../../fixtures/compression/readings.txt");
        let zst = include_bytes!("../../../fixtures/compression/readings.txt.zst");
        let lz4 = include_bytes!("../../../fixtures/compression/readings.txt.lz4");
        assert_eq!(decompress(4, zst, 0, 1 << 20).unwrap(), readings);
        assert_eq!(decompress(3, lz4, 0, 1 << 20).unwrap(), readings);
        // Two frames back to back (and a skippable frame between them) are one output.
        let mut two = zst.to_vec();
        two.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        two.extend_from_slice(zst);
        assert_eq!(decompress(4, &two, 0, 1 << 20).unwrap(), readings.repeat(2));
        // The exact size is allowed; a byte less is too large.
        let n = readings.len();
        assert!(decompress(4, zst, 0, n).is_ok() && decompress(3, lz4, 0, n).is_ok());
        for codec in [3, 4] {
            let data: &[u8] = if codec == 3 { lz4 } else { zst };
            let e = decompress(codec, data, 0, n - 1).unwrap_err();
            assert_eq!(e.kind(), "record-batch-too-large", "codec {codec}");
        }
    }

    /// A decompression bomb stops at the limit with a typed error, for every codec.
    #[test]
    fn decompression_is_capped() {
        let bomb = vec![0u8; 4 << 20];
        for c in &CODECS[1..] {
            let packed = compress(*c, &bomb);
            assert!(packed.len() < 300_000, "{c}: {}", packed.len());
            match unpack(*c, &packed, 5_000) {
                Err(BatchError::TooLarge { offset, limit }) => {
                    assert_eq!((offset, limit), (7, 5_000))
                }
                Err(e) => panic!("{c}: {e}"),
                Ok(out) => panic!("{c}: decoded {} bytes", out.len()),
            }
        }
    }

    /// A zstd frame that announces a huge window is refused before the decoder reserves it.
    #[test]
    fn a_zstd_window_over_the_cap_is_refused() {
        // magic, FHD 0 (no single segment, no checksum), window descriptor: 2^41 and 2^26 bytes.
        for wd in [0xf8u8, 0x80] {
            let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, wd, 0x01, 0x00, 0x00];
            let e = decompress(4, &frame, 3, 1 << 20).unwrap_err();
            assert_eq!(
                e.kind(),
                "record-batch-too-large",
                "window byte {wd:#x}: {e}"
            );
        }
        assert_eq!(zstd_max_window(1 << 20), 8 << 20);
        assert_eq!(zstd_max_window(64 << 20), 64 << 20);
        assert_eq!(zstd_max_window(usize::MAX), 128 << 20);
    }

    /// Truncated, mangled or foreign frames are `Corrupt` errors naming the codec; random damage
    /// never panics and never gives anything but a typed error or (lz4 has no checksum over
    /// literals here) other bytes.
    #[test]
    fn corrupt_frames_are_typed_errors() {
        let readings = include_bytes!("../../../fixtures/compression/readings.txt").repeat(30);
        for c in [Compression::Lz4, Compression::Zstd] {
            let good = compress(c, &readings);
            let codec = c.attribute() as u8;
            let name = c.to_string();
            let mut cases: Vec<Vec<u8>> = vec![
                Vec::new(),
                good[..good.len() / 2].to_vec(),
                good[..good.len() - 1].to_vec(),
                b"not a frame at all".to_vec(),
            ];
            let mut bad_magic = good.clone();
            bad_magic[0] ^= 0xff;
            cases.push(bad_magic);
            let other = if codec == 3 { 4 } else { 3 };
            cases.push(compress(
                if codec == 3 {
                    Compression::Zstd
                } else {
                    Compression::Lz4
                },
                b"x",
            ));
            for (i, case) in cases.iter().enumerate() {
                match decompress(codec, case, 11, 1 << 20) {
                    Err(BatchError::Corrupt { offset, reason }) => {
                        assert_eq!(offset, 11);
                        assert!(reason.starts_with(&format!("{name}: ")), "{reason}");
                    }
                    Err(e) => panic!("{name} case {i}: {e}"),
                    Ok(out) => panic!("{name} case {i}: decoded {} bytes", out.len()),
                }
            }
            assert!(decompress(other, &good, 0, 1 << 20).is_err());
            let mut seed = 0x2545_f491u32;
            for round in 0..2_000 {
                let mut bad = good.clone();
                for _ in 0..1 + round % 4 {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let at = seed as usize % bad.len();
                    bad[at] ^= (seed >> 24) as u8 | 1;
                }
                if let Err(e) = decompress(codec, &bad, 0, 1 << 20) {
                    assert!(
                        matches!(
                            e.kind().as_str(),
                            "corrupt-record-batch" | "record-batch-too-large"
                        ),
                        "{e}"
                    );
                }
            }
        }
        let e = decompress(5, b"abc", 0, 10).unwrap_err();
        assert_eq!(e.kind(), "corrupt-record-batch");
    }
}
