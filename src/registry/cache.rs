//! The offline schema cache directory, a format other tools read and write, kept exactly so:
//!
//! - `DIR/ids/<id>.avsc`: the schema JSON of that id;
//! - `DIR/subjects/<subject>.json`: the body of `GET /subjects/<subject>/versions/latest`,
//!   i.e. `{"subject","version","id","schema"}`.
//!
//! Must not talk HTTP: the client reads through it and writes to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{RegistryError, SchemaSource, SubjectSchema};

/// An offline schema cache rooted at a directory.
#[derive(Debug, Clone)]
pub struct OfflineCache {
    dir: PathBuf,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct SubjectFile {
    subject: String,
    version: i32,
    id: u32,
    schema: String,
}

impl OfflineCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OfflineCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn id_path(&self, id: u32) -> PathBuf {
        self.dir.join("ids").join(format!("{id}.avsc"))
    }

    fn subject_path(&self, subject: &str) -> PathBuf {
        self.dir.join("subjects").join(format!("{subject}.json"))
    }

    /// The schema text of `id`, or `Ok(None)` when the cache does not hold it.
    pub fn read_id(&self, id: u32) -> Result<Option<Arc<str>>, RegistryError> {
        match std::fs::read_to_string(self.id_path(id)) {
            Ok(text) => Ok(Some(Arc::from(text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::Cache(format!("{}: {e}", self.id_path(id).display()))),
        }
    }

    /// The latest entry of `subject`, or `Ok(None)` when the cache does not hold it.
    pub fn read_subject(&self, subject: &str) -> Result<Option<SubjectSchema>, RegistryError> {
        let path = self.subject_path(subject);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RegistryError::Cache(format!("{}: {e}", path.display()))),
        };
        let f: SubjectFile = serde_json::from_str(&text)
            .map_err(|e| RegistryError::Cache(format!("{}: {e}", path.display())))?;
        Ok(Some(SubjectSchema { subject: f.subject, version: f.version, id: f.id, schema: Arc::from(f.schema) }))
    }
}

impl SchemaSource for OfflineCache {
    fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        self.read_id(id)?.ok_or(RegistryError::SchemaNotFound { id })
    }

    fn writer_schema(&self, subject: &str) -> Result<SubjectSchema, RegistryError> {
        self.read_subject(subject)?
            .ok_or_else(|| RegistryError::SubjectNotFound { subject: subject.to_string() })
    }
}
