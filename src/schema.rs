//! Avro schemas as text: parse `.avsc`, compare by parsed form, the registry's canonical text,
//! and the Avro resolution-based compatibility check a registry runs before registering.
//!
//! Must not encode or decode data (that is [`crate::codec`]) and must not do I/O.
//!
//! - [`ParsedSchema::parse`] parses with `apache_avro::Schema::parse_str` and keeps the JSON.
//! - [`ParsedSchema::same_as`] compares two schemas by parsed form: key order, whitespace and
//!   `"string"` vs `{"type":"string"}` do not matter; names, fields, defaults and docs do.
//! - [`ParsedSchema::registry_text`] is the text Karapace returns for a registered schema: the registered JSON
//!   re-serialised with keys sorted, compact, non-ASCII escaped as Python's `json.dumps` does.
//! - [`check_compatibility`] runs the Avro resolution rules (reader vs writer) and reports the
//!   incompatibilities with Karapace's message texts (`reader type: string not compatible with
//!   writer type: long`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::schema::{EnumSchema, RecordSchema};
use serde_json::Value;

use crate::error::{ErrorKind, Kind};

/// Why a schema text is not a usable Avro schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The text is not JSON. `message` is in Python's `json` wording (what Karapace reports).
    #[error("schema is not valid JSON: {message}")]
    Json {
        /// The JSON parser's message.
        message: String,
    },
    /// The JSON is not a valid Avro schema.
    #[error("invalid Avro schema: {message}")]
    Invalid {
        /// What is wrong with the schema.
        message: String,
    },
}

impl SchemaError {
    /// The text a Karapace registry puts after `Invalid AVRO schema. Error: `.
    pub fn registry_message(&self) -> &str {
        match self {
            SchemaError::Json { message } | SchemaError::Invalid { message } => message,
        }
    }
}

impl ErrorKind for SchemaError {
    fn kind(&self) -> Kind {
        match self {
            SchemaError::Json { .. } => Kind::InvalidSchemaJson,
            SchemaError::Invalid { .. } => Kind::InvalidSchema,
        }
    }
}

/// A parsed Avro schema with the JSON it came from.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    text: Arc<str>,
    json: Value,
    schema: Schema,
    /// The schema serialised back from its parsed form: the identity used by [`Self::same_as`].
    form: String,
}

impl ParsedSchema {
    /// Parse a schema text (`.avsc` content or a registry `schema` string).
    pub fn parse(text: &str) -> Result<ParsedSchema, SchemaError> {
        let json: Value = serde_json::from_str(text).map_err(|e| SchemaError::Json {
            message: python_json_error(text, &e),
        })?;
        if let Some(message) = unknown_type_message(&json) {
            return Err(SchemaError::Invalid { message });
        }
        let schema = Schema::parse(&json).map_err(|e| SchemaError::Invalid {
            message: e.to_string(),
        })?;
        let form = serde_json::to_value(&schema)
            .map(|v| canonical_json(&v))
            .map_err(|e| SchemaError::Invalid {
                message: e.to_string(),
            })?;
        Ok(ParsedSchema {
            text: Arc::from(text),
            json,
            schema,
            form,
        })
    }

    /// The text this was parsed from.
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// The parsed JSON document.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The `apache_avro` schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// A string equal for two schemas exactly when [`Self::same_as`] holds (usable as a map key).
    pub fn identity(&self) -> &str {
        &self.form
    }

    /// Avro's Parsing Canonical Form (drops docs, defaults and aliases).
    pub fn parsing_canonical_form(&self) -> String {
        self.schema.canonical_form()
    }

    /// Whether two schemas are the same by parsed form (never by text).
    pub fn same_as(&self, other: &ParsedSchema) -> bool {
        self.form == other.form
    }

    /// The registry's text for this schema (see [`ParsedSchema::registry_text`]).
    pub fn registry_text(&self) -> String {
        canonical_json(&self.json)
    }

    /// The full name of the top-level named type (`record`, `enum`, `fixed`), if it is one.
    pub fn full_name(&self) -> Option<String> {
        match &self.schema {
            Schema::Record(r) => Some(r.name.fullname(None)),
            Schema::Enum(e) => Some(e.name.fullname(None)),
            Schema::Fixed(f) => Some(f.name.fullname(None)),
            _ => None,
        }
    }
}

/// Whether two schema texts are the same schema by parsed form.
pub fn same_schema(a: &str, b: &str) -> Result<bool, SchemaError> {
    Ok(ParsedSchema::parse(a)?.same_as(&ParsedSchema::parse(b)?))
}

/// Serialise JSON the way Python's `json.dumps(v, sort_keys=True, separators=(",", ":"))` does.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_py_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_py_string(k, out);
                out.push(':');
                if let Some(val) = map.get(*k) {
                    write_canonical(val, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_py_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON parse error in the wording of Python's `json` module / orjson as Karapace reports it,
/// e.g. `unexpected end of data: line 1 column 83 (char 82)`.
pub fn python_json_error(text: &str, e: &serde_json::Error) -> String {
    let (pos, line, col) = python_json_position(text, e);
    let what = if e.is_eof() {
        "unexpected end of data"
    } else {
        "Expecting value"
    };
    let _ = pos;
    format!("{what}: line {line} column {col} (char {})", pos)
}

/// `(char offset, line, column)` of a serde_json error, counted as Python does (chars, 1-based line/column).
pub fn python_json_position(text: &str, e: &serde_json::Error) -> (usize, usize, usize) {
    if e.is_eof() {
        let chars = text.chars().count();
        let line = text.matches('\n').count() + 1;
        let col = text
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        return (chars, line, col);
    }
    let line = e.line().max(1);
    let mut col = e.column().max(1);
    let line_text: Vec<char> = text
        .split('\n')
        .nth(line - 1)
        .unwrap_or("")
        .chars()
        .collect();
    // serde_json points inside a bad literal (`this` fails at `h`); Python points at its start.
    while col > 1
        && line_text
            .get(col - 2)
            .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        col -= 1;
    }
    let before: usize = text
        .split('\n')
        .take(line - 1)
        .map(|l| l.chars().count() + 1)
        .sum();
    (before + col - 1, line, col)
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Karapace's (Python avro's) message for a type name that is neither primitive nor defined:
/// `Type property "strng" not a valid Avro schema: Could not make an Avro Schema object from strng`.
fn unknown_type_message(json: &Value) -> Option<String> {
    fn walk(v: &Value, ns: Option<&str>, defined: &mut HashSet<String>) -> Option<String> {
        match v {
            Value::String(name) => {
                let full = if name.contains('.') || ns.is_none() {
                    name.clone()
                } else {
                    format!("{}.{name}", ns.unwrap_or(""))
                };
                if PRIMITIVES.contains(&name.as_str())
                    || defined.contains(name)
                    || defined.contains(&full)
                {
                    None
                } else {
                    Some(format!(
                        "Type property \"{name}\" not a valid Avro schema: Could not make an Avro Schema object from {name}"
                    ))
                }
            }
            Value::Array(branches) => branches.iter().find_map(|b| walk(b, ns, defined)),
            Value::Object(map) => {
                let ty = map.get("type")?;
                let ty_str = ty.as_str();
                match ty_str {
                    Some("record") | Some("error") | Some("enum") | Some("fixed") => {
                        let name = map.get("name").and_then(Value::as_str)?;
                        let own_ns = map.get("namespace").and_then(Value::as_str).or(ns);
                        let (full, inner_ns) = match name.rsplit_once('.') {
                            Some((n, _)) => (name.to_string(), Some(n.to_string())),
                            None => (
                                own_ns
                                    .filter(|n| !n.is_empty())
                                    .map(|n| format!("{n}.{name}"))
                                    .unwrap_or_else(|| name.to_string()),
                                own_ns.map(str::to_string),
                            ),
                        };
                        defined.insert(full);
                        defined.insert(name.to_string());
                        if ty_str == Some("enum") || ty_str == Some("fixed") {
                            return None;
                        }
                        let fields = map.get("fields").and_then(Value::as_array)?;
                        fields.iter().find_map(|f| {
                            f.get("type")
                                .and_then(|t| walk(t, inner_ns.as_deref(), defined))
                        })
                    }
                    Some("array") => map.get("items").and_then(|t| walk(t, ns, defined)),
                    Some("map") => map.get("values").and_then(|t| walk(t, ns, defined)),
                    Some(_) => walk(ty, ns, defined),
                    None => walk(ty, ns, defined),
                }
            }
            _ => None,
        }
    }
    walk(json, None, &mut HashSet::new())
}

/// Compatibility levels a registry knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// `NONE`: no check.
    None,
    /// `BACKWARD`: the new schema can read data written with the latest one.
    Backward,
    /// `BACKWARD_TRANSITIVE`: the new schema can read data written with every earlier one.
    BackwardTransitive,
    /// `FORWARD`: the latest schema can read data written with the new one.
    Forward,
    /// `FORWARD_TRANSITIVE`: every earlier schema can read data written with the new one.
    ForwardTransitive,
    /// `FULL`: both `BACKWARD` and `FORWARD` against the latest schema.
    Full,
    /// `FULL_TRANSITIVE`: both, against every earlier schema.
    FullTransitive,
}

impl Compatibility {
    /// Parse a level name as the registry spells it (`BACKWARD`, `FULL_TRANSITIVE`, ...; case-insensitive).
    pub fn parse(s: &str) -> Option<Compatibility> {
        Some(match s.to_ascii_uppercase().as_str() {
            "NONE" => Compatibility::None,
            "BACKWARD" => Compatibility::Backward,
            "BACKWARD_TRANSITIVE" => Compatibility::BackwardTransitive,
            "FORWARD" => Compatibility::Forward,
            "FORWARD_TRANSITIVE" => Compatibility::ForwardTransitive,
            "FULL" => Compatibility::Full,
            "FULL_TRANSITIVE" => Compatibility::FullTransitive,
            _ => return None,
        })
    }

    /// The level's name as the registry spells it (`BACKWARD`, `FULL_TRANSITIVE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the check runs against every earlier version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// Check `new` against one `existing` schema at this level; the incompatibilities found.
    pub fn check(self, new: &ParsedSchema, existing: &ParsedSchema) -> Vec<String> {
        let backward = || check_compatibility(new.schema(), existing.schema());
        let forward = || check_compatibility(existing.schema(), new.schema());
        match self {
            Compatibility::None => Vec::new(),
            Compatibility::Backward | Compatibility::BackwardTransitive => backward(),
            Compatibility::Forward | Compatibility::ForwardTransitive => forward(),
            Compatibility::Full | Compatibility::FullTransitive => {
                let mut m = backward();
                m.extend(forward());
                m
            }
        }
    }
}

/// Whether data written with `writer` can be read with `reader` (Avro schema resolution).
/// Returns every incompatibility, in Karapace's wording; empty means compatible.
/// BACKWARD compatibility of a new schema is `check_compatibility(new, existing)`.
pub fn check_compatibility(reader: &Schema, writer: &Schema) -> Vec<String> {
    let mut checker = Checker {
        reader_names: HashMap::new(),
        writer_names: HashMap::new(),
        in_progress: HashSet::new(),
        messages: Vec::new(),
    };
    collect_names(reader, &mut checker.reader_names);
    collect_names(writer, &mut checker.writer_names);
    checker.check(reader, writer, 0);
    checker.messages
}

fn collect_names<'a>(s: &'a Schema, names: &mut HashMap<String, &'a Schema>) {
    match s {
        Schema::Record(r) if names.insert(r.name.fullname(None), s).is_none() => {
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), s);
        }
        Schema::Fixed(f) | Schema::Duration(f) => {
            names.insert(f.name.fullname(None), s);
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

/// The Avro type name of a schema, logical types reduced to their underlying type.
fn type_name(s: &Schema) -> &'static str {
    match s {
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int | Schema::Date | Schema::TimeMillis => "int",
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes | Schema::BigDecimal => "bytes",
        Schema::String => "string",
        Schema::Uuid(u) => match u {
            apache_avro::schema::UuidSchema::String => "string",
            apache_avro::schema::UuidSchema::Bytes => "bytes",
            _ => "fixed",
        },
        Schema::Decimal(d) => match d.inner {
            apache_avro::schema::InnerDecimalSchema::Bytes => "bytes",
            _ => "fixed",
        },
        Schema::Array(_) => "array",
        Schema::Map(_) => "map",
        Schema::Union(_) => "union",
        Schema::Record(_) => "record",
        Schema::Enum(_) => "enum",
        Schema::Fixed(_) | Schema::Duration(_) => "fixed",
        Schema::Ref { .. } => "ref",
    }
}

const MAX_DEPTH: usize = 256;

struct Checker<'a> {
    reader_names: HashMap<String, &'a Schema>,
    writer_names: HashMap<String, &'a Schema>,
    in_progress: HashSet<(String, String)>,
    messages: Vec<String>,
}

impl<'a> Checker<'a> {
    fn resolve(&self, s: &'a Schema, reader: bool) -> &'a Schema {
        if let Schema::Ref { name } = s {
            let names = if reader {
                &self.reader_names
            } else {
                &self.writer_names
            };
            if let Some(found) = names.get(&name.fullname(None)) {
                return found;
            }
        }
        s
    }

    /// Whether `reader` can read `writer`, without recording messages.
    fn can_read(&mut self, reader: &'a Schema, writer: &'a Schema, depth: usize) -> bool {
        let before = self.messages.len();
        self.check(reader, writer, depth);
        let ok = self.messages.len() == before;
        self.messages.truncate(before);
        ok
    }

    fn mismatch(&mut self, reader: &Schema, writer: &Schema) {
        self.messages.push(format!(
            "reader type: {} not compatible with writer type: {}",
            type_name(reader),
            type_name(writer)
        ));
    }

    fn check(&mut self, reader: &'a Schema, writer: &'a Schema, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let reader = self.resolve(reader, true);
        let writer = self.resolve(writer, false);
        // A writer union: every branch must be readable.
        if let Schema::Union(wu) = writer {
            for w in wu.variants() {
                self.check(reader, w, depth + 1);
            }
            return;
        }
        if let Schema::Union(ru) = reader {
            let found = ru
                .variants()
                .iter()
                .any(|r| self.can_read(r, writer, depth + 1));
            if !found {
                self.messages.push(format!(
                    "reader union lacking writer type: {}",
                    type_name(writer)
                ));
            }
            return;
        }
        let (rt, wt) = (type_name(reader), type_name(writer));
        let promotable = matches!(
            (rt, wt),
            ("long", "int")
                | ("float", "int")
                | ("float", "long")
                | ("double", "int")
                | ("double", "long")
                | ("double", "float")
                | ("string", "bytes")
                | ("bytes", "string")
        );
        if promotable {
            return;
        }
        if rt != wt {
            self.mismatch(reader, writer);
            return;
        }
        match (reader, writer) {
            (Schema::Array(r), Schema::Array(w)) => self.check(&r.items, &w.items, depth + 1),
            (Schema::Map(r), Schema::Map(w)) => self.check(&r.types, &w.types, depth + 1),
            (Schema::Record(r), Schema::Record(w)) => self.check_record(r, w, depth),
            (Schema::Enum(r), Schema::Enum(w)) => self.check_enum(r, w),
            (Schema::Fixed(r) | Schema::Duration(r), Schema::Fixed(w) | Schema::Duration(w)) => {
                let wn = w.name.fullname(None);
                if !names_match(&r.name, r.aliases.as_deref(), &w.name) {
                    self.messages.push(format!("expected: {wn}"));
                } else if r.size != w.size {
                    self.messages
                        .push(format!("expected: {}, found: {}", w.size, r.size));
                }
            }
            _ => {}
        }
    }

    /// Two records of matching names: every reader field is read from the writer field of its
    /// name (or alias), or has a default. A recursive pair already being checked is not again.
    fn check_record(&mut self, r: &'a RecordSchema, w: &'a RecordSchema, depth: usize) {
        let (rn, wn) = (r.name.fullname(None), w.name.fullname(None));
        if !names_match(&r.name, r.aliases.as_deref(), &w.name) {
            self.messages.push(format!("expected: {wn}"));
            return;
        }
        if !self.in_progress.insert((rn.clone(), wn.clone())) {
            return; // recursive type already being checked
        }
        for rf in &r.fields {
            let wf = w
                .fields
                .iter()
                .find(|wf| wf.name == rf.name)
                .or_else(|| w.fields.iter().find(|wf| rf.aliases.contains(&wf.name)));
            match wf {
                Some(wf) => self.check(&rf.schema, &wf.schema, depth + 1),
                None if rf.default.is_none() => self.messages.push(rf.name.clone()),
                None => {}
            }
        }
        self.in_progress.remove(&(rn, wn));
    }

    /// Two enums of matching names: without a reader default, every writer symbol must be a
    /// reader symbol.
    fn check_enum(&mut self, r: &EnumSchema, w: &EnumSchema) {
        let wn = w.name.fullname(None);
        if !names_match(&r.name, r.aliases.as_deref(), &w.name) {
            self.messages.push(format!("expected: {wn}"));
            return;
        }
        if r.default.is_none() {
            let missing: Vec<&str> = w
                .symbols
                .iter()
                .filter(|s| !r.symbols.contains(s))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                self.messages.push(format!("[{}]", missing.join(", ")));
            }
        }
    }
}

/// As Java's `SchemaCompatibility.schemaNameEquals` (which Karapace follows): the unqualified
/// names are equal, or a reader alias is the writer's full name.
fn names_match(
    reader: &apache_avro::schema::Name,
    reader_aliases: Option<&[apache_avro::schema::Alias]>,
    writer: &apache_avro::schema::Name,
) -> bool {
    let writer_full = writer.fullname(None);
    reader.name() == writer.name()
        || reader_aliases.is_some_and(|a| a.iter().any(|x| x.fullname(None) == writer_full))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"SensorData","fields":[{"name":"sensorId","type":"string"},{"name":"timestamp","type":"long"}]}"#;

    #[test]
    fn same_by_parsed_form_not_text() {
        let sorted = r#"{"fields":[{"name":"sensorId","type":{"type":"string"}},{"name":"timestamp","type":"long"}],"name":"SensorData","type":"record"}"#;
        assert!(same_schema(V1, sorted).unwrap());
        let other = V1.replace("\"long\"", "\"int\"");
        assert!(!same_schema(V1, &other).unwrap());
        let with_default = V1.replace(r#""type":"long"}"#, r#""type":"long","default":0}"#);
        assert!(!same_schema(V1, &with_default).unwrap());
    }

    #[test]
    fn registry_text_sorts_keys_and_escapes_like_python() {
        let t = ParsedSchema::parse(r#"{"type":"enum","name":"E","symbols":["A"], "doc":"É\ny"}"#)
            .unwrap()
            .registry_text();
        assert_eq!(
            t,
            r#"{"doc":"\u00c9\ny","name":"E","symbols":["A"],"type":"enum"}"#
        );
    }

    #[test]
    fn backward_type_change_message() {
        let new = ParsedSchema::parse(&V1.replace(
            r#""timestamp","type":"long""#,
            r#""timestamp","type":"string""#,
        ))
        .unwrap();
        let old = ParsedSchema::parse(V1).unwrap();
        assert_eq!(
            Compatibility::Backward.check(&new, &old),
            vec!["reader type: string not compatible with writer type: long".to_string()]
        );
    }

    #[test]
    fn added_field_needs_default() {
        let old = ParsedSchema::parse(V1).unwrap();
        let with_default = V1.replace(
            "]}",
            r#",{"name":"loc","type":["null","string"],"default":null}]}"#,
        );
        assert!(
            Compatibility::Backward
                .check(&ParsedSchema::parse(&with_default).unwrap(), &old)
                .is_empty()
        );
        let without = V1.replace("]}", r#",{"name":"loc","type":"string"}]}"#);
        assert_eq!(
            Compatibility::Backward.check(&ParsedSchema::parse(&without).unwrap(), &old),
            vec!["loc".to_string()]
        );
        // Forward: the old schema reads new data; the new field is ignored.
        assert!(
            Compatibility::Forward
                .check(&ParsedSchema::parse(&without).unwrap(), &old)
                .is_empty()
        );
    }

    #[test]
    fn promotions_unions_and_enums() {
        let int = Schema::parse_str(r#""int""#).unwrap();
        let long = Schema::parse_str(r#""long""#).unwrap();
        assert!(check_compatibility(&long, &int).is_empty());
        assert_eq!(
            check_compatibility(&int, &long),
            vec!["reader type: int not compatible with writer type: long"]
        );
        let u = Schema::parse_str(r#"["null","string"]"#).unwrap();
        assert_eq!(
            check_compatibility(&u, &int),
            vec!["reader union lacking writer type: int"]
        );
        let e1 = Schema::parse_str(r#"{"type":"enum","name":"S","symbols":["A","B"]}"#).unwrap();
        let e2 = Schema::parse_str(r#"{"type":"enum","name":"S","symbols":["A"]}"#).unwrap();
        assert_eq!(check_compatibility(&e2, &e1), vec!["[B]"]);
        assert!(check_compatibility(&e1, &e2).is_empty());
    }

    #[test]
    fn record_names_compare_unqualified_as_java_does() {
        let a = Schema::parse_str(r#"{"type":"record","name":"R","namespace":"x","fields":[]}"#)
            .unwrap();
        let b = Schema::parse_str(r#"{"type":"record","name":"R","namespace":"y","fields":[]}"#)
            .unwrap();
        let c = Schema::parse_str(r#"{"type":"record","name":"Q","namespace":"y","fields":[]}"#)
            .unwrap();
        assert!(check_compatibility(&a, &b).is_empty());
        assert_eq!(check_compatibility(&a, &c), vec!["expected: y.Q"]);
        let aliased = Schema::parse_str(
            r#"{"type":"record","name":"R","namespace":"x","aliases":["y.Q"],"fields":[]}"#,
        )
        .unwrap();
        assert!(check_compatibility(&aliased, &c).is_empty());
    }

    #[test]
    fn recursive_record_terminates() {
        let s = Schema::parse_str(
            r#"{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}"#,
        )
        .unwrap();
        assert!(check_compatibility(&s, &s).is_empty());
    }

    #[test]
    fn errors_in_karapace_wording() {
        let e = ParsedSchema::parse(r#"{"type":"record","name":"SensorData","fields":[{"name":"sensorId","type":"strng"}]}"#).unwrap_err();
        assert_eq!(
            e.registry_message(),
            "Type property \"strng\" not a valid Avro schema: Could not make an Avro Schema object from strng"
        );
        let text =
            r#"{"type":"record","name":"SensorData","fields":[{"name":"sensorId","type":"string"}"#;
        let e = ParsedSchema::parse(text).unwrap_err();
        assert_eq!(
            e.registry_message(),
            "unexpected end of data: line 1 column 83 (char 82)"
        );
    }
}
