//! Keyed partitioning agrees with kafkajs's default partitioner (`Partitioners.DefaultPartitioner`,
//! the reference service's library): offline for many keys and partition counts, then on a real
//! broker both ways (where our producer puts keyed records, and where kafkajs put the ones we read).
//!
//! Needs `node`, peers/node/node_modules and a Kafka broker, so it is `#[ignore]`d; with
//! `cargo test -- --include-ignored` a missing peer or broker fails it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use avro_edge::TopicSpec;
use avro_edge::partition_for_key;
use avro_edge::{Consumer, ConsumerConfig, OffsetReset};
use avro_edge::{OutRecord, Producer, ProducerConfig};
use avro_edge_testkit::{require_broker, unique_topic};
use serde_json::{Value, json};

fn node_dir() -> PathBuf {
    avro_edge_testkit::require_node_peers()
}

fn node(dir: &PathBuf, args: &[&str], stdin: &str) -> String {
    let mut cmd = Command::new("node");
    cmd.current_dir(dir).args(args);
    let out = avro_edge_testkit::run_with_input(&mut cmd, stdin.as_bytes()).unwrap();
    assert!(out.status.success(), "node {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Keys of every length 0..=40 and of every tail length, text and binary.
fn keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..=40usize)
        .map(|n| (0..n).map(|j| (j * 37 + n * 11) as u8).collect())
        .collect();
    keys.extend((0..60).map(|i| format!("sensor-{i}").into_bytes()));
    keys.extend((0..20).map(|i| format!("user-{}", i * 7919).into_bytes()));
    keys.push("clé-ünïcode-🔑".as_bytes().to_vec());
    keys.push(vec![0xff; 9]);
    keys
}

const COUNTS: [i32; 8] = [1, 2, 3, 5, 7, 12, 64, 100];

#[test]
#[ignore = "needs a Kafka broker and the Node.js peers"]
fn our_murmur2_partitions_match_kafkajs_default_partitioner() {
    let dir = node_dir();
    let keys = keys();
    let req = json!({
        "partitions": COUNTS,
        "keys": keys.iter().map(|k| hex(k)).collect::<Vec<_>>(),
    });
    let out: Value =
        serde_json::from_str(&node(&dir, &["partitions.js"], &req.to_string())).unwrap();
    let mut compared = 0;
    for n in COUNTS {
        let theirs = out[n.to_string()].as_array().unwrap();
        assert_eq!(theirs.len(), keys.len());
        for (k, p) in keys.iter().zip(theirs) {
            assert_eq!(
                Some(partition_for_key(k, n) as i64),
                p.as_i64(),
                "key {} with {n} partitions",
                hex(k)
            );
            compared += 1;
        }
    }

    // On a broker: our producer's keyed records land where kafkajs would put them...
    let broker = require_broker();
    let parts = 7;
    let mut cfg = ProducerConfig::new([broker.bootstrap()]);
    cfg.auto_create = Some(TopicSpec {
        partitions: parts,
        replication: 1,
    });
    let p = Producer::connect(cfg).unwrap();
    let ours_topic = unique_topic("part-ours");
    let recs: Vec<OutRecord> = keys
        .iter()
        .map(|k| OutRecord {
            key: Some(k.clone()),
            value: b"v".to_vec(),
            headers: vec![],
        })
        .collect();
    let kafkajs7 = out[parts.to_string()].as_array().unwrap();
    for ((r, d), want) in recs
        .iter()
        .zip(p.send_batch(&ours_topic, &recs))
        .zip(kafkajs7)
    {
        let key = hex(r.key.as_deref().unwrap_or_default());
        assert_eq!(
            Some(d.unwrap().partition as i64),
            want.as_i64(),
            "our record with key {key}"
        );
    }

    // ...and the records kafkajs produced (its default partitioner choosing) are where ours says.
    let theirs_topic = unique_topic("part-kafkajs");
    p.partitions(&theirs_topic).unwrap(); // create it with 7 partitions
    p.close().unwrap();
    let lines: String = keys
        .iter()
        .map(|k| json!({"key": hex(k), "value": hex(k)}).to_string() + "\n")
        .collect();
    let produced = node(
        &dir,
        &[
            "peer.js",
            "produce",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &theirs_topic,
        ],
        &lines,
    );
    assert!(
        produced.contains(&format!("\"produced\":{}", keys.len())),
        "{produced}"
    );
    let assignment: Vec<(&str, i32)> = (0..parts).map(|i| (theirs_topic.as_str(), i)).collect();
    let mut ccfg = ConsumerConfig::assign(&broker.bootstrap(), &assignment);
    ccfg.auto_offset_reset = OffsetReset::Earliest;
    let mut c = Consumer::connect(ccfg).unwrap();
    let mut seen: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read < keys.len() && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(500)).unwrap() {
            let key = r.key.expect("kafkajs sent a key").to_vec();
            assert_eq!(r.value.as_deref(), Some(&key[..]), "value is the key");
            seen.insert(key, r.partition);
            read += 1;
        }
    }
    c.close().unwrap();
    assert_eq!(read, keys.len(), "records kafkajs produced");
    for k in &keys {
        assert_eq!(
            seen.get(k),
            Some(&partition_for_key(k, parts)),
            "kafkajs record with key {}",
            hex(k)
        );
    }
    eprintln!(
        "partitioner: {compared} (key, count) pairs equal to kafkajs offline; {} keyed records each way on a {parts}-partition topic",
        keys.len()
    );
}
