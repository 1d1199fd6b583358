//! `avro-edge produce` and `avro-edge consume`.
use super::{CmdResult, Failure};

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::io::Write as _;

use avro_edge::forwarder::{self as config, ConfigError, KafkaSettings};
use avro_edge::{Assignor, Consumer, ConsumerConfig, Item, RawRecord, TextDecoder};
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

/// A named flag of `produce`/`consume` (`--acks`), the key it sets, and its value if given.
type Named<'a> = (&'a str, &'a str, Option<String>);

/// The Kafka settings of `produce`/`consume`: the named flags and the `-X` properties (one layer: a key
/// given twice, by two names or by a flag and a property, with two values is an error; a key `command`
/// does not use is an error naming the commands that do).
fn kafka_settings(
    named: &[Named],
    security: &super::security_args::SecurityArgs,
    properties: &[String],
    command: config::Command,
) -> Result<KafkaSettings, Failure> {
    let mut props = Vec::with_capacity(properties.len());
    for p in properties {
        props.push(config::parse_property(p).map_err(|e| Failure::bad_input(&e))?);
    }
    let mut pairs = named_pairs(named, &props)?;
    pairs.extend(security.pairs());
    pairs.extend(props);
    pairs.extend(password_from_env(&pairs));
    let settings = config::kafka_settings(&pairs, command).map_err(|e| Failure::bad_input(&e))?;
    if settings.brokers.is_empty() {
        let e = ConfigError::Missing {
            key: "kafka.brokers (--brokers, -X bootstrap.servers)".into(),
        };
        return Err(Failure::bad_input(&e));
    }
    Ok(settings)
}

/// The named flags given, as `(key, value)` pairs. A flag whose key a `-X` property sets too must
/// agree with it (as `--from-beginning` with `-X auto.offset.reset=earliest`): then the property
/// alone stands; if they differ, it is an error naming both.
fn named_pairs(
    named: &[Named],
    props: &[(String, String)],
) -> Result<Vec<(String, String)>, Failure> {
    let text = |v: &str| {
        v.split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase()
    };
    let mut pairs = Vec::new();
    for (flag, key, value) in named {
        let Some(value) = value else { continue };
        match props
            .iter()
            .find(|(k, _)| config::resolve_key(k) == Some(*key))
        {
            Some((k, v)) if text(v) != text(value) => {
                let e = ConfigError::Invalid {
                    key: key.to_string(),
                    reason: format!(
                        "set twice with different values, as '{flag}' and as '{k}' (from flags)"
                    ),
                };
                return Err(Failure::bad_input(&e));
            }
            Some(_) => {}
            None => pairs.push((key.to_string(), value.clone())),
        }
    }
    Ok(pairs)
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
    /// With no committed offset, start from the oldest record (default: only new records); the
    /// same as -X auto.offset.reset=earliest (both given, they must agree).
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
    /// consumer's: auto.offset.reset, enable.auto.commit, auto.commit.interval.ms,
    /// session.timeout.ms, heartbeat.interval.ms, max.poll.interval.ms, group.instance.id,
    /// isolation.level, client.rack, fetch.max.bytes, max.partition.fetch.bytes, max.poll.records;
    /// README "Every setting" lists them with their defaults).
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
    let cfg = consumer_config(&a)?;
    let mut consumer = Consumer::connect(cfg).map_err(|e| Failure::runtime(&e))?;
    let dead_letter = open_dead_letter(a.dead_letter.as_deref())?;
    let mut o = Output::new(&codec, dead_letter);
    let idle = a.timeout.map(Duration::from_secs_f64);
    let started = Instant::now();
    read(&mut consumer, &mut o, a.max, idle)?;
    o.out.flush().map_err(|e| io_failure("stdout", e))?;
    let closed = consumer.close();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "consumed {} messages: {} decoded, {} undecodable{} in {secs:.1}s",
        o.seen(),
        o.decoded,
        o.undecodable,
        a.dead_letter
            .as_ref()
            .map(|p| format!(" (dead-lettered to {})", p.display()))
            .unwrap_or_default(),
    );
    closed.map_err(|e| Failure::runtime(&e))
}

/// The consumer settings of `consume`: its flags and `-X` properties.
fn consumer_config(a: &ConsumeArgs) -> Result<ConsumerConfig, Failure> {
    let brokers = (!a.brokers.is_empty()).then(|| a.brokers.join(","));
    let from_beginning = a.from_beginning.then(|| "earliest".to_string());
    let k = kafka_settings(
        &[
            ("--brokers", "kafka.brokers", brokers),
            (
                "--from-beginning",
                "kafka.auto_offset_reset",
                from_beginning,
            ),
        ],
        &a.security,
        &a.property,
        config::Command::Consume,
    )?;
    let topics: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    let mut cfg = k.consumer_config(&a.group, &topics);
    cfg.assignor = Assignor::from_name(&a.assignor).unwrap_or_default();
    Ok(cfg)
}

/// The dead-letter file, opened for appending, if one is given.
fn open_dead_letter(path: Option<&Path>) -> Result<Option<BufWriter<File>>, Failure> {
    let Some(p) = path else {
        return Ok(None);
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| io_failure(&format!("dead-letter file {}", p.display()), e))?;
    Ok(Some(BufWriter::new(f)))
}

/// Poll until `max` messages were seen (decoded or not), or none arrived for `idle`.
fn read(
    consumer: &mut Consumer,
    o: &mut Output,
    max: Option<u64>,
    idle: Option<Duration>,
) -> CmdResult {
    let done = |o: &Output| max.is_some_and(|m| o.seen() >= m);
    let mut last_message = Instant::now();
    while !done(o) {
        let records = poll(consumer)?;
        if records.is_empty() {
            if idle.is_some_and(|d| last_message.elapsed() >= d) {
                break;
            }
            continue;
        }
        last_message = Instant::now();
        let mut rest = records.into_iter();
        for r in rest.by_ref() {
            o.write(r)?;
            if done(o) {
                break;
            }
        }
        rewind(consumer, rest);
        o.end_of_poll()?;
    }
    Ok(())
}

/// One poll. A broker failing over (leader or coordinator moving) is not the end of the command:
/// that is an empty poll, and the caller keeps polling until it heals or its idle timeout runs out.
fn poll(consumer: &mut Consumer) -> Result<Vec<RawRecord>, Failure> {
    match consumer.poll(Duration::from_millis(500)) {
        Ok(records) => Ok(records),
        Err(e) if e.is_retriable() || e.needs_metadata_refresh() => {
            tracing::warn!(error = %e, "poll failed; retrying");
            Ok(Vec::new())
        }
        Err(e) => Err(Failure::runtime(&e)),
    }
}

/// Messages past --max were fetched but not printed: rewind so the commit leaves them for the next
/// reader of the group.
fn rewind(consumer: &mut Consumer, rest: impl Iterator<Item = RawRecord>) {
    let mut rewind: std::collections::BTreeMap<(String, i32), i64> = Default::default();
    for r in rest {
        rewind
            .entry((r.topic.to_string(), r.partition))
            .or_insert(r.offset);
    }
    for ((t, p), o) in rewind {
        consumer.seek(&t, p, o);
    }
}

/// Where `consume` writes: decoded lines to stdout through one buffer written a chunk at a time,
/// undecodable messages to the dead-letter file (or the log); and how many of each.
struct Output<'c> {
    out: std::io::StdoutLock<'static>,
    text: Vec<u8>,
    decoder: TextDecoder<'c>,
    dead_letter: Option<BufWriter<File>>,
    decoded: u64,
    undecodable: u64,
}

impl<'c> Output<'c> {
    fn new(codec: &'c Codec, dead_letter: Option<BufWriter<File>>) -> Output<'c> {
        Output {
            out: std::io::stdout().lock(),
            text: Vec::with_capacity(OUT_CHUNK + 4096),
            decoder: codec.text_decoder(),
            dead_letter,
            decoded: 0,
            undecodable: 0,
        }
    }

    /// Messages seen, decoded or not.
    fn seen(&self) -> u64 {
        self.decoded + self.undecodable
    }

    /// One message: its value as JSON text straight from its Avro bytes (no Value tree); a
    /// tombstone (no value) is `null`, as in `PollAvro::poll_items`. A value that does not decode
    /// leaves `text` as it was and goes to the dead-letter file.
    fn write(&mut self, r: RawRecord) -> CmdResult {
        let written = match &r.value {
            Some(raw) => self.decoder.decode_into(raw, &mut self.text),
            None => {
                self.text.extend_from_slice(b"null");
                Ok(())
            }
        };
        match written {
            Ok(()) => {
                self.text.push(b'\n');
                if self.text.len() >= OUT_CHUNK {
                    self.out
                        .write_all(&self.text)
                        .map_err(|e| io_failure("stdout", e))?;
                    self.text.clear();
                }
                self.decoded += 1;
                Ok(())
            }
            Err(e) => self.undecodable(r, &e),
        }
    }

    fn undecodable(&mut self, r: RawRecord, e: &CodecError) -> CmdResult {
        self.undecodable += 1;
        let raw = r.value.clone().unwrap_or_default();
        let item = Item::undecodable(r, raw, e);
        let dl = item.dead_letter().unwrap_or_default();
        match self.dead_letter.as_mut() {
            Some(f) => writeln!(f, "{dl}").map_err(|e| io_failure("dead-letter file", e))?,
            None => {
                let (t, p, o) = item.coordinates();
                tracing::warn!(topic = t, partition = p, offset = o, dead_letter = %dl, "undecodable message");
            }
        }
        Ok(())
    }

    /// After each poll: what is buffered goes out, and both outputs are flushed.
    fn end_of_poll(&mut self) -> CmdResult {
        self.out
            .write_all(&self.text)
            .map_err(|e| io_failure("stdout", e))?;
        self.text.clear();
        self.out.flush().map_err(|e| io_failure("stdout", e))?;
        if let Some(f) = self.dead_letter.as_mut() {
            f.flush().map_err(|e| io_failure("dead-letter file", e))?;
        }
        Ok(())
    }
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
    let producer = connect_producer(&a)?;
    let mut run = ProduceRun::new(&producer);
    send_stdin(&a, &codec, &mut run)?;
    run.finish()
}

/// The producer `produce`'s flags and `-X` properties ask for, connected.
fn connect_producer(a: &ProduceArgs) -> Result<Producer, Failure> {
    let brokers = (!a.brokers.is_empty()).then(|| a.brokers.join(","));
    let k = kafka_settings(
        &[
            ("--brokers", "kafka.brokers", brokers),
            ("--acks", "kafka.acks", a.acks.clone()),
            ("--compression", "kafka.compression", a.compression.clone()),
            (
                "--create-partitions",
                "kafka.create_partitions",
                a.create_partitions.clone(),
            ),
            (
                "--no-idempotence",
                "kafka.enable_idempotence",
                a.no_idempotence.then(|| "false".to_string()),
            ),
        ],
        &a.security,
        &a.property,
        config::Command::Produce,
    )?;
    let cfg = k.producer_config();
    Producer::connect(cfg).map_err(|e| Failure::runtime(&e))
}

/// Read stdin line by line, encode each line with the subject's writer, and send it through
/// `run`; a line that cannot be encoded is counted and reported, and the next one is read.
fn send_stdin(a: &ProduceArgs, codec: &Codec, run: &mut ProduceRun<'_>) -> Result<(), Failure> {
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
            return Ok(());
        }
        run.t.read += 1;
        if line.trim().is_empty() {
            continue;
        }
        if writer.is_none() || run.t.read.is_multiple_of(WRITER_REFRESH) {
            writer = match codec.writer(&a.subject) {
                Ok(w) => Some(w),
                Err(e) => {
                    run.t.failed += 1;
                    report_not_encoded(run.t.read, LineError::without_writer(line.as_bytes(), e));
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
                run.t.failed += 1;
                report_not_encoded(run.t.read, e);
                continue;
            }
        };
        run.send(&a.topic, key.as_deref(), &bytes);
    }
}

/// One `produce` run's deliveries: what is outstanding (in input order), the tally, and the
/// progress line's clock.
struct ProduceRun<'p> {
    producer: &'p Producer,
    t: Tally,
    pending: VecDeque<(u64, DeliveryHandle)>,
    start: Instant,
    last_progress: Instant,
}

impl<'p> ProduceRun<'p> {
    fn new(producer: &'p Producer) -> ProduceRun<'p> {
        ProduceRun {
            producer,
            t: Tally {
                read: 0,
                sent: 0,
                acked: 0,
                failed: 0,
            },
            pending: VecDeque::new(),
            start: Instant::now(),
            last_progress: Instant::now(),
        }
    }

    /// Enqueue the record of the line just read, settle what is done (in order, keeping what is
    /// outstanding bounded), and print the progress line now and then.
    fn send(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) {
        let t = &mut self.t;
        self.pending
            .push_back((t.read, self.producer.enqueue(topic, key, value)));
        t.sent += 1;
        // Settle what is done, in order; bound what is outstanding.
        while let Some((_, h)) = self.pending.front() {
            if h.try_result().is_none() && self.pending.len() < 100_000 {
                break;
            }
            if let Some((n, h)) = self.pending.pop_front() {
                settle(h, t, n);
            }
        }
        // The clock is read once per PROGRESS_CHECK records, not per record.
        if t.sent.is_multiple_of(PROGRESS_CHECK)
            && self.last_progress.elapsed() > Duration::from_secs(5)
        {
            self.last_progress = Instant::now();
            let rate = t.sent as f64 / self.start.elapsed().as_secs_f64();
            eprintln!(
                "progress: sent {} acked {} failed {} ({rate:.0} msgs/s)",
                t.sent, t.acked, t.failed
            );
        }
    }

    /// Input ended: flush, settle every outstanding record, close, and print the summary; an
    /// error if any record was not delivered.
    fn finish(self) -> CmdResult {
        let mut t = self.t;
        let _ = self.producer.flush(Duration::from_secs(60));
        for (n, h) in self.pending {
            settle(h, &mut t, n);
        }
        let _ = self.producer.close();
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
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
}
