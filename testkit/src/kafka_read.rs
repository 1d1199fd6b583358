//! Read back what a broker stored, independently of the code under test: raw Fetch requests
//! ([`fetch_partition`]) and kafka-protocol's own record-batch decoder ([`decode_batches`]).
//!
//! Must not use avro-edge's consumer or batch decoder (the point is to check them, and the producer,
//! from outside), and must not be given untrusted input: kafka-protocol's decoder preallocates from counts.

use std::time::{Duration, Instant};

use avro_edge::__test::{self as kafka, Client, ClientConfig, Target};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;

/// Every record of one partition, from offset 0, read with raw Fetch requests (v11: tansu 0.6.0 puts
/// a top-level tag, NodeEndpoints of v16+, into flexible v12+ answers) and decoded by
/// [`decode_batches`]. Reads until a Fetch brings nothing new; while the partition is still empty it
/// keeps asking until `wait_for_first` has passed (zero: one empty answer ends it).
pub fn fetch_partition(
    client: &Client,
    topic: &str,
    partition: i32,
    wait_for_first: Duration,
) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    fetch_partition_each(
        client,
        &Target::Any,
        topic,
        partition,
        wait_for_first,
        |r| out.push(r),
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
            for r in decode_batches(bytes)? {
                if r.offset >= offset {
                    offset = r.offset + 1;
                    count += 1;
                    each(r);
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
pub fn decode_batches(
    mut bytes: bytes::Bytes,
) -> Result<Vec<kafka_protocol::records::Record>, String> {
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
        out.extend(set.records);
    }
    Ok(out)
}
