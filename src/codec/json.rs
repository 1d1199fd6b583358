//! The generic path: Avro's natural JSON (`serde_json::Value`) ⇄ Avro binary, walking a [`Plan`].
//!
//! Natural JSON: unions unwrapped, enums as symbol strings, longs as exact i64, non-finite floats as
//! `"NaN"`/`"Infinity"`/`"-Infinity"`, bytes/fixed as strings of code points 0–255.
//! Extra object keys that are not fields of the record are rejected (`unknown-field`).
//! Must not build apache-avro `Value` trees.

use serde_json::{Map, Number, Value};

use super::binary::{Reader, put_bytes, put_f32, put_f64, put_int, put_long};
use super::node::{Cat, Field, NO_BRANCH, Node, NodeId, Plan};
use super::{CodecError, Fail};

/// Deepest nesting of values (records, arrays, maps, unions) the codec walks.
pub(crate) const MAX_DEPTH: usize = 256;
/// Most items whose encoding may be empty (nulls, empty records) one message may hold.
pub(crate) const ZERO_SIZE_ITEM_BUDGET: usize = 1 << 20;

fn wrong_type(expected: &'static str, got: &Value) -> Fail {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    Box::new(CodecError::WrongType {
        path: String::new(),
        expected,
        got: got.into(),
    })
}

/// A float/double from a JSON number or one of the three non-finite strings.
pub(crate) fn json_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => special_float(s),
        _ => None,
    }
}

pub(crate) fn special_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A float as natural JSON: a number, or a string for NaN and the infinities (-0.0 keeps its sign).
pub(crate) fn float_json(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".into()),
        None if v > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// Avro's JSON form of bytes: one char per byte, code points 0–255.
pub(crate) fn bytes_json(b: &[u8]) -> Value {
    Value::String(b.iter().map(|&c| c as char).collect())
}

/// The bytes of an Avro JSON byte string; `None` if a char is above U+00FF.
pub(crate) fn json_bytes(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c as u32).ok()).collect()
}

fn cat_of(v: &Value) -> Cat {
    match v {
        Value::Null => Cat::Null,
        Value::Bool(_) => Cat::Bool,
        Value::Number(n) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => Cat::Int,
            Some(_) => Cat::Long,
            None if n.is_u64() => Cat::Long,
            None => Cat::Float,
        },
        Value::String(_) => Cat::Str,
        Value::Array(_) => Cat::Array,
        Value::Object(_) => Cat::Object,
    }
}

/// The union branch an unwrapped JSON value goes to: the first branch it fits.
fn pick_branch(plan: &Plan, branches: &[NodeId], pick: &[u8], v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => {
            for (i, &b) in branches.iter().enumerate() {
                let fits = match plan.node(b) {
                    Node::String | Node::Bytes => true,
                    Node::Fixed { size, .. } => s.chars().count() == *size,
                    Node::Enum { symbols, .. } => symbols.iter().any(|x| **x == **s),
                    _ => false,
                };
                if fits {
                    return Some(i);
                }
            }
            if special_float(s).is_some() {
                return branches
                    .iter()
                    .position(|&b| matches!(plan.node(b), Node::Float | Node::Double));
            }
            None
        }
        Value::Object(o) => {
            let mut first = None;
            for (i, &b) in branches.iter().enumerate() {
                match plan.node(b) {
                    Node::Map { .. } => return Some(i),
                    Node::Record { fields, .. } => {
                        first.get_or_insert(i);
                        let known = o.keys().all(|k| fields.iter().any(|f| *f.name == **k));
                        let complete = fields
                            .iter()
                            .all(|f| f.default.is_some() || o.contains_key(&*f.name));
                        if known && complete {
                            return Some(i);
                        }
                    }
                    _ => {}
                }
            }
            first
        }
        _ => {
            let p = pick.get(cat_of(v) as usize).copied().unwrap_or(NO_BRANCH);
            (p != NO_BRANCH).then_some(p as usize)
        }
    }
}

/// Encode a natural-JSON value with `node` of `plan`, appending to `out`.
///
/// The dispatcher: one arm per Avro type, the trivial scalars in place, every other type family in
/// its own function below (integers, byte strings, enums, arrays, maps, unions, records).
pub(crate) fn encode_node(
    plan: &Plan,
    node: NodeId,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Fail> {
    if depth > MAX_DEPTH {
        return Err(Box::new(CodecError::NestingTooDeep));
    }
    match plan.node(node) {
        Node::Null => match v {
            Value::Null => Ok(()),
            _ => Err(wrong_type("null", v)),
        },
        Node::Boolean => match v {
            Value::Bool(b) => {
                out.push(*b as u8);
                Ok(())
            }
            _ => Err(wrong_type("boolean", v)),
        },
        Node::Int => encode_int(v, out),
        Node::Long => encode_long(v, out),
        Node::Float => match json_f64(v) {
            Some(f) => {
                put_f32(out, f as f32);
                Ok(())
            }
            None => Err(wrong_type("float", v)),
        },
        Node::Double => match json_f64(v) {
            Some(f) => {
                put_f64(out, f);
                Ok(())
            }
            None => Err(wrong_type("double", v)),
        },
        Node::String => match v {
            Value::String(s) => {
                put_bytes(out, s.as_bytes());
                Ok(())
            }
            _ => Err(wrong_type("string", v)),
        },
        Node::Bytes => encode_bytes(v, out),
        Node::Fixed { size, .. } => encode_fixed(*size, v, out),
        Node::Enum { symbols, .. } => encode_enum(symbols, v, out),
        Node::Array { items } => encode_array(plan, *items, v, out, depth),
        Node::Map { values } => encode_map(plan, *values, v, out, depth),
        Node::Union { branches, pick } => encode_union(plan, branches, pick, v, out, depth),
        Node::Record { fields, .. } => encode_record(plan, fields, v, out, depth),
        Node::Pending => Err(Box::new(CodecError::InvalidSchema(
            "incomplete plan".into(),
        ))),
    }
}

/// An Avro `int`: a JSON integer that fits in 32 bits, else `int-out-of-range`.
#[inline]
fn encode_int(v: &Value, out: &mut Vec<u8>) -> Result<(), Fail> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => match i32::try_from(i) {
                Ok(i) => {
                    put_int(out, i);
                    Ok(())
                }
                Err(_) => Err(Box::new(CodecError::IntOutOfRange {
                    value: Some(i),
                    path: String::new(),
                })),
            },
            None if n.is_u64() => Err(Box::new(CodecError::IntOutOfRange {
                value: None,
                path: String::new(),
            })),
            None => Err(wrong_type("int", v)),
        },
        _ => Err(wrong_type("int", v)),
    }
}

/// An Avro `long`: a JSON integer that fits in an i64 (a larger u64 is `int-out-of-range`).
#[inline]
fn encode_long(v: &Value, out: &mut Vec<u8>) -> Result<(), Fail> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                put_long(out, i);
                Ok(())
            }
            None if n.is_u64() => Err(Box::new(CodecError::IntOutOfRange {
                value: None,
                path: String::new(),
            })),
            None => Err(wrong_type("long", v)),
        },
        _ => Err(wrong_type("long", v)),
    }
}

/// Avro `bytes`: a JSON string of code points 0–255, one byte each, length-prefixed.
#[inline]
fn encode_bytes(v: &Value, out: &mut Vec<u8>) -> Result<(), Fail> {
    match v {
        Value::String(s) => match json_bytes(s) {
            Some(b) => {
                put_bytes(out, &b);
                Ok(())
            }
            None => Err(wrong_type("bytes (code points 0-255)", v)),
        },
        _ => Err(wrong_type("bytes", v)),
    }
}

/// Avro `fixed`: like `bytes`, but exactly `size` of them and no length prefix.
#[inline]
fn encode_fixed(size: usize, v: &Value, out: &mut Vec<u8>) -> Result<(), Fail> {
    match v {
        Value::String(s) => match json_bytes(s) {
            Some(b) if b.len() == size => {
                out.extend_from_slice(&b);
                Ok(())
            }
            _ => Err(wrong_type("fixed of the schema's size", v)),
        },
        _ => Err(wrong_type("fixed", v)),
    }
}

/// An Avro `enum`: the symbol's string, written as its index in the schema's symbol list.
#[inline]
fn encode_enum(symbols: &[Box<str>], v: &Value, out: &mut Vec<u8>) -> Result<(), Fail> {
    match v {
        Value::String(s) => match symbols.iter().position(|x| **x == **s) {
            Some(i) => {
                put_int(out, i as i32);
                Ok(())
            }
            None => Err(Box::new(CodecError::UnknownEnumSymbol {
                path: String::new(),
                symbol: s.clone(),
            })),
        },
        _ => Err(wrong_type("enum symbol", v)),
    }
}

/// An Avro `array`: one block with the item count (none when empty), the items, then the 0 end.
#[inline]
fn encode_array(
    plan: &Plan,
    items: NodeId,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Fail> {
    match v {
        Value::Array(a) => {
            if !a.is_empty() {
                put_long(out, a.len() as i64);
                for (i, x) in a.iter().enumerate() {
                    encode_node(plan, items, x, out, depth + 1).map_err(|e| e.in_index(i))?;
                }
            }
            out.push(0);
            Ok(())
        }
        _ => Err(wrong_type("array", v)),
    }
}

/// An Avro `map`: like an array of (string key, value) pairs, from a JSON object.
#[inline]
fn encode_map(
    plan: &Plan,
    values: NodeId,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Fail> {
    match v {
        Value::Object(o) => {
            if !o.is_empty() {
                put_long(out, o.len() as i64);
                for (k, x) in o {
                    put_bytes(out, k.as_bytes());
                    encode_node(plan, values, x, out, depth + 1).map_err(|e| e.in_field(k))?;
                }
            }
            out.push(0);
            Ok(())
        }
        _ => Err(wrong_type("map", v)),
    }
}

/// An Avro union: the unwrapped value goes to the first branch it fits ([`pick_branch`]), written
/// as the branch index and then the value.
#[inline]
fn encode_union(
    plan: &Plan,
    branches: &[NodeId],
    pick: &[u8],
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Fail> {
    match pick_branch(plan, branches, pick, v) {
        Some(i) => {
            put_long(out, i as i64);
            encode_node(plan, branches[i], v, out, depth + 1)
        }
        None => Err(wrong_type("a value of one of the union's branches", v)),
    }
}

/// An Avro record: the fields in schema order, a missing one from its pre-encoded default (else
/// `missing-field`); a JSON key that is no field is `unknown-field`.
#[inline]
fn encode_record(
    plan: &Plan,
    fields: &[Field],
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Fail> {
    let Value::Object(o) = v else {
        return Err(wrong_type("record (JSON object)", v));
    };
    let mut seen = 0usize;
    // Keys usually come in schema order: take the next entry when it is the field's, else look it up.
    let mut in_order = o.iter().peekable();
    for f in fields.iter() {
        let found = match in_order.next_if(|(k, _)| **k == *f.name) {
            Some((_, x)) => Some(x),
            None => o.get(&*f.name),
        };
        match found {
            Some(x) => {
                seen += 1;
                encode_node(plan, f.node, x, out, depth + 1).map_err(|e| e.in_field(&f.name))?;
            }
            None => match &f.default {
                Some(d) => out.extend_from_slice(d),
                None => {
                    return Err(Box::new(CodecError::MissingField {
                        path: f.name.to_string(),
                    }));
                }
            },
        }
    }
    if seen != o.len()
        && let Some(k) = o.keys().find(|k| !fields.iter().any(|f| *f.name == ***k))
    {
        return Err(Box::new(CodecError::UnknownField { path: k.clone() }));
    }
    Ok(())
}

/// Decoding state shared by the walk: the body cursor and the zero-size item budget.
/// Public only so that [`super::AvroRecord`] impls can pass it through; its insides stay private.
pub struct Walk<'a> {
    pub(crate) r: Reader<'a>,
    pub(crate) zero_budget: usize,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Walk {
            r: Reader::new(body),
            zero_budget: ZERO_SIZE_ITEM_BUDGET,
        }
    }

    /// Read the blocks of an array or map value: `item(walk, index)` once per item, collected.
    /// Block counts are bounded by the bytes left (`min_item`: an item's minimum encoded size).
    #[inline(always)]
    pub(crate) fn read_items<T>(
        &mut self,
        min_item: usize,
        mut item: impl FnMut(&mut Self, usize) -> Result<T, Fail>,
    ) -> Result<Vec<T>, Fail> {
        let mut a = Vec::new();
        loop {
            let n = self.r.block_count(min_item, &mut self.zero_budget)?;
            if n == 0 {
                return Ok(a);
            }
            a.reserve(n);
            for _ in 0..n {
                let i = a.len();
                a.push(item(self, i)?);
            }
        }
    }
}

/// Decode one value of `node` into natural JSON.
pub(crate) fn decode_node(
    plan: &Plan,
    node: NodeId,
    w: &mut Walk<'_>,
    depth: usize,
) -> Result<Value, Fail> {
    if depth > MAX_DEPTH {
        return Err(Box::new(CodecError::NestingTooDeep));
    }
    Ok(match plan.node(node) {
        Node::Null => Value::Null,
        Node::Boolean => Value::Bool(w.r.boolean()?),
        Node::Int => Value::from(w.r.int()?),
        Node::Long => Value::from(w.r.long()?),
        Node::Float => float_json(w.r.f32()? as f64),
        Node::Double => float_json(w.r.f64()?),
        Node::String => Value::String(w.r.str()?.to_owned()),
        Node::Bytes => bytes_json(w.r.bytes()?),
        Node::Fixed { size, .. } => bytes_json(w.r.take(*size)?),
        Node::Enum { symbols, .. } => {
            let i = w.r.enum_index(symbols.len())?;
            Value::String(symbols[i].to_string())
        }
        Node::Array { items } => {
            Value::Array(w.read_items(plan.min_size[*items as usize], |w, _| {
                decode_node(plan, *items, w, depth + 1)
            })?)
        }
        Node::Map { values } => {
            let pairs = w.read_items(1 + plan.min_size[*values as usize], |w, _| {
                let k = w.r.str()?.to_owned();
                Ok((k, decode_node(plan, *values, w, depth + 1)?))
            })?;
            Value::Object(pairs.into_iter().collect::<Map<String, Value>>())
        }
        Node::Union { branches, .. } => {
            let i = w.r.union_index(branches.len())?;
            return decode_node(plan, branches[i], w, depth + 1);
        }
        Node::Record { fields, .. } => {
            let mut m = Map::with_capacity(fields.len());
            for f in fields.iter() {
                let v = decode_node(plan, f.node, w, depth + 1)?;
                m.insert(f.name.to_string(), v);
            }
            Value::Object(m)
        }
        Node::Pending => {
            return Err(Box::new(CodecError::InvalidSchema(
                "incomplete plan".into(),
            )));
        }
    })
}

/// Read and check one value of `node` without building anything (for writer-only data).
pub(crate) fn skip_node(
    plan: &Plan,
    node: NodeId,
    w: &mut Walk<'_>,
    depth: usize,
) -> Result<(), Fail> {
    if depth > MAX_DEPTH {
        return Err(Box::new(CodecError::NestingTooDeep));
    }
    match plan.node(node) {
        Node::Null => {}
        Node::Boolean => {
            w.r.boolean()?;
        }
        Node::Int => {
            w.r.int()?;
        }
        Node::Long => {
            w.r.long()?;
        }
        Node::Float => {
            w.r.f32()?;
        }
        Node::Double => {
            w.r.f64()?;
        }
        Node::String => {
            w.r.str()?;
        }
        Node::Bytes => {
            w.r.bytes()?;
        }
        Node::Fixed { size, .. } => {
            w.r.take(*size)?;
        }
        Node::Enum { symbols, .. } => {
            w.r.enum_index(symbols.len())?;
        }
        // Items of `()` take no memory: read_items only counts them.
        Node::Array { items } => {
            w.read_items(plan.min_size[*items as usize], |w, _| {
                skip_node(plan, *items, w, depth + 1)
            })?;
        }
        Node::Map { values } => {
            w.read_items(1 + plan.min_size[*values as usize], |w, _| {
                w.r.str()?;
                skip_node(plan, *values, w, depth + 1)
            })?;
        }
        Node::Union { branches, .. } => {
            let i = w.r.union_index(branches.len())?;
            skip_node(plan, branches[i], w, depth + 1)?;
        }
        Node::Record { fields, .. } => {
            for f in fields.iter() {
                skip_node(plan, f.node, w, depth + 1)?;
            }
        }
        Node::Pending => {
            return Err(Box::new(CodecError::InvalidSchema(
                "incomplete plan".into(),
            )));
        }
    }
    Ok(())
}

/// Room made for a record's keys before parsing it (a map that outgrows it grows as usual).
const RECORD_KEYS: usize = 8;

/// The top-level JSON object of a record line, its map created with room for [`RECORD_KEYS`] keys
/// (serde_json's own `Value` starts from an empty map and regrows it, a few times per record).
struct RecordSeed;

impl<'de> serde::de::Visitor<'de> for RecordSeed {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut m = Map::with_capacity(RECORD_KEYS);
        while let Some((k, v)) = a.next_entry::<String, Value>()? {
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

/// Parse one line of natural JSON, as `serde_json::from_slice::<Value>` does: the same value and,
/// on failure, the same error (anything but an object, or any error, is parsed again by serde_json).
pub fn parse_record(line: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(line);
    match serde::Deserializer::deserialize_any(&mut de, RecordSeed)
        .and_then(|v| de.end().map(|()| v))
    {
        Ok(v) => Ok(v),
        Err(_) => serde_json::from_slice(line),
    }
}

/// The Kafka key from the top-level field `field` of a record: a string's bytes, no key for null or
/// a missing field, else the field's JSON text (a number or boolean exactly as serde_json prints it).
pub fn record_key(record: &Value, field: &str) -> Option<Vec<u8>> {
    match record.get(field)? {
        Value::Null => None,
        Value::String(s) => Some(s.as_bytes().to_vec()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// Encode a whole record (root node) from natural JSON.
pub fn encode_value(plan: &Plan, v: &Value, out: &mut Vec<u8>) -> Result<(), Fail> {
    encode_node(plan, Plan::ROOT, v, out, 0)
}

/// Decode a whole Avro body (root node) into natural JSON; every byte must be used.
pub fn decode_value(plan: &Plan, body: &[u8]) -> Result<Value, Fail> {
    let mut w = Walk::new(body);
    let v = decode_node(plan, Plan::ROOT, &mut w, 0)?;
    w.r.finish()?;
    Ok(v)
}
