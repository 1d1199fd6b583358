//! `KafkaError`: every failure of the Kafka client, producer and consumer, with stable kinds.
//!
//! Broker error codes are kept (`KafkaError::Kafka{code,..}`) so callers can tell retriable
//! from fatal ones. Must not carry secrets (SASL passwords never appear in messages).

use std::time::Duration;

use kafka_protocol::error::ResponseError;

use crate::error::{ErrorKind, Kind};
use crate::kafka::group::GroupError;
use crate::kafka::record::BatchError;

/// Every variant has a stable kind (see [`ErrorKind`]); a variant that carries the error of
/// another layer ([`KafkaError::Batch`], [`KafkaError::Group`]) has that error's kind.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// No connection could be made to any of the given brokers before the deadline.
    #[error("broker unreachable: {broker}: {reason}")]
    BrokerUnreachable {
        /// The broker (`host:port`) tried last.
        broker: String,
        /// Why it could not be reached.
        reason: String,
    },
    /// A request or a whole operation ran past its deadline.
    #[error("timed out after {:?}: {what}", after)]
    Timeout {
        /// What timed out (e.g. the request's API name).
        what: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The connection closed while a request was in flight; it may or may not have been applied.
    #[error("connection to {broker} lost: {reason}")]
    Disconnected {
        /// The broker (`host:port`).
        broker: String,
        /// Why the connection closed.
        reason: String,
    },
    /// The broker answered with a Kafka error code.
    #[error("kafka error {code} ({name}) from {context}")]
    Kafka {
        /// The Kafka error code (e.g. 6 for `NOT_LEADER_OR_FOLLOWER`).
        code: i16,
        /// The code's name in Kafka's protocol documentation.
        name: String,
        /// The request and, where it applies, the topic-partition that failed.
        context: String,
    },
    /// A frame or message could not be encoded or decoded, or the broker answered something the
    /// protocol does not allow. Only for failures with no typed cause: those have their own variant.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A record batch in a Fetch answer cannot be read. The consumer stops at `position` (records
    /// before the batch were delivered) until the application seeks past it. Kind: the batch error's.
    #[error("{topic}-{partition} at offset {position}: {source}; seek past it to go on")]
    Batch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The consumer's position: the offset the unreadable batch starts at (or contains).
        position: i64,
        /// Why the batch cannot be read.
        #[source]
        source: BatchError,
    },
    /// Consumer-protocol bytes from the coordinator (another member's subscription, or our
    /// assignment) cannot be read. Kind: the group error's.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The broker does not support a version of an API we need.
    #[error("broker {broker} does not support API key {api_key} in a version we speak")]
    UnsupportedVersion {
        /// The Kafka API key (e.g. 0 Produce, 1 Fetch).
        api_key: i16,
        /// The broker (`host:port`).
        broker: String,
    },
    /// SASL authentication failed: the broker refused the credentials (a wrong password; with
    /// PLAIN also an unknown user, which Kafka does not tell apart), or the exchange broke.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// SASL/SCRAM: the broker has no credentials for this user and mechanism (it refused the
    /// client-first message, before any password was checked).
    #[error("authentication failed: unknown user '{user}' for {mechanism}: {message}")]
    UnknownUser {
        /// The user name (never the password).
        user: String,
        /// The mechanism, e.g. `SCRAM-SHA-256`.
        mechanism: &'static str,
        /// The broker's error message.
        message: String,
    },
    /// SASL: the broker's listener does not enable the mechanism.
    #[error("broker {broker} does not enable SASL mechanism {mechanism} (it offers {offered})")]
    MechanismRefused {
        /// The broker (`host:port`).
        broker: String,
        /// The mechanism asked for.
        mechanism: &'static str,
        /// The mechanisms the broker offers, comma-separated.
        offered: String,
    },
    /// TLS setup or handshake failed (bad local files, no common protocol, …).
    #[error("tls: {0}")]
    Tls(String),
    /// TLS: the broker's certificate is not trusted (signed by a CA not in `ssl.ca.location`,
    /// issued for another name, expired).
    #[error("tls: broker certificate not trusted: {0}")]
    TlsUntrusted(String),
    /// TLS: the broker requires a client certificate and got none, or refused ours.
    #[error(
        "tls: the broker refused the client certificate (none given, or not one it trusts): {0}"
    )]
    TlsClientCert(String),
    /// The topic does not exist (and auto-creation is off) or has no partitions.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The producer or client was closed.
    #[error("closed")]
    Closed,
    /// Not sent (or not stored): an earlier batch of the partition was refused for good, and its
    /// good records are for the caller to send again; these come after them, so they fail too
    /// (retriable) rather than overtake them.
    #[error(
        "not stored: an earlier batch of {topic}-{partition} was refused ({cause}); send again after it"
    )]
    BehindRefused {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The kind of the earlier batch's refusal.
        cause: Kind,
    },
    /// Another producer with this transactional id took over (PRODUCER_FENCED, or
    /// INVALID_PRODUCER_EPOCH from the coordinator): this producer can do nothing more.
    #[error(
        "producer fenced: another producer took over transactional.id '{transactional_id}' ({context})"
    )]
    ProducerFenced {
        /// The transactional id.
        transactional_id: String,
        /// The request that found out.
        context: String,
    },
    /// The coordinator aborted the open transaction after `transaction.timeout.ms` without an
    /// answer from this producer, and fenced it: a new producer (same id) goes on.
    #[error(
        "transaction of '{transactional_id}' open {open:?}, past transaction.timeout.ms: the coordinator aborted it"
    )]
    TransactionTimedOut {
        /// The transactional id.
        transactional_id: String,
        /// How long the transaction had been open.
        open: Duration,
    },
    /// The transaction cannot commit (a record or a request in it failed, or it is being
    /// aborted): abort it and send again.
    #[error("transaction must be aborted: {0}")]
    TransactionAbortable(String),
    /// A transactional call in the wrong state (send outside a transaction, commit without
    /// begin, a producer that is not transactional).
    #[error("transaction state: {0}")]
    TransactionState(String),
    /// A record is larger than the producer's limits.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// The record's size in bytes.
        size: usize,
        /// The limit in bytes (the producer's `max_record_size`).
        limit: usize,
    },
}

impl KafkaError {
    /// Build from a non-zero Kafka error code; `None` for code 0.
    pub fn from_code(code: i16, context: impl Into<String>) -> Option<KafkaError> {
        let e = ResponseError::try_from_code(code)?;
        Some(KafkaError::from_response(e, context))
    }

    /// Build from an error the broker answered with (never code 0, so this cannot fail).
    pub fn from_response(e: ResponseError, context: impl Into<String>) -> KafkaError {
        KafkaError::Kafka {
            code: e.code(),
            name: e.to_string(),
            context: context.into(),
        }
    }

    /// The Kafka error code, when the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            KafkaError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            KafkaError::BrokerUnreachable { .. }
            | KafkaError::Timeout { .. }
            | KafkaError::Disconnected { .. }
            | KafkaError::BehindRefused { .. } => true,
            KafkaError::Kafka { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            _ => false,
        }
    }

    /// Whether the broker or the TLS layer refused who we are or whom we talk to (SASL credentials,
    /// mechanism, certificates) or the local security settings are unusable: retrying cannot help,
    /// so connecting stops at once and the CLI exits with its own code.
    pub fn is_security_rejection(&self) -> bool {
        matches!(
            self,
            KafkaError::Auth(_)
                | KafkaError::UnknownUser { .. }
                | KafkaError::MechanismRefused { .. }
                | KafkaError::Tls(_)
                | KafkaError::TlsUntrusted(_)
                | KafkaError::TlsClientCert(_)
        )
    }

    /// For records a produce returned this error for: why the broker (or the producer's own size
    /// limit) refuses those very records for good (the dead-letter file's `rejection`); `None` when
    /// the same records may go through later.
    ///
    /// Permanent, a property of the record: MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE,
    /// CORRUPT_MESSAGE (left after the producer's own retries; it is also the answer to a null key
    /// on a compacted topic), INVALID_RECORD, and [`KafkaError::RecordTooLarge`]. Not permanent:
    /// everything retriable, and every refusal that a fix of the setup cures without touching the
    /// records ([`KafkaError::setup_refusal`]): INVALID_TIMESTAMP (the timestamp is the producer's
    /// clock when the record joined its batch, so it is about our clock, not the record),
    /// authorization, authentication, TLS, an unknown topic, configuration, unsupported versions.
    pub fn permanent_rejection(&self) -> Option<Kind> {
        match self {
            KafkaError::RecordTooLarge { .. } => Some(Kind::RecordTooLarge),
            KafkaError::Kafka { code, .. } => match code {
                2 => Some(Kind::CorruptMessage),
                10 => Some(Kind::MessageTooLarge),
                18 => Some(Kind::RecordListTooLarge),
                87 => Some(Kind::InvalidRecord),
                _ => None,
            },
            _ => None,
        }
    }

    /// Why the setup refuses records, when it does: a refusal that no retry of the same setup gets
    /// past but that fixing the setup cures without touching the records, so a caller keeps them and
    /// sends them again later (the forwarder holds them in its spool). `None` for a passing failure
    /// (retriable: a broker down, a leader moving) and for a record's own fault
    /// ([`KafkaError::permanent_rejection`]).
    ///
    /// The refusals: SASL and TLS ([`KafkaError::is_security_rejection`]), an unknown topic,
    /// TOPIC/GROUP/CLUSTER/TRANSACTIONAL_ID_AUTHORIZATION_FAILED, INVALID_TIMESTAMP (by the
    /// accepted range the broker names, [`KafkaError::refused_timestamp`]: `clock-ahead-of-broker`
    /// or `clock-behind-broker`, else `invalid-timestamp`), the client's configuration or versions
    /// the broker refuses (INVALID_REQUIRED_ACKS, UNSUPPORTED_VERSION, UNSUPPORTED_FOR_MESSAGE_FORMAT,
    /// POLICY_VIOLATION, UNSUPPORTED_COMPRESSION_TYPE, the SASL codes).
    pub fn setup_refusal(&self) -> Option<Kind> {
        match self {
            e if e.is_security_rejection() => Some(e.kind()),
            KafkaError::UnknownTopic(_)
            | KafkaError::Config(_)
            | KafkaError::UnsupportedVersion { .. } => Some(self.kind()),
            KafkaError::Kafka { code: 32, .. } => Some(match self.refused_timestamp() {
                Some(t) if t.timestamp_ms > t.accepted_until_ms => Kind::ClockAheadOfBroker,
                Some(t) if t.timestamp_ms < t.accepted_from_ms => Kind::ClockBehindBroker,
                _ => Kind::InvalidTimestamp,
            }),
            KafkaError::Kafka { code, .. } if SETUP_CODES.contains(code) => {
                Some(kind_of_code(*code))
            }
            _ => None,
        }
    }

    /// For INVALID_TIMESTAMP: the refused timestamp and the range the broker accepted at that moment,
    /// from the broker's record error (`Timestamp T of message with offset O is out of range. The
    /// timestamp should be within [FROM, UNTIL]`, Kafka's `LogValidator`, which the producer puts
    /// in the error's context). `None` for other errors, or when the broker did not say it.
    pub fn refused_timestamp(&self) -> Option<RefusedTimestamp> {
        let KafkaError::Kafka {
            code: 32, context, ..
        } = self
        else {
            return None;
        };
        let number = |s: &str| -> Option<i64> {
            let end = s
                .char_indices()
                .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
                .map_or(s.len(), |(i, _)| i);
            s.get(..end)?.parse().ok()
        };
        let rest = after_pat(context, "Timestamp ")?;
        let timestamp_ms = number(rest)?;
        let range = after_pat(rest, "within [")?;
        let accepted_from_ms = number(range)?;
        let accepted_until_ms = number(after_pat(range, ", ")?)?;
        Some(RefusedTimestamp {
            timestamp_ms,
            accepted_from_ms,
            accepted_until_ms,
        })
    }

    /// Whether cached metadata should be refreshed after this error.
    pub fn needs_metadata_refresh(&self) -> bool {
        matches!(
            self.code(),
            Some(3 /* UNKNOWN_TOPIC_OR_PARTITION */)
                | Some(5 /* LEADER_NOT_AVAILABLE */)
                | Some(6 /* NOT_LEADER_OR_FOLLOWER */)
        ) || matches!(
            self,
            KafkaError::Disconnected { .. } | KafkaError::BrokerUnreachable { .. }
        )
    }
}

/// Broker error codes (besides INVALID_TIMESTAMP and the authorization failures, which have their
/// own kinds) that refuse a produce for a reason in the client's setup: INVALID_REQUIRED_ACKS (21),
/// UNSUPPORTED_SASL_MECHANISM (33), UNSUPPORTED_VERSION (35), UNSUPPORTED_FOR_MESSAGE_FORMAT (43),
/// POLICY_VIOLATION (44), SASL_AUTHENTICATION_FAILED (58), UNSUPPORTED_COMPRESSION_TYPE (76); and
/// TOPIC/GROUP/CLUSTER/TRANSACTIONAL_ID_AUTHORIZATION_FAILED (29, 30, 31, 53).
const SETUP_CODES: [i16; 11] = [21, 29, 30, 31, 33, 35, 43, 44, 53, 58, 76];

/// The rest of `s` after the first `pat`.
fn after_pat<'a>(s: &'a str, pat: &str) -> Option<&'a str> {
    s.find(pat).and_then(|i| s.get(i + pat.len()..))
}

/// A timestamp the broker refused (INVALID_TIMESTAMP) and the range it accepted then, in ms since
/// the epoch by the broker's clock ([`KafkaError::refused_timestamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedTimestamp {
    /// The record's timestamp: the producer's clock when the record joined its batch.
    pub timestamp_ms: i64,
    /// The broker's clock less `log.message.timestamp.before.max.ms` (far in the past by default).
    pub accepted_from_ms: i64,
    /// The broker's clock plus `log.message.timestamp.after.max.ms` (1 h by default since Kafka 4.0).
    pub accepted_until_ms: i64,
}

/// The kind of a broker error code: its own kind for the codes that reject records for good
/// (a caller dead-letters those records and goes on), for INVALID_TIMESTAMP and the authorization
/// failures (a caller keeps those records until the setup is fixed) and for a fenced static
/// consumer (it must stop), `kafka-error` for the rest. Codes 2 and 18 name differently here than in
/// [`KafkaError::permanent_rejection`] (`kafka-error` and `message-too-large` here,
/// `corrupt-message` and `record-list-too-large` there), as released.
fn kind_of_code(code: i16) -> Kind {
    match code {
        10 /* MESSAGE_TOO_LARGE */ | 18 /* RECORD_LIST_TOO_LARGE */ => Kind::MessageTooLarge,
        87 /* INVALID_RECORD */ => Kind::InvalidRecord,
        32 /* INVALID_TIMESTAMP */ => Kind::InvalidTimestamp,
        29 /* TOPIC_AUTHORIZATION_FAILED */ => Kind::TopicAuthorizationFailed,
        30 /* GROUP_AUTHORIZATION_FAILED */ => Kind::GroupAuthorizationFailed,
        31 /* CLUSTER_AUTHORIZATION_FAILED */ => Kind::ClusterAuthorizationFailed,
        53 /* TRANSACTIONAL_ID_AUTHORIZATION_FAILED */ => Kind::TransactionalIdAuthorizationFailed,
        82 /* FENCED_INSTANCE_ID */ => Kind::FencedInstanceId,
        _ => Kind::KafkaError,
    }
}

impl ErrorKind for KafkaError {
    fn kind(&self) -> Kind {
        match self {
            KafkaError::BrokerUnreachable { .. } => Kind::BrokerUnreachable,
            KafkaError::Timeout { .. } => Kind::Timeout,
            KafkaError::Disconnected { .. } => Kind::Disconnected,
            KafkaError::Kafka { code, .. } => kind_of_code(*code),
            KafkaError::Protocol(_) => Kind::ProtocolError,
            KafkaError::Batch { source, .. } => source.kind(),
            KafkaError::Group(e) => e.kind(),
            KafkaError::UnsupportedVersion { .. } => Kind::UnsupportedVersion,
            KafkaError::Auth(_) => Kind::AuthFailed,
            KafkaError::UnknownUser { .. } => Kind::SaslUnknownUser,
            KafkaError::MechanismRefused { .. } => Kind::SaslMechanismRefused,
            KafkaError::Tls(_) => Kind::TlsError,
            KafkaError::TlsUntrusted(_) => Kind::TlsUntrustedBroker,
            KafkaError::TlsClientCert(_) => Kind::TlsClientCertificate,
            KafkaError::UnknownTopic(_) => Kind::UnknownTopic,
            KafkaError::Config(_) => Kind::InvalidConfig,
            KafkaError::Closed => Kind::Closed,
            KafkaError::BehindRefused { .. } => Kind::BehindRefused,
            KafkaError::RecordTooLarge { .. } => Kind::RecordTooLarge,
            KafkaError::ProducerFenced { .. } => Kind::ProducerFenced,
            KafkaError::TransactionTimedOut { .. } => Kind::TransactionTimedOut,
            KafkaError::TransactionAbortable(_) => Kind::TransactionAbortable,
            KafkaError::TransactionState(_) => Kind::TransactionState,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_name_and_retriability() {
        let e = KafkaError::from_code(6, "produce t-0").unwrap();
        assert_eq!(e.code(), Some(6));
        assert!(e.is_retriable());
        assert!(e.needs_metadata_refresh());
        assert_eq!(e.kind(), "kafka-error");
        assert!(e.to_string().contains("NotLeaderOrFollower"), "{e}");
        let fatal = KafkaError::from_code(10, "produce").unwrap(); // MESSAGE_TOO_LARGE
        assert!(!fatal.is_retriable());
        assert_eq!(fatal.kind(), "message-too-large");
        for (code, kind) in [
            (18, "message-too-large"),
            (87, "invalid-record"),
            (32, "invalid-timestamp"),
            (29, "topic-authorization-failed"),
        ] {
            let e = KafkaError::from_code(code, "produce t-0").unwrap();
            assert_eq!(e.kind(), kind, "{e}");
            assert!(!e.is_retriable(), "{e}");
        }
        assert!(KafkaError::from_code(0, "x").is_none());
    }

    #[test]
    fn permanent_rejections_are_the_record_level_refusals_only() {
        for (code, name) in [
            (2, "corrupt-message"),
            (10, "message-too-large"),
            (18, "record-list-too-large"),
            (87, "invalid-record"),
        ] {
            let e = KafkaError::from_code(code, "produce t-0").unwrap();
            assert_eq!(e.permanent_rejection().map(Kind::as_str), Some(name), "{e}");
        }
        let too_large = KafkaError::RecordTooLarge { size: 10, limit: 1 };
        assert_eq!(too_large.permanent_rejection(), Some(Kind::RecordTooLarge));
        // Retriable, cured by creating the topic, or cured by fixing the setup (the clock, an ACL):
        // records stay.
        for code in [3, 6, 7, 19, 29, 30, 31, 32, 53, 58, 76] {
            let e = KafkaError::from_code(code, "produce t-0").unwrap();
            assert_eq!(e.permanent_rejection(), None, "{e}");
        }
        for e in [
            KafkaError::Auth("bad password".into()),
            KafkaError::Tls("unknown ca".into()),
            KafkaError::UnknownTopic("t".into()),
            KafkaError::Closed,
            KafkaError::Disconnected {
                broker: "b:9092".into(),
                reason: "eof".into(),
            },
        ] {
            assert_eq!(e.permanent_rejection(), None, "{e}");
        }
    }

    #[test]
    fn carried_errors_keep_their_kind_and_stay_fatal() {
        let batch = KafkaError::Batch {
            topic: "t".into(),
            partition: 3,
            position: 7,
            source: BatchError::Unsupported {
                offset: 5,
                what: "zstd compression",
            },
        };
        assert_eq!(batch.kind(), "unsupported-record-format");
        assert_eq!(
            batch.to_string(),
            "t-3 at offset 7: record batch at offset 5 uses zstd compression, which avro-edge \
             does not read; seek past it to go on"
        );
        let group = KafkaError::from(crate::kafka::group::decode_assignment(&[0]).unwrap_err());
        assert_eq!(group.kind(), "bad-group-metadata");
        // As when they were `Protocol` errors: not retried, no metadata refresh.
        for e in [batch, group] {
            assert!(!e.is_retriable() && !e.needs_metadata_refresh(), "{e}");
            assert_eq!(e.code(), None);
        }
        let fatal = KafkaError::from_response(ResponseError::GroupAuthorizationFailed, "group g");
        assert_eq!(
            (fatal.code(), fatal.kind().as_str()),
            (Some(30), "group-authorization-failed")
        );
        let fenced = KafkaError::from_response(ResponseError::FencedInstanceId, "group g");
        assert_eq!(
            (fenced.code(), fenced.kind().as_str()),
            (Some(82), "fenced-instance-id")
        );
        assert!(!fenced.is_retriable());
    }

    /// The produce context as the producer writes it, with Kafka 4.1's record error.
    fn invalid_timestamp(ts: i64, from: i64, until: i64) -> KafkaError {
        KafkaError::from_code(
            32,
            format!(
                "produce t-0 One or more records have been rejected due to invalid timestamp; \
                 Timestamp {ts} of message with offset 0 is out of range. The timestamp should be \
                 within [{from}, {until}]"
            ),
        )
        .unwrap()
    }

    #[test]
    fn an_invalid_timestamp_says_which_way_our_clock_is_off() {
        let now = 1_764_028_800_000;
        let ahead = invalid_timestamp(now + 7_200_000, now - i64::MAX, now + 3_600_000);
        assert_eq!(
            ahead.refused_timestamp(),
            Some(RefusedTimestamp {
                timestamp_ms: now + 7_200_000,
                accepted_from_ms: now - i64::MAX,
                accepted_until_ms: now + 3_600_000,
            })
        );
        assert_eq!(ahead.setup_refusal(), Some(Kind::ClockAheadOfBroker));
        let behind = invalid_timestamp(now - 90_000, now - 60_000, now + 3_600_000);
        assert_eq!(behind.setup_refusal(), Some(Kind::ClockBehindBroker));
        // A broker that does not name the range: the direction is not known.
        let bare = KafkaError::from_code(32, "produce t-0 ").unwrap();
        assert_eq!(bare.refused_timestamp(), None);
        assert_eq!(bare.setup_refusal(), Some(Kind::InvalidTimestamp));
        for e in [&ahead, &behind, &bare] {
            assert_eq!(e.kind(), Kind::InvalidTimestamp, "{e}");
            assert_eq!(e.permanent_rejection(), None, "{e}");
        }
    }

    #[test]
    fn setup_refusals_are_neither_passing_nor_the_records_fault() {
        for (code, kind) in [
            (29, "topic-authorization-failed"),
            (30, "group-authorization-failed"),
            (31, "cluster-authorization-failed"),
            (53, "transactional-id-authorization-failed"),
            (43, "kafka-error"),
        ] {
            let e = KafkaError::from_code(code, "produce t-0").unwrap();
            assert_eq!(e.setup_refusal().map(Kind::as_str), Some(kind), "{e}");
            assert_eq!(e.kind().as_str(), kind, "{e}");
        }
        for e in [
            KafkaError::Auth("bad password".into()),
            KafkaError::UnknownTopic("t".into()),
            KafkaError::Config("acks".into()),
        ] {
            assert_eq!(e.setup_refusal(), Some(e.kind()), "{e}");
        }
        // Passing (retried by the producer, then by the caller), or the record's own fault.
        for code in [2, 3, 6, 7, 10, 19, 45, 47, 87] {
            let e = KafkaError::from_code(code, "produce t-0").unwrap();
            assert_eq!(e.setup_refusal(), None, "{e}");
        }
        let behind = KafkaError::BehindRefused {
            topic: "t".into(),
            partition: 0,
            cause: Kind::ClockAheadOfBroker,
        };
        assert_eq!(behind.setup_refusal(), None);
    }
}
