//! The Confluent Schema Registry wire frame: `0x00`, a 4-byte big-endian schema id, the Avro body.
//!
//! Must not know any schema: it only splits and joins frames.

use crate::error::{ErrorKind, Kind};

/// The magic byte that starts every Confluent-framed message.
pub const MAGIC: u8 = 0x00;
/// Bytes before the Avro body: magic byte + schema id.
pub const HEADER_LEN: usize = 5;

/// Why a message is not a Confluent frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The message is shorter than the 5-byte header.
    #[error("message has {len} bytes, shorter than the 5-byte header (magic byte + schema id)")]
    TruncatedHeader {
        /// The message's length in bytes.
        len: usize,
    },
    /// The first byte is not 0x00.
    #[error("magic byte is 0x{byte:02x}, expected 0x00")]
    InvalidMagicByte {
        /// The first byte found.
        byte: u8,
    },
}

impl ErrorKind for WireError {
    fn kind(&self) -> Kind {
        match self {
            WireError::TruncatedHeader { .. } => Kind::TruncatedHeader,
            WireError::InvalidMagicByte { .. } => Kind::InvalidMagicByte,
        }
    }
}

/// Split a message into its schema id and Avro body.
///
/// A wrong first byte is reported before a short length, so a 1-byte `0xff` is `invalid-magic-byte`.
pub fn unframe(msg: &[u8]) -> Result<(u32, &[u8]), WireError> {
    match msg.first() {
        None => return Err(WireError::TruncatedHeader { len: 0 }),
        Some(&b) if b != MAGIC => return Err(WireError::InvalidMagicByte { byte: b }),
        Some(_) => {}
    }
    match msg {
        [_, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => Err(WireError::TruncatedHeader { len: msg.len() }),
    }
}

/// Write the 5-byte header for `id` into `out` (the body follows).
#[inline]
pub fn write_header(out: &mut Vec<u8>, id: u32) {
    // Not `extend_from_slice`: on musl a short `memcpy` call costs more than the bytes (see short_copy).
    let [a, b, c, d] = id.to_be_bytes();
    crate::short_copy::extend(out, &[MAGIC, a, b, c, d]);
}

/// A framed message: header + body.
pub fn frame(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    write_header(&mut out, id);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_unframe_roundtrip() {
        let m = frame(0x01020304, b"abc");
        assert_eq!(m, [0, 1, 2, 3, 4, b'a', b'b', b'c']);
        assert_eq!(unframe(&m).unwrap(), (0x01020304, &b"abc"[..]));
        assert_eq!(
            unframe(&frame(u32::MAX, b"")).unwrap(),
            (u32::MAX, &b""[..])
        );
    }

    #[test]
    fn bad_frames() {
        assert_eq!(unframe(&[]).unwrap_err().kind(), "truncated-header");
        assert_eq!(unframe(&[0]).unwrap_err().kind(), "truncated-header");
        assert_eq!(
            unframe(&[0, 0, 0, 0]).unwrap_err().kind(),
            "truncated-header"
        );
        assert_eq!(
            unframe(&[0xff, 0, 0, 0, 1]).unwrap_err().kind(),
            "invalid-magic-byte"
        );
        assert_eq!(unframe(&[1]).unwrap_err().kind(), "invalid-magic-byte");
    }
}
