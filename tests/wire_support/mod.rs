//! Shared test support for the codec tests: an in-test SchemaSource over `schemas/*.avsc`
//! (ids as in fixtures/README.md), the fixture cases, and natural-JSON comparison with float care.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use avro_edge::{RegistryError, SchemaSource, SubjectSchema};
use serde_json::Value;

pub use avro_edge_testkit::root;

/// Schema file of each fixture id (fixtures/README.md, "How schema ids map to subjects").
pub const IDS: [(u32, &str); 4] = [
    (1, "user-registration.avsc"),
    (2, "orders.avsc"),
    (3, "sensor-data.avsc"),
    (4, "sensor-data-v2.avsc"),
];

/// Subjects a writer uses; `sensor-data-v2-value` is a test-only subject for id 4.
pub const SUBJECTS: [(&str, u32); 4] = [
    ("user-registration-value", 1),
    ("orders-value", 2),
    ("sensor-data-value", 3),
    ("sensor-data-v2-value", 4),
];

pub fn schema_text(id: u32) -> Option<String> {
    let (_, file) = IDS.iter().find(|(i, _)| *i == id)?;
    std::fs::read_to_string(root().join("schemas").join(file)).ok()
}

/// Ids 1..4 from `schemas/`; anything else is `SchemaNotFound`.
pub struct FixtureSource;

impl SchemaSource for FixtureSource {
    fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        schema_text(id)
            .map(Arc::from)
            .ok_or(RegistryError::SchemaNotFound { id })
    }
    fn writer_schema(&self, subject: &str) -> Result<SubjectSchema, RegistryError> {
        let (_, id) = SUBJECTS
            .iter()
            .find(|(s, _)| *s == subject)
            .ok_or_else(|| RegistryError::SubjectNotFound {
                subject: subject.into(),
            })?;
        let schema = self.schema_by_id(*id)?;
        Ok(SubjectSchema {
            subject: subject.into(),
            version: 1,
            id: *id,
            schema,
        })
    }
}

pub fn codec() -> avro_edge::Codec {
    avro_edge::Codec::new(Arc::new(FixtureSource))
}

pub struct Case {
    pub name: String,
    pub bin: Vec<u8>,
    pub meta: Value,
}

impl Case {
    pub fn id(&self) -> u32 {
        self.meta["schema_id"].as_u64().unwrap_or(0) as u32
    }
    pub fn subject(&self) -> &str {
        self.meta["subject"].as_str().unwrap_or("")
    }
    /// What decoding must give: `decoded` where present, else `record`.
    pub fn expected(&self) -> &Value {
        if self.meta.get("decoded").is_some() {
            &self.meta["decoded"]
        } else {
            &self.meta["record"]
        }
    }
}

/// Every `<case>.bin` + `<case>.json` under `fixtures/wire/<dir>`, sorted by name.
pub fn cases(dir: &str) -> Vec<Case> {
    let d: PathBuf = root().join("fixtures/wire").join(dir);
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for p in names {
        out.push(load(&p));
    }
    assert!(!out.is_empty(), "no cases in {}", d.display());
    out
}

fn load(json: &Path) -> Case {
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let bin = std::fs::read(json.with_extension("bin")).unwrap();
    Case {
        name: json.file_stem().unwrap().to_string_lossy().into_owned(),
        bin,
        meta,
    }
}

pub const VALID_DIRS: [&str; 4] = [
    "user-registration",
    "orders",
    "sensor-data",
    "sensor-data-v2",
];

/// Natural-JSON equality: integers exactly, floats by value with NaN == NaN and the sign of zero kept,
/// `"NaN"`/`"Infinity"` strings as strings, objects by key.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_f64(), y.as_f64()) {
                (Some(f), Some(g)) => {
                    (f.is_nan() && g.is_nan())
                        || (f == g && f.is_sign_negative() == g.is_sign_negative())
                }
                _ => false,
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[track_caller]
pub fn assert_json_eq(got: &Value, want: &Value, what: &str) {
    assert!(json_eq(got, want), "{what}:\n got  {got}\n want {want}");
}
