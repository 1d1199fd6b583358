//! Read back what a broker stored, independently of the code under test: raw Fetch requests
//! ([`fetch_partition`], [`fetch_batches`], from a given broker [`fetch_partition_each`],
//! [`fetch_batches_each`]) and kafka-protocol's own record-batch decoder
//! ([`decode_batches`], [`decode_raw_batches`]), by record or by batch with its producer id, epoch
//! and base sequence.
//!
//! Must not use avro-edge's consumer or batch decoder (the point is to check them, and the producer,
//! from outside), and must not be given untrusted input: kafka-protocol's decoder preallocates from counts.

use std::time::{Duration, Instant};

use avro_edge::__test::{self as kafka, Client, ClientConfig, Target};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;

/// One record batch as stored: where it starts, its producer fields (-1 for a batch without a
/// producer id) and its records.
#[derive(Debug, Clone)]
pub struct RawBatch {
    /// The offset of its first record.
    pub base_offset: i64,
    /// The producer id it carries (-1: none).
    pub producer_id: i64,
    /// The producer epoch it carries (-1: none).
    pub producer_epoch: i16,
    /// The sequence of its first record (-1: none).
    pub base_sequence: i32,
    /// Its records (offsets and sequences per record).
    pub records: Vec<Record>,
}

/// Every record of one partition, from offset 0 (see [`fetch_batches`]).
pub fn fetch_partition(
    client: &Client,
    topic: &str,
    partition: i32,
    wait_for_first: Duration,
) -> Result<Vec<Record>, String> {
    let batches = fetch_batches(client, topic, partition, wait_for_first)?;
    Ok(batches.into_iter().flat_map(|b| b.records).collect())
}

/// Every batch of one partition, from offset 0 (see [`fetch_batches_each`]), from any broker.
pub fn fetch_batches(
    client: &Client,
    topic: &str,
    partition: i32,
    wait_for_first: Duration,
) -> Result<Vec<RawBatch>, String> {
    let mut out = Vec::new();
    fetch_batches_each(
        client,
        &Target::Any,
        topic,
        partition,
        wait_for_first,
        |b| out.push(b),
    )?;
    Ok(out)
}

/// [`fetch_partition`] from the broker `target` (a partition's leader, on a cluster), handing each
/// record to `each` as it is decoded instead of keeping them all; returns how many there were.
pub fn fetch_partition_each(
    client: &Client,
    target: &Target,
    topic: &str,
    partition: i32,
    wait_for_first: Duration,
    mut each: impl FnMut(Record),
) -> Result<u64, String> {
    let mut count = 0u64;
    fetch_batches_each(client, target, topic, partition, wait_for_first, |b| {
        for r in b.records {
            count += 1;
            each(r);
        }
    })?;
    Ok(count)
}

/// Every batch of one partition, from offset 0, read from `target` with raw Fetch requests (v11:
/// tansu 0.6.0 puts a top-level tag, NodeEndpoints of v16+, into flexible v12+ answers) and decoded
/// by [`decode_raw_batches`] (the records of a batch that starts before the offset asked for are
/// left out), each batch handed to `each`; returns how many batches there were. Reads until a Fetch
/// brings nothing new; while the partition is still empty it keeps asking until `wait_for_first`
/// has passed (zero: one empty answer ends it).
pub fn fetch_batches_each(
    client: &Client,
    target: &Target,
    topic: &str,
    partition: i32,
    wait_for_first: Duration,
    mut each: impl FnMut(RawBatch),
) -> Result<u64, String> {
    let conn = kafka::block_on(client.conn(target)).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + wait_for_first;
    let mut count = 0u64;
    let mut offset = 0i64;
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(32 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(16 << 20),
                    ]),
            ]);
        let resp = kafka::block_on(conn.request_at(&req, 11)).map_err(|e| e.to_string())?;
        let before = offset;
        for p in resp.responses.into_iter().flat_map(|t| t.partitions) {
            if p.error_code != 0 {
                return Err(format!(
                    "fetch {topic}/{partition} at {offset}: error code {}",
                    p.error_code
                ));
            }
            let Some(bytes) = p.records else { continue };
            for mut b in decode_raw_batches(bytes)? {
                b.records.retain(|r| r.offset >= offset);
                if let Some(last) = b.records.last() {
                    offset = last.offset + 1;
                    count += 1;
                    each(b);
                }
            }
        }
        if offset == before {
            if count > 0 || Instant::now() >= deadline {
                return Ok(count);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A [`Client`] for [`fetch_partition`] on `bootstrap`.
pub fn read_client(bootstrap: &str) -> Client {
    Client::new(ClientConfig {
        bootstrap: vec![bootstrap.to_string()],
        ..ClientConfig::default()
    })
    .unwrap_or_else(|e| panic!("client for {bootstrap}: {e}"))
}

/// Decode record batches with kafka-protocol's own decoder (an implementation independent of
/// ours), for tests that check what we wrote. Trusted input only: it preallocates from counts.
pub fn decode_batches(bytes: bytes::Bytes) -> Result<Vec<Record>, String> {
    let batches = decode_raw_batches(bytes)?;
    Ok(batches.into_iter().flat_map(|b| b.records).collect())
}

/// [`decode_batches`] batch by batch, with each batch's producer id, epoch and base sequence
/// (empty batches, left by compaction, are left out).
pub fn decode_raw_batches(mut bytes: bytes::Bytes) -> Result<Vec<RawBatch>, String> {
    use kafka_protocol::compression::{Decompressor, Gzip, Snappy};
    use kafka_protocol::records::{Compression, RecordBatchDecoder};
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode_with_custom_compression(
            &mut bytes,
            Some(|b: &mut bytes::Bytes, c: Compression| match c {
                Compression::None => Ok(b.clone()),
                Compression::Gzip => Gzip::decompress(b, |x| Ok(x.clone())),
                Compression::Snappy => Snappy::decompress(b, |x| Ok(x.clone())),
                other => Err(std::io::Error::other(format!("unsupported codec {other:?}")).into()),
            }),
        )
        .map_err(|e| e.to_string())?;
        let Some(first) = set.records.first() else {
            continue;
        };
        out.push(RawBatch {
            base_offset: first.offset,
            producer_id: first.producer_id,
            producer_epoch: first.producer_epoch,
            base_sequence: first.sequence,
            records: set.records,
        });
    }
    Ok(out)
}
