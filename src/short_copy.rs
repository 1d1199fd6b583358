//! Appending short byte slices to a `Vec<u8>` without a call to the C library's `memcpy`.
//!
//! The hot paths append many short pieces per record: a field name, a 9-byte string, a key, a
//! 40-byte value. `extend_from_slice` of a length the compiler cannot see becomes a `memcpy` call,
//! and musl's x86_64 `memcpy` (`rep movsq`, then single-byte moves) costs tens of cycles even for
//! 4 bytes: in perf profiles of the static musl build (2026-11-29), `memcpy` was 21 % of the samples
//! of `produce` and 29 % of `consume` of 200,000 SensorData records (glibc's is a few percent). Here
//! a slice of up to 16 bytes is pushed byte by byte, one of up to 64 bytes copied as two fixed-size
//! pieces (plain register moves on every target); longer ones go to `extend_from_slice`. Safe code only (the library forbids `unsafe`).
//!
//! Must not do anything but the copy: the result is exactly `extend_from_slice`'s.

/// Longest slice copied here; longer ones use `extend_from_slice` (a `memcpy` call pays off there).
const SHORT: usize = 64;

/// Slices up to this long are appended byte by byte (most field names, keys and sensor ids).
const PUSHED: usize = 16;

/// Append `src` to `out`, as `out.extend_from_slice(src)` does.
#[inline(always)]
pub(crate) fn extend(out: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if n > SHORT {
        out.extend_from_slice(src);
        return;
    }
    if n <= PUSHED {
        // Byte pushes after one reservation: inlined, no call at all.
        out.reserve(n);
        for &b in src {
            out.push(b);
        }
        return;
    }
    let len = out.len();
    // Growing with zeros is a `memset` call, which musl does with a few stores for short lengths.
    out.resize(len + n, 0);
    if let Some(dst) = out.get_mut(len..) {
        copy_short(src, dst);
    }
}

/// Copy `s` into `d` (the same length, at most [`SHORT`]) as two fixed-size, possibly overlapping
/// pieces (the first and the last), or byte by byte for fewer than 4.
#[inline(always)]
fn copy_short(s: &[u8], d: &mut [u8]) {
    let n = s.len().min(d.len());
    if n >= 32 {
        piece::<32>(s, d, 0);
        piece::<32>(s, d, n - 32);
    } else if n >= 16 {
        piece::<16>(s, d, 0);
        piece::<16>(s, d, n - 16);
    } else if n >= 8 {
        piece::<8>(s, d, 0);
        piece::<8>(s, d, n - 8);
    } else if n >= 4 {
        piece::<4>(s, d, 0);
        piece::<4>(s, d, n - 4);
    } else if n > 0 {
        // 1..=3 bytes: first, middle and last (some the same byte).
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

/// Copy `W` bytes at `at`: a copy of a size known at compile time, so plain register moves.
#[inline(always)]
fn piece<const W: usize>(s: &[u8], d: &mut [u8], at: usize) {
    if let (Some(from), Some(to)) = (s.get(at..at + W), d.get_mut(at..at + W))
        && let Ok(bytes) = <[u8; W]>::try_from(from)
    {
        to.copy_from_slice(&bytes);
    }
}

/// An `io::Write` into a `Vec<u8>` whose writes go through [`extend`]: for serde_json's
/// serializer, which writes a record's JSON in many short pieces.
pub(crate) struct ShortWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl std::io::Write for ShortWriter<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        extend(self.0, buf);
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        extend(self.0, buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_and_starting_fill_copies_exactly_like_extend_from_slice() {
        let src: Vec<u8> = (0..=200u8).collect();
        for prefix in [0usize, 1, 3, 7, 8, 15, 16, 31] {
            for start in [0usize, 1, 5, 13] {
                for n in 0..=150 {
                    let piece = &src[start..start + n];
                    let mut want: Vec<u8> = (0..prefix as u8).map(|b| b ^ 0xaa).collect();
                    let mut got = want.clone();
                    want.extend_from_slice(piece);
                    extend(&mut got, piece);
                    assert_eq!(got, want, "prefix {prefix}, start {start}, n {n}");
                }
            }
        }
    }

    #[test]
    fn a_full_vec_grows_before_the_copy() {
        let mut v = Vec::with_capacity(4);
        v.extend_from_slice(b"abcd");
        extend(&mut v, b"0123456789abcdefXYZ");
        assert_eq!(v, b"abcd0123456789abcdefXYZ");
    }

    #[test]
    fn the_writer_serves_serde_json_with_the_same_text() {
        let v =
            serde_json::json!({"a": [1, -2.5, "x\"y\n"], "b": null, "long key with ünïcode": true});
        let mut out = Vec::new();
        serde_json::to_writer(ShortWriter(&mut out), &v).unwrap();
        assert_eq!(out, serde_json::to_vec(&v).unwrap());
    }
}
