//! Consumer settings: [`ConsumerConfig`] (a group member with [`ConsumerConfig::group`], a
//! fixed-partition reader with [`ConsumerConfig::assign`]) and [`OffsetReset`].
//!
//! Must not do I/O: it only says what the consumer should do (and refuses settings that
//! cannot work).

use std::time::Duration;

use crate::kafka::group::Assignor;
use crate::kafka::quirks::BrokerQuirks;
use crate::kafka::{KafkaError, SaslConfig};

/// Where to start when a partition has no committed offset (or the committed one is gone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// From the oldest record still kept (the seed's `fromBeginning: true`).
    Earliest,
    /// Only records produced from now on (Kafka's default).
    #[default]
    Latest,
}

/// Which records a fetch may return (`isolation.level`). Sent in every Fetch and ListOffsets
/// (v2+); transaction markers (control records) are never returned, in either level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Every record up to the high watermark, including those of open and aborted transactions
    /// (`read_uncommitted`, the Java client's default).
    ReadUncommitted,
    /// Only committed records: the broker ends each fetch at the last stable offset (before the
    /// first open transaction; "latest" is that offset too), and the consumer skips the batches of
    /// the aborted transactions the answer lists, from each one's first offset to its producer's
    /// abort marker, as Java's `CompletedFetch` does (`read_committed`, the default here, as in
    /// kafkajs, which the reference service used).
    #[default]
    ReadCommitted,
}

impl IsolationLevel {
    /// The `isolation_level` of Fetch and ListOffsets requests.
    pub(super) fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

impl OffsetReset {
    /// The ListOffsets timestamp that asks for this position.
    pub(super) fn timestamp(self) -> i64 {
        match self {
            OffsetReset::Earliest => -2,
            OffsetReset::Latest => -1,
        }
    }
}

/// Consumer settings. Build with [`ConsumerConfig::group`] or [`ConsumerConfig::assign`] and
/// adjust fields; defaults follow the Java client except where noted.
///
/// Memory: what the consumer holds at once is bounded by the fetch limits. One Fetch answer per
/// leader is at most `fetch_max_bytes` (and `fetch_partition_max_bytes` per partition, except
/// that Kafka always returns the first batch whole); a partition with more than
/// `max_buffered_bytes` of fetched records not yet returned by `poll` is not fetched again; each
/// `poll` parses out at most `max_poll_records`. The defaults are sized for a gateway (tens of MiB
/// of RAM for the whole process), not for a server: the Java client's 50 MiB / 1 MiB would let
/// one answer hold 50 MiB.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `host:port` bootstrap brokers.
    pub brokers: Vec<String>,
    /// The consumer group; required for subscriptions and for commits.
    pub group_id: Option<String>,
    /// Topics to subscribe to through the group (ignored when `assignment` is set).
    pub topics: Vec<String>,
    /// Group-less mode: read exactly these partitions; no JoinGroup, no heartbeats.
    pub assignment: Vec<(String, i32)>,
    /// Where to start when the group has no committed offset, or it is out of range
    /// (`auto.offset.reset`, default latest).
    pub auto_offset_reset: OffsetReset,
    /// How long the coordinator waits for a heartbeat before evicting us (default 10 s).
    pub session_timeout: Duration,
    /// How long the coordinator waits for every member to rejoin during a rebalance; Java's
    /// `max.poll.interval.ms`, which it sends as JoinGroup's rebalance timeout (default 30 s).
    pub rebalance_timeout: Duration,
    /// Static membership (KIP-345, `group.instance.id`), as Java's consumer does it: JoinGroup
    /// (v5+, Kafka 2.3; an older coordinator is refused with `unsupported-version`), SyncGroup,
    /// Heartbeat and OffsetCommit name the id; close does not send LeaveGroup, so the coordinator
    /// keeps the member and its partitions for `session_timeout`, and a member started again under
    /// the same id within it gets the same partitions back in the same generation, without a
    /// rebalance for the others (size `session_timeout` to cover a restart; the broker allows up
    /// to `group.max.session.timeout.ms`, 30 min by default). Another consumer joining under the
    /// same id fences this one: its polls fail from then on with `fenced-instance-id`. One id per
    /// member of the group; 1 to 249 of `a-zA-Z0-9._-`. `None` (default): a dynamic member.
    pub group_instance_id: Option<String>,
    /// Committed records only, or everything (`isolation.level`, default `read_committed`; see
    /// [`IsolationLevel`]).
    pub isolation_level: IsolationLevel,
    /// The rack this client runs in (`client.rack`), sent as Fetch `rack_id` (v11+, Kafka 2.4; left
    /// out of older versions). A leader with a replica selector (`replica.selector.class`) may then
    /// name a replica in the same rack (KIP-392): the partition is fetched from it for 5 minutes
    /// (the metadata max age) or until it answers an error, then from the leader again, as in Java.
    /// `None` (default): no rack.
    pub client_rack: Option<String>,
    /// Heartbeat period; keep it below a third of the session timeout (default 3 s).
    pub heartbeat_interval: Duration,
    /// Commit the positions of what `poll` returned, periodically and on close
    /// (`enable.auto.commit`, default true).
    pub enable_auto_commit: bool,
    /// Period of auto-commits (`auto.commit.interval.ms`, default 5 s).
    pub auto_commit_interval: Duration,
    /// Most bytes one Fetch answer (one per partition leader) may carry over all its partitions
    /// (`fetch.max.bytes`; bytes; default 2 MiB, Java's is 50 MiB). The broker may go over it by
    /// one batch so that a batch larger than the limit is still delivered. Binds with more than
    /// 8 partitions on one leader (below that the per-partition limit does).
    pub fetch_max_bytes: i32,
    /// Most bytes one Fetch answer may carry for one partition (`max.partition.fetch.bytes`;
    /// bytes; default 256 KiB, Java's is 1 MiB). Also exceeded by the first batch when it is larger.
    /// 256 KiB is one batch of our producer's default size; a record held in memory costs about
    /// twice its wire size (its [`RawRecord`](crate::kafka::record::RawRecord) beside the answer it
    /// points into), so a 3-partition fetch holds ~1.5 MiB, and 200,000 SensorData records read at the
    /// same rate as with 1 MiB (`cargo bench --bench consumer`: 11 MiB peak RSS against 16-18 MiB at
    /// 512 KiB and 45 MiB with Java's limits).
    pub fetch_partition_max_bytes: i32,
    /// Most bytes of fetched records (keys, values, headers) a partition may have waiting for
    /// `poll` before it is fetched again (no Kafka equivalent; Java bounds this only through the
    /// fetch sizes; bytes; default 512 KiB, two fetches' worth). A partition at or over the cap is left
    /// out of the next Fetch, and one under it asks for at most what is left of the cap.
    pub max_buffered_bytes: usize,
    /// How long the broker may hold a fetch waiting for `fetch_min_bytes` (default 500 ms).
    pub fetch_max_wait: Duration,
    /// Bytes the broker waits for before answering a fetch, up to `fetch_max_wait`
    /// (`fetch.min.bytes`, default 1).
    pub fetch_min_bytes: i32,
    /// Most records one `poll` returns (`max.poll.records`; records; 0: everything fetched;
    /// default 500, as in Java). Fetched records wait in memory undecoded; only what a poll
    /// returns is decoded, so this bounds the decoded batch.
    pub max_poll_records: usize,
    /// The preferred assignor; the other one is offered second, so mixed groups (kafkajs offers
    /// only `roundrobin`, Java `range` first) still agree on one.
    pub assignor: Assignor,
    /// Largest decompressed record batch accepted (bytes; default 64 MiB: a cap against a hostile
    /// batch, not a buffer; memory is only used for batches that really are that large).
    pub max_batch_bytes: usize,
    /// Client id sent to the brokers (`client.id`, default `avro-edge`).
    pub client_id: String,
    /// Bound on one request's response (`request.timeout.ms`, default 30 s).
    pub request_timeout: Duration,
    /// Overall bound on (re)connecting to a broker.
    pub connect_deadline: Duration,
    /// SASL authentication (`sasl.mechanism`, `sasl.username`, `sasl.password`); `None`: none.
    pub sasl: Option<SaslConfig>,
    /// TLS to the brokers (feature `tls`); `None` is plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::kafka::tls::TlsConfig>,
    /// Workarounds for a broker that is not Apache Kafka (no Kafka equivalent). `Auto` (default):
    /// only on a broker positively identified as tansu 0.6.0 by its ApiVersions answer, never on
    /// any Apache Kafka; `Tansu`: always; `None`: never. What they are: [`BrokerQuirks`].
    pub broker_quirks: BrokerQuirks,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            brokers: vec!["127.0.0.1:9092".into()],
            group_id: None,
            topics: Vec::new(),
            assignment: Vec::new(),
            auto_offset_reset: OffsetReset::Latest,
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            group_instance_id: None,
            isolation_level: IsolationLevel::ReadCommitted,
            client_rack: None,
            heartbeat_interval: Duration::from_secs(3),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            fetch_max_bytes: 2 * 1024 * 1024,
            fetch_partition_max_bytes: 256 * 1024,
            max_buffered_bytes: 512 * 1024,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            max_poll_records: 500,
            assignor: Assignor::Range,
            max_batch_bytes: 64 * 1024 * 1024,
            client_id: "avro-edge".into(),
            request_timeout: Duration::from_secs(30),
            connect_deadline: Duration::from_secs(10),
            sasl: None,
            #[cfg(feature = "tls")]
            tls: None,
            broker_quirks: BrokerQuirks::Auto,
        }
    }
}

impl ConsumerConfig {
    /// A group member subscribed to `topics`.
    pub fn group(brokers: &str, group_id: &str, topics: &[&str]) -> ConsumerConfig {
        ConsumerConfig {
            brokers: split_brokers(brokers),
            group_id: Some(group_id.to_string()),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..ConsumerConfig::default()
        }
    }

    /// A group-less reader of fixed partitions (commits still work if `group_id` is set).
    pub fn assign(brokers: &str, partitions: &[(&str, i32)]) -> ConsumerConfig {
        ConsumerConfig {
            brokers: split_brokers(brokers),
            assignment: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
            enable_auto_commit: false,
            ..ConsumerConfig::default()
        }
    }

    pub(super) fn validate(&self) -> Result<(), KafkaError> {
        let bad = |m: &str| Err(KafkaError::Config(m.to_string()));
        if self.brokers.is_empty() {
            return bad("no brokers");
        }
        if self.assignment.is_empty() {
            if self.group_id.as_deref().is_none_or(str::is_empty) {
                return bad("a subscription needs a group_id (or use assign mode)");
            }
            if self.topics.is_empty() {
                return bad("no topics to subscribe to");
            }
        }
        if let Some(id) = &self.group_instance_id
            && !valid_instance_id(id)
        {
            return Err(KafkaError::Config(format!(
                "group_instance_id {id:?}: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', not . or .."
            )));
        }
        if self.heartbeat_interval >= self.session_timeout {
            return bad("heartbeat_interval must be below session_timeout");
        }
        if self.fetch_max_bytes <= 0 || self.fetch_partition_max_bytes <= 0 {
            return bad("fetch byte limits must be positive");
        }
        if self.max_buffered_bytes == 0 {
            return bad("max_buffered_bytes must be positive");
        }
        Ok(())
    }
}

/// Kafka's rule for a `group.instance.id` (`JoinGroupRequest.validateGroupInstanceId`, the
/// rule of topic names).
fn valid_instance_id(id: &str) -> bool {
    (1..=249).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn split_brokers(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .collect()
}
