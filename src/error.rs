//! The stable kinds of failure: [`Kind`], the one table of every kind the crate can report with
//! its meaning, and [`ErrorKind`], the trait every error enum in the crate implements to name its kind.
//!
//! Kind names are part of the public interface (the CLI prints `error[<kind>]: <message>`, the
//! dead-letter file and the forwarder's last-error metric record them), so they never change once
//! released. Must not hold error types of its own: each module owns its enum, and its `kind()` is
//! an exhaustive `match` over that enum (a new error variant cannot go without a kind). An error
//! that carries another layer's error (e.g. `KafkaError::Batch`) reports the inner error's kind, so
//! the kind survives to the CLI line and the dead-letter file.
//!
//! Adding a kind is one row in the `kinds!` table below (and its row in README.md's "Error kinds",
//! which a test holds to this table).

use std::fmt;
use std::str::FromStr;

/// Names the stable [`Kind`] of each failure, e.g. [`Kind::TruncatedBody`] or
/// [`Kind::BrokerUnreachable`].
pub trait ErrorKind: std::error::Error {
    /// The kind; its [`Kind::as_str`] is what the CLI, the dead-letter file and the metrics print.
    fn kind(&self) -> Kind;
}

/// Defines [`Kind`] from rows `Variant("kebab-name", "one-line meaning")`: the enum, [`Kind::ALL`]
/// (in row order), [`Kind::as_str`] and [`Kind::meaning`].
macro_rules! kinds {
    ($($variant:ident($name:literal, $meaning:literal $(,)?)),* $(,)?) => {
        /// Every kind of failure the crate reports: any [`ErrorKind::kind`], the registry's error
        /// codes, the broker's permanent rejections, the CLI's own failures and the forwarder's
        /// dead-letter reasons. Each variant's stable name is [`Kind::as_str`] (also its
        /// `Display`, and what [`str::parse`] takes back); README.md's "Error kinds" table lists
        /// them in this order with [`Kind::meaning`].
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $(
                #[doc = concat!("`", $name, "`: ", $meaning, ".")]
                $variant,
            )*
        }

        impl Kind {
            /// Every kind, in the table's order (README.md's order).
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The stable kebab-case name, e.g. `truncated-body`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }

            /// What the kind means, in one line.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Kind::$variant => $meaning,)*
                }
            }
        }
    };
}

kinds! {
    // The Confluent wire frame (`wire`).
    TruncatedHeader(
        "truncated-header",
        "message shorter than the 5-byte frame header (magic byte + schema id)"
    ),
    InvalidMagicByte("invalid-magic-byte", "message does not start with the 0x00 magic byte"),
    // Avro decoding and encoding (`codec`).
    UnknownSchemaId("unknown-schema-id", "schema id unknown to the registry or the offline cache"),
    InvalidSchema("invalid-schema", "schema text is not a valid Avro schema"),
    InvalidSchemaJson("invalid-schema-json", "schema text is not JSON"),
    IncompatibleSchema(
        "incompatible-schema",
        "reader and writer schemas cannot be resolved, or the registry refused the schema as incompatible"
    ),
    TruncatedBody("truncated-body", "Avro body ends early"),
    TrailingBytes("trailing-bytes", "bytes left over after the record"),
    VarintOverflow("varint-overflow", "varint longer than 10 bytes or over 64 bits"),
    IntOutOfRange("int-out-of-range", "value does not fit the Avro int (or the Rust integer) it goes into"),
    NegativeLength("negative-length", "negative byte, string or block length"),
    InvalidUtf8("invalid-utf8", "string is not valid UTF-8"),
    InvalidUnionIndex("invalid-union-index", "union branch index out of range"),
    InvalidEnumIndex("invalid-enum-index", "enum symbol index out of range"),
    InvalidBoolean("invalid-boolean", "boolean byte other than 0 or 1"),
    TooManyItems("too-many-items", "block count of zero-size items over the limit"),
    NestingTooDeep("nesting-too-deep", "value nested deeper than the limit"),
    NotJson("not-json", "input is not JSON"),
    MissingField("missing-field", "record field missing and it has no default"),
    WrongType("wrong-type", "JSON value of the wrong type for the schema"),
    UnknownEnumSymbol("unknown-enum-symbol", "enum symbol not in the schema"),
    UnknownField("unknown-field", "record field not in the schema"),
    Unresolvable("unresolvable", "writer data cannot be resolved to the reader schema"),
    TypeMismatch("type-mismatch", "record does not match the Rust type"),
    SchemaMismatch("schema-mismatch", "schema does not match the Rust record type"),
    // The schema registry (`registry`): error codes, then client failures.
    UnknownSubject("unknown-subject", "no such subject (registry code 40401)"),
    UnknownVersion("unknown-version", "no such schema version (40402)"),
    SubjectSoftDeleted("subject-soft-deleted", "subject was soft-deleted (40404)"),
    SubjectNotSoftDeleted("subject-not-soft-deleted", "subject must be soft-deleted first (40405)"),
    VersionSoftDeleted("version-soft-deleted", "version was soft-deleted (40406)"),
    VersionNotSoftDeleted("version-not-soft-deleted", "version must be soft-deleted first (40407)"),
    NoSubjectConfig("no-subject-config", "subject has no compatibility configuration (40408)"),
    NotFound("not-found", "registry route not found (HTTP 404)"),
    InvalidVersion("invalid-version", "invalid schema version (42202)"),
    InvalidCompatibilityLevel("invalid-compatibility-level", "invalid compatibility level (42203)"),
    UnprocessableRequest("unprocessable-request", "registry could not process the request (422)"),
    Unauthorized("unauthorized", "registry credentials missing or wrong (401)"),
    Forbidden("forbidden", "registry credentials not allowed this (403)"),
    RegistryServerError("registry-server-error", "registry failed internally (5xx, 5xxxx)"),
    RegistryError("registry-error", "any other registry error code"),
    RegistryUnreachable("registry-unreachable", "no registry URL answered, and no cache could"),
    SchemaCache("schema-cache", "offline schema cache unreadable, unwritable or holding a bad file"),
    SchemaCacheConflict(
        "schema-cache-conflict",
        "offline schema cache disagrees with the registry (not overwritten)"
    ),
    RegistryProtocol("registry-protocol", "registry answer is not the documented response"),
    RegistryConfig("registry-config", "bad registry client settings"),
    TlsError("tls-error", "TLS setup or handshake failed (Kafka or registry)"),
    // The spool (`spool`).
    SpoolIo("spool-io", "spool file operation failed"),
    SpoolLocked("spool-locked", "spool directory in use by another process"),
    RecordTooLarge("record-too-large", "record over the spool's or the producer's size limit"),
    SpoolInterrupted("spool-interrupted", "spool stopped taking records (shutting down)"),
    SpoolOptions("spool-options", "bad spool options"),
    SpoolBehindPosition(
        "spool-behind-position",
        "exactly-once: the gateway's committed position is at or above this spool's sequence numbers (a new spool under a reused gateway id)"
    ),
    // The forwarder (`forward`): start-up failures and dead-letter reasons.
    DeadLetterIo("dead-letter-io", "dead-letter file cannot be written"),
    InputIo("input-io", "input cannot be opened or read"),
    MetricsListen("metrics-listen", "metrics listener cannot bind"),
    LineTooLong("line-too-long", "input line longer than max_line_bytes (dead-lettered)"),
    NotAcknowledged("not-acknowledged", "the producer returned no result for a record (sent again)"),
    // The configuration (`config`).
    ConfigRead("config-read", "config file cannot be read"),
    ConfigParse("config-parse", "config file is not valid TOML"),
    ConfigUnknownKey("config-unknown-key", "unknown config key"),
    ConfigInvalid("config-invalid", "config value invalid"),
    ConfigMissing("config-missing", "required config key missing"),
    // Kafka (`kafka`).
    BrokerUnreachable("broker-unreachable", "no broker answered before the connect deadline"),
    Timeout("timeout", "request or operation ran past its deadline"),
    Disconnected("disconnected", "connection lost with a request in flight (it may have been applied)"),
    KafkaError("kafka-error", "broker answered with a Kafka error code"),
    MessageTooLarge(
        "message-too-large",
        "broker refused a record larger than the topic's max.message.bytes (not retried)"
    ),
    InvalidRecord(
        "invalid-record",
        "broker refused a record as invalid (INVALID_RECORD, e.g. a compacted topic without key)"
    ),
    InvalidTimestamp(
        "invalid-timestamp",
        "broker refused a record whose timestamp is outside the topic's accepted range (which it did not name)"
    ),
    TopicAuthorizationFailed("topic-authorization-failed", "the broker does not allow this client the topic"),
    GroupAuthorizationFailed(
        "group-authorization-failed",
        "the broker does not allow this client the consumer group"
    ),
    ClusterAuthorizationFailed(
        "cluster-authorization-failed",
        "the broker does not allow this client a cluster-wide operation"
    ),
    TransactionalIdAuthorizationFailed(
        "transactional-id-authorization-failed",
        "the broker does not allow this client the transactional id"
    ),
    ClockAheadOfBroker(
        "clock-ahead-of-broker",
        "the broker refused record timestamps (our clock) as too far ahead of its own clock"
    ),
    ClockBehindBroker(
        "clock-behind-broker",
        "the broker refused record timestamps (our clock) as too far behind its own clock"
    ),
    // Two rejections the sender dead-letters by (`KafkaError::permanent_rejection`) whose error has
    // another kind (`kafka-error` and `message-too-large` respectively).
    CorruptMessage(
        "corrupt-message",
        "rejection only: the broker refused a record as corrupt (CORRUPT_MESSAGE, also a null key on a compacted topic)"
    ),
    RecordListTooLarge(
        "record-list-too-large",
        "rejection only: the broker refused a batch over its size limit (RECORD_LIST_TOO_LARGE)"
    ),
    FencedInstanceId(
        "fenced-instance-id",
        "another consumer joined the group with this consumer's group.instance.id (FENCED_INSTANCE_ID)"
    ),
    ProducerFenced(
        "producer-fenced",
        "another producer took over this transactional.id (PRODUCER_FENCED): this one stops"
    ),
    TransactionTimedOut(
        "transaction-timed-out",
        "the coordinator aborted the transaction after transaction.timeout.ms: the producer must start again"
    ),
    TransactionAbortable(
        "transaction-abortable",
        "the transaction cannot commit (a record or request in it failed): abort it, then send again"
    ),
    TransactionState(
        "transaction-state",
        "transactional call in the wrong state (a send outside a transaction, a commit without begin)"
    ),
    ProtocolError(
        "protocol-error",
        "Kafka frame could not be encoded or decoded, or the answer breaks the protocol"
    ),
    UnsupportedVersion("unsupported-version", "broker does not speak a version of an API we need"),
    AuthFailed(
        "auth-failed",
        "SASL authentication failed: wrong password (with PLAIN also an unknown user), or a broken exchange"
    ),
    SaslUnknownUser("sasl-unknown-user", "SCRAM: the broker has no credentials for this user and mechanism"),
    SaslMechanismRefused(
        "sasl-mechanism-refused",
        "the broker's listener does not enable the SASL mechanism"
    ),
    TlsUntrustedBroker(
        "tls-untrusted-broker",
        "the broker's TLS certificate is not trusted (another CA, another name, expired)"
    ),
    TlsClientCertificate(
        "tls-client-certificate",
        "the broker requires a TLS client certificate and got none, or refused ours"
    ),
    UnknownTopic("unknown-topic", "topic does not exist or has no partitions"),
    InvalidConfig("invalid-config", "invalid Kafka client configuration"),
    Closed("closed", "producer or consumer already closed"),
    BehindRefused(
        "behind-refused",
        "not stored: an earlier batch of the partition was refused; send again after its records"
    ),
    CorruptRecordBatch("corrupt-record-batch", "fetched record batch fails its checks (CRC, lengths)"),
    UnsupportedRecordFormat(
        "unsupported-record-format",
        "fetched record batch uses a format or codec avro-edge does not read"
    ),
    RecordBatchTooLarge("record-batch-too-large", "fetched record batch decompresses past the limit"),
    BadGroupMetadata("bad-group-metadata", "consumer-group subscription or assignment bytes unreadable"),
    // The command line's own failures (`cli`).
    Io("io", "reading the input or writing the output failed (encode, decode, schemas)"),
    IoError("io-error", "reading the input or writing the output failed (consume)"),
    Stdin("stdin", "reading stdin failed (produce)"),
    Stdout("stdout", "writing stdout failed (spool status)"),
    RecordsFailed("records-failed", "some records were not delivered (produce)"),
    SignalSetup("signal-setup", "SIGINT/SIGTERM handlers cannot be installed"),
    SchemaFiles("schema-files", "schema directory or .avsc file unreadable"),
    FeatureMissing("feature-missing", "command needs a feature this binary was built without"),
    Listen("listen", "test registry cannot bind its address"),
    Preload("preload", "test registry preload file unreadable"),
    Usage("usage", "command line not understood: unknown command or flag, missing or invalid argument"),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is not the stable name of any [`Kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    /// The kind whose [`Kind::as_str`] is `s`.
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// Written as its stable name (dead-letter lines, JSON output).
impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for Kind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Kind> for str {
    fn eq(&self, other: &Kind) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Kind> for &str {
    fn eq(&self, other: &Kind) -> bool {
        *self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    //! [`Kind`]'s table on its own (names, meanings, the name ⇄ kind round trip) and against
    //! README.md's "Error kinds" table.
    //!
    //! Whether every kind is still reported somewhere is not checked: `Kind` is public, so the
    //! compiler does not flag a variant nothing constructs, and a source scan would be guesswork.
    //! What the compiler does hold: every `kind()` is an exhaustive match returning a `Kind`, so a
    //! kind outside the table cannot be reported.

    use std::collections::BTreeSet;
    use std::path::Path;

    use super::{Kind, UnknownKind};

    fn is_kebab(s: &str) -> bool {
        !s.is_empty()
            && s.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
    }

    /// `truncated-header` → `TruncatedHeader`.
    fn camel(kebab: &str) -> String {
        kebab
            .split('-')
            .map(|p| {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut seen = BTreeSet::new();
        for kind in Kind::ALL {
            let (name, meaning) = (kind.as_str(), kind.meaning());
            assert!(is_kebab(name), "kind {name:?} is not kebab-case");
            assert!(seen.insert(name), "kind {name} is in the table twice");
            assert_eq!(
                format!("{kind:?}"),
                camel(name),
                "variant named after {name}"
            );
            assert!(
                !meaning.is_empty() && !meaning.contains('|') && !meaning.contains('\n'),
                "meaning of {name} must be one line with no `|`: {meaning:?}"
            );
        }
    }

    #[test]
    fn a_kind_prints_parses_and_compares_as_its_name() {
        for &kind in Kind::ALL {
            let name = kind.as_str();
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.parse::<Kind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
            assert_eq!(kind, name);
            assert_eq!(name, kind);
            assert_eq!(kind, *name);
            assert_eq!(*name, kind);
        }
        assert_eq!(format!("[{:<9}]", Kind::Timeout), "[timeout  ]");
        assert_ne!(Kind::Io, "io-error");
        assert_eq!(
            "Timeout".parse::<Kind>(),
            Err(UnknownKind("Timeout".into()))
        );
        assert!("".parse::<Kind>().is_err());
    }

    /// The README section, as generated from [`Kind::ALL`].
    fn readme_table() -> String {
        let mut t = String::from("| kind | meaning |\n| --- | --- |\n");
        for kind in Kind::ALL {
            t.push_str(&format!("| `{kind}` | {} |\n", kind.meaning()));
        }
        t
    }

    #[test]
    fn the_readme_lists_exactly_the_kinds_of_the_table() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        let section = readme
            .split("\n## Error kinds\n")
            .nth(1)
            .expect("README.md has a section `## Error kinds`");
        let section = section.split("\n## ").next().unwrap();
        let rows: Vec<(String, String)> = section
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(2) // header and separator
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                assert_eq!(cells.len(), 2, "README kinds row {l:?} must have two cells");
                (cells[0].trim_matches('`').to_string(), cells[1].to_string())
            })
            .collect();
        let want: Vec<(String, String)> = Kind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), k.meaning().to_string()))
            .collect();
        let only_readme: Vec<&(String, String)> =
            rows.iter().filter(|r| !want.contains(r)).collect();
        let only_table: Vec<&(String, String)> =
            want.iter().filter(|r| !rows.contains(r)).collect();
        assert!(
            only_readme.is_empty() && only_table.is_empty() && rows == want,
            "README.md's `## Error kinds` table differs from error::Kind\n\
             only in README: {only_readme:?}\nonly in Kind: {only_table:?}\n\
             (order must match too). The table, generated from Kind::ALL:\n\n{}",
            readme_table()
        );
    }
}
