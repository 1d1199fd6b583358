//! The `[kafka]` section's settings ([`KafkaSettings`], the SASL credentials, the security protocol)
//! and their mapping onto the client's own settings: [`KafkaSettings::producer_config`] for `forward`
//! and `produce`, [`KafkaSettings::consumer_config`] for `consume`.
//!
//! Must not read or judge values (`validate` does) nor start a client: it only maps settings.

use std::path::PathBuf;
use std::time::Duration;

use super::Secret;
use crate::kafka::TopicSpec;
use crate::kafka::consumer::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::kafka::producer::{Acks, Compression, ProducerConfig};
use crate::kafka::sasl::{Mechanism, SaslConfig};

/// SASL credentials for the brokers (`kafka.sasl_*`, librdkafka's `sasl.mechanism`,
/// `sasl.username`, `sasl.password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism (default `PLAIN`).
    pub mechanism: Mechanism,
    /// The user name.
    pub username: String,
    /// The password, never logged.
    pub password: Secret,
}

/// How the client talks to the brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication.
    #[default]
    Plaintext,
    /// Plain TCP with SASL authentication.
    SaslPlaintext,
    /// TLS (feature `tls`).
    Ssl,
    /// TLS with SASL authentication (feature `tls`).
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether the connection is TLS (`SSL`, `SASL_SSL`).
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    /// Whether the client authenticates with SASL (`SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `PLAINTEXT`, `SASL_PLAINTEXT`, `SSL`, `SASL_SSL`, any case; the error is the reason.
impl std::str::FromStr for SecurityProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<SecurityProtocol, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(format!(
                "'{s}': expected PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL"
            )),
        }
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        })
    }
}

/// The connection's settings onto a client's config (a [`ProducerConfig`] or a [`ConsumerConfig`],
/// which name these fields alike): one list, so both clients get every one.
macro_rules! connection {
    ($client:expr, $settings:expr) => {{
        $client.client_id = $settings.client_id.clone();
        $client.request_timeout = $settings.request_timeout;
        $client.sasl = $settings.sasl_config();
        #[cfg(feature = "tls")]
        {
            $client.tls = $settings.tls_config();
        }
    }};
}

/// Kafka client settings (`[kafka]`): the connection's, used by every command, and those of the
/// producer and of the consumer, mapped onto the client's own by [`KafkaSettings::producer_config`]
/// and [`KafkaSettings::consumer_config`]. The settings table says which command uses which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port` (`kafka.brokers`, librdkafka's `bootstrap.servers`).
    pub brokers: Vec<String>,
    /// Client id sent to the brokers (`client.id`, default `avro-edge`).
    pub client_id: String,
    /// Bound on one request to a broker (`request.timeout.ms`, default 30 s).
    pub request_timeout: Duration,
    /// SASL credentials, when the brokers require them.
    pub sasl: Option<Sasl>,
    /// Given, or `SASL_PLAINTEXT` with SASL credentials and `PLAINTEXT` without.
    pub security_protocol: SecurityProtocol,
    /// CA certificates (PEM) trusted instead of the Mozilla roots (TLS only).
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificate (PEM) and its key, for brokers that require one (TLS only; both or
    /// neither).
    pub ssl_client_cert: Option<(PathBuf, PathBuf)>,
    /// Name verified in the broker certificates instead of the host of their address (TLS only).
    pub ssl_server_name: Option<String>,
    /// The producer's settings (`forward`, `produce`).
    pub producer: ProducerSettings,
    /// The consumer's settings (`consume`; at their defaults for the other commands).
    pub consumer: ConsumerSettings,
}

/// The producer's settings (`forward` and `produce`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSettings {
    /// Acknowledgements the producer waits for (`acks`, default all).
    pub acks: Acks,
    /// Batch compression (`compression.type`, default none).
    pub compression: Compression,
    /// How long a partial batch may wait to fill (`linger.ms`, default 5 ms).
    pub linger: Duration,
    /// Producer batch size in bytes (`ProducerConfig::batch_size`).
    pub batch_size: usize,
    /// Bound on one record's send, from hand-over to acknowledgement (`ProducerConfig::delivery_timeout`).
    pub delivery_timeout: Duration,
    /// `enable.idempotence` (default true): the producer is idempotent (with `acks = all`), so a
    /// retry never stores a batch twice.
    pub enable_idempotence: bool,
    /// Batches of one partition in flight (`max.in.flight.requests.per.connection`); `None`: 5
    /// for the idempotent producer, 1 otherwise.
    pub max_in_flight: Option<usize>,
    /// Create an unknown topic with this many partitions (replication: the broker's
    /// `default.replication.factor`); `None`: the broker's
    /// auto-creation, or an error when it has none.
    pub create_partitions: Option<i32>,
    /// The transactional id (`transactional.id`; the forwarder with `forward.exactly_once` only);
    /// `None`: the forwarder's default, `avro-edge-` and the gateway id.
    pub transactional_id: Option<String>,
    /// How long the coordinator lets a transaction stay open (`transaction.timeout.ms`, default
    /// 60 s).
    pub transaction_timeout: Duration,
}

/// The consumer's settings (`consume`), each at the consumer's default unless given; see
/// [`ConsumerConfig`] for what each does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// Most bytes of one Fetch answer (`fetch.max.bytes`, default 2 MiB).
    pub fetch_max_bytes: i32,
    /// Most bytes per partition in one Fetch answer (`max.partition.fetch.bytes`, default 256 KiB).
    pub max_partition_fetch_bytes: i32,
    /// Most records one poll returns (`max.poll.records`, default 500).
    pub max_poll_records: usize,
    /// Where a group with no committed offset starts (`auto.offset.reset`, default latest;
    /// `consume --from-beginning` is earliest).
    pub auto_offset_reset: OffsetReset,
    /// Commit what `poll` returned, periodically and on close (`enable.auto.commit`, default true).
    pub enable_auto_commit: bool,
    /// Period of the automatic commits (`auto.commit.interval.ms`, default 5 s).
    pub auto_commit_interval: Duration,
    /// How long the coordinator waits for a heartbeat before it evicts the member
    /// (`session.timeout.ms`, default 10 s).
    pub session_timeout: Duration,
    /// Heartbeat period, below the session timeout (`heartbeat.interval.ms`, default 3 s).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (default 30 s): sent as JoinGroup's rebalance timeout, as the Java
    /// client does ([`ConsumerConfig::rebalance_timeout`]).
    pub max_poll_interval: Duration,
    /// Static membership (KIP-345, `group.instance.id`); `None`: a dynamic member.
    pub group_instance_id: Option<String>,
    /// Committed records only, or everything (`isolation.level`, default `read_committed`).
    pub isolation_level: IsolationLevel,
    /// The rack this client runs in (`client.rack`); `None`: none.
    pub client_rack: Option<String>,
}

impl KafkaSettings {
    /// The client's SASL settings (the one place the password leaves its [`Secret`]).
    pub fn sasl_config(&self) -> Option<SaslConfig> {
        self.sasl.as_ref().map(|s| SaslConfig {
            mechanism: s.mechanism,
            username: s.username.clone(),
            password: s.password.expose().to_string(),
        })
    }

    /// The client's TLS settings: `Some` for `SSL` and `SASL_SSL`.
    #[cfg(feature = "tls")]
    pub fn tls_config(&self) -> Option<crate::kafka::tls::TlsConfig> {
        self.security_protocol
            .tls()
            .then(|| crate::kafka::tls::TlsConfig {
                ca_file: self.ssl_ca_location.clone(),
                server_name: self.ssl_server_name.clone(),
                cert_file: self.ssl_client_cert.as_ref().map(|(c, _)| c.clone()),
                key_file: self.ssl_client_cert.as_ref().map(|(_, k)| k.clone()),
            })
    }

    /// The producer settings for these settings (everything else at the producer's defaults).
    pub fn producer_config(&self) -> ProducerConfig {
        let k = &self.producer;
        let mut p = ProducerConfig::new(self.brokers.clone());
        p.acks = k.acks;
        p.enable_idempotence = k.enable_idempotence;
        p.max_in_flight = k.max_in_flight;
        p.compression = k.compression;
        p.linger = k.linger;
        p.batch_size = k.batch_size;
        p.delivery_timeout = k.delivery_timeout;
        p.transactional_id = k.transactional_id.clone();
        p.transaction_timeout = k.transaction_timeout;
        connection!(p, self);
        p.auto_create = k.create_partitions.map(|partitions| TopicSpec {
            partitions,
            // The broker's `default.replication.factor` (KIP-464): 1 on a single node, the cluster's
            // choice on a real one (replication 1 there loses the partition with one broker).
            replication: -1,
        });
        p
    }

    /// The consumer settings of a member of `group` subscribed to `topics`, for these settings
    /// (everything else at the consumer's defaults).
    pub fn consumer_config(&self, group: &str, topics: &[&str]) -> ConsumerConfig {
        let mut c = ConsumerConfig::group(&self.brokers.join(","), group, topics);
        connection!(c, self);
        let k = &self.consumer;
        c.fetch_max_bytes = k.fetch_max_bytes;
        c.fetch_partition_max_bytes = k.max_partition_fetch_bytes;
        c.max_poll_records = k.max_poll_records;
        c.auto_offset_reset = k.auto_offset_reset;
        c.enable_auto_commit = k.enable_auto_commit;
        c.auto_commit_interval = k.auto_commit_interval;
        c.session_timeout = k.session_timeout;
        c.heartbeat_interval = k.heartbeat_interval;
        c.rebalance_timeout = k.max_poll_interval;
        c.group_instance_id = k.group_instance_id.clone();
        c.isolation_level = k.isolation_level;
        c.client_rack = k.client_rack.clone();
        c
    }
}
