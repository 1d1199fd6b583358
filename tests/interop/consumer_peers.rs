//! Consumer interop against a real broker: with kafkajs (peers/node), byte-exact records both ways,
//! a mixed group with a kafkajs member, and Avro through the test registry both ways; with
//! librdkafka (peers/python/produce_exact.py), compressed topics it wrote (gzip, snappy, lz4, zstd)
//! read byte-exact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::consumer_support::*;
use avro_edge::{Assignor, Consumer, ConsumerConfig, Item, OffsetReset, OutRecord, PollAvro};
use avro_edge_testkit::{require_broker, unique_topic};

fn node_peer() -> PathBuf {
    avro_edge_testkit::require_node_peers().join("peer.js")
}

/// (key, value, header `n`) of one record.
type KeyValueHeader = (Vec<u8>, Vec<u8>, Vec<u8>);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Values with every byte value, including invalid UTF-8 and NULs.
fn binary_value(i: usize) -> Vec<u8> {
    (0..(i * 37) % 300 + 1)
        .map(|j| ((i * 131 + j * 7) % 256) as u8)
        .collect()
}

#[test]
#[ignore = "needs a Kafka broker and the Node.js peers"]
fn kafkajs_reads_what_we_produce_and_we_read_what_kafkajs_produces_byte_exact() {
    let peer = node_peer();
    let broker = require_broker();

    // We produce, kafkajs consumes.
    let topic = unique_topic("interop-ours");
    let p = producer(&broker.bootstrap(), 2);
    let records: Vec<OutRecord> = (0..50)
        .map(|i| OutRecord {
            key: if i % 5 == 0 {
                None
            } else {
                Some(format!("key-{i}").into_bytes())
            },
            value: binary_value(i),
            headers: vec![("h".to_string(), vec![i as u8, 0xff])],
        })
        .collect();
    let mut ours = BTreeMap::new();
    for (r, d) in records.iter().zip(p.send_batch(&topic, &records)) {
        let d = d.unwrap();
        ours.insert(
            (d.partition as i64, d.offset.unwrap()),
            (r.key.as_deref().map(hex), hex(&r.value)),
        );
    }
    let out = Command::new("node")
        .arg(&peer)
        .args([
            "consume",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--count",
            "50",
            "--timeout",
            "60",
        ])
        .args(["--group", &unique_topic("g-kafkajs")])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "kafkajs consumer failed");
    let mut theirs = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["joined"] == true {
            continue;
        }
        assert_eq!(v["headers"]["h"].as_str().map(str::len), Some(4));
        theirs.insert(
            (
                v["partition"].as_i64().unwrap(),
                v["offset"].as_i64().unwrap(),
            ),
            (
                v["key"].as_str().map(str::to_string),
                v["value"].as_str().unwrap().to_string(),
            ),
        );
    }
    assert_eq!(theirs, ours, "kafkajs sees exactly our keys and values");

    // kafkajs produces, we consume.
    let topic = unique_topic("interop-theirs");
    producer(&broker.bootstrap(), 2).partitions(&topic).unwrap(); // create with 2 partitions
    let mut input = String::new();
    let mut want = BTreeMap::new();
    for i in 0..40usize {
        let part = (i % 2) as i32;
        let key = format!("jk-{i}");
        let value = binary_value(i + 7);
        input.push_str(&format!(
            "{{\"key\":\"{}\",\"value\":\"{}\",\"partition\":{part},\"headers\":{{\"n\":\"{}\"}}}}\n",
            hex(key.as_bytes()),
            hex(&value),
            hex(&[i as u8])
        ));
        want.entry(part)
            .or_insert_with(Vec::new)
            .push((key.into_bytes(), value, vec![i as u8]));
    }
    let mut cmd = Command::new("node");
    cmd.arg(&peer).args([
        "produce",
        "--brokers",
        &broker.bootstrap(),
        "--topic",
        &topic,
    ]);
    let out = avro_edge_testkit::run_with_input(&mut cmd, input.as_bytes()).unwrap();
    assert!(out.status.success(), "kafkajs producer failed");

    let mut c = Consumer::connect(group_cfg(
        &broker.bootstrap(),
        &unique_topic("g-ours"),
        &topic,
    ))
    .unwrap();
    let got = poll_n(&mut c, 40, Duration::from_secs(60));
    assert_eq!(got.len(), 40);
    check_in_order(&got);
    let mut by_part: BTreeMap<i32, Vec<KeyValueHeader>> = BTreeMap::new();
    for r in &got {
        let h = r
            .headers
            .iter()
            .find(|(k, _)| k == "n")
            .and_then(|(_, v)| v.clone())
            .unwrap();
        by_part.entry(r.partition).or_default().push((
            r.key.clone().unwrap().to_vec(),
            r.value.clone().unwrap().to_vec(),
            h.to_vec(),
        ));
    }
    assert_eq!(
        by_part, want,
        "we read kafkajs's records byte for byte, in its order per partition"
    );
    c.close().unwrap();
}

#[test]
#[ignore = "needs a Kafka broker and the Node.js peers"]
fn mixed_group_with_a_kafkajs_member_splits_partitions_and_records() {
    let peer = node_peer();
    let broker = require_broker();
    let topic = unique_topic("interop-group");
    let p = producer(&broker.bootstrap(), 2);
    assert_eq!(p.partitions(&topic).unwrap(), 2);
    let group = unique_topic("g-mixed");

    let mut child = Command::new("node")
        .arg(&peer)
        .args([
            "consume",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--group",
            &group,
        ])
        .args(["--duration", "30", "--assigner", "roundrobin"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    // kafkajs joins first, alone.
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("kafkajs joined");
    assert_eq!(first["joined"], true);

    let mut cfg = group_cfg(&broker.bootstrap(), &group, &topic);
    cfg.assignor = Assignor::RoundRobin;
    let mut c = Consumer::connect(cfg).unwrap();
    let t = Instant::now();
    // Like any member, we keep polling (a rebalance needs every member to rejoin). tansu answers
    // a follower's early SyncGroup with REBALANCE_IN_PROGRESS, so the group may take a few rounds.
    let mut their_parts = serde_json::Value::Null;
    let mut theirs = BTreeSet::new();
    let mut mine = BTreeSet::new();
    let drain = |their_parts: &mut serde_json::Value, theirs: &mut BTreeSet<(i64, i64)>| {
        for v in rx.try_iter() {
            if v["joined"] == true {
                *their_parts = v["partitions"].clone();
            } else {
                theirs.insert((
                    v["partition"].as_i64().unwrap(),
                    v["offset"].as_i64().unwrap(),
                ));
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut stable_since: Option<(Instant, Option<(String, i32)>)> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "mixed group never settled: ours {:?}, kafkajs {their_parts}",
            c.assignment()
        );
        assert!(
            c.poll(Duration::from_millis(300)).unwrap().is_empty(),
            "nothing produced yet"
        );
        drain(&mut their_parts, &mut theirs);
        let settled =
            c.assignment().len() == 1 && their_parts.as_array().is_some_and(|a| a.len() == 1);
        let m = c.membership();
        match &stable_since {
            Some((since, generation)) if settled && *generation == m => {
                if since.elapsed() > Duration::from_secs(4) {
                    break;
                }
            }
            _ => stable_since = settled.then(|| (Instant::now(), m)),
        }
    }
    eprintln!(
        "mixed group settled in {:?}: ours {:?}, kafkajs {their_parts}",
        t.elapsed(),
        c.assignment()
    );
    let mine_part = c.assignment()[0].1 as i64;
    assert_eq!(
        their_parts,
        serde_json::json!([1 - mine_part]),
        "kafkajs got the other partition"
    );

    // Keyed records spread over both partitions; each member reads its own partition.
    let records: Vec<OutRecord> = (0..40)
        .map(|i| OutRecord {
            key: Some(format!("key-{i}").into_bytes()),
            value: vec![i as u8; 3],
            headers: vec![],
        })
        .collect();
    let sent: BTreeSet<(i64, i64)> = p
        .send_batch(&topic, &records)
        .into_iter()
        .map(|d| d.map(|d| (d.partition as i64, d.offset.unwrap())).unwrap())
        .collect();
    assert_eq!(
        sent.iter()
            .map(|(part, _)| *part)
            .collect::<BTreeSet<_>>()
            .len(),
        2
    );
    while child.try_wait().unwrap().is_none() {
        mine.extend(
            c.poll(Duration::from_millis(300))
                .unwrap()
                .iter()
                .map(|r| (r.partition as i64, r.offset)),
        );
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    drain(&mut their_parts, &mut theirs);
    assert!(status.success(), "kafkajs member failed");
    assert!(
        mine.iter().all(|(part, _)| *part == mine_part),
        "we read only our partition"
    );
    assert!(mine.is_disjoint(&theirs));
    assert_eq!(
        mine.union(&theirs).copied().collect::<BTreeSet<_>>(),
        sent,
        "every record read once by the group"
    );
    c.close().unwrap();
}

/// JSON equality where numbers compare by value: JavaScript writes the double 0.0 as `0`.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Fixture records (natural JSON) of one schema directory that kafkajs can encode (no longs
/// beyond 2^53): (name, input record, value expected after a round trip).
fn avro_fixtures(dir: &str) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    let path = avro_edge_testkit::root().join("fixtures/wire").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|f| {
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            if !meta["kafkajs_note"].is_null() {
                return None;
            }
            let want = if meta["decoded"].is_null() {
                meta["record"].clone()
            } else {
                meta["decoded"].clone()
            };
            Some((
                f.file_name().unwrap().to_string_lossy().into_owned(),
                meta["record"].clone(),
                want,
            ))
        })
        .collect()
}

#[test]
#[ignore = "needs a Kafka broker and the Node.js peers"]
fn avro_interop_with_kafkajs_through_the_registry() {
    use avro_edge::Codec;
    use avro_edge::TestRegistry;
    use avro_edge::open_source;
    let peer = node_peer();
    let broker = require_broker();
    let registry = TestRegistry::start();
    let subjects = [
        ("user-registration", "user-registration-value"),
        ("orders", "orders-value"),
        ("sensor-data", "sensor-data-value"),
    ];
    for (file, subject) in subjects {
        let text =
            std::fs::read_to_string(avro_edge_testkit::root().join(format!("schemas/{file}.avsc")))
                .unwrap();
        registry.register(subject, &text).unwrap();
    }
    let url = registry.url();
    let codec = Codec::new(open_source(std::slice::from_ref(&url), None).unwrap());

    // We encode and produce; kafkajs decodes through @kafkajs/confluent-schema-registry.
    let topic = unique_topic("avro-ours");
    let p = producer(&broker.bootstrap(), 1);
    let mut want_by_offset = BTreeMap::new();
    for (dir, subject) in subjects {
        for (name, record, want) in avro_fixtures(dir) {
            let value = codec
                .encode_json(subject, &record)
                .unwrap_or_else(|e| panic!("{dir}/{name}: {e}"));
            let d = p.send(&topic, None, &value).unwrap();
            want_by_offset.insert(d.offset.unwrap(), (format!("{dir}/{name}"), want));
        }
    }
    let out = Command::new("node")
        .arg(&peer)
        .args([
            "consume",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--registry",
            &url,
        ])
        .args([
            "--count",
            &want_by_offset.len().to_string(),
            "--timeout",
            "60",
            "--group",
            &unique_topic("g-js-avro"),
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "kafkajs consumer failed");
    let mut decoded_by_kafkajs = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["joined"] == true {
            continue;
        }
        let (name, want) = &want_by_offset[&v["offset"].as_i64().unwrap()];
        assert!(
            v["error"].is_null(),
            "kafkajs could not decode {name}: {}",
            v["error"]
        );
        assert!(
            same_json(&v["decoded"], want),
            "kafkajs decoded {name}: {} vs {want}",
            v["decoded"]
        );
        decoded_by_kafkajs += 1;
    }
    assert_eq!(decoded_by_kafkajs, want_by_offset.len());

    // kafkajs encodes and produces (latest schema of each subject); we decode through the registry.
    let topic = unique_topic("avro-theirs");
    assert_eq!(p.partitions(&topic).unwrap(), 1);
    let mut want_in_order = Vec::new();
    for (dir, subject) in subjects {
        // avsc takes JavaScript numbers only: records with NaN/infinities (strings in JSON) stay out.
        let special = |v: &serde_json::Value| {
            v.as_object().is_some_and(|o| {
                o.values()
                    .any(|x| matches!(x.as_str(), Some("NaN" | "Infinity" | "-Infinity")))
            })
        };
        let fixtures: Vec<_> = avro_fixtures(dir)
            .into_iter()
            .filter(|(_, r, _)| !special(r))
            .collect();
        let input: String = fixtures.iter().map(|(_, r, _)| format!("{r}\n")).collect();
        let mut cmd = Command::new("node");
        cmd.arg(&peer).args([
            "produce",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--registry",
            &url,
            "--subject",
            subject,
        ]);
        let out = avro_edge_testkit::run_with_input(&mut cmd, input.as_bytes()).unwrap();
        assert!(
            out.status.success(),
            "kafkajs producer failed for {subject}"
        );
        want_in_order.extend(
            fixtures
                .into_iter()
                .map(|(n, _, w)| (format!("{dir}/{n}"), w)),
        );
    }
    let mut cfg = ConsumerConfig::assign(&broker.bootstrap(), &[(&topic, 0)]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    let mut c = Consumer::connect(cfg).unwrap();
    let mut items = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while items.len() < want_in_order.len() && Instant::now() < deadline {
        items.extend(c.poll_items(Duration::from_millis(500), &codec).unwrap());
    }
    assert_eq!(items.len(), want_in_order.len());
    for (item, (name, want)) in items.iter().zip(&want_in_order) {
        match item {
            Item::Record { value, .. } => assert_eq!(value, want, "we decoded kafkajs's {name}"),
            Item::Undecodable { error, .. } => panic!("{name}: {error}"),
        }
    }
}

/// librdkafka writes a topic with `compression` (peers/python/produce_exact.py: 2 partitions,
/// its own partitioner); our group consumer reads every record byte-exact, once, in librdkafka's
/// send order per partition. Values are compressible (librdkafka sends a batch uncompressed when
/// compressing does not make it smaller) and distinct, so each names its index in the send order.
fn we_read_librdkafka(compression: &str) {
    let py = avro_edge_testkit::require_python("confluent_kafka");
    let script = avro_edge_testkit::root().join("peers/python/produce_exact.py");
    let broker = require_broker();
    let topic = unique_topic(&format!("rdkafka-theirs-{compression}"));
    producer(&broker.bootstrap(), 2).partitions(&topic).unwrap(); // create with 2 partitions
    let sent: Vec<(Option<Vec<u8>>, Vec<u8>)> = (0..600usize)
        .map(|i| {
            let key = (i % 5 != 0).then(|| format!("sensor-{:03}\u{0}\u{ff}", i % 17).into_bytes());
            let mut value = format!(
                "{{\"sensorId\":\"sensor-{:03}\",\"seq\":{i},\"status\":\"OK\",\"pad\":\"{}\"}}",
                i % 17,
                "x".repeat(i % 40)
            )
            .into_bytes();
            value.extend_from_slice(&[0, 0xff, i as u8, 0x80]);
            (key, value)
        })
        .collect();
    let input: String = sent
        .iter()
        .map(|(k, v)| format!("{} {}\n", k.as_deref().map_or("-".into(), hex), hex(v)))
        .collect();
    let mut cmd = Command::new(&py);
    cmd.arg(&script)
        .args([&broker.bootstrap(), &topic, compression])
        .stderr(Stdio::inherit());
    let out = avro_edge_testkit::run_with_input(&mut cmd, input.as_bytes()).unwrap();
    assert!(
        out.status.success(),
        "librdkafka producer failed ({compression})"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "acked 600");

    let mut c = Consumer::connect(group_cfg(
        &broker.bootstrap(),
        &unique_topic("g-ours"),
        &topic,
    ))
    .unwrap();
    let got = poll_n(&mut c, sent.len(), Duration::from_secs(60));
    c.close().unwrap();
    assert_eq!(
        got.len(),
        sent.len(),
        "every record librdkafka acked ({compression})"
    );
    check_in_order(&got);
    let index: BTreeMap<&[u8], usize> = sent
        .iter()
        .enumerate()
        .map(|(i, (_, v))| (v.as_slice(), i))
        .collect();
    let mut seen = BTreeSet::new();
    let mut last_by_part: BTreeMap<i32, usize> = BTreeMap::new();
    for r in &got {
        let value = r.value.as_deref().expect("no tombstones were sent");
        let &i = index
            .get(value)
            .unwrap_or_else(|| panic!("{compression}: unknown value {}", hex(value)));
        assert!(seen.insert(i), "{compression}: record {i} twice");
        assert_eq!(
            r.key.as_deref(),
            sent[i].0.as_deref(),
            "{compression}: record {i} key"
        );
        if let Some(prev) = last_by_part.insert(r.partition, i) {
            assert!(
                prev < i,
                "{compression}: partition {} keeps the send order",
                r.partition
            );
        }
    }
    eprintln!(
        "librdkafka producer ({compression}) -> avro-edge consumer: {} records byte-exact",
        got.len()
    );
}

#[test]
#[ignore = "needs a Kafka broker and the Python peers"]
fn we_read_librdkafka_lz4_byte_exact() {
    we_read_librdkafka("lz4");
}

#[test]
#[ignore = "needs a Kafka broker and the Python peers"]
fn we_read_librdkafka_zstd_byte_exact() {
    we_read_librdkafka("zstd");
}

#[test]
#[ignore = "needs a Kafka broker and the Python peers"]
fn we_read_librdkafka_gzip_and_snappy_byte_exact() {
    we_read_librdkafka("gzip");
    we_read_librdkafka("snappy");
}
