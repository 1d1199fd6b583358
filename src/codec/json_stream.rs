//! The fast path of natural JSON → Avro binary: one NDJSON line read by serde_json's own
//! `Deserializer` through a seed that walks the [`Plan`] node by node and writes Avro straight into
//! the output buffer, with no `serde_json::Value` in between and no allocation per record in the
//! common case (keys in schema order, scalars, enums, nullable unions, nested records). Ahead of
//! serde_json, a byte scanner (`json_scan.rs`, a child module) reads the common shape of a line
//! through the same value rules ([`Enc`]); serde_json reads what it declines.
//!
//! Its contract is equivalence: when [`encode_line`] succeeds, its bytes are exactly what
//! `parse_record` + `json::encode_node` write for the same line (same serde_json visits, same
//! union choice as `json::pick_branch`, same pre-encoded defaults). Anything it does not handle the
//! same way (a key out of schema order that is not a skip over defaults, a duplicate or unknown key,
//! an object for a union with several record/map branches, an object or array as the record key)
//! and every error at all make it decline.
//!
//! Must not report errors itself: it only succeeds or declines (leaving the buffer as it found it);
//! the caller then runs the `Value` path, which finds and words the error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::binary::{put_bytes, put_f32, put_f64, put_int, put_long};
use super::json::{MAX_DEPTH, ZERO_SIZE_ITEM_BUDGET, special_float};
use super::node::{Cat, Field, NO_BRANCH, Node, NodeId, Plan};

/// The Kafka key taken from a top-level field: borrowed from the line when it is a plain string.
pub type KeyBytes<'l> = Cow<'l, [u8]>;

/// The fast path did not encode the line (unsupported shape or any error); the buffer is unchanged.
#[derive(Debug)]
pub(crate) struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("declined")
    }
}

impl std::error::Error for Declined {}

/// The byte scanner ([`scan::encode_line`]) writes through [`Enc`]'s value rules with this error.
impl de::Error for Declined {
    fn custom<T: fmt::Display>(_: T) -> Declined {
        Declined
    }
}

#[path = "json_scan.rs"]
mod scan;

/// Most entries of one map the fast path checks for duplicate keys (beyond: decline).
const MAP_ENTRIES: usize = 256;

/// Encode one JSON line with the root of `plan`, appending to `out`; with `key_field`, also return
/// that top-level field's key bytes (`None` when the field is absent or null). On `Declined`, `out`
/// is truncated back to its length on entry.
pub(crate) fn encode_line<'l>(
    plan: &Plan,
    line: &'l [u8],
    key_field: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<Option<KeyBytes<'l>>, Declined> {
    let start = out.len();
    if !key_field_fits(plan, key_field) {
        return Err(Declined);
    }
    // The common shape first, with the byte scanner; serde_json reads whatever it declines.
    if let Ok(key) = scan::encode_line(plan, line, key_field, out) {
        return Ok(key);
    }
    out.truncate(start);
    let mut key = None;
    let mut budget = ZERO_SIZE_ITEM_BUDGET;
    let mut de = serde_json::Deserializer::from_slice(line);
    let enc = Enc {
        plan,
        node: Plan::ROOT,
        depth: 0,
        out: &mut *out,
        budget: &mut budget,
        key: None,
        key_field: key_field.map(|f| (f, &mut key)),
    };
    match enc.deserialize(&mut de).and_then(|()| de.end()) {
        Ok(()) => Ok(key),
        Err(_) => {
            out.truncate(start);
            Err(Declined)
        }
    }
}

/// The key is a top-level field: only a record root has those (a map root is the slow path's).
fn key_field_fits(plan: &Plan, key_field: Option<&str>) -> bool {
    key_field.is_none() || matches!(plan.node(Plan::ROOT), Node::Record { .. })
}

/// The error that makes the walk decline (its text is never shown).
#[inline(never)]
#[cold]
fn decline<E: de::Error>() -> E {
    E::custom("declined")
}

/// One value to encode with `node`: a `DeserializeSeed` and the `Visitor` of that value.
struct Enc<'a, 'l> {
    plan: &'a Plan,
    node: NodeId,
    depth: usize,
    out: &'a mut Vec<u8>,
    /// Items whose encoding is empty still allowed ([`ZERO_SIZE_ITEM_BUDGET`]).
    budget: &'a mut usize,
    /// This value is the record key: where to put its bytes.
    key: Option<&'a mut Option<KeyBytes<'l>>>,
    /// For the root record only: the key field's name and where its value's key bytes go.
    key_field: Option<(&'a str, &'a mut Option<KeyBytes<'l>>)>,
}

impl<'a, 'l> Enc<'a, 'l> {
    /// A child value's encoder (record field, array item, map value), one level deeper.
    fn child<'b>(&'b mut self, node: NodeId) -> Enc<'b, 'l> {
        Enc {
            plan: self.plan,
            node,
            depth: self.depth + 1,
            out: &mut *self.out,
            budget: &mut *self.budget,
            key: None,
            key_field: None,
        }
    }

    /// Keep the key bytes if this value is the record key.
    #[inline]
    fn capture(&mut self, bytes: impl FnOnce() -> KeyBytes<'l>) {
        if let Some(slot) = self.key.take() {
            *slot = Some(bytes());
        }
    }

    /// Go into branch `i` of the union at hand: write its index; the branch is one level deeper.
    #[inline]
    fn enter_branch<E: de::Error>(&mut self, branches: &[NodeId], i: usize) -> Result<(), E> {
        put_long(self.out, i as i64);
        self.node = branches[i];
        self.depth += 1;
        self.check_depth()
    }

    #[inline]
    fn check_depth<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            Err(decline())
        } else {
            Ok(())
        }
    }

    /// The node a scalar of category `cat` is written with: through a union by its `pick` table.
    #[inline]
    fn resolve<E: de::Error>(&mut self, cat: Cat) -> Result<&'a Node, E> {
        let plan = self.plan;
        loop {
            self.check_depth()?;
            match plan.node(self.node) {
                Node::Union { branches, pick } => {
                    let p = pick[cat as usize];
                    if p == NO_BRANCH {
                        return Err(decline());
                    }
                    self.enter_branch(branches, p as usize)?;
                }
                n => return Ok(n),
            }
        }
    }

    /// A JSON number as a float/double (as `Number::as_f64` does), anything else declines.
    #[inline]
    fn put_float<E: de::Error>(&mut self, node: &Node, f: f64) -> Result<(), E> {
        match node {
            Node::Float => put_f32(self.out, f as f32),
            Node::Double => put_f64(self.out, f),
            _ => return Err(decline()),
        }
        Ok(())
    }

    /// An integer (what `cat_of` calls Int or Long) with the node it resolved to.
    #[inline]
    fn put_integer<E: de::Error>(&mut self, wide: Option<i64>, as_f64: f64) -> Result<(), E> {
        let cat = match wide {
            Some(i) if i32::try_from(i).is_ok() => Cat::Int,
            _ => Cat::Long,
        };
        let node = self.resolve(cat)?;
        match (node, wide) {
            (Node::Int, Some(i)) => match i32::try_from(i) {
                Ok(i) => put_int(self.out, i),
                Err(_) => return Err(decline()),
            },
            (Node::Long, Some(i)) => put_long(self.out, i),
            (Node::Float | Node::Double, _) => return self.put_float(node, as_f64),
            _ => return Err(decline()),
        }
        Ok(())
    }

    /// A JSON string: through a union by `pick_branch`'s string rules, then written as the node says.
    fn put_str<E: de::Error>(&mut self, s: &str) -> Result<(), E> {
        let plan = self.plan;
        self.check_depth()?;
        if let Node::Union { branches, .. } = plan.node(self.node) {
            let i = string_branch(plan, branches, s).ok_or_else(decline)?;
            self.enter_branch(branches, i)?;
        }
        match plan.node(self.node) {
            Node::String => put_bytes(self.out, s.as_bytes()),
            Node::Bytes => {
                let n = latin1_len(s).ok_or_else(decline)?;
                put_long(self.out, n as i64);
                self.out.extend(s.chars().map(|c| c as u8));
            }
            Node::Fixed { size, .. } => match latin1_len(s) {
                Some(n) if n == *size => self.out.extend(s.chars().map(|c| c as u8)),
                _ => return Err(decline()),
            },
            Node::Enum { symbols, .. } => {
                let i = symbols
                    .iter()
                    .position(|x| same(x, s))
                    .ok_or_else(decline)?;
                put_int(self.out, i as i32);
            }
            n @ (Node::Float | Node::Double) => {
                let f = special_float(s).ok_or_else(decline)?;
                return self.put_float(n, f);
            }
            _ => return Err(decline()),
        }
        Ok(())
    }

    /// The node a JSON object is written with: a record or map, or a union's only record/map branch.
    fn object_node<E: de::Error>(&mut self) -> Result<&'a Node, E> {
        let plan = self.plan;
        self.check_depth()?;
        if let Node::Union { branches, .. } = plan.node(self.node) {
            let mut found = None;
            for (i, &b) in branches.iter().enumerate() {
                if matches!(plan.node(b), Node::Record { .. } | Node::Map { .. }) {
                    if found.is_some() {
                        // Several: pick_branch looks at the keys; leave that to the slow path.
                        return Err(decline());
                    }
                    found = Some(i);
                }
            }
            self.enter_branch(branches, found.ok_or_else(decline)?)?;
        }
        Ok(plan.node(self.node))
    }

    /// A record's fields from a JSON object whose keys come in schema order (skipping only fields
    /// with defaults); missing trailing fields take their defaults.
    fn record<'de: 'l, A: MapAccess<'de>>(
        &mut self,
        fields: &[Field],
        mut a: A,
    ) -> Result<(), A::Error> {
        let mut next = 0usize;
        let mut key_field = self.key_field.take();
        while let Some(i) = a.next_key_seed(FieldSeed { fields, next })? {
            if i < next {
                // A duplicate key, or a field skipped for its default that comes after all.
                return Err(decline());
            }
            self.put_defaults(&fields[next..i])?;
            let mut child = self.child(fields[i].node);
            if let Some((name, slot)) = key_field.as_mut()
                && **name == *fields[i].name
            {
                child.key = Some(&mut **slot);
            }
            a.next_value_seed(child)?;
            next = i + 1;
        }
        self.put_defaults(&fields[next..])
    }

    /// The pre-encoded defaults of fields absent from the object (a field without one declines).
    #[inline]
    fn put_defaults<E: de::Error>(&mut self, skipped: &[Field]) -> Result<(), E> {
        for f in skipped {
            self.out
                .extend_from_slice(f.default.as_deref().ok_or_else(decline)?);
        }
        Ok(())
    }

    /// A map from a JSON object: one block (count first), key/value pairs, the 0 end.
    fn map<'de: 'l, A: MapAccess<'de>>(
        &mut self,
        values: NodeId,
        mut a: A,
    ) -> Result<(), A::Error> {
        let count_at = self.out.len();
        // Where each key's bytes are in `out`, to find duplicates (serde_json's map keeps one).
        let mut keys: Vec<(usize, usize)> = Vec::new();
        while let Some((at, len)) = a.next_key_seed(MapKeySeed { out: self.out })? {
            let new = &self.out[at..at + len];
            let dup = keys
                .iter()
                .any(|&(s, l)| l == len && self.out[s..s + l] == *new);
            if dup || keys.len() == MAP_ENTRIES {
                return Err(decline());
            }
            keys.push((at, len));
            self.item(values, &mut a, |a, c| a.next_value_seed(c).map(Some))?;
        }
        self.close_block(count_at, keys.len())
    }

    /// An array: one block (count first), the items, the 0 end.
    fn array<'de: 'l, A: SeqAccess<'de>>(
        &mut self,
        items: NodeId,
        mut a: A,
    ) -> Result<(), A::Error> {
        let count_at = self.out.len();
        let mut n = 0usize;
        while self.item(items, &mut a, |a, c| a.next_element_seed(c))? {
            n += 1;
        }
        self.close_block(count_at, n)
    }

    /// One array item or map value; an empty encoding spends the zero-size budget.
    #[inline]
    fn item<X, E: de::Error>(
        &mut self,
        node: NodeId,
        a: &mut X,
        next: impl FnOnce(&mut X, Enc<'_, 'l>) -> Result<Option<()>, E>,
    ) -> Result<bool, E> {
        let before = self.out.len();
        let got = next(a, self.child(node))?.is_some();
        if got && self.out.len() == before {
            *self.budget = self.budget.checked_sub(1).ok_or_else(decline)?;
        }
        Ok(got)
    }

    /// Put the block count `n` (if any items) at `count_at`, before the items, then the 0 end.
    fn close_block<E: de::Error>(&mut self, count_at: usize, n: usize) -> Result<(), E> {
        if n > 0 {
            let end = self.out.len();
            put_long(self.out, n as i64);
            let n_len = self.out.len() - end;
            self.out[count_at..].rotate_right(n_len);
        }
        self.out.push(0);
        Ok(())
    }
}

/// The union branch of a JSON string, as `pick_branch` chooses it: the first string, bytes, fixed of
/// its length or enum with the symbol, else a float/double for the three non-finite names.
fn string_branch(plan: &Plan, branches: &[NodeId], s: &str) -> Option<usize> {
    let first = branches.iter().position(|&b| match plan.node(b) {
        Node::String | Node::Bytes => true,
        Node::Fixed { size, .. } => s.chars().count() == *size,
        Node::Enum { symbols, .. } => symbols.iter().any(|x| same(x, s)),
        _ => false,
    });
    first.or_else(|| {
        special_float(s)?;
        branches
            .iter()
            .position(|&b| matches!(plan.node(b), Node::Float | Node::Double))
    })
}

/// `a == b` for the short strings compared per record (field names, enum symbols), 8 bytes at a
/// time and inline: `==` on slices calls the C library's `memcmp`, which musl runs byte by byte.
#[inline]
fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same`] for byte strings.
#[inline]
fn same_bytes(mut a: &[u8], mut b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    while let (Some(x), Some(y)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        if u64::from_ne_bytes(*x) != u64::from_ne_bytes(*y) {
            return false;
        }
        a = &a[8..];
        b = &b[8..];
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// How many bytes an Avro JSON byte string stands for; `None` if a char is above U+00FF.
fn latin1_len(s: &str) -> Option<usize> {
    let mut n = 0;
    for c in s.chars() {
        if c as u32 > 0xFF {
            return None;
        }
        n += 1;
    }
    Some(n)
}

impl<'de: 'l, 'l> DeserializeSeed<'de> for Enc<'_, 'l> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'l, 'l> Visitor<'de> for Enc<'_, 'l> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value of the schema")
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        if let Some(slot) = self.key.take() {
            *slot = None;
        }
        match self.resolve(Cat::Null)? {
            Node::Null => Ok(()),
            _ => Err(decline()),
        }
    }

    fn visit_bool<E: de::Error>(mut self, b: bool) -> Result<(), E> {
        self.capture(|| Cow::Borrowed(if b { b"true" } else { b"false" }));
        match self.resolve(Cat::Bool)? {
            Node::Boolean => {
                self.out.push(b as u8);
                Ok(())
            }
            _ => Err(decline()),
        }
    }

    fn visit_i64<E: de::Error>(mut self, i: i64) -> Result<(), E> {
        self.capture(|| Cow::Owned(serde_json::Number::from(i).to_string().into_bytes()));
        self.put_integer(Some(i), i as f64)
    }

    fn visit_u64<E: de::Error>(mut self, u: u64) -> Result<(), E> {
        self.capture(|| Cow::Owned(serde_json::Number::from(u).to_string().into_bytes()));
        self.put_integer(i64::try_from(u).ok(), u as f64)
    }

    fn visit_f64<E: de::Error>(mut self, f: f64) -> Result<(), E> {
        // The Value path turns a non-finite number into null; serde_json never parses one anyway.
        let n = serde_json::Number::from_f64(f).ok_or_else(decline)?;
        self.capture(|| Cow::Owned(n.to_string().into_bytes()));
        let node = self.resolve(Cat::Float)?;
        self.put_float(node, f)
    }

    fn visit_borrowed_str<E: de::Error>(mut self, s: &'de str) -> Result<(), E> {
        self.capture(|| Cow::Borrowed(s.as_bytes()));
        self.put_str(s)
    }

    fn visit_str<E: de::Error>(mut self, s: &str) -> Result<(), E> {
        self.capture(|| Cow::Owned(s.as_bytes().to_vec()));
        self.put_str(s)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, a: A) -> Result<(), A::Error> {
        if self.key.is_some() {
            return Err(decline());
        }
        match self.resolve(Cat::Array)? {
            Node::Array { items } => self.array(*items, a),
            _ => Err(decline()),
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, a: A) -> Result<(), A::Error> {
        if self.key.is_some() {
            return Err(decline());
        }
        match self.object_node()? {
            Node::Record { fields, .. } => self.record(fields, a),
            Node::Map { values } => self.map(*values, a),
            _ => Err(decline()),
        }
    }
}

/// A record's key: the index of its field, looked for first at `next` (keys in schema order).
struct FieldSeed<'a> {
    fields: &'a [Field],
    next: usize,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<usize, E> {
        if let Some(f) = self.fields.get(self.next)
            && same(&f.name, s)
        {
            return Ok(self.next);
        }
        // An unknown key is the slow path's `unknown-field`.
        self.fields
            .iter()
            .position(|f| same(&f.name, s))
            .ok_or_else(decline)
    }
}

/// A map's key: written to the output as an Avro string; gives where its bytes are.
struct MapKeySeed<'a> {
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for MapKeySeed<'_> {
    type Value = (usize, usize);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(usize, usize), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MapKeySeed<'_> {
    type Value = (usize, usize);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(usize, usize), E> {
        put_bytes(self.out, s.as_bytes());
        Ok((self.out.len() - s.len(), s.len()))
    }
}

#[cfg(test)]
#[path = "json_stream_tests.rs"]
mod tests;
