//! A partition log for the fake broker that applies Kafka's broker-side producer-state rules
//! (`ProducerStateManager` / `ProducerAppendInfo` / `UnifiedLog.analyzeAndValidateProducerState`)
//! to each batch of a Produce request, so a test can count what a real broker would store:
//!
//! - a batch of the producer's current epoch whose sequence range is one of its last 5 batches is
//!   a duplicate: not stored again, answered with the first one's offset and no error (as Kafka
//!   answers since 2.x; DUPLICATE_SEQUENCE_NUMBER is not sent by today's brokers);
//! - an epoch older than the producer's latest is refused with INVALID_PRODUCER_EPOCH;
//! - a newer epoch must start at sequence 0, the same epoch must go on at the last sequence + 1
//!   (wrapping after `i32::MAX`), else OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - a producer the partition does not know yet may start at any sequence;
//! - a batch over the topic's `max.message.bytes` is refused with MESSAGE_TOO_LARGE before any of
//!   that, and a test may refuse chosen batches with a code of its own ([`FakeLog::refuse_with`]).
//!
//! Must not answer anything itself or model replication: a fake broker's script calls
//! [`FakeLog::produce`] and decides when (and whether) the answer goes out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::records::Record;

use crate::fake_broker::Call;
use crate::kafka_read::{RawBatch, decode_raw_batches};

/// Kafka's CORRUPT_MESSAGE: the bytes are no record batch.
pub const CORRUPT_MESSAGE: i16 = 2;
/// The batch is over the topic's `max.message.bytes`.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// The leader appended the batch but its followers did not acknowledge it in time (acks=all).
pub const REQUEST_TIMED_OUT: i16 = 7;
/// The in-sync replicas are fewer than `min.insync.replicas`: nothing appended.
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
/// The producer's sequence does not follow the partition's last one.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// The batch's epoch is older than the producer's latest on the partition.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;

/// A record the broker refuses for good (e.g. a null key on a compacted topic).
pub const INVALID_RECORD: i16 = 87;

/// Batches per producer the broker remembers for duplicate detection (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`).
const WINDOW: usize = 5;

type Refusal = dyn Fn(&str, &[Record]) -> Option<i16> + Send + Sync;

/// What one batch of a Produce request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this base offset.
    Stored(i64),
    /// A retry of a batch in the producer's window: not stored again (its first offset).
    Duplicate(i64),
    /// Refused with this error code, nothing stored.
    Refused(i16),
}

/// The producer state of one producer id on one partition.
struct Producer {
    epoch: i16,
    last_seq: i32,
    /// (first sequence, last sequence, base offset) of its last batches in `epoch`.
    window: VecDeque<(i32, i32, i64)>,
}

#[derive(Default)]
struct Partition {
    batches: Vec<RawBatch>,
    next_offset: i64,
    producers: HashMap<i64, Producer>,
    /// Every batch the log was asked to append, with what came of it.
    seen: Vec<Appended>,
}

#[derive(Default)]
struct LogState {
    parts: HashMap<(String, i32), Partition>,
    max_message_bytes: HashMap<String, usize>,
}

/// Partitions of fake topics with Kafka's producer-state rules (see the module doc).
#[derive(Default)]
pub struct FakeLog {
    state: Mutex<LogState>,
    refuse: Mutex<Option<Box<Refusal>>>,
}

impl FakeLog {
    /// An empty log (every topic unlimited until [`FakeLog::max_message_bytes`]).
    pub fn new() -> FakeLog {
        FakeLog::default()
    }

    /// Refuse batches of `topic` larger than `bytes` (the topic config `max.message.bytes`).
    pub fn max_message_bytes(&self, topic: &str, bytes: usize) {
        self.lock()
            .max_message_bytes
            .insert(topic.to_string(), bytes);
    }

    /// Refuse a batch with the code `f(topic, records)` returns (checked before the producer
    /// state, as Kafka validates records first).
    pub fn refuse_with(&self, f: impl Fn(&str, &[Record]) -> Option<i16> + Send + Sync + 'static) {
        *self.refuse.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    /// As if another writer had stored `n` records under the producer's latest id and epoch on
    /// `topic`/`partition`: the producer's next sequence there moves on by `n` (its next batch
    /// is out of order).
    pub fn lose_sequences(&self, topic: &str, partition: i32, n: i32) {
        let mut st = self.lock();
        let part = st.parts.entry((topic.to_string(), partition)).or_default();
        for p in part.producers.values_mut() {
            p.last_seq = incremented(p.last_seq, n);
            p.window.clear();
        }
    }

    /// Append every batch of a Produce request (decoded from `call`) under the rules, and the
    /// answer Kafka gives for them.
    pub fn produce(&self, call: &Call) -> ProduceResponse {
        let req: ProduceRequest = call.request();
        let mut out = Vec::new();
        for t in req.topic_data {
            let topic = t.name.0.to_string();
            let mut parts = Vec::new();
            for p in t.partition_data {
                let bytes = p.records.unwrap_or_default();
                let got = self.append(&topic, p.index, bytes);
                let (code, offset) = match got {
                    Appended::Stored(o) | Appended::Duplicate(o) => (0, o),
                    Appended::Refused(c) => (c, -1),
                };
                parts.push(
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(offset),
                );
            }
            out.push(
                TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_partition_responses(parts),
            );
        }
        ProduceResponse::default().with_responses(out)
    }

    /// Append the record batches in `bytes` to `topic`/`partition` one by one; what came of the
    /// last (a request from avro-edge carries one batch per partition).
    pub fn append(&self, topic: &str, partition: i32, mut bytes: bytes::Bytes) -> Appended {
        let mut last = Appended::Refused(CORRUPT_MESSAGE);
        while !bytes.is_empty() {
            let before = bytes.len();
            let one = match decode_one(&mut bytes) {
                Ok(b) => b,
                Err(_) => return Appended::Refused(CORRUPT_MESSAGE),
            };
            let size = before - bytes.len();
            last = self.append_batch(topic, partition, one, size);
        }
        last
    }

    fn append_batch(&self, topic: &str, partition: i32, b: RawBatch, size: usize) -> Appended {
        let refused = (self
            .refuse
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref())
        .and_then(|f| f(topic, &b.records));
        let mut st = self.lock();
        let too_large = st
            .max_message_bytes
            .get(topic)
            .is_some_and(|max| size > *max);
        let part = st.parts.entry((topic.to_string(), partition)).or_default();
        let got = match refused.or(too_large.then_some(MESSAGE_TOO_LARGE)) {
            Some(code) => Appended::Refused(code),
            None => part.check_and_store(b),
        };
        part.seen.push(got);
        got
    }

    /// The batches stored in `topic`/`partition`, in log order.
    pub fn stored(&self, topic: &str, partition: i32) -> Vec<RawBatch> {
        let st = self.lock();
        (st.parts.get(&(topic.to_string(), partition)))
            .map(|p| p.batches.clone())
            .unwrap_or_default()
    }

    /// What came of every batch the log was asked to append to `topic`/`partition`, in order.
    pub fn seen(&self, topic: &str, partition: i32) -> Vec<Appended> {
        let st = self.lock();
        (st.parts.get(&(topic.to_string(), partition)))
            .map(|p| p.seen.clone())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn decode_one(bytes: &mut bytes::Bytes) -> Result<RawBatch, String> {
    // decode_raw_batches reads every batch; cut the first one off by its length field.
    let len = bytes
        .get(8..12)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or("short batch header")?;
    let end = usize::try_from(len).map_err(|_| "negative batch length")? + 12;
    if end > bytes.len() {
        return Err("batch cut short".into());
    }
    let one = bytes.split_to(end);
    decode_raw_batches(one)?
        .pop()
        .ok_or_else(|| "an empty batch".to_string())
}

impl Partition {
    /// Kafka's producer-state checks for one batch, then the append.
    fn check_and_store(&mut self, mut b: RawBatch) -> Appended {
        let count = b.records.len() as i32;
        let (first, epoch) = (b.base_sequence, b.producer_epoch);
        let last = incremented(first, count - 1);
        if let Some(p) = self.producers.get(&b.producer_id) {
            if epoch == p.epoch
                && let Some((_, _, offset)) = p.window.iter().find(|w| (w.0, w.1) == (first, last))
            {
                return Appended::Duplicate(*offset);
            }
            if epoch < p.epoch {
                return Appended::Refused(INVALID_PRODUCER_EPOCH);
            }
            let in_sequence = if epoch != p.epoch {
                first == 0
            } else {
                i64::from(first) == i64::from(p.last_seq) + 1
                    || (first == 0 && p.last_seq == i32::MAX)
            };
            if !in_sequence {
                return Appended::Refused(OUT_OF_ORDER_SEQUENCE_NUMBER);
            }
        }
        let base = self.next_offset;
        for (i, r) in b.records.iter_mut().enumerate() {
            r.offset = base + i as i64;
        }
        b.base_offset = base;
        self.next_offset += i64::from(count);
        if b.producer_id >= 0 {
            let p = self.producers.entry(b.producer_id).or_insert(Producer {
                epoch,
                last_seq: last,
                window: VecDeque::new(),
            });
            if p.epoch != epoch {
                p.window.clear();
                p.epoch = epoch;
            }
            p.last_seq = last;
            p.window.push_back((first, last, base));
            if p.window.len() > WINDOW {
                p.window.pop_front();
            }
        }
        self.batches.push(b);
        Appended::Stored(base)
    }
}

/// The answer to `call`'s Produce request with every partition refused with `code` (offset -1),
/// nothing appended (NOT_ENOUGH_REPLICAS, ...).
pub fn refusal(call: &Call, code: i16) -> ProduceResponse {
    let req: ProduceRequest = call.request();
    let topics = (req.topic_data.into_iter())
        .map(|t| {
            let parts = (t.partition_data.iter())
                .map(|p| PartitionProduceResponse::default().with_index(p.index))
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(parts)
        })
        .collect();
    answered_with(ProduceResponse::default().with_responses(topics), code)
}

/// `resp` with every partition answered `code` instead (offset -1): what a leader answers for
/// batches it appended when its followers never acknowledged them (REQUEST_TIMED_OUT).
pub fn answered_with(mut resp: ProduceResponse, code: i16) -> ProduceResponse {
    for p in (resp.responses.iter_mut()).flat_map(|t| t.partition_responses.iter_mut()) {
        p.error_code = code;
        p.base_offset = -1;
    }
    resp
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap to 0 after `i32::MAX`.
fn incremented(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}
