//! The blocking Schema Registry client (ureq): the REST calls a producer and an operator need,
//! retries with backoff across several base URLs, basic/bearer auth, an id → schema cache kept
//! forever, a subject → latest cache with a TTL, and the offline cache directory read through,
//! written through, and used as a fallback when the registry cannot be reached.
//!
//! Must not encode or decode records, and must never log credentials.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cache::OfflineCache;
use super::{RegistryError, SchemaSource, SubjectSchema, is_retryable_status};
use crate::schema::ParsedSchema;

/// What the client sends as `Content-Type`.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// What the client sends as `Accept` (as confluent-kafka and kafkajs do).
pub const ACCEPT: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Registry credentials. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Basic { username: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}:***)"),
            Auth::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

impl Auth {
    fn header_value(&self) -> String {
        match self {
            Auth::Basic { username, password } => format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            ),
            Auth::Bearer(token) => format!("Bearer {token}"),
        }
    }
}

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
    pub auth: Option<Auth>,
    pub connect_timeout: Duration,
    /// Timeout for the response head and for the body.
    pub read_timeout: Duration,
    /// Retries after the first round over every URL (only on 408, 429, 5xx and I/O errors).
    pub retries: u32,
    /// First backoff; doubles each round up to `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long a subject's latest version is trusted before asking again.
    pub latest_ttl: Duration,
    /// Offline schema cache directory to read through, write to, and fall back to.
    pub cache_dir: Option<PathBuf>,
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
    pub is_compatible: bool,
    pub messages: Vec<String>,
}

struct Latest {
    entry: SubjectSchema,
    fetched: Instant,
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

/// Split `http://user:pass@host:port/path` into the URL without userinfo and the credentials.
fn split_userinfo(url: &str) -> (String, Option<Auth>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let auth = Auth::Basic {
                username: super::server::percent_decode(u),
                password: super::server::percent_decode(p),
            };
            (format!("{scheme}://{host}{path}"), Some(auth))
        }
        None => (url.to_string(), None),
    }
}

/// Percent-encode one path segment (subjects may hold any character).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// I/O-level failures worth retrying (and trying the next URL for); anything else is not.
/// A failed TLS handshake (bad or untrusted certificate): retrying cannot help.
#[cfg(feature = "tls")]
fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => true,
        // rustls' stream reports handshake failures as io::Error wrapping a rustls::Error.
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<futures_rustls::rustls::Error>()),
        _ => false,
    }
}

fn is_transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::BodyStalled
            | ureq::Error::Protocol(_)
    )
}

/// Turn an error answer into a typed error that keeps the registry's code and message.
pub fn error_from_response(status: u16, body: &str) -> RegistryError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    match parsed {
        Some(Value::Object(map)) if map.get("error_code").and_then(Value::as_i64).is_some() => {
            let code = map
                .get("error_code")
                .and_then(Value::as_i64)
                .unwrap_or(i64::from(status));
            let message = match map.get("message") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            RegistryError::Api {
                status,
                code,
                message,
            }
        }
        Some(Value::String(s)) => RegistryError::Api {
            status,
            code: i64::from(status),
            message: s,
        },
        _ => {
            let message: String = body.chars().take(512).collect();
            RegistryError::Api {
                status,
                code: i64::from(status),
                message,
            }
        }
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, RegistryError> {
    v.get(name).ok_or_else(|| {
        RegistryError::Protocol(format!(
            "answer has no '{name}': {}",
            truncate(&v.to_string())
        ))
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

fn as_u32(v: &Value, name: &str) -> Result<u32, RegistryError> {
    field(v, name)?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| RegistryError::Protocol(format!("'{name}' is not an id")))
}

fn as_i32(v: &Value, name: &str) -> Result<i32, RegistryError> {
    field(v, name)?
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| RegistryError::Protocol(format!("'{name}' is not a version")))
}

fn as_str<'a>(v: &'a Value, name: &str) -> Result<&'a str, RegistryError> {
    field(v, name)?
        .as_str()
        .ok_or_else(|| RegistryError::Protocol(format!("'{name}' is not a string")))
}

fn subject_schema(v: &Value) -> Result<SubjectSchema, RegistryError> {
    Ok(SubjectSchema {
        subject: as_str(v, "subject")?.to_string(),
        version: as_i32(v, "version")?,
        id: as_u32(v, "id")?,
        schema: Arc::from(as_str(v, "schema")?),
    })
}

/// ureq's TLS settings: rustls, with the CA file's certificates as the only roots when one is given.
#[cfg(feature = "tls")]
fn tls_config(opts: &ClientOptions) -> Result<ureq::tls::TlsConfig, RegistryError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let builder = TlsConfig::builder().provider(TlsProvider::Rustls);
    let Some(path) = &opts.ca_file else {
        return Ok(builder.build());
    };
    let pem = std::fs::read(path)
        .map_err(|e| RegistryError::Config(format!("reading {}: {e}", path.display())))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(RegistryError::Config(format!(
                    "parsing {}: {e}",
                    path.display()
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(RegistryError::Config(format!(
            "no CA certificate in {}",
            path.display()
        )));
    }
    Ok(builder
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
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

    fn next_random(&self) -> u64 {
        // xorshift64: jitter only, not cryptographic.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x
    }

    /// The pause before retry round `round` (0-based): half the capped exponential backoff plus
    /// a random part of the other half.
    fn backoff(&self, round: u32) -> Duration {
        let base = self
            .opts
            .backoff_initial
            .saturating_mul(1u32 << round.min(20))
            .min(self.opts.backoff_max);
        let half = base / 2;
        let jitter_ms = self.next_random() % (half.as_millis() as u64 + 1);
        half + Duration::from_millis(jitter_ms)
    }

    /// One request with retries over every base URL. Returns the final `(status, body)` of an
    /// answer that is not worth retrying; errors when none came.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), RegistryError> {
        if self.urls.is_empty() {
            return Err(RegistryError::Unreachable(
                "no registry URL configured (offline cache only)".into(),
            ));
        }
        let body_text = body.map(Value::to_string);
        let mut last: Option<RegistryError> = None;
        for round in 0..=self.opts.retries {
            if round > 0 {
                let pause = self.backoff(round - 1);
                tracing::debug!(
                    round,
                    pause_ms = pause.as_millis() as u64,
                    "registry retry backoff"
                );
                std::thread::sleep(pause);
            }
            for base in &self.urls {
                let url = format!("{base}{path}");
                match self.send_once(method, &url, body_text.as_deref()) {
                    Ok((status, text)) if is_retryable_status(status) => {
                        tracing::warn!(url = %url, status, "registry answered with a retryable status");
                        last = Some(error_from_response(status, &text));
                    }
                    Ok(answer) => return Ok(answer),
                    #[cfg(feature = "tls")]
                    Err(e) if is_tls_failure(&e) => {
                        return Err(RegistryError::Tls(format!("{url}: {e}")));
                    }
                    Err(e) if is_transient(&e) => {
                        tracing::warn!(url = %url, error = %e, "registry request failed");
                        last = Some(RegistryError::Unreachable(format!("{url}: {e}")));
                    }
                    Err(
                        e @ (ureq::Error::BadUri(_)
                        | ureq::Error::Http(_)
                        | ureq::Error::RequireHttpsOnly(_)),
                    ) => {
                        return Err(RegistryError::Config(format!("{url}: {e}")));
                    }
                    Err(e) => return Err(RegistryError::Protocol(format!("{url}: {e}"))),
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Unreachable("no attempt made".into())))
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), ureq::Error> {
        let auth = self.auth_header.as_deref();
        let mut resp = match (method, body) {
            ("GET", _) | ("DELETE", _) => {
                let rb = if method == "GET" {
                    self.agent.get(url)
                } else {
                    self.agent.delete(url)
                };
                let rb = rb.header("accept", ACCEPT);
                let rb = match auth {
                    Some(a) => rb.header("authorization", a),
                    None => rb,
                };
                rb.call()?
            }
            (_, body) => {
                let rb = if method == "PUT" {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                let rb = rb
                    .header("accept", ACCEPT)
                    .header("content-type", CONTENT_TYPE);
                let rb = match auth {
                    Some(a) => rb.header("authorization", a),
                    None => rb,
                };
                rb.send(body.unwrap_or(""))?
            }
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .lossy_utf8(true)
            .read_to_string()?;
        Ok((status, text))
    }

    /// Any registry request (`path` with its query); the JSON answer, or the typed error.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RegistryError> {
        self.call(method, path, body)
    }

    /// A request whose success answer is JSON; error answers become typed errors.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, RegistryError> {
        let (status, text) = self.send(method, path, body)?;
        if !(200..300).contains(&status) {
            return Err(error_from_response(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            RegistryError::Protocol(format!("{method} {path}: {e}: {}", truncate(&text)))
        })
    }

    fn schema_body(schema: &str) -> Value {
        json!({"schema": schema})
    }

    /// `POST /subjects/{s}/versions`: register (or find) `schema` under `subject`; its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let v = self.call(
            "POST",
            &format!("/subjects/{}/versions", enc(subject)),
            Some(&Self::schema_body(schema)),
        )?;
        // Not cached here: the caches keep the registry's own text, learnt from lookup/latest/id.
        as_u32(&v, "id")
    }

    /// `POST /subjects/{s}`: the version and id `schema` has under `subject` (40403 if none).
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<SubjectSchema, RegistryError> {
        let v = self.call(
            "POST",
            &format!("/subjects/{}", enc(subject)),
            Some(&Self::schema_body(schema)),
        )?;
        let entry = subject_schema(&v)?;
        self.remember_id(entry.id, &entry.schema)?;
        Ok(entry)
    }

    /// `GET /subjects/{s}/versions/latest`, always over HTTP; refreshes the caches.
    pub fn fetch_latest(&self, subject: &str) -> Result<SubjectSchema, RegistryError> {
        let v = self.call(
            "GET",
            &format!("/subjects/{}/versions/latest", enc(subject)),
            None,
        )?;
        let entry = subject_schema(&v)?;
        if let Some(cache) = &self.cache {
            cache.store_subject(&entry)?;
        }
        self.ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.id, entry.schema.clone());
        self.remember_latest(subject, &entry, Instant::now());
        Ok(entry)
    }

    fn remember_latest(&self, subject: &str, entry: &SubjectSchema, fetched: Instant) {
        let latest = Latest {
            entry: entry.clone(),
            fetched,
        };
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(subject.to_string(), latest);
    }

    /// The subject's latest version: from memory or the cache directory while younger than the
    /// TTL, else from the registry; the cache directory when the registry is unavailable.
    pub fn latest(&self, subject: &str) -> Result<SubjectSchema, RegistryError> {
        let ttl = self.opts.latest_ttl;
        if let Some(l) = self
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(subject)
            && l.fetched.elapsed() < ttl
        {
            return Ok(l.entry.clone());
        }
        if let Some(cache) = &self.cache
            && let Some(age) = cache.subject_age(subject)
            && age < ttl
            && let Some(entry) = cache.read_subject(subject)?
        {
            let fetched = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.remember_latest(subject, &entry, fetched);
            return Ok(entry);
        }
        match self.fetch_latest(subject) {
            Ok(e) => Ok(e),
            Err(e) if e.is_unavailable() => {
                if let Some(l) = self
                    .latest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(subject)
                {
                    tracing::warn!(subject, error = %e, "registry unavailable; using the last known latest version");
                    return Ok(l.entry.clone());
                }
                if let Some(cache) = &self.cache
                    && let Some(entry) = cache.read_subject(subject)?
                {
                    tracing::warn!(subject, id = entry.id, error = %e, "registry unavailable; using the offline schema cache");
                    return Ok(entry);
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /subjects/{s}/versions/{n}`.
    pub fn version(&self, subject: &str, version: i32) -> Result<SubjectSchema, RegistryError> {
        let v = self.call(
            "GET",
            &format!("/subjects/{}/versions/{version}", enc(subject)),
            None,
        )?;
        let entry = subject_schema(&v)?;
        self.remember_id(entry.id, &entry.schema)?;
        Ok(entry)
    }

    /// `GET /schemas/ids/{id}` through the caches (memory, then directory: a hit makes no request).
    pub fn schema(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        if let Some(s) = self.ids.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        if let Some(cache) = &self.cache
            && let Some(s) = cache.read_id(id)?
        {
            self.ids
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, s.clone());
            return Ok(s);
        }
        let v = match self.call("GET", &format!("/schemas/ids/{id}"), None) {
            Ok(v) => v,
            Err(e) if e.code() == Some(40403) => return Err(RegistryError::SchemaNotFound { id }),
            Err(e) => return Err(e),
        };
        let text: Arc<str> = Arc::from(as_str(&v, "schema")?);
        self.remember_id(id, &text)?;
        Ok(text)
    }

    fn remember_id(&self, id: u32, schema: &str) -> Result<(), RegistryError> {
        if let Some(cache) = &self.cache {
            cache.store_id(id, schema)?;
        }
        self.ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_insert_with(|| Arc::from(schema));
        Ok(())
    }

    /// `GET /subjects`.
    pub fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        serde_json::from_value(self.call("GET", "/subjects", None)?)
            .map_err(|e| RegistryError::Protocol(e.to_string()))
    }

    /// `GET /subjects/{s}/versions`.
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>, RegistryError> {
        serde_json::from_value(self.call(
            "GET",
            &format!("/subjects/{}/versions", enc(subject)),
            None,
        )?)
        .map_err(|e| RegistryError::Protocol(e.to_string()))
    }

    /// `GET /config` (no subject) or `GET /config/{s}`: the compatibility level. A subject with no
    /// level of its own fails with 40408 unless `default_to_global`.
    pub fn get_config(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<String, RegistryError> {
        let path = match subject {
            None => "/config".to_string(),
            Some(s) if default_to_global => format!("/config/{}?defaultToGlobal=true", enc(s)),
            Some(s) => format!("/config/{}", enc(s)),
        };
        Ok(as_str(&self.call("GET", &path, None)?, "compatibilityLevel")?.to_string())
    }

    /// `PUT /config` or `PUT /config/{s}` with `{"compatibility": level}`; the level set.
    pub fn put_config(&self, subject: Option<&str>, level: &str) -> Result<String, RegistryError> {
        let path = subject.map_or_else(|| "/config".to_string(), |s| format!("/config/{}", enc(s)));
        Ok(as_str(
            &self.call("PUT", &path, Some(&json!({"compatibility": level})))?,
            "compatibility",
        )?
        .to_string())
    }

    /// `POST /compatibility/subjects/{s}/versions/{version}` (`version` is a number or `latest`).
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: &str,
        schema: &str,
    ) -> Result<CompatibilityResult, RegistryError> {
        let path = format!(
            "/compatibility/subjects/{}/versions/{}",
            enc(subject),
            enc(version)
        );
        let v = self.call("POST", &path, Some(&Self::schema_body(schema)))?;
        let is_compatible = field(&v, "is_compatible")?
            .as_bool()
            .ok_or_else(|| RegistryError::Protocol("is_compatible".into()))?;
        let messages = v
            .get("messages")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CompatibilityResult {
            is_compatible,
            messages,
        })
    }

    /// `DELETE /subjects/{s}/versions/{n}[?permanent=true]`; the version deleted.
    pub fn delete_version(
        &self,
        subject: &str,
        version: i32,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let q = if permanent { "?permanent=true" } else { "" };
        let v = self.call(
            "DELETE",
            &format!("/subjects/{}/versions/{version}{q}", enc(subject)),
            None,
        )?;
        self.forget_latest(subject);
        v.as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| RegistryError::Protocol(format!("not a version: {v}")))
    }

    /// `DELETE /subjects/{s}[?permanent=true]`; the versions deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let q = if permanent { "?permanent=true" } else { "" };
        let v = self.call("DELETE", &format!("/subjects/{}{q}", enc(subject)), None)?;
        self.forget_latest(subject);
        serde_json::from_value(v).map_err(|e| RegistryError::Protocol(e.to_string()))
    }

    fn forget_latest(&self, subject: &str) {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(subject);
    }

    /// Auto-register mode: register the given schema (once per process), then find its version.
    fn auto_register(&self, subject: &str, schema: &str) -> Result<SubjectSchema, RegistryError> {
        if let Some(e) = self
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(subject)
        {
            return Ok(e.clone());
        }
        let result = self
            .register(subject, schema)
            .and_then(|_| self.lookup(subject, schema));
        match result {
            Ok(entry) => {
                self.registered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(subject.to_string(), entry.clone());
                Ok(entry)
            }
            Err(e) if e.is_unavailable() => {
                // The cache may hold this very schema as the subject's latest.
                if let Some(cache) = &self.cache
                    && let Some(entry) = cache.read_subject(subject)?
                    && crate::schema::same_schema(&entry.schema, schema).unwrap_or(false)
                {
                    tracing::warn!(subject, id = entry.id, error = %e, "registry unavailable; using the offline schema cache");
                    return Ok(entry);
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
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
