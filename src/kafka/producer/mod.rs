//! The blocking Kafka producer: acks all/1/0, batching, compression, retries, partitioning.
//!
//! Must not encode Avro itself: typed helpers call [`crate::codec`].
//!
//! # How it works
//! Callers append records to per-partition batches (record batch v2, built incrementally) under
//! one mutex; a sender thread (`avro-edge-producer`, running a smol executor) sends a batch when
//! it is full (`batch_size` bytes), when its `linger` has passed, or on `flush`. All ready batches
//! for one leader go in one Produce request; requests to different leaders run concurrently.
//! At most ONE batch per partition is in flight, so a retried batch can never be overtaken:
//! order is kept per partition. Retriable errors (NOT_LEADER_OR_FOLLOWER, timeouts, lost
//! connections, ...) are retried with capped exponential backoff until `retries` or the batch's
//! `delivery_timeout` runs out; metadata is refreshed when the error says leaders moved.
//! Delivery is at-least-once: a retry after a lost connection may duplicate a batch (no
//! idempotent producer).
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use avro_edge::kafka::producer::{Acks, Compression, OutRecord, Producer, ProducerConfig};
//! # fn main() -> Result<(), avro_edge::kafka::KafkaError> {
//! let mut cfg = ProducerConfig::new(["127.0.0.1:9092"]);
//! cfg.acks = Acks::All;
//! cfg.compression = Compression::Snappy;
//! let producer = Producer::connect(cfg)?;
//! let d = producer.send("sensor-data", Some(b"sensor-1"), b"\0\0\0\0\x01...")?;
//! println!("partition {} offset {:?}", d.partition, d.offset);
//! let batch = vec![OutRecord { key: None, value: b"v".to_vec(), headers: vec![] }];
//! for r in producer.send_batch("sensor-data", &batch) {
//!     r?;
//! }
//! let pending = producer.enqueue("sensor-data", None, b"v"); // returns at once
//! producer.flush(Duration::from_secs(10))?;
//! pending.wait()?;
//! producer.close()?;
//! # Ok(()) }
//! ```
//!
//! # Acks
//! - `Acks::All` (default, `-1`): the leader answers once all in-sync replicas have the batch.
//! - `Acks::Leader` (`1`): the leader answers once it has written the batch; lost if it dies
//!   before replicating.
//! - `Acks::None` (`0`): the broker sends no response; a record counts as delivered once it is
//!   written to the socket. There is no offset (`Delivery::offset == None`) and records can be
//!   lost silently (broker crash, connection reset after the write, a rejected batch).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::codec::Codec;
use crate::kafka::record::{BatchBuilder, partition_for_key};
use crate::kafka::{Client, ClientConfig, ConnConfig, KafkaError, SaslConfig, Target, TopicSpec};
use crate::registry::SubjectNameStrategy;

pub use crate::kafka::record::Compression;

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

impl Acks {
    pub fn parse(s: &str) -> Result<Acks, KafkaError> {
        match s.to_ascii_lowercase().as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" | "leader" => Ok(Acks::Leader),
            "0" | "none" => Ok(Acks::None),
            other => Err(KafkaError::Config(format!(
                "acks must be all, 1 or 0, not {other:?}"
            ))),
        }
    }
    fn wire(self) -> i16 {
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
    pub brokers: Vec<String>,
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// A batch is sent once it reaches this many (uncompressed) bytes.
    pub batch_size: usize,
    pub compression: Compression,
    /// How often a batch is retried after a retriable error.
    pub retries: u32,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// Bound on each request (also sent to the broker as the produce timeout).
    pub request_timeout: Duration,
    /// Bound on a record's whole life, from `send`/`enqueue` to its acknowledgement or error.
    pub delivery_timeout: Duration,
    pub client_id: String,
    pub sasl: Option<SaslConfig>,
    #[cfg(feature = "tls")]
    pub tls: Option<crate::kafka::tls::TlsConfig>,
    /// Create unknown topics with this many partitions / this replication factor.
    pub auto_create: Option<TopicSpec>,
    pub partitioner: Partitioner,
    /// Largest single record accepted.
    pub max_record_size: usize,
    /// Bytes buffered before `enqueue` blocks (back-pressure).
    pub buffer_memory: usize,
    /// Topic metadata (leaders, partition count) is refreshed at least this often.
    pub metadata_max_age: Duration,
}

impl ProducerConfig {
    pub fn new<S: Into<String>>(brokers: impl IntoIterator<Item = S>) -> ProducerConfig {
        ProducerConfig {
            brokers: brokers.into_iter().map(Into::into).collect(),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 256 * 1024,
            compression: Compression::None,
            retries: 10,
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
        }
    }

    fn client_config(&self) -> ClientConfig {
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

/// Where a record landed. `offset` is `None` with `acks=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: Option<i64>,
}

/// A record for [`Producer::send_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The shared fate of one batch.
#[derive(Default)]
struct Outcome {
    result: Mutex<Option<Result<Option<i64>, KafkaError>>>,
    done: Condvar,
}

impl Outcome {
    fn complete(&self, r: Result<Option<i64>, KafkaError>) {
        let mut g = self.result.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(r);
        }
        self.done.notify_all();
    }
}

/// A pending delivery returned by [`Producer::enqueue`]; [`DeliveryHandle::wait`] blocks for it.
pub struct DeliveryHandle {
    outcome: Result<(Arc<Outcome>, i32), KafkaError>,
    partition: i32,
}

impl DeliveryHandle {
    /// Block until the record is acknowledged or failed.
    pub fn wait(self) -> Result<Delivery, KafkaError> {
        let (outcome, index) = self.outcome?;
        let mut g = outcome.result.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = g.as_ref() {
                return match r {
                    Ok(base) => Ok(Delivery {
                        partition: self.partition,
                        offset: base.map(|b| b + index as i64),
                    }),
                    Err(e) => Err(e.clone()),
                };
            }
            g = outcome.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The result, if already known, without blocking.
    pub fn try_result(&self) -> Option<Result<Delivery, KafkaError>> {
        let (outcome, index) = match &self.outcome {
            Ok(o) => o,
            Err(e) => return Some(Err(e.clone())),
        };
        let g = outcome.result.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(|r| match r {
            Ok(base) => Ok(Delivery {
                partition: self.partition,
                offset: base.map(|b| b + *index as i64),
            }),
            Err(e) => Err(e.clone()),
        })
    }
}

struct Batch {
    builder: BatchBuilder,
    outcome: Arc<Outcome>,
    created: Instant,
    deadline: Instant,
    attempts: u32,
    sealed: bool,
    last_error: Option<KafkaError>,
}

#[derive(Default)]
struct PartQueue {
    batches: VecDeque<Batch>,
    in_flight: bool,
    retry_at: Option<Instant>,
}

struct TopicState {
    parts: Vec<PartQueue>,
    sticky: i32,
    rr: u32,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, TopicState>,
    /// Bytes in unfinished batches.
    buffered: usize,
    /// Records appended and not yet completed.
    unfinished: usize,
    flushing: usize,
    closed: bool,
    in_flight_requests: usize,
    stats: ProducerStats,
}

/// Counters since the producer started (records, not batches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Records appended to a batch.
    pub enqueued: u64,
    /// Records acknowledged by the broker (or written to the socket with acks=0).
    pub acked: u64,
    /// Records that failed for good.
    pub failed: u64,
    /// Batch sends that were retried.
    pub retried_batches: u64,
}

struct Inner {
    cfg: ProducerConfig,
    client: Client,
    state: Mutex<State>,
    /// Signalled when records complete (flush, back-pressure).
    progress: Condvar,
    wake_tx: smol::channel::Sender<()>,
    wake_rx: smol::channel::Receiver<()>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }
}

/// A blocking Kafka producer. Cheap to share across threads (`&Producer` is `Sync`).
pub struct Producer {
    inner: Arc<Inner>,
    sender: Mutex<Option<JoinHandle<()>>>,
    /// For the typed helpers ([`Producer::send_record`], [`Producer::send_json`]).
    codec: Option<Arc<Codec>>,
}

/// Why a typed send failed: the record did not encode, or Kafka did not take it.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("no codec attached: build the producer with Producer::with_codec")]
    NoCodec,
    #[error(transparent)]
    Subject(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

impl crate::error::ErrorKind for RecordError {
    fn kind(&self) -> &'static str {
        match self {
            RecordError::NoCodec => "no-codec",
            RecordError::Subject(e) => e.kind(),
            RecordError::Codec(e) => e.kind(),
            RecordError::Kafka(e) => e.kind(),
        }
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("brokers", &self.inner.cfg.brokers)
            .finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Producer {
    /// Connect to the cluster (fails with a typed error when no broker answers within the
    /// connect deadline) and start the sender thread.
    pub fn connect(cfg: ProducerConfig) -> Result<Producer, KafkaError> {
        let p = Producer::new(cfg)?;
        crate::kafka::block_on(p.inner.client.fetch_metadata(&[]))?;
        Ok(p)
    }

    /// Like [`Producer::connect`] without contacting any broker: for callers (the forwarder)
    /// that must start while the cluster is down. Sends then fail or retry per record
    /// (`delivery_timeout`) until a broker answers.
    pub fn new(cfg: ProducerConfig) -> Result<Producer, KafkaError> {
        if cfg.batch_size == 0 || cfg.buffer_memory == 0 {
            return Err(KafkaError::Config(
                "batch_size and buffer_memory must be > 0".into(),
            ));
        }
        let client = Client::new(cfg.client_config())?;
        let (wake_tx, wake_rx) = smol::channel::bounded(1);
        let inner = Arc::new(Inner {
            cfg,
            client,
            state: Mutex::new(State::default()),
            progress: Condvar::new(),
            wake_tx,
            wake_rx,
        });
        let for_thread = inner.clone();
        let handle = std::thread::Builder::new()
            .name("avro-edge-producer".into())
            .spawn(move || {
                let ex = Arc::new(smol::Executor::new());
                smol::block_on(ex.run(sender_loop(for_thread, ex.clone())));
            })
            .map_err(|e| KafkaError::Config(format!("cannot start sender thread: {e}")))?;
        Ok(Producer {
            inner,
            sender: Mutex::new(Some(handle)),
            codec: None,
        })
    }

    /// Attach a codec for the typed helpers.
    pub fn with_codec(mut self, codec: Arc<Codec>) -> Producer {
        self.codec = Some(codec);
        self
    }

    /// Encode `record` (any `Serialize` type, e.g. [`crate::records::SensorData`]) in the
    /// Confluent wire format with the latest schema of the topic's value subject
    /// (`TopicNameStrategy`: `<topic>-value`), send it and wait for the ack.
    pub fn send_record<T: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        record: &T,
    ) -> Result<Delivery, RecordError> {
        let subject = SubjectNameStrategy::Topic.subject(topic, false, None)?;
        self.send_record_as(&subject, topic, key, record)
    }

    /// [`Producer::send_record`] with an explicit subject.
    pub fn send_record_as<T: serde::Serialize + ?Sized>(
        &self,
        subject: &str,
        topic: &str,
        key: Option<&[u8]>,
        record: &T,
    ) -> Result<Delivery, RecordError> {
        let codec = self.codec.as_deref().ok_or(RecordError::NoCodec)?;
        let bytes = codec.encode(subject, record)?;
        Ok(self.send(topic, key, &bytes)?)
    }

    /// [`Producer::send_record_as`] for a natural-JSON record.
    pub fn send_json(
        &self,
        subject: &str,
        topic: &str,
        key: Option<&[u8]>,
        record: &serde_json::Value,
    ) -> Result<Delivery, RecordError> {
        let codec = self.codec.as_deref().ok_or(RecordError::NoCodec)?;
        let bytes = codec.encode_json(subject, record)?;
        Ok(self.send(topic, key, &bytes)?)
    }

    /// The underlying cluster client (metadata, raw requests).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Record counters since start.
    pub fn stats(&self) -> ProducerStats {
        self.inner.lock().stats
    }

    /// Number of partitions of `topic` (fetching metadata, creating the topic if configured).
    pub fn partitions(&self, topic: &str) -> Result<i32, KafkaError> {
        let deadline = Instant::now() + self.inner.cfg.delivery_timeout;
        let meta = crate::kafka::block_on(self.inner.client.topic(topic, deadline))?;
        Ok(meta.partitions.len() as i32)
    }

    /// Send one record and wait for its acknowledgement (or for it to be written, with acks=0).
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Delivery, KafkaError> {
        let h = self.enqueue_with_headers(topic, key, value, &[]);
        self.inner.wake();
        h.wait()
    }

    /// Send records and wait for all of them; results in input order. Order is kept per partition.
    pub fn send_batch(
        &self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, KafkaError>> {
        let handles: Vec<DeliveryHandle> = records
            .iter()
            .map(|r| self.enqueue_with_headers(topic, r.key.as_deref(), &r.value, &r.headers))
            .collect();
        self.request_flush();
        let out = handles.into_iter().map(DeliveryHandle::wait).collect();
        self.end_flush();
        out
    }

    /// Append a record to its partition's batch without waiting for the broker. Blocks only on
    /// the first record for a topic (metadata fetch, bounded by the connect deadline) and while
    /// `buffer_memory` is full (until room frees up or `delivery_timeout` passes). The partition
    /// count is read once per topic per producer.
    pub fn enqueue(&self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> DeliveryHandle {
        self.enqueue_with_headers(topic, key, value, &[])
    }

    /// [`Producer::enqueue`] with record headers.
    pub fn enqueue_with_headers(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> DeliveryHandle {
        match self.append(topic, key, value, headers) {
            Ok((outcome, index, partition)) => DeliveryHandle {
                outcome: Ok((outcome, index)),
                partition,
            },
            Err(e) => DeliveryHandle {
                outcome: Err(e),
                partition: -1,
            },
        }
    }

    fn append(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> Result<(Arc<Outcome>, i32, i32), KafkaError> {
        let cfg = &self.inner.cfg;
        let size = BatchBuilder::record_size(key, value, headers);
        if size > cfg.max_record_size {
            return Err(KafkaError::RecordTooLarge {
                size,
                limit: cfg.max_record_size,
            });
        }
        let start = Instant::now();
        let deadline = start + cfg.delivery_timeout;
        let mut st = self.inner.lock();
        if st.closed {
            return Err(KafkaError::Closed);
        }
        if !st.topics.contains_key(topic) {
            drop(st);
            let n = self.partitions(topic)?;
            if n <= 0 {
                return Err(KafkaError::UnknownTopic(topic.to_string()));
            }
            st = self.inner.lock();
            st.topics
                .entry(topic.to_string())
                .or_insert_with(|| TopicState {
                    parts: (0..n).map(|_| PartQueue::default()).collect(),
                    sticky: fastrand::i32(0..n),
                    rr: fastrand::u32(..),
                });
        }
        // Back-pressure: wait for room.
        while st.buffered + size > cfg.buffer_memory && st.buffered > 0 {
            if st.closed {
                return Err(KafkaError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KafkaError::Timeout {
                    what: "waiting for producer buffer space".into(),
                    after: cfg.delivery_timeout,
                });
            }
            self.inner.wake();
            st = self
                .inner
                .progress
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if st.closed {
            return Err(KafkaError::Closed);
        }
        let batch_size = cfg.batch_size;
        let partitioner = cfg.partitioner;
        let ts = st
            .topics
            .get_mut(topic)
            .ok_or_else(|| KafkaError::UnknownTopic(topic.to_string()))?;
        let n = ts.parts.len() as i32;
        let partition = match key {
            Some(k) => partition_for_key(k, n),
            None => match partitioner {
                Partitioner::RoundRobin => {
                    ts.rr = ts.rr.wrapping_add(1);
                    (ts.rr % n as u32) as i32
                }
                Partitioner::Sticky => {
                    let open = ts
                        .parts
                        .get(ts.sticky as usize)
                        .and_then(|q| q.batches.back())
                        .is_some_and(|b| !b.sealed);
                    if !open && n > 1 {
                        let next = fastrand::i32(0..n - 1);
                        ts.sticky = if next >= ts.sticky { next + 1 } else { next };
                    }
                    ts.sticky
                }
            },
        };
        let q = ts
            .parts
            .get_mut(partition as usize)
            .ok_or_else(|| KafkaError::Protocol(format!("partition {partition} out of range")))?;
        let need_new = match q.batches.back() {
            Some(b) => b.sealed || (b.builder.size() + size > batch_size && !b.builder.is_empty()),
            None => true,
        };
        let mut wake = false;
        if need_new {
            if let Some(b) = q.batches.back_mut() {
                b.sealed = true;
            }
            q.batches.push_back(Batch {
                builder: BatchBuilder::new(),
                outcome: Arc::new(Outcome::default()),
                created: start,
                deadline,
                attempts: 0,
                sealed: false,
                last_error: None,
            });
            wake = true;
        }
        let b = q
            .batches
            .back_mut()
            .ok_or_else(|| KafkaError::Protocol("no open batch".into()))?;
        let before = b.builder.size();
        let index = b.builder.len() as i32;
        b.builder.append(now_ms(), key, Some(value), headers);
        let grown = b.builder.size() - before;
        if b.builder.size() >= batch_size {
            b.sealed = true;
            wake = true;
        }
        let outcome = b.outcome.clone();
        st.buffered += grown;
        st.unfinished += 1;
        st.stats.enqueued += 1;
        drop(st);
        if wake {
            self.inner.wake();
        }
        Ok((outcome, index, partition))
    }

    fn request_flush(&self) {
        self.inner.lock().flushing += 1;
        self.inner.wake();
    }

    fn end_flush(&self) {
        let mut st = self.inner.lock();
        st.flushing = st.flushing.saturating_sub(1);
    }

    /// Send everything buffered now and wait until it is acknowledged or failed, at most `timeout`.
    /// Returns `Timeout` if records are still pending when the time is up.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        st.flushing += 1;
        self.inner.wake();
        let res = loop {
            if st.unfinished == 0 {
                break Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(KafkaError::Timeout {
                    what: format!("flush ({} records pending)", st.unfinished),
                    after: timeout,
                });
            }
            st = self
                .inner
                .progress
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        st.flushing = st.flushing.saturating_sub(1);
        res
    }

    /// Flush (up to `delivery_timeout`), stop the sender thread and close connections. Records
    /// still pending afterwards fail with `Closed`.
    pub fn close(&self) -> Result<(), KafkaError> {
        let flushed = self.flush(self.inner.cfg.delivery_timeout);
        self.inner.lock().closed = true;
        self.inner.wake();
        let handle = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        self.inner.client.close();
        flushed
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let running = self.sender.lock().map(|s| s.is_some()).unwrap_or(false);
        if running {
            let _ = self.close();
        }
    }
}

/// One batch taken for sending.
struct Taken {
    topic: String,
    partition: i32,
    batch: Batch,
}

async fn sender_loop(inner: Arc<Inner>, ex: Arc<smol::Executor<'static>>) {
    loop {
        let now = Instant::now();
        let mut taken: Vec<Taken> = Vec::new();
        let mut expired: Vec<(Batch, usize)> = Vec::new();
        let mut next_wake = now + Duration::from_secs(1);
        let finished = {
            let mut st = inner.lock();
            let flushing = st.flushing > 0 || st.closed;
            let linger = inner.cfg.linger;
            for (name, ts) in st.topics.iter_mut() {
                for (p, q) in ts.parts.iter_mut().enumerate() {
                    if q.in_flight {
                        continue;
                    }
                    // Fail batches whose delivery timeout passed (never one in flight).
                    while q.batches.front().is_some_and(|b| b.deadline <= now) {
                        if let Some(b) = q.batches.pop_front() {
                            let n = b.builder.len();
                            expired.push((b, n));
                        }
                    }
                    let Some(front) = q.batches.front() else {
                        continue;
                    };
                    next_wake = next_wake.min(front.deadline);
                    if let Some(at) = q.retry_at {
                        if at > now {
                            next_wake = next_wake.min(at);
                            continue;
                        }
                        q.retry_at = None;
                    }
                    let ready_at = front.created + linger;
                    let ready = front.sealed || flushing || ready_at <= now || q.batches.len() > 1;
                    if !ready {
                        next_wake = next_wake.min(ready_at);
                        continue;
                    }
                    if let Some(mut b) = q.batches.pop_front() {
                        b.sealed = true;
                        q.in_flight = true;
                        taken.push(Taken {
                            topic: name.clone(),
                            partition: p as i32,
                            batch: b,
                        });
                    }
                }
            }
            // Completed under the state lock (lock order: state, then outcome), so `flush`
            // never sees `unfinished` drop before the handles have their result.
            for (b, n) in expired.drain(..) {
                st.buffered = st.buffered.saturating_sub(b.builder.size());
                st.unfinished = st.unfinished.saturating_sub(n);
                st.stats.failed += n as u64;
                let err = b.last_error.clone().unwrap_or(KafkaError::Timeout {
                    what: "record delivery".into(),
                    after: inner.cfg.delivery_timeout,
                });
                b.outcome.complete(Err(err));
            }
            if !taken.is_empty() {
                st.in_flight_requests += 1;
            }
            st.closed
                && st.in_flight_requests == 0
                && st
                    .topics
                    .values()
                    .all(|t| t.parts.iter().all(|q| q.batches.is_empty() && !q.in_flight))
        };
        inner.progress.notify_all();
        if finished {
            return;
        }
        if !taken.is_empty() {
            let inner2 = inner.clone();
            let ex2 = ex.clone();
            ex.spawn(async move {
                dispatch(inner2.clone(), ex2, taken).await;
                inner2.lock().in_flight_requests -= 1;
                inner2.wake();
            })
            .detach();
            continue;
        }
        let closed = inner.lock().closed;
        if closed {
            // Fail what can no longer be sent (flush already had its chance), then finish.
            let mut leftover = Vec::new();
            {
                let mut st = inner.lock();
                for ts in st.topics.values_mut() {
                    for q in ts.parts.iter_mut().filter(|q| !q.in_flight) {
                        leftover.extend(q.batches.drain(..));
                    }
                }
                for b in leftover.drain(..) {
                    st.buffered = st.buffered.saturating_sub(b.builder.size());
                    st.unfinished = st.unfinished.saturating_sub(b.builder.len());
                    st.stats.failed += b.builder.len() as u64;
                    b.outcome.complete(Err(KafkaError::Closed));
                }
            }
            inner.progress.notify_all();
        }
        let wait = next_wake.saturating_duration_since(Instant::now());
        let rx = inner.wake_rx.clone();
        smol::future::or(
            async {
                let _ = rx.recv().await;
            },
            async {
                smol::Timer::after(wait).await;
            },
        )
        .await;
    }
}

/// Partitions added to a topic since we first saw it become usable for later records.
fn grow_partitions(inner: &Inner, topic: &str, n: usize) {
    let mut st = inner.lock();
    if let Some(ts) = st.topics.get_mut(topic)
        && ts.parts.len() < n
    {
        tracing::info!(
            topic,
            from = ts.parts.len(),
            to = n,
            "topic has more partitions"
        );
        ts.parts.resize_with(n, PartQueue::default);
    }
}

/// Group taken batches by leader and send one Produce request per leader, concurrently.
async fn dispatch(inner: Arc<Inner>, ex: Arc<smol::Executor<'static>>, taken: Vec<Taken>) {
    let mut by_leader: HashMap<i32, Vec<Taken>> = HashMap::new();
    for t in taken {
        let deadline = t.batch.deadline;
        let meta = match inner.client.topic(&t.topic, deadline).await {
            Ok(meta) => meta,
            Err(e) => {
                finish(&inner, t, Err(e));
                continue;
            }
        };
        grow_partitions(&inner, &t.topic, meta.partitions.len());
        match meta.leader(t.partition) {
            Some(l) => by_leader.entry(l).or_default().push(t),
            None => {
                inner.client.invalidate(&t.topic);
                let e = KafkaError::Kafka {
                    code: 5,
                    name: "LeaderNotAvailable".into(),
                    context: format!("no leader known for {}-{}", t.topic, t.partition),
                };
                finish(&inner, t, Err(e));
            }
        }
    }
    let tasks: Vec<_> = by_leader
        .into_iter()
        .map(|(leader, batches)| ex.spawn(produce_to(inner.clone(), leader, batches)))
        .collect();
    for t in tasks {
        t.await;
    }
}

async fn produce_to(inner: Arc<Inner>, leader: i32, batches: Vec<Taken>) {
    let cfg = &inner.cfg;
    let mut topics: Vec<TopicProduceData> = Vec::new();
    let mut ok: Vec<Taken> = Vec::with_capacity(batches.len());
    for t in batches {
        match t.batch.builder.finish(cfg.compression) {
            Ok(bytes) => {
                let pd = PartitionProduceData::default()
                    .with_index(t.partition)
                    .with_records(Some(Bytes::from(bytes)));
                match topics.iter_mut().find(|d| d.name.0.as_str() == t.topic) {
                    Some(d) => d.partition_data.push(pd),
                    None => topics.push(
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(t.topic.clone())))
                            .with_partition_data(vec![pd]),
                    ),
                }
                ok.push(t);
            }
            Err(e) => finish(&inner, t, Err(e)),
        }
    }
    if ok.is_empty() {
        return;
    }
    let deadline = ok
        .iter()
        .map(|t| t.batch.deadline)
        .min()
        .unwrap_or_else(Instant::now);
    let req = ProduceRequest::default()
        .with_acks(cfg.acks.wire())
        .with_timeout_ms(cfg.request_timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(topics);
    let conn = match inner
        .client
        .conn_until(&Target::Node(leader), deadline)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            for t in ok {
                inner.client.invalidate(&t.topic);
                finish(&inner, t, Err(e.clone()));
            }
            return;
        }
    };
    let version = match conn.version_for::<ProduceRequest>() {
        Ok(v) => v,
        Err(e) => {
            for t in ok {
                finish(&inner, t, Err(e.clone()));
            }
            return;
        }
    };
    if cfg.acks == Acks::None {
        let r = conn.send_no_response(&req, version).await;
        for t in ok {
            finish(&inner, t, r.clone().map(|_| None));
        }
        return;
    }
    match conn.request_at(&req, version).await {
        Err(e) => {
            for t in ok {
                finish(&inner, t, Err(e.clone()));
            }
        }
        Ok(resp) => {
            for t in ok {
                let pr = resp
                    .responses
                    .iter()
                    .filter(|r| r.name.0.as_str() == t.topic)
                    .flat_map(|r| r.partition_responses.iter())
                    .find(|p| p.index == t.partition);
                let res = match pr {
                    None => Err(KafkaError::Protocol(format!(
                        "no produce response for {}-{}",
                        t.topic, t.partition
                    ))),
                    Some(p) if p.error_code != 0 => {
                        let msg = p
                            .error_message
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default();
                        Err(KafkaError::from_code(
                            p.error_code,
                            format!("produce {}-{} {msg}", t.topic, t.partition),
                        )
                        .unwrap_or_else(|| {
                            KafkaError::Protocol("error code 0 reported as an error".into())
                        }))
                    }
                    Some(p) => Ok(Some(p.base_offset)),
                };
                finish(&inner, t, res);
            }
        }
    }
}

/// Complete a batch, or put it back at the front of its partition for a retry.
fn finish(inner: &Inner, t: Taken, res: Result<Option<i64>, KafkaError>) {
    let Taken {
        topic,
        partition,
        mut batch,
    } = t;
    let cfg = &inner.cfg;
    if let Err(e) = &res {
        if e.needs_metadata_refresh() {
            inner.client.invalidate(&topic);
        }
        let backoff = cfg
            .retry_backoff
            .saturating_mul(1u32 << batch.attempts.min(16))
            .min(cfg.retry_backoff_max);
        let retry = e.is_retriable()
            && batch.attempts < cfg.retries
            && Instant::now() + backoff < batch.deadline;
        if retry {
            tracing::debug!(topic = %topic, partition, attempt = batch.attempts + 1, error = %e, "retrying batch");
            batch.attempts += 1;
            batch.last_error = Some(e.clone());
            let mut st = inner.lock();
            st.stats.retried_batches += 1;
            if let Some(q) = st
                .topics
                .get_mut(&topic)
                .and_then(|ts| ts.parts.get_mut(partition as usize))
            {
                q.batches.push_front(batch);
                q.in_flight = false;
                q.retry_at = Some(Instant::now() + backoff);
                drop(st);
                inner.wake();
                return;
            }
            // The partition is unknown to us (cannot happen: topics are never dropped): fail below.
        }
        tracing::warn!(topic = %topic, partition, records = batch.builder.len(), error = %e, kind = crate::error::ErrorKind::kind(e), "batch failed");
    }
    let n = batch.builder.len();
    let size = batch.builder.size();
    let ok = res.is_ok();
    // Counters before the outcome (a caller woken by it sees them); `unfinished` after it (so
    // when `flush` returns, every handle already has its result).
    {
        let mut st = inner.lock();
        if ok {
            st.stats.acked += n as u64;
        } else {
            st.stats.failed += n as u64;
        }
    }
    batch.outcome.complete(res);
    {
        let mut st = inner.lock();
        if let Some(q) = st
            .topics
            .get_mut(&topic)
            .and_then(|ts| ts.parts.get_mut(partition as usize))
        {
            q.in_flight = false;
        }
        st.buffered = st.buffered.saturating_sub(size);
        st.unfinished = st.unfinished.saturating_sub(n);
    }
    inner.progress.notify_all();
    inner.wake();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forwarder and the CLI share one producer across threads.
    #[test]
    fn producer_and_handles_cross_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Producer>();
        shareable::<crate::kafka::Client>();
        fn sendable<T: Send>() {}
        sendable::<DeliveryHandle>();
    }

    #[test]
    fn acks_parse_and_wire_values() {
        assert_eq!(Acks::parse("all").unwrap().wire(), -1);
        assert_eq!(Acks::parse("-1").unwrap(), Acks::All);
        assert_eq!(Acks::parse("1").unwrap().wire(), 1);
        assert_eq!(Acks::parse("0").unwrap().wire(), 0);
        assert!(Acks::parse("2").is_err());
        assert_eq!(Acks::default(), Acks::All);
    }

    fn nowhere() -> ProducerConfig {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let mut cfg = ProducerConfig::new([addr]);
        cfg.delivery_timeout = Duration::from_secs(2);
        cfg
    }

    #[test]
    fn oversized_records_and_closed_producers_fail_without_io() {
        let mut cfg = nowhere();
        cfg.max_record_size = 100;
        let p = Producer::new(cfg).unwrap();
        let err = p.enqueue("t", None, &[0u8; 200]).wait().unwrap_err();
        assert_eq!(
            crate::error::ErrorKind::kind(&err),
            "record-too-large",
            "{err}"
        );
        p.close().unwrap();
        let err = p.send("t", None, b"x").unwrap_err();
        assert_eq!(crate::error::ErrorKind::kind(&err), "closed", "{err}");
    }

    #[test]
    fn connect_to_nothing_fails_fast_with_typed_error() {
        // A port nobody listens on: connect must give up within its deadline, not hang.
        let t = Instant::now();
        let err = Producer::connect(nowhere()).unwrap_err();
        assert_eq!(
            crate::error::ErrorKind::kind(&err),
            "broker-unreachable",
            "{err}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
    }
}
