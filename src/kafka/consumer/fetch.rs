//! Fetching: where each owned partition starts (committed offset, else the reset policy through
//! ListOffsets), one Fetch per partition leader (or per read replica a leader named for our rack,
//! KIP-392), with the isolation level, and the answers' records handed to the poll buffer with
//! the positions moved past them (read_committed: without the aborted transactions' batches).
//! Partitions are asked for in the rotating fetch order of `positions.rs`, each with its leader
//! epoch from metadata (KIP-320: a broker on another epoch refuses, and the metadata is
//! refreshed); a topic the cluster does not serve stalls alone (`stalled.rs`).
//!
//! Must not drop a record it cannot read: a bad batch stops the partition at its offset with
//! an error (the caller seeks past it), and what came before it is kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::{BrokerId, FetchResponse, ListOffsetsResponse, TopicName};

use super::{Consumer, IsolationLevel, OffsetReset, millis, name, stalled};
use crate::error::ErrorKind;
use crate::kafka::client::TopicMeta;
use crate::kafka::quirks::{self, Probe, Quirks};
use crate::kafka::record::{Aborted, Fetched, RawRecord, decode_fetched, records_hint};
use crate::kafka::{KafkaError, Target};

/// One partition of a Fetch: (partition, fetch offset, most bytes, current leader epoch).
type FetchAt = (i32, i64, i32, i32);

/// What one leader is asked for, in fetch order: topics in the order their first partition
/// comes (as Java's fetch request builder groups them), each with its partitions in order.
type LeaderFetch = Vec<(String, Vec<FetchAt>)>;

/// Add `at` for `topic` to `fetch`, after what is there (see [`LeaderFetch`]).
fn push_fetch(fetch: &mut LeaderFetch, topic: &str, at: FetchAt) {
    match fetch.iter_mut().find(|(t, _)| t == topic) {
        Some((_, parts)) => parts.push(at),
        None => fetch.push((topic.to_string(), vec![at])),
    }
}

impl Consumer {
    /// Give every owned partition a position: the group's committed offset, else the reset policy.
    pub(super) async fn ensure_positions(&mut self, deadline: Instant) -> Result<(), KafkaError> {
        // A stalled topic's partitions wait for its next lookup (`stalled.rs`).
        let missing = |c: &Self| -> Vec<(String, i32)> {
            let mut m = c.positions.missing();
            m.retain(|(t, _)| !c.stalled.waiting(t));
            m
        };
        let first = missing(self);
        if first.is_empty() {
            return Ok(());
        }
        if let Some((g, _, _)) = self.group_state() {
            self.fetch_committed(&g, &first).await?;
        }
        let still = missing(self);
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
        // Per leader, per topic: (partition, current leader epoch).
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i32)>>> = BTreeMap::new();
        for (t, p) in parts {
            if self.backing_off(t, *p) {
                continue;
            }
            let Some(meta) = self.topic_meta(t, deadline).await? else {
                continue;
            };
            let Some(leader) = meta.leader(*p) else {
                self.client.invalidate(t);
                self.back_off(t, *p);
                continue;
            };
            by_leader
                .entry(leader)
                .or_default()
                .entry(t.clone())
                .or_default()
                .push((*p, meta.leader_epoch(*p)));
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
                                        .map(|(p, epoch)| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(*p)
                                                .with_current_leader_epoch(*epoch)
                                                .with_timestamp(ts)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let topics: BTreeMap<String, Vec<i32>> = (topics.into_iter())
                .map(|(t, ps)| (t, ps.into_iter().map(|(p, _)| p).collect()))
                .collect();
            let resp = match self.list_offsets(leader, req).await {
                Ok(r) => r,
                Err(e) => {
                    for (t, ps) in &topics {
                        self.client.invalidate(t);
                        for p in ps {
                            self.back_off(t, *p);
                        }
                    }
                    return Err(e);
                }
            };
            let conn = self.client.conn(&Target::Node(leader)).await;
            let quirks = conn.map(|c| c.quirks()).unwrap_or_default();
            let latest = if quirks.latest_from_high_watermark()
                && self.cfg.auto_offset_reset == OffsetReset::Latest
            {
                self.high_watermarks(leader, &topics).await
            } else {
                BTreeMap::new()
            };
            for t in &resp.topics {
                for p in &t.partitions {
                    if p.error_code == 0 && p.offset >= 0 {
                        let key = (t.name.0.to_string(), p.partition_index);
                        let offset = quirks::latest_offset(p.offset, latest.get(&key).copied());
                        tracing::debug!(topic = %t.name.0.as_str(), partition = p.partition_index, offset, listed = p.offset, "reset position");
                        self.positions
                            .set_position(t.name.0.as_str(), p.partition_index, offset);
                        self.retry_at.remove(&key);
                    } else if let Some(e) = KafkaError::from_code(
                        p.error_code,
                        format!("ListOffsets {}", t.name.0.as_str()),
                    ) {
                        // FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH (KIP-320) are retriable:
                        // our metadata or the broker's is behind; refreshed, then asked again.
                        if e.needs_metadata_refresh() || e.is_retriable() {
                            self.client.invalidate(t.name.0.as_str());
                            self.back_off(t.name.0.as_str(), p.partition_index);
                        } else {
                            return Err(e);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One ListOffsets to `leader`, with the isolation level from v2 on (Kafka 0.11; with
    /// read_committed, "latest" is the last stable offset).
    async fn list_offsets(
        &self,
        leader: i32,
        req: ListOffsetsRequest,
    ) -> Result<ListOffsetsResponse, KafkaError> {
        let conn = self.client.conn(&Target::Node(leader)).await?;
        let v = conn.version_for::<ListOffsetsRequest>()?;
        let req = if v >= 2 {
            req.with_isolation_level(self.cfg.isolation_level.wire())
        } else {
            req
        };
        let res = conn.request_at(&req, v).await;
        if let Err(e) = &res {
            self.client.note_failure(conn.addr(), e);
        }
        res
    }

    /// The high watermark (log end) of each partition, from a Fetch that waits for nothing and
    /// asks for as few bytes as the broker allows ([`quirks::high_watermark_request`]: a broker
    /// workaround). Partitions that fail are left out.
    async fn high_watermarks(
        &self,
        leader: i32,
        topics: &BTreeMap<String, Vec<i32>>,
    ) -> BTreeMap<(String, i32), i64> {
        let req = quirks::high_watermark_request(
            topics.iter().map(|(t, ps)| (t.as_str(), ps.as_slice())),
        );
        let resp = async {
            let conn = self.client.conn(&Target::Node(leader)).await?;
            let v = conn
                .quirks()
                .fetch_version(conn.version_for::<FetchRequest>()?);
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
    pub(super) async fn fetch_once(
        &mut self,
        wait: Duration,
    ) -> Result<Vec<RawRecord>, KafkaError> {
        let deadline = Instant::now() + self.cfg.connect_deadline;
        let by_leader = self.fetch_targets(deadline).await?;
        if by_leader.is_empty() {
            // Every owned partition is leaderless or backing off: wait, do not spin.
            let until = self.retry_at.values().map(|r| r.0).min();
            let nap = until.map_or(wait, |u| u.saturating_duration_since(Instant::now()));
            smol::Timer::after(nap.min(wait).max(Duration::from_millis(10))).await;
            return Ok(Vec::new());
        }
        let probing = !self.probes.is_empty();
        let mut tasks = Vec::new();
        let mut task_parts = Vec::new();
        for (leader, topics) in by_leader {
            let req = self.fetch_request(if probing { 0 } else { millis(wait) }, &topics);
            let client = self.client.clone();
            task_parts.push(
                topics
                    .iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |(p, ..)| (t.clone(), *p)))
                    .collect::<Vec<_>>(),
            );
            // One connect round: a dead leader must not hold the other leaders' records (its
            // partitions back off and find the new leader through metadata).
            let connect_by = Instant::now() + wait.max(Duration::from_secs(1));
            tasks.push(smol::spawn(async move {
                let conn = client.conn_once(&Target::Node(leader), connect_by).await?;
                let quirks = conn.quirks();
                let v = quirks.fetch_version(conn.version_for::<FetchRequest>()?);
                conn.request_at(&req, v).await.map(|resp| (resp, quirks))
            }));
        }
        // A failure on one leader must not lose what the others returned (their positions moved):
        // records win, the first error is returned only when there are none.
        let mut out = Vec::new();
        let mut out_of_range = Vec::new();
        let mut failed: Option<KafkaError> = None;
        for (parts, task) in task_parts.into_iter().zip(tasks) {
            let (resp, quirks) = match task.await {
                Ok(r) => r,
                Err(e) => {
                    for (t, p) in &parts {
                        self.client.invalidate(t);
                        self.back_off(t, *p);
                        self.read_replicas.remove(&(t.clone(), *p));
                    }
                    failed.get_or_insert(e);
                    continue;
                }
            };
            if let Some(e) = KafkaError::from_code(resp.error_code, "Fetch") {
                failed.get_or_insert(e);
                continue;
            }
            // Room for the whole answer's records at once: grown partition by partition, the list
            // was reallocated (a fresh mapping on the musl build, faulted in page by page) per fetch.
            out.reserve_exact(answer_records_hint(&resp));
            for topic in &resp.responses {
                let t = topic.topic.0.as_str();
                for part in &topic.partitions {
                    self.take_partition(t, part, quirks, &mut out, &mut out_of_range, &mut failed);
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

    /// The owned partitions with a position and room in the buffer, by leader: (partition, fetch
    /// offset, most bytes to ask for) per topic. A partition with `max_buffered_bytes` or more
    /// waiting for `poll` is left out; one with less asks for at most what is left of the cap.
    async fn fetch_targets(
        &mut self,
        deadline: Instant,
    ) -> Result<BTreeMap<i32, LeaderFetch>, KafkaError> {
        let mut by_leader: BTreeMap<i32, LeaderFetch> = BTreeMap::new();
        let owned: Vec<(String, i32)> = self.positions.fetch_order().to_vec();
        let mut buffered: BTreeMap<(&str, i32), usize> = BTreeMap::new();
        for r in &self.buffered {
            *buffered.entry((&*r.topic, r.partition)).or_default() += record_bytes(r);
        }
        let room: BTreeMap<(String, i32), usize> = owned
            .iter()
            .map(|(t, p)| {
                let held = buffered.get(&(t.as_str(), *p)).copied().unwrap_or(0);
                (
                    (t.clone(), *p),
                    self.cfg.max_buffered_bytes.saturating_sub(held),
                )
            })
            .collect();
        drop(buffered);
        for (t, p) in owned {
            let Some(pos) = self.positions.position(&t, p) else {
                continue;
            };
            if self.backing_off(&t, p) || self.stalled.waiting(&t) {
                continue;
            }
            let room = room.get(&(t.clone(), p)).copied().unwrap_or(0);
            if room == 0 {
                tracing::trace!(topic = %t, partition = p, "buffer full; not fetching");
                continue;
            }
            let max_bytes = i32::try_from(room)
                .unwrap_or(i32::MAX)
                .min(self.cfg.fetch_partition_max_bytes);
            let Some(meta) = self.topic_meta(&t, deadline).await? else {
                continue;
            };
            let Some(leader) = meta.leader(p) else {
                // Leaderless: this partition stalls (with backoff) until a leader appears.
                self.client.invalidate(&t);
                self.back_off(&t, p);
                continue;
            };
            // A read replica named by the leader (KIP-392) serves it instead, while it lasts.
            let node = self.read_replica(&t, p).unwrap_or(leader);
            // A probe (see below) fetches from an earlier offset; records below `pos` are skipped.
            let at = self
                .probes
                .get(&(t.clone(), p))
                .map_or(pos, |probe| probe.0);
            let epoch = meta.leader_epoch(p);
            push_fetch(
                by_leader.entry(node).or_default(),
                &t,
                (p, at, max_bytes, epoch),
            );
        }
        Ok(by_leader)
    }

    /// `topic`'s metadata, or `None` while it is stalled ([`super::stalled`]): a topic the
    /// cluster does not serve us (deleted, refused) stalls alone instead of failing the poll. A
    /// stalled topic due for a look is asked about once, without the grace a new topic gets.
    async fn topic_meta(
        &mut self,
        topic: &str,
        deadline: Instant,
    ) -> Result<Option<Arc<TopicMeta>>, KafkaError> {
        if self.stalled.waiting(topic) {
            return Ok(None);
        }
        let deadline = if self.stalled.contains(topic) {
            Instant::now()
        } else {
            deadline.max(Instant::now() + self.cfg.connect_deadline)
        };
        match self.client.topic(topic, deadline).await {
            Ok(meta) => {
                self.stalled.found(topic);
                Ok(Some(meta))
            }
            Err(e) if stalled::topic_alone(&e) => {
                self.stalled.stall(topic, e);
                Ok(None)
            }
            // Looked at once and still not listed (a timeout): it stays stalled.
            Err(e) if self.stalled.contains(topic) => {
                self.stalled.stall(topic, e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether a partition waits out a backoff after a retriable error.
    fn backing_off(&self, t: &str, p: i32) -> bool {
        self.retry_at
            .get(&(t.to_string(), p))
            .is_some_and(|(at, _)| *at > Instant::now())
    }

    /// A retriable error on a partition (no leader, leader moved or gone): skip it for a capped
    /// exponential backoff with jitter (100 ms doubling to 1 s), reset by its next good answer.
    pub(super) fn back_off(&mut self, t: &str, p: i32) {
        let e = self
            .retry_at
            .entry((t.to_string(), p))
            .or_insert((Instant::now(), 0));
        let wait =
            crate::kafka::client::backoff(Duration::from_millis(100), Duration::from_secs(1), e.1);
        *e = (Instant::now() + wait, e.1.saturating_add(1));
    }

    /// The Fetch request for one leader's partitions, in fetch order, with the isolation level
    /// (v4+, every version we send), each partition's current leader epoch (KIP-320, v9+) and
    /// the client's rack (v11+; both left out of older versions).
    fn fetch_request(&self, max_wait_ms: i32, topics: &LeaderFetch) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(self.cfg.fetch_min_bytes)
            .with_max_bytes(self.cfg.fetch_max_bytes)
            .with_isolation_level(self.cfg.isolation_level.wire())
            .with_rack_id(name(self.cfg.client_rack.as_deref().unwrap_or_default()))
            .with_topics(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        FetchTopic::default()
                            .with_topic(TopicName(name(t)))
                            .with_partitions(
                                ps.iter()
                                    .map(|(p, pos, max_bytes, epoch)| {
                                        FetchPartition::default()
                                            .with_partition(*p)
                                            .with_current_leader_epoch(*epoch)
                                            .with_fetch_offset(*pos)
                                            .with_partition_max_bytes(*max_bytes)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    }

    /// One partition of a Fetch answer: its records into `out` (moving the position), an
    /// out-of-range partition into `out_of_range`, the first hard error into `failed`. `quirks`:
    /// the workarounds of the broker that answered (for `accept_or_probe`).
    #[allow(clippy::too_many_arguments)]
    fn take_partition(
        &mut self,
        t: &str,
        part: &PartitionData,
        quirks: Quirks,
        out: &mut Vec<RawRecord>,
        out_of_range: &mut Vec<(String, i32)>,
        failed: &mut Option<KafkaError>,
    ) {
        let p = part.partition_index;
        let Some(pos) = self.positions.position(t, p) else {
            return;
        };
        if part.error_code != 0 {
            // To the back of the next fetch, as Java does after an error.
            self.positions.move_to_end(t, p);
            self.partition_error(t, p, pos, part.error_code, out_of_range, failed);
            return;
        }
        if part.preferred_read_replica.0 >= 0 {
            self.follow_read_replica(t, p, part.preferred_read_replica.0);
        }
        tracing::trace!(
            topic = t,
            partition = p,
            fetch_offset = pos,
            bytes = part.records.as_ref().map_or(0, |r| r.len()),
            high_watermark = part.high_watermark,
            "fetched"
        );
        self.retry_at.remove(&(t.to_string(), p));
        let data = part.records.clone().unwrap_or_default();
        let committed = (self.cfg.isolation_level == IsolationLevel::ReadCommitted).then(|| {
            (part.aborted_transactions.iter().flatten())
                .map(|a| Aborted {
                    producer_id: a.producer_id.0,
                    first_offset: a.first_offset,
                })
                .collect::<Vec<_>>()
        });
        let max = self.cfg.max_batch_bytes;
        let fetched = decode_fetched(t, p, &data, pos, max, committed.as_deref());
        let fetch_at = self
            .probes
            .get(&(t.to_string(), p))
            .map_or(pos, |probe| probe.0);
        if !self.accept_or_probe(
            quirks,
            t,
            p,
            pos,
            fetch_at,
            &fetched,
            part.high_watermark,
            part.log_start_offset,
        ) {
            return;
        }
        if let Some(next) = fetched.next_offset.filter(|n| *n > pos) {
            self.positions.set_position(t, p, next);
            // It returned data: to the back of the next fetch (see `positions.rs`).
            self.positions.move_to_end(t, p);
        }
        if let Some(e) = fetched.error {
            // Records before the bad batch are delivered; the next poll stops at it.
            let at = self.positions.position(t, p).unwrap_or(pos);
            tracing::warn!(topic = t, partition = p, offset = at, kind = e.kind().as_str(), error = %e, "unreadable record batch");
            failed.get_or_insert(KafkaError::Batch {
                topic: t.to_string(),
                partition: p,
                position: at,
                source: e,
            });
        }
        if out.is_empty() && out.capacity() < fetched.records.len() {
            *out = fetched.records;
        } else {
            // Exactly what is added (mostly reserved already, `answer_records_hint`): a doubling
            // would leave up to half the records' room unused.
            out.reserve_exact(fetched.records.len());
            out.extend(fetched.records);
        }
    }

    /// A partition's error in a Fetch answer: out of range resets the position (unless it came
    /// from a read replica, which may lag: then the leader is asked again), a retriable error
    /// backs off, another is `failed`. A read replica that answered an error is left for the
    /// leader (as Java's consumer does).
    fn partition_error(
        &mut self,
        t: &str,
        p: i32,
        pos: i64,
        code: i16,
        out_of_range: &mut Vec<(String, i32)>,
        failed: &mut Option<KafkaError>,
    ) {
        let from_replica = self.read_replicas.remove(&(t.to_string(), p)).is_some();
        if code == 1 && from_replica {
            tracing::debug!(
                topic = t,
                partition = p,
                offset = pos,
                "offset out of range on the read replica; asking the leader"
            );
            return;
        }
        if code == 1 {
            tracing::warn!(
                topic = t,
                partition = p,
                offset = pos,
                "offset out of range; resetting"
            );
            out_of_range.push((t.to_string(), p));
            return;
        }
        let e = KafkaError::from_code(code, format!("Fetch {t}-{p}"))
            .unwrap_or(KafkaError::Protocol("Fetch".into()));
        if e.needs_metadata_refresh() || e.is_retriable() {
            tracing::debug!(topic = t, partition = p, error = %e, "fetch: retrying partition");
            self.client.invalidate(t);
            self.back_off(t, p);
        } else {
            failed.get_or_insert(e);
        }
    }

    /// KIP-392: the leader names a replica in our rack (`client_rack`) to fetch from; it serves
    /// the partition until the client's metadata max age passes or it answers an error (as in
    /// Java).
    fn follow_read_replica(&mut self, t: &str, p: i32, node: i32) {
        let until = Instant::now() + self.client.config().metadata_max_age;
        let before = self.read_replicas.insert((t.to_string(), p), (node, until));
        if before.is_none_or(|(n, _)| n != node) {
            tracing::info!(
                topic = t,
                partition = p,
                node,
                "fetching from the preferred read replica"
            );
        }
    }

    /// The read replica to fetch `t`-`p` from, while it has not expired.
    fn read_replica(&self, t: &str, p: i32) -> Option<i32> {
        (self.read_replicas.get(&(t.to_string(), p)))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(node, _)| *node)
    }

    /// The step-back probe ([`Quirks::step_back`], a broker workaround): whether to take this
    /// answer, or throw it away and fetch the partition again from an earlier offset (kept in
    /// `probes` until an answer is taken).
    #[allow(clippy::too_many_arguments)]
    fn accept_or_probe(
        &mut self,
        quirks: Quirks,
        t: &str,
        p: i32,
        pos: i64,
        fetch_at: i64,
        fetched: &Fetched,
        high_watermark: i64,
        log_start: i64,
    ) -> bool {
        let key = (t.to_string(), p);
        let probe = Probe {
            position: pos,
            fetch_at,
            last_step: self.probes.get(&key).map_or(0, |probe| probe.1),
        };
        let Some((next, step)) = quirks.step_back(probe, fetched, high_watermark, log_start) else {
            self.probes.remove(&key);
            return true;
        };
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
}

/// How many records a Fetch answer's partitions hold, as their batch headers say (capped by their
/// bytes): what `fetch_once` reserves before it takes the partitions one by one.
fn answer_records_hint(resp: &FetchResponse) -> usize {
    (resp.responses.iter())
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code == 0)
        .filter_map(|p| p.records.as_ref())
        .map(records_hint)
        .fold(0, usize::saturating_add)
}

/// The bytes a buffered record holds: key, value and headers (what `max_buffered_bytes` counts).
fn record_bytes(r: &RawRecord) -> usize {
    r.key.as_ref().map_or(0, |k| k.len())
        + r.value.as_ref().map_or(0, |v| v.len())
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum::<usize>()
}
