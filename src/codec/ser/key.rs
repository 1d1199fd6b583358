//! Map keys for the typed encode path: a serde `Serializer` that accepts only what can be an Avro
//! map key (a string, a char, or a unit enum variant taken by name) and returns it as a `String`.
//! Must not write to the output buffer; the caller writes the key.

use serde::ser::{self, Serialize};

use super::super::Fail;
use super::wrong;

/// Map keys must be strings (or unit enum variants / chars, taken by name).
pub(super) struct KeySer;

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
