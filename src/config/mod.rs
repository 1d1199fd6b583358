//! Configuration: TOML file, `AVRO_EDGE_*` environment, flags, in that order of precedence
//! (flags > env > file > defaults), validated into typed settings with typed errors; for the
//! forwarder ([`Config`]) and for `produce` and `consume` ([`kafka_settings`]).
//!
//! Must not start anything: it only reads and validates settings. Must never print or log the SASL password
//! (it is held in a [`Secret`] whose `Debug`/`Display` are redacted).
//!
//! Every setting is one row of [`SETTINGS`]: its dotted key (`kafka.linger_ms`, `spool.dir`,
//! `dead_letter`, ...), the librdkafka / Java client property names it also answers to
//! (`bootstrap.servers`, `linger.ms`, `sasl.mechanisms`, ..., so a client's properties can be pasted
//! under `[kafka]`), its type, default and meaning, and the commands that use it. A key given to a
//! command that does not use it is an error naming the commands that do; an unknown name is an error
//! suggesting the closest name the command uses; one layer giving a key under two names with two
//! values is an error. The environment variable is `AVRO_EDGE_` + the name upper-cased with `.` → `_`
//! (`AVRO_EDGE_SPOOL_DIR`); the flag form is `--set key=value` (and the named flags of `avro-edge
//! forward`, and `-X name=value` for `kafka.name`). `AVRO_EDGE_BROKERS` is accepted as an alias of
//! `AVRO_EDGE_KAFKA_BROKERS`. Inputs come from `[[input]]` tables in the file; the `input.*` keys
//! from env/flags either replace them by one input (`input.type`, `input.path`, ...) or apply to
//! every input (`input.subject`, `input.topic`, `input.key_field`), as their rows say. Acks,
//! compression and the SASL mechanism are the client's own types, parsed by their `FromStr`.
//!
//! Layout: `table` (the settings), `keys` (names), `layers` (file, env, flags), `values` (typed
//! reads), `validate` (one function per section and concept), `kafka` (the `[kafka]` settings and
//! their mapping onto the producer's and the consumer's).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ErrorKind, Kind};
use crate::spool::SpoolOptions;

mod forward;
mod kafka;
mod keys;
mod layers;
mod table;
mod validate;
mod values;

pub use forward::ForwardSettings;
pub use kafka::{ConsumerSettings, KafkaSettings, ProducerSettings, Sasl, SecurityProtocol};
pub use keys::env_name;
pub use table::{Command, DefaultValue, SETTINGS, Setting, ValueType};
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
    /// Records per send the forwarder's sender hands to the producer, and per acknowledged-cursor
    /// write (`kafka.batch_records`, default 500): the forwarder's own, not the producer's.
    pub batch_records: usize,
    /// How the forwarder delivers: exactly-once, headers, gateway id (`[forward]`).
    pub forward: ForwardSettings,
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
    /// Keys and their aliases ([`SETTINGS`]) are accepted in all three; a key `forward` does not use
    /// (a consumer's) is an error naming the commands that use it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let command = Command::Forward;
        let file = match file {
            Some(p) => layers::file(p, command)?,
            None => layers::Layer::new(command),
        };
        let mut merged = file
            .overlay(layers::env(env, command)?)
            .overlay(layers::flags(flags, command)?);
        layers::read_secret_files(&mut merged.values)?;
        validate::config(&merged.values, merged.inputs.as_deref())
    }

    /// The spool options from this configuration.
    pub fn spool_options(&self) -> SpoolOptions {
        self.spool.clone()
    }
}

/// The `[kafka]` section alone from flag pairs (keys or aliases, e.g. from `-X`), for the commands that
/// talk to Kafka without a forwarder (`produce`, `consume`). A key `command` does not use (a
/// consumer's on `produce`, a producer's or one outside `kafka.` on `consume`) is an error naming the
/// commands that use it.
pub fn kafka_settings(
    flags: &[(String, String)],
    command: Command,
) -> Result<KafkaSettings, ConfigError> {
    let mut layer = layers::flags(flags, command)?;
    layers::read_secret_files(&mut layer.values)?;
    validate::kafka(&layer.values, command)
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
    keys::resolve(name).map(|s| s.key)
}

/// The row of a key (not an alias) in [`SETTINGS`].
pub fn setting(key: &str) -> Option<&'static Setting> {
    table::setting(key)
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
