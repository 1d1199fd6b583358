//! The typed encode path: a serde `Serializer` driven by the compiled [`Plan`], writing Avro binary
//! straight into the output buffer.
//!
//! Struct fields are matched to plan fields by name (in schema order: direct; otherwise buffered per
//! field), `Option` maps to a `["null", T]` union, unit enum variants to enum symbols by name, and a
//! missing field takes its pre-encoded default. Must not allocate per record on the in-order path.

use serde::ser::{self, Serialize};

use super::binary::{put_bytes, put_f32, put_f64, put_int, put_long};
use super::json::MAX_DEPTH;
use super::plan::{Cat, Field, NO_BRANCH, Node, NodeId, Plan};
use super::{CodecError, Fail};

/// String equality for short names without a `memcmp` call (field names, enum symbols).
#[inline(always)]
fn name_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

pub(crate) fn encode<T: Serialize + ?Sized>(
    plan: &Plan,
    v: &T,
    out: &mut Vec<u8>,
) -> Result<(), Fail> {
    v.serialize(Ser {
        plan,
        node: Plan::ROOT,
        out,
        depth: 0,
    })
}

struct Ser<'a, 'p> {
    plan: &'p Plan,
    node: NodeId,
    out: &'a mut Vec<u8>,
    depth: usize,
}

fn wrong(expected: &'static str, got: &str) -> Fail {
    Box::new(CodecError::WrongType {
        path: String::new(),
        expected,
        got: got.to_string(),
    })
}

/// What an encode error says the schema expected at a node.
fn expected_of(n: &Node) -> &'static str {
    match n {
        Node::Enum { .. } => "enum symbol",
        Node::Union { .. } => "a value of one of the union's branches",
        Node::Pending => "complete schema",
        n => n.type_name(),
    }
}

impl<'a, 'p> Ser<'a, 'p> {
    /// If this node is a union, write the branch index for a value of category `cat` and return
    /// the branch node; otherwise return the node itself.
    #[inline(always)]
    fn target(&mut self, cat: Cat) -> Result<&'p Node, Fail> {
        let plan = self.plan;
        match plan.node(self.node) {
            Node::Union { branches, pick } => {
                let p = pick[cat as usize];
                if p == NO_BRANCH {
                    return Err(wrong(
                        "a value of one of the union's branches",
                        cat_name(cat),
                    ));
                }
                put_long(self.out, p as i64);
                self.node = branches[p as usize];
                Ok(plan.node(self.node))
            }
            n => Ok(n),
        }
    }

    fn child(&mut self, node: NodeId) -> Result<Ser<'_, 'p>, Fail> {
        if self.depth >= MAX_DEPTH {
            return Err(Box::new(CodecError::NestingTooDeep));
        }
        Ok(Ser {
            plan: self.plan,
            node,
            out: self.out,
            depth: self.depth + 1,
        })
    }

    #[inline(always)]
    fn integer(mut self, v: i64) -> Result<(), Fail> {
        let cat = if i32::try_from(v).is_ok() {
            Cat::Int
        } else {
            Cat::Long
        };
        match self.target(cat)? {
            Node::Int => match i32::try_from(v) {
                Ok(i) => put_int(self.out, i),
                Err(_) => {
                    return Err(Box::new(CodecError::IntOutOfRange {
                        value: Some(v),
                        path: String::new(),
                    }));
                }
            },
            Node::Long => put_long(self.out, v),
            Node::Float => put_f32(self.out, v as f32),
            Node::Double => put_f64(self.out, v as f64),
            n => return Err(wrong(expected_of(n), "integer")),
        }
        Ok(())
    }

    #[inline(always)]
    fn float(mut self, v: f64, single: Option<f32>) -> Result<(), Fail> {
        match self.target(Cat::Float)? {
            Node::Float => put_f32(self.out, single.unwrap_or(v as f32)),
            Node::Double => put_f64(self.out, v),
            n => return Err(wrong(expected_of(n), "float")),
        }
        Ok(())
    }

    /// Pick the union branch for a string: a string/bytes branch, or an enum that has the symbol.
    #[inline(always)]
    fn string_target(&mut self, s: &str) -> Result<&'p Node, Fail> {
        let plan = self.plan;
        if let Node::Union { branches, .. } = plan.node(self.node) {
            let hit = branches.iter().position(|&b| match plan.node(b) {
                Node::String | Node::Bytes => true,
                Node::Fixed { size, .. } => *size == s.len(),
                Node::Enum { symbols, .. } => symbols.iter().any(|x| **x == *s),
                _ => false,
            });
            let Some(i) = hit else {
                return Err(wrong("a value of one of the union's branches", "string"));
            };
            put_long(self.out, i as i64);
            self.node = branches[i];
        }
        Ok(plan.node(self.node))
    }

    #[inline(always)]
    fn symbol(mut self, s: &str, hint: Option<u32>) -> Result<(), Fail> {
        match self.string_target(s)? {
            Node::String | Node::Bytes => put_bytes(self.out, s.as_bytes()),
            Node::Fixed { size, .. } if *size == s.len() => {
                self.out.extend_from_slice(s.as_bytes())
            }
            Node::Enum { symbols, .. } => {
                let i = match hint {
                    Some(h) if symbols.get(h as usize).is_some_and(|x| name_eq(x, s)) => h as usize,
                    _ => symbols.iter().position(|x| **x == *s).ok_or_else(|| {
                        CodecError::UnknownEnumSymbol {
                            path: String::new(),
                            symbol: s.to_string(),
                        }
                    })?,
                };
                put_int(self.out, i as i32);
            }
            n => return Err(wrong(expected_of(n), "string")),
        }
        Ok(())
    }

    /// For a Rust enum variant with data: pick the union branch whose type name is the variant.
    fn variant_branch(&mut self, variant: &str) -> Result<NodeId, Fail> {
        let plan = self.plan;
        if let Node::Union { branches, .. } = plan.node(self.node) {
            let i = branches
                .iter()
                .position(|&b| plan.node(b).branch_name() == variant)
                .ok_or_else(|| wrong("a union branch named like the variant", variant))?;
            put_long(self.out, i as i64);
            return Ok(branches[i]);
        }
        Ok(self.node)
    }

    fn compound(mut self, cat: Cat, len: Option<usize>) -> Result<Compound<'a, 'p>, Fail> {
        if self.depth >= MAX_DEPTH {
            return Err(Box::new(CodecError::NestingTooDeep));
        }
        let depth = self.depth + 1;
        let plan = self.plan;
        match self.target(cat)? {
            Node::Array { items } if cat == Cat::Array => Ok(Compound::Seq(SeqState::new(
                plan, *items, self.out, len, depth,
            ))),
            Node::Map { values } if cat == Cat::Object => Ok(Compound::Map(
                SeqState::new(plan, *values, self.out, len, depth),
                None,
            )),
            Node::Record { fields, .. } if cat == Cat::Object => Ok(Compound::Record(RecState {
                plan,
                fields,
                out: self.out,
                next: 0,
                slots: None,
                depth,
                key: None,
            })),
            n => Err(wrong(
                expected_of(n),
                if cat == Cat::Array {
                    "sequence"
                } else {
                    "map/struct"
                },
            )),
        }
    }
}

fn cat_name(c: Cat) -> &'static str {
    match c {
        Cat::Null => "null",
        Cat::Bool => "boolean",
        Cat::Int | Cat::Long => "integer",
        Cat::Float => "float",
        Cat::Str => "string",
        Cat::Bytes => "bytes",
        Cat::Object => "map/struct",
        Cat::Array => "sequence",
    }
}

impl<'a, 'p> ser::Serializer for Ser<'a, 'p> {
    type Ok = ();
    type Error = Fail;
    type SerializeSeq = Compound<'a, 'p>;
    type SerializeTuple = Compound<'a, 'p>;
    type SerializeTupleStruct = Compound<'a, 'p>;
    type SerializeTupleVariant = Compound<'a, 'p>;
    type SerializeMap = Compound<'a, 'p>;
    type SerializeStruct = Compound<'a, 'p>;
    type SerializeStructVariant = Compound<'a, 'p>;

    fn serialize_bool(mut self, v: bool) -> Result<(), Fail> {
        match self.target(Cat::Bool)? {
            Node::Boolean => {
                self.out.push(v as u8);
                Ok(())
            }
            n => Err(wrong(expected_of(n), "boolean")),
        }
    }
    fn serialize_i8(self, v: i8) -> Result<(), Fail> {
        self.integer(v as i64)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Fail> {
        self.integer(v as i64)
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Fail> {
        self.integer(v as i64)
    }
    #[inline(always)]
    fn serialize_i64(self, v: i64) -> Result<(), Fail> {
        self.integer(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Fail> {
        self.integer(v as i64)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Fail> {
        self.integer(v as i64)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Fail> {
        self.integer(v as i64)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Fail> {
        match i64::try_from(v) {
            Ok(v) => self.integer(v),
            Err(_) => Err(Box::new(CodecError::IntOutOfRange {
                value: None,
                path: String::new(),
            })),
        }
    }
    #[inline(always)]
    fn serialize_f32(self, v: f32) -> Result<(), Fail> {
        self.float(v as f64, Some(v))
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Fail> {
        self.float(v, None)
    }
    fn serialize_char(self, v: char) -> Result<(), Fail> {
        let mut b = [0u8; 4];
        self.symbol(v.encode_utf8(&mut b), None)
    }
    #[inline(always)]
    fn serialize_str(self, v: &str) -> Result<(), Fail> {
        self.symbol(v, None)
    }
    fn serialize_bytes(mut self, v: &[u8]) -> Result<(), Fail> {
        match self.target(Cat::Bytes)? {
            Node::Bytes | Node::String => put_bytes(self.out, v),
            Node::Fixed { size, .. } if *size == v.len() => self.out.extend_from_slice(v),
            n => return Err(wrong(expected_of(n), "bytes")),
        }
        Ok(())
    }
    #[inline(always)]
    fn serialize_none(mut self) -> Result<(), Fail> {
        match self.target(Cat::Null)? {
            Node::Null => Ok(()),
            n => Err(wrong(expected_of(n), "null")),
        }
    }
    #[inline(always)]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Fail> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Fail> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Fail> {
        self.serialize_none()
    }
    #[inline(always)]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        idx: u32,
        variant: &'static str,
    ) -> Result<(), Fail> {
        self.symbol(variant, Some(idx))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Fail> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _idx: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Fail> {
        let b = self.variant_branch(variant)?;
        value.serialize(self.child(b)?)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a, 'p>, Fail> {
        self.compound(Cat::Array, len)
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'p>, Fail> {
        self.compound(Cat::Array, Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'p>, Fail> {
        self.compound(Cat::Array, Some(len))
    }
    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _idx: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'p>, Fail> {
        self.node = self.variant_branch(variant)?;
        self.compound(Cat::Array, Some(len))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a, 'p>, Fail> {
        self.compound(Cat::Object, len)
    }
    #[inline(always)]
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, 'p>, Fail> {
        self.compound(Cat::Object, Some(len))
    }
    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        _idx: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'p>, Fail> {
        self.node = self.variant_branch(variant)?;
        self.compound(Cat::Object, Some(len))
    }
}

/// Array or map items: written straight to `out` when the count is known, else buffered.
pub(crate) struct SeqState<'a, 'p> {
    plan: &'p Plan,
    item: NodeId,
    out: &'a mut Vec<u8>,
    buf: Option<Vec<u8>>,
    expected: usize,
    count: usize,
    depth: usize,
}

impl<'a, 'p> SeqState<'a, 'p> {
    fn new(
        plan: &'p Plan,
        item: NodeId,
        out: &'a mut Vec<u8>,
        len: Option<usize>,
        depth: usize,
    ) -> Self {
        let buf = match len {
            Some(n) => {
                if n > 0 {
                    put_long(out, n as i64);
                }
                None
            }
            None => Some(Vec::new()),
        };
        SeqState {
            plan,
            item,
            out,
            buf,
            expected: len.unwrap_or(0),
            count: 0,
            depth,
        }
    }

    fn sink(&mut self) -> &mut Vec<u8> {
        match &mut self.buf {
            Some(b) => b,
            None => self.out,
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Fail> {
        let (plan, node, depth, i) = (self.plan, self.item, self.depth, self.count);
        v.serialize(Ser {
            plan,
            node,
            out: self.sink(),
            depth,
        })
        .map_err(|e| e.in_index(i))?;
        self.count += 1;
        Ok(())
    }

    fn end(self) -> Result<(), Fail> {
        match self.buf {
            Some(b) if self.count > 0 => {
                put_long(self.out, self.count as i64);
                self.out.extend_from_slice(&b);
            }
            Some(_) => {}
            None if self.count != self.expected => {
                return Err(Box::new(CodecError::TypeMismatch(format!(
                    "sequence announced {} items but gave {}",
                    self.expected, self.count
                ))));
            }
            None => {}
        }
        self.out.push(0);
        Ok(())
    }
}

/// Record fields: written in place while they arrive in schema order; from the first one that
/// does not, each remaining field is encoded into its own slot and the slots are joined at the end.
pub(crate) struct RecState<'a, 'p> {
    plan: &'p Plan,
    fields: &'p [Field],
    out: &'a mut Vec<u8>,
    next: usize,
    slots: Option<Vec<Option<Vec<u8>>>>,
    depth: usize,
    /// The pending key of a map-shaped record (`serialize_key` then `serialize_value`).
    key: Option<String>,
}

impl<'a, 'p> RecState<'a, 'p> {
    #[inline(always)]
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> Result<(), Fail> {
        let plan = self.plan;
        if self.slots.is_none() {
            if let Some(f) = self.fields.get(self.next)
                && name_eq(&f.name, key)
            {
                v.serialize(Ser {
                    plan,
                    node: f.node,
                    out: self.out,
                    depth: self.depth,
                })
                .map_err(|e| e.in_field(key))?;
                self.next += 1;
                return Ok(());
            }
            self.slots = Some(vec![None; self.fields.len().saturating_sub(self.next)]);
        }
        let j = self.slot_of(key)?;
        let f = &self.fields[self.next + j];
        let mut buf = Vec::new();
        v.serialize(Ser {
            plan,
            node: f.node,
            out: &mut buf,
            depth: self.depth,
        })
        .map_err(|e| e.in_field(key))?;
        if let Some(slots) = &mut self.slots {
            slots[j] = Some(buf);
        }
        Ok(())
    }

    fn slot_of(&self, key: &str) -> Result<usize, Fail> {
        match self.fields.iter().position(|f| *f.name == *key) {
            Some(i) if i >= self.next => Ok(i - self.next),
            Some(_) => Err(Box::new(CodecError::TypeMismatch(format!(
                "field `{key}` given twice"
            )))),
            None => Err(Box::new(CodecError::UnknownField {
                path: key.to_string(),
            })),
        }
    }

    fn skip(&mut self, key: &str) -> Result<(), Fail> {
        if self.slots.is_none() {
            if let Some(f) = self.fields.get(self.next)
                && *f.name == *key
            {
                match &f.default {
                    Some(d) => self.out.extend_from_slice(d),
                    None => {
                        return Err(Box::new(CodecError::MissingField {
                            path: key.to_string(),
                        }));
                    }
                }
                self.next += 1;
                return Ok(());
            }
            self.slots = Some(vec![None; self.fields.len().saturating_sub(self.next)]);
        }
        // Left empty: the default is written (or the field reported missing) at the end; a Rust
        // field the schema lacks, skipped by the type, has nothing to write.
        Ok(())
    }

    #[inline(always)]
    fn end(self) -> Result<(), Fail> {
        let rest = self.fields.get(self.next..).unwrap_or(&[]);
        for (i, f) in rest.iter().enumerate() {
            match self
                .slots
                .as_ref()
                .and_then(|s| s.get(i))
                .and_then(|s| s.as_ref())
            {
                Some(b) => self.out.extend_from_slice(b),
                None => match &f.default {
                    Some(d) => self.out.extend_from_slice(d),
                    None => {
                        return Err(Box::new(CodecError::MissingField {
                            path: f.name.to_string(),
                        }));
                    }
                },
            }
        }
        Ok(())
    }
}

pub(crate) enum Compound<'a, 'p> {
    Seq(SeqState<'a, 'p>),
    /// A map: its entries, and the pending key.
    Map(SeqState<'a, 'p>, Option<()>),
    Record(RecState<'a, 'p>),
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Fail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Fail> {
        match self {
            Compound::Seq(s) => s.element(v),
            _ => Err(Box::new(CodecError::TypeMismatch(
                "sequence element outside a sequence".into(),
            ))),
        }
    }
    fn end(self) -> Result<(), Fail> {
        match self {
            Compound::Seq(s) => s.end(),
            _ => Err(Box::new(CodecError::TypeMismatch(
                "sequence end outside a sequence".into(),
            ))),
        }
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Fail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Fail> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Fail> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Fail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Fail> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Fail> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Fail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Fail> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Fail> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Fail;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Fail> {
        match self {
            Compound::Map(s, pending) => {
                let k = key.serialize(KeySer)?;
                put_bytes(s.sink(), k.as_bytes());
                *pending = Some(());
                Ok(())
            }
            Compound::Record(r) => {
                r.key = Some(key.serialize(KeySer)?);
                Ok(())
            }
            Compound::Seq(_) => Err(Box::new(CodecError::TypeMismatch(
                "map key outside a map".into(),
            ))),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Fail> {
        match self {
            Compound::Map(s, pending) => {
                *pending = None;
                s.element(v)
            }
            Compound::Record(r) => {
                let k = r.key.take().unwrap_or_default();
                r.field(&k, v)
            }
            Compound::Seq(_) => Err(Box::new(CodecError::TypeMismatch(
                "map value outside a map".into(),
            ))),
        }
    }
    fn end(self) -> Result<(), Fail> {
        match self {
            Compound::Map(s, _) => s.end(),
            Compound::Record(r) => r.end(),
            Compound::Seq(_) => Err(Box::new(CodecError::TypeMismatch(
                "map end outside a map".into(),
            ))),
        }
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Fail;
    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Fail> {
        match self {
            Compound::Record(r) => r.field(key, v),
            Compound::Map(s, _) => {
                put_bytes(s.sink(), key.as_bytes());
                s.element(v).map_err(|e| e.in_field(key))
            }
            Compound::Seq(_) => Err(Box::new(CodecError::TypeMismatch(
                "struct field outside a struct".into(),
            ))),
        }
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), Fail> {
        match self {
            Compound::Record(r) => r.skip(key),
            _ => Ok(()),
        }
    }
    #[inline]
    fn end(self) -> Result<(), Fail> {
        match self {
            Compound::Record(r) => r.end(),
            Compound::Map(s, _) => s.end(),
            Compound::Seq(_) => Err(Box::new(CodecError::TypeMismatch(
                "struct end outside a struct".into(),
            ))),
        }
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Fail;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Fail> {
        ser::SerializeStruct::serialize_field(self, key, v)
    }
    fn end(self) -> Result<(), Fail> {
        ser::SerializeStruct::end(self)
    }
}

/// Map keys must be strings (or unit enum variants / chars, taken by name).
struct KeySer;

impl ser::Serializer for KeySer {
    type Ok = String;
    type Error = Fail;
    type SerializeSeq = ser::Impossible<String, Fail>;
    type SerializeTuple = ser::Impossible<String, Fail>;
    type SerializeTupleStruct = ser::Impossible<String, Fail>;
    type SerializeTupleVariant = ser::Impossible<String, Fail>;
    type SerializeMap = ser::Impossible<String, Fail>;
    type SerializeStruct = ser::Impossible<String, Fail>;
    type SerializeStructVariant = ser::Impossible<String, Fail>;

    fn serialize_str(self, v: &str) -> Result<String, Fail> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, Fail> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        v: &'static str,
    ) -> Result<String, Fail> {
        Ok(v.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, Fail> {
        v.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<String, Fail> {
        Err(wrong("string map key", "boolean"))
    }
    fn serialize_i8(self, _: i8) -> Result<String, Fail> {
        Err(wrong("string map key", "integer"))
    }
    fn serialize_i16(self, _: i16) -> Result<String, Fail> {
        Err(wrong("string map key", "integer"))
    }
    fn serialize_i32(self, _: i32) -> Result<String, Fail> {
        Err(wrong("string map key", "integer"))
    }
    fn serialize_i64(self, _: i64) -> Result<String, Fail> {
        Err(wrong("string map key", "integer"))
    }
    fn serialize_u8(self, _: u8) -> Result<String, Fail> {
        Err(wrong("string map key", "integer"))
    }
    fn serialize_u16(self, _: u16) -> Result<String, Fail> {
        Err(wrong("string map key", "integer"))
    }
    fn serialize_u32(self, _: u32) -> Result<String, Fail> {
        Err(wrong("string map key", "integer"))
    }
    fn serialize_u64(self, _: u64) -> Result<String, Fail> {
        Err(wrong("string map key", "integer"))
    }
    fn serialize_f32(self, _: f32) -> Result<String, Fail> {
        Err(wrong("string map key", "float"))
    }
    fn serialize_f64(self, _: f64) -> Result<String, Fail> {
        Err(wrong("string map key", "float"))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, Fail> {
        Err(wrong("string map key", "bytes"))
    }
    fn serialize_none(self) -> Result<String, Fail> {
        Err(wrong("string map key", "null"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<String, Fail> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, Fail> {
        Err(wrong("string map key", "unit"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Fail> {
        Err(wrong("string map key", "unit"))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Fail> {
        Err(wrong("string map key", "enum"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Fail> {
        Err(wrong("string map key", "sequence"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Fail> {
        Err(wrong("string map key", "tuple"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Fail> {
        Err(wrong("string map key", "tuple"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Fail> {
        Err(wrong("string map key", "enum"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Fail> {
        Err(wrong("string map key", "map"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Fail> {
        Err(wrong("string map key", "struct"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Fail> {
        Err(wrong("string map key", "enum"))
    }
}
