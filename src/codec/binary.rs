//! Avro binary primitives: zig-zag varints, lengths, floats, strings, with strict bounds checks.
//!
//! Must not know schemas or allocate from counts read off the wire: every length is checked against
//! the bytes that remain before anything is sliced or reserved.

use super::{CodecError, Fail};

/// A cursor over one Avro body. Every read is bounds-checked; errors carry the byte offset.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn truncated(&self) -> Fail {
        Box::new(CodecError::TruncatedBody { offset: self.pos })
    }

    /// Fails with `trailing-bytes` unless the whole body was read.
    pub(crate) fn finish(&self) -> Result<(), Fail> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(Box::new(CodecError::TrailingBytes {
                count: self.buf.len() - self.pos,
            }))
        }
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self) -> Result<u8, Fail> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated()),
        }
    }

    /// A zig-zag `long`: at most 10 bytes, and no bits beyond 64.
    #[inline(always)]
    pub(crate) fn long(&mut self) -> Result<i64, Fail> {
        // Fast path: a one-byte varint.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            let n = b as u64;
            return Ok(((n >> 1) as i64) ^ -((n & 1) as i64));
        }
        let start = self.pos;
        let mut n: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                // The 10th byte may only carry bit 63; anything more is beyond 64 bits (or an 11th byte).
                return Err(Box::new(CodecError::VarintOverflow { offset: start }));
            }
            n |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    /// A zig-zag `int`: at most 5 bytes and within i32, else `int-out-of-range`
    /// (the Java reference rejects both as "Invalid int encoding").
    #[inline(always)]
    pub(crate) fn int(&mut self) -> Result<i32, Fail> {
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            let n = b as u32;
            return Ok(((n >> 1) as i32) ^ -((n & 1) as i32));
        }
        let start = self.pos;
        let mut n: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            n |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
            if shift >= 35 {
                return Err(Box::new(CodecError::IntOutOfRange {
                    value: None,
                    path: format!("@{start}"),
                }));
            }
        }
        if n > u32::MAX as u64 {
            let v = ((n >> 1) as i64) ^ -((n & 1) as i64);
            return Err(Box::new(CodecError::IntOutOfRange {
                value: Some(v),
                path: format!("@{start}"),
            }));
        }
        let n = n as u32;
        Ok(((n >> 1) as i32) ^ -((n & 1) as i32))
    }

    /// A length prefix (bytes, string): never negative, never more than what remains.
    #[inline(always)]
    pub(crate) fn len(&mut self) -> Result<usize, Fail> {
        let start = self.pos;
        let n = self.long()?;
        if n < 0 {
            return Err(Box::new(CodecError::NegativeLength {
                value: n,
                offset: start,
            }));
        }
        if n as u64 > self.remaining() as u64 {
            return Err(Box::new(CodecError::TruncatedBody { offset: self.pos }));
        }
        Ok(n as usize)
    }

    #[inline(always)]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline(always)]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Fail> {
        let n = self.len()?;
        self.take(n)
    }

    #[inline(always)]
    pub(crate) fn str(&mut self) -> Result<&'a str, Fail> {
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| Box::new(CodecError::InvalidUtf8 { offset: start }))
    }

    #[inline]
    pub(crate) fn boolean(&mut self) -> Result<bool, Fail> {
        let start = self.pos;
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Box::new(CodecError::InvalidBoolean {
                byte: b,
                offset: start,
            })),
        }
    }

    #[inline(always)]
    pub(crate) fn f32(&mut self) -> Result<f32, Fail> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(f32::from_le_bytes(a))
    }

    #[inline]
    pub(crate) fn f64(&mut self) -> Result<f64, Fail> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// A union branch index, checked against the number of branches.
    #[inline(always)]
    pub(crate) fn union_index(&mut self, branches: usize) -> Result<usize, Fail> {
        let start = self.pos;
        let i = self.long()?;
        if i < 0 || i as u64 >= branches as u64 {
            return Err(Box::new(CodecError::InvalidUnionIndex {
                index: i,
                branches,
                offset: start,
            }));
        }
        Ok(i as usize)
    }

    /// An enum symbol index, checked against the number of symbols.
    #[inline]
    pub(crate) fn enum_index(&mut self, symbols: usize) -> Result<usize, Fail> {
        let start = self.pos;
        let i = self.int()?;
        if i < 0 || i as u64 >= symbols as u64 {
            return Err(Box::new(CodecError::InvalidEnumIndex {
                index: i as i64,
                symbols,
                offset: start,
            }));
        }
        Ok(i as usize)
    }

    /// The header of an array or map block: the item count (0 ends the value).
    ///
    /// A negative count is followed by the block's size in bytes (legal; lets readers skip).
    /// `min_item_size` bounds the count by the bytes that remain, so a hostile count never
    /// turns into a huge allocation or a long loop; items that may take zero bytes are capped
    /// by `zero_size_budget`.
    pub(crate) fn block_count(
        &mut self,
        min_item_size: usize,
        zero_size_budget: &mut usize,
    ) -> Result<usize, Fail> {
        let start = self.pos;
        let c = self.long()?;
        let count = if c < 0 {
            let count = c.unsigned_abs();
            let size_at = self.pos;
            let size = self.long()?;
            if size < 0 {
                return Err(Box::new(CodecError::NegativeLength {
                    value: size,
                    offset: size_at,
                }));
            }
            if size as u64 > self.remaining() as u64 {
                return Err(Box::new(CodecError::TruncatedBody { offset: self.pos }));
            }
            count
        } else {
            c as u64
        };
        if let Some(most) = self.remaining().checked_div(min_item_size) {
            if count > most as u64 {
                return Err(Box::new(CodecError::TruncatedBody { offset: start }));
            }
        } else {
            if count > *zero_size_budget as u64 {
                return Err(Box::new(CodecError::TooManyItems { offset: start }));
            }
            *zero_size_budget -= count as usize;
        }
        Ok(count as usize)
    }
}

/// Zig-zag varint encoders into a growing buffer.
#[inline(always)]
pub(crate) fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    if n < 0x80 {
        out.push(n as u8);
        return;
    }
    // Byte pushes after one reservation: no variable-length memcpy call.
    out.reserve(10);
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[inline]
pub(crate) fn put_int(out: &mut Vec<u8>, v: i32) {
    put_long(out, v as i64)
}

/// Strings up to this long are copied byte by byte (see [`put_small`]).
const SMALL_COPY: usize = 16;

#[inline(always)]
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    if b.len() <= SMALL_COPY {
        put_small(out, b);
    } else {
        out.extend_from_slice(b);
    }
}

/// Append a few bytes with byte pushes after one reservation: `extend_from_slice` is not inlined in
/// the size-tuned release build, so it calls the C library's `memcpy` with a run-time length, and
/// musl's x86_64 `memcpy` (`rep movsq`/`movsb`) pays a large start-up cost on every short copy.
#[inline(always)]
pub(crate) fn put_small(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len());
    for &x in b {
        out.push(x);
    }
}

#[inline]
pub(crate) fn put_f32(out: &mut Vec<u8>, v: f32) {
    put_small(out, &v.to_le_bytes());
}

#[inline]
pub(crate) fn put_f64(out: &mut Vec<u8>, v: f64) {
    put_small(out, &v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn roundtrip_long(v: i64) {
        let mut out = Vec::new();
        put_long(&mut out, v);
        let mut r = Reader::new(&out);
        assert_eq!(r.long().unwrap(), v);
        assert!(r.finish().is_ok());
    }

    #[test]
    fn long_roundtrip_extremes() {
        for v in [
            0,
            -1,
            1,
            63,
            -64,
            64,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            roundtrip_long(v);
        }
    }

    #[test]
    fn zigzag_known_bytes() {
        // From the Avro spec's table: 0→00, -1→01, 1→02, -2→03, 2→04, -64→7f, 64→80 01.
        for (v, bytes) in [
            (0i64, &[0u8][..]),
            (-1, &[1]),
            (1, &[2]),
            (-2, &[3]),
            (2, &[4]),
            (-64, &[0x7f]),
            (64, &[0x80, 1]),
        ] {
            let mut out = Vec::new();
            put_long(&mut out, v);
            assert_eq!(out, bytes, "value {v}");
        }
    }

    #[test]
    fn long_eleven_bytes_overflows() {
        let b = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(
            Reader::new(&b).long().unwrap_err().kind(),
            "varint-overflow"
        );
        // Ten bytes whose last one carries bits beyond 64.
        let b = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Reader::new(&b).long().unwrap_err().kind(),
            "varint-overflow"
        );
        // Ten bytes with only bit 63 in the last: i64::MIN's zigzag is u64::MAX.
        let b = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&b).long().unwrap(), i64::MIN);
    }

    #[test]
    fn int_limits() {
        let b = [0x80, 0x80, 0x80, 0x80, 0x10];
        assert_eq!(
            Reader::new(&b).int().unwrap_err().kind(),
            "int-out-of-range"
        );
        let b = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            Reader::new(&b).int().unwrap_err().kind(),
            "int-out-of-range"
        );
        let b = [0xfe, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(Reader::new(&b).int().unwrap(), i32::MAX);
        let b = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(Reader::new(&b).int().unwrap(), i32::MIN);
        let b = [0x80, 0x00];
        assert_eq!(Reader::new(&b).int().unwrap(), 0);
    }

    #[test]
    fn huge_length_is_truncated_not_allocated() {
        let mut out = Vec::new();
        put_long(&mut out, i64::MAX);
        out.push(b'x');
        assert_eq!(
            Reader::new(&out).bytes().unwrap_err().kind(),
            "truncated-body"
        );
        let mut out = Vec::new();
        put_long(&mut out, -3);
        assert_eq!(
            Reader::new(&out).bytes().unwrap_err().kind(),
            "negative-length"
        );
    }

    #[test]
    fn block_count_bounded_by_remaining() {
        let mut out = Vec::new();
        put_long(&mut out, 1 << 40);
        let mut budget = 10;
        assert_eq!(
            Reader::new(&out)
                .block_count(1, &mut budget)
                .unwrap_err()
                .kind(),
            "truncated-body"
        );
        assert_eq!(
            Reader::new(&out)
                .block_count(0, &mut budget)
                .unwrap_err()
                .kind(),
            "too-many-items"
        );
        let mut out = Vec::new();
        put_long(&mut out, i64::MIN);
        put_long(&mut out, 0);
        assert_eq!(
            Reader::new(&out)
                .block_count(1, &mut budget)
                .unwrap_err()
                .kind(),
            "truncated-body"
        );
    }
}
