//! The blocking Kafka producer: acks all/1/0, batching, compression, retries, partitioning.
//!
//! Must not know Avro: it sends bytes (the typed sends that encode first live a layer above, in
//! `avro_io`).
//!
//! # How it works
//! Callers append records to per-partition batches (record batch v2, built incrementally) under
//! one mutex; a sender thread (`avro-edge-producer`, running a smol executor) sends a batch when
//! it is full (`batch_size` bytes), when its `linger` has passed, or on `flush`. All ready batches
//! for one leader go in one Produce request; requests to different leaders run concurrently.
//! Up to `max_in_flight` batches per partition are in flight (5 for the idempotent producer, 1
//! otherwise), written in order; a retried batch goes again before the batches behind it, so
//! order is kept per partition (see `sender.rs`). Retriable errors (NOT_LEADER_OR_FOLLOWER,
//! NOT_ENOUGH_REPLICAS, timeouts, lost connections, ...) are retried with exponential backoff and
//! ±20 % jitter (KIP-580: `retry_backoff` 100 ms doubling to `retry_backoff_max` 1 s) until the
//! batch's `delivery_timeout` runs out (60 s; `retries` is unbounded by default, as in Java);
//! metadata is refreshed when the error says leaders moved.
//!
//! # Idempotence
//! The producer is idempotent by default (`enable_idempotence`, with `acks = all`): it asks any
//! broker for a producer id (InitProducerId), and every batch carries that id, its epoch and a
//! sequence number per partition, kept when the batch is retried. A retry after a timeout or a
//! lost connection therefore never duplicates records: the broker answers that it has the batch
//! already (DUPLICATE_SEQUENCE_NUMBER counts as delivered). A gap in a partition's sequence
//! (OUT_OF_ORDER_SEQUENCE_NUMBER for the batch the broker should take next, UNKNOWN_PRODUCER_ID,
//! a batch of unknown fate) bumps the epoch and sequences that partition's unfinished batches again
//! from 0, in order (KIP-360, as Java's client does; see `idempotence.rs`); every other partition
//! moves to the new epoch only once nothing of it is in flight on the old one. The sequences let
//! 5 batches per partition be in flight in order (Java's limit too). A broker that lets a request time out is avoided for a while (a hung
//! leader keeps its sockets open): the producer re-routes to the next leader (see `client.rs`).
//! With idempotence off (or acks 1/0) delivery is at-least-once: a retry after a lost connection
//! may duplicate a batch.
//!
//! # Transactions
//! With a `transactional_id` the producer is transactional, as Java's is (KIP-98): records go
//! out only inside a transaction, and a read_committed consumer sees them only once it is
//! committed (an aborted one never). See `transaction.rs` for the protocol and the errors, and
//! [`Producer::begin_transaction`] for an example.
//!
//! # Errors per record
//! A broker error that no retry can fix fails the records of its batch, and the batches of the
//! partition queued or in flight behind it fail with the retriable `behind-refused` (e.g. behind
//! INVALID_RECORD, which refuses a whole batch for one bad record, or behind a refusal the caller
//! keeps its records for, such as an ACL or our clock: `KafkaError::setup_refusal`), so the caller
//! sends them again after the refused batch's records, in order; records appended later go on.
//! Behind a single record refused for its own sake (too large, invalid: never sent again) the
//! partition just goes on. MESSAGE_TOO_LARGE (or
//! RECORD_LIST_TOO_LARGE) for a batch of several records splits it in halves, sent again in
//! order, until only a record that is too large on its own fails. Each record's result is a
//! [`KafkaError`] whose kind (`ErrorKind::kind`) names the broker's reason:
//! `message-too-large`, `invalid-record`, `invalid-timestamp`, `topic-authorization-failed`,
//! `cluster-authorization-failed`, otherwise `kafka-error` (with [`KafkaError::code`]);
//! [`KafkaError::is_retriable`] is false for all of them, and
//! [`KafkaError::permanent_rejection`] / [`KafkaError::setup_refusal`] tell the record's own fault
//! from a refusal that fixing the setup cures.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use avro_edge::{Acks, Compression, OutRecord, Producer, ProducerConfig};
//! # fn main() -> Result<(), avro_edge::KafkaError> {
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

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::kafka::{Client, KafkaError};

mod accumulator;
mod batch_key;
mod config;
mod delivery;
mod idempotence;
mod sender;
mod sequence;
mod state;
mod transaction;
mod unsent;

pub use crate::kafka::record::Compression;
pub use config::{Acks, Partitioner, ProducerConfig};
pub use delivery::{Delivery, DeliveryHandle};
use state::State;

/// A record for [`Producer::send_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    /// Message key; it picks the partition. `None`: no key, the partitioner decides.
    pub key: Option<Vec<u8>>,
    /// Message value (for this crate, a Confluent-framed Avro message).
    pub value: Vec<u8>,
    /// Message headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
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
    /// Most batches of one partition in flight at once so far (`max_in_flight` bounds it).
    pub peak_in_flight: u64,
}

struct Inner {
    cfg: ProducerConfig,
    client: Client,
    state: Mutex<State>,
    /// Signalled when records complete (flush, back-pressure).
    progress: Condvar,
    wake_tx: smol::channel::Sender<()>,
    wake_rx: smol::channel::Receiver<()>,
    /// The last error a batch was retried for ([`Producer::retry_note`]).
    retries: RetryNote,
}

/// The last error the producer retried a batch for, and when: readable from any thread, also
/// while a send blocks (the retries themselves are DEBUG lines), e.g. to say why
/// acknowledgements stall. A clone reads the same note.
#[derive(Debug, Clone, Default)]
pub struct RetryNote(Arc<Mutex<Option<(Instant, KafkaError)>>>);

impl RetryNote {
    /// The last retried error and when it came; `None` before the first retry.
    pub fn last(&self) -> Option<(Instant, KafkaError)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A batch is retried for `e` now.
    pub(crate) fn note(&self, e: &KafkaError) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), e.clone()));
    }
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
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("brokers", &self.inner.cfg.brokers)
            .finish()
    }
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
        if let Some(n) = cfg.max_in_flight
            && (n == 0 || (cfg.idempotent() && n > 5))
        {
            return Err(KafkaError::Config(format!(
                "max_in_flight {n}: must be 1 to 5 for an idempotent producer (at least 1 otherwise)"
            )));
        }
        let client = Client::new(cfg.client_config())?;
        if cfg.transactional() && !cfg.idempotent() {
            return Err(KafkaError::Config(
                "transactional_id needs the idempotent producer (enable_idempotence, acks = all)"
                    .into(),
            ));
        }
        if cfg.enable_idempotence && !cfg.idempotent() {
            tracing::info!(acks = %cfg.acks, "idempotence is off: it needs acks=all");
        }
        let (wake_tx, wake_rx) = smol::channel::bounded(1);
        let mut state = State::default();
        state.idem.transactional = cfg.transactional();
        let inner = Arc::new(Inner {
            cfg,
            client,
            state: Mutex::new(state),
            progress: Condvar::new(),
            wake_tx,
            wake_rx,
            retries: RetryNote::default(),
        });
        let for_thread = inner.clone();
        let handle = std::thread::Builder::new()
            .name("avro-edge-producer".into())
            .spawn(move || {
                let ex = Arc::new(smol::Executor::new());
                smol::block_on(ex.run(sender::sender_loop(for_thread, ex.clone())));
            })
            .map_err(|e| KafkaError::Config(format!("cannot start sender thread: {e}")))?;
        Ok(Producer {
            inner,
            sender: Mutex::new(Some(handle)),
        })
    }

    /// The underlying cluster client (metadata, raw requests).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The last error a batch was retried for (see [`RetryNote`]).
    pub fn retry_note(&self) -> RetryNote {
        self.inner.retries.clone()
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

    /// Send records and wait for all of them; results in input order. Order is kept per partition:
    /// when a record cannot even be queued for a reason that is not its own (no metadata for the
    /// topic within the delivery timeout: the broker is down; an unknown topic, a refused password
    /// or ACL), the records after it fail with the same error without being queued: queued once
    /// the cause is gone, they would land before it, and each would wait for the cause again.
    pub fn send_batch(
        &self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, KafkaError>> {
        let mut refused: Option<KafkaError> = None;
        let mut handles: Vec<DeliveryHandle> = Vec::with_capacity(records.len());
        // Runs of records that go in at once share one lock and one clock read; a transactional
        // producer checks its phase and marks a failed append per record, so it takes them one by one.
        let runs = !self.inner.cfg.transactional();
        let parts = |j: usize| {
            (records.get(j)).map(|r| (r.key.as_deref(), r.value.as_slice(), r.headers.as_slice()))
        };
        let mut i = 0;
        while i < records.len() {
            if let Some(e) = &refused {
                handles.push(DeliveryHandle {
                    outcome: Err(Box::new(e.clone())),
                    partition: -1,
                });
                i += 1;
                continue;
            }
            if runs {
                i = self.append_run(topic, i, parts, &mut handles);
            }
            let Some(r) = records.get(i) else {
                break;
            };
            let h = self.enqueue_with_headers(topic, r.key.as_deref(), &r.value, &r.headers);
            if let Err(e) = &h.outcome
                && e.permanent_rejection().is_none()
            {
                refused = Some((**e).clone());
            }
            handles.push(h);
            i += 1;
        }
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

    /// [`Producer::enqueue`] for many records (key, value) of one topic at once, a handle per record
    /// pushed onto `handles` in order: one lock, one topic lookup and one clock read for all of them
    /// (they share a timestamp), so the cost per record is the append itself. A record that has to
    /// wait (the topic's first record, a full buffer) blocks as in `enqueue`, and one that cannot be
    /// queued gets its error in its handle, as from `enqueue`.
    pub fn enqueue_many(
        &self,
        topic: &str,
        records: &[(Option<&[u8]>, &[u8])],
        handles: &mut Vec<DeliveryHandle>,
    ) {
        self.append_many(topic, records, handles);
    }

    /// [`Producer::enqueue`] with record headers.
    pub fn enqueue_with_headers(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> DeliveryHandle {
        let appended = match self.may_append() {
            Ok(()) => self.append(topic, key, value, headers),
            Err(e) => Err(e),
        };
        match self.appended(appended) {
            Ok((outcome, index, partition)) => DeliveryHandle {
                outcome: Ok((outcome, index)),
                partition,
            },
            Err(e) => DeliveryHandle {
                outcome: Err(Box::new(e)),
                partition: -1,
            },
        }
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
        self.flush_until(Instant::now() + timeout, "flush", |st| st.unfinished == 0)
    }

    /// Send everything buffered now and wait until `done` holds of the state (woken on every
    /// completion), or `deadline` passes: `Timeout` naming `what`.
    fn flush_until(
        &self,
        deadline: Instant,
        what: &str,
        done: impl Fn(&State) -> bool,
    ) -> Result<(), KafkaError> {
        let started = Instant::now();
        let mut st = self.inner.lock();
        st.flushing += 1;
        self.inner.wake();
        let res = loop {
            if done(&st) {
                break Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(KafkaError::Timeout {
                    what: format!("{what} ({} records pending)", st.unfinished),
                    after: started.elapsed(),
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
    fn a_batch_whose_first_record_cannot_be_queued_fails_as_a_whole_without_waiting_again() {
        let p = Producer::new(nowhere()).unwrap();
        let t = Instant::now();
        let one = p.send("t", None, b"x").unwrap_err();
        let single = t.elapsed();
        assert!(one.is_retriable(), "{one}");
        let recs: Vec<OutRecord> = (0..5)
            .map(|i| OutRecord {
                value: vec![i],
                ..OutRecord::default()
            })
            .collect();
        let t = Instant::now();
        let res = p.send_batch("t", &recs);
        let took = t.elapsed();
        assert_eq!(res.len(), 5);
        for r in &res {
            let e = r.as_ref().unwrap_err();
            assert_eq!(
                crate::error::ErrorKind::kind(e),
                crate::error::ErrorKind::kind(&one)
            );
        }
        // One wait for metadata, not one per record (queued later, they could overtake the first).
        assert!(
            took < single * 2 + Duration::from_secs(1),
            "took {took:?}; one record took {single:?}"
        );
        p.close().unwrap();
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
