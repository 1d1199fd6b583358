//! From merged settings to the typed [`Config`], one section at a time (inputs, kafka, registry,
//! spool, metrics, the rest), each check in its own function.
//!
//! Must not read files or the environment: `layers` did.

use std::path::PathBuf;
use std::time::Duration;

use toml::{Table, Value};

use super::forward::ForwardSettings;
use super::kafka::{ConsumerSettings, ProducerSettings};
use super::table::{Command, SETTINGS};
use super::values::{get_bool, get_list, get_parsed, get_size, get_str, get_u64, parse_addr};
use super::{
    Config, ConfigError, DEFAULT_KEY_FIELD, DEFAULT_SUBJECT, DEFAULT_TOPIC, InputConfig, InputKind,
    KafkaSettings, MetricsSettings, RegistrySettings, Sasl, SecurityProtocol, StartAt, invalid,
};
use crate::kafka::consumer::{IsolationLevel, OffsetReset};
use crate::kafka::producer::{Acks, Compression};
use crate::kafka::sasl::Mechanism;
use crate::spool::{FsyncPolicy, SpoolOptions, WhenFull};

pub(super) fn config(t: &Table, file_inputs: Option<&[Value]>) -> Result<Config, ConfigError> {
    let inputs = inputs(t, file_inputs)?;
    let kafka = kafka(t, Command::Forward)?;
    let batch_records = batch_records(t)?;
    let forward = forward(t, &kafka)?;
    let registry = registry(t)?;
    let (spool_dir, spool) = spool(t)?;
    let metrics = metrics(t)?;
    let misc = misc(t)?;
    Ok(Config {
        inputs,
        kafka,
        batch_records,
        forward,
        registry,
        spool_dir,
        spool,
        dead_letter: misc.dead_letter,
        dead_letter_max_bytes: misc.dead_letter_max_bytes,
        metrics,
        drain_timeout: misc.drain_timeout,
        max_line_bytes: misc.max_line_bytes,
        clock_check: misc.clock_check,
    })
}

// ---- inputs ----

/// The keys of one `[[input]]` table: the `input.*` keys without their section.
fn input_keys() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().filter_map(|s| s.key.strip_prefix("input."))
}

fn inputs(t: &Table, file_inputs: Option<&[Value]>) -> Result<Vec<InputConfig>, ConfigError> {
    let replaces = SETTINGS
        .iter()
        .any(|s| s.replaces_inputs && t.contains_key(s.key));
    let mut inputs = match (file_inputs, replaces) {
        (Some(list), false) => file_input_list(list)?,
        _ => vec![input_from(t, "input.", 0)?],
    };
    apply_input_overrides(t, &mut inputs)?;
    check_inputs(&inputs)?;
    Ok(inputs)
}

fn file_input_list(list: &[Value]) -> Result<Vec<InputConfig>, ConfigError> {
    let mut v = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Value::Table(tbl) = item else {
            return Err(invalid("input", "each [[input]] must be a table"));
        };
        if let Some(bad) = tbl.keys().find(|k| !input_keys().any(|i| i == k.as_str())) {
            return Err(ConfigError::UnknownKey {
                key: format!("input.{bad}"),
                origin: "config file".into(),
                suggestion: super::keys::closest_in(bad, input_keys().map(String::from))
                    .map(|k| format!("input.{k}")),
            });
        }
        v.push(input_from(tbl, "", i)?);
    }
    Ok(v)
}

/// `input.subject`, `input.topic`, `input.key_field` from env/flags apply to every input.
fn apply_input_overrides(t: &Table, inputs: &mut [InputConfig]) -> Result<(), ConfigError> {
    let subject = get_str(t, "input.subject")?;
    let topic = get_str(t, "input.topic")?;
    let key_field = get_str(t, "input.key_field")?;
    for inp in inputs {
        if let Some(s) = &subject {
            inp.subject = s.clone();
        }
        if let Some(s) = &topic {
            inp.topic = s.clone();
        }
        if let Some(s) = &key_field {
            inp.key_field = (!s.is_empty()).then(|| s.clone());
        }
    }
    Ok(())
}

fn check_inputs(inputs: &[InputConfig]) -> Result<(), ConfigError> {
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
    Ok(())
}

fn input_from(t: &Table, prefix: &str, index: usize) -> Result<InputConfig, ConfigError> {
    let k = |name: &str| format!("{prefix}{name}");
    let kind_name = get_str(t, &k("type"))?.unwrap_or_else(|| "stdin".into());
    let kind = input_kind(t, prefix, &kind_name)?;
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

fn input_kind(t: &Table, prefix: &str, kind_name: &str) -> Result<InputKind, ConfigError> {
    let k = |name: &str| format!("{prefix}{name}");
    match kind_name {
        "stdin" => Ok(InputKind::Stdin),
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
            Ok(InputKind::File {
                path: path.into(),
                start_at,
            })
        }
        "udp" => {
            let bind = get_str(t, &k("bind"))?.ok_or(ConfigError::Missing { key: k("bind") })?;
            Ok(InputKind::Udp {
                bind: parse_addr(&k("bind"), &bind)?,
            })
        }
        other => Err(invalid(
            &k("type"),
            format!("'{other}': expected stdin, file or udp"),
        )),
    }
}

// ---- kafka ----

/// The `[kafka]` section as `command` uses it (the producer's compression default is its own).
pub(super) fn kafka(t: &Table, command: Command) -> Result<KafkaSettings, ConfigError> {
    let sasl = sasl(t)?;
    let security_protocol = security_protocol(t, sasl.is_some())?;
    let request_timeout =
        Duration::from_millis(get_u64(t, "kafka.request_timeout_ms")?.unwrap_or(30_000));
    Ok(KafkaSettings {
        brokers: get_list(t, "kafka.brokers")?.unwrap_or_default(),
        client_id: get_str(t, "kafka.client_id")?.unwrap_or_else(|| "avro-edge".into()),
        request_timeout,
        sasl,
        security_protocol,
        ssl_ca_location: tls_only(t, "kafka.ssl_ca_location", security_protocol)?
            .map(PathBuf::from),
        ssl_client_cert: ssl_client_cert(t, security_protocol)?,
        ssl_server_name: tls_only(t, "kafka.ssl_server_name", security_protocol)?,
        producer: producer(t, request_timeout, command)?,
        consumer: consumer(t)?,
    })
}

/// The batch compression `command` uses when `kafka.compression` is not set: gzip for `forward`,
/// whose gateways send over slow links (through a 64 kbit/s link it carried 14.8 B per SensorData
/// reading against 56.5 uncompressed, zstd 19.6, lz4 23.5, snappy 24.0, for 1.9 µs of CPU per
/// reading on x86_64: the compression bench, README), and none for `produce`, as Kafka's clients.
fn default_compression(command: Command) -> Compression {
    match command {
        Command::Forward => Compression::Gzip,
        Command::Produce | Command::Consume => Compression::default(),
    }
}

fn producer(
    t: &Table,
    request_timeout: Duration,
    command: Command,
) -> Result<ProducerSettings, ConfigError> {
    let p = ProducerSettings {
        acks: get_parsed::<Acks>(t, "kafka.acks")?.unwrap_or_default(),
        compression: get_parsed::<Compression>(t, "kafka.compression")?
            .unwrap_or_else(|| default_compression(command)),
        linger: Duration::from_millis(get_u64(t, "kafka.linger_ms")?.unwrap_or(5)),
        batch_size: batch_size(t)?,
        delivery_timeout: Duration::from_millis(
            get_u64(t, "kafka.delivery_timeout_ms")?.unwrap_or(60_000),
        ),
        enable_idempotence: get_bool(t, "kafka.enable_idempotence")?.unwrap_or(true),
        max_in_flight: max_in_flight(t)?,
        create_partitions: create_partitions(t)?,
        transactional_id: get_str(t, "kafka.transactional_id")?,
        transaction_timeout: millis_i32(t, "kafka.transaction_timeout_ms", 1)?
            .unwrap_or(Duration::from_secs(60)),
    };
    timeouts_fit(&p, request_timeout)?;
    Ok(p)
}

/// As Kafka's producer requires: a record's delivery deadline leaves room for its linger and one
/// whole request (a shorter one fails batches while a leader election is still under way, and the
/// forwarder then sends them again).
fn timeouts_fit(p: &ProducerSettings, request_timeout: Duration) -> Result<(), ConfigError> {
    if p.delivery_timeout < p.linger + request_timeout {
        return Err(invalid(
            "kafka.delivery_timeout_ms",
            format!(
                "must be at least kafka.linger_ms + kafka.request_timeout_ms ({} ms)",
                (p.linger + request_timeout).as_millis()
            ),
        ));
    }
    Ok(())
}

/// 1..=1000 here; the producer refuses more than 5 when it is idempotent.
fn max_in_flight(t: &Table) -> Result<Option<usize>, ConfigError> {
    match get_u64(t, "kafka.max_in_flight")? {
        None => Ok(None),
        Some(n) if (1..=1000).contains(&n) => Ok(Some(n as usize)),
        Some(_) => Err(invalid("kafka.max_in_flight", "must be 1..=1000")),
    }
}

fn batch_size(t: &Table) -> Result<usize, ConfigError> {
    let batch_size = get_size(t, "kafka.batch_size")?.unwrap_or(256 << 10);
    if !(1024..=(64 << 20)).contains(&batch_size) {
        return Err(invalid(
            "kafka.batch_size",
            "must be between 1KiB and 64MiB",
        ));
    }
    Ok(batch_size as usize)
}

/// The forwarder's send window (`kafka.batch_records`, the sender's, not the producer's).
fn batch_records(t: &Table) -> Result<usize, ConfigError> {
    let batch_records = get_u64(t, "kafka.batch_records")?.unwrap_or(500);
    if !(1..=100_000).contains(&batch_records) {
        return Err(invalid("kafka.batch_records", "must be 1..=100000"));
    }
    Ok(batch_records as usize)
}

// ---- forward: how the forwarder delivers ----

fn forward(t: &Table, kafka: &KafkaSettings) -> Result<ForwardSettings, ConfigError> {
    let d = ForwardSettings::default();
    let f = ForwardSettings {
        exactly_once: get_bool(t, "forward.exactly_once")?.unwrap_or(d.exactly_once),
        commit_interval: millis_i32(t, "forward.commit_interval_ms", 1)?
            .unwrap_or(d.commit_interval),
        positions_topic: positions_topic(t)?.unwrap_or(d.positions_topic),
        gateway_id: gateway_id(t)?,
        headers: get_bool(t, "forward.headers")?.unwrap_or(d.headers),
    };
    exactly_once_fits(&f, &kafka.producer)?;
    Ok(f)
}

/// Kafka's rule for a topic name: 1 to 249 of `a-z A-Z 0-9 . _ -`, not `.` or `..`.
fn positions_topic(t: &Table) -> Result<Option<String>, ConfigError> {
    const KEY: &str = "forward.positions_topic";
    let Some(topic) = get_str(t, KEY)? else {
        return Ok(None);
    };
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty()
        || topic == "."
        || topic == ".."
        || topic.len() > 249
        || !topic.chars().all(legal)
    {
        return Err(invalid(KEY, format!("'{topic}' is not a Kafka topic name")));
    }
    Ok(Some(topic))
}

fn gateway_id(t: &Table) -> Result<Option<String>, ConfigError> {
    const KEY: &str = "forward.gateway_id";
    match get_str(t, KEY)? {
        Some(id) if !crate::spool::id::valid(&id) => Err(invalid(
            KEY,
            format!("'{id}': 1 to 128 of a-z, A-Z, 0-9, '.', '_', '-'"),
        )),
        other => Ok(other),
    }
}

/// Exactly-once needs the idempotent producer, a commit well inside the transaction timeout, and
/// a transactional id only goes with it.
fn exactly_once_fits(f: &ForwardSettings, p: &ProducerSettings) -> Result<(), ConfigError> {
    if !f.exactly_once {
        if p.transactional_id.is_some() {
            return Err(invalid(
                "kafka.transactional_id",
                "only used with forward.exactly_once = true",
            ));
        }
        return Ok(());
    }
    if p.acks != Acks::All || !p.enable_idempotence {
        return Err(invalid(
            "forward.exactly_once",
            "needs the idempotent producer: kafka.acks = all and kafka.enable_idempotence = true",
        ));
    }
    if f.commit_interval * 2 > p.transaction_timeout {
        return Err(invalid(
            "forward.commit_interval_ms",
            format!(
                "must be at most half of kafka.transaction_timeout_ms ({} ms)",
                p.transaction_timeout.as_millis()
            ),
        ));
    }
    if p.transactional_id.as_deref() == Some("") {
        return Err(invalid("kafka.transactional_id", "must not be empty"));
    }
    Ok(())
}

// ---- kafka: the consumer ----

fn consumer(t: &Table) -> Result<ConsumerSettings, ConfigError> {
    let c = ConsumerSettings {
        fetch_max_bytes: fetch_bytes(t, "kafka.fetch_max_bytes")?.unwrap_or(2 << 20),
        max_partition_fetch_bytes: fetch_bytes(t, "kafka.max_partition_fetch_bytes")?
            .unwrap_or(256 << 10),
        max_poll_records: max_poll_records(t)?,
        auto_offset_reset: auto_offset_reset(t)?,
        enable_auto_commit: get_bool(t, "kafka.enable_auto_commit")?.unwrap_or(true),
        auto_commit_interval: millis_i32(t, "kafka.auto_commit_interval_ms", 0)?
            .unwrap_or(Duration::from_secs(5)),
        session_timeout: millis_i32(t, "kafka.session_timeout_ms", 1)?
            .unwrap_or(Duration::from_secs(10)),
        heartbeat_interval: millis_i32(t, "kafka.heartbeat_interval_ms", 1)?
            .unwrap_or(Duration::from_secs(3)),
        max_poll_interval: millis_i32(t, "kafka.max_poll_interval_ms", 1)?
            .unwrap_or(Duration::from_secs(30)),
        group_instance_id: group_instance_id(t)?,
        isolation_level: isolation_level(t)?,
        client_rack: get_str(t, "kafka.client_rack")?.filter(|r| !r.is_empty()),
    };
    heartbeat_fits(&c)?;
    Ok(c)
}

/// A consumer fetch size: 1KiB..=1GiB (it goes into an i32 field of the Fetch request).
fn fetch_bytes(t: &Table, key: &str) -> Result<Option<i32>, ConfigError> {
    match get_size(t, key)? {
        None => Ok(None),
        Some(b) if (1024..=(1 << 30)).contains(&b) => Ok(Some(b as i32)),
        Some(_) => Err(invalid(key, "must be between 1KiB and 1GiB")),
    }
}

fn max_poll_records(t: &Table) -> Result<usize, ConfigError> {
    match get_u64(t, "kafka.max_poll_records")? {
        None => Ok(500),
        Some(n) if (1..=1_000_000).contains(&n) => Ok(n as usize),
        Some(_) => Err(invalid("kafka.max_poll_records", "must be 1..=1000000")),
    }
}

/// Milliseconds from `min` up to what the group requests' i32 fields hold.
fn millis_i32(t: &Table, key: &str, min: u64) -> Result<Option<Duration>, ConfigError> {
    match get_u64(t, key)? {
        None => Ok(None),
        Some(ms) if (min..=i32::MAX as u64).contains(&ms) => Ok(Some(Duration::from_millis(ms))),
        Some(_) => Err(invalid(key, format!("must be {min}..={}", i32::MAX))),
    }
}

/// librdkafka's words too: `smallest`/`beginning` for earliest, `largest`/`end` for latest. Its
/// `error` (Java's `none`: fail instead of resetting) is not supported.
fn auto_offset_reset(t: &Table) -> Result<OffsetReset, ConfigError> {
    const KEY: &str = "kafka.auto_offset_reset";
    let Some(v) = get_str(t, KEY)? else {
        return Ok(OffsetReset::Latest);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "earliest" | "smallest" | "beginning" => Ok(OffsetReset::Earliest),
        "latest" | "largest" | "end" => Ok(OffsetReset::Latest),
        "none" | "error" => Err(invalid(
            KEY,
            format!(
                "'{v}' (fail when there is no committed offset) is not supported: use earliest or latest"
            ),
        )),
        _ => Err(invalid(KEY, format!("'{v}': expected earliest or latest"))),
    }
}

fn isolation_level(t: &Table) -> Result<IsolationLevel, ConfigError> {
    const KEY: &str = "kafka.isolation_level";
    let Some(v) = get_str(t, KEY)? else {
        return Ok(IsolationLevel::ReadCommitted);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "read_committed" => Ok(IsolationLevel::ReadCommitted),
        "read_uncommitted" => Ok(IsolationLevel::ReadUncommitted),
        _ => Err(invalid(
            KEY,
            format!("'{v}': expected read_committed or read_uncommitted"),
        )),
    }
}

/// Kafka's rule for a group instance id (the Java client's `JoinGroupRequest.validateGroupInstanceId`,
/// the same as for a topic name): 1 to 249 of `a-z A-Z 0-9 . _ -`, and not `.` or `..`.
fn group_instance_id(t: &Table) -> Result<Option<String>, ConfigError> {
    const KEY: &str = "kafka.group_instance_id";
    let Some(id) = get_str(t, KEY)? else {
        return Ok(None);
    };
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id == "." || id == ".." || id.len() > 249 || !id.chars().all(legal) {
        return Err(invalid(
            KEY,
            format!("'{id}': 1 to 249 of a-z, A-Z, 0-9, '.', '_', '-' (and not '.' or '..')"),
        ));
    }
    Ok(Some(id))
}

/// As Kafka's consumer requires: heartbeats come more often than the session times out.
fn heartbeat_fits(c: &ConsumerSettings) -> Result<(), ConfigError> {
    if c.heartbeat_interval >= c.session_timeout {
        return Err(invalid(
            "kafka.heartbeat_interval_ms",
            format!(
                "must be below kafka.session_timeout_ms ({} ms)",
                c.session_timeout.as_millis()
            ),
        ));
    }
    Ok(())
}

/// SASL is on when a user and a password are given (both or neither).
fn sasl(t: &Table) -> Result<Option<Sasl>, ConfigError> {
    match (
        get_str(t, "kafka.sasl_username")?,
        get_str(t, "kafka.sasl_password")?,
    ) {
        (None, None) => Ok(None),
        (Some(username), Some(password)) => Ok(Some(Sasl {
            mechanism: get_parsed::<Mechanism>(t, "kafka.sasl_mechanism")?
                .unwrap_or(Mechanism::Plain),
            username,
            password: super::Secret::new(password),
        })),
        (Some(_), None) => Err(ConfigError::Missing {
            key: "kafka.sasl_password".into(),
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            key: "kafka.sasl_username".into(),
        }),
    }
}

/// The protocol as given, or from whether SASL credentials are set; SSL ones need feature `tls`.
fn security_protocol(t: &Table, has_sasl: bool) -> Result<SecurityProtocol, ConfigError> {
    const KEY: &str = "kafka.security_protocol";
    let Some(p) = get_str(t, KEY)? else {
        return Ok(if has_sasl {
            SecurityProtocol::SaslPlaintext
        } else {
            SecurityProtocol::Plaintext
        });
    };
    let p: SecurityProtocol = p.parse().map_err(|reason| invalid(KEY, reason))?;
    if p.tls() && !cfg!(feature = "tls") {
        return Err(invalid(
            KEY,
            format!("{p} needs TLS: this build has no `tls` feature (build with --features tls)"),
        ));
    }
    match (p.sasl(), has_sasl) {
        (true, false) => Err(ConfigError::Missing {
            key: "kafka.sasl_username".into(),
        }),
        (false, true) => Err(invalid(
            KEY,
            format!("{p} but SASL credentials are set (use SASL_PLAINTEXT or SASL_SSL)"),
        )),
        _ => Ok(p),
    }
}

/// A TLS setting (`kafka.ssl_*`): refused without the `tls` feature or with a plain-TCP protocol.
fn tls_only(t: &Table, key: &str, p: SecurityProtocol) -> Result<Option<String>, ConfigError> {
    let Some(value) = get_str(t, key)? else {
        return Ok(None);
    };
    if !cfg!(feature = "tls") {
        return Err(invalid(
            key,
            "needs TLS: this build has no `tls` feature (build with --features tls)",
        ));
    }
    if !p.tls() {
        return Err(invalid(
            key,
            format!("only used with security_protocol SSL or SASL_SSL, not {p}"),
        ));
    }
    Ok(Some(value))
}

/// The client certificate and its key: both or neither. Also refuses turning off the broker name
/// check (`ssl.endpoint.identification.algorithm = none`): avro-edge always verifies it.
fn ssl_client_cert(
    t: &Table,
    p: SecurityProtocol,
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    const ALGORITHM: &str = "kafka.ssl_endpoint_identification_algorithm";
    if let Some(a) = tls_only(t, ALGORITHM, p)?
        && !a.trim().eq_ignore_ascii_case("https")
    {
        return Err(invalid(
            ALGORITHM,
            format!(
                "'{a}': only https is supported (the broker's name is always verified; \
                 kafka.ssl_server_name names another one to verify)"
            ),
        ));
    }
    let cert = tls_only(t, "kafka.ssl_certificate_location", p)?;
    let key = tls_only(t, "kafka.ssl_key_location", p)?;
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some((c.into(), k.into()))),
        (Some(_), None) => Err(ConfigError::Missing {
            key: "kafka.ssl_key_location".into(),
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            key: "kafka.ssl_certificate_location".into(),
        }),
    }
}

fn create_partitions(t: &Table) -> Result<Option<i32>, ConfigError> {
    match get_u64(t, "kafka.create_partitions")? {
        None => Ok(None),
        Some(n @ 1..=10_000) => Ok(Some(n as i32)),
        Some(_) => Err(invalid("kafka.create_partitions", "must be 1..=10000")),
    }
}

// ---- registry ----

fn registry(t: &Table) -> Result<RegistrySettings, ConfigError> {
    Ok(RegistrySettings {
        urls: get_list(t, "registry.urls")?.unwrap_or_default(),
        schema_cache: get_str(t, "registry.schema_cache")?.map(PathBuf::from),
    })
}

// ---- spool ----

fn spool(t: &Table) -> Result<(PathBuf, SpoolOptions), ConfigError> {
    let dir = get_str(t, "spool.dir")?
        .map_or_else(|| PathBuf::from("/var/lib/avro-edge/spool"), PathBuf::from);
    let max_bytes = spool_max_bytes(t)?;
    Ok((
        dir,
        SpoolOptions {
            fsync: fsync(t)?,
            max_bytes,
            when_full: when_full(t)?,
            segment_bytes: segment_bytes(t, max_bytes)?,
            reserve_bytes: get_size(t, "spool.reserve_bytes")?,
        },
    ))
}

fn fsync(t: &Table) -> Result<FsyncPolicy, ConfigError> {
    let interval = get_u64(t, "spool.fsync_interval_ms")?.unwrap_or(100);
    match get_str(t, "spool.fsync")?.as_deref().unwrap_or("interval") {
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        "interval" if interval > 0 => Ok(FsyncPolicy::Interval(Duration::from_millis(interval))),
        "interval" => Err(invalid("spool.fsync_interval_ms", "must be above 0")),
        o => Err(invalid(
            "spool.fsync",
            format!("'{o}': expected always, interval or never"),
        )),
    }
}

fn when_full(t: &Table) -> Result<WhenFull, ConfigError> {
    match get_str(t, "spool.when_full")?.as_deref().unwrap_or("block") {
        "block" => Ok(WhenFull::Block),
        "drop_oldest" => Ok(WhenFull::DropOldest),
        o => Err(invalid(
            "spool.when_full",
            format!("'{o}': expected block or drop_oldest"),
        )),
    }
}

fn spool_max_bytes(t: &Table) -> Result<u64, ConfigError> {
    let max_bytes = get_size(t, "spool.max_bytes")?.unwrap_or(256 << 20);
    if max_bytes < 64 << 10 {
        return Err(invalid("spool.max_bytes", "must be at least 64KiB"));
    }
    Ok(max_bytes)
}

fn segment_bytes(t: &Table, max_bytes: u64) -> Result<Option<u64>, ConfigError> {
    let segment_bytes = get_size(t, "spool.segment_bytes")?;
    if let Some(s) = segment_bytes
        && (s < 4096 || s > max_bytes / 4)
    {
        return Err(invalid(
            "spool.segment_bytes",
            "must be between 4KiB and max_bytes / 4",
        ));
    }
    Ok(segment_bytes)
}

// ---- metrics ----

fn metrics(t: &Table) -> Result<MetricsSettings, ConfigError> {
    let summary = get_u64(t, "metrics.summary_interval_s")?.unwrap_or(30);
    if summary == 0 {
        return Err(invalid("metrics.summary_interval_s", "must be above 0"));
    }
    Ok(MetricsSettings {
        listen: metrics_listen(t)?,
        summary_interval: Duration::from_secs(summary),
    })
}

/// Loopback only: the metrics endpoint has no authentication.
fn metrics_listen(t: &Table) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match get_str(t, "metrics.listen")? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => {
            let a = parse_addr("metrics.listen", &s)?;
            if !a.ip().is_loopback() {
                return Err(invalid(
                    "metrics.listen",
                    format!("{a} is not a loopback address (metrics are served on loopback only)"),
                ));
            }
            Ok(Some(a))
        }
    }
}

// ---- the rest: dead-letter file, drain, line length ----

struct Misc {
    dead_letter: PathBuf,
    dead_letter_max_bytes: u64,
    drain_timeout: Duration,
    max_line_bytes: usize,
    clock_check: bool,
}

fn misc(t: &Table) -> Result<Misc, ConfigError> {
    let dead_letter_max_bytes = get_size(t, "dead_letter_max_bytes")?.unwrap_or(64 << 20);
    if dead_letter_max_bytes < 4096 {
        return Err(invalid("dead_letter_max_bytes", "must be at least 4KiB"));
    }
    let max_line_bytes = get_size(t, "max_line_bytes")?.unwrap_or(1 << 20);
    if !(1024..=(64 << 20)).contains(&max_line_bytes) {
        return Err(invalid("max_line_bytes", "must be between 1KiB and 64MiB"));
    }
    Ok(Misc {
        dead_letter: get_str(t, "dead_letter")?.map_or_else(
            || PathBuf::from("/var/lib/avro-edge/dead-letter.ndjson"),
            PathBuf::from,
        ),
        dead_letter_max_bytes,
        drain_timeout: Duration::from_millis(get_u64(t, "drain_timeout_ms")?.unwrap_or(10_000)),
        max_line_bytes: max_line_bytes as usize,
        clock_check: get_bool(t, "clock_check")?.unwrap_or(true),
    })
}
