//! Schema Registry: HTTP client, offline schema cache directory, subject naming, and a test registry.
//!
//! Must not encode or decode records (that is [`crate::codec`]).

use std::sync::Arc;

use crate::error::ErrorKind;

/// A schema known to a registry under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSchema {
    pub subject: String,
    pub version: i32,
    pub id: u32,
    /// The schema JSON as the registry returned it (compare by parsed form, never by text).
    pub schema: Arc<str>,
}

/// Where the codec gets schemas from: the registry client, the offline cache, or a test double.
///
/// This is the seam between [`crate::codec`] and this module; the codec knows nothing else of it.
pub trait SchemaSource: Send + Sync {
    /// The schema with this id (ids never change, so callers may cache the answer forever).
    fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError>;
    /// The schema and id a writer should use for `subject` (latest, or registered in auto-register mode).
    fn writer_schema(&self, subject: &str) -> Result<SubjectSchema, RegistryError>;
}

/// Everything the registry client, the offline cache and the test registry can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an error body `{"error_code":N,"message":...}`.
    #[error("registry error {code} (HTTP {status}): {message}")]
    Api { status: u16, code: i64, message: String },
    /// No schema with this id, in the registry (40403) or in the offline cache.
    #[error("schema id {id} not found")]
    SchemaNotFound { id: u32 },
    /// No such subject (40401), in the registry or in the offline cache.
    #[error("subject '{subject}' not found")]
    SubjectNotFound { subject: String },
    /// Every base URL failed at the transport level (after retries), and no cache could answer.
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    /// The offline cache directory could not be read or written, or holds a bad file.
    #[error("offline schema cache: {0}")]
    Cache(String),
}

impl ErrorKind for RegistryError {
    fn kind(&self) -> &'static str {
        match self {
            RegistryError::Api { .. } => "registry-error",
            RegistryError::SchemaNotFound { .. } => "unknown-schema-id",
            RegistryError::SubjectNotFound { .. } => "unknown-subject",
            RegistryError::Unreachable(_) => "registry-unreachable",
            RegistryError::Cache(_) => "schema-cache",
        }
    }
}

pub mod cache;
pub mod server;

/// The schema source the CLI and the forwarder use, from their flags: registry URLs (tried in turn)
/// and/or an offline cache directory. With only a cache, no HTTP is ever made.
pub fn open_source(
    urls: &[String],
    cache_dir: Option<&std::path::Path>,
) -> Result<Arc<dyn SchemaSource>, RegistryError> {
    match (urls.is_empty(), cache_dir) {
        (true, Some(dir)) => Ok(Arc::new(cache::OfflineCache::new(dir))),
        (true, None) => Err(RegistryError::Unreachable("no registry URL and no schema cache given".into())),
        (false, _) => Err(RegistryError::Unreachable("the HTTP registry client is not built yet".into())),
    }
}
