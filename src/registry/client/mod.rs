//! The blocking Schema Registry client (ureq): the REST calls a producer and an operator need,
//! retries with backoff across several base URLs, basic/bearer auth, an id → schema cache kept
//! forever, a subject → latest cache with a TTL, and the offline cache directory read through,
//! written through, and used as a fallback when the registry cannot be reached.
//!
//! Must not encode or decode records, and must never log credentials.

//!
//! Its parts: `transport` (HTTP with retries and backoff), `endpoints` (the REST calls), `caching`
//! (the id, latest and offline caches), `response` (answers to values and typed errors), `auth`.

mod auth;
mod caching;
mod endpoints;
mod response;
mod transport;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::cache::OfflineCache;
use super::{RegistryError, SchemaSource, SubjectSchema};
use crate::schema::ParsedSchema;
pub use auth::Auth;
use auth::split_userinfo;
use caching::Latest;
#[cfg(feature = "tls")]
use transport::tls_config;

/// What the client sends as `Content-Type`.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// What the client sends as `Accept` (as confluent-kafka and kafkajs do).
pub const ACCEPT: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";

/// Which schema id a writer uses for a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriterMode {
    /// The subject's latest registered version (what the seed does; nothing is ever registered).
    #[default]
    LatestId,
    /// Register the schema given with [`RegistryClient::set_writer_schema`] (or find it if already
    /// registered) and use its id; subjects with no schema given use the latest.
    AutoRegister,
}

/// Client settings. Build with [`ClientOptions::new`] and set fields directly.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URLs, tried in turn (`http://host:8081`; `http://user:pass@host` sets basic auth).
    pub urls: Vec<String>,
    /// Credentials sent with every request; `None`: none (or the ones in the URL).
    pub auth: Option<Auth>,
    /// Bound on one TCP (and TLS) connect (default 5 s).
    pub connect_timeout: Duration,
    /// Timeout for the response head and for the body.
    pub read_timeout: Duration,
    /// Retries after the first round over every URL (only on 408, 429, 5xx and I/O errors).
    pub retries: u32,
    /// First backoff; doubles each round up to `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    /// Longest backoff between retry rounds (default 2 s).
    pub backoff_max: Duration,
    /// How long a subject's latest version is trusted before asking again.
    pub latest_ttl: Duration,
    /// Offline schema cache directory to read through, write to, and fall back to.
    pub cache_dir: Option<PathBuf>,
    /// How the writer schema for a subject is chosen (default: the latest registered id).
    pub mode: WriterMode,
    /// HTTPS (feature `tls`): trust only the CA certificates in this PEM file instead of the
    /// Mozilla roots (webpki-roots).
    #[cfg(feature = "tls")]
    pub ca_file: Option<PathBuf>,
}

impl ClientOptions {
    /// Defaults: 5 s connect, 10 s read, 3 retries, 100 ms..2 s backoff, latest TTL 5 min, no cache,
    /// [`WriterMode::LatestId`].
    pub fn new(urls: impl IntoIterator<Item = impl Into<String>>) -> ClientOptions {
        ClientOptions {
            urls: urls.into_iter().map(Into::into).collect(),
            auth: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            retries: 3,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            latest_ttl: Duration::from_secs(300),
            cache_dir: None,
            mode: WriterMode::LatestId,
            #[cfg(feature = "tls")]
            ca_file: None,
        }
    }
}

/// The answer of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityResult {
    /// Whether the schema may be registered under the subject's compatibility level.
    pub is_compatible: bool,
    /// Why not, as the registry words it (empty when compatible or when the registry gives none).
    pub messages: Vec<String>,
}

/// A blocking registry client; cheap to share behind an `Arc` (all methods take `&self`).
pub struct RegistryClient {
    urls: Vec<String>,
    auth_header: Option<String>,
    opts: ClientOptions,
    agent: ureq::Agent,
    cache: Option<OfflineCache>,
    ids: RwLock<HashMap<u32, Arc<str>>>,
    latest: Mutex<HashMap<String, Latest>>,
    writer_schemas: RwLock<HashMap<String, Arc<str>>>,
    registered: Mutex<HashMap<String, SubjectSchema>>,
    rng: AtomicU64,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("urls", &self.urls)
            .field("auth", &self.opts.auth)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for `opts.urls` (at least one, or none when `cache_dir` is set: then it only
    /// ever answers from the cache).
    pub fn new(opts: ClientOptions) -> Result<RegistryClient, RegistryError> {
        let mut auth = opts.auth.clone();
        let mut urls = Vec::new();
        for u in &opts.urls {
            let (url, userinfo) = split_userinfo(u.trim());
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(RegistryError::Config(format!(
                    "registry URL must start with http:// or https://: {url}"
                )));
            }
            if auth.is_none() {
                auth = userinfo;
            }
            urls.push(url.trim_end_matches('/').to_string());
        }
        if urls.is_empty() && opts.cache_dir.is_none() {
            return Err(RegistryError::Config(
                "no registry URL and no schema cache given".into(),
            ));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_recv_response(Some(opts.read_timeout))
            .timeout_recv_body(Some(opts.read_timeout))
            .timeout_send_body(Some(opts.read_timeout));
        #[cfg(feature = "tls")]
        let config = config.tls_config(tls_config(&opts)?);
        let config = config.build();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            | 1;
        Ok(RegistryClient {
            auth_header: auth.as_ref().map(Auth::header_value),
            urls,
            cache: opts.cache_dir.clone().map(OfflineCache::new),
            opts: ClientOptions { auth, ..opts },
            agent: ureq::Agent::new_with_config(config),
            ids: RwLock::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            writer_schemas: RwLock::new(HashMap::new()),
            registered: Mutex::new(HashMap::new()),
            rng: AtomicU64::new(seed),
        })
    }

    /// The offline cache this client reads and writes, if any.
    pub fn cache(&self) -> Option<&OfflineCache> {
        self.cache.as_ref()
    }

    /// In [`WriterMode::AutoRegister`], the schema `writer_schema(subject)` registers.
    pub fn set_writer_schema(&self, subject: &str, schema: &str) -> Result<(), RegistryError> {
        ParsedSchema::parse(schema)?;
        self.writer_schemas
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(subject.to_string(), Arc::from(schema));
        Ok(())
    }
}

impl SchemaSource for RegistryClient {
    fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        self.schema(id)
    }

    fn writer_schema(&self, subject: &str) -> Result<SubjectSchema, RegistryError> {
        if self.opts.mode == WriterMode::AutoRegister {
            let local = self
                .writer_schemas
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(subject)
                .cloned();
            if let Some(schema) = local {
                return self.auto_register(subject, &schema);
            }
        }
        self.latest(subject).map_err(|e| match e {
            RegistryError::Api { code: 40401, .. } => RegistryError::SubjectNotFound {
                subject: subject.to_string(),
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::auth::base64;
    use super::endpoints::enc;
    use super::response::error_from_response;
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn userinfo_becomes_basic_auth() {
        let (url, auth) = split_userinfo("http://alice:s%3Acret@reg:8081/base");
        assert_eq!(url, "http://reg:8081/base");
        assert_eq!(
            auth,
            Some(Auth::Basic {
                username: "alice".into(),
                password: "s:cret".into()
            })
        );
        assert_eq!(format!("{:?}", auth.unwrap()), "Basic(alice:***)");
    }

    #[test]
    fn error_bodies_keep_code_and_message() {
        let e = error_from_response(
            404,
            r#"{"error_code":40401,"message":"Subject 'x' not found."}"#,
        );
        assert_eq!(
            (e.code(), e.registry_message()),
            (Some(40401), Some("Subject 'x' not found."))
        );
        let e = error_from_response(
            422,
            r#"{"error_code":422,"message":[{"type":"json_invalid"}]}"#,
        );
        assert_eq!(e.registry_message(), Some(r#"[{"type":"json_invalid"}]"#));
        let e = error_from_response(404, r#""Not Found""#);
        assert_eq!(
            (e.code(), e.registry_message()),
            (Some(404), Some("Not Found"))
        );
    }

    #[test]
    fn subjects_are_percent_encoded() {
        assert_eq!(enc("a b/c-value"), "a%20b%2Fc-value");
    }
}
