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
    /// Permanent: MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, CORRUPT_MESSAGE (left after the
    /// producer's own retries; it is also the answer to a null key on a compacted topic),
    /// INVALID_TIMESTAMP, INVALID_RECORD, TOPIC_AUTHORIZATION_FAILED, and [`KafkaError::RecordTooLarge`].
    /// Not permanent: everything retriable, an unknown topic (it may be created), and errors that a
    /// fix of the setup cures without touching the records (authentication, TLS, cluster
    /// authorization, configuration, unsupported versions or compression).
    pub fn permanent_rejection(&self) -> Option<Kind> {
        match self {
            KafkaError::RecordTooLarge { .. } => Some(Kind::RecordTooLarge),
            KafkaError::Kafka { code, .. } => match code {
                2 => Some(Kind::CorruptMessage),
                10 => Some(Kind::MessageTooLarge),
                18 => Some(Kind::RecordListTooLarge),
                29 => Some(Kind::TopicAuthorizationFailed),
                32 => Some(Kind::InvalidTimestamp),
                87 => Some(Kind::InvalidRecord),
                _ => None,
            },
            _ => None,
        }
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

/// The kind of a broker error code: its own kind for the codes that reject records for good
/// (a caller dead-letters those records and goes on) and for a fenced static consumer (it must
/// stop), `kafka-error` for the rest. Codes 2 and 18 name differently here than in
/// [`KafkaError::permanent_rejection`] (`kafka-error` and `message-too-large` here,
/// `corrupt-message` and `record-list-too-large` there), as released.
fn kind_of_code(code: i16) -> Kind {
    match code {
        10 /* MESSAGE_TOO_LARGE */ | 18 /* RECORD_LIST_TOO_LARGE */ => Kind::MessageTooLarge,
        87 /* INVALID_RECORD */ => Kind::InvalidRecord,
        32 /* INVALID_TIMESTAMP */ => Kind::InvalidTimestamp,
        29 /* TOPIC_AUTHORIZATION_FAILED */ => Kind::TopicAuthorizationFailed,
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
            (29, "topic-authorization-failed"),
            (32, "invalid-timestamp"),
            (87, "invalid-record"),
        ] {
            let e = KafkaError::from_code(code, "produce t-0").unwrap();
            assert_eq!(e.permanent_rejection().map(Kind::as_str), Some(name), "{e}");
        }
        let too_large = KafkaError::RecordTooLarge { size: 10, limit: 1 };
        assert_eq!(too_large.permanent_rejection(), Some(Kind::RecordTooLarge));
        // Retriable, cured by creating the topic, or cured by fixing the setup: records stay.
        for code in [3, 6, 7, 19, 31, 58, 76] {
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
            (Some(30), "kafka-error")
        );
        let fenced = KafkaError::from_response(ResponseError::FencedInstanceId, "group g");
        assert_eq!(
            (fenced.code(), fenced.kind().as_str()),
            (Some(82), "fenced-instance-id")
        );
        assert!(!fenced.is_retriable());
    }
}
