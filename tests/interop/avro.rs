//! Avro interop against the reference service's real serializers, over a real broker (the test kit's) and our
//! `TestRegistry` (both started here):
//! - Python confluent-kafka `AvroSerializer` (auto-register, TopicNameStrategy) produces every fixture
//!   record; our group consumer decodes each one through the `Codec` over the registry client.
//! - We produce the same records (`SendAvro::send_json`); kafkajs + @kafkajs/confluent-schema-registry
//!   and Python's `AvroDeserializer` decode them, and the value bytes equal the fixture `.bin` files
//!   (the registry holds the fixture schemas in fixture order, so the ids are the fixtures' 1-4).
//!
//! Peers live in `peers/python` and `peers/node`. The tests are `#[ignore]`d (they need a Kafka broker and the
//! peers); run with `cargo test -- --include-ignored`, where a missing peer or broker fails the test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::wire_support::{Case, assert_json_eq, cases, root};
use avro_edge::Codec;
use avro_edge::TestRegistry;
use avro_edge::TopicSpec;
use avro_edge::{ClientOptions, RegistryClient};
use avro_edge::{Consumer, ConsumerConfig, Item, OffsetReset, PollAvro};
use avro_edge::{Producer, ProducerConfig, SendAvro};
use avro_edge_testkit::{
    TestBroker, require_broker, require_node_peers, require_python, unique_topic,
};
use serde_json::{Value, json};

/// Fixture directories in the order their schemas were registered (ids 1-4), with the schema file.
const ORDER: [(&str, &str); 4] = [
    ("user-registration", "user-registration.avsc"),
    ("orders", "orders.avsc"),
    ("sensor-data", "sensor-data.avsc"),
    ("sensor-data-v2", "sensor-data-v2.avsc"),
];

/// The Python interpreter with confluent-kafka's Avro serializer (fastavro and friends), or the test fails.
fn python_avro() -> PathBuf {
    require_python("confluent_kafka.schema_registry.avro, fastavro, httpx2")
}

/// The kafkajs peer script, or the test fails.
fn node_peer() -> PathBuf {
    require_node_peers().join("peer.js")
}

/// Run a peer with `stdin`, fail the test on a non-zero exit, return its stdout JSON lines.
fn run_peer(mut cmd: Command, stdin: &str, what: &str) -> Vec<Value> {
    let out = avro_edge_testkit::run_with_input(&mut cmd, stdin.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{what} failed; stdout:\n{text}");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: bad line {l}: {e}")))
        .collect()
}

fn py_script(py: &PathBuf, script: &str) -> Command {
    let mut c = Command::new(py);
    c.current_dir(root().join("peers/python")).arg(script);
    c
}

/// Peers write what JSON cannot hold as strings; `-0.0` is the only one that is a number in the
/// fixtures' natural JSON, so turn it back into one.
fn from_peer(v: &Value) -> Value {
    match v {
        Value::String(s) if s == "-0.0" => json!(-0.0),
        Value::Array(a) => Value::Array(a.iter().map(from_peer).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), from_peer(v))).collect())
        }
        other => other.clone(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn create_topic(broker: &TestBroker, topic: &str) {
    let mut cfg = ProducerConfig::new([broker.bootstrap()]);
    cfg.auto_create = Some(TopicSpec {
        partitions: 2,
        replication: 1,
    });
    Producer::connect(cfg)
        .and_then(|p| p.partitions(topic))
        .unwrap_or_else(|e| panic!("creating {topic}: {e}"));
}

fn registry_codec(reg: &TestRegistry) -> Arc<Codec> {
    let client = RegistryClient::new(ClientOptions::new([reg.url()])).unwrap();
    Arc::new(Codec::new(Arc::new(client)))
}

/// Every valid fixture, keyed `<dir>/<case>` (the message key in these tests).
fn all_cases() -> Vec<(String, Case)> {
    ORDER
        .iter()
        .flat_map(|(dir, _)| {
            cases(dir)
                .into_iter()
                .map(move |c| (format!("{dir}/{}", c.name), c))
        })
        .collect()
}

#[test]
#[ignore = "needs a Kafka broker and the Python peers"]
fn confluent_kafka_avro_serializer_records_decode_with_our_consumer() {
    let py = python_avro();
    let broker = require_broker();
    let reg = TestRegistry::start(); // empty: the serializer registers the schemas itself
    let run = unique_topic("py");
    // One topic per schema (TopicNameStrategy); v2 goes to the SensorData topic as version 2.
    let topic_of = |dir: &str| format!("{run}-{}", dir.trim_end_matches("-v2"));
    let mut want: BTreeMap<String, (String, Case)> = BTreeMap::new();
    for (dir, file) in ORDER {
        let topic = topic_of(dir);
        if dir != "sensor-data-v2" {
            create_topic(&broker, &topic);
        }
        let mut input = String::new();
        let dir_cases = cases(dir);
        for c in &dir_cases {
            let key = format!("{dir}/{}", c.name);
            input.push_str(&json!({"key": key, "record": c.meta["record"]}).to_string());
            input.push('\n');
        }
        let mut cmd = py_script(&py, "avro_produce.py");
        cmd.args([&broker.bootstrap(), &reg.url(), &topic])
            .arg(root().join("schemas").join(file));
        let out = run_peer(cmd, &input, "avro_produce.py");
        let ids: Vec<u64> = out[0]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        // Registered in fixture order, our registry hands out the ids Karapace did.
        let fixture_ids: Vec<u64> = dir_cases.iter().map(|c| c.id() as u64).collect();
        assert_eq!(ids, fixture_ids, "{dir}: schema ids the serializer framed");
        for c in dir_cases {
            want.insert(format!("{dir}/{}", c.name), (topic.clone(), c));
        }
    }

    let codec = registry_codec(&reg);
    let topics: Vec<String> = ORDER[..3].iter().map(|(d, _)| topic_of(d)).collect();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut cfg = ConsumerConfig::group(&broker.bootstrap(), &unique_topic("g-ours"), &topic_refs);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.session_timeout = Duration::from_secs(6);
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.rebalance_timeout = Duration::from_secs(10);
    let mut consumer = Consumer::connect(cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got: BTreeMap<String, Value> = BTreeMap::new();
    while got.len() < want.len() && Instant::now() < deadline {
        for item in consumer
            .poll_items(Duration::from_millis(500), &codec)
            .unwrap()
        {
            match item {
                Item::Record {
                    topic, key, value, ..
                } => {
                    let key = String::from_utf8(key.unwrap().to_vec()).unwrap();
                    let (want_topic, _) = &want[&key];
                    assert_eq!(&*topic, want_topic, "{key}");
                    assert!(got.insert(key.clone(), value).is_none(), "{key} twice");
                }
                other => panic!("undecodable message from confluent-kafka: {other:?}"),
            }
        }
    }
    consumer.close().unwrap();
    assert_eq!(got.len(), want.len(), "records decoded: {:?}", got.keys());
    for (key, (_, case)) in &want {
        assert_json_eq(&got[key], case.expected(), key);
    }
    eprintln!(
        "confluent-kafka AvroSerializer -> avro-edge consumer: {} of {} records decoded",
        got.len(),
        want.len()
    );
}

/// Writer subject of each fixture id: fixture order gives fixture ids; v2 also gets a subject of
/// its own so that v1 stays the latest of `sensor-data-value` (the writer subject of v1 records).
const WRITER_SUBJECTS: [(&str, &str, u32); 4] = [
    ("user-registration-value", "user-registration.avsc", 1),
    ("orders-value", "orders.avsc", 2),
    ("sensor-data-value", "sensor-data.avsc", 3),
    ("sensor-data-v2-value", "sensor-data-v2.avsc", 4),
];

/// A test registry holding the fixture schemas under the fixture ids.
fn fixture_registry() -> TestRegistry {
    let reg = TestRegistry::start();
    for (subject, file, id) in WRITER_SUBJECTS {
        let text = std::fs::read_to_string(root().join("schemas").join(file)).unwrap();
        assert_eq!(reg.register(subject, &text).unwrap(), id, "{subject}");
    }
    reg
}

#[test]
#[ignore = "needs a Kafka broker and the Node.js peers"]
fn kafkajs_encoded_records_decode_with_our_consumer_and_match_fixture_bytes() {
    let peer = node_peer();
    let broker = require_broker();
    let reg = fixture_registry();
    let topic = unique_topic("kafkajs-avro");
    create_topic(&broker, &topic);
    let all = all_cases();
    let mut want: BTreeMap<String, &Case> = BTreeMap::new();
    for ((dir, _), (subject, _, id)) in ORDER.iter().zip(WRITER_SUBJECTS) {
        let mut input = String::new();
        for (key, case) in all
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{dir}/")))
        {
            if case.meta.get("kafkajs_note").is_some() {
                continue; // avsc's default long type refuses longs beyond 2^53
            }
            assert_eq!(case.id(), id, "{key}");
            input.push_str(&json!({"key": key, "record": case.meta["record"]}).to_string());
            input.push('\n');
            want.insert(key.clone(), case);
        }
        let mut cmd = Command::new("node");
        cmd.arg(&peer).args([
            "produce",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--registry",
            &reg.url(),
            "--subject",
            subject,
        ]);
        run_peer(cmd, &input, "kafkajs producer");
    }

    let codec = registry_codec(&reg);
    let assignment = [(topic.as_str(), 0), (topic.as_str(), 1)];
    let mut cfg = ConsumerConfig::assign(&broker.bootstrap(), &assignment);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = Consumer::connect(cfg).unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < want.len() && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(500)).unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = r.value.unwrap();
            let case = want[&key];
            assert_eq!(
                hex(&value),
                hex(&case.bin),
                "{key}: kafkajs bytes equal the fixture"
            );
            let decoded = codec
                .decode_json(&value)
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_json_eq(&decoded, case.expected(), &key);
            got += 1;
        }
    }
    consumer.close().unwrap();
    assert_eq!(got, want.len(), "records kafkajs encoded");
    eprintln!(
        "kafkajs + confluent-schema-registry -> avro-edge: {got} records byte-exact to fixtures and decoded equal ({} beyond 2^53 not encodable by avsc)",
        all.len() - got
    );
}

#[test]
#[ignore = "needs a Kafka broker, the Node.js peers and the Python peers"]
fn records_we_produce_decode_in_kafkajs_and_python_and_match_fixture_bytes() {
    let py = python_avro();
    let node = node_peer();
    let broker = require_broker();
    let reg = fixture_registry();
    let codec = registry_codec(&reg);
    let topic = unique_topic("ours-avro");
    create_topic(&broker, &topic);
    let producer = Producer::connect(ProducerConfig::new([broker.bootstrap()])).unwrap();
    let all = all_cases();
    for (key, case) in &all {
        let subject = match case.id() {
            4 => "sensor-data-v2-value",
            _ => case.subject(),
        };
        producer
            .send_json(
                subject,
                &topic,
                Some(key.as_bytes()),
                &case.meta["record"],
                &codec,
            )
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    producer.close().unwrap();
    let by_key: BTreeMap<&str, &Case> = all.iter().map(|(k, c)| (k.as_str(), c)).collect();

    {
        let peer = node;
        let mut cmd = Command::new("node");
        cmd.arg(&peer).args([
            "consume",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--group",
            &unique_topic("g-kafkajs"),
            "--registry",
            &reg.url(),
            "--count",
            &all.len().to_string(),
            "--timeout",
            "90",
        ]);
        let lines = run_peer(cmd, "", "kafkajs consumer");
        let (mut decoded, mut skipped, mut exact) = (0, 0, 0);
        for v in lines.iter().filter(|v| v.get("joined").is_none()) {
            let key_hex = v["key"].as_str().unwrap();
            let key: Vec<u8> = (0..key_hex.len() / 2)
                .map(|i| u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let key = String::from_utf8(key).unwrap();
            let case = by_key[key.as_str()];
            assert_eq!(
                v["value"].as_str(),
                Some(hex(&case.bin).as_str()),
                "{key}: bytes"
            );
            exact += 1;
            if case.meta.get("kafkajs_note").is_some() {
                skipped += 1; // avsc's default long type refuses longs beyond 2^53
                continue;
            }
            assert!(v.get("error").is_none(), "{key}: kafkajs: {}", v["error"]);
            assert_json_eq(
                &from_peer(&v["decoded"]),
                case.expected(),
                &format!("kafkajs {key}"),
            );
            decoded += 1;
        }
        assert_eq!(exact, all.len(), "kafkajs saw every record");
        eprintln!(
            "avro-edge producer -> kafkajs: {exact} records byte-exact to fixtures, {decoded} decoded equal, {skipped} skipped (kafkajs_note)"
        );
    }

    {
        let mut cmd = py_script(&py, "avro_consume.py");
        cmd.args([&broker.bootstrap(), &reg.url(), &topic])
            .arg(all.len().to_string())
            .arg("90");
        let lines = run_peer(cmd, "", "avro_consume.py");
        assert_eq!(lines.len(), all.len());
        for v in &lines {
            let key = v["key"].as_str().unwrap();
            let case = by_key[key];
            assert_eq!(
                v["value"].as_str(),
                Some(hex(&case.bin).as_str()),
                "{key}: bytes"
            );
            assert!(
                v.get("error").is_none(),
                "{key}: AvroDeserializer: {}",
                v["error"]
            );
            assert_json_eq(
                &from_peer(&v["decoded"]),
                case.expected(),
                &format!("python {key}"),
            );
        }
        eprintln!(
            "avro-edge producer -> confluent-kafka AvroDeserializer: {} records decoded equal, byte-exact",
            lines.len()
        );
    }
}
