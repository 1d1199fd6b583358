//! Producer settings: [`ProducerConfig`] (the defaults come from `ProducerConfig::new`), [`Acks`],
//! [`Partitioner`], and how they map onto the cluster client's [`ClientConfig`].
//!
//! Must not do I/O or hold state: it only says what the producer should do.

use std::time::Duration;

use crate::kafka::record::Compression;
use crate::kafka::{ClientConfig, ConnConfig, KafkaError, SaslConfig, TopicSpec};

/// How many acknowledgements the producer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// All in-sync replicas (`acks=-1`, `all`). The default.
    #[default]
    All,
    /// The partition leader only (`acks=1`).
    Leader,
    /// No acknowledgement at all (`acks=0`): no offset, loss possible.
    None,
}

/// The one parser of acks (CLI, config file, env): `all`/`-1`, `1`/`leader`, `0`/`none`, any case.
impl std::str::FromStr for Acks {
    type Err = KafkaError;
    fn from_str(s: &str) -> Result<Acks, KafkaError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" | "leader" => Ok(Acks::Leader),
            "0" | "none" => Ok(Acks::None),
            _ => Err(KafkaError::Config(format!("'{s}': expected all, 1 or 0"))),
        }
    }
}

/// The canonical spelling: `all`, `1`, `0`.
impl std::fmt::Display for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        })
    }
}

/// From a string (as [`FromStr`](std::str::FromStr)) or the integers -1, 1, 0.
impl<'de> serde::Deserialize<'de> for Acks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Acks, D::Error> {
        d.deserialize_any(crate::kafka::setting::FromStrVisitor::new(
            "all, 1 or 0 (or -1)",
            true,
        ))
    }
}

impl Acks {
    pub(super) fn wire(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
            Acks::None => 0,
        }
    }
}

/// How records without a key are spread over partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Partitioner {
    /// Stick to one random partition until its batch is sent, then pick another (Java's default).
    #[default]
    Sticky,
    /// One partition after the other, record by record.
    RoundRobin,
}

/// Producer settings. `ProducerConfig::new(brokers)` gives the defaults.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Bootstrap brokers, `host:port` (`bootstrap.servers`).
    pub brokers: Vec<String>,
    /// Acknowledgements to wait for (`acks`, default all).
    pub acks: Acks,
    /// Idempotent producer (`enable.idempotence`, default true): the broker drops a batch it
    /// already has when a retry sends it again. Takes effect with `acks = all` only; with acks 1
    /// or 0 the producer is not idempotent (as Java's producer does when `enable.idempotence` is
    /// left at its default).
    pub enable_idempotence: bool,
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// A batch is sent once it reaches this many (uncompressed) bytes.
    pub batch_size: usize,
    /// Batch compression (`compression.type`, default none).
    pub compression: Compression,
    /// How often a batch is sent again after a retriable error (`retries`, default unbounded:
    /// `u32::MAX`, as Java's `Integer.MAX_VALUE`). The batch's `delivery_timeout` bounds its
    /// retries in any case; a lower count fails a batch early during a long broker-side outage
    /// (e.g. NOT_ENOUGH_REPLICAS while replicas restart) that the delivery timeout would ride out.
    /// Sends that never reached a broker (no leader, unreachable) and answers about sequence
    /// numbers do not count.
    pub retries: u32,
    /// First delay before a retry or reconnect (`retry.backoff.ms`, default 100 ms); it doubles
    /// per attempt up to `retry_backoff_max`, with ±20 % random jitter (KIP-580, as Java's
    /// `ExponentialBackoff`), so clients that failed together do not retry in lockstep.
    pub retry_backoff: Duration,
    /// Longest retry/reconnect delay (`retry.backoff.max.ms`, default 1 s), jitter included.
    pub retry_backoff_max: Duration,
    /// Bound on each request (also sent to the broker as the produce timeout).
    pub request_timeout: Duration,
    /// Bound on a record's whole life, from `send`/`enqueue` to its acknowledgement or error.
    pub delivery_timeout: Duration,
    /// Client id sent to the brokers (`client.id`, default `avro-edge`).
    pub client_id: String,
    /// SASL authentication (`sasl.mechanism`, `sasl.username`, `sasl.password`); `None`: none.
    pub sasl: Option<SaslConfig>,
    /// TLS to the brokers; `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::kafka::tls::TlsConfig>,
    /// Create unknown topics with this many partitions / this replication factor.
    pub auto_create: Option<TopicSpec>,
    /// How keyless records are spread over partitions (default sticky); keyed ones always go
    /// by key hash.
    pub partitioner: Partitioner,
    /// Largest single record accepted.
    pub max_record_size: usize,
    /// Bytes buffered before `enqueue` blocks (back-pressure).
    pub buffer_memory: usize,
    /// Topic metadata (leaders, partition count) is refreshed at least this often.
    pub metadata_max_age: Duration,
    /// Batches of one partition in flight at once (`max.in.flight.requests.per.connection`);
    /// `None`: 5 for an idempotent producer (its sequences keep them in order, even across
    /// retries), 1 otherwise (without sequences only one in flight keeps order on a retry).
    /// An idempotent producer accepts 1 to 5, as Kafka's brokers track 5 batches per producer.
    pub max_in_flight: Option<usize>,
    /// Transactional producer (`transactional.id`): records are sent inside transactions
    /// ([`Producer::begin_transaction`](super::Producer::begin_transaction) ..
    /// [`commit_transaction`](super::Producer::commit_transaction)); a new producer with the same
    /// id fences this one. Needs idempotence (`acks = all`). `None` (default): not transactional.
    pub transactional_id: Option<String>,
    /// How long the coordinator lets a transaction stay open without a word from the producer
    /// before it aborts it (`transaction.timeout.ms`, default 60 s, as Java's).
    pub transaction_timeout: Duration,
}

impl ProducerConfig {
    /// The defaults for these bootstrap brokers: acks all, idempotent, linger 5 ms, 256 KiB
    /// batches, no compression, retries bounded by the 60 s delivery timeout only (backoff
    /// 100 ms doubling to 1 s, ±20 % jitter), 1 MiB records, 4 MiB buffer.
    pub fn new<S: Into<String>>(brokers: impl IntoIterator<Item = S>) -> ProducerConfig {
        ProducerConfig {
            brokers: brokers.into_iter().map(Into::into).collect(),
            acks: Acks::All,
            enable_idempotence: true,
            linger: Duration::from_millis(5),
            batch_size: 256 * 1024,
            compression: Compression::None,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(60),
            client_id: "avro-edge".into(),
            sasl: None,
            #[cfg(feature = "tls")]
            tls: None,
            auto_create: None,
            partitioner: Partitioner::Sticky,
            max_record_size: 1024 * 1024,
            // Small on purpose: gateways have little RAM; 4 MiB still keeps 16 full batches queued.
            buffer_memory: 4 * 1024 * 1024,
            metadata_max_age: Duration::from_secs(300),
            max_in_flight: None,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }

    /// Whether the producer is transactional (`transactional_id` set).
    pub fn transactional(&self) -> bool {
        self.transactional_id.is_some()
    }

    /// Batches of one partition in flight at once (see [`ProducerConfig::max_in_flight`]).
    pub fn in_flight_per_partition(&self) -> usize {
        let default = if self.idempotent() { 5 } else { 1 };
        self.max_in_flight.unwrap_or(default).max(1)
    }

    /// Whether the producer is idempotent: `enable_idempotence` with `acks = all`.
    pub fn idempotent(&self) -> bool {
        self.enable_idempotence && self.acks == Acks::All
    }

    pub(super) fn client_config(&self) -> ClientConfig {
        ClientConfig {
            bootstrap: self.brokers.clone(),
            conn: ConnConfig {
                client_id: self.client_id.clone(),
                connect_timeout: self.request_timeout.min(Duration::from_secs(5)),
                request_timeout: self.request_timeout,
                sasl: self.sasl.clone(),
                #[cfg(feature = "tls")]
                tls: self.tls.clone(),
                ..ConnConfig::default()
            },
            retry_backoff: self.retry_backoff,
            retry_backoff_max: self.retry_backoff_max,
            connect_deadline: self.delivery_timeout.min(Duration::from_secs(10)),
            auto_create: self.auto_create,
            metadata_max_age: self.metadata_max_age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse_and_wire_values() {
        let p = |s: &str| s.parse::<Acks>();
        assert_eq!(p("all").unwrap().wire(), -1);
        assert_eq!(p("ALL").unwrap(), Acks::All);
        assert_eq!(p("-1").unwrap(), Acks::All);
        assert_eq!(p("1").unwrap().wire(), 1);
        assert_eq!(p("Leader").unwrap(), Acks::Leader);
        assert_eq!(p("0").unwrap().wire(), 0);
        assert_eq!(p("none").unwrap(), Acks::None);
        let e = p("2").unwrap_err().to_string();
        assert!(e.contains("'2': expected all, 1 or 0"), "{e}");
        assert_eq!(Acks::default(), Acks::All);
        for a in [Acks::All, Acks::Leader, Acks::None] {
            assert_eq!(p(&a.to_string()).unwrap(), a);
        }
    }

    #[test]
    fn idempotent_by_default_and_only_with_acks_all() {
        let mut c = ProducerConfig::new(["b:9092"]);
        assert!(c.enable_idempotence && c.idempotent());
        for acks in [Acks::Leader, Acks::None] {
            c.acks = acks;
            assert!(!c.idempotent(), "{acks}");
        }
        c.acks = Acks::All;
        c.enable_idempotence = false;
        assert!(!c.idempotent());
    }

    /// As Java's producer: retries bounded by the delivery timeout only, backoff 100 ms to 1 s.
    #[test]
    fn retries_are_bounded_by_the_delivery_timeout_by_default() {
        let c = ProducerConfig::new(["b:9092"]);
        assert_eq!(c.retries, u32::MAX);
        assert_eq!(c.delivery_timeout, Duration::from_secs(60));
        let backoff = (c.retry_backoff, c.retry_backoff_max);
        assert_eq!(
            backoff,
            (Duration::from_millis(100), Duration::from_secs(1))
        );
    }

    #[test]
    fn acks_deserialize_from_strings_and_integers() {
        #[derive(serde::Deserialize)]
        struct S {
            a: Acks,
        }
        let a = |text: &str| toml::from_str::<S>(text).map(|s| s.a);
        assert_eq!(a("a = \"ALL\"").unwrap(), Acks::All);
        assert_eq!(a("a = -1").unwrap(), Acks::All);
        assert_eq!(a("a = 1").unwrap(), Acks::Leader);
        assert_eq!(a("a = 0").unwrap(), Acks::None);
        let e = a("a = 2").unwrap_err().to_string();
        assert!(e.contains("'2': expected all, 1 or 0"), "{e}");
        assert!(a("a = true").is_err());
    }
}
