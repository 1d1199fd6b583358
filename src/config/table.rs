//! The one table of settings ([`SETTINGS`]): every key, the librdkafka / Java client property names it
//! also answers to, what its value is written as, its default, what it means, and which commands use
//! it (`forward`, `produce`, `consume`). The name lookups (`keys`), the check that a command uses what
//! it is given, the README's property table and the sample `forwarder.toml` (both checked by tests)
//! all read it.
//!
//! Must not read or judge values: `validate` does, one function per section; a test proves that each
//! row's key reaches the setting it names, and that each default shown here is the one applied.

use std::fmt;

/// A command that reads settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `avro-edge forward`: the file, the environment and the flags.
    Forward,
    /// `avro-edge produce`: its flags and `-X` properties.
    Produce,
    /// `avro-edge consume`: its flags and `-X` properties.
    Consume,
}

impl Command {
    /// Every command, in the order the README's table shows them.
    pub const ALL: [Command; 3] = [Command::Forward, Command::Produce, Command::Consume];

    /// The command's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Command::Forward => "forward",
            Command::Produce => "produce",
            Command::Consume => "consume",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a setting's value is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Free text.
    Text,
    /// A whole number.
    Number,
    /// Milliseconds, a whole number.
    Millis,
    /// Seconds, a whole number.
    Seconds,
    /// Bytes: a number, or with a unit (`64KiB`, `256MiB`, `1GiB`, `500kB`, `10MB`).
    Size,
    /// `true` or `false`.
    Bool,
    /// A list: a TOML array in the file, comma-separated elsewhere.
    List,
    /// A file or directory.
    Path,
    /// A socket address, `ip:port`.
    Address,
    /// One of these words (any case for the Kafka client's own: acks, compression, protocol,
    /// mechanism).
    OneOf(&'static [&'static str]),
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Text => f.write_str("text"),
            ValueType::Number => f.write_str("number"),
            ValueType::Millis => f.write_str("ms"),
            ValueType::Seconds => f.write_str("s"),
            ValueType::Size => f.write_str("bytes"),
            ValueType::Bool => f.write_str("true | false"),
            ValueType::List => f.write_str("list"),
            ValueType::Path => f.write_str("path"),
            ValueType::Address => f.write_str("ip:port"),
            ValueType::OneOf(words) => f.write_str(&words.join(" | ")),
        }
    }
}

/// A setting's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// This value, as if it had been given.
    Value(&'static str),
    /// Not set: the setting is off, or must be given (said in its meaning).
    Unset,
    /// Worked out from other settings, as described.
    Derived(&'static str),
}

/// One setting: one row of [`SETTINGS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Our dotted name (`kafka.linger_ms`); its section is the part before the first dot.
    pub key: &'static str,
    /// The librdkafka / Java client property names also accepted, within the key's section
    /// (`linger.ms` for `kafka.linger.ms`).
    pub aliases: &'static [&'static str],
    /// What the value is written as.
    pub value: ValueType,
    /// The default.
    pub default: DefaultValue,
    /// The commands that use it; given to another command it is an error naming these.
    pub used_by: &'static [Command],
    /// What it means, in one line.
    pub meaning: &'static str,
    /// For an `input.*` key given by the environment or a flag: it replaces the file's
    /// `[[input]]` list by one input (`input.type`, ...), rather than applying to every input
    /// (`input.topic`, ...).
    pub replaces_inputs: bool,
}

impl Setting {
    /// The section: the part of the key before its first dot (`kafka`), or `None` (`dead_letter`).
    pub fn section(&self) -> Option<&'static str> {
        self.key.split_once('.').map(|(s, _)| s)
    }

    /// The aliases as full names (`kafka.linger.ms`).
    pub fn full_aliases(&self) -> impl Iterator<Item = String> + '_ {
        let section = self.section().unwrap_or_default();
        self.aliases.iter().map(move |a| format!("{section}.{a}"))
    }

    /// Whether `command` uses it.
    pub fn used_by(&self, command: Command) -> bool {
        self.used_by.contains(&command)
    }
}

/// A row: key, value type, default, users, meaning; aliases and the input rule are added by the
/// builder methods below.
const fn row(
    key: &'static str,
    value: ValueType,
    default: DefaultValue,
    used_by: &'static [Command],
    meaning: &'static str,
) -> Setting {
    Setting {
        key,
        aliases: &[],
        value,
        default,
        used_by,
        meaning,
        replaces_inputs: false,
    }
}

impl Setting {
    const fn alias(mut self, aliases: &'static [&'static str]) -> Setting {
        self.aliases = aliases;
        self
    }
    const fn replacing_inputs(mut self) -> Setting {
        self.replaces_inputs = true;
        self
    }
}

use Command::{Consume, Forward, Produce};
use DefaultValue::{Derived, Unset, Value};
use ValueType::{Address, Bool, List, Millis, Number, OneOf, Path, Seconds, Size, Text};

const FORWARD: &[Command] = &[Forward];
/// The producer's settings: `forward` and `produce`.
const PRODUCERS: &[Command] = &[Forward, Produce];
/// The consumer's own settings.
const CONSUME: &[Command] = &[Consume];
/// The connection's settings: every command.
const ALL: &[Command] = &[Forward, Produce, Consume];

/// Every setting, in the order of the README's table.
pub const SETTINGS: &[Setting] = &[
    // ---- inputs (forward) ----
    row(
        "input.type",
        OneOf(&["stdin", "file", "udp"]),
        Value("stdin"),
        FORWARD,
        "where the records come from; from env/flags it replaces the file's `[[input]]` list by one input",
    )
    .replacing_inputs(),
    row(
        "input.name",
        Text,
        Derived("the input's type, then -1, -2, ..."),
        FORWARD,
        "the input's name in logs, metrics and dead-letter entries",
    )
    .replacing_inputs(),
    row(
        "input.path",
        Path,
        Unset,
        FORWARD,
        "the file to follow (type file, required there)",
    )
    .replacing_inputs(),
    row(
        "input.start_at",
        OneOf(&["beginning", "end"]),
        Value("end"),
        FORWARD,
        "where a followed file is first read from (type file)",
    )
    .replacing_inputs(),
    row(
        "input.bind",
        Address,
        Unset,
        FORWARD,
        "address to receive datagrams on (type udp, required there)",
    )
    .replacing_inputs(),
    row(
        "input.subject",
        Text,
        Value("sensor-data-value"),
        FORWARD,
        "registry subject whose latest schema encodes the records (from env/flags: for every input)",
    ),
    row(
        "input.topic",
        Text,
        Value("sensor-data"),
        FORWARD,
        "topic the records go to (from env/flags: for every input)",
    ),
    row(
        "input.key_field",
        Text,
        Value("sensorId"),
        FORWARD,
        "record field whose value becomes the Kafka key; empty: no key (from env/flags: for every input)",
    ),
    // ---- the connection (every command) ----
    row(
        "kafka.brokers",
        List,
        Unset,
        ALL,
        "bootstrap brokers, host:port (required)",
    )
    .alias(&["bootstrap.servers", "metadata.broker.list"]),
    row(
        "kafka.client_id",
        Text,
        Value("avro-edge"),
        ALL,
        "client id sent to the brokers",
    )
    .alias(&["client.id"]),
    row(
        "kafka.request_timeout_ms",
        Millis,
        Value("30000"),
        ALL,
        "bound on one request to a broker",
    )
    .alias(&["request.timeout.ms"]),
    row(
        "kafka.security_protocol",
        OneOf(&["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"]),
        Derived("SASL_PLAINTEXT with SASL credentials, else PLAINTEXT"),
        ALL,
        "how the client talks to the brokers (SSL ones need a build with feature `tls`)",
    )
    .alias(&["security.protocol"]),
    row(
        "kafka.sasl_mechanism",
        OneOf(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        Value("PLAIN"),
        ALL,
        "SASL mechanism",
    )
    .alias(&["sasl.mechanism", "sasl.mechanisms"]),
    row(
        "kafka.sasl_username",
        Text,
        Unset,
        ALL,
        "SASL user (with a password: SASL is on)",
    )
    .alias(&["sasl.username"]),
    row(
        "kafka.sasl_password",
        Text,
        Unset,
        ALL,
        "SASL password (never logged; prefer the environment or `sasl_password_file`)",
    )
    .alias(&["sasl.password"]),
    row(
        "kafka.sasl_password_file",
        Path,
        Unset,
        ALL,
        "file holding the SASL password (one trailing newline ignored)",
    )
    .alias(&["sasl.password.file"]),
    row(
        "kafka.ssl_ca_location",
        Path,
        Derived("the Mozilla roots"),
        ALL,
        "CA certificates (PEM) to trust (feature `tls`)",
    )
    .alias(&["ssl.ca.location"]),
    row(
        "kafka.ssl_certificate_location",
        Path,
        Unset,
        ALL,
        "client certificate (PEM, then its chain) for brokers that require one (feature `tls`)",
    )
    .alias(&["ssl.certificate.location"]),
    row(
        "kafka.ssl_key_location",
        Path,
        Unset,
        ALL,
        "the client certificate's unencrypted private key (PEM; feature `tls`)",
    )
    .alias(&["ssl.key.location"]),
    row(
        "kafka.ssl_server_name",
        Text,
        Derived("the host of the broker's address"),
        ALL,
        "name to verify in the broker certificates (feature `tls`)",
    ),
    row(
        "kafka.ssl_endpoint_identification_algorithm",
        OneOf(&["https"]),
        Value("https"),
        ALL,
        "`https` only: the broker's name is always verified",
    )
    .alias(&["ssl.endpoint.identification.algorithm"]),
    // ---- the producer (forward, produce) ----
    row(
        "kafka.acks",
        OneOf(&["all", "1", "0"]),
        Value("all"),
        PRODUCERS,
        "acknowledgements the producer waits for (also `-1`, `leader`, `none`)",
    )
    .alias(&["request.required.acks"]),
    row(
        "kafka.compression",
        OneOf(&["none", "gzip", "snappy", "lz4", "zstd"]),
        Derived("`gzip` for `forward` (slow gateway links), `none` for `produce`"),
        PRODUCERS,
        "batch compression",
    )
    .alias(&["compression.type", "compression.codec"]),
    row(
        "kafka.linger_ms",
        Millis,
        Value("5"),
        PRODUCERS,
        "how long a partial batch may wait to fill (`forward`: also the sender's wait for a full send)",
    )
    .alias(&["linger.ms", "queue.buffering.max.ms"]),
    row(
        "kafka.batch_size",
        Size,
        Value("256KiB"),
        PRODUCERS,
        "producer batch size, 1KiB..64MiB",
    )
    .alias(&["batch.size"]),
    row(
        "kafka.delivery_timeout_ms",
        Millis,
        Value("60000"),
        PRODUCERS,
        "bound on one record's delivery, at least linger + request timeout",
    )
    .alias(&["delivery.timeout.ms", "message.timeout.ms"]),
    row(
        "kafka.enable_idempotence",
        Bool,
        Value("true"),
        PRODUCERS,
        "idempotent producer (with acks `all`): a retry never stores a batch twice",
    )
    .alias(&["enable.idempotence"]),
    row(
        "kafka.max_in_flight",
        Number,
        Derived("5 when idempotent, else 1"),
        PRODUCERS,
        "batches of one partition in flight (1..=5 when idempotent)",
    )
    .alias(&["max.in.flight.requests.per.connection", "max.in.flight"]),
    row(
        "kafka.create_partitions",
        Number,
        Unset,
        PRODUCERS,
        "create an unknown topic with this many partitions, replicated as the broker's `default.replication.factor`",
    ),
    row(
        "kafka.batch_records",
        Number,
        Value("500"),
        FORWARD,
        "records per send the forwarder hands to the producer, and per acknowledged-cursor write",
    ),
    row(
        "kafka.transactional_id",
        Text,
        Derived("`avro-edge-` and the gateway id, with `forward.exactly_once`"),
        FORWARD,
        "the producer's transactional id (`forward.exactly_once` only); a newer producer with the same id fences this one",
    )
    .alias(&["transactional.id"]),
    row(
        "kafka.transaction_timeout_ms",
        Millis,
        Value("60000"),
        FORWARD,
        "how long the coordinator lets a transaction stay open before it aborts it (`forward.exactly_once`; at most the broker's `transaction.max.timeout.ms`)",
    )
    .alias(&["transaction.timeout.ms"]),
    // ---- the consumer (consume) ----
    row(
        "kafka.fetch_max_bytes",
        Size,
        Value("2MiB"),
        CONSUME,
        "most bytes of one Fetch answer, 1KiB..1GiB",
    )
    .alias(&["fetch.max.bytes"]),
    row(
        "kafka.max_partition_fetch_bytes",
        Size,
        Value("256KiB"),
        CONSUME,
        "most bytes per partition in one Fetch answer, 1KiB..1GiB",
    )
    .alias(&["max.partition.fetch.bytes"]),
    row(
        "kafka.max_poll_records",
        Number,
        Value("500"),
        CONSUME,
        "most records one poll returns",
    )
    .alias(&["max.poll.records"]),
    row(
        "kafka.auto_offset_reset",
        OneOf(&["earliest", "latest"]),
        Value("latest"),
        CONSUME,
        "where a group with no committed offset starts (also `smallest`, `beginning` / `largest`, `end`; `consume --from-beginning`: earliest)",
    )
    .alias(&["auto.offset.reset"]),
    row(
        "kafka.enable_auto_commit",
        Bool,
        Value("true"),
        CONSUME,
        "commit the positions of what was read, periodically and on close",
    )
    .alias(&["enable.auto.commit"]),
    row(
        "kafka.auto_commit_interval_ms",
        Millis,
        Value("5000"),
        CONSUME,
        "period of the automatic commits",
    )
    .alias(&["auto.commit.interval.ms"]),
    row(
        "kafka.session_timeout_ms",
        Millis,
        Value("10000"),
        CONSUME,
        "how long the group coordinator waits for a heartbeat before it evicts the member",
    )
    .alias(&["session.timeout.ms"]),
    row(
        "kafka.heartbeat_interval_ms",
        Millis,
        Value("3000"),
        CONSUME,
        "heartbeat period, below `session_timeout_ms`",
    )
    .alias(&["heartbeat.interval.ms"]),
    row(
        "kafka.max_poll_interval_ms",
        Millis,
        Value("30000"),
        CONSUME,
        "sent as JoinGroup's rebalance timeout, as the Java client does: how long the coordinator waits for members to rejoin",
    )
    .alias(&["max.poll.interval.ms"]),
    row(
        "kafka.group_instance_id",
        Text,
        Unset,
        CONSUME,
        "static membership (KIP-345): a member back within the session timeout keeps its partitions without a rebalance",
    )
    .alias(&["group.instance.id"]),
    row(
        "kafka.isolation_level",
        OneOf(&["read_committed", "read_uncommitted"]),
        Value("read_committed"),
        CONSUME,
        "committed records only, or also those of open and aborted transactions",
    )
    .alias(&["isolation.level"]),
    row(
        "kafka.client_rack",
        Text,
        Unset,
        CONSUME,
        "the rack this client runs in, so a broker can serve it from a replica in the same rack (KIP-392)",
    )
    .alias(&["client.rack"]),
    // ---- the schema registry (forward) ----
    row(
        "registry.urls",
        List,
        Unset,
        FORWARD,
        "Schema Registry URLs, tried in turn (none: the offline cache only)",
    ),
    row(
        "registry.schema_cache",
        Path,
        Unset,
        FORWARD,
        "offline schema cache directory",
    ),
    // ---- the spool (forward) ----
    row(
        "spool.dir",
        Path,
        Value("/var/lib/avro-edge/spool"),
        FORWARD,
        "spool directory",
    ),
    row(
        "spool.fsync",
        OneOf(&["always", "interval", "never"]),
        Value("interval"),
        FORWARD,
        "when spool writes are synced to disk",
    ),
    row(
        "spool.fsync_interval_ms",
        Millis,
        Value("100"),
        FORWARD,
        "fsync period for `fsync = interval`",
    ),
    row(
        "spool.max_bytes",
        Size,
        Value("256MiB"),
        FORWARD,
        "spool size bound, at least 64KiB",
    ),
    row(
        "spool.when_full",
        OneOf(&["block", "drop_oldest"]),
        Value("block"),
        FORWARD,
        "what appends do at the bound: wait, or drop the oldest segment",
    ),
    row(
        "spool.segment_bytes",
        Size,
        Derived("`max_bytes` / 8, 64KiB..4MiB"),
        FORWARD,
        "segment size, 4KiB..`max_bytes` / 4",
    ),
    row(
        "spool.reserve_bytes",
        Size,
        Derived("1MiB, at most 1/16 of the file system"),
        FORWARD,
        "free space left on the spool's file system",
    ),
    // ---- how the forwarder delivers (forward) ----
    row(
        "forward.exactly_once",
        Bool,
        Value("false"),
        FORWARD,
        "each send window a Kafka transaction that also stores the spool position: read_committed consumers see every record once across restarts (README \"Exactly-once\")",
    ),
    row(
        "forward.commit_interval_ms",
        Millis,
        Value("100"),
        FORWARD,
        "with `exactly_once`: how long a transaction gathers send windows before it commits, below `kafka.transaction_timeout_ms`",
    ),
    row(
        "forward.positions_topic",
        Text,
        Value("avro-edge-positions"),
        FORWARD,
        "with `exactly_once`: the compacted topic of the gateways' committed spool positions (created when missing)",
    ),
    row(
        "forward.gateway_id",
        Text,
        Derived("the spool's id, written into the spool directory when it was created"),
        FORWARD,
        "this gateway's name in the records' `avro-edge-gateway` header and in its committed position; 1 to 128 of `a-z A-Z 0-9 . _ -`",
    ),
    row(
        "forward.headers",
        Bool,
        Value("true"),
        FORWARD,
        "every record carries the `avro-edge-gateway` and `avro-edge-seq` headers (`consume --dedupe` drops repeats by them)",
    ),
    // ---- the rest (forward) ----
    row(
        "dead_letter",
        Path,
        Value("/var/lib/avro-edge/dead-letter.ndjson"),
        FORWARD,
        "dead-letter file",
    ),
    row(
        "dead_letter_max_bytes",
        Size,
        Value("64MiB"),
        FORWARD,
        "dead-letter size before it moves to `<path>.1`, at least 4KiB",
    ),
    row(
        "drain_timeout_ms",
        Millis,
        Value("10000"),
        FORWARD,
        "on stop, how long to keep sending what is spooled",
    ),
    row(
        "clock_check",
        Bool,
        Value("true"),
        FORWARD,
        "hold records while the system clock is below its lower bound",
    ),
    row(
        "max_line_bytes",
        Size,
        Value("1MiB"),
        FORWARD,
        "longest accepted input line, 1KiB..64MiB",
    ),
    row(
        "metrics.listen",
        Address,
        Unset,
        FORWARD,
        "loopback address for Prometheus `/metrics` (unset: no HTTP)",
    ),
    row(
        "metrics.summary_interval_s",
        Seconds,
        Value("30"),
        FORWARD,
        "period of the log summary",
    ),
];

/// The row of a key (not an alias).
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md, for the checks of its property table and alias list against [`SETTINGS`].
    fn readme() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        std::fs::read_to_string(path).expect("README.md is readable")
    }

    fn code(s: &str) -> String {
        format!("`{s}`")
    }

    /// The README's property table, one line per row of [`SETTINGS`] after its header.
    fn markdown_table() -> Vec<String> {
        let mut lines = vec![
            "| key | librdkafka / Java names | value | default | forward | produce | consume | meaning |"
                .to_string(),
            "| --- | --- | --- | --- | :-: | :-: | :-: | --- |".to_string(),
        ];
        for s in SETTINGS {
            let aliases: Vec<String> = s.aliases.iter().map(|a| code(a)).collect();
            let value = match s.value {
                ValueType::Bool => "`true` \\| `false`".to_string(),
                ValueType::OneOf(words) => words
                    .iter()
                    .map(|w| code(w))
                    .collect::<Vec<_>>()
                    .join(" \\| "),
                other => other.to_string(),
            };
            let default = match s.default {
                DefaultValue::Value(v) => code(v),
                DefaultValue::Unset => "unset".to_string(),
                DefaultValue::Derived(how) => how.to_string(),
            };
            let uses = Command::ALL.map(|c| if s.used_by(c) { "✓" } else { "" });
            lines.push(format!(
                "| {} | {} | {value} | {default} | {} | {} | {} | {} |",
                code(s.key),
                aliases.join(", "),
                uses[0],
                uses[1],
                uses[2],
                s.meaning
            ));
        }
        lines
    }

    /// The README's table is [`SETTINGS`] (on failure, the table to paste is printed).
    #[test]
    fn readme_property_table_is_the_settings_table() {
        let want = markdown_table();
        let readme = readme();
        let got: Vec<&str> = readme
            .lines()
            .skip_while(|l| *l != want[0])
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert!(
            got == want,
            "README.md's property table (section \"Every setting\") differs from config::SETTINGS; \
             the table as it should read:\n\n{}\n",
            want.join("\n")
        );
    }

    /// The alias list in "One configuration vocabulary" names every alias of [`SETTINGS`], in order.
    #[test]
    fn readme_alias_list_is_the_settings_tables() {
        let readme = readme();
        let start = readme
            .find("The librdkafka / Java names, from the settings table:")
            .expect("README.md has the alias list");
        let paragraph = readme[start..].split("\n\n").next().unwrap_or_default();
        let got: Vec<&str> = paragraph.split('`').skip(1).step_by(2).collect();
        let want: Vec<&str> = SETTINGS
            .iter()
            .flat_map(|s| s.aliases.iter().copied())
            .collect();
        assert_eq!(
            got, want,
            "README.md's alias list differs from config::SETTINGS"
        );
    }

    #[test]
    fn keys_and_aliases_are_unique_and_only_input_keys_replace_inputs() {
        let mut names: Vec<String> = SETTINGS.iter().map(|s| s.key.to_string()).collect();
        names.extend(SETTINGS.iter().flat_map(Setting::full_aliases));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "a name used twice");
        for s in SETTINGS {
            assert!(!s.used_by.is_empty(), "{} is used by no command", s.key);
            assert!(
                !s.replaces_inputs || s.section() == Some("input"),
                "{}",
                s.key
            );
        }
    }
}
