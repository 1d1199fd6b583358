//! The fastest path of natural JSON → Avro binary, ahead of serde_json: a byte scanner for the
//! common shape of a line (strings without escapes, plain numbers, record keys in schema order),
//! which walks the line and the [`Plan`] together and writes through the streaming encoder's own
//! value rules ([`Enc`]: union choice, integer/float/string/enum writing, defaults, key capture,
//! block counts), so only the tokenizer is its own. A record key is matched against the field the
//! schema expects next in one comparison, strings are not copied or checked twice, and a number
//! with up to 19 digits and a small exponent is read without a second pass.
//!
//! Its contract is [`super::encode_line`]'s: when it succeeds, its bytes and key are exactly what
//! serde_json + the `Value` path give for the line. It reads the same JSON grammar as serde_json
//! and declines everything else and every case it does not take the same way: an escape, a control
//! character or a non-UTF-8 byte in a string, an integer beyond 64 bits or `-0`, a float that
//! overflows, nesting deeper than [`MAX_NESTING`], and whatever the streaming encoder declines.
//!
//! Must not report errors: it succeeds or declines (the caller truncates the buffer and runs
//! serde_json, which finds and words the error).

use serde::de::Visitor;

use super::{Declined, Enc, KeyBytes, MAP_ENTRIES, same, same_bytes};
use crate::codec::binary::put_bytes;
use crate::codec::json::ZERO_SIZE_ITEM_BUDGET;
use crate::codec::node::{Cat, Field, Node, NodeId, Plan};

type R<T> = Result<T, Declined>;

/// Deepest nesting of JSON objects and arrays taken here (serde_json's own limit is 128).
const MAX_NESTING: usize = 100;

/// Exact powers of ten for the fast float path (10^22 is the last one an f64 holds exactly).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Encode one JSON line with the root of `plan`, appending to `out`, as [`super::encode_line`]
/// does; on `Declined` the caller truncates `out`.
pub(super) fn encode_line<'l>(
    plan: &Plan,
    line: &'l [u8],
    key_field: Option<&str>,
    out: &mut Vec<u8>,
) -> R<Option<KeyBytes<'l>>> {
    let mut key = None;
    let mut budget = ZERO_SIZE_ITEM_BUDGET;
    let mut s = Scan {
        b: line,
        pos: 0,
        nesting: 0,
    };
    let enc = Enc {
        plan,
        node: Plan::ROOT,
        depth: 0,
        out,
        budget: &mut budget,
        key: None,
        key_field: key_field.map(|f| (f, &mut key)),
    };
    s.ws();
    s.value(enc)?;
    s.ws();
    if s.pos != line.len() {
        return Err(Declined);
    }
    Ok(key)
}

/// A number as serde_json reads it: a non-negative integer, a negative one, or a float.
enum Num {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// The scanner: the line and where it is in it.
struct Scan<'l> {
    b: &'l [u8],
    pos: usize,
    /// Objects and arrays open around the value at hand.
    nesting: usize,
}

impl<'l> Scan<'l> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Skip JSON whitespace (the four characters serde_json skips).
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consume `c` (after whitespace) or decline.
    #[inline]
    fn expect(&mut self, c: u8) -> R<()> {
        self.ws();
        if self.peek() != Some(c) {
            return Err(Declined);
        }
        self.pos += 1;
        Ok(())
    }

    /// Consume the literal `word` (its first byte already seen) or decline.
    #[inline]
    fn literal(&mut self, word: &[u8]) -> R<()> {
        match self.b.get(self.pos..self.pos + word.len()) {
            Some(w) if same_bytes(w, word) => {
                self.pos += word.len();
                Ok(())
            }
            _ => Err(Declined),
        }
    }

    /// One value, written with `enc`'s node.
    fn value(&mut self, enc: Enc<'_, 'l>) -> R<()> {
        match self.peek().ok_or(Declined)? {
            b'"' => {
                let s = self.string()?;
                enc.visit_borrowed_str(s)
            }
            b'{' => self.object(enc),
            b'[' => self.array(enc),
            b't' => {
                self.literal(b"true")?;
                enc.visit_bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                enc.visit_bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                enc.visit_unit()
            }
            b'-' | b'0'..=b'9' => match self.number()? {
                Num::U64(u) => enc.visit_u64(u),
                Num::I64(i) => enc.visit_i64(i),
                Num::F64(f) => enc.visit_f64(f),
            },
            _ => Err(Declined),
        }
    }

    /// A string without escapes or control characters (valid UTF-8), as it stands in the line.
    #[inline]
    fn string(&mut self) -> R<&'l str> {
        let start = self.pos + 1;
        let rest = self.b.get(start..).ok_or(Declined)?;
        let mut n = 0;
        loop {
            match rest.get(n).copied().ok_or(Declined)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return Err(Declined),
                _ => n += 1,
            }
        }
        self.pos = start + n + 1;
        let raw = rest.get(..n).ok_or(Declined)?;
        std::str::from_utf8(raw).map_err(|_| Declined)
    }

    /// Enter an object or array: one more level of nesting, within the bound.
    #[inline]
    fn open(&mut self) -> R<()> {
        self.pos += 1;
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Declined);
        }
        Ok(())
    }

    /// After an item of an object or array: `,` (true, another item follows) or `close` (false).
    #[inline]
    fn next_or_close(&mut self, close: u8) -> R<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.ws();
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                self.nesting -= 1;
                Ok(false)
            }
            _ => Err(Declined),
        }
    }

    /// Whether the object or array just opened is empty (and then consume its end).
    #[inline]
    fn empty(&mut self, close: u8) -> bool {
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            self.nesting -= 1;
            return true;
        }
        false
    }

    fn object(&mut self, mut enc: Enc<'_, 'l>) -> R<()> {
        if enc.key.is_some() {
            return Err(Declined);
        }
        self.open()?;
        match enc.object_node::<Declined>()? {
            Node::Record { fields, .. } => self.record(&mut enc, fields),
            Node::Map { values } => self.map(&mut enc, *values),
            _ => Err(Declined),
        }
    }

    /// A record's key: the index of its field, matched first against `fields[next]` in one go.
    #[inline]
    fn field_index(&mut self, fields: &[Field], next: usize) -> R<usize> {
        if self.peek() != Some(b'"') {
            return Err(Declined);
        }
        if let Some(f) = fields.get(next) {
            let name = f.name.as_bytes();
            let at = self.pos + 1;
            // Field names hold no quote or backslash, so equal bytes are an equal key.
            if self.b.get(at + name.len()) == Some(&b'"')
                && self
                    .b
                    .get(at..at + name.len())
                    .is_some_and(|k| same_bytes(k, name))
            {
                self.pos = at + name.len() + 1;
                return Ok(next);
            }
        }
        let k = self.string()?;
        // An unknown key is the slow path's `unknown-field`.
        fields.iter().position(|f| same(&f.name, k)).ok_or(Declined)
    }

    /// A record's fields, keys in schema order (skipping only fields with defaults).
    fn record(&mut self, enc: &mut Enc<'_, 'l>, fields: &[Field]) -> R<()> {
        let mut next = 0usize;
        let mut key_field = enc.key_field.take();
        if !self.empty(b'}') {
            loop {
                let i = self.field_index(fields, next)?;
                if i < next {
                    // A duplicate key, or a field skipped for its default that comes after all.
                    return Err(Declined);
                }
                enc.put_defaults::<Declined>(&fields[next..i])?;
                self.expect(b':')?;
                self.ws();
                let mut child = enc.child(fields[i].node);
                if let Some((name, slot)) = key_field.as_mut()
                    && **name == *fields[i].name
                {
                    child.key = Some(&mut **slot);
                }
                self.value(child)?;
                next = i + 1;
                if !self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        enc.put_defaults(&fields[next..])
    }

    /// A map: one block (count first), key/value pairs, the 0 end; a duplicate key declines.
    fn map(&mut self, enc: &mut Enc<'_, 'l>, values: NodeId) -> R<()> {
        let count_at = enc.out.len();
        let mut keys: Vec<(usize, usize)> = Vec::new();
        if !self.empty(b'}') {
            loop {
                if self.peek() != Some(b'"') {
                    return Err(Declined);
                }
                let k = self.string()?;
                put_bytes(enc.out, k.as_bytes());
                let (at, len) = (enc.out.len() - k.len(), k.len());
                let new = &enc.out[at..];
                let dup = (keys.iter()).any(|&(s, l)| l == len && enc.out[s..s + l] == *new);
                if dup || keys.len() == MAP_ENTRIES {
                    return Err(Declined);
                }
                keys.push((at, len));
                self.expect(b':')?;
                self.ws();
                self.item(enc, values)?;
                if !self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        enc.close_block(count_at, keys.len())
    }

    fn array(&mut self, mut enc: Enc<'_, 'l>) -> R<()> {
        if enc.key.is_some() {
            return Err(Declined);
        }
        self.open()?;
        let items = match enc.resolve::<Declined>(Cat::Array)? {
            Node::Array { items } => *items,
            _ => return Err(Declined),
        };
        let count_at = enc.out.len();
        let mut n = 0usize;
        if !self.empty(b']') {
            loop {
                self.item(&mut enc, items)?;
                n += 1;
                if !self.next_or_close(b']')? {
                    break;
                }
            }
        }
        enc.close_block(count_at, n)
    }

    /// One array item or map value; an empty encoding spends the zero-size budget.
    #[inline]
    fn item(&mut self, enc: &mut Enc<'_, 'l>, node: NodeId) -> R<()> {
        let before = enc.out.len();
        self.value(enc.child(node))?;
        if enc.out.len() == before {
            *enc.budget = enc.budget.checked_sub(1).ok_or(Declined)?;
        }
        Ok(())
    }

    /// A number in JSON's grammar, read as serde_json reads it: an integer without fraction or
    /// exponent is a `u64` (a `i64` when negative), anything else an `f64`, correctly rounded.
    fn number(&mut self) -> R<Num> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let mut mantissa: u64 = 0;
        let mut digits = 0usize;
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                digits = 1;
            }
            Some(b'1'..=b'9') => {
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    mantissa = mantissa
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(u64::from(c - b'0')))
                        .ok_or(Declined)?;
                    digits += 1;
                    self.pos += 1;
                }
            }
            _ => return Err(Declined),
        }
        let mut exp10: i64 = 0;
        let mut float = false;
        if self.peek() == Some(b'.') {
            float = true;
            self.pos += 1;
            let first = self.pos;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                // Past 19 digits the mantissa could overflow: the exact parse below takes it.
                if digits < 19 {
                    mantissa = mantissa * 10 + u64::from(c - b'0');
                    exp10 -= 1;
                }
                digits += 1;
                self.pos += 1;
            }
            if self.pos == first {
                return Err(Declined);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            float = true;
            self.pos += 1;
            let minus = match self.peek() {
                Some(b'-') => {
                    self.pos += 1;
                    true
                }
                Some(b'+') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let first = self.pos;
            let mut e: i64 = 0;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                e = (e * 10 + i64::from(c - b'0')).min(1 << 20);
                self.pos += 1;
            }
            if self.pos == first {
                return Err(Declined);
            }
            exp10 += if minus { -e } else { e };
        }
        if !float {
            return integer(negative, mantissa);
        }
        let f = fast_float(mantissa, digits, exp10).map_or_else(
            || self.exact_float(start),
            |f| Ok(if negative { -f } else { f }),
        )?;
        if !f.is_finite() {
            // serde_json refuses a number out of range.
            return Err(Declined);
        }
        Ok(Num::F64(f))
    }

    /// The correctly rounded value of the number from `start` to here (the grammar is checked).
    #[cold]
    fn exact_float(&self, start: usize) -> R<f64> {
        let text = self.b.get(start..self.pos).ok_or(Declined)?;
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or(Declined)
    }
}

/// An integer as serde_json types it: `u64` when positive, `i64` when negative; `-0` and a
/// negative beyond `i64` are floats there, and decline here.
#[inline]
fn integer(negative: bool, mantissa: u64) -> R<Num> {
    if !negative {
        return Ok(Num::U64(mantissa));
    }
    let neg = (mantissa as i64).wrapping_neg();
    if neg >= 0 {
        return Err(Declined);
    }
    Ok(Num::I64(neg))
}

/// Clinger's fast path: a mantissa below 2^53 and a power of ten an f64 holds exactly give the
/// correctly rounded value in one multiplication or division. `None` when it does not apply.
#[inline]
fn fast_float(mantissa: u64, digits: usize, exp10: i64) -> Option<f64> {
    if digits > 19 || mantissa >= 1 << 53 {
        return None;
    }
    let m = mantissa as f64;
    let p = *POW10.get(exp10.unsigned_abs() as usize)?;
    Some(if exp10 < 0 { m / p } else { m * p })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(text: &str) -> Option<f64> {
        let mut s = Scan {
            b: text.as_bytes(),
            pos: 0,
            nesting: 0,
        };
        match s.number().ok()? {
            Num::F64(f) if s.pos == text.len() => Some(f),
            _ => None,
        }
    }

    /// Floats read here are bit for bit what serde_json (float_roundtrip) reads.
    #[test]
    fn floats_equal_serde_json() {
        let mut texts: Vec<String> = [
            "0.0",
            "-0.0",
            "1.5",
            "77.8",
            "-0.59",
            "43.46",
            "0.1",
            "0.3",
            "1e2",
            "1E+2",
            "1e-2",
            "123456789012345678.5",
            "9007199254740993.0",
            "1.7976931348623157e308",
            "5e-324",
            "2.2250738585072014e-308",
            "0.000000000000000000001",
            "3.4028235e38",
            "1e22",
            "1e23",
            "4.35",
            "18446744073709551615.0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rng = fastrand::Rng::with_seed(17);
        for _ in 0..20_000 {
            let (a, b) = (rng.u32(1..13), rng.u32(1..10));
            let int = rng.u64(..10u64.pow(a));
            let frac = rng.u64(..10u64.pow(b));
            let e = rng.i32(-30..30);
            texts.push(format!("{int}.{frac}"));
            texts.push(format!("-{int}.{frac:09}e{e}"));
        }
        for t in &texts {
            let want: f64 = serde_json::from_str(t).unwrap();
            let got = num(t).unwrap_or_else(|| panic!("{t} declined"));
            assert_eq!(got.to_bits(), want.to_bits(), "{t}");
        }
        // Not JSON, out of range, or an integer part beyond 64 bits (left to serde_json).
        for bad in [
            "1.",
            "-",
            "1e",
            "1e+",
            ".5",
            "1.e5",
            "1e400",
            "-1e400",
            "123456789012345678901.5",
        ] {
            assert!(num(bad).is_none(), "{bad}");
        }
    }
}
