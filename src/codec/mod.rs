//! Avro binary ⇄ natural JSON and typed Rust values, through a plan compiled once per schema.
//!
//! [`Codec`] is the entry point: it frames/unframes Confluent messages ([`crate::wire`]), asks a
//! [`SchemaSource`] for schemas, compiles each schema id once into a [`Plan`] and walks that plan
//! to encode and decode, generically (natural JSON) or typed (serde). [`Resolver`] decodes data
//! written with one schema through another (Avro schema resolution).
//! [`typed`] is the fast typed path: records declared with [`crate::avro_record!`] are bound once
//! to a plan ([`Plan::bind`], [`Codec::typed_writer`], [`Codec::typed_reader`]) and then run
//! generated straight-line code.
//!
//! Must not do network or disk I/O: schemas come in through [`crate::registry::SchemaSource`].
//! Must not log record contents (they may hold secrets).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ErrorKind, Kind};
use crate::registry::{RegistryError, SchemaSource};
use crate::wire::{self, WireError};

mod binary;
mod de;
pub(crate) mod json;
mod json_stream;
mod json_text;
mod node;
mod plan;
mod resolve;
mod ser;
pub mod typed;

pub use json::{Walk, parse_record, record_key};
pub use json_stream::KeyBytes;
pub use json_text::TextDecoder;
pub use node::Plan;
pub use resolve::Resolver;
pub use typed::{AvroField, AvroRecord, Bound, Shape, Slot, TypedReader, TypedWriter};

/// Everything encoding and decoding can fail with. Kind names are stable (see [`ErrorKind`]).
///
/// Decode errors carry the byte offset in the Avro body; encode errors name the field path
/// (e.g. `products[1].quantity`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The message is not a Confluent frame (see [`WireError`]).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The frame names a schema id that the schema source does not have.
    #[error("schema id {id} is not known to the schema source")]
    UnknownSchemaId {
        /// The schema id from the frame header.
        id: u32,
    },
    /// The schema source failed (registry unreachable, HTTP error, cache miss).
    #[error(transparent)]
    Registry(RegistryError),
    /// The schema does not parse or cannot be compiled into a plan; the message says why.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// Schema resolution: the reader schema cannot read data written with the writer schema.
    #[error("reader schema cannot read the writer schema: {0}")]
    IncompatibleSchema(String),
    /// The Avro body ends before the schema says the record does.
    #[error("Avro body ends early (at byte {offset})")]
    TruncatedBody {
        /// Byte offset in the Avro body where more input was needed.
        offset: usize,
    },
    /// The record decoded completely but bytes are left in the body.
    #[error("{count} bytes left over after the record")]
    TrailingBytes {
        /// How many bytes follow the decoded record.
        count: usize,
    },
    /// A zig-zag varint is longer than 10 bytes or does not fit in 64 bits.
    #[error("varint at byte {offset} is longer than 10 bytes or exceeds 64 bits")]
    VarintOverflow {
        /// Byte offset of the varint.
        offset: usize,
    },
    /// Encoding: an integer does not fit the schema type (`int` is 32-bit, `long` 64-bit signed).
    #[error("int out of range{}{}", value.map(|v| format!(" ({v})")).unwrap_or_default(), at(path))]
    IntOutOfRange {
        /// The value, when it fits in an i64 (`None` for a larger u64).
        value: Option<i64>,
        /// Field path of the value (e.g. `products[1].quantity`); empty at the top level.
        path: String,
    },
    /// A string, bytes or block length decodes to a negative number.
    #[error("negative length {value} at byte {offset}")]
    NegativeLength {
        /// The decoded length.
        value: i64,
        /// Byte offset of the length.
        offset: usize,
    },
    /// A `string` value is not valid UTF-8.
    #[error("string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Byte offset of the string's length prefix.
        offset: usize,
    },
    /// A union branch index is negative or past the union's last branch.
    #[error("union branch index {index} at byte {offset}, but the union has {branches} branches")]
    InvalidUnionIndex {
        /// The decoded branch index.
        index: i64,
        /// How many branches the union has.
        branches: usize,
        /// Byte offset of the index.
        offset: usize,
    },
    /// An enum index is negative or past the enum's last symbol.
    #[error("enum index {index} at byte {offset}, but the enum has {symbols} symbols")]
    InvalidEnumIndex {
        /// The decoded symbol index.
        index: i64,
        /// How many symbols the enum has.
        symbols: usize,
        /// Byte offset of the index.
        offset: usize,
    },
    /// A `boolean` byte other than 0 or 1.
    #[error("boolean byte 0x{byte:02x} at byte {offset} (must be 0 or 1)")]
    InvalidBoolean {
        /// The byte found.
        byte: u8,
        /// Its offset in the body.
        offset: usize,
    },
    /// Array/map blocks announce more zero-byte items (nulls, empty records) than one message may
    /// hold (2^20): a guard against tiny inputs that decode to huge values.
    #[error("block count at byte {offset} exceeds the limit for items that take no bytes")]
    TooManyItems {
        /// Byte offset of the block count.
        offset: usize,
    },
    /// Records, arrays, maps and unions nest deeper than 256 levels.
    #[error("value nested deeper than {} levels", json::MAX_DEPTH)]
    NestingTooDeep,
    /// The input text is not JSON; the message is serde_json's.
    #[error("input is not JSON: {0}")]
    NotJson(String),
    /// Encoding: a record field without a default is missing from the value.
    #[error("missing field `{path}` (it has no default)")]
    MissingField {
        /// Field path of the missing field.
        path: String,
    },
    /// Encoding: a value has a type the schema does not allow at its place.
    #[error("wrong type{}: expected {expected}, got {got}", at(path))]
    WrongType {
        /// Field path of the value; empty at the top level.
        path: String,
        /// What the schema expects there (e.g. `long`, `record (JSON object)`).
        expected: &'static str,
        /// What the value is (e.g. `string`, `null`).
        got: String,
    },
    /// Encoding: a string is not one of the enum's symbols.
    #[error("unknown enum symbol {symbol:?}{}", at(path))]
    UnknownEnumSymbol {
        /// Field path of the value.
        path: String,
        /// The symbol given.
        symbol: String,
    },
    /// Encoding: a JSON object has a key that is not a field of the record.
    #[error("unknown field `{path}` (not in the schema)")]
    UnknownField {
        /// Field path of the extra key.
        path: String,
    },
    /// Decoding with a reader schema: a writer value has no counterpart in the reader schema
    /// (e.g. an enum symbol the reader lacks and no default).
    #[error(
        "cannot resolve writer data to the reader schema{}: {message}",
        at(path)
    )]
    Unresolvable {
        /// Field path where resolution failed.
        path: String,
        /// What could not be resolved.
        message: String,
    },
    /// Typed path: a value does not fit the Rust type being serialized or deserialized.
    #[error("record does not match the Rust type: {0}")]
    TypeMismatch(String),
    /// Typed path: the schema's shape differs from the Rust record type's (checked when binding).
    #[error("the schema does not match the Rust record type: {0}")]
    SchemaMismatch(String),
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at `{path}`")
    }
}

fn join_path(head: String, tail: &str) -> String {
    if tail.is_empty() {
        head
    } else if tail.starts_with('[') {
        head + tail
    } else {
        head + "." + tail
    }
}

impl CodecError {
    fn path_mut(&mut self) -> Option<&mut String> {
        match self {
            CodecError::MissingField { path }
            | CodecError::WrongType { path, .. }
            | CodecError::UnknownEnumSymbol { path, .. }
            | CodecError::UnknownField { path }
            | CodecError::Unresolvable { path, .. } => Some(path),
            CodecError::IntOutOfRange { path, .. } if !path.starts_with('@') => Some(path),
            _ => None,
        }
    }

    /// Prefix the error's field path with a record field (or map key) name.
    pub(crate) fn in_field(mut self: Box<Self>, name: &str) -> Box<Self> {
        if let Some(p) = self.path_mut() {
            *p = join_path(name.to_string(), p);
        }
        self
    }

    /// Prefix the error's field path with an array index.
    pub(crate) fn in_index(mut self: Box<Self>, i: usize) -> Box<Self> {
        if let Some(p) = self.path_mut() {
            *p = join_path(format!("[{i}]"), p);
        }
        self
    }

    fn from_registry(e: RegistryError) -> Self {
        match e {
            RegistryError::SchemaNotFound { id } => CodecError::UnknownSchemaId { id },
            e => CodecError::Registry(e),
        }
    }
}

impl ErrorKind for CodecError {
    fn kind(&self) -> Kind {
        match self {
            CodecError::Wire(e) => e.kind(),
            CodecError::UnknownSchemaId { .. } => Kind::UnknownSchemaId,
            CodecError::Registry(e) => e.kind(),
            CodecError::InvalidSchema(_) => Kind::InvalidSchema,
            CodecError::IncompatibleSchema(_) => Kind::IncompatibleSchema,
            CodecError::TruncatedBody { .. } => Kind::TruncatedBody,
            CodecError::TrailingBytes { .. } => Kind::TrailingBytes,
            CodecError::VarintOverflow { .. } => Kind::VarintOverflow,
            CodecError::IntOutOfRange { .. } => Kind::IntOutOfRange,
            CodecError::NegativeLength { .. } => Kind::NegativeLength,
            CodecError::InvalidUtf8 { .. } => Kind::InvalidUtf8,
            CodecError::InvalidUnionIndex { .. } => Kind::InvalidUnionIndex,
            CodecError::InvalidEnumIndex { .. } => Kind::InvalidEnumIndex,
            CodecError::InvalidBoolean { .. } => Kind::InvalidBoolean,
            CodecError::TooManyItems { .. } => Kind::TooManyItems,
            CodecError::NestingTooDeep => Kind::NestingTooDeep,
            CodecError::NotJson(_) => Kind::NotJson,
            CodecError::MissingField { .. } => Kind::MissingField,
            CodecError::WrongType { .. } => Kind::WrongType,
            CodecError::UnknownEnumSymbol { .. } => Kind::UnknownEnumSymbol,
            CodecError::UnknownField { .. } => Kind::UnknownField,
            CodecError::Unresolvable { .. } => Kind::Unresolvable,
            CodecError::TypeMismatch(_) => Kind::TypeMismatch,
            CodecError::SchemaMismatch(_) => Kind::SchemaMismatch,
        }
    }
}

/// The error type inside the codec's hot paths: one pointer wide, so results stay in registers.
pub(crate) type Fail = Box<CodecError>;

impl serde::ser::Error for Box<CodecError> {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Box::new(CodecError::TypeMismatch(msg.to_string()))
    }
}

impl serde::de::Error for Box<CodecError> {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Box::new(CodecError::TypeMismatch(msg.to_string()))
    }
}

impl Plan {
    /// Encode a natural-JSON record (the schema's root type), appending the Avro body to `out`.
    pub fn encode_json_into(&self, v: &Value, out: &mut Vec<u8>) -> Result<(), CodecError> {
        json::encode_value(self, v, out).map_err(|e| *e)
    }

    /// Decode a whole Avro body into natural JSON.
    pub fn decode_json(&self, body: &[u8]) -> Result<Value, CodecError> {
        json::decode_value(self, body).map_err(|e| *e)
    }

    /// Decode a whole Avro body into natural JSON text, appended to `out`: the bytes
    /// `serde_json::to_writer` writes for [`Plan::decode_json`]'s value, without building it. On
    /// error `out` is left as it was.
    pub fn decode_json_text_into(&self, body: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        json_text::write_value(self, body, out).map_err(|e| *e)
    }

    /// Encode a typed value (serde) with this plan, appending the Avro body to `out`.
    pub fn encode_into<T: Serialize + ?Sized>(
        &self,
        v: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        ser::encode(self, v, out).map_err(|e| *e)
    }

    /// Decode a whole Avro body into a typed value (serde).
    pub fn decode<'a, T: serde::Deserialize<'a>>(&self, body: &'a [u8]) -> Result<T, CodecError> {
        de::decode(self, body).map_err(|e| *e)
    }
}

/// A subject's writer schema, compiled: encodes framed messages with no further lookups.
#[derive(Debug, Clone)]
pub struct SubjectWriter {
    /// The schema's registry id (written into each frame).
    pub id: u32,
    /// The compiled schema.
    pub plan: Arc<Plan>,
}

impl SubjectWriter {
    /// Append a framed message for a typed value to `out`.
    #[inline]
    pub fn encode_into<T: Serialize + ?Sized>(
        &self,
        v: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        wire::write_header(out, self.id);
        self.plan.encode_into(v, out)
    }

    /// Append a framed message for a natural-JSON record to `out`.
    pub fn encode_json_into(&self, v: &Value, out: &mut Vec<u8>) -> Result<(), CodecError> {
        wire::write_header(out, self.id);
        self.plan.encode_json_into(v, out)
    }

    /// Append a framed message for one line of NDJSON to `out` and return the record key from the
    /// top-level field `key_field` ([`record_key`]'s rules). The common case goes through the
    /// streaming encoder (no `Value` tree); anything else, and every error, through
    /// [`parse_record`] + [`Plan::encode_json_into`], which give the same bytes and the errors.
    /// On error `out` is left as it was.
    pub fn encode_json_line_into<'l>(
        &self,
        line: &'l [u8],
        key_field: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Option<KeyBytes<'l>>, LineError> {
        let start = out.len();
        wire::write_header(out, self.id);
        if let Ok(key) = json_stream::encode_line(&self.plan, line, key_field, out) {
            return Ok(key);
        }
        let slow = parse_record(line)
            .map_err(LineError::NotJson)
            .and_then(|v| {
                self.plan.encode_json_into(&v, out)?;
                Ok(key_field
                    .and_then(|f| record_key(&v, f))
                    .map(KeyBytes::Owned))
            });
        if slow.is_err() {
            out.truncate(start);
        }
        slow
    }
}

/// Why one line of NDJSON was not encoded: it is not JSON (serde_json's error, reported before any
/// schema error), or the codec refused the record.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The line is not JSON; the message is serde_json's.
    #[error(transparent)]
    NotJson(serde_json::Error),
    /// The record does not fit the schema, or the schema could not be had.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl LineError {
    /// The error for `line` when its subject's writer schema could not be had (`e`): a line that is
    /// not JSON says so first, whatever the schema lookup did.
    pub fn without_writer(line: &[u8], e: CodecError) -> LineError {
        match parse_record(line) {
            Err(j) => LineError::NotJson(j),
            Ok(_) => LineError::Codec(e),
        }
    }
}

impl ErrorKind for LineError {
    fn kind(&self) -> Kind {
        match self {
            LineError::NotJson(_) => Kind::NotJson,
            LineError::Codec(e) => e.kind(),
        }
    }
}

/// How long a subject's writer schema (id) is reused before the source is asked again.
pub const DEFAULT_SUBJECT_TTL: Duration = Duration::from_secs(60);

type ResolverKey = (u32, Arc<str>);

/// Encodes and decodes Confluent-framed Avro messages; caches compiled plans by schema id
/// (ids never change) and subject lookups for 60 s. `Send + Sync`.
pub struct Codec {
    source: Arc<dyn SchemaSource>,
    by_id: RwLock<HashMap<u32, Arc<Plan>>>,
    by_subject: RwLock<HashMap<String, (Instant, SubjectWriter)>>,
    readers: RwLock<HashMap<Arc<str>, Arc<Plan>>>,
    resolvers: RwLock<HashMap<ResolverKey, Arc<Resolver>>>,
    subject_ttl: Duration,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("subject_ttl", &self.subject_ttl)
            .finish_non_exhaustive()
    }
}

fn read<K, V>(l: &RwLock<HashMap<K, V>>) -> std::sync::RwLockReadGuard<'_, HashMap<K, V>> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<K, V>(l: &RwLock<HashMap<K, V>>) -> std::sync::RwLockWriteGuard<'_, HashMap<K, V>> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Codec {
    /// A codec over `source` (registry client, offline cache, ...), reusing subject lookups for
    /// 60 s (see [`Codec::with_subject_ttl`]).
    pub fn new(source: Arc<dyn SchemaSource>) -> Codec {
        Codec::with_subject_ttl(source, DEFAULT_SUBJECT_TTL)
    }

    /// A codec that asks the source again for a subject's schema after `ttl` (zero: every time).
    pub fn with_subject_ttl(source: Arc<dyn SchemaSource>, ttl: Duration) -> Codec {
        Codec {
            source,
            by_id: RwLock::new(HashMap::new()),
            by_subject: RwLock::new(HashMap::new()),
            readers: RwLock::new(HashMap::new()),
            resolvers: RwLock::new(HashMap::new()),
            subject_ttl: ttl,
        }
    }

    /// The compiled plan of schema `id` (compiled once, then cached forever).
    pub fn plan_by_id(&self, id: u32) -> Result<Arc<Plan>, CodecError> {
        let cached = read(&self.by_id).get(&id).cloned();
        if let Some(p) = cached {
            return Ok(p);
        }
        let text = self
            .source
            .schema_by_id(id)
            .map_err(CodecError::from_registry)?;
        let plan = Arc::new(Plan::compile_str(&text)?);
        tracing::debug!(schema_id = id, nodes = plan.nodes.len(), "compiled schema");
        Ok(write(&self.by_id).entry(id).or_insert(plan).clone())
    }

    /// The writer schema (id + plan) for `subject`.
    pub fn writer(&self, subject: &str) -> Result<SubjectWriter, CodecError> {
        let cached = read(&self.by_subject).get(subject).cloned();
        if let Some((at, w)) = cached
            && at.elapsed() < self.subject_ttl
        {
            return Ok(w);
        }
        let s = self
            .source
            .writer_schema(subject)
            .map_err(CodecError::from_registry)?;
        let cached = read(&self.by_id).get(&s.id).cloned();
        let plan = match cached {
            Some(p) => p,
            None => {
                let p = Arc::new(Plan::compile_str(&s.schema)?);
                write(&self.by_id).entry(s.id).or_insert(p).clone()
            }
        };
        let w = SubjectWriter { id: s.id, plan };
        write(&self.by_subject).insert(subject.to_string(), (Instant::now(), w.clone()));
        Ok(w)
    }

    /// Natural JSON record → framed message, with the subject's writer schema.
    pub fn encode_json(&self, subject: &str, record: &Value) -> Result<Vec<u8>, CodecError> {
        let w = self.writer(subject)?;
        let mut out = Vec::with_capacity(64);
        w.encode_json_into(record, &mut out)?;
        Ok(out)
    }

    /// One NDJSON line → framed message appended to `out`, with the subject's writer schema, and
    /// the record key from `key_field` ([`record_key`]'s rules). The streaming fast path takes the
    /// common case, the `Value` path the rest: same bytes, same errors. A line that is not JSON is
    /// `LineError::NotJson` even when the subject's schema cannot be had.
    pub fn encode_json_line_into<'l>(
        &self,
        subject: &str,
        line: &'l [u8],
        key_field: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Option<KeyBytes<'l>>, LineError> {
        match self.writer(subject) {
            Ok(w) => w.encode_json_line_into(line, key_field, out),
            Err(e) => Err(LineError::without_writer(line, e)),
        }
    }

    /// Typed record → framed message, with the subject's writer schema.
    pub fn encode<T: Serialize + ?Sized>(
        &self,
        subject: &str,
        record: &T,
    ) -> Result<Vec<u8>, CodecError> {
        let w = self.writer(subject)?;
        let mut out = Vec::with_capacity(64);
        w.encode_into(record, &mut out)?;
        Ok(out)
    }

    /// The subject's writer schema bound to the record type `T` (see [`AvroRecord`]): the fast typed
    /// encoder. Fails with `schema-mismatch` when the schema's fields are not exactly `T`'s; then
    /// use [`Codec::encode`] (serde), which matches by name and fills defaults.
    pub fn typed_writer<T: AvroRecord>(&self, subject: &str) -> Result<TypedWriter<T>, CodecError> {
        let w = self.writer(subject)?;
        TypedWriter::new(w.id, w.plan)
    }

    /// Schema `id` bound to the record type `T`: the fast typed decoder for messages with that id
    /// (`schema-mismatch` as for [`Codec::typed_writer`]).
    pub fn typed_reader<T: AvroRecord>(&self, id: u32) -> Result<TypedReader<T>, CodecError> {
        let plan = self.plan_by_id(id)?;
        TypedReader::new(id, &plan)
    }

    /// Framed message → natural JSON, read with the writer schema named by its id.
    pub fn decode_json(&self, msg: &[u8]) -> Result<Value, CodecError> {
        let (id, body) = wire::unframe(msg)?;
        self.plan_by_id(id)?.decode_json(body)
    }

    /// A decoder of framed messages into natural JSON text (the consumer's output path): the text
    /// of [`Codec::decode_json`]'s value, written without building it.
    pub fn text_decoder(&self) -> TextDecoder<'_> {
        TextDecoder::new(self)
    }

    /// Framed message → natural JSON, resolved from the writer schema to `reader_schema`.
    pub fn decode_json_with_reader(
        &self,
        msg: &[u8],
        reader_schema: &str,
    ) -> Result<Value, CodecError> {
        let (id, body) = wire::unframe(msg)?;
        self.resolver(id, reader_schema)?.decode_json(body)
    }

    /// Framed message → typed value, read with the writer schema named by its id.
    pub fn decode<T: DeserializeOwned>(&self, msg: &[u8]) -> Result<T, CodecError> {
        let (id, body) = wire::unframe(msg)?;
        self.plan_by_id(id)?.decode(body)
    }

    /// The resolving plan from writer schema `id` to `reader_schema` (compiled once, cached).
    pub fn resolver(&self, id: u32, reader_schema: &str) -> Result<Arc<Resolver>, CodecError> {
        let key: Arc<str> = Arc::from(reader_schema);
        let cached = read(&self.resolvers).get(&(id, key.clone())).cloned();
        if let Some(r) = cached {
            return Ok(r);
        }
        let writer = self.plan_by_id(id)?;
        let cached = read(&self.readers).get(&key).cloned();
        let reader = match cached {
            Some(p) => p,
            None => {
                let p = Arc::new(Plan::compile_str(reader_schema)?);
                write(&self.readers).entry(key.clone()).or_insert(p).clone()
            }
        };
        let r = Arc::new(Resolver::new(writer, reader)?);
        Ok(write(&self.resolvers).entry((id, key)).or_insert(r).clone())
    }
}
