//! The offline schema cache directory, a format other tools read and write, kept exactly so:
//!
//! - `DIR/ids/<id>.avsc`: the schema JSON of that id (the registry's text);
//! - `DIR/subjects/<subject>.json`: the body of `GET /subjects/<subject>/versions/latest`,
//!   i.e. `{"subject","version","id","schema"}`.
//!
//! Writes are atomic (temp file in the same directory, then rename). An entry that disagrees with
//! what the registry says (same id with another schema by parsed form, or the same subject and
//! version with another id) is never overwritten: the store fails with
//! [`RegistryError::CacheConflict`] carrying both values.
//!
//! Must not talk HTTP: the client reads through it and writes to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{RegistryError, SchemaSource, SubjectSchema};
use crate::schema::ParsedSchema;

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

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Subjects become file names: refuse anything that could leave the `subjects/` directory.
fn check_subject_name(subject: &str) -> Result<(), RegistryError> {
    let bad = subject.is_empty()
        || subject.starts_with('.')
        || subject.len() > 200
        || subject
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_control());
    if bad {
        return Err(RegistryError::Cache(format!(
            "subject name {subject:?} cannot be stored as a cache file name"
        )));
    }
    Ok(())
}

impl OfflineCache {
    /// A cache over the directory `dir` (nothing is read until a schema is asked for).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OfflineCache { dir: dir.into() }
    }

    /// The cache directory.
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
            Err(e) => Err(RegistryError::Cache(format!(
                "{}: {e}",
                self.id_path(id).display()
            ))),
        }
    }

    /// The latest entry of `subject`, or `Ok(None)` when the cache does not hold it.
    pub fn read_subject(&self, subject: &str) -> Result<Option<SubjectSchema>, RegistryError> {
        check_subject_name(subject)?;
        let path = self.subject_path(subject);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RegistryError::Cache(format!("{}: {e}", path.display()))),
        };
        let f: SubjectFile = serde_json::from_str(&text)
            .map_err(|e| RegistryError::Cache(format!("{}: {e}", path.display())))?;
        Ok(Some(SubjectSchema {
            subject: f.subject,
            version: f.version,
            id: f.id,
            schema: Arc::from(f.schema),
        }))
    }

    /// How long ago the subject's entry was written (`None` when absent or the clock is odd).
    pub fn subject_age(&self, subject: &str) -> Option<Duration> {
        check_subject_name(subject).ok()?;
        let modified = std::fs::metadata(self.subject_path(subject))
            .ok()?
            .modified()
            .ok()?;
        modified.elapsed().ok()
    }

    /// Store the schema of `id`. Same schema already there (by parsed form): nothing written.
    /// Another schema there: [`RegistryError::CacheConflict`], the file is left as it is.
    pub fn store_id(&self, id: u32, schema: &str) -> Result<(), RegistryError> {
        if let Some(cached) = self.read_id(id)? {
            let same = match (ParsedSchema::parse(&cached), ParsedSchema::parse(schema)) {
                (Ok(a), Ok(b)) => a.same_as(&b),
                _ => *cached == *schema,
            };
            if same {
                return Ok(());
            }
            return Err(RegistryError::CacheConflict {
                what: format!("schema id {id} ({})", self.id_path(id).display()),
                cached: cached.to_string(),
                registry: schema.to_string(),
            });
        }
        self.write_atomic(&self.id_path(id), schema.as_bytes())
    }

    /// Store `entry` as the subject's latest, and its schema under its id.
    /// The same version with another id already there: [`RegistryError::CacheConflict`].
    pub fn store_subject(&self, entry: &SubjectSchema) -> Result<(), RegistryError> {
        check_subject_name(&entry.subject)?;
        if let Some(cached) = self.read_subject(&entry.subject)?
            && cached.version == entry.version
            && cached.id != entry.id
        {
            return Err(RegistryError::CacheConflict {
                what: format!("subject '{}' version {}", entry.subject, entry.version),
                cached: format!("id {}", cached.id),
                registry: format!("id {}", entry.id),
            });
        }
        self.store_id(entry.id, &entry.schema)?;
        if let Some(cached) = self.read_subject(&entry.subject)?
            && cached == *entry
        {
            return Ok(());
        }
        let file = SubjectFile {
            subject: entry.subject.clone(),
            version: entry.version,
            id: entry.id,
            schema: entry.schema.to_string(),
        };
        let body = serde_json::to_vec(&file).map_err(|e| RegistryError::Cache(e.to_string()))?;
        self.write_atomic(&self.subject_path(&entry.subject), &body)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
        let err = |e: std::io::Error| RegistryError::Cache(format!("{}: {e}", path.display()));
        let parent = path.parent().ok_or_else(|| {
            RegistryError::Cache(format!("{}: no parent directory", path.display()))
        })?;
        std::fs::create_dir_all(parent).map_err(err)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
        let tmp = parent.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        Ok(())
    }
}

impl SchemaSource for OfflineCache {
    fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        self.read_id(id)?
            .ok_or(RegistryError::SchemaNotFound { id })
    }

    fn writer_schema(&self, subject: &str) -> Result<SubjectSchema, RegistryError> {
        self.read_subject(subject)?
            .ok_or_else(|| RegistryError::SubjectNotFound {
                subject: subject.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "avro-edge-cache-{tag}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn refuses_subjects_that_escape_the_directory() {
        let c = OfflineCache::new(tmpdir("escape"));
        for bad in ["../x", "a/b", ".hidden", ""] {
            assert_eq!(
                crate::error::ErrorKind::kind(&c.read_subject(bad).unwrap_err()),
                "schema-cache"
            );
        }
    }

    #[test]
    fn same_schema_other_text_is_not_a_conflict() {
        let c = OfflineCache::new(tmpdir("same"));
        c.store_id(7, r#"{"type":"enum","name":"E","symbols":["A"]}"#)
            .unwrap();
        c.store_id(7, r#"{"symbols":["A"],"name":"E","type":"enum"}"#)
            .unwrap();
        let err = c
            .store_id(7, r#"{"type":"enum","name":"E","symbols":["B"]}"#)
            .unwrap_err();
        assert!(matches!(err, RegistryError::CacheConflict { .. }), "{err}");
        // The cached file is untouched.
        assert_eq!(
            &*c.read_id(7).unwrap().unwrap(),
            r#"{"type":"enum","name":"E","symbols":["A"]}"#
        );
        let _ = std::fs::remove_dir_all(c.dir());
    }
}
