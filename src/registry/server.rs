//! A small in-process Schema Registry for tests and demos, answering as Karapace 6.2.0 did in the
//! recordings under `fixtures/registry/`: global ids (the same schema by parsed form gets the same id
//! under any subject), subjects and versions, soft and permanent deletes, `?deleted=true`,
//! global and subject config, the compatibility endpoint and 409 on an incompatible register,
//! error codes and messages as recorded, and schema strings re-serialised with sorted keys.
//!
//! HTTP/1.1 on `std::net`: a thread per connection (at most 64 open), keep-alive, `Content-Length`
//! or chunked bodies, bounded header (64 KiB) and body (8 MiB) sizes. Must not be used as a
//! production registry (state is in memory) and must not encode or decode records.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::schema::{Compatibility, ParsedSchema, python_json_position};

/// The content type of every registry answer, errors included.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const PLAIN_JSON: &str = "application/json";
const MAX_HEAD_BYTES: u64 = 64 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
const MAX_CONNECTIONS: usize = 64;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One answer: status, content type, body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    fn ok(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: CONTENT_TYPE,
            body,
        }
    }
    fn json(v: &Value) -> Reply {
        Reply::ok(v.to_string())
    }
    fn error(code: i64, message: impl Into<Value>) -> Reply {
        let status = code
            .to_string()
            .get(..3)
            .and_then(|s| s.parse().ok())
            .unwrap_or(500);
        // Keys in Karapace's order: error_code, then message.
        let body = format!("{{\"error_code\":{code},\"message\":{}}}", message.into());
        Reply {
            status,
            content_type: CONTENT_TYPE,
            body,
        }
    }
    fn not_found_route() -> Reply {
        Reply {
            status: 404,
            content_type: PLAIN_JSON,
            body: "\"Not Found\"".into(),
        }
    }
    fn method_not_allowed() -> Reply {
        Reply {
            status: 405,
            content_type: PLAIN_JSON,
            body: "{\"detail\":\"Method Not Allowed\"}".into(),
        }
    }
}

/// A registry error as the registry reports it (code and message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: i64,
    pub message: String,
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply::error(e.code, e.message)
    }
}

fn api(code: i64, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        message: message.into(),
    }
}

fn subject_not_found(s: &str) -> ApiError {
    api(40401, format!("Subject '{s}' not found."))
}

fn version_not_found(v: i64) -> ApiError {
    api(40402, format!("Version {v} not found."))
}

fn schema_not_found() -> ApiError {
    api(40403, "Schema not found")
}

struct Stored {
    text: String,
}

#[derive(Debug, Clone)]
struct Version {
    version: i32,
    id: u32,
    deleted: bool,
}

struct Subject {
    name: String,
    versions: Vec<Version>,
    compat: Option<Compatibility>,
}

impl Subject {
    fn live(&self) -> impl Iterator<Item = &Version> {
        self.versions.iter().filter(|v| !v.deleted)
    }
    fn visible(&self, deleted: bool) -> impl Iterator<Item = &Version> {
        self.versions.iter().filter(move |v| deleted || !v.deleted)
    }
}

/// A version in a request path: `latest` (or `-1`) or a number in `[1, 2^31-1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionRef {
    Latest,
    Number(i32),
}

fn parse_version(s: &str) -> Result<VersionRef, ApiError> {
    if s == "latest" || s == "-1" {
        return Ok(VersionRef::Latest);
    }
    match s.parse::<i32>() {
        Ok(n) if n >= 1 => Ok(VersionRef::Number(n)),
        _ => Err(api(
            42202,
            format!(
                "The specified version '{s}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )),
    }
}

/// The registry's state: schemas by global id, subjects in creation order, config.
pub struct RegistryState {
    schemas: Vec<Stored>,
    parsed: Vec<ParsedSchema>,
    by_identity: HashMap<String, u32>,
    subjects: Vec<Subject>,
    global: Compatibility,
}

impl Default for RegistryState {
    fn default() -> Self {
        RegistryState {
            schemas: Vec::new(),
            parsed: Vec::new(),
            by_identity: HashMap::new(),
            subjects: Vec::new(),
            global: Compatibility::Backward,
        }
    }
}

fn subject_body(subject: &str, v: &Version, schema: &str) -> String {
    format!(
        "{{\"subject\":{},\"version\":{},\"id\":{},\"schema\":{}}}",
        Value::from(subject),
        v.version,
        v.id,
        Value::from(schema)
    )
}

fn parse_body(body: &[u8]) -> Result<Value, Reply> {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str::<Value>(&text).map_err(|e| {
        let (pos, _, _) = python_json_position(&text, &e);
        let detail = json!([{"type": "json_invalid", "loc": ["body", pos], "msg": "JSON decode error", "input": {}, "ctx": {"error": "Expecting value"}}]);
        Reply::error(422, detail)
    })
}

fn body_field<'a>(body: &'a Value, field: &str) -> Result<&'a str, Reply> {
    body.get(field).and_then(Value::as_str).ok_or_else(|| {
        let input = body.clone();
        Reply::error(422, json!([{"type": "missing", "loc": ["body", field], "msg": "Field required", "input": input}]))
    })
}

impl RegistryState {
    fn subject(&self, name: &str) -> Option<&Subject> {
        self.subjects.iter().find(|s| s.name == name)
    }

    fn subject_mut(&mut self, name: &str) -> Option<&mut Subject> {
        self.subjects.iter_mut().find(|s| s.name == name)
    }

    fn parsed_of(&self, id: u32) -> Option<&ParsedSchema> {
        self.parsed.get((id as usize).checked_sub(1)?)
    }

    fn schema_text(&self, id: u32) -> Option<&str> {
        self.schemas
            .get((id as usize).checked_sub(1)?)
            .map(|s| s.text.as_str())
    }

    fn parse_schema(body: &Value) -> Result<ParsedSchema, Reply> {
        let text = body_field(body, "schema")?;
        let ty = body
            .get("schemaType")
            .and_then(Value::as_str)
            .unwrap_or("AVRO");
        if ty != "AVRO" {
            return Err(Reply::error(
                42201,
                format!("Invalid {ty} schema. Error: only AVRO is supported by this test registry"),
            ));
        }
        ParsedSchema::parse(text).map_err(|e| {
            Reply::error(
                42201,
                format!("Invalid AVRO schema. Error: {}", e.registry_message()),
            )
        })
    }

    fn level(&self, subject: Option<&Subject>) -> Compatibility {
        subject.and_then(|s| s.compat).unwrap_or(self.global)
    }

    /// Register `text` under `subject` (what `POST /subjects/{s}/versions` does); the global id.
    pub fn register(&mut self, subject: &str, text: &str) -> Result<u32, ApiError> {
        let parsed = ParsedSchema::parse(text).map_err(|e| {
            api(
                42201,
                format!("Invalid AVRO schema. Error: {}", e.registry_message()),
            )
        })?;
        self.register_parsed(subject, parsed)
    }

    fn register_parsed(&mut self, subject: &str, parsed: ParsedSchema) -> Result<u32, ApiError> {
        let existing = self.subject(subject);
        if let Some(s) = existing {
            for v in s.live() {
                if self.parsed_of(v.id).is_some_and(|p| p.same_as(&parsed)) {
                    return Ok(v.id);
                }
            }
            let level = self.level(Some(s));
            let live: Vec<&Version> = s.live().collect();
            let against: Vec<&Version> = if level.transitive() {
                live
            } else {
                live.last().copied().into_iter().collect()
            };
            let mut messages = Vec::new();
            for v in against {
                if let Some(old) = self.parsed_of(v.id) {
                    messages.extend(level.check(&parsed, old));
                }
            }
            if !messages.is_empty() {
                return Err(api(
                    409,
                    format!(
                        "Incompatible schema, compatibility_mode={}. Incompatibilities: {}",
                        level.as_str(),
                        messages.join(", ")
                    ),
                ));
            }
        }
        let id = match self.by_identity.get(parsed.identity()) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(self.schemas.len() + 1)
                    .map_err(|_| api(50001, "id space exhausted"))?;
                self.schemas.push(Stored {
                    text: parsed.registry_text(),
                });
                self.by_identity.insert(parsed.identity().to_string(), id);
                self.parsed.push(parsed);
                id
            }
        };
        let s = match self.subjects.iter().position(|s| s.name == subject) {
            Some(i) => &mut self.subjects[i],
            None => {
                self.subjects.push(Subject {
                    name: subject.to_string(),
                    versions: Vec::new(),
                    compat: None,
                });
                let last = self.subjects.len() - 1;
                &mut self.subjects[last]
            }
        };
        let version = s.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        s.versions.push(Version {
            version,
            id,
            deleted: false,
        });
        Ok(id)
    }

    /// Answer one request. `path` is the raw path (percent-encoded), `query` the raw query string.
    pub fn handle(&mut self, method: &str, path: &str, query: &str, body: &[u8]) -> Reply {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let q = Query::parse(query);
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let r = match (method, segs.as_slice()) {
            ("GET", []) => Ok(Reply::ok("{}".into())),
            ("GET", ["subjects"]) => Ok(self.list_subjects(q.flag("deleted"))),
            (_, ["subjects"]) => Err(Reply::method_not_allowed()),
            ("POST", ["subjects", s]) => self.lookup(s, body, q.flag("deleted")),
            ("DELETE", ["subjects", s]) => self
                .delete_subject(s, q.flag("permanent"))
                .map_err(Reply::from),
            (_, ["subjects", _]) => Err(Reply::method_not_allowed()),
            ("GET", ["subjects", s, "versions"]) => self
                .list_versions(s, q.flag("deleted"))
                .map_err(Reply::from),
            ("POST", ["subjects", s, "versions"]) => {
                let body = parse_body(body);
                body.and_then(|b| Self::parse_schema(&b))
                    .and_then(|p| self.register_parsed(s, p).map_err(Reply::from))
                    .map(|id| Reply::ok(format!("{{\"id\":{id}}}")))
            }
            (_, ["subjects", _, "versions"]) => Err(Reply::method_not_allowed()),
            ("GET", ["subjects", s, "versions", v]) => self
                .get_version(s, v, q.flag("deleted"))
                .map(|(v, text)| Reply::ok(subject_body(s, &v, &text)))
                .map_err(Reply::from),
            ("DELETE", ["subjects", s, "versions", v]) => self
                .delete_version(s, v, q.flag("permanent"))
                .map_err(Reply::from),
            (_, ["subjects", _, "versions", _]) => Err(Reply::method_not_allowed()),
            ("GET", ["subjects", s, "versions", v, "schema"]) => self
                .get_version(s, v, q.flag("deleted"))
                .map(|(_, text)| Reply::ok(text))
                .map_err(Reply::from),
            ("GET", ["subjects", s, "versions", v, "referencedby"]) => self
                .get_version(s, v, q.flag("deleted"))
                .map(|_| Reply::ok("[]".into()))
                .map_err(Reply::from),
            ("GET", ["mode"]) => Ok(Reply::ok("{\"mode\":\"READWRITE\"}".into())),
            ("GET", ["schemas", "types"]) => {
                Ok(Reply::ok("[\"JSON\",\"AVRO\",\"PROTOBUF\"]".into()))
            }
            ("GET", ["schemas", "ids", id]) => self
                .id_text(id)
                .map(|t| Reply::ok(format!("{{\"schema\":{}}}", Value::from(t))))
                .map_err(Reply::from),
            ("GET", ["schemas", "ids", id, "schema"]) => self
                .id_text(id)
                .map(|t| Reply::ok(t.to_string()))
                .map_err(Reply::from),
            ("GET", ["schemas", "ids", id, "versions"]) => {
                self.id_versions(id).map_err(Reply::from)
            }
            ("GET", ["config"]) => Ok(Reply::json(
                &json!({"compatibilityLevel": self.global.as_str()}),
            )),
            ("PUT", ["config"]) => self.put_config(None, body),
            (_, ["config"]) => Err(Reply::method_not_allowed()),
            ("GET", ["config", s]) => self
                .get_config(s, q.flag("defaultToGlobal"))
                .map_err(Reply::from),
            ("PUT", ["config", s]) => self.put_config(Some(s), body),
            ("DELETE", ["config", s]) => self.delete_config(s).map_err(Reply::from),
            (_, ["config", _]) => Err(Reply::method_not_allowed()),
            ("POST", ["compatibility", "subjects", s, "versions", v]) => {
                self.compatibility(s, Some(v), body)
            }
            ("POST", ["compatibility", "subjects", s, "versions"]) => {
                self.compatibility(s, None, body)
            }
            _ => Err(Reply::not_found_route()),
        };
        r.unwrap_or_else(|e| e)
    }

    fn list_subjects(&self, deleted: bool) -> Reply {
        let names: Vec<&str> = self
            .subjects
            .iter()
            .filter(|s| s.visible(deleted).next().is_some())
            .map(|s| s.name.as_str())
            .collect();
        Reply::json(&json!(names))
    }

    fn visible_subject(&self, s: &str, deleted: bool) -> Result<&Subject, ApiError> {
        self.subject(s)
            .filter(|sub| sub.visible(deleted).next().is_some())
            .ok_or_else(|| subject_not_found(s))
    }

    fn list_versions(&self, s: &str, deleted: bool) -> Result<Reply, ApiError> {
        let sub = self.visible_subject(s, deleted)?;
        let versions: Vec<i32> = sub.visible(deleted).map(|v| v.version).collect();
        Ok(Reply::json(&json!(versions)))
    }

    fn find_version(sub: &Subject, v: VersionRef, deleted: bool) -> Option<&Version> {
        match v {
            VersionRef::Latest => sub.visible(deleted).last(),
            VersionRef::Number(n) => sub.visible(deleted).find(|x| x.version == n),
        }
    }

    fn get_version(&self, s: &str, v: &str, deleted: bool) -> Result<(Version, String), ApiError> {
        let vr = parse_version(v)?;
        let sub = self.visible_subject(s, deleted)?;
        let found = Self::find_version(sub, vr, deleted)
            .ok_or_else(|| version_not_found(i64::from(version_number(vr))))?;
        let text = self.schema_text(found.id).ok_or_else(schema_not_found)?;
        Ok((found.clone(), text.to_string()))
    }

    fn lookup(&self, s: &str, body: &[u8], deleted: bool) -> Result<Reply, Reply> {
        let body = parse_body(body)?;
        let parsed = Self::parse_schema(&body)?;
        let sub = self.visible_subject(s, deleted).map_err(Reply::from)?;
        for v in sub.visible(deleted) {
            if self.parsed_of(v.id).is_some_and(|p| p.same_as(&parsed)) {
                let text = self.schema_text(v.id).unwrap_or_default();
                return Ok(Reply::ok(subject_body(s, v, text)));
            }
        }
        Err(schema_not_found().into())
    }

    fn delete_version(&mut self, s: &str, v: &str, permanent: bool) -> Result<Reply, ApiError> {
        let vr = parse_version(v)?;
        let sub = self
            .subject_mut(s)
            .filter(|x| !x.versions.is_empty())
            .ok_or_else(|| subject_not_found(s))?;
        let idx = match vr {
            VersionRef::Latest => sub.versions.iter().rposition(|x| !x.deleted),
            VersionRef::Number(n) => sub.versions.iter().position(|x| x.version == n),
        }
        .ok_or_else(|| version_not_found(i64::from(version_number(vr))))?;
        let ver = sub.versions[idx].version;
        if !permanent {
            if sub.versions[idx].deleted {
                return Err(api(
                    40406,
                    format!(
                        "Subject '{s}' Version {ver} was soft deleted. Set permanent=true to delete permanently"
                    ),
                ));
            }
            sub.versions[idx].deleted = true;
        } else {
            if !sub.versions[idx].deleted {
                return Err(api(
                    40407,
                    format!(
                        "Subject '{s}' Version {ver} was not deleted first before being permanently deleted"
                    ),
                ));
            }
            sub.versions.remove(idx);
            if sub.versions.is_empty() {
                self.subjects.retain(|x| x.name != s);
            }
        }
        Ok(Reply::ok(ver.to_string()))
    }

    fn delete_subject(&mut self, s: &str, permanent: bool) -> Result<Reply, ApiError> {
        let sub = self
            .subject_mut(s)
            .filter(|x| !x.versions.is_empty())
            .ok_or_else(|| subject_not_found(s))?;
        let live: Vec<i32> = sub.live().map(|v| v.version).collect();
        if !permanent {
            if live.is_empty() {
                return Err(api(
                    40404,
                    format!(
                        "Subject '{s}' was soft deleted.Set permanent=true to delete permanently"
                    ),
                ));
            }
            sub.versions.iter_mut().for_each(|v| v.deleted = true);
            return Ok(Reply::json(&json!(live)));
        }
        if !live.is_empty() {
            return Err(api(
                40405,
                format!("Subject '{s}' was not deleted first before being permanently deleted"),
            ));
        }
        let all: Vec<i32> = sub.versions.iter().map(|v| v.version).collect();
        self.subjects.retain(|x| x.name != s);
        Ok(Reply::json(&json!(all)))
    }

    fn parse_id(id: &str) -> Result<u32, ApiError> {
        id.parse::<u32>().map_err(|_| schema_not_found())
    }

    fn id_text(&self, id: &str) -> Result<&str, ApiError> {
        let id = Self::parse_id(id)?;
        self.schema_text(id).ok_or_else(schema_not_found)
    }

    fn id_versions(&self, id: &str) -> Result<Reply, ApiError> {
        let id = Self::parse_id(id)?;
        self.schema_text(id).ok_or_else(schema_not_found)?;
        let mut pairs: Vec<(&str, i32)> = self
            .subjects
            .iter()
            .flat_map(|s| {
                s.live()
                    .filter(|v| v.id == id)
                    .map(move |v| (s.name.as_str(), v.version))
            })
            .collect();
        pairs.sort();
        let list: Vec<Value> = pairs
            .iter()
            .map(|(s, v)| json!({"subject": s, "version": v}))
            .collect();
        // Keys in the recorded order: subject, then version.
        let body: Vec<String> = list
            .iter()
            .map(|p| {
                format!(
                    "{{\"subject\":{},\"version\":{}}}",
                    p["subject"], p["version"]
                )
            })
            .collect();
        Ok(Reply::ok(format!("[{}]", body.join(","))))
    }

    fn get_config(&self, s: &str, default_to_global: bool) -> Result<Reply, ApiError> {
        let level = match self.subject(s).and_then(|x| x.compat) {
            Some(l) => l,
            None if default_to_global => self.global,
            None => {
                return Err(api(
                    40408,
                    format!("Subject '{s}' does not have subject-level compatibility configured"),
                ));
            }
        };
        Ok(Reply::json(&json!({"compatibilityLevel": level.as_str()})))
    }

    fn put_config(&mut self, s: Option<&str>, body: &[u8]) -> Result<Reply, Reply> {
        let body = parse_body(body)?;
        let raw = body_field(&body, "compatibility")?;
        let level = Compatibility::parse(raw).ok_or_else(|| {
            Reply::error(
                42203,
                "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive",
            )
        })?;
        match s {
            None => self.global = level,
            Some(s) => match self.subject_mut(s) {
                Some(sub) => sub.compat = Some(level),
                None => self.subjects.push(Subject {
                    name: s.to_string(),
                    versions: Vec::new(),
                    compat: Some(level),
                }),
            },
        }
        Ok(Reply::json(&json!({"compatibility": level.as_str()})))
    }

    fn delete_config(&mut self, s: &str) -> Result<Reply, ApiError> {
        let sub = self.subject_mut(s).ok_or_else(|| subject_not_found(s))?;
        let old = sub.compat.take().ok_or_else(|| {
            api(
                40408,
                format!("Subject '{s}' does not have subject-level compatibility configured"),
            )
        })?;
        Ok(Reply::json(&json!({"compatibilityLevel": old.as_str()})))
    }

    fn compatibility(&self, s: &str, v: Option<&str>, body: &[u8]) -> Result<Reply, Reply> {
        let vr = v.map(parse_version).transpose().map_err(Reply::from)?;
        let body = parse_body(body)?;
        let parsed = Self::parse_schema(&body)?;
        let sub = self.visible_subject(s, false).map_err(Reply::from)?;
        let level = self.level(Some(sub));
        let against: Vec<&Version> = match vr {
            Some(vr) => vec![
                Self::find_version(sub, vr, false)
                    .ok_or_else(|| Reply::from(version_not_found(i64::from(version_number(vr)))))?,
            ],
            None => sub.live().collect(),
        };
        let mut messages = Vec::new();
        for v in against {
            if let Some(old) = self.parsed_of(v.id) {
                messages.extend(level.check(&parsed, old));
            }
        }
        Ok(if messages.is_empty() {
            Reply::ok("{\"is_compatible\":true}".into())
        } else {
            Reply::ok(format!(
                "{{\"is_compatible\":false,\"messages\":{}}}",
                json!(messages)
            ))
        })
    }
}

fn version_number(v: VersionRef) -> i32 {
    match v {
        VersionRef::Latest => -1,
        VersionRef::Number(n) => n,
    }
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(p), String::new()),
                })
                .collect(),
        )
    }
    fn flag(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k == name && v.eq_ignore_ascii_case("true"))
    }
}

/// Decode `%XX` escapes (and nothing else) in a path segment or query value.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Shared {
    state: Mutex<RegistryState>,
    stop: AtomicBool,
    requests: AtomicUsize,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running test registry on a loopback port; stops on drop.
pub struct TestRegistry {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl TestRegistry {
    /// Start on `127.0.0.1:<free port>`. Panics if loopback cannot be bound (tests only).
    pub fn start() -> TestRegistry {
        match TestRegistry::bind("127.0.0.1:0") {
            Ok(r) => r,
            Err(e) => panic!("cannot bind a loopback port for the test registry: {e}"),
        }
    }

    /// Start on `addr` (e.g. `127.0.0.1:8081`).
    pub fn bind(addr: &str) -> std::io::Result<TestRegistry> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(RegistryState::default()),
            stop: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name("test-registry".into())
            .spawn(move || accept_loop(listener, sh))?;
        tracing::debug!(%addr, "test registry listening");
        Ok(TestRegistry {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many HTTP requests it has answered.
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Register a schema directly (no HTTP), as `POST /subjects/{subject}/versions` would.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, ApiError> {
        self.shared.state().register(subject, schema)
    }

    /// Register `.avsc` files (a directory expands to its files, sorted by subject then `-vN`
    /// version) under the subject named by each file (see [`subject_for_file`]); `(subject, id)`s.
    pub fn preload(&self, path: &Path) -> Result<Vec<(String, u32)>, String> {
        let mut out = Vec::new();
        for (subject, file) in avsc_files(path)? {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let id = self
                .register(&subject, &text)
                .map_err(|e| format!("{}: {} {}", file.display(), e.code, e.message))?;
            out.push((subject, id));
        }
        Ok(out)
    }

    /// Stop listening and close every open connection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, c) in conns {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The subject a schema file registers under: `sensor-data.avsc` → `sensor-data-value`, and a
/// `-v<N>` suffix names version N of the same subject: `sensor-data-v2.avsc` → `sensor-data-value`.
/// Returns `(base name, version)`.
pub fn file_subject_base(file: &Path) -> Option<(String, u32)> {
    let stem = file.file_stem()?.to_str()?;
    if let Some((base, v)) = stem.rsplit_once("-v")
        && let Ok(n) = v.parse::<u32>()
        && !base.is_empty()
    {
        return Some((base.to_string(), n));
    }
    Some((stem.to_string(), 1))
}

/// `<base>-value` for a schema file (see [`file_subject_base`]).
pub fn subject_for_file(file: &Path) -> Option<String> {
    file_subject_base(file).map(|(b, _)| format!("{b}-value"))
}

/// `.avsc` files under `path` (or `path` itself), ordered by (base name, version), with their subjects.
pub fn avsc_files(path: &Path) -> Result<Vec<(String, std::path::PathBuf)>, String> {
    let mut files = Vec::new();
    if path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in rd {
            let p = entry
                .map_err(|e| format!("{}: {e}", path.display()))?
                .path();
            if p.extension().and_then(|e| e.to_str()) == Some("avsc") && p.is_file() {
                files.push(p);
            }
        }
    } else {
        files.push(path.to_path_buf());
    }
    let mut keyed = Vec::new();
    for f in files {
        let (base, v) = file_subject_base(&f)
            .ok_or_else(|| format!("{}: not a schema file name", f.display()))?;
        keyed.push(((base.clone(), v), (format!("{base}-value"), f)));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, x)| x).collect())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if shared.conns.lock().unwrap_or_else(|p| p.into_inner()).len() >= MAX_CONNECTIONS {
            tracing::warn!("test registry: too many open connections; refusing one");
            continue; // dropping the stream closes it
        }
        let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            shared
                .conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, clone);
        }
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("test-registry-conn".into())
            .spawn(move || {
                serve_connection(stream, &sh);
                sh.conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            });
        if spawned.is_err() {
            shared
                .conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }
}

/// One parsed request head.
struct Head {
    method: String,
    target: String,
    content_length: usize,
    chunked: bool,
    expect_continue: bool,
    close: bool,
}

enum HeadError {
    Closed,
    Bad(u16, &'static str),
}

fn read_head(reader: &mut BufReader<TcpStream>) -> Result<Head, HeadError> {
    let mut limited = reader.take(MAX_HEAD_BYTES);
    let mut line = Vec::new();
    let mut read_line = |buf: &mut Vec<u8>| -> Result<(), HeadError> {
        buf.clear();
        match limited.read_until(b'\n', buf) {
            Ok(0) => Err(HeadError::Closed),
            Ok(_) if !buf.ends_with(b"\n") => {
                Err(HeadError::Bad(431, "Request Header Fields Too Large"))
            }
            Ok(_) => Ok(()),
            Err(_) => Err(HeadError::Closed),
        }
    };
    // Skip blank lines between requests.
    loop {
        read_line(&mut line)?;
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(&line).trim_end().to_string();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Bad(400, "Bad Request"));
    };
    let mut head = Head {
        method: method.to_string(),
        target: target.to_string(),
        content_length: 0,
        chunked: false,
        expect_continue: false,
        close: version == "HTTP/1.0",
    };
    let mut count = 0;
    loop {
        read_line(&mut line)?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(HeadError::Bad(431, "Request Header Fields Too Large"));
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(HeadError::Bad(400, "Bad Request"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                head.content_length = value
                    .parse()
                    .map_err(|_| HeadError::Bad(400, "Bad Request"))?;
                if head.content_length > MAX_BODY_BYTES {
                    return Err(HeadError::Bad(413, "Payload Too Large"));
                }
            }
            "transfer-encoding" => {
                if value.eq_ignore_ascii_case("chunked") {
                    head.chunked = true;
                } else {
                    return Err(HeadError::Bad(501, "Not Implemented"));
                }
            }
            "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            "connection" => {
                if value.eq_ignore_ascii_case("close") {
                    head.close = true;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    head.close = false;
                }
            }
            _ => {}
        }
    }
    Ok(head)
}

/// A `Transfer-Encoding: chunked` body, at most [`MAX_BODY_BYTES`]; `Err(status)` when malformed.
fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, u16> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(1024)
            .read_until(b'\n', &mut line)
            .map_err(|_| 400u16)?;
        if n == 0 || !line.ends_with(b"\n") {
            return Err(400);
        }
        let text = String::from_utf8_lossy(&line);
        let size_hex = text.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| 400u16)?;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                line.clear();
                let n = reader
                    .by_ref()
                    .take(8 * 1024)
                    .read_until(b'\n', &mut line)
                    .map_err(|_| 400u16)?;
                if n == 0 || line.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY_BYTES {
            return Err(413);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(|_| 400u16)?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).map_err(|_| 400u16)?;
        if &crlf != b"\r\n" {
            return Err(400);
        }
    }
}

fn write_reply(stream: &mut TcpStream, reply: &Reply, close: bool) -> std::io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        501 => "Not Implemented",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: {}\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len(),
        if close { "close" } else { "keep-alive" }
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(reply.body.as_bytes())?;
    stream.flush()
}

/// Close after an error answer without resetting the connection: stop writing, then drain (a
/// bounded amount of) what the client is still sending, so it can read the answer.
fn linger_close(reader: &mut BufReader<TcpStream>, writer: &TcpStream) {
    let _ = writer.shutdown(Shutdown::Write);
    let _ = writer.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = std::io::copy(&mut reader.by_ref().take(1024 * 1024), &mut std::io::sink());
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let head = match read_head(&mut reader) {
            Ok(h) => h,
            Err(HeadError::Closed) => return,
            Err(HeadError::Bad(status, text)) => {
                let reply = Reply {
                    status,
                    content_type: PLAIN_JSON,
                    body: Value::from(text).to_string(),
                };
                let _ = write_reply(&mut writer, &reply, true);
                linger_close(&mut reader, &writer);
                return;
            }
        };
        if head.expect_continue && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
        let body = if head.chunked {
            match read_chunked(&mut reader) {
                Ok(b) => b,
                Err(status) => {
                    let reply = Reply {
                        status,
                        content_type: PLAIN_JSON,
                        body: "\"Bad Request\"".into(),
                    };
                    let _ = write_reply(&mut writer, &reply, true);
                    linger_close(&mut reader, &writer);
                    return;
                }
            }
        } else {
            // Grows as bytes arrive: a large Content-Length alone allocates nothing.
            let mut body = Vec::new();
            match reader
                .by_ref()
                .take(head.content_length as u64)
                .read_to_end(&mut body)
            {
                Ok(n) if n == head.content_length => body,
                _ => return,
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (path, query) = head
            .target
            .split_once('?')
            .unwrap_or((head.target.as_str(), ""));
        let reply = shared.state().handle(&head.method, path, query, &body);
        shared.requests.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(method = %head.method, path, status = reply.status, "test registry request");
        if write_reply(&mut writer, &reply, head.close).is_err() || head.close {
            return;
        }
    }
}
