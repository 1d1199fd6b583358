//! Forwarder configuration: TOML file, `AVRO_EDGE_*` environment, flags, in that order of precedence
//! (flags > env > file > defaults), validated into typed settings with typed errors.
//!
//! Must not start anything: it only reads and validates settings. Must never print or log the SASL password
//! (it is held in a [`Secret`] whose `Debug`/`Display` are redacted).
//!
//! Every key has a dotted name (`kafka.linger_ms`, `spool.dir`, `dead_letter`, ...). The environment
//! variable is `AVRO_EDGE_` + the name upper-cased with `.` → `_` (`AVRO_EDGE_SPOOL_DIR`); the flag form is
//! `--set key=value` (and the named flags of `avro-edge forward`). `AVRO_EDGE_BROKERS` is accepted as an alias
//! of `AVRO_EDGE_KAFKA_BROKERS`. Inputs come from `[[input]]` tables in the file; the keys `input.type`,
//! `input.path`, `input.bind`, `input.start_at`, `input.name` from env/flags replace them by one input, and
//! `input.topic`, `input.subject`, `input.key_field` from env/flags apply to every input.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::error::ErrorKind;
use crate::spool::{FsyncPolicy, SpoolOptions, WhenFull};

/// Everything that can be wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("unknown config key '{key}' (from {origin})")]
    UnknownKey { key: String, origin: String },
    #[error("config key '{key}': {reason}")]
    Invalid { key: String, reason: String },
    #[error("config key '{key}' is required")]
    Missing { key: String },
}

impl ErrorKind for ConfigError {
    fn kind(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config-read",
            ConfigError::Parse { .. } => "config-parse",
            ConfigError::UnknownKey { .. } => "config-unknown-key",
            ConfigError::Invalid { .. } => "config-invalid",
            ConfigError::Missing { .. } => "config-missing",
        }
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// A secret string: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// NDJSON on standard input; its end means: drain and exit.
    Stdin,
    /// Follow a file like `tail -F` (survives rotation and truncation).
    File { path: PathBuf, start_at: StartAt },
    /// One NDJSON record per datagram.
    Udp { bind: SocketAddr },
}

/// Where a followed file is first read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

/// One input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputConfig {
    pub name: String,
    pub kind: InputKind,
    /// Registry subject whose latest schema encodes the records.
    pub subject: String,
    pub topic: String,
    /// Record field whose value becomes the Kafka key (so one sensor's readings stay on one partition).
    pub key_field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    All,
    Leader,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// Kafka producer settings (mapped onto `crate::producer::ProducerConfig` by the forward command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub brokers: Vec<String>,
    pub acks: Acks,
    pub compression: Compression,
    pub linger: Duration,
    /// Producer batch size in bytes (`ProducerConfig::batch_size`).
    pub batch_size: usize,
    /// Records per `send_batch` call the forwarder's sender makes (and per acknowledged-cursor write).
    pub batch_records: usize,
    pub client_id: String,
    pub request_timeout: Duration,
    /// Bound on one record's send, from hand-over to acknowledgement (`ProducerConfig::delivery_timeout`).
    pub delivery_timeout: Duration,
    pub sasl: Option<Sasl>,
    /// Create an unknown topic with this many partitions (replication 1); `None`: the broker's
    /// auto-creation, or an error when it has none.
    pub create_partitions: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    pub urls: Vec<String>,
    pub schema_cache: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Loopback address for Prometheus `/metrics`; none = no HTTP.
    pub listen: Option<SocketAddr>,
    /// Period of the one-line summary in the log.
    pub summary_interval: Duration,
}

/// The validated forwarder configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub inputs: Vec<InputConfig>,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    pub spool_dir: PathBuf,
    pub spool: SpoolOptions,
    pub dead_letter: PathBuf,
    /// Past this size the dead-letter file moves to `<path>.1` (so at most twice this is kept).
    pub dead_letter_max_bytes: u64,
    pub metrics: MetricsSettings,
    pub drain_timeout: Duration,
    /// Longer input lines are dead-lettered (`line-too-long`) without being held in memory.
    pub max_line_bytes: usize,
}

pub const DEFAULT_SUBJECT: &str = "sensor-data-value";
pub const DEFAULT_TOPIC: &str = "sensor-data";
pub const DEFAULT_KEY_FIELD: &str = "sensorId";

/// Every key settable from env and flags, with a one-line description (the sample `forwarder.toml` has more).
pub const KEYS: &[(&str, &str)] = &[
    (
        "input.type",
        "stdin | file | udp (replaces the file's [[input]] list by one input)",
    ),
    ("input.name", "name of that input (default: its type)"),
    ("input.path", "file to follow (type = file)"),
    (
        "input.start_at",
        "beginning | end (type = file, default end)",
    ),
    ("input.bind", "UDP bind address (type = udp)"),
    (
        "input.subject",
        "subject for every input (default sensor-data-value)",
    ),
    ("input.topic", "topic for every input (default sensor-data)"),
    (
        "input.key_field",
        "record field used as key for every input (default sensorId; empty = no key)",
    ),
    ("kafka.brokers", "comma-separated bootstrap brokers"),
    ("kafka.acks", "all | 1 | 0 (default all)"),
    ("kafka.compression", "none | gzip | snappy (default none)"),
    (
        "kafka.linger_ms",
        "producer linger; also how long the sender lets a partial batch fill (default 5)",
    ),
    (
        "kafka.batch_size",
        "producer batch size in bytes (default 256KiB)",
    ),
    (
        "kafka.batch_records",
        "records per batch the sender hands to the producer (default 500)",
    ),
    (
        "kafka.delivery_timeout_ms",
        "bound on one record's delivery (default 60000)",
    ),
    ("kafka.client_id", "client id (default avro-edge)"),
    (
        "kafka.create_partitions",
        "create an unknown topic with this many partitions (default: off)",
    ),
    (
        "kafka.request_timeout_ms",
        "request timeout (default 30000)",
    ),
    (
        "kafka.sasl_mechanism",
        "PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512",
    ),
    ("kafka.sasl_username", "SASL user"),
    ("kafka.sasl_password", "SASL password (never logged)"),
    ("registry.urls", "comma-separated registry URLs"),
    ("registry.schema_cache", "offline schema cache directory"),
    (
        "spool.dir",
        "spool directory (default /var/lib/avro-edge/spool)",
    ),
    (
        "spool.fsync",
        "always | interval | never (default interval)",
    ),
    (
        "spool.fsync_interval_ms",
        "fsync period for interval (default 100)",
    ),
    ("spool.max_bytes", "spool size bound, e.g. 256MiB (default)"),
    ("spool.when_full", "block | drop_oldest (default block)"),
    (
        "spool.segment_bytes",
        "segment size (default max_bytes/8, 64KiB..4MiB)",
    ),
    (
        "dead_letter",
        "dead-letter file (default /var/lib/avro-edge/dead-letter.ndjson)",
    ),
    (
        "dead_letter_max_bytes",
        "dead-letter size before it moves to <path>.1 (default 64MiB)",
    ),
    ("drain_timeout_ms", "drain time on stop (default 10000)"),
    (
        "max_line_bytes",
        "longest accepted input line (default 1MiB)",
    ),
    (
        "metrics.listen",
        "loopback address for Prometheus /metrics (default off)",
    ),
    (
        "metrics.summary_interval_s",
        "period of the log summary (default 30)",
    ),
];

/// The environment variable for a key.
pub fn env_name(key: &str) -> String {
    format!("AVRO_EDGE_{}", key.to_ascii_uppercase().replace('.', "_"))
}

/// Settings gathered from one layer (file, env or flags) before validation.
#[derive(Debug, Default, Clone)]
struct Layer {
    /// Dotted key → value, for every key but the file's `[[input]]` list.
    values: Table,
    inputs: Option<Vec<Value>>,
}

impl Config {
    /// Load: the optional TOML file, then `env` (pass `std::env::vars()`), then `flags` (key, value) pairs.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut merged = match file {
            Some(p) => file_layer(p)?,
            None => Layer::default(),
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        // The alias first, so the full name wins when both are set.
        for (k, v) in &env {
            if k == "AVRO_EDGE_BROKERS" {
                merged
                    .values
                    .insert("kafka.brokers".into(), Value::String(v.clone()));
            }
        }
        for (k, v) in &env {
            if let Some((key, _)) = KEYS.iter().find(|(key, _)| env_name(key) == *k) {
                merged
                    .values
                    .insert((*key).into(), Value::String(v.clone()));
            }
        }
        for (k, v) in flags {
            if !KEYS.iter().any(|(key, _)| key == k) {
                return Err(ConfigError::UnknownKey {
                    key: k.clone(),
                    origin: "flags".into(),
                });
            }
            merged.values.insert(k.clone(), Value::String(v.clone()));
        }
        validate(merged)
    }

    /// The spool options from this configuration.
    pub fn spool_options(&self) -> SpoolOptions {
        self.spool.clone()
    }
}

/// Parse `key=value` (the `--set` flag).
pub fn parse_set(s: &str) -> Result<(String, String), ConfigError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| invalid(s, "expected key=value"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
    let mut layer = Layer::default();
    let origin = path.display().to_string();
    for (k, v) in table {
        match (k.as_str(), v) {
            ("input", Value::Array(a)) => layer.inputs = Some(a),
            ("input", _) => return Err(invalid("input", "must be an array of tables ([[input]])")),
            (section @ ("kafka" | "registry" | "spool" | "metrics"), Value::Table(t)) => {
                for (k2, v2) in t {
                    let key = format!("{section}.{k2}");
                    if !KEYS.iter().any(|(known, _)| *known == key) {
                        return Err(ConfigError::UnknownKey { key, origin });
                    }
                    layer.values.insert(key, v2);
                }
            }
            (key, v) => {
                if key.contains('.') || !KEYS.iter().any(|(known, _)| *known == key) {
                    return Err(ConfigError::UnknownKey {
                        key: key.into(),
                        origin,
                    });
                }
                layer.values.insert(key.into(), v);
            }
        }
    }
    Ok(layer)
}

fn get_str(t: &Table, key: &str) -> Result<Option<String>, ConfigError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            key,
            format!("expected a string, got {}", other.type_str()),
        )),
    }
}

fn get_u64(t: &Table, key: &str) -> Result<Option<u64>, ConfigError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::Integer(i)) => u64::try_from(*i)
            .map(Some)
            .map_err(|_| invalid(key, "must not be negative")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| invalid(key, format!("'{s}' is not a whole number"))),
        Some(other) => Err(invalid(
            key,
            format!("expected a number, got {}", other.type_str()),
        )),
    }
}

/// Sizes: a number of bytes, or a string with a unit: `64KiB`, `256MiB`, `1GiB`, `500kB`, `10MB`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn get_size(t: &Table, key: &str) -> Result<Option<u64>, ConfigError> {
    match t.get(key) {
        Some(Value::String(s)) => parse_size(s)
            .map(Some)
            .ok_or_else(|| invalid(key, format!("'{s}' is not a size (e.g. 256MiB)"))),
        _ => get_u64(t, key),
    }
}

fn get_list(t: &Table, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        )),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| invalid(key, "expected a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(invalid(
            key,
            format!("expected a list, got {}", other.type_str()),
        )),
    }
}

fn parse_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .map_err(|_| invalid(key, format!("'{s}' is not an address like 127.0.0.1:9464")))
}

fn input_from(t: &Table, prefix: &str, index: usize) -> Result<InputConfig, ConfigError> {
    let k = |name: &str| format!("{prefix}{name}");
    let kind_name = get_str(t, &k("type"))?.unwrap_or_else(|| "stdin".into());
    let kind = match kind_name.as_str() {
        "stdin" => InputKind::Stdin,
        "file" => {
            let path = get_str(t, &k("path"))?.ok_or(ConfigError::Missing { key: k("path") })?;
            let start_at = match get_str(t, &k("start_at"))?.as_deref() {
                None | Some("end") => StartAt::End,
                Some("beginning") => StartAt::Beginning,
                Some(o) => {
                    return Err(invalid(
                        &k("start_at"),
                        format!("'{o}': expected beginning or end"),
                    ));
                }
            };
            InputKind::File {
                path: path.into(),
                start_at,
            }
        }
        "udp" => {
            let bind = get_str(t, &k("bind"))?.ok_or(ConfigError::Missing { key: k("bind") })?;
            InputKind::Udp {
                bind: parse_addr(&k("bind"), &bind)?,
            }
        }
        other => {
            return Err(invalid(
                &k("type"),
                format!("'{other}': expected stdin, file or udp"),
            ));
        }
    };
    let key_field = get_str(t, &k("key_field"))?.unwrap_or_else(|| DEFAULT_KEY_FIELD.into());
    Ok(InputConfig {
        name: get_str(t, &k("name"))?.unwrap_or_else(|| {
            if index == 0 {
                kind_name.clone()
            } else {
                format!("{kind_name}-{index}")
            }
        }),
        kind,
        subject: get_str(t, &k("subject"))?.unwrap_or_else(|| DEFAULT_SUBJECT.into()),
        topic: get_str(t, &k("topic"))?.unwrap_or_else(|| DEFAULT_TOPIC.into()),
        key_field: (!key_field.is_empty()).then_some(key_field),
    })
}

const INPUT_KEYS: &[&str] = &[
    "type",
    "name",
    "path",
    "start_at",
    "bind",
    "subject",
    "topic",
    "key_field",
];

fn validate(layer: Layer) -> Result<Config, ConfigError> {
    let t = &layer.values;
    // Inputs.
    let replaces = [
        "input.type",
        "input.path",
        "input.bind",
        "input.start_at",
        "input.name",
    ]
    .iter()
    .any(|k| t.contains_key(*k));
    let mut inputs = match (&layer.inputs, replaces) {
        (Some(list), false) => {
            let mut v = Vec::new();
            for (i, item) in list.iter().enumerate() {
                let Value::Table(tbl) = item else {
                    return Err(invalid("input", "each [[input]] must be a table"));
                };
                if let Some(bad) = tbl.keys().find(|k| !INPUT_KEYS.contains(&k.as_str())) {
                    return Err(ConfigError::UnknownKey {
                        key: format!("input.{bad}"),
                        origin: "config file".into(),
                    });
                }
                v.push(input_from(tbl, "", i)?);
            }
            v
        }
        _ => vec![input_from(t, "input.", 0)?],
    };
    for inp in &mut inputs {
        if let Some(s) = get_str(t, "input.subject")? {
            inp.subject = s;
        }
        if let Some(s) = get_str(t, "input.topic")? {
            inp.topic = s;
        }
        if let Some(s) = get_str(t, "input.key_field")? {
            inp.key_field = (!s.is_empty()).then_some(s);
        }
    }
    if inputs.is_empty() {
        return Err(invalid("input", "at least one input is needed"));
    }
    if inputs.iter().filter(|i| i.kind == InputKind::Stdin).count() > 1 {
        return Err(invalid("input", "stdin can be read by one input only"));
    }
    for (i, a) in inputs.iter().enumerate() {
        if inputs.iter().skip(i + 1).any(|b| b.name == a.name) {
            return Err(invalid(
                "input.name",
                format!("input name '{}' is used twice", a.name),
            ));
        }
        if a.topic.is_empty() || a.subject.is_empty() {
            return Err(invalid(
                "input.topic",
                format!("input '{}' needs a topic and a subject", a.name),
            ));
        }
    }
    // Kafka.
    let brokers = get_list(t, "kafka.brokers")?.unwrap_or_default();
    let acks = match get_str(t, "kafka.acks")?.as_deref().unwrap_or("all") {
        "all" | "-1" => Acks::All,
        "1" | "leader" => Acks::Leader,
        "0" | "none" => Acks::None,
        o => {
            return Err(invalid(
                "kafka.acks",
                format!("'{o}': expected all, 1 or 0"),
            ));
        }
    };
    let compression = match get_str(t, "kafka.compression")?
        .as_deref()
        .unwrap_or("none")
    {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        o => {
            return Err(invalid(
                "kafka.compression",
                format!("'{o}': expected none, gzip or snappy"),
            ));
        }
    };
    let batch_size = get_size(t, "kafka.batch_size")?.unwrap_or(256 << 10);
    if !(1024..=(64 << 20)).contains(&batch_size) {
        return Err(invalid(
            "kafka.batch_size",
            "must be between 1KiB and 64MiB",
        ));
    }
    let batch_records = get_u64(t, "kafka.batch_records")?.unwrap_or(500);
    if !(1..=100_000).contains(&batch_records) {
        return Err(invalid("kafka.batch_records", "must be 1..=100000"));
    }
    let sasl = match (
        get_str(t, "kafka.sasl_username")?,
        get_str(t, "kafka.sasl_password")?,
    ) {
        (None, None) => None,
        (Some(username), Some(password)) => {
            let mechanism = match get_str(t, "kafka.sasl_mechanism")?
                .as_deref()
                .unwrap_or("PLAIN")
            {
                "PLAIN" | "plain" => SaslMechanism::Plain,
                "SCRAM-SHA-256" | "scram-sha-256" => SaslMechanism::ScramSha256,
                "SCRAM-SHA-512" | "scram-sha-512" => SaslMechanism::ScramSha512,
                o => {
                    return Err(invalid(
                        "kafka.sasl_mechanism",
                        format!("'{o}': expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
                    ));
                }
            };
            Some(Sasl {
                mechanism,
                username,
                password: Secret(password),
            })
        }
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                key: "kafka.sasl_password".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                key: "kafka.sasl_username".into(),
            });
        }
    };
    let create_partitions = match get_u64(t, "kafka.create_partitions")? {
        None => None,
        Some(n @ 1..=10_000) => Some(n as i32),
        Some(_) => return Err(invalid("kafka.create_partitions", "must be 1..=10000")),
    };
    let kafka = KafkaSettings {
        brokers,
        acks,
        compression,
        linger: Duration::from_millis(get_u64(t, "kafka.linger_ms")?.unwrap_or(5)),
        batch_size: batch_size as usize,
        batch_records: batch_records as usize,
        client_id: get_str(t, "kafka.client_id")?.unwrap_or_else(|| "avro-edge".into()),
        request_timeout: Duration::from_millis(
            get_u64(t, "kafka.request_timeout_ms")?.unwrap_or(30_000),
        ),
        delivery_timeout: Duration::from_millis(
            get_u64(t, "kafka.delivery_timeout_ms")?.unwrap_or(60_000),
        ),
        sasl,
        create_partitions,
    };
    let registry = RegistrySettings {
        urls: get_list(t, "registry.urls")?.unwrap_or_default(),
        schema_cache: get_str(t, "registry.schema_cache")?.map(PathBuf::from),
    };
    // Spool.
    let interval = get_u64(t, "spool.fsync_interval_ms")?.unwrap_or(100);
    let fsync = match get_str(t, "spool.fsync")?.as_deref().unwrap_or("interval") {
        "always" => FsyncPolicy::Always,
        "never" => FsyncPolicy::Never,
        "interval" if interval > 0 => FsyncPolicy::Interval(Duration::from_millis(interval)),
        "interval" => return Err(invalid("spool.fsync_interval_ms", "must be above 0")),
        o => {
            return Err(invalid(
                "spool.fsync",
                format!("'{o}': expected always, interval or never"),
            ));
        }
    };
    let when_full = match get_str(t, "spool.when_full")?.as_deref().unwrap_or("block") {
        "block" => WhenFull::Block,
        "drop_oldest" => WhenFull::DropOldest,
        o => {
            return Err(invalid(
                "spool.when_full",
                format!("'{o}': expected block or drop_oldest"),
            ));
        }
    };
    let max_bytes = get_size(t, "spool.max_bytes")?.unwrap_or(256 << 20);
    if max_bytes < 64 << 10 {
        return Err(invalid("spool.max_bytes", "must be at least 64KiB"));
    }
    let segment_bytes = get_size(t, "spool.segment_bytes")?;
    if let Some(s) = segment_bytes
        && (s < 4096 || s > max_bytes / 4)
    {
        return Err(invalid(
            "spool.segment_bytes",
            "must be between 4KiB and max_bytes / 4",
        ));
    }
    let spool = SpoolOptions {
        fsync,
        max_bytes,
        when_full,
        segment_bytes,
    };
    // Metrics.
    let listen = match get_str(t, "metrics.listen")? {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) => {
            let a = parse_addr("metrics.listen", &s)?;
            if !a.ip().is_loopback() {
                return Err(invalid(
                    "metrics.listen",
                    format!("{a} is not a loopback address (metrics are served on loopback only)"),
                ));
            }
            Some(a)
        }
    };
    let summary = get_u64(t, "metrics.summary_interval_s")?.unwrap_or(30);
    if summary == 0 {
        return Err(invalid("metrics.summary_interval_s", "must be above 0"));
    }
    let dead_letter_max_bytes = get_size(t, "dead_letter_max_bytes")?.unwrap_or(64 << 20);
    if dead_letter_max_bytes < 4096 {
        return Err(invalid("dead_letter_max_bytes", "must be at least 4KiB"));
    }
    let max_line_bytes = get_size(t, "max_line_bytes")?.unwrap_or(1 << 20);
    if !(1024..=(64 << 20)).contains(&max_line_bytes) {
        return Err(invalid("max_line_bytes", "must be between 1KiB and 64MiB"));
    }
    Ok(Config {
        inputs,
        kafka,
        registry,
        spool_dir: get_str(t, "spool.dir")?
            .map_or_else(|| PathBuf::from("/var/lib/avro-edge/spool"), PathBuf::from),
        spool,
        dead_letter: get_str(t, "dead_letter")?.map_or_else(
            || PathBuf::from("/var/lib/avro-edge/dead-letter.ndjson"),
            PathBuf::from,
        ),
        dead_letter_max_bytes,
        metrics: MetricsSettings {
            listen,
            summary_interval: Duration::from_secs(summary),
        },
        drain_timeout: Duration::from_millis(get_u64(t, "drain_timeout_ms")?.unwrap_or(10_000)),
        max_line_bytes: max_line_bytes as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Some(256 << 20));
        assert_eq!(parse_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
    }
}
