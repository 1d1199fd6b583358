//! Batch compression: the codecs we write ([`Compression`], all pure Rust) and the capped
//! decompression of the batches we read (gzip, snappy; lz4 and zstd are refused).
//!
//! Must not do I/O, and must not let a batch decompress without bound.

use std::io::Read;

use super::read::{BatchError, Cursor};
use crate::kafka::KafkaError;

/// Batch compression codecs we can write (all pure Rust).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Uncompressed (`compression.type=none`, the default).
    #[default]
    None,
    /// gzip (`compression.type=gzip`): smallest output, most CPU.
    Gzip,
    /// Snappy (`compression.type=snappy`): fast, less compact.
    Snappy,
}

/// The one parser of compression names (CLI, config file, env): `none`, `gzip`, `snappy`, any case.
/// `lz4` and `zstd` are refused with their own message (not supported yet).
impl std::str::FromStr for Compression {
    type Err = KafkaError;
    fn from_str(s: &str) -> Result<Compression, KafkaError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            codec @ ("lz4" | "zstd") => Err(KafkaError::Config(format!(
                "'{s}': {codec} compression is not supported yet (none, gzip or snappy)"
            ))),
            _ => Err(KafkaError::Config(format!(
                "'{s}': expected none, gzip or snappy"
            ))),
        }
    }
}

/// The canonical spelling: `none`, `gzip`, `snappy`.
impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
        })
    }
}

/// From a string, as [`FromStr`](std::str::FromStr).
impl<'de> serde::Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Compression, D::Error> {
        d.deserialize_any(crate::kafka::setting::FromStrVisitor::new(
            "none, gzip or snappy",
            false,
        ))
    }
}

impl Compression {
    pub(super) fn attribute(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
        }
    }
}

/// Decompress with an output cap: gzip (all members) or snappy (xerial framing or raw).
pub(super) fn decompress(
    codec: u8,
    data: &[u8],
    offset: i64,
    limit: usize,
) -> Result<Vec<u8>, BatchError> {
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
                let n = snap::raw::decompress_len(block)
                    .map_err(|e| corrupt(format!("snappy: {e}")))?;
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
                    let len = c
                        .take(4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
                    let block = len
                        .and_then(|l| c.take(l))
                        .ok_or_else(|| corrupt("snappy: truncated block".into()))?;
                    raw_block(block, &mut out)?;
                }
            } else {
                raw_block(data, &mut out)?;
            }
            Ok(out)
        }
        3 => Err(BatchError::Unsupported {
            offset,
            what: "lz4 compression",
        }),
        4 => Err(BatchError::Unsupported {
            offset,
            what: "zstd compression",
        }),
        _ => Err(corrupt(format!("unknown compression codec {codec}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_any_case_and_round_trip() {
        assert_eq!("GZIP".parse::<Compression>().unwrap(), Compression::Gzip);
        for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
        }
        let e = "zstd".parse::<Compression>().unwrap_err().to_string();
        assert!(e.contains("not supported yet"), "{e}");
        let e = "brotli".parse::<Compression>().unwrap_err().to_string();
        assert!(e.contains("'brotli': expected none, gzip or snappy"), "{e}");
    }
}
