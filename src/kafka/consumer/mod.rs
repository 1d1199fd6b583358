//! The blocking group consumer: join, assign, fetch, commit; records decoded through the codec.
//!
//! Record batches from Fetch answers are decoded by [`crate::kafka::record`] (v2 format,
//! none/gzip/snappy, every length checked, decompression capped).
//!
//! Must not drop a record it cannot decode: it returns it as an error item with its coordinates.
//!
//! ```no_run
//! use std::time::Duration;
//! use avro_edge::kafka::consumer::{Consumer, ConsumerConfig, OffsetReset};
//!
//! let mut cfg = ConsumerConfig::group("127.0.0.1:9092", "readers", &["sensor-data"]);
//! cfg.auto_offset_reset = OffsetReset::Earliest; // the seed's fromBeginning: true
//! let mut consumer = Consumer::connect(cfg)?;
//! for r in consumer.poll(Duration::from_secs(1))? {
//!     println!("{}-{}@{}: {} bytes", r.topic, r.partition, r.offset, r.value.map_or(0, |v| v.len()));
//! }
//! consumer.commit()?; // auto-commit also runs every `auto_commit_interval` and on close
//! consumer.close()?; // LeaveGroup: the other members take over at once
//! # Ok::<(), avro_edge::kafka::KafkaError>(())
//! ```
//!
//! Design: the group protocol logic (assignors, member state machine) lives in
//! [`crate::kafka::group`] without I/O; this module drives it over [`crate::kafka::Client`]. `poll`
//! runs on the caller's thread (smol `block_on`); a heartbeat thread keeps the membership alive
//! between polls and flags rebalances, which the next `poll` acts on (commit, revoke, rejoin).
//! Rebalancing is eager (everything revoked, then reassigned), like Kafka's classic protocol.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{BrokerId, GroupId, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::codec::Codec;
use crate::error::ErrorKind;
use crate::kafka::conn::with_timeout;
pub use crate::kafka::group::Assignor;
use crate::kafka::group::{
    GroupAction, GroupMember, Membership, PROTOCOL_TYPE, TopicPartitions, decode_subscription,
    encode_assignment, encode_subscription,
};
pub use crate::kafka::record::{BatchError, RawRecord};
use crate::kafka::record::{Fetched, decode_fetched};
use crate::kafka::{Client, ClientConfig, ConnConfig, KafkaError, SaslConfig, Target, block_on};

/// How often the group leader checks the subscribed topics' partition counts.
const METADATA_CHECK_INTERVAL: Duration = Duration::from_secs(3);

/// Upper bound on each network step of `close` (final commit, LeaveGroup).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Highest Fetch version we send: tansu 0.6.0 puts a v16+ tag into flexible v12 answers.
const MAX_FETCH_VERSION: i16 = 11;

/// Per-partition fetch positions and committed offsets for the partitions we own.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    parts: BTreeMap<(String, i32), PartState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PartState {
    /// The next offset to fetch (and, once records up to it were handed out, to commit).
    position: Option<i64>,
    /// The last offset committed (or read back from the group), if any.
    committed: Option<i64>,
}

impl Positions {
    /// Own exactly `assignment`; partitions kept keep their state, others are dropped.
    pub fn set_assignment(&mut self, assignment: &TopicPartitions) {
        let mut next = BTreeMap::new();
        for (t, ps) in assignment {
            for &p in ps {
                let key = (t.clone(), p);
                let st = self.parts.get(&key).copied().unwrap_or_default();
                next.insert(key, st);
            }
        }
        self.parts = next;
    }

    pub fn owned(&self) -> impl Iterator<Item = &(String, i32)> {
        self.parts.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Partitions that have no fetch position yet.
    pub fn missing(&self) -> Vec<(String, i32)> {
        self.parts
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts
            .get(&(topic.to_string(), partition))
            .and_then(|s| s.position)
    }

    /// Move the position (only for owned partitions: a late answer for a revoked one is ignored).
    pub fn set_position(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(s) = self.parts.get_mut(&(topic.to_string(), partition)) {
            s.position = Some(offset);
        }
    }

    /// The group's committed offset: it also becomes the position when there was none.
    pub fn set_committed(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(s) = self.parts.get_mut(&(topic.to_string(), partition)) {
            s.committed = Some(offset);
            if s.position.is_none() {
                s.position = Some(offset);
            }
        }
    }

    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts
            .get(&(topic.to_string(), partition))
            .and_then(|s| s.committed)
    }

    /// Positions that moved since the last commit.
    #[cfg(test)]
    pub fn uncommitted(&self) -> Vec<((String, i32), i64)> {
        self.uncommitted_with(|_, _| None)
    }

    /// Like [`Positions::uncommitted`], where `next(topic, partition)` may name an earlier
    /// offset to commit (the first record fetched but not handed out yet).
    pub fn uncommitted_with(
        &self,
        next: impl Fn(&str, i32) -> Option<i64>,
    ) -> Vec<((String, i32), i64)> {
        self.parts
            .iter()
            .filter_map(|((t, p), s)| {
                let at = next(t, *p).or(s.position)?;
                (s.committed != Some(at)).then(|| ((t.clone(), *p), at))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The consumer itself.

/// Where to start when a partition has no committed offset (or the committed one is gone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// From the oldest record still kept (the seed's `fromBeginning: true`).
    Earliest,
    /// Only records produced from now on (Kafka's default).
    #[default]
    Latest,
}

impl OffsetReset {
    /// The ListOffsets timestamp that asks for this position.
    fn timestamp(self) -> i64 {
        match self {
            OffsetReset::Earliest => -2,
            OffsetReset::Latest => -1,
        }
    }
}

/// Consumer settings. Build with [`ConsumerConfig::group`] or [`ConsumerConfig::assign`] and
/// adjust fields; defaults follow the Java client except where noted.
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
    pub auto_offset_reset: OffsetReset,
    /// How long the coordinator waits for a heartbeat before evicting us (default 10 s).
    pub session_timeout: Duration,
    /// How long the coordinator waits for every member to rejoin during a rebalance (default 30 s).
    pub rebalance_timeout: Duration,
    /// Heartbeat period; keep it below a third of the session timeout (default 3 s).
    pub heartbeat_interval: Duration,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    /// Fetch answer size limit over all partitions (default 50 MiB).
    pub fetch_max_bytes: i32,
    /// Per-partition fetch size limit (default 1 MiB).
    pub fetch_partition_max_bytes: i32,
    /// How long the broker may hold a fetch waiting for `fetch_min_bytes` (default 500 ms).
    pub fetch_max_wait: Duration,
    pub fetch_min_bytes: i32,
    /// Most records one `poll` returns (0: everything fetched). Fetched records wait in memory
    /// undecoded; only what a poll returns is decoded, so this bounds the decoded batch
    /// (default 500, as in Java).
    pub max_poll_records: usize,
    /// The preferred assignor; the other one is offered second, so mixed groups (kafkajs offers
    /// only `roundrobin`, Java `range` first) still agree on one.
    pub assignor: Assignor,
    /// Largest decompressed record batch accepted (default 64 MiB).
    pub max_batch_bytes: usize,
    pub client_id: String,
    pub request_timeout: Duration,
    /// Overall bound on (re)connecting to a broker.
    pub connect_deadline: Duration,
    pub sasl: Option<SaslConfig>,
    /// TLS to the brokers (feature `tls`); `None` is plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::kafka::tls::TlsConfig>,
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
            heartbeat_interval: Duration::from_secs(3),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            fetch_max_bytes: 50 * 1024 * 1024,
            fetch_partition_max_bytes: 1024 * 1024,
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

    fn validate(&self) -> Result<(), KafkaError> {
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
        if self.heartbeat_interval >= self.session_timeout {
            return bad("heartbeat_interval must be below session_timeout");
        }
        if self.fetch_max_bytes <= 0 || self.fetch_partition_max_bytes <= 0 {
            return bad("fetch byte limits must be positive");
        }
        Ok(())
    }
}

fn split_brokers(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .collect()
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Group state shared between the polling thread and the heartbeat thread.
struct GroupShared {
    group_id: String,
    state: Mutex<GroupState>,
    stop: AtomicBool,
}

struct GroupState {
    member: Membership,
    /// The coordinator's address, once found.
    coordinator: Option<String>,
    /// An error that rejoining cannot fix, seen by the heartbeat thread.
    fatal: Option<KafkaError>,
    /// As leader: the partition count of every subscribed topic the assignment was made from
    /// (0 for a topic that did not exist); a change calls for a new assignment.
    assigned_counts: BTreeMap<String, i32>,
}

/// Send a request whose fields depend on the negotiated version.
async fn call<R: Request>(
    client: &Client,
    target: &Target,
    build: impl FnOnce(i16) -> R,
) -> Result<R::Response, KafkaError> {
    let conn = client.conn(target).await?;
    let v = conn.version_for::<R>()?;
    conn.request_at(&build(v), v).await
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

async fn find_coordinator(client: &Client, group_id: &str) -> Result<String, KafkaError> {
    let resp = call(client, &Target::Any, |v| {
        let r = FindCoordinatorRequest::default();
        if v >= 4 {
            r.with_coordinator_keys(vec![name(group_id)])
        } else {
            r.with_key(name(group_id))
        }
    })
    .await?;
    let (code, host, port) = match resp.coordinators.first() {
        Some(c) => (c.error_code, c.host.to_string(), c.port),
        None => (resp.error_code, resp.host.to_string(), resp.port),
    };
    if let Some(e) = KafkaError::from_code(code, format!("FindCoordinator {group_id}")) {
        return Err(e);
    }
    Ok(format!("{host}:{port}"))
}

/// The heartbeat thread: one Heartbeat per interval while the member is stable; answers that
/// call for a rejoin or a new coordinator are recorded for the polling thread.
fn heartbeat_loop(
    client: Client,
    shared: Arc<GroupShared>,
    interval: Duration,
    session_timeout: Duration,
) {
    let step = Duration::from_millis(50);
    loop {
        let mut slept = Duration::ZERO;
        while slept < interval {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(step);
            slept += step;
        }
        let (generation, member_id, coordinator) = {
            let st = lock(&shared.state);
            if !st.member.is_stable() {
                continue;
            }
            (
                st.member.generation_id,
                st.member.member_id.clone(),
                st.coordinator.clone(),
            )
        };
        let Some(coordinator) = coordinator else {
            continue;
        };
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(name(&shared.group_id)))
            .with_generation_id(generation)
            .with_member_id(name(&member_id));
        // A heartbeat later than the session timeout is worthless: bound it (and so `close`).
        let result = block_on(with_timeout(
            session_timeout,
            client.request(&Target::Addr(coordinator), &req),
        ))
        .unwrap_or_else(|| {
            Err(KafkaError::Timeout {
                what: "Heartbeat".into(),
                after: session_timeout,
            })
        });
        let mut st = lock(&shared.state);
        if st.member.generation_id != generation
            || st.member.member_id != member_id
            || !st.member.is_stable()
        {
            continue; // a late answer for a generation we already left
        }
        match result {
            Ok(resp) => match st.member.on_heartbeat(resp.error_code) {
                GroupAction::Continue | GroupAction::Retry => {}
                GroupAction::Rejoin => {
                    tracing::info!(group = %shared.group_id, code = resp.error_code, "rebalance: rejoining");
                }
                GroupAction::FindCoordinator => st.coordinator = None,
                GroupAction::Fatal(e) => {
                    st.fatal =
                        KafkaError::from_code(e.code(), format!("Heartbeat {}", shared.group_id));
                }
            },
            Err(e) => {
                tracing::warn!(group = %shared.group_id, error = %e, "heartbeat failed");
                st.coordinator = None;
            }
        }
    }
}

/// A Kafka consumer: a group member (subscribe) or a fixed-partition reader (assign).
/// Blocking; `poll` drives joining, fetching and auto-commit, a background thread heartbeats.
pub struct Consumer {
    client: Client,
    cfg: ConsumerConfig,
    group: Option<Arc<GroupShared>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
    positions: Positions,
    last_commit: Instant,
    last_metadata_check: Instant,
    /// Rejoins this member asked for itself (sent as subscription user data).
    rejoin_requests: AtomicU32,
    /// Fetched, not yet returned by `poll`; in offset order per partition.
    buffered: VecDeque<RawRecord>,
    /// Partitions whose position sits inside a batch: (fetch offset, last step back).
    probes: BTreeMap<(String, i32), (i64, i64)>,
    closed: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.cfg.group_id)
            .field("topics", &self.cfg.topics)
            .finish()
    }
}

impl Consumer {
    /// Check the settings and reach a broker (metadata for the topics). The group is joined on
    /// the first [`Consumer::poll`].
    pub fn connect(cfg: ConsumerConfig) -> Result<Consumer, KafkaError> {
        cfg.validate()?;
        let client_cfg = ClientConfig {
            bootstrap: cfg.brokers.clone(),
            conn: ConnConfig {
                client_id: cfg.client_id.clone(),
                // JoinGroup may legitimately wait for the whole rebalance.
                request_timeout: cfg
                    .request_timeout
                    .max(cfg.rebalance_timeout + Duration::from_secs(5)),
                sasl: cfg.sasl.clone(),
                #[cfg(feature = "tls")]
                tls: cfg.tls.clone(),
                ..ConnConfig::default()
            },
            connect_deadline: cfg.connect_deadline,
            ..ClientConfig::default()
        };
        let client = Client::new(client_cfg)?;
        let mut topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        topics.extend(cfg.assignment.iter().map(|(t, _)| t.as_str()));
        block_on(client.fetch_metadata(&topics))?;
        let mut positions = Positions::default();
        let mut group = None;
        let mut heartbeat = None;
        if cfg.assignment.is_empty() {
            let shared = Arc::new(GroupShared {
                group_id: cfg.group_id.clone().unwrap_or_default(),
                state: Mutex::new(GroupState {
                    member: Membership::new(),
                    coordinator: None,
                    fatal: None,
                    assigned_counts: BTreeMap::new(),
                }),
                stop: AtomicBool::new(false),
            });
            let (c, s, every, session) = (
                client.clone(),
                shared.clone(),
                cfg.heartbeat_interval,
                cfg.session_timeout,
            );
            heartbeat = Some(
                std::thread::Builder::new()
                    .name("avro-edge-heartbeat".into())
                    .spawn(move || heartbeat_loop(c, s, every, session))
                    .map_err(|e| {
                        KafkaError::Config(format!("cannot start the heartbeat thread: {e}"))
                    })?,
            );
            group = Some(shared);
        } else {
            let mut fixed = TopicPartitions::new();
            for (t, p) in &cfg.assignment {
                fixed.entry(t.clone()).or_default().push(*p);
            }
            positions.set_assignment(&fixed);
            if let Some(g) = cfg.group_id.clone().filter(|g| !g.is_empty()) {
                // Assign mode with a group id: commits and committed offsets, no membership.
                group = Some(Arc::new(GroupShared {
                    group_id: g,
                    state: Mutex::new(GroupState {
                        member: Membership::new(),
                        coordinator: None,
                        fatal: None,
                        assigned_counts: BTreeMap::new(),
                    }),
                    stop: AtomicBool::new(false),
                }));
            }
        }
        let now = Instant::now();
        Ok(Consumer {
            client,
            cfg,
            group,
            heartbeat,
            positions,
            last_commit: now,
            last_metadata_check: now,
            rejoin_requests: AtomicU32::new(0),
            buffered: VecDeque::new(),
            probes: BTreeMap::new(),
            closed: false,
        })
    }

    fn subscribed(&self) -> bool {
        self.cfg.assignment.is_empty()
    }

    /// The partitions this consumer reads now (after the last rebalance), sorted.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.owned().cloned().collect()
    }

    /// The next offset `poll` will return from a partition we own, once known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.first_buffered(topic, partition)
            .or_else(|| self.positions.position(topic, partition))
    }

    fn first_buffered(&self, topic: &str, partition: i32) -> Option<i64> {
        self.buffered
            .iter()
            .find(|r| r.partition == partition && &*r.topic == topic)
            .map(|r| r.offset)
    }

    /// Up to `max_poll_records` buffered records, oldest first.
    fn take_buffered(&mut self) -> Vec<RawRecord> {
        let n = match self.cfg.max_poll_records {
            0 => self.buffered.len(),
            m => m.min(self.buffered.len()),
        };
        self.buffered.drain(..n).collect()
    }

    /// The offset last committed (or read back from the group) for a partition we own.
    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.committed(topic, partition)
    }

    /// Read `partition` from `offset` on the next poll (e.g. to step over a corrupt batch).
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.buffered
            .retain(|r| !(r.partition == partition && &*r.topic == topic));
        self.probes.remove(&(topic.to_string(), partition));
        self.positions.set_position(topic, partition, offset);
    }

    /// The current member id and generation, when in a group.
    pub fn membership(&self) -> Option<(String, i32)> {
        let g = self.group.as_ref()?;
        let st = lock(&g.state);
        Some((st.member.member_id.clone(), st.member.generation_id))
    }

    /// Wait up to `timeout` for records. Joins (or rejoins) the group first when needed: a join
    /// is not cut short by `timeout` (the coordinator decides how long a rebalance takes).
    /// Returns an empty list when nothing arrived in time.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<RawRecord>, KafkaError> {
        if self.closed {
            return Err(KafkaError::Closed);
        }
        let deadline = Instant::now() + timeout;
        block_on(self.poll_until(deadline))
    }

    /// Rounds of join / position / fetch until records arrive or the deadline passes. Retriable
    /// failures (broker restarting, leader moved, coordinator lost) are retried with backoff until
    /// the deadline; only if the last round still failed is the error returned.
    async fn poll_until(&mut self, deadline: Instant) -> Result<Vec<RawRecord>, KafkaError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.poll_round(deadline).await {
                Ok(Some(records)) => return Ok(records),
                Ok(None) => backoff = Duration::from_millis(100),
                Err(e) if e.is_retriable() || e.needs_metadata_refresh() => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, backoff_ms = backoff.as_millis() as u64, "poll: retrying");
                    if let Some(g) = &self.group {
                        lock(&g.state).coordinator = None;
                    }
                    for (t, _) in self.positions.owned().cloned().collect::<Vec<_>>() {
                        self.client.invalidate(&t);
                    }
                    smol::Timer::after(backoff.min(deadline - now)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One round: `Some(records)` when done (records arrived or the deadline passed).
    async fn poll_round(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Vec<RawRecord>>, KafkaError> {
        if self.subscribed() {
            if self.last_metadata_check.elapsed() >= METADATA_CHECK_INTERVAL {
                self.last_metadata_check = Instant::now();
                self.check_subscribed_topics().await;
            }
            self.ensure_group().await?;
        }
        if self.cfg.enable_auto_commit
            && self.last_commit.elapsed() >= self.cfg.auto_commit_interval
        {
            if let Err(e) = self.commit_async().await {
                tracing::warn!(error = %e, "auto-commit failed");
            }
            self.last_commit = Instant::now();
        }
        if !self.buffered.is_empty() {
            return Ok(Some(self.take_buffered()));
        }
        self.ensure_positions(deadline).await?;
        let now = Instant::now();
        if self.positions.is_empty() {
            if now >= deadline {
                return Ok(Some(Vec::new()));
            }
            smol::Timer::after(
                deadline
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(100)),
            )
            .await;
            return Ok(None);
        }
        let wait = self
            .cfg
            .fetch_max_wait
            .min(deadline.saturating_duration_since(now));
        let records = self.fetch_once(wait).await?;
        self.buffered.extend(records);
        if !self.buffered.is_empty() {
            return Ok(Some(self.take_buffered()));
        }
        if Instant::now() >= deadline {
            return Ok(Some(Vec::new()));
        }
        Ok(None)
    }

    /// As leader, look at the subscribed topics' partition counts; if one appeared, vanished or
    /// grew since the assignment, rejoin so every member gets a new one (Java does the same).
    async fn check_subscribed_topics(&mut self) {
        let Some((g, member, _)) = self.group_state() else {
            return;
        };
        if !member.is_leader() || !member.is_stable() {
            return;
        }
        let before = lock(&g.state).assigned_counts.clone();
        if before.is_empty() {
            return;
        }
        let topics: Vec<&str> = before.keys().map(String::as_str).collect();
        let resp = match self.client.fetch_metadata(&topics).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "metadata check failed");
                return;
            }
        };
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.as_str()) else {
                continue;
            };
            let now = if t.error_code == 0 {
                t.partitions.len() as i32
            } else {
                0
            };
            if before.get(name).is_some_and(|b| *b != now) {
                tracing::info!(group = %g.group_id, topic = name, before = before.get(name).copied(), now, "partitions changed; rebalancing");
                self.rejoin_requests.fetch_add(1, Ordering::SeqCst);
                lock(&g.state).member.request_rejoin();
                return;
            }
        }
    }

    /// [`Consumer::poll`], then the codec: each record becomes an [`Item`], a value that does not
    /// decode becomes [`Item::Undecodable`] with its coordinates, raw bytes and error kind.
    pub fn poll_decoded<E, F>(
        &mut self,
        timeout: Duration,
        decode: F,
    ) -> Result<Vec<Item>, KafkaError>
    where
        E: ErrorKind,
        F: Fn(&[u8]) -> Result<serde_json::Value, E>,
    {
        Ok(decode_records(self.poll(timeout)?, decode))
    }

    /// [`Consumer::poll`] through the codec: Confluent-framed Avro values decoded with their
    /// writer schema (fetched by id from the registry or the offline cache) into natural JSON.
    /// Anything that does not decode is an [`Item::Undecodable`] in its place, never an error
    /// of the poll and never dropped.
    pub fn poll_items(
        &mut self,
        timeout: Duration,
        codec: &Codec,
    ) -> Result<Vec<Item>, KafkaError> {
        self.poll_decoded(timeout, |b: &[u8]| codec.decode_json(b))
    }

    fn group_state(&self) -> Option<(Arc<GroupShared>, Membership, Option<String>)> {
        let g = self.group.as_ref()?.clone();
        let (m, c) = {
            let st = lock(&g.state);
            (st.member.clone(), st.coordinator.clone())
        };
        Some((g, m, c))
    }

    async fn coordinator(&self, g: &GroupShared) -> Result<String, KafkaError> {
        if let Some(c) = lock(&g.state).coordinator.clone() {
            return Ok(c);
        }
        let c = find_coordinator(&self.client, &g.group_id).await?;
        tracing::debug!(group = %g.group_id, coordinator = %c, "found coordinator");
        lock(&g.state).coordinator = Some(c.clone());
        Ok(c)
    }

    /// Join and sync until stable (or a fatal error). Commits what was read before giving up
    /// partitions when the old generation still allows it.
    async fn ensure_group(&mut self) -> Result<(), KafkaError> {
        let Some((g, _, _)) = self.group_state() else {
            return Ok(());
        };
        let started = Instant::now();
        let give_up = started + self.cfg.rebalance_timeout * 2 + self.cfg.session_timeout * 2;
        let mut backoff = Duration::from_millis(100);
        let mut rejoined = false;
        loop {
            if let Some(e) = lock(&g.state).fatal.clone() {
                return Err(e);
            }
            let member = lock(&g.state).member.clone();
            if member.is_stable() {
                if rejoined {
                    self.positions.set_assignment(&member.assignment);
                    let parts: Vec<String> = member
                        .assignment
                        .iter()
                        .map(|(t, ps)| format!("{t}{ps:?}"))
                        .collect();
                    tracing::info!(
                        group = %g.group_id,
                        generation = member.generation_id,
                        member = %member.member_id,
                        leader = member.is_leader(),
                        assignment = %parts.join(","),
                        took_ms = started.elapsed().as_millis() as u64,
                        "joined group"
                    );
                }
                return Ok(());
            }
            if Instant::now() >= give_up {
                return Err(KafkaError::Timeout {
                    what: format!("joining group {}", g.group_id),
                    after: started.elapsed(),
                });
            }
            if !rejoined && !self.positions.is_empty() {
                // Revoking (eager protocol): commit what we handed out while the generation is
                // still valid, then drop every partition.
                if self.cfg.enable_auto_commit
                    && member.generation_id >= 0
                    && let Err(e) = self.commit_async().await
                {
                    tracing::warn!(error = %e, "commit before rebalance failed");
                }
                self.positions.set_assignment(&TopicPartitions::new());
                self.buffered.clear();
                self.probes.clear();
            }
            rejoined = true;
            let action = match self.join_and_sync(&g).await {
                Ok(a) => a,
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "join failed, retrying");
                    lock(&g.state).coordinator = None;
                    GroupAction::Retry
                }
                Err(e) => return Err(e),
            };
            match action {
                GroupAction::Continue | GroupAction::Rejoin => {}
                GroupAction::FindCoordinator => lock(&g.state).coordinator = None,
                GroupAction::Retry => {
                    smol::Timer::after(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                GroupAction::Fatal(e) => {
                    return Err(
                        KafkaError::from_code(e.code(), format!("group {}", g.group_id))
                            .unwrap_or(KafkaError::Protocol(e.to_string())),
                    );
                }
            }
        }
    }

    /// One JoinGroup (+ SyncGroup when it succeeds). Membership is updated through the state machine.
    async fn join_and_sync(&self, g: &GroupShared) -> Result<GroupAction, KafkaError> {
        let coordinator = Target::Addr(self.coordinator(g).await?);
        let member_id = lock(&g.state).member.member_id.clone();
        // After a leader-requested rejoin the metadata changes (user data = the rejoin count):
        // tansu starts a new generation only when a member's metadata differs.
        let nonce = self.rejoin_requests.load(Ordering::SeqCst);
        let user_data = (nonce > 0).then(|| Bytes::copy_from_slice(&nonce.to_be_bytes()));
        let metadata = encode_subscription(&self.cfg.topics, user_data);
        let other = match self.cfg.assignor {
            Assignor::Range => Assignor::RoundRobin,
            Assignor::RoundRobin => Assignor::Range,
        };
        let protocols: Vec<JoinGroupRequestProtocol> = [self.cfg.assignor, other]
            .iter()
            .map(|a| {
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(a.name()))
                    .with_metadata(metadata.clone())
            })
            .collect();
        let t0 = Instant::now();
        let join = call(&self.client, &coordinator, |_| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(name(&g.group_id)))
                .with_session_timeout_ms(millis(self.cfg.session_timeout))
                .with_rebalance_timeout_ms(millis(self.cfg.rebalance_timeout))
                .with_member_id(name(&member_id))
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                .with_protocols(protocols)
        })
        .await?;
        let protocol = join.protocol_name.as_ref().map(|p| p.to_string());
        let action = lock(&g.state).member.on_join(
            join.error_code,
            join.generation_id,
            join.member_id.as_str(),
            join.leader.as_str(),
            protocol.as_deref(),
        );
        tracing::debug!(
            group = %g.group_id, code = join.error_code, generation = join.generation_id, members = join.members.len(),
            took_ms = t0.elapsed().as_millis() as u64, "JoinGroup answered"
        );
        if action != GroupAction::Continue {
            return Ok(action);
        }
        let member = lock(&g.state).member.clone();
        let assignments = if member.is_leader() {
            let assignor = protocol
                .as_deref()
                .and_then(Assignor::from_name)
                .ok_or_else(|| {
                    KafkaError::Protocol(format!(
                        "coordinator chose assignor {protocol:?}, which we do not offer"
                    ))
                })?;
            self.leader_assign(g, assignor, &join.members).await?
        } else {
            Vec::new()
        };
        let sync = call(&self.client, &coordinator, |v| {
            let r = SyncGroupRequest::default()
                .with_group_id(GroupId(name(&g.group_id)))
                .with_generation_id(member.generation_id)
                .with_member_id(name(&member.member_id))
                .with_assignments(assignments);
            if v >= 5 {
                r.with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                    .with_protocol_name(protocol.as_deref().map(name))
            } else {
                r
            }
        })
        .await?;
        let mut st = lock(&g.state);
        if st.member.generation_id != member.generation_id {
            return Ok(GroupAction::Rejoin);
        }
        st.member
            .on_sync(sync.error_code, &sync.assignment)
            .map_err(|e| KafkaError::Protocol(e.to_string()))
    }

    /// The leader's job: decode every member's subscription, look up partition counts, assign.
    async fn leader_assign(
        &self,
        g: &GroupShared,
        assignor: Assignor,
        members: &[JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, KafkaError> {
        let mut group_members = Vec::with_capacity(members.len());
        for m in members {
            let topics = match decode_subscription(&m.metadata) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(member = %m.member_id.as_str(), error = %e, "member subscription unreadable; it gets nothing");
                    Vec::new()
                }
            };
            group_members.push(GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                topics,
            });
        }
        let mut counts = BTreeMap::new();
        let all: BTreeSet<&String> = group_members.iter().flat_map(|m| m.topics.iter()).collect();
        let deadline = Instant::now() + self.cfg.connect_deadline;
        for t in all {
            self.client.invalidate(t); // assign from fresh metadata
            match self.client.topic(t, deadline).await {
                Ok(meta) => {
                    counts.insert(t.clone(), meta.partitions.len() as i32);
                }
                Err(e) => {
                    tracing::warn!(topic = %t, error = %e, "subscribed topic not available; not assigned")
                }
            }
        }
        let plan = assignor.assign(&group_members, &counts);
        let mut seen = counts.clone();
        for m in &group_members {
            for t in &m.topics {
                seen.entry(t.clone()).or_insert(0);
            }
        }
        lock(&g.state).assigned_counts = seen;
        Ok(plan
            .iter()
            .map(|(member, parts)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(name(member))
                    .with_assignment(encode_assignment(parts))
            })
            .collect())
    }

    /// Give every owned partition a position: the group's committed offset, else the reset policy.
    async fn ensure_positions(&mut self, deadline: Instant) -> Result<(), KafkaError> {
        let missing = self.positions.missing();
        if missing.is_empty() {
            return Ok(());
        }
        if let Some((g, _, _)) = self.group_state() {
            let coordinator = Target::Addr(self.coordinator(&g).await?);
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &missing {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            let resp = call(&self.client, &coordinator, |v| {
                if v >= 8 {
                    OffsetFetchRequest::default().with_groups(vec![
                        OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(name(&g.group_id)))
                            .with_topics(Some(
                                by_topic
                                    .iter()
                                    .map(|(t, ps)| {
                                        OffsetFetchRequestTopics::default()
                                            .with_name(TopicName(name(t)))
                                            .with_partition_indexes(ps.clone())
                                    })
                                    .collect(),
                            )),
                    ])
                } else {
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(name(&g.group_id)))
                        .with_topics(Some(
                            by_topic
                                .iter()
                                .map(|(t, ps)| {
                                    OffsetFetchRequestTopic::default()
                                        .with_name(TopicName(name(t)))
                                        .with_partition_indexes(ps.clone())
                                })
                                .collect(),
                        ))
                }
            })
            .await?;
            let mut found: Vec<(String, i32, i64, i16)> = Vec::new();
            let mut top_code = resp.error_code;
            for t in &resp.topics {
                for p in &t.partitions {
                    found.push((
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    ));
                }
            }
            for grp in &resp.groups {
                if grp.error_code != 0 {
                    top_code = grp.error_code;
                }
                for t in &grp.topics {
                    for p in &t.partitions {
                        found.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.error_code,
                        ));
                    }
                }
            }
            if top_code != 0 {
                let action = lock(&g.state).member.on_commit(top_code);
                if action == GroupAction::FindCoordinator {
                    lock(&g.state).coordinator = None;
                }
                return Err(
                    KafkaError::from_code(top_code, format!("OffsetFetch {}", g.group_id))
                        .unwrap_or(KafkaError::Protocol("OffsetFetch".into())),
                );
            }
            for (t, p, offset, code) in found {
                if code == 0 && offset >= 0 {
                    self.positions.set_committed(&t, p, offset);
                }
            }
        }
        let still = self.positions.missing();
        if still.is_empty() {
            return Ok(());
        }
        self.reset_positions(&still, deadline).await
    }

    /// ListOffsets (earliest or latest) for partitions without a usable position.
    async fn reset_positions(
        &mut self,
        parts: &[(String, i32)],
        deadline: Instant,
    ) -> Result<(), KafkaError> {
        let ts = self.cfg.auto_offset_reset.timestamp();
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for (t, p) in parts {
            let meta = self
                .client
                .topic(t, deadline.max(Instant::now() + self.cfg.connect_deadline))
                .await?;
            let Some(leader) = meta.leader(*p) else {
                self.client.invalidate(t);
                continue;
            };
            by_leader
                .entry(leader)
                .or_default()
                .entry(t.clone())
                .or_default()
                .push(*p);
        }
        for (leader, topics) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(name(t)))
                                .with_partitions(
                                    ps.iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(*p)
                                                .with_timestamp(ts)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let resp = self.client.request(&Target::Node(leader), &req).await?;
            let latest = if self.cfg.auto_offset_reset == OffsetReset::Latest {
                self.high_watermarks(leader, &topics).await
            } else {
                BTreeMap::new()
            };
            for t in &resp.topics {
                for p in &t.partitions {
                    if p.error_code == 0 && p.offset >= 0 {
                        let key = (t.name.0.to_string(), p.partition_index);
                        // tansu 0.6.0 answers "latest" with the last batch's base offset + 1, not
                        // the log end; the high watermark of a fetch is the log end on any broker.
                        let offset = latest.get(&key).map_or(p.offset, |hw| p.offset.max(*hw));
                        tracing::debug!(topic = %t.name.0.as_str(), partition = p.partition_index, offset, listed = p.offset, "reset position");
                        self.positions
                            .set_position(t.name.0.as_str(), p.partition_index, offset);
                    } else if let Some(e) = KafkaError::from_code(
                        p.error_code,
                        format!("ListOffsets {}", t.name.0.as_str()),
                    ) {
                        if e.needs_metadata_refresh() || e.is_retriable() {
                            self.client.invalidate(t.name.0.as_str());
                        } else {
                            return Err(e);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The high watermark (log end) of each partition, from a Fetch that waits for nothing and
    /// asks for as few bytes as the broker allows. Partitions that fail are left out.
    async fn high_watermarks(
        &self,
        leader: i32,
        topics: &BTreeMap<String, Vec<i32>>,
    ) -> BTreeMap<(String, i32), i64> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1)
            .with_topics(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        FetchTopic::default()
                            .with_topic(TopicName(name(t)))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        FetchPartition::default()
                                            .with_partition(*p)
                                            .with_fetch_offset(0)
                                            .with_partition_max_bytes(1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = async {
            let conn = self.client.conn(&Target::Node(leader)).await?;
            let v = conn.version_for::<FetchRequest>()?.min(MAX_FETCH_VERSION);
            conn.request_at(&req, v).await
        }
        .await;
        let mut out = BTreeMap::new();
        match resp {
            Ok(r) => {
                for t in &r.responses {
                    for p in &t.partitions {
                        if p.error_code == 0 && p.high_watermark >= 0 {
                            out.insert(
                                (t.topic.0.to_string(), p.partition_index),
                                p.high_watermark,
                            );
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "high watermark fetch failed; using ListOffsets alone")
            }
        }
        out
    }

    /// One Fetch per partition leader (in parallel); records in offset order per partition.
    async fn fetch_once(&mut self, wait: Duration) -> Result<Vec<RawRecord>, KafkaError> {
        let deadline = Instant::now() + self.cfg.connect_deadline;
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
        let owned: Vec<(String, i32)> = self.positions.owned().cloned().collect();
        for (t, p) in owned {
            let Some(pos) = self.positions.position(&t, p) else {
                continue;
            };
            let meta = self.client.topic(&t, deadline).await?;
            let Some(leader) = meta.leader(p) else {
                self.client.invalidate(&t);
                continue;
            };
            // A probe (see below) fetches from an earlier offset; records below `pos` are skipped.
            let at = self
                .probes
                .get(&(t.clone(), p))
                .map_or(pos, |probe| probe.0);
            by_leader
                .entry(leader)
                .or_default()
                .entry(t)
                .or_default()
                .push((p, at));
        }
        let probing = !self.probes.is_empty();
        let mut tasks = Vec::new();
        for (leader, topics) in by_leader {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(if probing { 0 } else { millis(wait) })
                .with_min_bytes(self.cfg.fetch_min_bytes)
                .with_max_bytes(self.cfg.fetch_max_bytes)
                .with_topics(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            FetchTopic::default()
                                .with_topic(TopicName(name(t)))
                                .with_partitions(
                                    ps.iter()
                                        .map(|(p, pos)| {
                                            FetchPartition::default()
                                                .with_partition(*p)
                                                .with_fetch_offset(*pos)
                                                .with_partition_max_bytes(
                                                    self.cfg.fetch_partition_max_bytes,
                                                )
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let client = self.client.clone();
            tasks.push(smol::spawn(async move {
                let conn = client.conn(&Target::Node(leader)).await?;
                // v11 at most: tansu 0.6.0 puts a v16+ tag into flexible v12 Fetch answers.
                let v = conn.version_for::<FetchRequest>()?.min(MAX_FETCH_VERSION);
                conn.request_at(&req, v).await
            }));
        }
        // A failure on one leader must not lose what the others returned (their positions moved):
        // records win, the first error is returned only when there are none.
        let mut out = Vec::new();
        let mut out_of_range = Vec::new();
        let mut failed: Option<KafkaError> = None;
        for task in tasks {
            let resp = match task.await {
                Ok(r) => r,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            if let Some(e) = KafkaError::from_code(resp.error_code, "Fetch") {
                failed.get_or_insert(e);
                continue;
            }
            for topic in &resp.responses {
                let t = topic.topic.0.as_str();
                for part in &topic.partitions {
                    let p = part.partition_index;
                    let Some(pos) = self.positions.position(t, p) else {
                        continue;
                    };
                    match part.error_code {
                        0 => {}
                        1 => {
                            tracing::warn!(
                                topic = t,
                                partition = p,
                                offset = pos,
                                "offset out of range; resetting"
                            );
                            out_of_range.push((t.to_string(), p));
                            continue;
                        }
                        code => {
                            let e = KafkaError::from_code(code, format!("Fetch {t}-{p}"))
                                .unwrap_or(KafkaError::Protocol("Fetch".into()));
                            if e.needs_metadata_refresh() || e.is_retriable() {
                                self.client.invalidate(t);
                            } else {
                                failed.get_or_insert(e);
                            }
                            continue;
                        }
                    }
                    tracing::trace!(
                        topic = t,
                        partition = p,
                        fetch_offset = pos,
                        bytes = part.records.as_ref().map_or(0, |r| r.len()),
                        high_watermark = part.high_watermark,
                        "fetched"
                    );
                    let data = part.records.clone().unwrap_or_default();
                    let fetched = decode_fetched(t, p, &data, pos, self.cfg.max_batch_bytes);
                    let fetch_at = self
                        .probes
                        .get(&(t.to_string(), p))
                        .map_or(pos, |probe| probe.0);
                    if !self.accept_or_probe(
                        t,
                        p,
                        pos,
                        fetch_at,
                        &fetched,
                        part.high_watermark,
                        part.log_start_offset,
                    ) {
                        continue;
                    }
                    if let Some(next) = fetched.next_offset.filter(|n| *n > pos) {
                        self.positions.set_position(t, p, next);
                    }
                    if let Some(e) = fetched.error {
                        // Records before the bad batch are delivered; the next poll stops at it.
                        let at = self.positions.position(t, p).unwrap_or(pos);
                        tracing::warn!(topic = t, partition = p, offset = at, error = %e, "unreadable record batch");
                        failed.get_or_insert(KafkaError::Protocol(format!(
                            "{t}-{p} at offset {at}: {e} ({}); seek past it to go on",
                            e.kind()
                        )));
                    }
                    out.extend(fetched.records);
                }
            }
        }
        if !out_of_range.is_empty()
            && let Err(e) = self.reset_positions(&out_of_range, deadline).await
        {
            failed.get_or_insert(e);
        }
        match failed {
            Some(e) if out.is_empty() => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, records = out.len(), "fetch partly failed; delivering what arrived");
                Ok(out)
            }
            None => Ok(out),
        }
    }

    /// tansu 0.6.0 answers a fetch from an offset inside a batch with the batches that *start*
    /// at or after it (Kafka returns the batch holding the offset): nothing at all, or later
    /// batches with the records in between silently missing. So when the first batch of an
    /// answer starts above the position (or the answer is empty although the log goes further),
    /// its records are not taken: the fetch offset steps back (1, 2, 4, ... down to the log start)
    /// until a batch at or below the position comes back. Against Kafka this never triggers,
    /// except at a compaction gap, where one step back settles it. Returns whether to take the answer.
    #[allow(clippy::too_many_arguments)]
    fn accept_or_probe(
        &mut self,
        t: &str,
        p: i32,
        pos: i64,
        fetch_at: i64,
        fetched: &Fetched,
        high_watermark: i64,
        log_start: i64,
    ) -> bool {
        let key = (t.to_string(), p);
        let settled = match fetched.first_base {
            Some(base) => base <= pos,
            // Nothing readable: fine unless the log has records at or beyond the position.
            None => fetched.error.is_some() || high_watermark <= pos,
        };
        let floor = log_start.max(0);
        if settled || fetch_at <= floor {
            self.probes.remove(&key);
            return true;
        }
        let step = self.probes.get(&key).map_or(0, |probe| probe.1);
        let step = (step * 2).max(1);
        let next = fetch_at.saturating_sub(step).max(floor);
        tracing::debug!(
            topic = t,
            partition = p,
            position = pos,
            first_batch = fetched.first_base,
            fetch_at = next,
            "answer does not reach back to the position; stepping back"
        );
        self.probes.insert(key, (next, step));
        false
    }

    /// Commit the positions of everything `poll` has returned so far (blocking).
    pub fn commit(&mut self) -> Result<(), KafkaError> {
        if self.closed {
            return Err(KafkaError::Closed);
        }
        block_on(self.commit_async())
    }

    async fn commit_async(&mut self) -> Result<(), KafkaError> {
        // What poll handed out: for a partition with records still buffered, the first of them.
        let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for r in &self.buffered {
            first.entry((&*r.topic, r.partition)).or_insert(r.offset);
        }
        let pending = self
            .positions
            .uncommitted_with(|t, p| first.get(&(t, p)).copied());
        drop(first);
        if pending.is_empty() {
            return Ok(());
        }
        let Some((g, member, _)) = self.group_state() else {
            return Err(KafkaError::Config("commit needs a group_id".into()));
        };
        // In assign mode there is no membership: generation -1 and an empty member id.
        let (generation, member_id) = if self.subscribed() {
            if member.generation_id < 0 {
                return Err(KafkaError::from_code(
                    22,
                    format!("commit to {}: not in a generation", g.group_id),
                )
                .unwrap_or(KafkaError::Protocol("commit".into())));
            }
            (member.generation_id, member.member_id.clone())
        } else {
            (-1, String::new())
        };
        let coordinator = Target::Addr(self.coordinator(&g).await?);
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for ((t, p), o) in &pending {
            by_topic.entry(t.as_str()).or_default().push((*p, *o));
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(name(&g.group_id)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(name(&member_id))
            .with_topics(
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(name(t)))
                            .with_partitions(
                                ps.iter()
                                    .map(|(p, o)| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(*o)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = match self.client.request(&coordinator, &req).await {
            Ok(r) => r,
            Err(e) => {
                lock(&g.state).coordinator = None;
                return Err(e);
            }
        };
        let mut first_err = None;
        for t in &resp.topics {
            for p in &t.partitions {
                let topic = t.name.0.as_str();
                if p.error_code == 0 {
                    if let Some(&(_, o)) = by_topic
                        .get(topic)
                        .and_then(|ps| ps.iter().find(|(q, _)| *q == p.partition_index))
                    {
                        self.positions.set_committed(topic, p.partition_index, o);
                    }
                } else if first_err.is_none() {
                    let mut st = lock(&g.state);
                    if self.subscribed()
                        && st.member.generation_id == generation
                        && st.member.on_commit(p.error_code) == GroupAction::FindCoordinator
                    {
                        st.coordinator = None;
                    }
                    first_err = KafkaError::from_code(
                        p.error_code,
                        format!("OffsetCommit {topic}-{}", p.partition_index),
                    );
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                tracing::debug!(group = %g.group_id, partitions = pending.len(), "committed offsets");
                Ok(())
            }
        }
    }

    /// Commit (if auto-commit is on), leave the group (LeaveGroup) and drop the connections.
    pub fn close(&mut self) -> Result<(), KafkaError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let mut result = Ok(());
        // Bounded: closing (and so dropping) a consumer whose broker is gone must not hang.
        let bound = self.cfg.request_timeout.min(CLOSE_TIMEOUT);
        if self.cfg.enable_auto_commit && self.group.is_some() {
            let commit = block_on(with_timeout(bound, self.commit_async())).unwrap_or_else(|| {
                Err(KafkaError::Timeout {
                    what: "final commit".into(),
                    after: bound,
                })
            });
            if let Err(e) = commit {
                tracing::warn!(error = %e, "final commit failed");
                result = Err(e);
            }
        }
        if let Some(g) = &self.group {
            g.stop.store(true, Ordering::SeqCst);
        }
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        if let Some((g, member, coordinator)) = self.group_state()
            && self.subscribed()
            && !member.member_id.is_empty()
            && let Some(coordinator) = coordinator
        {
            let leave = block_on(with_timeout(
                bound,
                call(&self.client, &Target::Addr(coordinator), |v| {
                    let r = LeaveGroupRequest::default().with_group_id(GroupId(name(&g.group_id)));
                    if v >= 3 {
                        r.with_members(vec![
                            MemberIdentity::default().with_member_id(name(&member.member_id)),
                        ])
                    } else {
                        r.with_member_id(name(&member.member_id))
                    }
                }),
            ))
            .unwrap_or_else(|| {
                Err(KafkaError::Timeout {
                    what: "LeaveGroup".into(),
                    after: bound,
                })
            });
            match leave {
                Ok(r) if r.error_code == 0 => {
                    tracing::info!(group = %g.group_id, member = %member.member_id, "left group")
                }
                Ok(r) => {
                    tracing::warn!(group = %g.group_id, code = r.error_code, "LeaveGroup refused")
                }
                Err(e) => tracing::warn!(group = %g.group_id, error = %e, "LeaveGroup failed"),
            }
            lock(&g.state).member.reset();
        }
        self.positions.set_assignment(&TopicPartitions::new());
        self.client.close();
        result
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// One consumed message after the codec.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// Decoded to natural JSON (a tombstone, with no value, decodes to `null`).
    Record {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        key: Option<Bytes>,
        timestamp: i64,
        headers: Vec<(String, Option<Bytes>)>,
        value: serde_json::Value,
    },
    /// The value did not decode: the coordinates, the raw bytes and why.
    Undecodable {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        key: Option<Bytes>,
        timestamp: i64,
        raw: Bytes,
        /// The codec error's stable kind, e.g. `invalid-magic-byte` or `unknown-schema-id`.
        error_kind: &'static str,
        error: String,
    },
}

impl Item {
    /// `(topic, partition, offset)` of the message.
    pub fn coordinates(&self) -> (&str, i32, i64) {
        match self {
            Item::Record {
                topic,
                partition,
                offset,
                ..
            }
            | Item::Undecodable {
                topic,
                partition,
                offset,
                ..
            } => (topic, *partition, *offset),
        }
    }

    /// The dead-letter line for an undecodable message (`None` for a decoded one): coordinates,
    /// timestamp, key and raw value in base64, the error kind and message.
    pub fn dead_letter(&self) -> Option<serde_json::Value> {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match self {
            Item::Record { .. } => None,
            Item::Undecodable {
                topic,
                partition,
                offset,
                key,
                timestamp,
                raw,
                error_kind,
                error,
            } => Some(serde_json::json!({
                "topic": &**topic,
                "partition": partition,
                "offset": offset,
                "timestamp": timestamp,
                "key_base64": key.as_deref().map(b64),
                "raw_base64": b64(raw),
                "error_kind": error_kind,
                "error": error,
            })),
        }
    }
}

/// Decode every record's value with `decode`; failures become [`Item::Undecodable`], in place.
pub fn decode_records<E, F>(records: Vec<RawRecord>, decode: F) -> Vec<Item>
where
    E: ErrorKind,
    F: Fn(&[u8]) -> Result<serde_json::Value, E>,
{
    records
        .into_iter()
        .map(|r| {
            let Some(raw) = r.value else {
                return Item::Record {
                    topic: r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    key: r.key,
                    timestamp: r.timestamp,
                    headers: r.headers,
                    value: serde_json::Value::Null,
                };
            };
            match decode(&raw) {
                Ok(value) => Item::Record {
                    topic: r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    key: r.key,
                    timestamp: r.timestamp,
                    headers: r.headers,
                    value,
                },
                Err(e) => Item::Undecodable {
                    topic: r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    key: r.key,
                    timestamp: r.timestamp,
                    raw,
                    error_kind: e.kind(),
                    error: e.to_string(),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[derive(Debug, thiserror::Error)]
    #[error("bad magic byte 0x{0:02x}")]
    struct BadMagic(u8);
    impl ErrorKind for BadMagic {
        fn kind(&self) -> &'static str {
            "invalid-magic-byte"
        }
    }

    #[test]
    fn undecodable_values_become_dead_letter_items_in_place() {
        let raw = |offset: i64, value: Option<&'static [u8]>| RawRecord {
            topic: "t".into(),
            partition: 2,
            offset,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"\xffk")),
            headers: vec![],
            value: value.map(Bytes::from_static),
        };
        let records = vec![
            raw(7, Some(b"\x00ok")),
            raw(8, Some(b"\x01no")),
            raw(9, None),
        ];
        let items = decode_records(records, |b: &[u8]| match b.first() {
            Some(0) => Ok(serde_json::json!({"ok": true})),
            other => Err(BadMagic(other.copied().unwrap_or(0))),
        });
        assert_eq!(
            items.iter().map(|i| i.coordinates().2).collect::<Vec<_>>(),
            vec![7, 8, 9]
        );
        assert!(matches!(&items[0], Item::Record { value, .. } if value["ok"] == true));
        assert!(items[0].dead_letter().is_none());
        assert!(
            matches!(
                &items[2],
                Item::Record {
                    value: serde_json::Value::Null,
                    ..
                }
            ),
            "tombstone"
        );
        let dl = items[1].dead_letter().unwrap();
        assert_eq!(dl["topic"], "t");
        assert_eq!(dl["partition"], 2);
        assert_eq!(dl["offset"], 8);
        assert_eq!(dl["raw_base64"], "AW5v"); // 0x01 'n' 'o'
        assert_eq!(dl["key_base64"], "/2s="); // 0xff 'k'
        assert_eq!(dl["error_kind"], "invalid-magic-byte");
        assert_eq!(dl["error"], "bad magic byte 0x01");
    }

    #[test]
    fn positions_track_assignment_commit_and_progress() {
        let mut p = Positions::default();
        let a: TopicPartitions = [("t".to_string(), vec![0, 1])].into_iter().collect();
        p.set_assignment(&a);
        assert_eq!(p.missing().len(), 2);
        p.set_committed("t", 0, 7);
        p.set_position("t", 1, 0);
        assert_eq!(p.position("t", 0), Some(7));
        assert_eq!(p.uncommitted(), vec![(("t".to_string(), 1), 0)]);
        p.set_position("t", 0, 9);
        p.set_committed("t", 1, 0);
        assert_eq!(p.uncommitted(), vec![(("t".to_string(), 0), 9)]);
        // Rebalance keeps partition 1's state, drops 0, adds 2 without a position.
        let b: TopicPartitions = [("t".to_string(), vec![1, 2])].into_iter().collect();
        p.set_assignment(&b);
        assert_eq!(p.position("t", 0), None);
        assert_eq!(p.position("t", 1), Some(0));
        assert_eq!(p.missing(), vec![("t".to_string(), 2)]);
        // Late answers for partitions we no longer own are ignored.
        p.set_position("t", 0, 100);
        assert_eq!(p.position("t", 0), None);
    }
}
