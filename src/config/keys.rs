//! The configuration vocabulary: every key ([`KEYS`]), the librdkafka / Java client property names
//! accepted for the Kafka keys ([`ALIASES`]), their environment names, and the closest known key
//! for a misspelt one.
//!
//! Must not read values: it only names keys.

/// Every key settable from file, env and flags, with a one-line description (the sample
/// `forwarder.toml` has more).
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
    (
        "kafka.acks",
        "all | 1 | 0 (also -1, leader, none; default all)",
    ),
    (
        "kafka.compression",
        "none | gzip | snappy | lz4 | zstd (default none)",
    ),
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
        "create an unknown topic with this many partitions, replicated as the broker's default.replication.factor (default: off)",
    ),
    (
        "kafka.request_timeout_ms",
        "request timeout (default 30000)",
    ),
    (
        "kafka.security_protocol",
        "PLAINTEXT | SASL_PLAINTEXT | SSL | SASL_SSL (SSL ones need feature tls; default from SASL)",
    ),
    (
        "kafka.sasl_mechanism",
        "PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 (default PLAIN)",
    ),
    ("kafka.sasl_username", "SASL user"),
    (
        "kafka.sasl_password",
        "SASL password (never logged; prefer the environment or sasl_password_file)",
    ),
    (
        "kafka.sasl_password_file",
        "file holding the SASL password (one trailing newline ignored)",
    ),
    (
        "kafka.ssl_ca_location",
        "CA certificates (PEM) to trust instead of the Mozilla roots (feature tls)",
    ),
    (
        "kafka.ssl_certificate_location",
        "client certificate (PEM, then its chain) for brokers that require one (feature tls)",
    ),
    (
        "kafka.ssl_key_location",
        "the client certificate's unencrypted private key (PEM; feature tls)",
    ),
    (
        "kafka.ssl_server_name",
        "name to verify in the broker certificates instead of the host in their address (feature tls)",
    ),
    (
        "kafka.ssl_endpoint_identification_algorithm",
        "https only (the default): the broker's name is always verified",
    ),
    (
        "kafka.fetch_max_bytes",
        "consume: most bytes of one Fetch answer (default 2MiB; forward ignores it)",
    ),
    (
        "kafka.max_partition_fetch_bytes",
        "consume: most bytes per partition in one Fetch answer (default 256KiB; forward ignores it)",
    ),
    (
        "kafka.max_poll_records",
        "consume: most records one poll returns (default 500; forward ignores it)",
    ),
    (
        "kafka.enable_idempotence",
        "true | false (default true: idempotent producer, with acks=all; see the producer docs)",
    ),
    (
        "kafka.max_in_flight",
        "batches of one partition in flight (default 5 idempotent, else 1; 1..=5 when idempotent)",
    ),
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
        "spool.reserve_bytes",
        "free space left on the spool's file system (default 1MiB, at most 1/16 of it)",
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
        "clock_check",
        "hold records while the system clock is below its lower bound (default true)",
    ),
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

/// librdkafka (and Java client) property names accepted for a key: alias → key. In the file they go
/// under `[kafka]` (`bootstrap.servers = "..."`), from env as `AVRO_EDGE_KAFKA_BOOTSTRAP_SERVERS`, from
/// flags as `--set kafka.bootstrap.servers=...` or `-X bootstrap.servers=...`. `acks` needs no alias: it
/// is `kafka.acks` already.
pub const ALIASES: &[(&str, &str)] = &[
    ("kafka.bootstrap.servers", "kafka.brokers"),
    ("kafka.metadata.broker.list", "kafka.brokers"),
    ("kafka.request.required.acks", "kafka.acks"),
    ("kafka.compression.type", "kafka.compression"),
    ("kafka.compression.codec", "kafka.compression"),
    ("kafka.linger.ms", "kafka.linger_ms"),
    ("kafka.queue.buffering.max.ms", "kafka.linger_ms"),
    ("kafka.batch.size", "kafka.batch_size"),
    ("kafka.client.id", "kafka.client_id"),
    ("kafka.request.timeout.ms", "kafka.request_timeout_ms"),
    ("kafka.delivery.timeout.ms", "kafka.delivery_timeout_ms"),
    ("kafka.message.timeout.ms", "kafka.delivery_timeout_ms"),
    ("kafka.security.protocol", "kafka.security_protocol"),
    ("kafka.sasl.mechanism", "kafka.sasl_mechanism"),
    ("kafka.sasl.mechanisms", "kafka.sasl_mechanism"),
    ("kafka.sasl.username", "kafka.sasl_username"),
    ("kafka.sasl.password", "kafka.sasl_password"),
    ("kafka.sasl.password.file", "kafka.sasl_password_file"),
    ("kafka.ssl.ca.location", "kafka.ssl_ca_location"),
    (
        "kafka.ssl.certificate.location",
        "kafka.ssl_certificate_location",
    ),
    ("kafka.ssl.key.location", "kafka.ssl_key_location"),
    (
        "kafka.ssl.endpoint.identification.algorithm",
        "kafka.ssl_endpoint_identification_algorithm",
    ),
    ("kafka.enable.idempotence", "kafka.enable_idempotence"),
    (
        "kafka.max.in.flight.requests.per.connection",
        "kafka.max_in_flight",
    ),
    ("kafka.max.in.flight", "kafka.max_in_flight"),
    ("kafka.fetch.max.bytes", "kafka.fetch_max_bytes"),
    (
        "kafka.max.partition.fetch.bytes",
        "kafka.max_partition_fetch_bytes",
    ),
    ("kafka.max.poll.records", "kafka.max_poll_records"),
];

/// `AVRO_EDGE_*` variables that are not configuration keys although their names look like one.
const NOT_CONFIG_ENV: &[&str] = &["AVRO_EDGE_REGISTRY_TOKEN"];

/// Environment prefixes owned by configuration sections: an unknown variable under one is an error.
const SECTION_ENV_PREFIXES: &[&str] = &[
    "AVRO_EDGE_INPUT_",
    "AVRO_EDGE_KAFKA_",
    "AVRO_EDGE_REGISTRY_",
    "AVRO_EDGE_SPOOL_",
    "AVRO_EDGE_METRICS_",
];

/// The environment variable for a key (or an alias).
pub fn env_name(key: &str) -> String {
    format!("AVRO_EDGE_{}", key.to_ascii_uppercase().replace('.', "_"))
}

/// Every accepted name: the keys, then the aliases.
fn names() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .map(|(k, _)| *k)
        .chain(ALIASES.iter().map(|(a, _)| *a))
}

/// The key a name (a key or an alias) stands for.
pub(super) fn resolve(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|(k, _)| *k)
        .find(|k| *k == name)
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == name).map(|(_, k)| *k))
}

/// What an environment variable is for.
pub(super) enum EnvVar {
    /// A key or alias (the name it matched).
    Key(&'static str),
    /// Under a section's prefix but no known key.
    Unknown,
    /// Not a configuration variable.
    Other,
}

pub(super) fn env_var(var: &str) -> EnvVar {
    if let Some(name) = names().find(|n| env_name(n) == var) {
        return EnvVar::Key(name);
    }
    if SECTION_ENV_PREFIXES.iter().any(|p| var.starts_with(p)) && !NOT_CONFIG_ENV.contains(&var) {
        return EnvVar::Unknown;
    }
    EnvVar::Other
}

/// The closest known name to a misspelt one (edit distance over keys and aliases), if close enough.
pub(super) fn closest(name: &str) -> Option<String> {
    let in_kafka = format!("kafka.{name}");
    if resolve(&in_kafka).is_some() {
        return Some(in_kafka);
    }
    closest_in(name, names().map(String::from))
}

/// The closest environment variable to an unknown one.
pub(super) fn closest_env(var: &str) -> Option<String> {
    closest_in(var, names().map(env_name))
}

/// The closest candidate within a third of the name's length (at least 3 edits).
pub(super) fn closest_in(name: &str, candidates: impl Iterator<Item = String>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(3);
    candidates
        .map(|c| (edit_distance(name, &c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_ascii_lowercase().chars().collect();
    let b: Vec<char> = b.to_ascii_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_name_known_keys_and_env_names_are_unambiguous() {
        for (alias, key) in ALIASES {
            assert!(KEYS.iter().any(|(k, _)| k == key), "{alias} → {key}");
            assert!(resolve(alias).is_some());
        }
        // Two names with one environment variable must mean the same key.
        for a in names() {
            for b in names() {
                if env_name(a) == env_name(b) {
                    assert_eq!(resolve(a), resolve(b), "{a} / {b}");
                }
            }
        }
    }

    #[test]
    fn closest_names() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("kafka.linger").as_deref(), Some("kafka.linger_ms"));
        assert_eq!(
            closest("bootstrap.servers").as_deref(),
            Some("kafka.bootstrap.servers")
        );
        assert_eq!(closest("kafka.zzzzzzzzzzzzzzzzzzz"), None);
    }
}
