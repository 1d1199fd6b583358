//! A sink's transactions ([`Transactions`], what the exactly-once sender needs of its sink), and the
//! real transactional sink behind them (`forward.exactly_once`): the Kafka producer
//! with a transactional id (default `avro-edge-` and the gateway id), and the positions topic, a
//! compacted topic (created when missing, with `cleanup.policy=compact` and the broker's default
//! replication) whose record for a gateway (key: the gateway id) holds the last spool sequence
//! number its committed transactions cover: `{"last_seq":N}`. The position is written inside the
//! transaction that carries the records, and read back with `read_committed`.
//!
//! Must not decide when to commit or what to send again (`exactly_once` does): it adapts the
//! producer's transactions and reads and writes positions.

use std::time::{Duration, Instant};

use super::{Delivery, OutRecord, RecordSink};
use crate::error::ErrorKind;
use crate::kafka::consumer::{Consumer, ConsumerConfig, IsolationLevel, OffsetReset};
use crate::kafka::producer::{Producer, ProducerConfig};
use crate::kafka::record::partition_for_key;
use crate::kafka::{KafkaError, TopicSpec};

/// A sink's transactions (exactly-once, `forward/exactly_once.rs`): each transaction holds the records sent
/// between [`Transactions::begin`] and [`Transactions::commit`], and the spool position the commit
/// names, stored with them. The real one is `TxnSink`, below (the producer with a
/// transactional id, and the positions topic).
pub trait Transactions {
    /// Why a step failed; `producer-fenced` stops the forwarder.
    type Error: ErrorKind + Send + 'static;
    /// (Re)start for `gateway`: fence every earlier instance of it (their open transaction is
    /// aborted) and return its last position committed, `None` when there is none.
    fn start(&mut self, gateway: &str) -> Result<Option<u64>, Self::Error>;
    /// Open a transaction.
    fn begin(&mut self) -> Result<(), Self::Error>;
    /// Store `position` (the last spool sequence number the transaction covers; `None`: it sent
    /// nothing) in the transaction and commit it.
    fn commit(&mut self, position: Option<u64>) -> Result<(), Self::Error>;
    /// Abort the open transaction: none of its records is ever seen by a read_committed consumer.
    fn abort(&mut self) -> Result<(), Self::Error>;
}

/// The producer with a transactional id, and this gateway's position in the positions topic.
pub struct TxnSink {
    cfg: ProducerConfig,
    producer: Option<Producer>,
    gateway: String,
    topic: String,
}

impl TxnSink {
    /// A sink writing positions to `positions_topic`. Nothing is contacted before
    /// [`Transactions::start`], which names the gateway.
    pub fn new(cfg: ProducerConfig, positions_topic: &str) -> TxnSink {
        TxnSink {
            cfg,
            producer: None,
            gateway: String::new(),
            topic: positions_topic.to_string(),
        }
    }

    fn producer(&self) -> Result<&Producer, KafkaError> {
        (self.producer.as_ref()).ok_or_else(|| {
            KafkaError::TransactionState("the transactional sink is not started".into())
        })
    }

    /// How long a coordinator step (init, commit, abort) may take.
    fn step_timeout(&self) -> Duration {
        self.cfg.delivery_timeout
    }

    /// Create the positions topic unless it exists (compacted, one partition, the broker's
    /// default replication).
    fn ensure_topic(&self, p: &Producer) -> Result<i32, KafkaError> {
        let spec = TopicSpec {
            partitions: 1,
            replication: -1,
        };
        let client = p.client();
        let meta = crate::kafka::block_on(client.fetch_metadata(&[&self.topic]))?;
        let exists = (meta.topics.iter()).any(|t| {
            t.error_code == 0 && t.name.as_ref().is_some_and(|n| n.0.as_str() == self.topic)
        });
        if !exists {
            let compact = [("cleanup.policy", "compact")];
            crate::kafka::block_on(client.create_topic_with(&self.topic, spec, &compact))?;
        }
        p.partitions(&self.topic)
    }
}

impl Drop for TxnSink {
    fn drop(&mut self) {
        if let Some(p) = self.producer.take() {
            let _ = p.close();
        }
    }
}

impl RecordSink for TxnSink {
    type Error = KafkaError;
    fn send_batch(
        &mut self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, KafkaError>> {
        match self.producer() {
            Ok(p) => p.send_batch(topic, records),
            Err(e) => vec![Err(e)],
        }
    }

    fn permanent(error: &KafkaError) -> Option<crate::error::Kind> {
        <Producer as RecordSink>::permanent(error)
    }
    fn refusal(error: &KafkaError) -> Option<super::Refusal> {
        <Producer as RecordSink>::refusal(error)
    }
    fn retry_note(&mut self) -> Option<crate::kafka::producer::RetryNote> {
        self.producer.as_ref().map(Producer::retry_note)
    }

    fn transactions(&mut self) -> Option<&mut dyn Transactions<Error = KafkaError>> {
        Some(self)
    }
}

impl Transactions for TxnSink {
    type Error = KafkaError;

    /// Without a transactional id in its settings, the producer's is `avro-edge-<gateway>`.
    fn start(&mut self, gateway: &str) -> Result<Option<u64>, KafkaError> {
        self.gateway = gateway.to_string();
        (self.cfg.transactional_id).get_or_insert_with(|| format!("avro-edge-{gateway}"));
        if let Some(old) = self.producer.take() {
            // Its transaction is fenced by the new one; closing must not wait for it.
            std::thread::spawn(move || drop(old));
        }
        let p = Producer::new(self.cfg.clone())?;
        let partitions = self.ensure_topic(&p)?;
        p.init_transactions(self.step_timeout())?;
        let partition = partition_for_key(self.gateway.as_bytes(), partitions);
        let position = read_position(&self.cfg, &self.topic, partition, &self.gateway)?;
        tracing::info!(transactional_id = ?self.cfg.transactional_id, gateway = %self.gateway, topic = %self.topic, position = ?position, "exactly-once: committed position read");
        self.producer = Some(p);
        Ok(position)
    }

    fn begin(&mut self) -> Result<(), KafkaError> {
        self.producer()?.begin_transaction()
    }

    fn commit(&mut self, position: Option<u64>) -> Result<(), KafkaError> {
        let p = self.producer()?;
        if let Some(seq) = position {
            let value = serde_json::json!({ "last_seq": seq }).to_string();
            // Its failure fails the commit (the transaction is then abortable).
            drop(p.enqueue(&self.topic, Some(self.gateway.as_bytes()), value.as_bytes()));
        }
        p.commit_transaction(self.step_timeout())
    }

    fn abort(&mut self) -> Result<(), KafkaError> {
        self.producer()?.abort_transaction(self.step_timeout())
    }
}

/// A consumer of `topic`/`partition` with the producer's connection settings, reading committed
/// records only, from `reset` when it has no position.
fn reader(
    cfg: &ProducerConfig,
    topic: &str,
    partition: i32,
    reset: OffsetReset,
) -> Result<Consumer, KafkaError> {
    let mut c = ConsumerConfig::assign(&cfg.brokers.join(","), &[(topic, partition)]);
    c.client_id = cfg.client_id.clone();
    c.request_timeout = cfg.request_timeout;
    c.sasl = cfg.sasl.clone();
    #[cfg(feature = "tls")]
    {
        c.tls = cfg.tls.clone();
    }
    c.isolation_level = IsolationLevel::ReadCommitted;
    c.auto_offset_reset = reset;
    Consumer::connect(c)
}

/// The last committed position of `gateway`: its last record in `topic`/`partition` up to the
/// last stable offset, read with `read_committed` (so an aborted or open transaction's never
/// counts). `None` when it has none.
fn read_position(
    cfg: &ProducerConfig,
    topic: &str,
    partition: i32,
    gateway: &str,
) -> Result<Option<u64>, KafkaError> {
    let deadline = Instant::now() + cfg.delivery_timeout;
    let poll = Duration::from_millis(200);
    // Where read_committed ends now: the last stable offset (ListOffsets latest, read_committed).
    let mut end_reader = reader(cfg, topic, partition, OffsetReset::Latest)?;
    let end = loop {
        end_reader.poll(poll)?;
        if let Some(end) = end_reader.position(topic, partition) {
            break end;
        }
        if Instant::now() > deadline {
            return Err(timeout(topic, cfg.delivery_timeout));
        }
    };
    let _ = end_reader.close();
    let mut c = reader(cfg, topic, partition, OffsetReset::Earliest)?;
    let mut found = None;
    while c.position(topic, partition).is_none_or(|p| p < end) {
        for r in c.poll(poll)? {
            if r.key.as_deref() != Some(gateway.as_bytes()) {
                continue;
            }
            found = Some(parse_position(r.value.as_deref()).ok_or_else(|| {
                KafkaError::Protocol(format!(
                    "positions topic {topic}-{partition} offset {}: not a position of gateway {gateway}",
                    r.offset
                ))
            })?);
        }
        if Instant::now() > deadline {
            return Err(timeout(topic, cfg.delivery_timeout));
        }
    }
    let _ = c.close();
    Ok(found)
}

fn timeout(topic: &str, after: Duration) -> KafkaError {
    KafkaError::Timeout {
        what: format!("reading the committed position from {topic}"),
        after,
    }
}

/// `{"last_seq":N}` → N.
fn parse_position(value: Option<&[u8]>) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(value?).ok()?;
    v.get("last_seq")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_json_with_the_last_sequence_number() {
        assert_eq!(parse_position(Some(br#"{"last_seq":42}"#)), Some(42));
        assert_eq!(parse_position(Some(br#"{"last_seq":-1}"#)), None);
        assert_eq!(parse_position(Some(b"42")), None);
        assert_eq!(parse_position(None), None);
    }
}
