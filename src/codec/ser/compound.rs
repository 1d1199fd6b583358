//! The compound half of the typed encode path: array and map items (`SeqState`), record fields
//! (`RecState`) and the serde `Serialize{Seq,Tuple,Map,Struct,...}` impls that drive them.
//!
//! Struct fields are matched to plan fields by name: in schema order they are written straight to
//! the output; from the first one out of order, each remaining field is buffered in its own slot and
//! a missing field takes its pre-encoded default. Must not allocate per record on the in-order path,
//! and must not pick union branches or write scalars itself (that is the parent's `Ser`).

use serde::ser::{self, Serialize};

use super::super::binary::{put_bytes, put_long};
use super::super::node::{Field, NodeId, Plan};
use super::super::{CodecError, Fail};
use super::key::KeySer;
use super::{Ser, name_eq};

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
    pub(super) fn new(
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
    pub(super) fn new(
        plan: &'p Plan,
        fields: &'p [Field],
        out: &'a mut Vec<u8>,
        depth: usize,
    ) -> Self {
        RecState {
            plan,
            fields,
            out,
            next: 0,
            slots: None,
            depth,
            key: None,
        }
    }

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
