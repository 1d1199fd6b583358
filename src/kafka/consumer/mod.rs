//! The blocking group consumer: join, assign, fetch, commit; records handed out as raw bytes.
//!
//! Record batches from Fetch answers are decoded by [`crate::kafka::record`] (v2 format,
//! none/gzip/snappy/lz4/zstd, every length checked, decompression capped).
//!
//! Must not know Avro (values are bytes; decoding them is the layer above, `avro_io`), and must
//! not drop a record it cannot read: a bad batch stops its partition with an error that names the
//! offset.
//!
//! ```no_run
//! use std::time::Duration;
//! use avro_edge::{Consumer, ConsumerConfig, OffsetReset};
//!
//! let mut cfg = ConsumerConfig::group("127.0.0.1:9092", "readers", &["sensor-data"]);
//! cfg.auto_offset_reset = OffsetReset::Earliest; // the seed's fromBeginning: true
//! let mut consumer = Consumer::connect(cfg)?;
//! for r in consumer.poll(Duration::from_secs(1))? {
//!     println!("{}-{}@{}: {} bytes", r.topic, r.partition, r.offset, r.value.map_or(0, |v| v.len()));
//! }
//! consumer.commit()?; // auto-commit also runs every `auto_commit_interval` and on close
//! consumer.close()?; // LeaveGroup (dynamic members): the other members take over at once
//! # Ok::<(), avro_edge::KafkaError>(())
//! ```
//!
//! Consumer properties beyond a plain group member, as Java's consumer has them (the fields'
//! docs say more):
//! - `group_instance_id` (`group.instance.id`): static membership (KIP-345). The id goes in
//!   JoinGroup, SyncGroup, Heartbeat and OffsetCommit; close sends no LeaveGroup, so a restart
//!   within the session timeout gets the same partitions back with no rebalance; FENCED_INSTANCE_ID
//!   (another consumer took the id) is fatal: `fenced-instance-id` from every later poll.
//! - `isolation_level` (`isolation.level`, read_committed by default): sent in Fetch and
//!   ListOffsets; with read_committed the broker stops at the last stable offset and the batches
//!   of aborted transactions are skipped (`record/aborted.rs`); control records never come out.
//! - `client_rack` (`client.rack`): sent as Fetch `rack_id`; a read replica the leader names for
//!   the rack (KIP-392) is fetched from until it expires or fails (`fetch.rs`).
//! - `rebalance_timeout` is Java's `max.poll.interval.ms` as JoinGroup's rebalance timeout (the
//!   member is not made to leave when a poll comes late, as Java's is).
//!
//! Design: the group protocol logic (assignors, member state machine) lives in
//! [`crate::kafka::group`] without I/O; this module drives it over [`crate::kafka::Client`]. `poll`
//! runs on the caller's thread (smol `block_on`); a heartbeat thread keeps the membership alive
//! between polls and flags rebalances, which the next `poll` acts on (commit, revoke, rejoin);
//! while it has had no coordinator answer for a session timeout, `poll` hands nothing out
//! (`heartbeat.rs`). Rebalancing is eager (everything revoked, then reassigned), like Kafka's
//! classic protocol.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::protocol::{Request, StrBytes};

use crate::kafka::conn::with_timeout;
use crate::kafka::group::TopicPartitions;
use crate::kafka::{Client, ClientConfig, ConnConfig, KafkaError, Target, block_on};

mod commit;
mod config;
mod fetch;
mod group_state;
mod heartbeat;
mod membership;
mod positions;
mod stalled;
#[cfg(test)]
mod tests;

pub use crate::kafka::group::Assignor;
pub use crate::kafka::record::{BatchError, RawRecord};
pub use config::{ConsumerConfig, IsolationLevel, OffsetReset};
use group_state::GroupShared;
use heartbeat::heartbeat_loop;
use positions::Positions;

/// How often the group leader checks the subscribed topics' partition counts.
const METADATA_CHECK_INTERVAL: Duration = Duration::from_secs(3);

/// Upper bound on each network step of `close` (final commit, LeaveGroup).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Send a request whose fields depend on the negotiated version (`build` may refuse a version
/// that cannot carry what the request needs). One connect round (group requests): a coordinator
/// that does not answer is looked up again by the caller instead of being redialled for the
/// whole connect deadline.
async fn call<R: Request>(
    client: &Client,
    target: &Target,
    build: impl FnOnce(i16) -> Result<R, KafkaError>,
) -> Result<R::Response, KafkaError> {
    let deadline = Instant::now() + client.config().connect_deadline;
    let conn = client.conn_once(target, deadline).await?;
    let v = conn.version_for::<R>()?;
    conn.request_at(&build(v)?, v).await
}

/// [`call`] to the group's coordinator at `addr`. When the request fails on the network, the
/// coordinator is forgotten (the next request looks it up again), and one that timed out drops
/// its connection too: a hung coordinator is not asked again on the same socket (Java's
/// `markCoordinatorUnknown` disconnects it likewise).
async fn call_coordinator<R: Request>(
    client: &Client,
    g: &GroupShared,
    addr: &str,
    build: impl FnOnce(i16) -> Result<R, KafkaError>,
) -> Result<R::Response, KafkaError> {
    let res = call(client, &Target::Addr(addr.to_string()), build).await;
    if let Err(e) = &res
        && e.is_retriable()
    {
        client.drop_timed_out(addr, e);
        let mut st = lock(&g.state);
        if st.coordinator.as_deref() == Some(addr) {
            st.coordinator = None;
        }
    }
    res
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
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
    /// Partitions backing off after a retriable error: (not before, consecutive failures).
    retry_at: BTreeMap<(String, i32), (Instant, u32)>,
    /// Partitions fetched from a replica the leader named for our rack (KIP-392): (node, until).
    read_replicas: BTreeMap<(String, i32), (i32, Instant)>,
    /// Topics the cluster does not serve us now (deleted, refused): they stall alone.
    stalled: stalled::StalledTopics,
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
                broker_quirks: cfg.broker_quirks,
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
            let shared = Arc::new(GroupShared::new(
                cfg.group_id.clone().unwrap_or_default(),
                cfg.group_instance_id.clone(),
            ));
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
                group = Some(Arc::new(GroupShared::new(g, None)));
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
            retry_at: BTreeMap::new(),
            read_replicas: BTreeMap::new(),
            stalled: stalled::StalledTopics::default(),
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

    /// Topics this consumer reads that the cluster does not serve it now, and why (a deleted
    /// topic: `unknown-topic`). Their partitions wait; the other topics are read on. Each is
    /// logged once when it goes and once when it is back; it is looked up again every 3 s.
    pub fn unavailable_topics(&self) -> Vec<(String, KafkaError)> {
        self.stalled.list()
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
        if n == self.buffered.len() {
            // Hand the allocation over: an emptied deque would keep its capacity.
            return Vec::from(std::mem::take(&mut self.buffered));
        }
        self.buffered.drain(..n).collect()
    }

    /// Append fetched records (taking over their allocation when nothing is buffered).
    fn buffer(&mut self, records: Vec<RawRecord>) {
        if self.buffered.is_empty() {
            self.buffered = VecDeque::from(records);
        } else {
            self.buffered.extend(records);
        }
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
        let mut failures = 0u32;
        loop {
            match self.poll_round(deadline).await {
                Ok(Some(records)) => return Ok(records),
                Ok(None) => failures = 0,
                Err(e) if e.is_retriable() || e.needs_metadata_refresh() => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(e);
                    }
                    let backoff = crate::kafka::client::backoff(
                        Duration::from_millis(100),
                        Duration::from_secs(1),
                        failures,
                    );
                    failures = failures.saturating_add(1);
                    tracing::debug!(error = %e, backoff_ms = backoff.as_millis() as u64, "poll: retrying");
                    // The coordinator is not dropped here: group requests drop it on their own
                    // errors; a fetch error says nothing about it.
                    for (t, _) in self.positions.owned().cloned().collect::<Vec<_>>() {
                        self.client.invalidate(&t);
                    }
                    smol::Timer::after(backoff.min(deadline - now)).await;
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
            if self.session_expired() {
                // No coordinator answer for a session timeout: our partitions may be someone
                // else's by now. Hand nothing out (and commit nothing) until the heartbeat thread
                // hears from the coordinator again (`heartbeat.rs`).
                return Ok(self.nap_until(deadline).await);
            }
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
        if self.positions.is_empty() {
            return Ok(self.nap_until(deadline).await);
        }
        let now = Instant::now();
        let wait = self
            .cfg
            .fetch_max_wait
            .min(deadline.saturating_duration_since(now));
        let records = self.fetch_once(wait).await?;
        if self.subscribed()
            && (self.session_expired()
                || (self.group_state()).is_some_and(|(_, member, _)| !member.is_stable()))
        {
            // The heartbeat flagged a rebalance (or its session ran out) while we fetched: these
            // partitions may be someone else's now. Hand nothing out; the next round commits
            // up to the first of these records (buffered: not handed out), drops them and
            // rejoins, or hands them out once the coordinator answered again.
            tracing::debug!(
                records = records.len(),
                "rebalance flagged during fetch; held back"
            );
            self.buffer(records);
            return Ok(None);
        }
        self.buffer(records);
        if !self.buffered.is_empty() {
            return Ok(Some(self.take_buffered()));
        }
        if Instant::now() >= deadline {
            return Ok(Some(Vec::new()));
        }
        Ok(None)
    }

    /// Nothing to fetch this round: an empty answer once `deadline` passed, else a short nap
    /// (at most 100 ms) and another round.
    async fn nap_until(&self, deadline: Instant) -> Option<Vec<RawRecord>> {
        let now = Instant::now();
        if now >= deadline {
            return Some(Vec::new());
        }
        let nap = deadline.saturating_duration_since(now);
        smol::Timer::after(nap.min(Duration::from_millis(100))).await;
        None
    }

    /// Whether the group session ran out without a coordinator answer (see `heartbeat.rs`).
    fn session_expired(&self) -> bool {
        (self.group.as_ref()).is_some_and(|g| lock(&g.state).session.expired())
    }

    /// Commit the positions of everything `poll` has returned so far (blocking).
    pub fn commit(&mut self) -> Result<(), KafkaError> {
        if self.closed {
            return Err(KafkaError::Closed);
        }
        block_on(self.commit_async())
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
            h.thread().unpark();
            let _ = h.join();
        }
        self.leave_group(bound);
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
