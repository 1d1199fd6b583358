//! `avro-edge produce` and the typed `send_record` against a real broker (the test kit's), with the
//! offline schema cache in `fixtures/schema-cache`: what goes in as NDJSON comes back, decoded
//! by the codec, from the partition murmur2 picks for its key; bad lines are counted, not fatal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use avro_edge::Codec;
use avro_edge::partition_for_key;
use avro_edge::records::{SensorData, SensorStatus};
use avro_edge::{Producer, ProducerConfig, SendAvro};
use avro_edge_testkit::{fetch_partition, require_broker, root, unique_topic};

fn codec() -> Codec {
    let cache = root().join("fixtures/schema-cache");
    Codec::new(avro_edge::open_source(&[], Some(&cache)).unwrap())
}

/// Every record of `topic` (partitions 0..n): (partition, key, value bytes).
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i32, Option<Vec<u8>>, Vec<u8>)> {
    let client = avro_edge_testkit::read_client(bootstrap);
    let mut out = Vec::new();
    for partition in 0..partitions {
        for r in fetch_partition(&client, topic, partition, Duration::ZERO).unwrap() {
            out.push((
                partition,
                r.key.map(|k| k.to_vec()),
                r.value.unwrap().to_vec(),
            ));
        }
    }
    out
}

#[test]
#[ignore = "needs a Kafka broker"]
fn produce_cli_sends_ndjson_and_counts_bad_lines() {
    let broker = require_broker();
    let topic = unique_topic("produce-cli");
    let mut input = String::new();
    let mut want = Vec::new();
    for i in 0..50 {
        let status = ["NORMAL", "WARNING", "CRITICAL"][i as usize % 3];
        let rec = serde_json::json!({
            "sensorId": format!("s-{}", i % 6),
            "timestamp": 1_700_000_000_000i64 + i,
            "temperature": if i % 3 == 0 { serde_json::Value::Null } else { serde_json::json!(20.5) },
            "humidity": 40.25,
            "status": status,
        });
        input.push_str(&rec.to_string());
        input.push('\n');
        want.push(rec);
        if i == 10 {
            input.push_str("{not json\n");
        }
        if i == 20 {
            input.push_str("{\"sensorId\":\"s-x\",\"timestamp\":1}\n"); // missing status
        }
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avro-edge"));
    cmd.args([
        "produce",
        "--brokers",
        &broker.bootstrap(),
        "--topic",
        &topic,
        "--subject",
        "sensor-data-value",
    ])
    .args([
        "--schema-cache",
        &root().join("fixtures/schema-cache").display().to_string(),
        "--key-field",
        "sensorId",
    ])
    .args(["--create-partitions", "3", "--compression", "gzip"])
    .stderr(Stdio::piped());
    let out = avro_edge_testkit::run_with_input(&mut cmd, input.as_bytes()).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "2 bad lines make the run fail; stderr: {stderr}"
    );
    assert!(
        stdout.contains("sent 50 acked 50 failed 2"),
        "summary: {stdout}"
    );
    assert!(stderr.contains("error[not-json]: line 12"), "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    let codec = codec();
    let got = read_all(&broker.bootstrap(), &topic, 3);
    assert_eq!(got.len(), 50);
    let mut decoded = Vec::new();
    for (partition, key, value) in got {
        let v = codec.decode_json(&value).unwrap();
        let key = key.expect("keyed by sensorId");
        assert_eq!(v["sensorId"].as_str().unwrap().as_bytes(), &key[..]);
        assert_eq!(
            partition,
            partition_for_key(&key, 3),
            "murmur2 partition for {:?}",
            v["sensorId"]
        );
        decoded.push(v);
    }
    let ts = |v: &serde_json::Value| v["timestamp"].as_i64().unwrap();
    decoded.sort_by_key(ts);
    assert_eq!(decoded, want);
}

#[test]
#[ignore = "needs a Kafka broker"]
fn send_record_encodes_typed_values_with_the_topic_subject() {
    let broker = require_broker();
    let mut cfg = ProducerConfig::new([broker.bootstrap()]);
    cfg.auto_create = Some(avro_edge::TopicSpec {
        partitions: 1,
        replication: 1,
    });
    let p = Producer::connect(cfg).unwrap();
    let codec = codec();
    // The topic must be `sensor-data` (its subject is in the offline cache): on a shared broker
    // other runs may have written to it too, so this run's records carry their own sensor ids.
    let run = unique_topic("t");
    let recs: Vec<SensorData> = (0..5)
        .map(|i| SensorData {
            sensor_id: format!("{run}-{i}"),
            timestamp: 1_700_000_000_000 + i,
            temperature: Some(i as f32 / 2.0),
            humidity: None,
            status: SensorStatus::Warning,
        })
        .collect();
    let t = Instant::now();
    for r in &recs {
        let d = p
            .send_record("sensor-data", Some(r.sensor_id.as_bytes()), r, &codec)
            .unwrap();
        assert!(d.offset.is_some());
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    // Without the subject in the cache: a typed codec error, not a panic.
    let err = p
        .send_record("no-such-topic", None, &recs[0], &codec)
        .unwrap_err();
    assert_ne!(avro_edge::ErrorKind::kind(&err), "kafka-error", "{err}");
    let partitions = p.partitions("sensor-data").unwrap();
    p.close().unwrap();
    let mut back: Vec<SensorData> = read_all(&broker.bootstrap(), "sensor-data", partitions)
        .iter()
        .map(|(_, _, v)| codec.decode::<SensorData>(v).unwrap())
        .filter(|r| r.sensor_id.starts_with(&format!("{run}-")))
        .collect();
    back.sort_by_key(|r| r.timestamp);
    assert_eq!(back, recs);
}

/// `avro-edge produce` of SensorData lines into `topic` (created with `partitions`), stderr piped.
fn produce_cmd(bootstrap: &str, topic: &str, partitions: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avro-edge"));
    cmd.args(["produce", "--brokers", bootstrap, "--topic", topic])
        .args([
            "--subject",
            "sensor-data-value",
            "--create-partitions",
            partitions,
        ])
        .args([
            "--schema-cache",
            &root().join("fixtures/schema-cache").display().to_string(),
        ])
        .stderr(Stdio::piped());
    cmd
}

/// Run `avro-edge produce` of `input` into a new 3-partition `topic`, keyed by sensorId.
fn produce_lines(bootstrap: &str, topic: &str, input: &[u8]) -> std::process::Output {
    let mut cmd = produce_cmd(bootstrap, topic, "3");
    cmd.args(["--key-field", "sensorId"]);
    avro_edge_testkit::run_with_input(&mut cmd, input).unwrap()
}

/// One SensorData NDJSON line with timestamp `i`.
fn sensor_line(i: usize) -> String {
    format!(
        r#"{{"sensorId":"s-{}","timestamp":{i},"temperature":1.5,"humidity":2.5,"status":"NORMAL"}}"#,
        i % 5
    )
}

/// Lines are read and encoded on a second thread in chunks of 512: bad lines on both sides of
/// chunk borders and blank lines keep their line numbers, errors come out in line order, and each
/// partition holds its records in input order.
#[test]
#[ignore = "needs a Kafka broker"]
fn produce_cli_reports_bad_lines_in_order_across_chunks() {
    let broker = require_broker();
    let topic = unique_topic("produce-cli-chunks");
    let bad = [3, 512, 513, 1025, 1400];
    let mut input = String::new();
    let mut n = 0;
    for line in 1..=1500 {
        if bad.contains(&line) {
            input.push_str("{\"sensorId\":\n");
        } else if line % 300 == 0 {
            input.push_str("  \n");
        } else {
            input.push_str(&sensor_line(n));
            input.push('\n');
            n += 1;
        }
    }
    let out = produce_lines(&broker.bootstrap(), &topic, input.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains(&format!("sent {n} acked {n} failed 5 ")),
        "{stdout}"
    );
    let reported: Vec<u64> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error[not-json]: line "))
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(reported, bad, "{stderr}");
    let codec = codec();
    let got = read_all(&broker.bootstrap(), &topic, 3);
    assert_eq!(got.len(), n);
    for p in 0..3 {
        let ts: Vec<i64> = (got.iter().filter(|r| r.0 == p))
            .map(|r| {
                codec.decode_json(&r.2).unwrap()["timestamp"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert!(ts.is_sorted(), "partition {p}: {ts:?}");
    }
}

/// A line that is not UTF-8 ends the run with a `stdin` error, as `read_line` did; the lines
/// before it are delivered.
#[test]
#[ignore = "needs a Kafka broker"]
fn produce_cli_stops_at_a_line_that_is_not_utf8() {
    let broker = require_broker();
    let topic = unique_topic("produce-cli-utf8");
    let mut input = Vec::new();
    for i in 0..700 {
        input.extend_from_slice(sensor_line(i).as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(b"{\"sensorId\":\"\xff\"}\n");
    input.extend_from_slice(sensor_line(700).as_bytes());
    let out = produce_lines(&broker.bootstrap(), &topic, &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not contain valid UTF-8"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sent "));
    assert_eq!(read_all(&broker.bootstrap(), &topic, 3).len(), 700);
}

/// A slow input's lines are sent as they come, not held until a chunk of lines is full.
#[test]
#[ignore = "needs a Kafka broker"]
fn produce_cli_sends_a_slow_inputs_lines_without_waiting_for_more() {
    use std::io::Write;
    let broker = require_broker();
    let topic = unique_topic("produce-cli-slow");
    let mut cmd = produce_cmd(&broker.bootstrap(), &topic, "1");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..3 {
        writeln!(stdin, "{}", sensor_line(i)).unwrap();
    }
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = avro_edge_testkit::read_client(&broker.bootstrap());
    let mut seen = 0;
    while seen < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        // The topic is created with the first record: until then the fetch fails.
        seen = fetch_partition(&client, &topic, 0, Duration::ZERO).map_or(0, |r| r.len());
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        seen, 3,
        "3 lines written, stdin still open: {seen} records in the topic"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent 3 acked 3 failed 0"));
}
