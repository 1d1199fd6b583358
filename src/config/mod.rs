//! Forwarder configuration: TOML file, `AVRO_EDGE_*` environment, flags, in that order of precedence
//! (flags > env > file > defaults), validated into typed settings with typed errors.
//!
//! Must not start anything: it only reads and validates settings. Must never print or log the SASL password
//! (it is held in a [`Secret`] whose `Debug`/`Display` are redacted).
//!
//! Every key has a dotted name (`kafka.linger_ms`, `spool.dir`, `dead_letter`, ...; [`KEYS`]). The environment
//! variable is `AVRO_EDGE_` + the name upper-cased with `.` → `_` (`AVRO_EDGE_SPOOL_DIR`); the flag form is
//! `--set key=value` (and the named flags of `avro-edge forward`, and `-X name=value` for `kafka.name`).
//! `AVRO_EDGE_BROKERS` is accepted as an alias of `AVRO_EDGE_KAFKA_BROKERS`. Inputs come from `[[input]]`
//! tables in the file; the keys `input.type`, `input.path`, `input.bind`, `input.start_at`, `input.name`
//! from env/flags replace them by one input, and `input.subject`, `input.topic`, `input.key_field` from
//! env/flags apply to every input.
//!
//! The Kafka keys also answer to librdkafka's property names ([`ALIASES`]: `bootstrap.servers`,
//! `linger.ms`, `sasl.mechanisms`, ...), so a client's properties can be pasted under `[kafka]`. One layer
//! giving a key under two names with two values is an error; so is an unknown name, with the closest
//! known one suggested. Acks, compression and the SASL mechanism are the client's own types
//! ([`Acks`], [`Compression`], [`Mechanism`]), parsed by their `FromStr`.
//!
//! Layout: `keys` (the vocabulary), `layers` (file, env, flags), `values` (typed reads),
//! `validate` (one function per section and concept).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ErrorKind, Kind};
use crate::kafka::sasl::SaslConfig;
use crate::spool::SpoolOptions;

mod keys;
mod layers;
mod validate;
mod values;

/// The client's setting types are the configuration's: one parser each (`FromStr`), used by the
/// file, the environment and the flags alike.
use crate::kafka::producer::{Acks, Compression};
use crate::kafka::sasl::Mechanism;
pub use keys::{ALIASES, KEYS, env_name};
pub use values::parse_size;

/// Everything that can be wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A name that is no key nor alias; `suggestion` is the closest known name, if any is close.
    #[error(
        "unknown config key '{key}' (from {origin}){}",
        did_you_mean(suggestion)
    )]
    UnknownKey {
        /// The name as given.
        key: String,
        /// Where it came from: the file, an environment variable, or a flag.
        origin: String,
        /// The closest known key or alias, if one is close.
        suggestion: Option<String>,
    },
    /// A key has a value that does not parse or is out of range.
    #[error("config key '{key}': {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A required key is not set (e.g. `input.path` for a file input).
    #[error("config key '{key}' is required")]
    Missing {
        /// The key.
        key: String,
    },
}

impl ErrorKind for ConfigError {
    fn kind(&self) -> Kind {
        match self {
            ConfigError::Read { .. } => Kind::ConfigRead,
            ConfigError::Parse { .. } => Kind::ConfigParse,
            ConfigError::UnknownKey { .. } => Kind::ConfigUnknownKey,
            ConfigError::Invalid { .. } => Kind::ConfigInvalid,
            ConfigError::Missing { .. } => Kind::ConfigMissing,
        }
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" — did you mean '{s}'?"))
        .unwrap_or_default()
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
    /// Wrap a secret value.
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
    File {
        /// The file to follow.
        path: PathBuf,
        /// Where to start reading it the first time (`input.start_at`, default end).
        start_at: StartAt,
    },
    /// One NDJSON record per datagram.
    Udp {
        /// Local address to receive datagrams on (`input.bind`).
        bind: SocketAddr,
    },
}

/// Where a followed file is first read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// From its first byte: forward what the file already holds.
    Beginning,
    /// From its current end: only lines appended from now on (the default).
    End,
}

/// One input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputConfig {
    /// Name in logs, metrics and dead-letter entries (default: the input's type, then `-1`, `-2`, ...).
    pub name: String,
    /// Where the records come from.
    pub kind: InputKind,
    /// Registry subject whose latest schema encodes the records.
    pub subject: String,
    /// Kafka topic the records go to (default `sensor-data`).
    pub topic: String,
    /// Record field whose value becomes the Kafka key (so one sensor's readings stay on one partition).
    pub key_field: Option<String>,
}

/// SASL credentials for the brokers (`kafka.sasl_*`, librdkafka's `sasl.mechanism`,
/// `sasl.username`, `sasl.password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism (default `PLAIN`).
    pub mechanism: Mechanism,
    /// The user name.
    pub username: String,
    /// The password, never logged.
    pub password: Secret,
}

/// How the client talks to the brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication.
    #[default]
    Plaintext,
    /// Plain TCP with SASL authentication.
    SaslPlaintext,
    /// TLS (feature `tls`).
    Ssl,
    /// TLS with SASL authentication (feature `tls`).
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether the connection is TLS (`SSL`, `SASL_SSL`).
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    /// Whether the client authenticates with SASL (`SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `PLAINTEXT`, `SASL_PLAINTEXT`, `SSL`, `SASL_SSL`, any case; the error is the reason.
impl std::str::FromStr for SecurityProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<SecurityProtocol, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(format!(
                "'{s}': expected PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL"
            )),
        }
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        })
    }
}

/// Kafka client settings (mapped onto a `ProducerConfig` by `forward::plug::producer_config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port` (`kafka.brokers`, librdkafka's `bootstrap.servers`).
    pub brokers: Vec<String>,
    /// Acknowledgements the producer waits for (`acks`, default all).
    pub acks: Acks,
    /// Batch compression (`compression.type`, default none).
    pub compression: Compression,
    /// How long a partial batch may wait to fill (`linger.ms`, default 5 ms).
    pub linger: Duration,
    /// Producer batch size in bytes (`ProducerConfig::batch_size`).
    pub batch_size: usize,
    /// Records per `send_batch` call the forwarder's sender makes (and per acknowledged-cursor write).
    pub batch_records: usize,
    /// Client id sent to the brokers (`client.id`, default `avro-edge`).
    pub client_id: String,
    /// Bound on one request to a broker (`request.timeout.ms`, default 30 s).
    pub request_timeout: Duration,
    /// Bound on one record's send, from hand-over to acknowledgement (`ProducerConfig::delivery_timeout`).
    pub delivery_timeout: Duration,
    /// SASL credentials, when the brokers require them.
    pub sasl: Option<Sasl>,
    /// Given, or `SASL_PLAINTEXT` with SASL credentials and `PLAINTEXT` without.
    pub security_protocol: SecurityProtocol,
    /// CA certificates (PEM) trusted instead of the Mozilla roots (TLS only).
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificate (PEM) and its key, for brokers that require one (TLS only; both or
    /// neither).
    pub ssl_client_cert: Option<(PathBuf, PathBuf)>,
    /// Name verified in the broker certificates instead of the host of their address (TLS only).
    pub ssl_server_name: Option<String>,
    /// `enable.idempotence` (default true): the producer is idempotent (with `acks = all`), so a
    /// retry never stores a batch twice.
    pub enable_idempotence: bool,
    /// Batches of one partition in flight (`max.in.flight.requests.per.connection`); `None`: 5
    /// for the idempotent producer, 1 otherwise.
    pub max_in_flight: Option<usize>,
    /// Create an unknown topic with this many partitions (replication: the broker's
    /// `default.replication.factor`); `None`: the broker's
    /// auto-creation, or an error when it has none.
    pub create_partitions: Option<i32>,
    /// Consumer: most bytes of one Fetch answer (`fetch.max.bytes`); `None`: the consumer's default.
    pub fetch_max_bytes: Option<i32>,
    /// Consumer: most bytes per partition in one Fetch answer (`max.partition.fetch.bytes`);
    /// `None`: the consumer's default.
    pub max_partition_fetch_bytes: Option<i32>,
    /// Consumer: most records one poll returns (`max.poll.records`); `None`: the consumer's default.
    pub max_poll_records: Option<usize>,
}

impl KafkaSettings {
    /// The client's SASL settings (the one place the password leaves its [`Secret`]).
    pub fn sasl_config(&self) -> Option<SaslConfig> {
        self.sasl.as_ref().map(|s| SaslConfig {
            mechanism: s.mechanism,
            username: s.username.clone(),
            password: s.password.expose().to_string(),
        })
    }

    /// The client's TLS settings: `Some` for `SSL` and `SASL_SSL`.
    #[cfg(feature = "tls")]
    pub fn tls_config(&self) -> Option<crate::kafka::tls::TlsConfig> {
        self.security_protocol
            .tls()
            .then(|| crate::kafka::tls::TlsConfig {
                ca_file: self.ssl_ca_location.clone(),
                server_name: self.ssl_server_name.clone(),
                cert_file: self.ssl_client_cert.as_ref().map(|(c, _)| c.clone()),
                key_file: self.ssl_client_cert.as_ref().map(|(_, k)| k.clone()),
            })
    }
}

/// Where schemas come from (`[registry]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Schema Registry base URLs, tried in order (`registry.urls`); empty: the offline cache only.
    pub urls: Vec<String>,
    /// Offline schema cache directory (`registry.schema_cache`): read when the registry is
    /// unreachable, or instead of it.
    pub schema_cache: Option<PathBuf>,
}

/// Metrics output (`[metrics]`).
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
    /// The inputs (`[[input]]`, or the one `input.*` from env/flags); each has its subject and topic.
    pub inputs: Vec<InputConfig>,
    /// Kafka client settings (`[kafka]`).
    pub kafka: KafkaSettings,
    /// Schema source settings (`[registry]`).
    pub registry: RegistrySettings,
    /// Spool directory (`spool.dir`, default `/var/lib/avro-edge/spool`).
    pub spool_dir: PathBuf,
    /// Spool size bound, segment size and fsync policy (`spool.*`).
    pub spool: SpoolOptions,
    /// NDJSON file for records that cannot be sent (`dead_letter`, default
    /// `/var/lib/avro-edge/dead-letter.ndjson`).
    pub dead_letter: PathBuf,
    /// Past this size the dead-letter file moves to `<path>.1` (so at most twice this is kept).
    pub dead_letter_max_bytes: u64,
    /// Prometheus endpoint and log summary (`[metrics]`).
    pub metrics: MetricsSettings,
    /// On stop, how long to keep sending what is spooled before exiting (`drain_timeout_ms`,
    /// default 10 s).
    pub drain_timeout: Duration,
    /// Longer input lines are dead-lettered (`line-too-long`) without being held in memory.
    pub max_line_bytes: usize,
    /// Hold records in the spool while the system clock is below its lower bound (the build time, the
    /// spool's record times), so a gateway that boots at 1970 sends no 1970 timestamps (`clock_check`,
    /// default true). Turn it off where the clock is known to be corrected backwards on purpose.
    pub clock_check: bool,
}

pub const DEFAULT_SUBJECT: &str = "sensor-data-value";
pub const DEFAULT_TOPIC: &str = "sensor-data";
pub const DEFAULT_KEY_FIELD: &str = "sensorId";

impl Config {
    /// Load: the optional TOML file, then `env` (pass `std::env::vars()`), then `flags` (key, value) pairs.
    /// Keys and aliases ([`ALIASES`]) are accepted in all three.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let file = match file {
            Some(p) => layers::file(p)?,
            None => Default::default(),
        };
        let mut merged = file
            .overlay(layers::env(env)?)
            .overlay(layers::flags(flags)?);
        layers::read_secret_files(&mut merged.values)?;
        validate::config(&merged.values, merged.inputs.as_deref())
    }

    /// The spool options from this configuration.
    pub fn spool_options(&self) -> SpoolOptions {
        self.spool.clone()
    }
}

/// The `[kafka]` section alone from flag pairs (keys or aliases, e.g. from `-X`), for the commands that
/// talk to Kafka without a forwarder (`produce`, `consume`). A key outside `kafka.` is an error.
pub fn kafka_settings(flags: &[(String, String)]) -> Result<KafkaSettings, ConfigError> {
    let mut layer = layers::flags(flags)?;
    layers::read_secret_files(&mut layer.values)?;
    if let Some(k) = layer.values.keys().find(|k| !k.starts_with("kafka.")) {
        return Err(invalid(k, "not a Kafka client setting"));
    }
    validate::kafka(&layer.values)
}

/// Parse `key=value` (the `--set` flag).
pub fn parse_set(s: &str) -> Result<(String, String), ConfigError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| invalid(s, "expected key=value"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

/// Parse `name=value` (the `-X` flag, as in kcat): a Kafka client property, librdkafka's name
/// (`bootstrap.servers`) or ours (`linger_ms`); the key is returned with its `kafka.` prefix.
pub fn parse_property(s: &str) -> Result<(String, String), ConfigError> {
    let (k, v) = parse_set(s)?;
    let k = if k.starts_with("kafka.") {
        k
    } else {
        format!("kafka.{k}")
    };
    Ok((k, v))
}

/// The key a name (a key or an alias) stands for, or `None` for an unknown name.
pub fn resolve_key(name: &str) -> Option<&'static str> {
    keys::resolve(name)
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
