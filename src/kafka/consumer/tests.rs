//! The consumer against the test kit's fake broker: what it asks for and what it does with the
//! answers, request by request, where a real broker cannot be made to answer that way (an old
//! Kafka, tansu).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avro_edge_testkit::{Call, FakeBroker, Imitate, Reply};
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{Consumer, ConsumerConfig, OffsetReset};
use crate::kafka::quirks::BrokerQuirks;
use crate::kafka::record::{BatchBuilder, Compression};

/// What the fake broker saw of the consumer's Fetch requests.
#[derive(Debug, Default)]
struct Fetches {
    /// (version, fetch offset) of each Fetch for records.
    reads: Vec<(i16, i64)>,
    /// Fetches of one byte from offset 0: the high-watermark probe for "latest".
    watermark_probes: usize,
}

fn encode<M: Encodable>(msg: &M, version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out, version).unwrap();
    out
}

/// A batch of `n` records whose first offset is `base`.
fn batch_at(base: i64, n: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        b.append(
            1_700_000_000_000,
            None,
            Some(format!("v{i}").as_bytes()),
            &[],
        );
    }
    let mut bytes = b.finish(Compression::None).unwrap();
    // The base offset is outside the CRC: the broker sets it when it stores the batch.
    bytes[..8].copy_from_slice(&base.to_be_bytes());
    Bytes::from(bytes)
}

/// A one-partition topic `t` whose log runs from 0 to 7 after compaction left a gap: the first
/// batch still there starts at 5 (offsets 5 and 6). ListOffsets answers 3 for any query; every
/// Fetch answers that batch, whatever its offset (what Kafka does for a fetch from 3).
fn compacted_gap(call: &Call, seen: &Mutex<Fetches>) -> Reply {
    match call.key {
        2 => {
            let req = ListOffsetsRequest::decode(&mut call.body.clone(), call.version).unwrap();
            let topics = req.topics.into_iter().map(|t| {
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(vec![
                        ListOffsetsPartitionResponse::default()
                            .with_partition_index(0)
                            .with_timestamp(-1)
                            .with_offset(3),
                    ])
            });
            let r = ListOffsetsResponse::default().with_topics(topics.collect());
            Reply::Body(encode(&r, call.version))
        }
        1 => {
            let req = FetchRequest::decode(&mut call.body.clone(), call.version).unwrap();
            let part = &req.topics[0].partitions[0];
            let mut seen = seen.lock().unwrap();
            if part.partition_max_bytes == 1 && part.fetch_offset == 0 {
                seen.watermark_probes += 1;
            } else {
                seen.reads.push((call.version, part.fetch_offset));
            }
            let data = PartitionData::default()
                .with_partition_index(0)
                .with_high_watermark(7)
                .with_last_stable_offset(7)
                .with_log_start_offset(0)
                .with_records(Some(batch_at(5, 2)));
            let r = FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![data]),
            ]);
            Reply::Body(encode(&r, call.version))
        }
        _ => Reply::Honest,
    }
}

/// Read partition `t`-0 of a fake broker imitating `imitate` until records arrive (or 4 fetches
/// brought none): their offsets, and what the broker saw of the fetches.
fn read_gap(imitate: Imitate, quirks: BrokerQuirks, reset: OffsetReset) -> (Vec<i64>, Fetches) {
    let seen = Arc::new(Mutex::new(Fetches::default()));
    let s = seen.clone();
    let broker = FakeBroker::imitating(imitate, move |c| compacted_gap(c, &s)).unwrap();
    let mut cfg = ConsumerConfig::assign(broker.addr(), &[("t", 0)]);
    cfg.auto_offset_reset = reset;
    cfg.broker_quirks = quirks;
    cfg.fetch_max_wait = Duration::from_millis(10);
    let mut consumer = Consumer::connect(cfg).unwrap();
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut offsets = Vec::new();
    let fetched = || seen.lock().unwrap().reads.len();
    while offsets.is_empty() && fetched() < 4 && Instant::now() < give_up {
        offsets = (consumer.poll(Duration::from_millis(200)).unwrap())
            .iter()
            .map(|r| r.offset)
            .collect();
    }
    consumer.close().unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (offsets, seen)
}

/// Kafka 2.6 answers ApiVersions v3 without feature fields, which decodes as tansu's answer does:
/// no tansu workaround turns on. The fetch from 3 gets the batch at 5 (a compaction gap), which
/// is read past at once: no step back below the position, no Fetch capped for tansu (2.6 goes
/// up to v11 anyway), no high-watermark probe for "latest".
#[test]
fn a_kafka_2_6_broker_gets_no_tansu_workaround() {
    for reset in [OffsetReset::Earliest, OffsetReset::Latest] {
        let (offsets, seen) = read_gap(Imitate::Kafka26, BrokerQuirks::Auto, reset);
        assert_eq!(offsets, [5, 6], "{reset:?}");
        assert_eq!(seen.reads[0], (11, 3), "{reset:?}: {seen:?}");
        assert!(
            seen.reads.iter().all(|r| r.1 >= 3),
            "stepped back: {seen:?}"
        );
        assert_eq!(seen.watermark_probes, 0, "{reset:?}: {seen:?}");
    }
}

/// tansu 0.6.0's answer turns the workarounds on: Fetch at v11 although the broker announces
/// v12, the step-back probe (3, then 2, then 0, the log start), and for "latest" the high
/// watermark (7) over what ListOffsets said (3). Configured off, none of them runs.
#[test]
fn tansu_is_identified_and_its_workarounds_run_unless_configured_off() {
    let (offsets, seen) = read_gap(Imitate::Tansu060, BrokerQuirks::Auto, OffsetReset::Earliest);
    assert_eq!(offsets, [5, 6]);
    assert_eq!(seen.reads, [(11, 3), (11, 2), (11, 0)], "{seen:?}");
    let (offsets, seen) = read_gap(Imitate::Tansu060, BrokerQuirks::Auto, OffsetReset::Latest);
    assert_eq!(offsets, [] as [i64; 0]);
    assert_eq!(seen.watermark_probes, 1);
    assert!(seen.reads.iter().all(|r| *r == (11, 7)), "{seen:?}");
    let (offsets, seen) = read_gap(Imitate::Tansu060, BrokerQuirks::None, OffsetReset::Latest);
    assert_eq!(offsets, [5, 6]);
    assert_eq!(seen.reads, [(12, 3)], "{seen:?}");
    assert_eq!(seen.watermark_probes, 0);
}

/// Configured, the workarounds run on a broker that does not identify itself as tansu.
#[test]
fn the_tansu_workarounds_can_be_switched_on_by_configuration() {
    let (offsets, seen) = read_gap(Imitate::Fake, BrokerQuirks::Tansu, OffsetReset::Earliest);
    assert_eq!(offsets, [5, 6]);
    assert_eq!(seen.reads, [(11, 3), (11, 2), (11, 0)], "{seen:?}");
}
