//! The typed encode path: a serde `Serializer` driven by the compiled [`Plan`], writing Avro binary
//! straight into the output buffer.
//!
//! This file holds the entry point and the value serializer `Ser`: scalars, `Option` as a
//! `["null", T]` union, unit enum variants as enum symbols by name, Rust enum variants with data as
//! the union branch of the same name, and the union branch choice for each. Arrays, maps and records
//! are in `compound`; map keys in `key`. Must not allocate per record (scalars are written in
//! place) and must not know how record fields are ordered or defaulted (that is `compound`'s job).

mod compound;
mod key;

use serde::ser::{self, Serialize};

use super::binary::{put_bytes, put_f32, put_f64, put_int, put_long};
use super::json::MAX_DEPTH;
use super::node::{Cat, NO_BRANCH, Node, NodeId, Plan};
use super::{CodecError, Fail};
use compound::{Compound, RecState, SeqState};

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
            Node::Record { fields, .. } if cat == Cat::Object => Ok(Compound::Record(
                RecState::new(plan, fields, self.out, depth),
            )),
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
