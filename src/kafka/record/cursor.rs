//! Reading untrusted bytes: [`Cursor`] checks every read against what is left, so a record
//! batch from a hostile or broken broker cannot make the reader index out of bounds.
//!
//! Must not panic or allocate on what the bytes say: every read returns `None` when the bytes
//! run out.

use bytes::Bytes;

/// A cursor over untrusted bytes: every read checks what is left.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    pub(super) fn varlong(&mut self) -> Option<i64> {
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

    pub(super) fn varint(&mut self) -> Option<i32> {
        self.varlong().and_then(|v| i32::try_from(v).ok())
    }

    /// A varint length followed by that many bytes; -1 means null.
    pub(super) fn nullable_bytes(&mut self, whole: &Bytes) -> Option<Option<Bytes>> {
        let len = self.varint()?;
        if len < 0 {
            return Some(None);
        }
        let start = whole.len() - self.buf.len();
        self.take(len as usize)?;
        Some(Some(whole.slice(start..start + len as usize)))
    }
}
