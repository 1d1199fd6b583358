//! The typed decode path: a serde `Deserializer` driven by the compiled [`Plan`], reading Avro binary
//! straight into Rust values (strings borrowed from the input where the type allows).
//!
//! Records are presented as maps keyed by field name, `["null", T]` unions as `Option`, enum symbols
//! as unit variants by name, other unions as newtype variants named after the branch type.
//! Must not build intermediate values; every read is bounds-checked by [`super::binary::Reader`].

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::json::{MAX_DEPTH, Walk, skip_node};
use super::node::{Field, NO_INDEX, Node, NodeId, Plan};
use super::{CodecError, Fail};

pub(crate) fn decode<'de, T: de::Deserialize<'de>>(
    plan: &Plan,
    body: &'de [u8],
) -> Result<T, Fail> {
    let mut w = Walk::new(body);
    let v = T::deserialize(De {
        plan,
        node: Plan::ROOT,
        w: &mut w,
        depth: 0,
    })?;
    w.r.finish()?;
    Ok(v)
}

struct De<'a, 'de, 'p> {
    plan: &'p Plan,
    node: NodeId,
    w: &'a mut Walk<'de>,
    depth: usize,
}

impl<'a, 'de, 'p> De<'a, 'de, 'p> {
    fn deeper(&self) -> Result<usize, Fail> {
        if self.depth >= MAX_DEPTH {
            Err(Box::new(CodecError::NestingTooDeep))
        } else {
            Ok(self.depth + 1)
        }
    }

    /// Skip through unions (reading the branch index) to the node that holds the value.
    #[inline(always)]
    fn value_node(&mut self) -> Result<&'p Node, Fail> {
        let plan = self.plan;
        loop {
            match plan.node(self.node) {
                Node::Union { branches, .. } => {
                    let i = self.w.r.union_index(branches.len())?;
                    self.node = branches[i];
                    self.depth = self.deeper()?;
                }
                n => return Ok(n),
            }
        }
    }
}

impl<'de> de::Deserializer<'de> for De<'_, 'de, '_> {
    type Error = Fail;

    #[inline(always)]
    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Fail> {
        let plan = self.plan;
        match self.value_node()? {
            Node::Null => visitor.visit_unit(),
            Node::Boolean => visitor.visit_bool(self.w.r.boolean()?),
            Node::Int => visitor.visit_i32(self.w.r.int()?),
            Node::Long => visitor.visit_i64(self.w.r.long()?),
            Node::Float => visitor.visit_f32(self.w.r.f32()?),
            Node::Double => visitor.visit_f64(self.w.r.f64()?),
            Node::String => visitor.visit_borrowed_str(self.w.r.str()?),
            Node::Bytes => visitor.visit_borrowed_bytes(self.w.r.bytes()?),
            Node::Fixed { size, .. } => visitor.visit_borrowed_bytes(self.w.r.take(*size)?),
            Node::Enum { symbols, .. } => {
                let i = self.w.r.enum_index(symbols.len())?;
                visitor.visit_str(&symbols[i])
            }
            Node::Array { items } => {
                let depth = self.deeper()?;
                visitor.visit_seq(Blocks::new(plan, *items, self.w, depth, false))
            }
            Node::Map { values } => {
                let depth = self.deeper()?;
                visitor.visit_map(Blocks::new(plan, *values, self.w, depth, true))
            }
            Node::Record { fields, .. } => {
                let depth = self.deeper()?;
                visitor.visit_map(Fields {
                    plan,
                    fields,
                    i: 0,
                    w: self.w,
                    depth,
                    map: None,
                })
            }
            Node::Union { .. } | Node::Pending => Err(Box::new(CodecError::InvalidSchema(
                "incomplete plan".into(),
            ))),
        }
    }

    #[inline(always)]
    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Fail> {
        let plan = self.plan;
        match plan.node(self.node) {
            Node::Union { branches, .. } => {
                let i = self.w.r.union_index(branches.len())?;
                self.node = branches[i];
                if matches!(plan.node(self.node), Node::Null) {
                    visitor.visit_none()
                } else {
                    self.depth = self.deeper()?;
                    visitor.visit_some(self)
                }
            }
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fail> {
        let plan = self.plan;
        match plan.node(self.node) {
            Node::Enum { symbols, typed, .. } => {
                let i = self.w.r.enum_index(symbols.len())?;
                let index = typed
                    .get(variants, symbols.iter().map(|s| &**s))
                    .and_then(|m| m.get(i).copied());
                let index = index.filter(|&x| x != NO_INDEX);
                visitor.visit_enum(Variant {
                    name: &symbols[i],
                    index,
                    de: None,
                })
            }
            Node::Union { branches, .. } => {
                let i = self.w.r.union_index(branches.len())?;
                let b = branches[i];
                let bn = plan.node(b);
                // An enum inside a union reads as that enum's symbol.
                if let Node::Enum { symbols, .. } = bn {
                    let i = self.w.r.enum_index(symbols.len())?;
                    return visitor.visit_enum(Variant {
                        name: &symbols[i],
                        index: None,
                        de: None,
                    });
                }
                let depth = self.deeper()?;
                let name = bn.branch_name();
                visitor.visit_enum(Variant {
                    name,
                    index: None,
                    de: Some(De {
                        plan,
                        node: b,
                        w: self.w,
                        depth,
                    }),
                })
            }
            Node::String => visitor.visit_enum(self.w.r.str()?.into_deserializer()),
            n => Err(Box::new(CodecError::TypeMismatch(format!(
                "a Rust enum cannot be read from Avro {}",
                n.branch_name()
            )))),
        }
    }

    #[inline(always)]
    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        rust_fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fail> {
        let plan = self.plan;
        match self.value_node()? {
            Node::Record { fields, typed, .. } => {
                let depth = self.deeper()?;
                let map = typed.get(rust_fields, fields.iter().map(|f| &*f.name));
                visitor.visit_map(Fields {
                    plan,
                    fields,
                    i: 0,
                    w: self.w,
                    depth,
                    map,
                })
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        skip_node(self.plan, self.node, self.w, self.depth)?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Fail> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

/// Array items or map entries, block by block.
struct Blocks<'a, 'de, 'p> {
    plan: &'p Plan,
    item: NodeId,
    w: &'a mut Walk<'de>,
    depth: usize,
    left: usize,
    done: bool,
    min: usize,
}

impl<'a, 'de, 'p> Blocks<'a, 'de, 'p> {
    fn new(plan: &'p Plan, item: NodeId, w: &'a mut Walk<'de>, depth: usize, map: bool) -> Self {
        let min = plan.min_size[item as usize] + map as usize;
        Blocks {
            plan,
            item,
            w,
            depth,
            left: 0,
            done: false,
            min,
        }
    }

    fn more(&mut self) -> Result<bool, Fail> {
        if self.done {
            return Ok(false);
        }
        if self.left == 0 {
            self.left = self.w.r.block_count(self.min, &mut self.w.zero_budget)?;
            if self.left == 0 {
                self.done = true;
                return Ok(false);
            }
        }
        self.left -= 1;
        Ok(true)
    }
}

impl<'de> de::SeqAccess<'de> for Blocks<'_, 'de, '_> {
    type Error = Fail;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Fail> {
        if !self.more()? {
            return Ok(None);
        }
        seed.deserialize(De {
            plan: self.plan,
            node: self.item,
            w: self.w,
            depth: self.depth,
        })
        .map(Some)
    }
}

impl<'de> de::MapAccess<'de> for Blocks<'_, 'de, '_> {
    type Error = Fail;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Fail> {
        if !self.more()? {
            return Ok(None);
        }
        let k = self.w.r.str()?;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(k))
            .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Fail> {
        seed.deserialize(De {
            plan: self.plan,
            node: self.item,
            w: self.w,
            depth: self.depth,
        })
    }
}

/// A record's fields, in schema order, as a map keyed by field name.
struct Fields<'a, 'de, 'p> {
    plan: &'p Plan,
    fields: &'p [Field],
    i: usize,
    w: &'a mut Walk<'de>,
    depth: usize,
    /// Rust field index of each schema field, when the Rust type's field list is the cached one.
    map: Option<&'p [u32]>,
}

impl<'de> de::MapAccess<'de> for Fields<'_, 'de, '_> {
    type Error = Fail;
    #[inline(always)]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Fail> {
        if let Some(&ix) = self.map.and_then(|m| m.get(self.i))
            && ix != NO_INDEX
        {
            return seed
                .deserialize(de::value::U64Deserializer::<Fail>::new(ix as u64))
                .map(Some);
        }
        match self.fields.get(self.i) {
            Some(f) => seed
                .deserialize(de::value::StrDeserializer::<Fail>::new(&f.name))
                .map(Some),
            None => Ok(None),
        }
    }
    #[inline(always)]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Fail> {
        let Some(f) = self.fields.get(self.i) else {
            return Err(Box::new(CodecError::TypeMismatch(
                "record value without a field".into(),
            )));
        };
        self.i += 1;
        seed.deserialize(De {
            plan: self.plan,
            node: f.node,
            w: self.w,
            depth: self.depth,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.i)
    }
}

/// An Avro enum symbol (unit variant) or a union branch (newtype variant named after its type).
struct Variant<'a, 'de, 'p> {
    name: &'p str,
    /// The Rust variant index of this symbol, when known (saves comparing names).
    index: Option<u32>,
    de: Option<De<'a, 'de, 'p>>,
}

impl<'a, 'de, 'p> de::EnumAccess<'de> for Variant<'a, 'de, 'p> {
    type Error = Fail;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Fail> {
        let v = match self.index {
            Some(i) => seed.deserialize(de::value::U32Deserializer::<Fail>::new(i))?,
            None => seed.deserialize(de::value::StrDeserializer::<Fail>::new(self.name))?,
        };
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de, '_> {
    type Error = Fail;
    fn unit_variant(self) -> Result<(), Fail> {
        match self.de {
            None => Ok(()),
            Some(d) if matches!(d.plan.node(d.node), Node::Null) => Ok(()),
            Some(_) => Err(Box::new(CodecError::TypeMismatch(format!(
                "variant {} holds a value",
                self.name
            )))),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Fail> {
        match self.de {
            Some(d) => seed.deserialize(d),
            None => Err(Box::new(CodecError::TypeMismatch(format!(
                "enum symbol {} holds no value",
                self.name
            )))),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Fail> {
        match self.de {
            Some(d) => de::Deserializer::deserialize_any(d, visitor),
            None => Err(Box::new(CodecError::TypeMismatch(format!(
                "enum symbol {} holds no value",
                self.name
            )))),
        }
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fail> {
        match self.de {
            Some(d) => de::Deserializer::deserialize_any(d, visitor),
            None => Err(Box::new(CodecError::TypeMismatch(format!(
                "enum symbol {} holds no value",
                self.name
            )))),
        }
    }
}
