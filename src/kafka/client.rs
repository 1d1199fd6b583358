//! The cluster handle: bootstrap list, one connection per broker, metadata cache, topic creation.
//!
//! Reconnects with capped exponential backoff, bounded by an overall deadline, so no call hangs
//! when brokers are down (it returns `BrokerUnreachable` or `Timeout`). Requests already written
//! are never resent here (they may have been applied): callers such as the producer decide;
//! Metadata requests, which change nothing, are the exception.
//!
//! A broker that lets a request time out is *suspect* for one request timeout (a hung broker
//! keeps its sockets open, so nothing else tells it from a live one): `Target::Any` tries it
//! last. One whose connection handshake (ApiVersions, which waits for nothing else in the
//! cluster) timed out is *hung*: for that period a new connection to it by node id is refused at
//! once, so the producer refreshes metadata and finds the partition's next leader instead. (A
//! broker dialled by address, a group coordinator that FindCoordinator has just named, is dialled
//! all the same: that answer is newer than the suspicion.) A caller whose request to a broker
//! timed out drops that connection ([`Client::drop_timed_out`]): a hung connection is not reused.
//! Must not know about records, batching or consumer groups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use super::KafkaError;
use super::conn::{Conn, ConnConfig};

/// How long an UNKNOWN_TOPIC_OR_PARTITION answer is asked again before the topic counts as unknown:
/// brokers learn of a new topic a moment apart, and metadata requests rotate over them.
const UNKNOWN_TOPIC_GRACE: Duration = Duration::from_secs(3);

/// Partitions and replication factor for topics the client creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor (copies of each partition); -1: the broker's `default.replication.factor`.
    pub replication: i16,
}

/// Cluster-level settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` bootstrap brokers.
    pub bootstrap: Vec<String>,
    /// Per-connection settings (client id, timeouts, SASL, TLS).
    pub conn: ConnConfig,
    /// First reconnect delay; doubles up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    /// Longest reconnect delay (default 1 s; librdkafka's `reconnect.backoff.max.ms`).
    pub retry_backoff_max: Duration,
    /// Overall bound on getting a connection (all reconnect attempts together).
    pub connect_deadline: Duration,
    /// Cached topic metadata older than this is refreshed on next use.
    pub metadata_max_age: Duration,
    /// Create unknown topics with this spec (CreateTopics); `None`: unknown topics are errors.
    pub auto_create: Option<TopicSpec>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap: vec!["127.0.0.1:9092".into()],
            conn: ConnConfig::default(),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            connect_deadline: Duration::from_secs(10),
            metadata_max_age: Duration::from_secs(300),
            auto_create: None,
        }
    }
}

/// Where to send a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Any reachable broker: bootstrap and known brokers, from the one that last answered.
    Any,
    /// A broker by node id (from metadata).
    Node(i32),
    /// A broker by address.
    Addr(String),
}

/// One partition's leader as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    pub id: i32,
    pub leader: i32,
    /// The leader's epoch (KIP-320; Metadata v7+), -1 when the broker did not say.
    pub leader_epoch: i32,
    pub error_code: i16,
}

/// A topic's partitions as last seen.
#[derive(Debug, Clone)]
pub struct TopicMeta {
    /// The topic.
    pub name: String,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionMeta>,
    /// When this metadata was fetched (it is refreshed after `metadata_max_age`).
    pub fetched: Instant,
}

impl TopicMeta {
    /// The broker id leading `partition`, if the partition is known and has a leader.
    pub fn leader(&self, partition: i32) -> Option<i32> {
        self.partitions
            .iter()
            .find(|p| p.id == partition)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
    }

    /// The leader epoch of `partition` as last seen (KIP-320), -1 when unknown: what Fetch and
    /// ListOffsets send as `current_leader_epoch`, so a broker that is no longer (or not yet) the
    /// leader of that epoch refuses instead of answering from a stale view.
    pub fn leader_epoch(&self, partition: i32) -> i32 {
        (self.partitions.iter())
            .find(|p| p.id == partition)
            .map_or(-1, |p| p.leader_epoch)
    }
}

type Slot = Arc<smol::lock::Mutex<Option<Arc<Conn>>>>;

struct Inner {
    cfg: ClientConfig,
    slots: Mutex<HashMap<String, Slot>>,
    brokers: Mutex<HashMap<i32, String>>,
    topics: Mutex<HashMap<String, Arc<TopicMeta>>>,
    /// The address that last answered a request for `Target::Any`: tried first next time.
    last_good: Mutex<Option<String>>,
    /// Addresses that let a request time out: the end of their suspect period, and whether a
    /// handshake timed out (hung).
    suspect: Mutex<HashMap<String, (Instant, bool)>>,
}

/// A cheap-to-clone handle on a Kafka cluster. All methods are async; run them with
/// [`super::block_on`] from blocking code.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.cfg.bootstrap)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Build a client; no I/O happens until the first request.
    pub fn new(cfg: ClientConfig) -> Result<Client, KafkaError> {
        if cfg.bootstrap.is_empty() {
            return Err(KafkaError::Config("no bootstrap brokers".into()));
        }
        Ok(Client {
            inner: Arc::new(Inner {
                cfg,
                slots: Mutex::new(HashMap::new()),
                brokers: Mutex::new(HashMap::new()),
                topics: Mutex::new(HashMap::new()),
                last_good: Mutex::new(None),
                suspect: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The settings the client was created with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// A live connection to `target`, reconnecting with backoff until the connect deadline.
    pub async fn conn(&self, target: &Target) -> Result<Arc<Conn>, KafkaError> {
        let deadline = Instant::now() + self.inner.cfg.connect_deadline;
        self.conn_until(target, deadline).await
    }

    /// One round over `target`'s addresses (no reconnect backoff), bounded by the connect timeout
    /// and `deadline`: for callers that would rather refresh metadata than wait for a broker
    /// that may be gone for good (the producer after its leader died).
    pub async fn conn_once(
        &self,
        target: &Target,
        deadline: Instant,
    ) -> Result<Arc<Conn>, KafkaError> {
        let deadline = deadline.min(Instant::now() + self.inner.cfg.conn.connect_timeout);
        let mut last = None;
        for addr in &self.addrs_for(target)? {
            if matches!(target, Target::Node(_))
                && self.suspicion(addr) == Some(true)
                && self.live_conn(addr).is_none()
            {
                last = Some(KafkaError::BrokerUnreachable {
                    broker: addr.clone(),
                    reason: "a request to it timed out a moment ago (hung broker?)".into(),
                });
                continue;
            }
            match self.conn_to(addr, deadline).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::BrokerUnreachable {
            broker: format!("{target:?}"),
            reason: "no address".into(),
        }))
    }

    /// Like [`Client::conn`] with an explicit deadline.
    pub async fn conn_until(
        &self,
        target: &Target,
        deadline: Instant,
    ) -> Result<Arc<Conn>, KafkaError> {
        let mut backoff = self.inner.cfg.retry_backoff;
        loop {
            let addrs = self.addrs_for(target)?;
            let mut last = None;
            for addr in &addrs {
                match self.conn_to(addr, deadline).await {
                    Ok(c) => {
                        if *target == Target::Any {
                            *lock(&self.inner.last_good) = Some(addr.clone());
                        }
                        return Ok(c);
                    }
                    // Auth, TLS trust and config failures do not heal by retrying.
                    Err(e) if e.is_security_rejection() || matches!(e, KafkaError::Config(_)) => {
                        return Err(e);
                    }
                    Err(e) => last = Some(e),
                }
            }
            let now = Instant::now();
            let err = last.unwrap_or_else(|| KafkaError::BrokerUnreachable {
                broker: format!("{target:?}"),
                reason: "no address".into(),
            });
            if now + backoff >= deadline {
                return Err(err);
            }
            tracing::debug!(target = ?target, error = %err, backoff_ms = backoff.as_millis() as u64, "reconnecting");
            smol::Timer::after(backoff).await;
            backoff = (backoff * 2).min(self.inner.cfg.retry_backoff_max);
        }
    }

    fn addrs_for(&self, target: &Target) -> Result<Vec<String>, KafkaError> {
        match target {
            Target::Addr(a) => Ok(vec![a.clone()]),
            Target::Node(n) => match lock(&self.inner.brokers).get(n) {
                Some(a) => Ok(vec![a.clone()]),
                None => Err(KafkaError::BrokerUnreachable {
                    broker: format!("node {n}"),
                    reason: "not in metadata".into(),
                }),
            },
            Target::Any => {
                // Bootstrap and every known broker, in rotation from the one that last answered:
                // a dead first bootstrap host does not cost every refresh its connect timeout.
                let mut v = self.inner.cfg.bootstrap.clone();
                let mut known: Vec<String> = lock(&self.inner.brokers).values().cloned().collect();
                known.sort();
                for a in known {
                    if !v.contains(&a) {
                        v.push(a);
                    }
                }
                if let Some(last) = lock(&self.inner.last_good).as_ref()
                    && let Some(i) = v.iter().position(|a| a == last)
                {
                    v.rotate_left(i);
                }
                // Suspect (hung) brokers last, in the same rotation: tried only if no other answers.
                let (mut ok, suspect): (Vec<String>, Vec<String>) =
                    v.into_iter().partition(|a| self.suspicion(a).is_none());
                ok.extend(suspect);
                Ok(ok)
            }
        }
    }

    async fn conn_to(&self, addr: &str, deadline: Instant) -> Result<Arc<Conn>, KafkaError> {
        let slot = lock(&self.inner.slots)
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        *guard = None;
        let mut cfg = self.inner.cfg.conn.clone();
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        cfg.connect_timeout = cfg.connect_timeout.min(left);
        // The whole handshake (TCP, ApiVersions, SASL) fits in the connect timeout and in what
        // is left of the deadline.
        let full = self.inner.cfg.conn.connect_timeout;
        let bound = left.min(full);
        let conn = match super::conn::with_timeout(bound, Conn::connect(addr, &cfg)).await {
            Some(Ok(c)) => Arc::new(c),
            // A handshake request that ran its request timeout: the broker is hung.
            Some(Err(e)) => {
                self.mark_suspect(addr, &e, true);
                return Err(e);
            }
            None => {
                let e = KafkaError::Timeout {
                    what: format!("connecting to {addr}"),
                    after: bound,
                };
                // Hung too if it had (about) its whole connect timeout: running out of the
                // caller's deadline says nothing about the broker.
                if bound >= full - full / 10 {
                    self.mark_suspect(addr, &e, true);
                }
                return Err(e);
            }
        };
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Send one request to `target` at the negotiated version. Connection failures before the
    /// request is written are retried until the connect deadline; a request that was written is
    /// never resent. A timeout makes the broker suspect.
    pub async fn request<R: Request>(
        &self,
        target: &Target,
        req: &R,
    ) -> Result<R::Response, KafkaError> {
        let conn = self.conn(target).await?;
        let res = conn.request(req).await;
        if let Err(e) = &res {
            self.note_failure(conn.addr(), e);
        }
        res
    }

    /// Record how a request to `addr` failed: a timeout makes the broker suspect for one request
    /// timeout (see the module doc). Callers that talk to a [`Conn`] directly report here.
    pub fn note_failure(&self, addr: &str, err: &KafkaError) {
        self.mark_suspect(addr, err, false);
    }

    /// A request to `addr` timed out (`err` is a [`KafkaError::Timeout`]; other errors change
    /// nothing): close the connection, so the next request dials afresh instead of queueing behind
    /// the unanswered one, and make the broker suspect (see the module doc). For the consumer
    /// group's coordinator, which Java's client likewise disconnects when it marks it unknown.
    pub fn drop_timed_out(&self, addr: &str, err: &KafkaError) {
        if !matches!(err, KafkaError::Timeout { .. }) {
            return;
        }
        self.mark_suspect(addr, err, false);
        if let Some(c) = self.live_conn(addr) {
            c.close("a request timed out; reconnecting");
        }
    }

    /// After a timeout (of a handshake when `hung`), `addr` is suspect for one request timeout.
    fn mark_suspect(&self, addr: &str, err: &KafkaError, hung: bool) {
        if !matches!(err, KafkaError::Timeout { .. }) {
            return;
        }
        let period = self.inner.cfg.conn.request_timeout;
        tracing::info!(broker = addr, error = %err, hung, suspect_ms = period.as_millis() as u64, "broker timed out; suspect");
        let hung = hung || self.suspicion(addr) == Some(true);
        lock(&self.inner.suspect).insert(addr.to_string(), (Instant::now() + period, hung));
        let mut last = lock(&self.inner.last_good);
        if last.as_deref() == Some(addr) {
            *last = None;
        }
    }

    /// `None` unless `addr` is within its suspect period; then whether it is hung.
    fn suspicion(&self, addr: &str) -> Option<bool> {
        let mut s = lock(&self.inner.suspect);
        match s.get(addr) {
            Some((until, hung)) if *until > Instant::now() => Some(*hung),
            Some(_) => {
                s.remove(addr);
                None
            }
            None => None,
        }
    }

    /// The open connection to `addr`, if there is one (without connecting).
    fn live_conn(&self, addr: &str) -> Option<Arc<Conn>> {
        let slot = lock(&self.inner.slots).get(addr).cloned()?;
        let guard = slot.try_lock()?;
        guard.as_ref().filter(|c| c.is_alive()).cloned()
    }

    /// A Metadata request to any broker. It changes nothing, so one that times out or loses
    /// its connection is asked again of the next broker (a suspect one comes last); each try's
    /// connecting is bounded by the request (or connect) timeout, its answer by the request
    /// timeout.
    async fn metadata_any(&self, req: &MetadataRequest) -> Result<MetadataResponse, KafkaError> {
        let tries = self.addrs_for(&Target::Any)?.len().clamp(1, 3);
        let bound = self.inner.cfg.conn.request_timeout;
        let mut last = None;
        for _ in 0..tries {
            let per_try = bound.max(self.inner.cfg.conn.connect_timeout);
            let deadline = Instant::now() + per_try.min(self.inner.cfg.connect_deadline);
            let conn = self.conn_until(&Target::Any, deadline).await?;
            match conn.request(req).await {
                Err(e @ (KafkaError::Timeout { .. } | KafkaError::Disconnected { .. })) => {
                    self.note_failure(conn.addr(), &e);
                    tracing::debug!(broker = conn.addr(), error = %e, "metadata request failed; asking another broker");
                    last = Some(e);
                }
                res => return res,
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::BrokerUnreachable {
            broker: "any".into(),
            reason: "no address".into(),
        }))
    }

    /// Addresses of the brokers known from metadata, by node id.
    pub fn brokers(&self) -> HashMap<i32, String> {
        lock(&self.inner.brokers).clone()
    }

    /// Fetch metadata for `topics` (empty: all topics) and update the broker map.
    pub async fn fetch_metadata(&self, topics: &[&str]) -> Result<MetadataResponse, KafkaError> {
        let req = MetadataRequest::default()
            .with_topics(if topics.is_empty() {
                None
            } else {
                Some(
                    topics
                        .iter()
                        .map(|t| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                        })
                        .collect(),
                )
            })
            .with_allow_auto_topic_creation(false);
        let resp = self.metadata_any(&req).await?;
        {
            let mut b = lock(&self.inner.brokers);
            for br in &resp.brokers {
                b.insert(br.node_id.0, format!("{}:{}", br.host.as_str(), br.port));
            }
        }
        let mut cache = lock(&self.inner.topics);
        for t in &resp.topics {
            let Some(name) = t.name.as_ref() else {
                continue;
            };
            if t.error_code != 0 {
                cache.remove(name.0.as_str());
                continue;
            }
            let mut partitions: Vec<PartitionMeta> = t
                .partitions
                .iter()
                .map(|p| PartitionMeta {
                    id: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            cache.insert(
                name.0.to_string(),
                Arc::new(TopicMeta {
                    name: name.0.to_string(),
                    partitions,
                    fetched: Instant::now(),
                }),
            );
        }
        Ok(resp)
    }

    /// Forget a topic's cached metadata (after NOT_LEADER_OR_FOLLOWER and the like).
    pub fn invalidate(&self, topic: &str) {
        lock(&self.inner.topics).remove(topic);
    }

    /// Cached metadata for a topic, refreshed when older than `metadata_max_age`; creates the
    /// topic when it is unknown and `auto_create` is set; waits (with backoff, until `deadline`)
    /// for its partitions to be listed. Partitions without a leader (leader -1) do not hold the
    /// topic back: callers stall just those until a leader appears.
    pub async fn topic(
        &self,
        topic: &str,
        deadline: Instant,
    ) -> Result<Arc<TopicMeta>, KafkaError> {
        if let Some(t) = lock(&self.inner.topics).get(topic)
            && t.fetched.elapsed() < self.inner.cfg.metadata_max_age
        {
            return Ok(t.clone());
        }
        let started = Instant::now();
        let mut backoff = self.inner.cfg.retry_backoff;
        let mut created = false;
        loop {
            let resp = self.fetch_metadata(&[topic]).await?;
            let code = resp
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
                .map(|t| t.error_code)
                .unwrap_or(3);
            let ready = lock(&self.inner.topics)
                .get(topic)
                .filter(|t| !t.partitions.is_empty())
                .cloned();
            if let Some(t) = ready {
                return Ok(t);
            }
            if code == 3 {
                match (self.inner.cfg.auto_create, created) {
                    (Some(spec), false) => {
                        self.create_topic(topic, spec).await?;
                        created = true;
                    }
                    // Another broker may not have caught up with a topic created a moment ago (metadata
                    // requests rotate over the brokers): ask again for a short grace time before
                    // calling it unknown, so a genuinely unknown topic still fails promptly.
                    (None, _) if started.elapsed() >= UNKNOWN_TOPIC_GRACE => {
                        return Err(KafkaError::UnknownTopic(topic.to_string()));
                    }
                    _ => {}
                }
            } else if let Some(e) = KafkaError::from_code(code, format!("metadata for {topic}"))
                && !e.is_retriable()
            {
                return Err(e);
            }
            if Instant::now() + backoff >= deadline {
                return Err(KafkaError::Timeout {
                    what: format!("metadata for topic {topic} (error code {code})"),
                    after: started.elapsed(),
                });
            }
            smol::Timer::after(backoff).await;
            backoff = (backoff * 2).min(self.inner.cfg.retry_backoff_max);
        }
    }

    /// Whether any partition of a cached topic has no leader.
    pub fn has_leaderless(&self, topic: &str) -> bool {
        lock(&self.inner.topics)
            .get(topic)
            .is_some_and(|t| t.partitions.iter().any(|p| p.leader < 0))
    }

    /// Create a topic; an already existing topic is not an error.
    pub async fn create_topic(&self, topic: &str, spec: TopicSpec) -> Result<(), KafkaError> {
        self.create_topic_with(topic, spec, &[]).await
    }

    /// Create a topic with topic configs (e.g. `cleanup.policy=compact`); an already existing
    /// topic is not an error (its configs are left as they are).
    pub async fn create_topic_with(
        &self,
        topic: &str,
        spec: TopicSpec,
        configs: &[(&str, &str)],
    ) -> Result<(), KafkaError> {
        let configs = (configs.iter())
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_value(Some(StrBytes::from_string(v.to_string())))
            })
            .collect();
        let req = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_num_partitions(spec.partitions)
                    .with_replication_factor(spec.replication)
                    .with_configs(configs),
            ])
            .with_timeout_ms(
                self.inner
                    .cfg
                    .conn
                    .request_timeout
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            );
        let resp = self.request(&Target::Any, &req).await?;
        for t in &resp.topics {
            // 36 = TOPIC_ALREADY_EXISTS
            if t.error_code != 0 && t.error_code != 36 {
                let msg = t
                    .error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                return Err(KafkaError::from_code(
                    t.error_code,
                    format!("CreateTopics {topic}: {msg}"),
                )
                .unwrap_or(KafkaError::Protocol("CreateTopics failed".into())));
            }
        }
        tracing::info!(
            topic,
            partitions = spec.partitions,
            replication = spec.replication,
            "created topic"
        );
        Ok(())
    }

    /// Drop every connection.
    pub fn close(&self) {
        let slots: Vec<Slot> = lock(&self.inner.slots).drain().map(|(_, s)| s).collect();
        for s in slots {
            if let Some(guard) = s.try_lock()
                && let Some(c) = guard.as_ref()
            {
                c.close("client closed");
            }
        }
    }
}

/// The pause before retry `attempt` (0-based), as KIP-580 and Java's `ExponentialBackoff`
/// (`retry.backoff.ms`, multiplier 2, `retry.backoff.max.ms`, jitter 0.2): `base * 2^attempt`
/// (the exponent stops where the term reaches `max`), times a random factor in [0.8, 1.2), at
/// most `max`. A `max` not above `base` gives `base`, without jitter. Every retry of the Kafka
/// client (producer, consumer, metadata) waits this long, so clients that failed together do
/// not retry in lockstep.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    const JITTER: f64 = 0.2;
    if max <= base {
        return base;
    }
    let (base_ms, max_ms) = (base.as_secs_f64() * 1e3, max.as_secs_f64() * 1e3);
    let exp_max = (max_ms / base_ms.max(1.0)).log2();
    let term = base_ms * 2f64.powf(f64::from(attempt).min(exp_max));
    let factor = 1.0 - JITTER + 2.0 * JITTER * fastrand::f64();
    Duration::from_secs_f64((term * factor).min(max_ms) / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// KIP-580: 100 ms doubling to 1 s, each within ±20 % (at most the cap), spread out (not
    /// always the same value), and no jitter when the cap is not above the base.
    #[test]
    fn backoff_doubles_up_to_the_cap_with_a_fifth_of_jitter_either_way() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for attempt in 0..40 {
            let term = (100.0 * 2f64.powi(attempt.min(10) as i32)).min(1000.0);
            let got: Vec<f64> = (0..200).map(|_| ms(backoff(base, max, attempt))).collect();
            let (lo, hi) = got
                .iter()
                .fold((f64::MAX, 0f64), |(l, h), v| (l.min(*v), h.max(*v)));
            assert!(
                lo >= term * 0.8 - 1e-6,
                "attempt {attempt}: {lo} below {term} - 20 %"
            );
            assert!(
                hi <= (term * 1.2).min(1000.0) + 1e-6,
                "attempt {attempt}: {hi} over"
            );
            assert!(
                hi - lo > term * 0.1,
                "attempt {attempt}: no jitter ({lo}..{hi})"
            );
            if term * 1.2 < 1000.0 {
                assert!(
                    hi > term,
                    "attempt {attempt}: jitter never above {term} ({hi})"
                );
            }
        }
        assert_eq!(backoff(max, max, 3), max);
        assert_eq!(backoff(max, base, 0), max);
    }

    #[test]
    fn any_broker_starts_from_the_one_that_last_answered() {
        let client = Client::new(ClientConfig {
            bootstrap: vec!["a:1".into(), "b:1".into()],
            ..ClientConfig::default()
        })
        .unwrap();
        lock(&client.inner.brokers).insert(3, "c:1".into());
        assert_eq!(
            client.addrs_for(&Target::Any).unwrap(),
            ["a:1", "b:1", "c:1"]
        );
        *lock(&client.inner.last_good) = Some("c:1".into());
        assert_eq!(
            client.addrs_for(&Target::Any).unwrap(),
            ["c:1", "a:1", "b:1"]
        );
    }

    /// A broker whose handshake timed out is hung: tried last by `Target::Any`, and a new
    /// connection to it by node id is refused at once (no second handshake to wait for).
    #[test]
    fn a_hung_broker_goes_last_and_is_not_dialled_by_node_id() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hung = l.local_addr().unwrap().to_string();
        let _hold = std::thread::spawn(move || {
            let conns: Vec<_> = l.incoming().take(5).collect();
            std::thread::sleep(Duration::from_secs(5));
            drop(conns);
        });
        let client = Client::new(ClientConfig {
            bootstrap: vec![hung.clone(), "b:1".into()],
            conn: ConnConfig {
                connect_timeout: Duration::from_millis(300),
                request_timeout: Duration::from_secs(30),
                ..ConnConfig::default()
            },
            ..ClientConfig::default()
        })
        .unwrap();
        lock(&client.inner.brokers).insert(1, hung.clone());
        let far = Instant::now() + Duration::from_secs(10);
        let err = super::super::block_on(client.conn_once(&Target::Node(1), far)).unwrap_err();
        assert_eq!(err.kind(), "timeout", "{err}");
        assert_eq!(client.suspicion(&hung), Some(true));
        assert_eq!(
            client.addrs_for(&Target::Any).unwrap(),
            ["b:1", hung.as_str()]
        );
        let t = Instant::now();
        let err = super::super::block_on(client.conn_once(&Target::Node(1), far)).unwrap_err();
        assert_eq!(err.kind(), "broker-unreachable", "{err}");
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        // By address (a group coordinator FindCoordinator has just named) it is dialled again.
        let err = super::super::block_on(client.conn_once(&Target::Addr(hung), far)).unwrap_err();
        assert_eq!(err.kind(), "timeout", "{err}");
    }

    /// A broker that accepts TCP but never answers: getting a connection still ends at the
    /// connect deadline (not at the much longer request timeout), with a typed error.
    #[test]
    fn mute_broker_cannot_hold_a_call_past_the_connect_deadline() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let _hold = std::thread::spawn(move || {
            let conns: Vec<_> = l.incoming().take(20).collect();
            std::thread::sleep(Duration::from_secs(5));
            drop(conns);
        });
        let client = Client::new(ClientConfig {
            bootstrap: vec![addr],
            conn: ConnConfig {
                request_timeout: Duration::from_secs(30),
                ..ConnConfig::default()
            },
            connect_deadline: Duration::from_millis(700),
            ..ClientConfig::default()
        })
        .unwrap();
        let t = Instant::now();
        let err = super::super::block_on(client.fetch_metadata(&[])).unwrap_err();
        assert_eq!(err.kind(), "timeout", "{err}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
    }
}
