//! `avro-edge produce` and `avro-edge consume`.
use super::{CmdResult, Failure};

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::io::Write as _;

use avro_edge::forwarder::{self as config, ConfigError, KafkaSettings, producer_config};
use avro_edge::{Assignor, Consumer, ConsumerConfig, Item, OffsetReset};
use avro_edge::{Codec, CodecError, DeliveryHandle, LineError, Producer};
use avro_edge::{Kind, open_source};

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Bootstrap brokers, comma-separated (or -X bootstrap.servers=...).
    #[arg(long, env = "AVRO_EDGE_BROKERS", value_delimiter = ',')]
    pub brokers: Vec<String>,
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Registry subject whose latest schema encodes the records (e.g. sensor-data-value).
    #[arg(long)]
    pub subject: String,
    /// Schema Registry URL; repeat for several.
    #[arg(long = "registry")]
    pub registry: Vec<String>,
    /// Offline schema cache directory.
    #[arg(long)]
    pub schema_cache: Option<PathBuf>,
    /// all | 1 | 0 (default all; 0: no acknowledgement, no offsets, loss possible).
    #[arg(long)]
    pub acks: Option<String>,
    /// Record field whose value becomes the Kafka key.
    #[arg(long)]
    pub key_field: Option<String>,
    /// none | gzip | snappy | lz4 | zstd (default none).
    #[arg(long)]
    pub compression: Option<String>,
    /// Create the topic with this many partitions when it does not exist.
    #[arg(long)]
    pub create_partitions: Option<String>,
    /// Turn the idempotent producer off (= -X enable.idempotence=false): a retry after a lost
    /// connection may then store a batch twice.
    #[arg(long)]
    pub no_idempotence: bool,
    /// Kafka client property, librdkafka's name or ours, as in kcat: -X linger.ms=20,
    /// -X security.protocol=SASL_SSL -X sasl.username=u -X sasl.password.file=/run/secrets/kafka
    /// -X ssl.ca.location=ca.pem -X ssl.certificate.location=me.pem -X ssl.key.location=me.key
    /// (repeatable; every kafka.* key of `forward` but batch_records, and none of the consumer's).
    /// The password may also come from $AVRO_EDGE_KAFKA_SASL_PASSWORD.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    #[command(flatten)]
    pub security: super::security_args::SecurityArgs,
}

/// The consumer's own `kafka.*` keys (`consume` only; `forward` and `produce` have no consumer).
const CONSUMER_ONLY_KEYS: &[&str] = &[
    "kafka.fetch_max_bytes",
    "kafka.max_partition_fetch_bytes",
    "kafka.max_poll_records",
];

/// The `kafka.*` keys `consume` uses (the connection's and the consumer's); `produce` uses all but
/// `batch_records` and [`CONSUMER_ONLY_KEYS`].
const CONSUME_KEYS: &[&str] = &[
    "kafka.brokers",
    "kafka.fetch_max_bytes",
    "kafka.max_partition_fetch_bytes",
    "kafka.max_poll_records",
    "kafka.client_id",
    "kafka.request_timeout_ms",
    "kafka.security_protocol",
    "kafka.sasl_mechanism",
    "kafka.sasl_username",
    "kafka.sasl_password",
    "kafka.sasl_password_file",
    "kafka.ssl_ca_location",
    "kafka.ssl_certificate_location",
    "kafka.ssl_key_location",
    "kafka.ssl_server_name",
    "kafka.ssl_endpoint_identification_algorithm",
];

/// The SASL password from the environment (the forwarder's variable name), so that it need not be
/// on the command line: used when neither `-X sasl.password` nor `-X sasl.password.file` is given.
const SASL_PASSWORD_ENV: &str = "AVRO_EDGE_KAFKA_SASL_PASSWORD";

/// `(kafka.sasl_password, $AVRO_EDGE_KAFKA_SASL_PASSWORD)` when the variable is set and `pairs`
/// give no password.
fn password_from_env(pairs: &[(String, String)]) -> Option<(String, String)> {
    let given = pairs.iter().any(|(k, _)| {
        matches!(
            config::resolve_key(k),
            Some("kafka.sasl_password" | "kafka.sasl_password_file")
        )
    });
    if given {
        return None;
    }
    let p = std::env::var(SASL_PASSWORD_ENV).ok()?;
    Some(("kafka.sasl_password".to_string(), p))
}

/// The Kafka settings of `produce`/`consume`: the named flags and the `-X` properties (one layer: a key
/// given twice under two names with two values is an error), checked against what `command` uses.
fn kafka_settings(
    named: &[(&str, Option<String>)],
    security: &super::security_args::SecurityArgs,
    properties: &[String],
    uses: impl Fn(&str) -> bool,
    command: &str,
) -> Result<KafkaSettings, Failure> {
    let mut pairs: Vec<(String, String)> = named
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
        .collect();
    pairs.extend(security.pairs());
    for p in properties {
        pairs.push(config::parse_property(p).map_err(|e| Failure::bad_input(&e))?);
    }
    pairs.extend(password_from_env(&pairs));
    for (k, _) in &pairs {
        if let Some(key) = config::resolve_key(k)
            && !uses(key)
        {
            let e = ConfigError::Invalid {
                key: k.clone(),
                reason: format!("not used by {command}"),
            };
            return Err(Failure::bad_input(&e));
        }
    }
    let settings = config::kafka_settings(&pairs).map_err(|e| Failure::bad_input(&e))?;
    if settings.brokers.is_empty() {
        let e = ConfigError::Missing {
            key: "kafka.brokers (--brokers, -X bootstrap.servers)".into(),
        };
        return Err(Failure::bad_input(&e));
    }
    Ok(settings)
}

// ---- consume ----

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// Bootstrap brokers, comma-separated (or -X bootstrap.servers=...).
    #[arg(long, env = "AVRO_EDGE_BROKERS", value_delimiter = ',')]
    pub brokers: Vec<String>,
    /// Topic to read (repeat for several).
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Consumer group: offsets are committed there, and members share the partitions.
    #[arg(long)]
    pub group: String,
    /// With no committed offset, start from the oldest record (default: only new records).
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop after this many messages (decoded or not).
    #[arg(long)]
    pub max: Option<u64>,
    /// Stop when no message arrived for this many seconds (default: run until interrupted).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Schema Registry base URL (repeat, or comma-separate, for fallbacks).
    #[arg(long = "registry", env = "AVRO_EDGE_REGISTRY")]
    pub registry: Vec<String>,
    /// Offline schema cache directory (used alone, or as the registry client's cache).
    #[arg(long)]
    pub schema_cache: Option<PathBuf>,
    /// Append undecodable messages here as JSON lines (coordinates, base64 bytes, error kind).
    /// Without it they are reported on stderr. Either way consumption goes on.
    #[arg(long)]
    pub dead_letter: Option<PathBuf>,
    /// Partition assignor this member prefers.
    #[arg(long, default_value = "range", value_parser = ["range", "roundrobin"])]
    pub assignor: String,
    /// Kafka client property, librdkafka's name or ours, as in kcat: -X client.id=reader,
    /// -X security.protocol=SASL_PLAINTEXT -X sasl.username=u -X sasl.password.file=F (repeatable;
    /// the connection's settings: brokers, client id, request timeout, security protocol, SASL
    /// (the password also from $AVRO_EDGE_KAFKA_SASL_PASSWORD), TLS files and server name; and the
    /// consumer's memory bounds: -X fetch.max.bytes=2MiB -X max.partition.fetch.bytes=256KiB
    /// -X max.poll.records=500, the defaults).
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    #[command(flatten)]
    pub security: super::security_args::SecurityArgs,
}

fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::other(1, Kind::IoError, format!("{what}: {e}"))
}

/// `consume` writes its decoded lines to stdout in chunks of about this many bytes (and after each poll).
const OUT_CHUNK: usize = 64 * 1024;

pub fn consume(a: ConsumeArgs) -> CmdResult {
    let source =
        open_source(&a.registry, a.schema_cache.as_deref()).map_err(|e| Failure::bad_input(&e))?;
    let codec = Codec::new(source);
    let brokers = (!a.brokers.is_empty()).then(|| a.brokers.join(","));
    let k = kafka_settings(
        &[("kafka.brokers", brokers)],
        &a.security,
        &a.property,
        |key| CONSUME_KEYS.contains(&key),
        "consume",
    )?;
    let topics: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    let mut cfg = ConsumerConfig::group(&k.brokers.join(","), &a.group, &topics);
    cfg.client_id = k.client_id.clone();
    cfg.request_timeout = k.request_timeout;
    cfg.sasl = k.sasl_config();
    #[cfg(feature = "tls")]
    {
        cfg.tls = k.tls_config();
    }
    cfg.auto_offset_reset = if a.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    cfg.assignor = Assignor::from_name(&a.assignor).unwrap_or_default();
    if let Some(b) = k.fetch_max_bytes {
        cfg.fetch_max_bytes = b;
    }
    if let Some(b) = k.max_partition_fetch_bytes {
        cfg.fetch_partition_max_bytes = b;
    }
    if let Some(n) = k.max_poll_records {
        cfg.max_poll_records = n;
    }
    let mut consumer = Consumer::connect(cfg).map_err(|e| Failure::runtime(&e))?;
    let mut dead_letter = match &a.dead_letter {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| io_failure(&format!("dead-letter file {}", p.display()), e))?,
        )),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let idle = a.timeout.map(Duration::from_secs_f64);
    let started = Instant::now();
    let mut last_message = Instant::now();
    let (mut decoded, mut undecodable) = (0u64, 0u64);
    // Decoded lines go straight into one buffer, written to stdout a chunk at a time.
    let mut text = Vec::with_capacity(OUT_CHUNK + 4096);
    let mut decoder = codec.text_decoder();
    'poll: loop {
        if a.max.is_some_and(|m| decoded + undecodable >= m) {
            break;
        }
        let records = match consumer.poll(Duration::from_millis(500)) {
            Ok(records) => records,
            // A broker failing over (leader or coordinator moving) is not the end of the
            // command: keep polling until it heals or the idle timeout runs out.
            Err(e) if e.is_retriable() || e.needs_metadata_refresh() => {
                tracing::warn!(error = %e, "poll failed; retrying");
                Vec::new()
            }
            Err(e) => return Err(Failure::runtime(&e)),
        };
        if records.is_empty() {
            if idle.is_some_and(|d| last_message.elapsed() >= d) {
                break;
            }
            continue;
        }
        last_message = Instant::now();
        let mut rest = records.into_iter();
        for r in rest.by_ref() {
            // Each value is written as JSON text straight from its Avro bytes (no Value tree);
            // a tombstone (no value) is `null`, as in `Consumer::poll_items`. A value that does
            // not decode leaves `text` as it was.
            let written = match &r.value {
                Some(raw) => decoder.decode_into(raw, &mut text),
                None => {
                    text.extend_from_slice(b"null");
                    Ok(())
                }
            };
            match written {
                Ok(()) => {
                    text.push(b'\n');
                    if text.len() >= OUT_CHUNK {
                        out.write_all(&text).map_err(|e| io_failure("stdout", e))?;
                        text.clear();
                    }
                    decoded += 1;
                }
                Err(e) => {
                    undecodable += 1;
                    let raw = r.value.clone().unwrap_or_default();
                    let item = Item::undecodable(r, raw, &e);
                    let dl = item.dead_letter().unwrap_or_default();
                    match dead_letter.as_mut() {
                        Some(f) => {
                            writeln!(f, "{dl}").map_err(|e| io_failure("dead-letter file", e))?
                        }
                        None => {
                            let (t, p, o) = item.coordinates();
                            tracing::warn!(topic = t, partition = p, offset = o, dead_letter = %dl, "undecodable message");
                        }
                    }
                }
            }
            if a.max.is_some_and(|m| decoded + undecodable >= m) {
                break;
            }
        }
        // Messages past --max were fetched but not printed: rewind so the commit leaves them
        // for the next reader of the group.
        let mut rewind: std::collections::BTreeMap<(String, i32), i64> = Default::default();
        for r in rest {
            rewind
                .entry((r.topic.to_string(), r.partition))
                .or_insert(r.offset);
        }
        for ((t, p), o) in rewind {
            consumer.seek(&t, p, o);
        }
        out.write_all(&text).map_err(|e| io_failure("stdout", e))?;
        text.clear();
        out.flush().map_err(|e| io_failure("stdout", e))?;
        if let Some(f) = dead_letter.as_mut() {
            f.flush().map_err(|e| io_failure("dead-letter file", e))?;
        }
        if a.max.is_some_and(|m| decoded + undecodable >= m) {
            break 'poll;
        }
    }
    out.flush().map_err(|e| io_failure("stdout", e))?;
    let closed = consumer.close();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "consumed {} messages: {decoded} decoded, {undecodable} undecodable{} in {secs:.1}s",
        decoded + undecodable,
        a.dead_letter
            .as_ref()
            .map(|p| format!(" (dead-lettered to {})", p.display()))
            .unwrap_or_default(),
    );
    closed.map_err(|e| Failure::runtime(&e))
}

// ---- produce ----

struct Tally {
    read: u64,
    sent: u64,
    acked: u64,
    failed: u64,
}

fn settle(h: DeliveryHandle, t: &mut Tally, line: u64) {
    match h.wait() {
        Ok(_) => t.acked += 1,
        Err(e) => {
            t.failed += 1;
            tracing::warn!(line, kind = avro_edge::ErrorKind::kind(&e).as_str(), error = %e, "record not delivered");
        }
    }
}

/// How many input lines `produce` encodes with one writer before asking the codec for it again.
const WRITER_REFRESH: u64 = 1024;
/// `produce` looks at the clock for its progress line once per this many records.
const PROGRESS_CHECK: u64 = 256;

/// The error line for an input line that was not encoded, as `produce` has always printed it
/// (`not-json` with serde_json's message inside the codec's wording).
fn report_not_encoded(line: u64, e: LineError) {
    match e {
        LineError::NotJson(j) => super::report_line(line, &CodecError::NotJson(j.to_string())),
        LineError::Codec(e) => super::report_line(line, &e),
    }
}

pub fn produce(a: ProduceArgs) -> CmdResult {
    let source = avro_edge::open_source(&a.registry, a.schema_cache.as_deref())
        .map_err(|e| Failure::runtime(&e))?;
    let codec = avro_edge::Codec::new(source);
    let brokers = (!a.brokers.is_empty()).then(|| a.brokers.join(","));
    let k = kafka_settings(
        &[
            ("kafka.brokers", brokers),
            ("kafka.acks", a.acks.clone()),
            ("kafka.compression", a.compression.clone()),
            ("kafka.create_partitions", a.create_partitions.clone()),
            (
                "kafka.enable_idempotence",
                a.no_idempotence.then(|| "false".to_string()),
            ),
        ],
        &a.security,
        &a.property,
        |key| key != "kafka.batch_records" && !CONSUMER_ONLY_KEYS.contains(&key),
        "produce",
    )?;
    let cfg = producer_config(&k);
    let producer = Producer::connect(cfg).map_err(|e| Failure::runtime(&e))?;
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut t = Tally {
        read: 0,
        sent: 0,
        acked: 0,
        failed: 0,
    };
    let mut pending: VecDeque<(u64, DeliveryHandle)> = VecDeque::new();
    // The hot path reuses its buffers: one input line, one encoded value, and the subject's writer
    // (asked of the codec again every WRITER_REFRESH records, so its TTL still applies).
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    let mut bytes = Vec::with_capacity(64);
    let mut writer = None;
    loop {
        line.clear();
        let got = stdin
            .read_line(&mut line)
            .map_err(|e| Failure::other(1, Kind::Stdin, e.to_string()))?;
        if got == 0 {
            break;
        }
        t.read += 1;
        if line.trim().is_empty() {
            continue;
        }
        if writer.is_none() || t.read.is_multiple_of(WRITER_REFRESH) {
            writer = match codec.writer(&a.subject) {
                Ok(w) => Some(w),
                Err(e) => {
                    t.failed += 1;
                    report_not_encoded(t.read, LineError::without_writer(line.as_bytes(), e));
                    continue;
                }
            };
        }
        let Some(w) = &writer else { continue };
        bytes.clear();
        let key = match w.encode_json_line_into(line.as_bytes(), a.key_field.as_deref(), &mut bytes)
        {
            Ok(key) => key,
            Err(e) => {
                t.failed += 1;
                report_not_encoded(t.read, e);
                continue;
            }
        };
        pending.push_back((t.read, producer.enqueue(&a.topic, key.as_deref(), &bytes)));
        t.sent += 1;
        // Settle what is done, in order; bound what is outstanding.
        while let Some((_, h)) = pending.front() {
            if h.try_result().is_none() && pending.len() < 100_000 {
                break;
            }
            if let Some((n, h)) = pending.pop_front() {
                settle(h, &mut t, n);
            }
        }
        // The clock is read once per PROGRESS_CHECK records, not per record.
        if t.sent.is_multiple_of(PROGRESS_CHECK) && last_progress.elapsed() > Duration::from_secs(5)
        {
            last_progress = Instant::now();
            let rate = t.sent as f64 / start.elapsed().as_secs_f64();
            eprintln!(
                "progress: sent {} acked {} failed {} ({rate:.0} msgs/s)",
                t.sent, t.acked, t.failed
            );
        }
    }
    let _ = producer.flush(Duration::from_secs(60));
    for (n, h) in pending {
        settle(h, &mut t, n);
    }
    let _ = producer.close();
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    println!(
        "sent {} acked {} failed {} in {secs:.2}s ({:.0} msgs/s)",
        t.sent,
        t.acked,
        t.failed,
        t.sent as f64 / secs
    );
    if t.failed > 0 {
        return Err(Failure::other(
            1,
            Kind::RecordsFailed,
            format!("{} records not delivered", t.failed),
        ));
    }
    Ok(())
}
