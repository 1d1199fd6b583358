//! Schema Registry: HTTP client, offline schema cache directory, subject naming, and a test registry
//! (the last only with the `registry-server` feature).
//!
//! Must not encode or decode records (that is [`crate::codec`]).

use std::sync::Arc;

use crate::error::{ErrorKind, Kind};

/// A schema known to a registry under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSchema {
    /// The subject (e.g. `sensor-data-value`).
    pub subject: String,
    /// The schema's version under the subject (1, 2, ...).
    pub version: i32,
    /// The schema's global registry id (what the Confluent frame carries).
    pub id: u32,
    /// The schema JSON as the registry returned it (compare by parsed form, never by text).
    pub schema: Arc<str>,
}

/// Where the codec gets schemas from: the registry client, the offline cache, or a test double.
///
/// This is the seam between the codec ([`crate::Codec`]) and the registry; the codec knows nothing else of it.
pub trait SchemaSource: Send + Sync {
    /// The schema with this id (ids never change, so callers may cache the answer forever).
    fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError>;
    /// The schema and id a writer should use for `subject` (latest, or registered in auto-register mode).
    fn writer_schema(&self, subject: &str) -> Result<SubjectSchema, RegistryError>;
}

/// Everything the registry client, the offline cache and the test registry can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry answered with an error body `{"error_code":N,"message":...}` (or, for a route it
    /// does not have, a bare JSON string such as `"Not Found"`: then `code` is the HTTP status).
    /// A `message` that is not a string (FastAPI validation lists) is kept as its JSON text.
    #[error("registry error {code} (HTTP {status}): {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The registry's error code (e.g. 40401), or the HTTP status.
        code: i64,
        /// The registry's message.
        message: String,
    },
    /// No schema with this id, in the registry (40403) or in the offline cache.
    #[error("schema id {id} not found")]
    SchemaNotFound {
        /// The schema id asked for.
        id: u32,
    },
    /// No such subject (40401), in the registry or in the offline cache.
    #[error("subject '{subject}' not found")]
    SubjectNotFound {
        /// The subject asked for.
        subject: String,
    },
    /// Every base URL failed at the transport level (after retries), and no cache could answer.
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    /// The offline cache directory could not be read or written, or holds a bad file.
    #[error("offline schema cache: {0}")]
    Cache(String),
    /// The offline cache holds an entry that disagrees with the registry; it was not overwritten.
    #[error(
        "offline schema cache disagrees with the registry on {what}: cache has {cached}, registry has {registry}"
    )]
    CacheConflict {
        /// The entry (e.g. `schema id 3 (<file>)`, `subject 'sensor-data-value' version 2`).
        what: String,
        /// What the cache holds.
        cached: String,
        /// What the registry says.
        registry: String,
    },
    /// A schema text is not a valid Avro schema.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// The registry answered something that is not the documented response.
    #[error("unexpected registry response: {0}")]
    Protocol(String),
    /// Bad client settings (URL, naming strategy input, ...).
    #[error("registry client configuration: {0}")]
    Config(String),
    /// The HTTPS handshake failed (feature `tls`): e.g. a certificate no trusted CA signed.
    /// Not retried, and no fallback to the offline cache.
    #[error("registry TLS: {0}")]
    Tls(String),
}

impl RegistryError {
    /// The registry's `error_code` (40401, 409, ...) when the registry sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RegistryError::Api { code, .. } => Some(*code),
            RegistryError::SchemaNotFound { .. } => Some(40403),
            RegistryError::SubjectNotFound { .. } => Some(40401),
            _ => None,
        }
    }

    /// The registry's message, when the registry sent one.
    pub fn registry_message(&self) -> Option<&str> {
        match self {
            RegistryError::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether this means "the registry could not be asked" (transport failure, or 408/429/5xx
    /// after every retry): the cases where the offline cache may answer instead.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RegistryError::Unreachable(_) => true,
            RegistryError::Api { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }
}

/// 408, 429 and 5xx are worth retrying; nothing else is.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// The stable kind name of a registry error code.
pub fn kind_of_code(code: i64) -> Kind {
    match code {
        40401 => Kind::UnknownSubject,
        40402 => Kind::UnknownVersion,
        40403 => Kind::UnknownSchemaId,
        40404 => Kind::SubjectSoftDeleted,
        40405 => Kind::SubjectNotSoftDeleted,
        40406 => Kind::VersionSoftDeleted,
        40407 => Kind::VersionNotSoftDeleted,
        40408 => Kind::NoSubjectConfig,
        404 => Kind::NotFound,
        409 => Kind::IncompatibleSchema,
        42201 => Kind::InvalidSchema,
        42202 => Kind::InvalidVersion,
        42203 => Kind::InvalidCompatibilityLevel,
        422 => Kind::UnprocessableRequest,
        401 => Kind::Unauthorized,
        403 => Kind::Forbidden,
        c if (500..600).contains(&c) || (50000..60000).contains(&c) => Kind::RegistryServerError,
        _ => Kind::RegistryError,
    }
}

impl ErrorKind for RegistryError {
    fn kind(&self) -> Kind {
        match self {
            RegistryError::Api { code, .. } => kind_of_code(*code),
            RegistryError::SchemaNotFound { .. } => Kind::UnknownSchemaId,
            RegistryError::SubjectNotFound { .. } => Kind::UnknownSubject,
            RegistryError::Unreachable(_) => Kind::RegistryUnreachable,
            RegistryError::Cache(_) => Kind::SchemaCache,
            RegistryError::CacheConflict { .. } => Kind::SchemaCacheConflict,
            RegistryError::Schema(e) => e.kind(),
            RegistryError::Protocol(_) => Kind::RegistryProtocol,
            RegistryError::Config(_) => Kind::RegistryConfig,
            RegistryError::Tls(_) => Kind::TlsError,
        }
    }
}

pub mod cache;
pub mod client;
pub mod naming;
pub mod percent;
pub mod schema_files;
/// The in-memory test registry. Test support: only with the `registry-server` feature, which the
/// gateway build leaves out (tests get it through the avro-edge-testkit dev-dependency).
#[cfg(feature = "registry-server")]
pub mod server;

pub use client::{Auth, ClientOptions, CompatibilityResult, RegistryClient, WriterMode};
pub use naming::SubjectNameStrategy;

/// The schema source the CLI and the forwarder use, from their flags: registry URLs (tried in turn;
/// one string may also hold several, comma-separated; `http://user:pass@host` gives basic auth)
/// and/or an offline cache directory. With only a cache, no HTTP is ever made. With both, the
/// client reads through the cache, writes to it, and falls back to it when the registry is down.
/// A bearer token may come from `AVRO_EDGE_REGISTRY_TOKEN`.
pub fn open_source(
    urls: &[String],
    cache_dir: Option<&std::path::Path>,
) -> Result<Arc<dyn SchemaSource>, RegistryError> {
    let urls = split_urls(urls);
    match (urls.is_empty(), cache_dir) {
        (true, Some(dir)) => Ok(Arc::new(cache::OfflineCache::new(dir))),
        (true, None) => Err(RegistryError::Config(
            "no registry URL and no schema cache given".into(),
        )),
        (false, _) => Ok(Arc::new(RegistryClient::new(client_options(
            &urls, cache_dir,
        ))?)),
    }
}

/// Registry URLs from flags: each may hold several, comma-separated.
fn split_urls(urls: &[String]) -> Vec<String> {
    urls.iter()
        .flat_map(|u| u.split(','))
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

/// Client options from command-line style inputs: URLs (each may hold several, comma-separated;
/// `http://user:pass@host` gives basic auth), an optional cache directory, and a bearer token from
/// `AVRO_EDGE_REGISTRY_TOKEN` when set. Everything else at its default.
pub fn client_options(urls: &[String], cache_dir: Option<&std::path::Path>) -> ClientOptions {
    let urls = split_urls(urls);
    let mut opts = ClientOptions::new(urls);
    opts.cache_dir = cache_dir.map(std::path::Path::to_path_buf);
    if let Ok(token) = std::env::var("AVRO_EDGE_REGISTRY_TOKEN")
        && !token.is_empty()
    {
        opts.auth = Some(Auth::Bearer(token));
    }
    opts
}
