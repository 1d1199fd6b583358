//! `avro-edge consume` against a real broker (the test kit's): every recorded fixture message (written by
//! confluent-kafka and kafkajs serializers) comes out as its natural JSON, and every bad payload
//! lands in the dead-letter file with its coordinates, raw bytes and error kind, without stopping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use avro_edge::TopicSpec;
use avro_edge::{Producer, ProducerConfig};
use avro_edge_testkit::{require_broker, root, unique_topic};
use base64::Engine as _;

/// What reading one produced message must give.
#[derive(Debug)]
enum Expect {
    Json(serde_json::Value),
    DeadLetter(String),
}

/// One fixture message: (file name, bytes, expectation).
type Case = (String, Vec<u8>, Expect);

/// The fixture messages in a fixed order.
fn fixtures() -> Vec<Case> {
    let mut out = Vec::new();
    for dir in [
        "user-registration",
        "orders",
        "sensor-data",
        "sensor-data-v2",
        "invalid",
    ] {
        let path = root().join("fixtures/wire").join(dir);
        let mut bins: Vec<PathBuf> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        bins.sort();
        for bin in bins {
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(bin.with_extension("json")).unwrap())
                    .unwrap();
            let expect = match meta["expect"].as_str() {
                Some("valid") | None => {
                    let v = if meta["decoded"].is_null() {
                        &meta["record"]
                    } else {
                        &meta["decoded"]
                    };
                    Expect::Json(v.clone())
                }
                Some(kind) => Expect::DeadLetter(kind.to_string()),
            };
            let name = format!("{dir}/{}", bin.file_name().unwrap().to_string_lossy());
            out.push((name, std::fs::read(&bin).unwrap(), expect));
        }
    }
    out
}

/// An offline schema cache with ids 1-4 as the fixtures' registry assigned them.
fn schema_cache(dir: &Path) {
    std::fs::create_dir_all(dir.join("ids")).unwrap();
    std::fs::create_dir_all(dir.join("subjects")).unwrap();
    for (id, file) in [
        (1, "user-registration"),
        (2, "orders"),
        (3, "sensor-data"),
        (4, "sensor-data-v2"),
    ] {
        let text = std::fs::read_to_string(root().join(format!("schemas/{file}.avsc"))).unwrap();
        std::fs::write(dir.join(format!("ids/{id}.avsc")), text).unwrap();
    }
}

/// A producer that creates its topics with one partition (so offsets follow the order sent).
fn producer(bootstrap: &str) -> Producer {
    let mut pcfg = ProducerConfig::new([bootstrap]);
    pcfg.auto_create = Some(TopicSpec {
        partitions: 1,
        replication: 1,
    });
    Producer::connect(pcfg).unwrap()
}

#[test]
#[ignore = "needs a Kafka broker"]
fn consume_cli_decodes_every_fixture_and_dead_letters_the_bad_ones() {
    let broker = require_broker();
    let dir = avro_edge_testkit::tmpdir("consume-cli");
    let cache = dir.join("cache");
    schema_cache(&cache);
    let dead_letter = dir.join("dead.jsonl");

    let topic = unique_topic("cli-fixtures");
    let p = producer(&broker.bootstrap());
    let cases = fixtures();
    let mut by_offset: BTreeMap<i64, &Case> = BTreeMap::new();
    for case in &cases {
        let d = p.send(&topic, Some(case.0.as_bytes()), &case.1).unwrap();
        by_offset.insert(d.offset.unwrap(), case);
    }
    p.close().unwrap();

    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_avro-edge"))
        .args([
            "consume",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
        ])
        .args([
            "--group",
            &unique_topic("g-cli"),
            "--from-beginning",
            "--timeout",
            "4",
        ])
        // The consumer's memory bounds under their Kafka names: small, so several fetches and
        // polls are needed, and every message still comes out.
        .args([
            "-X",
            "fetch.max.bytes=2KiB",
            "-X",
            "max.partition.fetch.bytes=1KiB",
            "-X",
            "max.poll.records=3",
        ])
        .arg("--schema-cache")
        .arg(&cache)
        .arg("--dead-letter")
        .arg(&dead_letter)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("consume took {:?}; stderr:\n{stderr}", t.elapsed());
    assert!(out.status.success(), "exit {:?}", out.status.code());

    // stdout: one natural-JSON line per decodable message, in offset order.
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: Vec<(&str, &serde_json::Value)> = by_offset
        .values()
        .filter_map(|(name, _, e)| match e {
            Expect::Json(v) => Some((name.as_str(), v)),
            Expect::DeadLetter(_) => None,
        })
        .collect();
    assert_eq!(lines.len(), want.len(), "one line per decodable message");
    for (got, (name, want)) in lines.iter().zip(&want) {
        assert_eq!(got, *want, "{name}");
    }

    // dead-letter file: every bad payload, with coordinates, raw bytes and the error kind.
    let dl: Vec<serde_json::Value> = std::fs::read_to_string(&dead_letter)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want_dl: Vec<(i64, &Case)> = by_offset
        .iter()
        .filter(|(_, c)| matches!(c.2, Expect::DeadLetter(_)))
        .map(|(o, c)| (*o, *c))
        .collect();
    assert_eq!(dl.len(), want_dl.len(), "one dead letter per bad payload");
    for (line, (offset, (name, bytes, expect))) in dl.iter().zip(&want_dl) {
        let Expect::DeadLetter(kind) = expect else {
            unreachable!()
        };
        assert_eq!(line["topic"], topic.as_str(), "{name}");
        assert_eq!(line["partition"], 0, "{name}");
        assert_eq!(line["offset"].as_i64(), Some(*offset), "{name}");
        assert_eq!(
            line["error_kind"].as_str(),
            Some(kind.as_str()),
            "{name}: {line}"
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(line["raw_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(&raw, bytes, "{name}: raw bytes kept exactly");
        let key = base64::engine::general_purpose::STANDARD
            .decode(line["key_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(key, name.as_bytes());
    }
    assert!(
        stderr.contains(&format!("{} undecodable", want_dl.len())),
        "summary on stderr"
    );

    // --max stops early and leaves the rest for the group's next reader.
    let group = unique_topic("g-cli-max");
    let run = |max: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_avro-edge"))
            .args([
                "consume",
                "--brokers",
                &broker.bootstrap(),
                "--topic",
                &topic,
                "--group",
                &group,
            ])
            .args(["--from-beginning", "--timeout", "4", "--max", max])
            .arg("--schema-cache")
            .arg(&cache)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().lines().count()
    };
    let first = run("5");
    let second = run("1000");
    assert_eq!(first, 5, "the first five are decodable fixtures");
    assert_eq!(
        first + second,
        want.len(),
        "nothing skipped, nothing repeated across --max runs"
    );
}

/// librdkafka's consumer properties reach the consumer through `-X`: `auto.offset.reset=earliest`
/// (without `--from-beginning`) reads a new group's topic from its first record, and with
/// `enable.auto.commit=false` nothing is committed, so the same group reads it all again; the other
/// consumer properties are taken alongside. With auto-commit on, the next run reads nothing.
#[test]
#[ignore = "needs a Kafka broker"]
fn consume_cli_takes_librdkafkas_consumer_properties() {
    let broker = require_broker();
    let dir = avro_edge_testkit::tmpdir("consume-cli-props");
    let cache = dir.join("cache");
    schema_cache(&cache);
    let topic = unique_topic("cli-props");
    let p = producer(&broker.bootstrap());
    let valid: Vec<Case> = fixtures()
        .into_iter()
        .filter(|c| matches!(c.2, Expect::Json(_)))
        .take(6)
        .collect();
    for case in &valid {
        p.send(&topic, Some(case.0.as_bytes()), &case.1).unwrap();
    }
    p.close().unwrap();
    let group = unique_topic("g-cli-props");
    let run = |properties: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_avro-edge"));
        cmd.args(["consume", "--brokers", &broker.bootstrap()])
            .args(["--topic", &topic, "--group", &group, "--timeout", "4"])
            .arg("--schema-cache")
            .arg(&cache);
        for p in properties {
            cmd.args(["-X", p]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{properties:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap().lines().count()
    };
    let no_commit = [
        "auto.offset.reset=earliest",
        "enable.auto.commit=false",
        "auto.commit.interval.ms=1000",
        "session.timeout.ms=12000",
        "heartbeat.interval.ms=1000",
        "max.poll.interval.ms=20000",
        "isolation.level=read_committed",
        "client.rack=rack-a",
    ];
    assert_eq!(
        run(&no_commit),
        valid.len(),
        "earliest: from the first record"
    );
    assert_eq!(
        run(&no_commit),
        valid.len(),
        "nothing was committed: the group starts from the first record again"
    );
    assert_eq!(
        run(&["auto.offset.reset=earliest"]),
        valid.len(),
        "still nothing committed"
    );
    assert_eq!(
        run(&["auto.offset.reset=earliest"]),
        0,
        "auto-commit on (the default): the last run committed its position"
    );
}
