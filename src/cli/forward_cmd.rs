//! `avro-edge forward` and `avro-edge spool status`.
//!
//! Must not hold forwarder logic: it turns flags into [`avro_edge::config`] keys, wires the encoder and the
//! sink, and calls [`avro_edge::forwarder::run`]. Flags-only use (no config file) reads NDJSON from stdin.

use std::io::BufReader;
use std::path::PathBuf;

use super::{CmdResult, Failure};
use avro_edge::forwarder::{self, Config, Snapshot};
use avro_edge::{Kind, RecoveryReport, Spool, SpoolStatus};

#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    // Boxed: the flags are many, and `Command` should not be sized by its largest variant.
    #[command(flatten)]
    pub flags: Box<ForwardFlags>,
}

/// The flags of `avro-edge forward`; each maps to one configuration key.
#[derive(Debug, clap::Args)]
pub struct ForwardFlags {
    /// TOML configuration file (see forwarder.toml); flags and AVRO_EDGE_* env override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Bootstrap brokers, comma-separated (kafka.brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Topic for every input (input.topic; default sensor-data).
    #[arg(long)]
    pub topic: Option<String>,
    /// Registry subject for every input (input.subject; default sensor-data-value).
    #[arg(long)]
    pub subject: Option<String>,
    /// Record field used as the Kafka key (input.key_field; default sensorId, "" for none).
    #[arg(long)]
    pub key_field: Option<String>,
    /// Schema Registry URL (registry.urls); repeat for several.
    #[arg(long = "registry")]
    pub registry: Vec<String>,
    /// Offline schema cache directory (registry.schema_cache).
    #[arg(long)]
    pub schema_cache: Option<String>,
    /// Spool directory (spool.dir).
    #[arg(long)]
    pub spool: Option<String>,
    /// Dead-letter file (dead_letter).
    #[arg(long)]
    pub dead_letter: Option<String>,
    /// always | interval | never (spool.fsync).
    #[arg(long)]
    pub fsync: Option<String>,
    /// Spool size bound, e.g. 256MiB (spool.max_bytes).
    #[arg(long)]
    pub max_bytes: Option<String>,
    /// block | drop_oldest (spool.when_full).
    #[arg(long)]
    pub when_full: Option<String>,
    /// Loopback address for Prometheus /metrics (metrics.listen).
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Drain time on stop, in ms (drain_timeout_ms).
    #[arg(long)]
    pub drain_timeout_ms: Option<String>,
    /// all | 1 | 0 (kafka.acks; also -1, leader, none).
    #[arg(long)]
    pub acks: Option<String>,
    /// none | gzip | snappy | lz4 | zstd (kafka.compression; default gzip: gateways send over slow links).
    #[arg(long)]
    pub compression: Option<String>,
    /// Connection security (SASL, TLS): the kafka.security_protocol, kafka.sasl_* and
    /// kafka.ssl_* keys.
    #[command(flatten)]
    pub security: super::security_args::SecurityArgs,
    /// Any configuration key or alias: --set kafka.linger_ms=5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Kafka client property, librdkafka's name or ours, as in kcat: -X bootstrap.servers=b:9092,
    /// -X linger.ms=20 (= --set kafka.NAME=VALUE; repeatable).
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum SpoolCommand {
    /// Counters of a spool directory whose forwarder is stopped (a running one answers on /metrics).
    Status {
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The flags as configuration keys (named flags first, then --set).
fn flag_pairs(a: &ForwardFlags) -> Result<Vec<(String, String)>, Failure> {
    let named: [(&str, &Option<String>); 14] = [
        ("kafka.brokers", &a.brokers),
        ("input.topic", &a.topic),
        ("input.subject", &a.subject),
        ("input.key_field", &a.key_field),
        ("registry.schema_cache", &a.schema_cache),
        ("spool.dir", &a.spool),
        ("dead_letter", &a.dead_letter),
        ("spool.fsync", &a.fsync),
        ("spool.max_bytes", &a.max_bytes),
        ("spool.when_full", &a.when_full),
        ("metrics.listen", &a.metrics_listen),
        ("drain_timeout_ms", &a.drain_timeout_ms),
        ("kafka.acks", &a.acks),
        ("kafka.compression", &a.compression),
    ];
    let mut out: Vec<(String, String)> = named
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
        .collect();
    out.extend(a.security.pairs());
    if !a.registry.is_empty() {
        out.push(("registry.urls".into(), a.registry.join(",")));
    }
    for s in &a.set {
        out.push(forwarder::parse_set(s).map_err(|e| Failure::bad_input(&e))?);
    }
    for p in &a.property {
        out.push(forwarder::parse_property(p).map_err(|e| Failure::bad_input(&e))?);
    }
    Ok(out)
}

/// Load the configuration from the file, the environment and the flags.
pub fn load_config(a: &ForwardArgs) -> Result<Config, Failure> {
    let a = &*a.flags;
    let flags = flag_pairs(a)?;
    Config::load(a.config.as_deref(), std::env::vars(), &flags).map_err(|e| Failure::bad_input(&e))
}

pub fn forward(a: ForwardArgs) -> CmdResult {
    let cfg = load_config(&a)?;
    if cfg.kafka.brokers.is_empty() {
        let e = forwarder::ConfigError::Missing {
            key: "kafka.brokers".into(),
        };
        return Err(Failure::bad_input(&e));
    }
    let stop = forwarder::stop_on_signals()
        .map_err(|e| Failure::other(1, Kind::SignalSetup, e.to_string()))?;
    let stdin = Box::new(BufReader::new(std::io::stdin()));
    forwarder::run_configured(&cfg, stdin, stop).map_err(|e| Failure::runtime(&e))?;
    Ok(())
}

pub fn spool(c: SpoolCommand) -> CmdResult {
    match c {
        SpoolCommand::Status { dir, json } => status(&dir, json),
    }
}

/// `writeln!` into a String (which cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> CmdResult {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::other(1, Kind::Stdout, e.to_string())),
    }
}

fn status(dir: &std::path::Path, json: bool) -> CmdResult {
    let (st, report) = Spool::inspect(dir).map_err(|e| Failure::runtime(&e))?;
    let last = Snapshot::load(dir);
    let mut out = String::new();
    if json {
        let v = serde_json::json!({ "dir": dir.display().to_string(), "spool": st, "recovery": report, "last_run": last });
        outln!(out, "{v}");
        return print(&out);
    }
    spool_text(&mut out, dir, &st, &report);
    match last {
        Some(s) => last_run_text(&mut out, &s),
        None => outln!(out, "last run: no stats.json"),
    }
    print(&out)
}

/// The spool's own lines of `spool status`: what it holds, its limit, and the damage found now.
fn spool_text(out: &mut String, dir: &std::path::Path, st: &SpoolStatus, report: &RecoveryReport) {
    let age = st
        .oldest_unacked_age_ms
        .map_or("-".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
    outln!(out, "spool {}", dir.display());
    outln!(out, "  records (unacked)     {}", st.records);
    outln!(out, "  bytes                 {}", st.bytes);
    outln!(out, "  segments              {}", st.segments);
    let free = st
        .disk_free_bytes
        .map_or("unknown".to_string(), |b| b.to_string());
    outln!(
        out,
        "  limit                 {} (max_bytes {}; disk free {free}, reserve {})",
        st.limit_bytes,
        st.max_bytes,
        st.reserve_bytes
    );
    outln!(out, "  oldest unacked age    {age}");
    outln!(
        out,
        "  next seq / acked seq  {} / {}",
        st.next_seq,
        st.acked_seq
    );
    outln!(
        out,
        "  possible duplicates   {} (sent before, not acked: resent on start)",
        st.possible_duplicates
    );
    outln!(
        out,
        "  damage found now      {} corrupt records, {} bytes torn tail, {} bytes skipped (repaired on the next start)",
        report.corrupt_records,
        report.truncated_bytes,
        report.skipped_bytes
    );
}

/// The last run's lines of `spool status` (from its stats.json): counters, what was refused or
/// held, the spool's full episodes and the last error.
fn last_run_text(out: &mut String, s: &Snapshot) {
    outln!(out, "last run (stats.json)");
    outln!(
        out,
        "  received {}  spooled {}  sent {}  acked {}  retried {}  dead-lettered {}  dropped {}",
        s.received,
        s.spooled,
        s.sent,
        s.acked,
        s.retried,
        s.dead_lettered,
        s.dropped
    );
    refusals_text(out, s);
    match s.spool_full {
        Some(reason) => outln!(
            out,
            "  spool full ({reason}) when it stopped: appends were waiting for space"
        ),
        None => outln!(out, "  spool full            no"),
    }
    outln!(
        out,
        "  full episodes         {} disk, {} max_bytes",
        s.spool_full_disk_events,
        s.spool_full_max_bytes_events
    );
    if let Some(e) = &s.last_error {
        outln!(
            out,
            "  last error [{}] {} (at {})",
            e.kind,
            e.message,
            forwarder::rfc3339_ms(e.at_ms)
        );
    }
}

/// What the broker refused in the last run (dead-lettered, or kept and sent again) and what the
/// forwarder held.
fn refusals_text(out: &mut String, s: &Snapshot) {
    if !s.forward_dead_lettered.is_empty() {
        outln!(
            out,
            "  refused by the broker {} (dead-lettered after sending)",
            by_kind(&s.forward_dead_lettered)
        );
    }
    if let Some(h) = &s.held {
        let why = match h.refusal {
            true => "refused: fixing the setup cures it",
            false => "a passing failure",
        };
        outln!(
            out,
            "  held                  {} ({why}): {} records kept in the spool since {}: {}",
            h.reason,
            s.held_records,
            forwarder::rfc3339_ms(h.since_ms),
            h.message
        );
    }
    if !s.forward_refusals.is_empty() {
        outln!(
            out,
            "  refusals              {} (records kept and sent again; each attempt counts)",
            by_kind(&s.forward_refusals)
        );
    }
}

/// Counts by kind as `kind n, kind n`.
fn by_kind(counts: &std::collections::BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = (counts.iter())
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    parts.join(", ")
}
