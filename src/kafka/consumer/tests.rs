//! The consumer against the test kit's fake broker: what it asks for and what it does with the
//! answers, request by request, where a real broker cannot be made to answer that way (an old
//! Kafka, tansu).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avro_edge_testkit::{Call, FakeBroker, Imitate, Reply};
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, OffsetCommitRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{Consumer, ConsumerConfig, IsolationLevel, OffsetReset};
use crate::error::ErrorKind;
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

/// What a Fetch and a ListOffsets carry: the isolation level (read_committed unless configured
/// otherwise) and, in Fetch v11+, the client's rack.
#[test]
fn fetch_and_list_offsets_carry_the_isolation_level_and_the_rack() {
    type Seen = Arc<Mutex<Vec<(i16, i16, i8, String)>>>;
    let run = |cfg: &dyn Fn(&mut ConsumerConfig)| {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let broker = FakeBroker::start(move |c| {
            let mut s = s.lock().unwrap();
            match c.key {
                1 => {
                    let r = FetchRequest::decode(&mut c.body.clone(), c.version).unwrap();
                    s.push((1, c.version, r.isolation_level, r.rack_id.to_string()));
                }
                2 => {
                    let r = ListOffsetsRequest::decode(&mut c.body.clone(), c.version).unwrap();
                    s.push((2, c.version, r.isolation_level, String::new()));
                }
                _ => {}
            }
            Reply::Honest
        })
        .unwrap();
        let mut c = ConsumerConfig::assign(broker.addr(), &[("t", 0)]);
        c.fetch_max_wait = Duration::from_millis(10);
        cfg(&mut c);
        let mut consumer = Consumer::connect(c).unwrap();
        consumer.poll(Duration::from_millis(100)).unwrap();
        consumer.close().unwrap();
        seen.lock().unwrap().clone()
    };
    let seen = run(&|_| {});
    assert!(seen.contains(&(2, 7, 1, String::new())), "{seen:?}");
    assert!(seen.contains(&(1, 12, 1, String::new())), "{seen:?}");
    let seen = run(&|c| {
        c.isolation_level = IsolationLevel::ReadUncommitted;
        c.client_rack = Some("rack-b".into());
    });
    assert!(seen.contains(&(2, 7, 0, String::new())), "{seen:?}");
    assert!(seen.contains(&(1, 12, 0, "rack-b".into())), "{seen:?}");
}

/// The group_instance_id of every group request of a static member, by API key, and how many
/// LeaveGroup requests the broker saw.
fn group_requests(instance: Option<&str>) -> (Vec<(i16, Option<String>)>, usize) {
    type Seen = Arc<Mutex<Vec<(i16, Option<String>)>>>;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let broker = FakeBroker::start(move |c| {
        let id = |v: Option<StrBytes>| v.map(|v| v.to_string());
        let mut body = c.body.clone();
        let got = match c.key {
            11 => Some(id(JoinGroupRequest::decode(&mut body, c.version)
                .unwrap()
                .group_instance_id)),
            14 => Some(id(SyncGroupRequest::decode(&mut body, c.version)
                .unwrap()
                .group_instance_id)),
            12 => Some(id(HeartbeatRequest::decode(&mut body, c.version)
                .unwrap()
                .group_instance_id)),
            8 => Some(id(OffsetCommitRequest::decode(&mut body, c.version)
                .unwrap()
                .group_instance_id)),
            _ => None,
        };
        if let Some(got) = got {
            s.lock().unwrap().push((c.key, got));
        }
        Reply::Honest
    })
    .unwrap();
    let mut cfg = ConsumerConfig::group(broker.addr(), "g", &["t"]);
    cfg.group_instance_id = instance.map(str::to_string);
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.session_timeout = Duration::from_secs(2);
    cfg.fetch_max_wait = Duration::from_millis(50);
    let mut consumer = Consumer::connect(cfg).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until && !seen.lock().unwrap().iter().any(|s| s.0 == 12) {
        consumer.poll(Duration::from_millis(100)).unwrap();
    }
    consumer.commit().unwrap();
    consumer.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    (seen, broker.calls(13))
}

/// A static member (KIP-345) names itself in JoinGroup, SyncGroup, Heartbeat and OffsetCommit,
/// and does not send LeaveGroup on close; a dynamic member names nothing and leaves.
#[test]
fn a_static_member_names_its_instance_id_and_does_not_leave_on_close() {
    let (seen, leaves) = group_requests(Some("gateway-7"));
    for key in [11, 14, 12, 8] {
        assert!(
            seen.iter().any(|s| s.0 == key),
            "no request {key}: {seen:?}"
        );
    }
    assert!(
        seen.iter().all(|s| s.1.as_deref() == Some("gateway-7")),
        "{seen:?}"
    );
    assert_eq!(leaves, 0, "a static member sent LeaveGroup");
    let (seen, leaves) = group_requests(None);
    assert!(seen.iter().all(|s| s.1.is_none()), "{seen:?}");
    assert_eq!(leaves, 1);
}

/// FENCED_INSTANCE_ID (another consumer took over our group.instance.id) is fatal: the poll
/// fails with its own kind, and so does every poll after it.
#[test]
fn a_fenced_static_member_fails_every_poll_with_its_kind() {
    let broker = FakeBroker::start(|c| match c.key {
        12 => {
            let r = HeartbeatResponse::default().with_error_code(82);
            Reply::Body(encode(&r, c.version))
        }
        _ => Reply::Honest,
    })
    .unwrap();
    let mut cfg = ConsumerConfig::group(broker.addr(), "g", &["t"]);
    cfg.group_instance_id = Some("gateway-7".into());
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.session_timeout = Duration::from_secs(2);
    cfg.fetch_max_wait = Duration::from_millis(50);
    let mut consumer = Consumer::connect(cfg).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match consumer.poll(Duration::from_millis(100)) {
            Err(e) => break e,
            Ok(_) if Instant::now() < until => continue,
            Ok(_) => panic!("never fenced"),
        }
    };
    assert_eq!(err.kind(), "fenced-instance-id", "{err}");
    assert!(err.to_string().contains("gateway-7"), "{err}");
    let again = consumer.poll(Duration::from_millis(100)).unwrap_err();
    assert_eq!(again.kind(), "fenced-instance-id", "{again}");
}

#[test]
fn a_group_instance_id_follows_kafkas_naming_rule() {
    for bad in ["", ".", "..", "gate way", "gw/1", &"x".repeat(250)] {
        let mut cfg = ConsumerConfig::group("127.0.0.1:9", "g", &["t"]);
        cfg.group_instance_id = Some(bad.to_string());
        let err = Consumer::connect(cfg).unwrap_err();
        assert_eq!(err.kind(), "invalid-config", "{bad:?}: {err}");
    }
}

/// A Fetch answer for partition `t`-0 (`edit` fills it in).
fn fetch_answer(call: &Call, edit: impl FnOnce(PartitionData) -> PartitionData) -> Reply {
    let data = edit(PartitionData::default().with_partition_index(0));
    let r = FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![data]),
    ]);
    Reply::Body(encode(&r, call.version))
}

/// The port of a fake broker's `127.0.0.1:<port>`.
fn port(addr: &str) -> i32 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap()
}

/// Metadata naming one node per port (node ids 0, 1, ...), with node 0 leading partition 0 of
/// every topic asked for in leader epoch `epoch`, and the other nodes its followers.
fn metadata_answer(call: &Call, ports: &[i32], epoch: i32) -> Reply {
    use kafka_protocol::messages::metadata_response::*;
    let req = MetadataRequest::decode(&mut call.body.clone(), call.version).unwrap();
    let nodes: Vec<MetadataResponseBroker> = (0..)
        .zip(ports)
        .map(|(id, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(*port)
        })
        .collect();
    let ids: Vec<BrokerId> = (0..ports.len() as i32).map(BrokerId).collect();
    let partition = MetadataResponsePartition::default()
        .with_leader_id(BrokerId(0))
        .with_leader_epoch(epoch)
        .with_replica_nodes(ids.clone())
        .with_isr_nodes(ids);
    let topics = (req.topics.unwrap_or_default().into_iter()).map(|t| {
        MetadataResponseTopic::default()
            .with_name(t.name)
            .with_partitions(vec![partition.clone()])
    });
    let r = kafka_protocol::messages::MetadataResponse::default()
        .with_brokers(nodes)
        .with_topics(topics.collect());
    Reply::Body(encode(&r, call.version))
}

/// KIP-392, as Java's consumer follows it: with `client_rack` set, the leader (node 0) answers
/// with no records and names node 1 as the preferred read replica; the consumer then fetches
/// from node 1 (with its rack), and when node 1 answers an error, from the leader again.
#[test]
fn the_consumer_fetches_from_the_read_replica_the_leader_names() {
    let replica_fetches = Arc::new(Mutex::new(Vec::new()));
    let seen = replica_fetches.clone();
    // Node 1: two records at 0 and 1, then NOT_LEADER_OR_FOLLOWER.
    let replica = FakeBroker::start(move |c| {
        if c.key != 1 {
            return Reply::Honest;
        }
        let req = FetchRequest::decode(&mut c.body.clone(), c.version).unwrap();
        let mut seen = seen.lock().unwrap();
        let part = &req.topics[0].partitions[0];
        seen.push((req.rack_id.to_string(), part.fetch_offset));
        let first = seen.len() == 1;
        fetch_answer(c, |d| match first {
            true => d.with_high_watermark(2).with_records(Some(batch_at(0, 2))),
            false => d.with_error_code(6),
        })
    })
    .unwrap();
    let replica_port = port(replica.addr());
    let leader_port = Arc::new(AtomicI32::new(0));
    let leader_fetches = Arc::new(Mutex::new(Vec::new()));
    let (own, seen) = (leader_port.clone(), leader_fetches.clone());
    let leader = FakeBroker::start(move |c| match c.key {
        3 => metadata_answer(c, &[own.load(Ordering::SeqCst), replica_port], 0),
        1 => {
            let req = FetchRequest::decode(&mut c.body.clone(), c.version).unwrap();
            seen.lock()
                .unwrap()
                .push(req.topics[0].partitions[0].fetch_offset);
            fetch_answer(c, |d| {
                d.with_high_watermark(2)
                    .with_preferred_read_replica(BrokerId(1))
            })
        }
        _ => Reply::Honest,
    })
    .unwrap();
    leader_port.store(port(leader.addr()), Ordering::SeqCst);
    let mut cfg = ConsumerConfig::assign(leader.addr(), &[("t", 0)]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.client_rack = Some("rack-b".into());
    cfg.fetch_max_wait = Duration::from_millis(10);
    let mut consumer = Consumer::connect(cfg).unwrap();
    let mut offsets = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until && leader_fetches.lock().unwrap().len() < 2 {
        let got = consumer.poll(Duration::from_millis(100)).unwrap();
        offsets.extend(got.iter().map(|r| r.offset));
    }
    consumer.close().unwrap();
    assert_eq!(offsets, [0, 1]);
    let replica_fetches = replica_fetches.lock().unwrap().clone();
    assert_eq!(
        replica_fetches[..2],
        [("rack-b".to_string(), 0), ("rack-b".to_string(), 2)]
    );
    // The leader first, then again after the replica's error, from where the replica left off.
    assert_eq!(leader_fetches.lock().unwrap()[..2], [0, 2]);
}

/// KIP-320: Fetch and ListOffsets carry the partition's leader epoch from metadata. The broker
/// is in epoch 6; metadata says 5 first (stale: FENCED_LEADER_EPOCH), then 7 (ahead of the
/// broker: UNKNOWN_LEADER_EPOCH), then 6. Each refusal refreshes the metadata and asks again,
/// and the records come with epoch 6.
#[test]
fn fetch_and_list_offsets_carry_the_leader_epoch_and_a_refusal_refreshes_metadata() {
    const BROKER_EPOCH: i32 = 6;
    let said = Arc::new(Mutex::new(vec![5, 7]));
    let sent: Arc<Mutex<Vec<(i16, i32)>>> = Arc::default();
    let own_port = Arc::new(AtomicI32::new(0));
    let (s, own, epochs) = (sent.clone(), own_port.clone(), said.clone());
    let check = |epoch: i32| match epoch {
        e if e < BROKER_EPOCH => 74, // FENCED_LEADER_EPOCH
        e if e > BROKER_EPOCH => 75, // UNKNOWN_LEADER_EPOCH
        _ => 0,
    };
    let broker = FakeBroker::start(move |c| match c.key {
        3 => {
            let mut epochs = epochs.lock().unwrap();
            let epoch = if epochs.is_empty() {
                BROKER_EPOCH
            } else {
                epochs.remove(0)
            };
            metadata_answer(c, &[own.load(Ordering::SeqCst)], epoch)
        }
        2 => {
            let req = ListOffsetsRequest::decode(&mut c.body.clone(), c.version).unwrap();
            let epoch = req.topics[0].partitions[0].current_leader_epoch;
            s.lock().unwrap().push((2, epoch));
            let r = ListOffsetsResponse::default().with_topics(vec![
                ListOffsetsTopicResponse::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        ListOffsetsPartitionResponse::default()
                            .with_error_code(check(epoch))
                            .with_offset(0),
                    ]),
            ]);
            Reply::Body(encode(&r, c.version))
        }
        1 => {
            let req = FetchRequest::decode(&mut c.body.clone(), c.version).unwrap();
            let epoch = req.topics[0].partitions[0].current_leader_epoch;
            s.lock().unwrap().push((1, epoch));
            let fetch_offset = req.topics[0].partitions[0].fetch_offset;
            fetch_answer(c, |d| match (check(epoch), fetch_offset) {
                (0, 0) => d.with_high_watermark(2).with_records(Some(batch_at(0, 2))),
                (0, _) => d.with_high_watermark(2),
                (code, _) => d.with_error_code(code),
            })
        }
        _ => Reply::Honest,
    })
    .unwrap();
    own_port.store(port(broker.addr()), Ordering::SeqCst);
    let mut cfg = ConsumerConfig::assign(broker.addr(), &[("t", 0)]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.fetch_max_wait = Duration::from_millis(10);
    let mut consumer = Consumer::connect(cfg).unwrap();
    let mut offsets = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while offsets.len() < 2 && Instant::now() < until {
        let got = consumer.poll(Duration::from_millis(100)).unwrap();
        offsets.extend(got.iter().map(|r| r.offset));
    }
    consumer.close().unwrap();
    assert_eq!(offsets, [0, 1]);
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent[..4], [(2, 5), (2, 7), (2, 6), (1, 6)], "{sent:?}");
    assert!(said.lock().unwrap().is_empty(), "metadata asked again");
}
