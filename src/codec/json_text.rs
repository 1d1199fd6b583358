//! Natural JSON text straight from Avro binary: the consumer's output line without a
//! `serde_json::Value` tree.
//!
//! Writes exactly the bytes that `serde_json::to_writer` writes for the `Value` of
//! [`super::json::decode_value`]: numbers and escaped strings are formatted by serde_json itself
//! (its `CompactFormatter`, called directly); maps (whose duplicate keys the `Value` collapses) and
//! bytes/fixed (strings of code points 0–255) go through the `Value` path for that one value.
//! Records, arrays, unions, enums and scalars are written as they are read, with no allocation per
//! record. What is the same in every record of a schema is rendered once per plan ([`Pieces`]):
//! each record field's key with its `{` or `,` and `:`, and each enum symbol as a JSON string.
//!
//! Must not report errors of its own: when the body does not decode, the output is put back as it
//! was and the whole body is decoded again through the `Value` path, whose error is returned, so
//! errors are exactly the `Value` path's.

use std::sync::Arc;

use serde_json::Value;
use serde_json::ser::{CompactFormatter, Formatter};

use super::json::{MAX_DEPTH, Walk, decode_node, decode_value, float_json};
use super::node::{Field, Node, NodeId, Plan};
use super::{Codec, CodecError, Fail};
use crate::short_copy::{ShortWriter, extend};
use crate::wire;

/// Decodes Confluent-framed messages into natural JSON text ([`Codec::text_decoder`]). It keeps the
/// plan of the last schema id it saw (a topic's messages mostly share one) with the text rendered
/// once for it (field keys, enum symbols), so the codec's shared plan cache is asked only when the
/// id changes.
pub struct TextDecoder<'c> {
    codec: &'c Codec,
    last: Option<(u32, Arc<Plan>, Pieces)>,
}

impl<'c> TextDecoder<'c> {
    pub(super) fn new(codec: &'c Codec) -> Self {
        TextDecoder { codec, last: None }
    }

    /// Append the natural JSON text of framed message `msg` to `out` (no newline), read with the
    /// writer schema named by its id. On error `out` is left as it was.
    pub fn decode_into(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let (id, body) = wire::unframe(msg)?;
        let (plan, pieces) = match &self.last {
            Some((last, plan, pieces)) if *last == id => (plan, pieces),
            _ => {
                let plan = self.codec.plan_by_id(id)?;
                let pieces = Pieces::of(&plan);
                let (_, plan, pieces) = self.last.insert((id, plan, pieces));
                (&*plan, &*pieces)
            }
        };
        write_with(plan, pieces, body, out).map_err(|e| *e)
    }
}

/// The text a plan writes the same way for every value, rendered once: per node id, a record's
/// field keys (`{"name":` for the first, `,"name":` for the others) or an enum's symbols (`"NAME"`),
/// each escaped by serde_json; empty for other nodes.
pub(crate) struct Pieces(Vec<Box<[Box<[u8]>]>>);

impl Pieces {
    /// A node whose text cannot be rendered (serde_json refusing a string: it never does) gets no
    /// pieces, and the walk escapes its keys or symbols as it goes instead.
    pub(crate) fn of(plan: &Plan) -> Pieces {
        let quoted = |s: &str| serde_json::to_vec(s).ok();
        let node = |n: &Node| -> Option<Box<[Box<[u8]>]>> {
            match n {
                Node::Record { fields, .. } => fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let mut key = vec![if i == 0 { b'{' } else { b',' }];
                        key.extend(quoted(&f.name)?);
                        key.push(b':');
                        Some(key.into_boxed_slice())
                    })
                    .collect(),
                Node::Enum { symbols, .. } => symbols
                    .iter()
                    .map(|s| Some(quoted(s)?.into_boxed_slice()))
                    .collect(),
                _ => None,
            }
        };
        Pieces(
            plan.nodes
                .iter()
                .map(|n| node(n).unwrap_or_default())
                .collect(),
        )
    }

    #[inline]
    fn get(&self, node: NodeId) -> &[Box<[u8]>] {
        self.0.get(node as usize).map_or(&[], |p| p)
    }
}

/// Append the natural JSON of a whole Avro body (root node) to `out`; every byte must be used.
/// Renders the plan's [`Pieces`] for this one call ([`TextDecoder`] keeps them).
pub(crate) fn write_value(plan: &Plan, body: &[u8], out: &mut Vec<u8>) -> Result<(), Fail> {
    write_with(plan, &Pieces::of(plan), body, out)
}

/// [`write_value`] with the plan's pieces already rendered.
fn write_with(plan: &Plan, pieces: &Pieces, body: &[u8], out: &mut Vec<u8>) -> Result<(), Fail> {
    let start = out.len();
    let mut w = Walk::new(body);
    let t = Text { plan, pieces };
    let direct = t
        .write_node(Plan::ROOT, &mut w, out, 0)
        .and_then(|()| w.r.finish());
    if direct.is_ok() {
        return Ok(());
    }
    out.truncate(start);
    let v = decode_value(plan, body)?;
    serialize(&v, out)
}

/// serde_json's text for a value that is not written directly here.
fn serialize<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) -> Result<(), Fail> {
    serde_json::to_writer(ShortWriter(out), v)
        .map_err(|e| Box::new(CodecError::TypeMismatch(e.to_string())))
}

/// A write through serde_json's compact formatter (what its serializer calls for a number).
#[inline]
fn formatted(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut ShortWriter<'_>) -> std::io::Result<()>,
) -> Result<(), Fail> {
    write(&mut ShortWriter(out)).map_err(|e| Box::new(CodecError::TypeMismatch(e.to_string())))
}

/// A plan and its rendered pieces: what the walk writes with.
struct Text<'p> {
    plan: &'p Plan,
    pieces: &'p Pieces,
}

impl Text<'_> {
    /// Write one value of `node`, read from `w`.
    fn write_node(
        &self,
        node: NodeId,
        w: &mut Walk<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Fail> {
        if depth > MAX_DEPTH {
            return Err(Box::new(CodecError::NestingTooDeep));
        }
        match self.plan.node(node) {
            Node::Null => extend(out, b"null"),
            Node::Boolean => extend(out, if w.r.boolean()? { b"true" } else { b"false" }),
            Node::Int => {
                let v = w.r.int()?;
                formatted(out, |o| CompactFormatter.write_i32(o, v))?
            }
            Node::Long => {
                let v = w.r.long()?;
                formatted(out, |o| CompactFormatter.write_i64(o, v))?
            }
            Node::Float => write_float(w.r.f32()? as f64, out)?,
            Node::Double => write_float(w.r.f64()?, out)?,
            Node::String => write_str(w.r.str()?, out)?,
            Node::Enum { symbols, .. } => {
                let i = w.r.enum_index(symbols.len())?;
                match self.pieces.get(node).get(i) {
                    Some(text) => extend(out, text),
                    None => write_str(&symbols[i], out)?,
                }
            }
            Node::Array { items } => self.write_array(*items, w, out, depth)?,
            Node::Union { branches, .. } => {
                let i = w.r.union_index(branches.len())?;
                self.write_node(branches[i], w, out, depth + 1)?;
            }
            Node::Record { fields, .. } => self.write_record(node, fields, w, out, depth)?,
            Node::Bytes | Node::Fixed { .. } | Node::Map { .. } | Node::Pending => {
                let v: Value = decode_node(self.plan, node, w, depth)?;
                serialize(&v, out)?;
            }
        }
        Ok(())
    }

    /// An array: its items between brackets, comma-separated.
    fn write_array(
        &self,
        items: NodeId,
        w: &mut Walk<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Fail> {
        out.push(b'[');
        // Items of `()` take no memory: read_items only counts them.
        w.read_items(self.plan.min_size[items as usize], |w, i| {
            if i > 0 {
                out.push(b',');
            }
            self.write_node(items, w, out, depth + 1)
        })?;
        out.push(b']');
        Ok(())
    }

    /// A record: `{"field":value,...}` in schema order, each key from the rendered pieces.
    fn write_record(
        &self,
        node: NodeId,
        fields: &[Field],
        w: &mut Walk<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Fail> {
        let keys = self.pieces.get(node);
        if fields.is_empty() || keys.len() != fields.len() {
            return self.write_record_keys_escaped(fields, w, out, depth);
        }
        for (key, f) in keys.iter().zip(fields) {
            extend(out, key);
            self.write_node(f.node, w, out, depth + 1)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// A record whose keys were not rendered (an empty record, or a name serde_json refused): each
    /// key escaped as it goes.
    fn write_record_keys_escaped(
        &self,
        fields: &[Field],
        w: &mut Walk<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Fail> {
        out.push(b'{');
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&f.name, out)?;
            out.push(b':');
            self.write_node(f.node, w, out, depth + 1)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// A float as natural JSON: serde_json's number text, or (rare) the string [`float_json`] makes of
/// NaN and the infinities.
#[inline]
fn write_float(v: f64, out: &mut Vec<u8>) -> Result<(), Fail> {
    if v.is_finite() {
        formatted(out, |o| CompactFormatter.write_f64(o, v))
    } else {
        serialize(&float_json(v), out)
    }
}

/// Strings up to this long are checked for escapes while they are copied, byte by byte.
const SHORT_STR: usize = 64;

/// A JSON string: copied between quotes in one pass when nothing in it needs escaping (serde_json
/// escapes only `"`, `\` and control characters below U+0020), else put back and escaped by
/// serde_json.
#[inline]
fn write_str(s: &str, out: &mut Vec<u8>) -> Result<(), Fail> {
    let needs_escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    if s.len() > SHORT_STR {
        if s.bytes().any(needs_escape) {
            return serialize(s, out);
        }
        out.push(b'"');
        extend(out, s.as_bytes());
        out.push(b'"');
        return Ok(());
    }
    let start = out.len();
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut special = false;
    for &b in s.as_bytes() {
        special |= needs_escape(b);
        out.push(b);
    }
    out.push(b'"');
    if special {
        out.truncate(start);
        return serialize(s, out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `write_value` must give `serde_json::to_vec(decode_value(..))` byte for byte, or its error.
    fn same_as_value_path(schema: &str, body: &[u8]) -> Vec<u8> {
        let plan = Plan::compile_str(schema).unwrap();
        let mut out = b"prefix".to_vec();
        let got = write_value(&plan, body, &mut out);
        match decode_value(&plan, body) {
            Ok(v) => {
                assert!(got.is_ok(), "{schema}: {got:?}");
                // The text came from the direct walk, not from the Value fallback.
                let mut w = Walk::new(body);
                let mut direct = Vec::new();
                let pieces = Pieces::of(&plan);
                let t = Text {
                    plan: &plan,
                    pieces: &pieces,
                };
                t.write_node(Plan::ROOT, &mut w, &mut direct, 0).unwrap();
                w.r.finish().unwrap();
                assert_eq!(direct, out[6..]);
                let want = serde_json::to_vec(&v).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&out[6..]),
                    String::from_utf8_lossy(&want),
                    "{schema}"
                );
            }
            Err(e) => {
                let got = got.expect_err("the Value path failed, so must the text path");
                assert_eq!(got.to_string(), e.to_string());
                assert_eq!(out, b"prefix", "output put back on error");
            }
        }
        out[6..].to_vec()
    }

    fn encode(schema: &str, v: Value) -> Vec<u8> {
        let plan = Plan::compile_str(schema).unwrap();
        let mut out = Vec::new();
        plan.encode_json_into(&v, &mut out).unwrap();
        out
    }

    const SENSOR: &str = r#"{"type":"record","name":"SensorData","fields":[
        {"name":"sensorId","type":"string"},{"name":"timestamp","type":"long"},
        {"name":"temperature","type":["null","float"],"default":null},
        {"name":"humidity","type":["null","double"],"default":null},
        {"name":"status","type":{"type":"enum","name":"Status","symbols":["NORMAL","WARNING","ERROR"]}}]}"#;

    #[test]
    fn sensor_readings_match_the_value_path_including_odd_floats() {
        for (t, h) in [
            (serde_json::json!(21.25), serde_json::json!(48.5)),
            (serde_json::json!(0.1), serde_json::json!(-0.0)),
            (serde_json::json!(null), serde_json::json!(1e300)),
            (serde_json::json!("NaN"), serde_json::json!("-Infinity")),
            (serde_json::json!("Infinity"), serde_json::json!(5e-324)),
            (serde_json::json!(3.4e38), serde_json::json!(123456789)),
        ] {
            let body = encode(
                SENSOR,
                serde_json::json!({"sensorId": "s-\"1\"\n\u{1}é", "timestamp": -9_007_199_254_740_993i64,
                    "temperature": t, "humidity": h, "status": "WARNING"}),
            );
            same_as_value_path(SENSOR, &body);
        }
    }

    /// The float text of numbers printed without an exponent (the digits zmij moves into place,
    /// vendor/README.md) is the shortest that reads back, as std's `Display` prints it (which adds
    /// no `.0` to a whole number), for random doubles and widened floats of every magnitude there.
    /// The one allowed difference is the last digit of a value exactly halfway between two
    /// shortest texts (`199780106544494.625`): zmij rounds those to even, std up.
    #[test]
    fn fixed_notation_floats_are_std_display_digits() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut seen, mut ties) = (0, 0);
        for i in 0..400_000u32 {
            let bits = next();
            // Half doubles, half floats widened, each scaled into 1e-5 ..= 1e16 by its exponent.
            let m = f64::from_bits(0x3ff0_0000_0000_0000 | (bits & 0x000f_ffff_ffff_ffff));
            let m = if i % 2 == 0 { m } else { f64::from(m as f32) };
            let v = m * 10f64.powi((bits >> 52) as i32 % 22 - 6);
            let v = if bits >> 63 == 1 { -v } else { v };
            if !(1e-5..1e16).contains(&v.abs()) {
                continue;
            }
            let mut out = Vec::new();
            write_float(v, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let std = v.to_string();
            let want = if std.contains('.') { std } else { std + ".0" };
            assert_eq!(text.parse::<f64>().unwrap(), v, "{text}");
            if text != want {
                // A tie: the exact value is the lower of the two texts and a 5 after it.
                let lower = if text.len() == want.len() && text < want {
                    &text
                } else {
                    &want
                };
                let exact = format!("{v:.80}");
                assert_eq!(
                    exact.trim_end_matches('0'),
                    format!("{lower}5"),
                    "{text} {want}"
                );
                ties += 1;
            }
            seen += 1;
        }
        assert!(seen > 300_000 && ties > 0, "{seen} {ties}");
    }

    #[test]
    fn nested_records_arrays_maps_bytes_and_unions_match_the_value_path() {
        let schema = r#"{"type":"record","name":"R","fields":[
            {"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[
                {"name":"n","type":"int"},{"name":"tags","type":{"type":"map","values":"long"}}]}}},
            {"name":"opt","type":["null","I"]},
            {"name":"raw","type":"bytes"},{"name":"fx","type":{"type":"fixed","name":"F","size":2}},
            {"name":"b","type":"boolean"},{"name":"nil","type":"null"},
            {"name":"empty","type":{"type":"array","items":"string"}},
            {"name":"u","type":["null","string","long","double","boolean"]}]}"#;
        let cases = [
            serde_json::json!({"items": [{"n": 1, "tags": {"a": 1, "b": -2}}, {"n": -7, "tags": {}}],
                "opt": {"n": 3, "tags": {"z\"": 9}}, "raw": "\u{0}\u{ff}a", "fx": "xy", "b": true,
                "nil": null, "empty": [], "u": "text"}),
            serde_json::json!({"items": [], "opt": null, "raw": "", "fx": "\u{1}\u{2}", "b": false,
                "nil": null, "empty": ["a", "b\\"], "u": 2.5}),
            serde_json::json!({"items": [], "opt": null, "raw": "", "fx": "00", "b": false,
                "nil": null, "empty": [], "u": 12}),
        ];
        for v in cases {
            same_as_value_path(schema, &encode(schema, v));
        }
        // A map with a duplicate key (another writer's bytes): the Value path keeps one entry.
        let map = r#"{"type":"map","values":"int"}"#;
        let dup = [4u8, 2, b'k', 2, 2, b'k', 4, 0];
        let text = same_as_value_path(map, &dup);
        assert_eq!(text, br#"{"k":2}"#);
    }

    #[test]
    fn rendered_keys_and_symbols_long_strings_and_empty_records_match_the_value_path() {
        let schema = r#"{"type":"record","name":"R","fields":[
            {"name":"e","type":{"type":"record","name":"E","fields":[]}},
            {"name":"s","type":"string"},
            {"name":"k","type":{"type":"enum","name":"K","symbols":["A","B_2","c"]}},
            {"name":"n","type":"int"}]}"#;
        let long = "x".repeat(65);
        let long_escaped = format!("{long}\"\u{1f}");
        for (s, k, n) in [
            ("", "A", 0),
            (long.as_str(), "B_2", i32::MIN),
            (long_escaped.as_str(), "c", i32::MAX),
            ("é\\", "A", -1),
        ] {
            let v = serde_json::json!({"e": {}, "s": s, "k": k, "n": n});
            same_as_value_path(schema, &encode(schema, v));
        }
    }

    #[test]
    fn bad_bodies_fail_with_the_value_paths_error_and_leave_the_output_alone() {
        let body = encode(
            SENSOR,
            serde_json::json!({"sensorId": "s", "timestamp": 1, "status": "ERROR"}),
        );
        for cut in 0..body.len() {
            same_as_value_path(SENSOR, &body[..cut]);
        }
        let mut extra = body.clone();
        extra.push(0);
        same_as_value_path(SENSOR, &extra);
        let mut bad_enum = body.clone();
        *bad_enum.last_mut().unwrap() = 40;
        same_as_value_path(SENSOR, &bad_enum);
        let mut bad_utf8 = body;
        bad_utf8[1] = 0xff;
        same_as_value_path(SENSOR, &bad_utf8);
    }
}
