//! The real `avro-edge forward` binary against a real broker (the test kit's: Apache Kafka, or tansu with
//! `AVRO_EDGE_TEST_BROKER=tansu`), counting every
//! record by its unique id (sensorId + timestamp) on read-back: broker down at start, broker SIGKILLed and
//! restarted with its data kept, forwarder SIGKILLed and restarted on its spool, damaged spools, bad input lines,
//! an unreachable registry with a warm offline cache, and a record the broker refuses for good (too large)
//! and one it refuses until the clock is right (a timestamp too far ahead) between good ones. The tests are `#[ignore]`d (they need a Kafka broker);
//! with `cargo test -- --include-ignored` a missing broker fails them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use avro_edge::{Codec, OfflineCache};

use crate::forward_bin_support::{
    BIN, Fwd, PARTITIONS, check, fixtures, id_of_line, read_back, readings,
};
use avro_edge_testkit::{
    TestBroker, create_topic_with_configs, metric, require_broker, require_own_broker,
    unique_topic, wait_metric,
};
use base64::Engine as _;

fn tmpdir(tag: &str) -> PathBuf {
    avro_edge_testkit::tmpdir(&format!("fwdbroker-{tag}"))
}

/// (a) Broker down at start: 5,000 readings spooled, the broker started later: all arrive, in order.
#[test]
#[ignore = "needs a Kafka broker"]
fn broker_down_at_start_then_started() {
    let mut broker = require_own_broker();
    broker.kill();
    let dir = tmpdir("down-at-start");
    let topic = unique_topic("fwd-down");
    let lines = readings(5000, 7);
    let mut fwd = Fwd::spawn(&dir, &broker.bootstrap(), &topic, &[], false);
    fwd.feed(&lines);
    fwd.close_stdin();
    fwd.wait_log("stopping: draining the spool", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    broker.restart().unwrap();
    let log = fwd.wait_ok(Duration::from_secs(90));
    assert!(log.contains("acked=5000"), "all acked:\n{log}");
    let got = read_back(&broker.bootstrap(), &topic, 5000, Duration::from_secs(60));
    let ids: Vec<_> = lines.iter().map(|l| id_of_line(l)).collect();
    let t = check(&got, &ids, "broker-down-at-start");
    crate::forward_bin_support::print_row("broker down at forwarder start", 5000, &t, "");
    assert_eq!(t.delivered, 5000);
    assert_eq!(
        t.duplicates, 0,
        "a broker that never took anything cannot duplicate"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// (b) Broker SIGKILLed mid-stream and restarted with its data kept: nothing lost.
#[test]
#[ignore = "needs a Kafka broker"]
fn broker_killed_mid_stream_and_restarted_with_its_data() {
    let dir = tmpdir("broker-kill");
    let mut broker = require_own_broker();
    let topic = unique_topic("fwd-bkill");
    let lines = readings(5000, 5);
    let m = avro_edge_testkit::free_addr().unwrap();
    // The forwarder's own delivery timeout (60 s), longer than the broker's restart: a batch the broker
    // stored just before it died, whose answer was lost, is retried with its producer id and sequence and
    // recognised as a duplicate. With the test kit's 4 s the producer gives the batch up while the broker
    // is down, and the forwarder's resend is a new batch (500 duplicates, seen once).
    let mut fwd = Fwd::spawn(
        &dir,
        &broker.bootstrap(),
        &topic,
        &[
            "--metrics-listen",
            &m,
            "--set",
            "kafka.delivery_timeout_ms=60000",
        ],
        false,
    );
    for chunk in lines[..2000].chunks(200) {
        fwd.feed(chunk);
        std::thread::sleep(Duration::from_millis(30));
    }
    let acked_before = wait_metric(&m, "acked_total", |v| v > 0, Duration::from_secs(30), None);
    broker.kill();
    for chunk in lines[2000..3500].chunks(300) {
        fwd.feed(chunk);
        std::thread::sleep(Duration::from_millis(30));
    }
    wait_metric(
        &m,
        "spooled_total",
        |v| v == 3500,
        Duration::from_secs(30),
        None,
    );
    std::thread::sleep(Duration::from_millis(700));
    let acked_down = metric(&m, "acked_total").unwrap_or(0);
    eprintln!(
        "broker-killed: acked {acked_before} before the kill, {acked_down} of 3500 spooled while down"
    );
    assert!(
        acked_down < 3500,
        "records were waiting for the broker when it came back"
    );
    broker.restart().unwrap();
    fwd.feed(&lines[3500..]);
    fwd.close_stdin();
    let log = fwd.wait_ok(Duration::from_secs(120));
    eprintln!("broker-killed: {}", log.lines().last().unwrap_or(""));
    let got = read_back(&broker.bootstrap(), &topic, 5000, Duration::from_secs(60));
    let ids: Vec<_> = lines.iter().map(|l| id_of_line(l)).collect();
    let t = check(&got, &ids, "broker-killed");
    crate::forward_bin_support::print_row("broker SIGKILLed mid-stream, restarted", 5000, &t, "");
    assert_eq!(t.delivered, 5000);
    // The idempotent producer: a produce request the broker appended just before it died, whose answer
    // was lost, is sent again with the same sequence and not stored twice.
    assert_eq!(t.duplicates, 0, "broker-killed: duplicates");
    let _ = std::fs::remove_dir_all(&dir);
}

/// (c) Forwarder SIGKILLed with records spooled but not acknowledged (the broker was down for the second
/// half), restarted on the same spool with no new input: all arrive.
#[test]
#[ignore = "needs a Kafka broker"]
fn forwarder_killed_mid_stream_and_restarted_on_its_spool() {
    let dir = tmpdir("fwd-kill");
    let mut broker = require_own_broker();
    let topic = unique_topic("fwd-fkill");
    let lines = readings(5000, 5);
    let mut fwd = Fwd::spawn(&dir, &broker.bootstrap(), &topic, &[], false);
    fwd.feed(&lines[..2500]);
    std::thread::sleep(Duration::from_millis(1500));
    broker.kill();
    fwd.feed(&lines[2500..]);
    fwd.close_stdin();
    fwd.wait_log("stopping: draining the spool", Duration::from_secs(30));
    fwd.sigkill();
    // The records are in the spool, not acknowledged.
    let out = Command::new(BIN)
        .args(["spool", "status"])
        .arg(dir.join("spool"))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{status}");
    assert!(
        out.status.success(),
        "spool status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // At least the second half (fed while the broker was down) is unacknowledged; at most all of it.
    let unacked: usize = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("records (unacked)"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 'records (unacked) N' line in:\n{status}"));
    assert!(
        (2500..=5000).contains(&unacked),
        "{unacked} unacked:\n{status}"
    );
    // Sent before the kill but not acknowledged: what the restart sends again.
    let resent: usize = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("possible duplicates"))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no 'possible duplicates N' line in:\n{status}"));

    broker.restart().unwrap();
    let fwd = Fwd::spawn(&dir, &broker.bootstrap(), &topic, &[], true);
    let log = fwd.wait_ok(Duration::from_secs(120));
    assert!(log.contains("spool_records=0"), "{log}");
    let got = read_back(&broker.bootstrap(), &topic, 5000, Duration::from_secs(60));
    let ids: Vec<_> = lines.iter().map(|l| id_of_line(l)).collect();
    let t = check(&got, &ids, "forwarder-killed");
    let note = format!("{resent} records sent before the kill, unacknowledged, resent");
    crate::forward_bin_support::print_row(
        "forwarder SIGKILLed, restarted on its spool",
        5000,
        &t,
        &note,
    );
    assert_eq!(t.delivered, 5000);
    // Only what was sent but not yet acknowledged when the forwarder died is sent again: at most one
    // send window (the sender's batch_records, 500 by default); no more of them stored twice.
    assert!(
        resent <= 500,
        "forwarder-killed: {resent} resent, more than one send window"
    );
    assert!(
        t.duplicates <= resent,
        "forwarder-killed: {} duplicates, {resent} resent",
        t.duplicates
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Spool `n` readings with the broker down and stop (drain time short): returns the lines.
fn spool_offline(dir: &Path, broker: &TestBroker, topic: &str, lines: &[String]) {
    let mut fwd = Fwd::spawn(
        dir,
        &broker.bootstrap(),
        topic,
        &["--set", "drain_timeout_ms=300"],
        false,
    );
    fwd.feed(lines);
    fwd.close_stdin();
    let log = fwd.wait_ok(Duration::from_secs(60));
    assert!(log.contains(&format!("spooled={}", lines.len())), "{log}");
}

/// (d) A spool whose last record is torn, and one with a flipped byte: start succeeds, the damage is
/// reported, every earlier record is delivered.
#[test]
#[ignore = "needs a Kafka broker"]
fn damaged_spools_start_and_deliver_every_earlier_record() {
    let mut broker = require_own_broker();
    broker.kill();
    let lines = readings(200, 4);
    let ids: Vec<_> = lines.iter().map(|l| id_of_line(l)).collect();

    // Torn tail: the last record loses its last 5 bytes.
    let torn = tmpdir("torn");
    let torn_topic = unique_topic("fwd-torn");
    spool_offline(&torn, &broker, &torn_topic, &lines);
    let segs = crate::spool_support::segments(&torn.join("spool"));
    let last = segs.last().expect("a segment").clone();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    // Flipped byte: one byte in the middle of the first segment's records.
    let flip = tmpdir("flip");
    let flip_topic = unique_topic("fwd-flip");
    spool_offline(&flip, &broker, &flip_topic, &lines);
    let first = crate::spool_support::segments(&flip.join("spool"))
        .first()
        .expect("a segment")
        .clone();
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();

    broker.restart().unwrap();
    let log = Fwd::spawn(&torn, &broker.bootstrap(), &torn_topic, &[], true)
        .wait_ok(Duration::from_secs(60));
    assert!(
        log.contains("torn or corrupt tail"),
        "torn tail reported:\n{log}"
    );
    let got = read_back(
        &broker.bootstrap(),
        &torn_topic,
        199,
        Duration::from_secs(30),
    );
    let t = check(&got, &ids[..199], "torn-tail");
    crate::forward_bin_support::print_row("torn spool tail", 200, &t, "the torn record is dropped");
    assert_eq!(t.delivered, 199, "every record before the torn one");
    assert_eq!(t.duplicates, 0, "torn-tail: nothing was sent before");

    let log = Fwd::spawn(&flip, &broker.bootstrap(), &flip_topic, &[], true)
        .wait_ok(Duration::from_secs(60));
    assert!(log.contains("corrupt"), "corruption reported:\n{log}");
    // 199 can arrive (one record is damaged); read_back goes on a second past the 199th, so a 200th
    // (the damaged one delivered after all) would still be seen.
    let got = read_back(
        &broker.bootstrap(),
        &flip_topic,
        199,
        Duration::from_secs(15),
    );
    // Exactly the damaged record is missing: every earlier one (and every later one) is delivered.
    let delivered: HashSet<&(String, i64)> = got.iter().map(|g| &g.id).collect();
    let missing: Vec<usize> = (0..ids.len())
        .filter(|i| !delivered.contains(&ids[*i]))
        .collect();
    eprintln!(
        "flipped-byte: {} of 200 delivered, missing #{missing:?}",
        delivered.len()
    );
    assert_eq!(missing.len(), 1, "one damaged record, reported and skipped");
    let kept: Vec<_> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != missing[0])
        .map(|(_, id)| id.clone())
        .collect();
    let t = check(&got, &kept, "flipped-byte");
    assert_eq!((t.delivered, t.duplicates), (199, 0));
    let _ = std::fs::remove_dir_all(&torn);
    let _ = std::fs::remove_dir_all(&flip);
}

/// (e) 1,000 lines, 100 of them bad: 900 delivered, 100 in the dead-letter file with their reasons.
#[test]
#[ignore = "needs a Kafka broker"]
fn bad_lines_go_to_the_dead_letter_file() {
    let broker = require_broker();
    let dir = tmpdir("bad-lines");
    let topic = unique_topic("fwd-bad");
    let good = readings(900, 6);
    let mut lines = Vec::new();
    let mut bad: HashMap<String, &str> = HashMap::new();
    for (i, g) in good.iter().enumerate() {
        lines.push(g.clone());
        if i % 9 == 8 {
            let n = bad.len();
            let (line, kind) = match n % 4 {
                0 => (format!("not json {n}"), "not-json"),
                1 => (
                    format!(
                        r#"{{"sensorId":"b-{n}","temperature":1.0,"humidity":2.0,"status":"NORMAL"}}"#
                    ),
                    "missing-field",
                ),
                2 => (
                    format!(
                        r#"{{"sensorId":"b-{n}","timestamp":"soon","temperature":1.0,"humidity":2.0,"status":"NORMAL"}}"#
                    ),
                    "wrong-type",
                ),
                _ => (
                    format!(
                        r#"{{"sensorId":"b-{n}","timestamp":1,"temperature":1.0,"humidity":2.0,"status":"EXPLODED"}}"#
                    ),
                    "unknown-enum-symbol",
                ),
            };
            lines.push(line.clone());
            bad.insert(line, kind);
        }
    }
    assert_eq!((lines.len(), bad.len()), (1000, 100));
    let mut fwd = Fwd::spawn(&dir, &broker.bootstrap(), &topic, &[], false);
    fwd.feed(&lines);
    fwd.close_stdin();
    let log = fwd.wait_ok(Duration::from_secs(60));
    assert!(log.contains("dead_lettered=100"), "{log}");
    let dead = std::fs::read_to_string(dir.join("dead-letter.ndjson")).unwrap();
    let mut seen = 0;
    for l in dead.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let line = v["line"].as_str().unwrap();
        let want = bad
            .get(line)
            .unwrap_or_else(|| panic!("not a bad line: {line}"));
        assert_eq!(v["reason"]["kind"].as_str(), Some(*want), "{l}");
        assert!(!v["reason"]["message"].as_str().unwrap_or("").is_empty());
        assert_eq!(v["input"].as_str(), Some("stdin"));
        seen += 1;
    }
    assert_eq!(seen, 100, "one dead-letter line per bad line");
    let got = read_back(&broker.bootstrap(), &topic, 900, Duration::from_secs(30));
    let ids: Vec<_> = good.iter().map(|l| id_of_line(l)).collect();
    let t = check(&got, &ids, "bad-lines");
    assert_eq!((t.delivered, t.duplicates), (900, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// (f) The registry is unreachable at start (a closed port) and the offline cache is warm (but past its
/// TTL, so the registry is tried first): forwarding works from the cache.
#[test]
#[ignore = "needs a Kafka broker"]
fn registry_unreachable_with_a_warm_offline_cache() {
    let broker = require_broker();
    let dir = tmpdir("registry-down");
    let cache = dir.join("cache");
    for sub in ["ids", "subjects"] {
        std::fs::create_dir_all(cache.join(sub)).unwrap();
        for e in std::fs::read_dir(fixtures().join("schema-cache").join(sub)).unwrap() {
            let e = e.unwrap();
            let to = cache.join(sub).join(e.file_name());
            std::fs::copy(e.path(), &to).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&to)
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(86_400))
                .unwrap();
        }
    }
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let topic = unique_topic("fwd-noreg");
    let lines = readings(300, 3);
    let url = format!("http://{closed}");
    let cache_s = cache.display().to_string();
    let mut fwd = Fwd::spawn(
        &dir,
        &broker.bootstrap(),
        &topic,
        &["--registry", &url, "--schema-cache", &cache_s],
        false,
    );
    fwd.feed(&lines);
    fwd.close_stdin();
    let log = fwd.wait_ok(Duration::from_secs(60));
    assert!(log.contains("using the offline schema cache"), "{log}");
    assert!(log.contains("acked=300"), "{log}");
    let got = read_back(&broker.bootstrap(), &topic, 300, Duration::from_secs(30));
    let ids: Vec<_> = lines.iter().map(|l| id_of_line(l)).collect();
    let t = check(&got, &ids, "registry-unreachable");
    assert_eq!((t.delivered, t.duplicates), (300, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reading whose sensorId is 100,000 pseudo-random letters (incompressible): over a topic's
/// `max.message.bytes` of 64 KiB.
fn oversized_reading() -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let id: String = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    format!(
        r#"{{"sensorId":"big-{id}","timestamp":1764028900000,"temperature":1.5,"humidity":40.25,"status":"NORMAL"}}"#
    )
}

/// (g) Records the broker refuses, between good ones: one over the topic's `max.message.bytes` (in the
/// same stream as good ones) goes to the dead-letter file with the broker's reason and is counted on
/// `/metrics`; one stamped two days ahead (the forwarder's test-build clock is faked forward while it
/// is sent) on a topic that takes timestamps at most a minute ahead is refused as
/// `clock-ahead-of-broker`, kept in the spool, and delivered once the clock is right again. Every
/// other record is delivered once, in order per key, and the forwarder goes on.
#[test]
#[ignore = "needs a Kafka broker"]
fn a_record_refused_for_good_is_dead_lettered_and_one_refused_for_our_clock_waits_for_it() {
    let broker = require_broker();
    let bootstrap = broker.bootstrap();
    let dir = tmpdir("refused");
    let topic = unique_topic("fwd-refused");
    create_topic_with_configs(
        &bootstrap,
        &topic,
        PARTITIONS,
        &[
            ("max.message.bytes", "65536"),
            ("message.timestamp.after.max.ms", "60000"),
        ],
    )
    .unwrap();
    let good = readings(600, 6);
    let big = oversized_reading();
    let future = r#"{"sensorId":"s-future","timestamp":1764028900001,"temperature":2.5,"humidity":40.25,"status":"NORMAL"}"#.to_string();
    let fake_now = dir.join("fake-now");
    let m = avro_edge_testkit::free_addr().unwrap();
    let mut fwd = Fwd::spawn_env(
        &dir,
        &bootstrap,
        &topic,
        &["--metrics-listen", &m],
        false,
        &[("AVRO_EDGE_FAKE_NOW_FILE", &fake_now)],
    );
    let log = fwd.log.clone();
    let refused = |kind: &str| format!("forward_dead_lettered_total{{kind=\"{kind}\"}}");
    fwd.feed(&good[..200]);
    fwd.feed(std::slice::from_ref(&big));
    fwd.feed(&good[200..400]);
    let limit = Duration::from_secs(60);
    wait_metric(
        &m,
        &refused("message-too-large"),
        |v| v == 1,
        limit,
        Some(&log),
    );
    wait_metric(&m, "acked_total", |v| v == 400, limit, Some(&log));
    // Two days ahead while the next record is sent; back to the real clock once it was refused: it
    // stays in the spool meanwhile, then goes.
    let ahead = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 2 * 86_400_000;
    let tmp = fake_now.with_extension("tmp");
    std::fs::write(&tmp, ahead.to_string()).unwrap();
    std::fs::rename(&tmp, &fake_now).unwrap();
    fwd.feed(std::slice::from_ref(&future));
    let ahead = r#"forward_refusals_total{kind="clock-ahead-of-broker"}"#;
    wait_metric(&m, ahead, |v| v >= 1, limit, Some(&log));
    let held = r#"forward_held_records{reason="clock-ahead-of-broker"}"#;
    wait_metric(&m, held, |v| v >= 1, limit, Some(&log));
    std::fs::remove_file(&fake_now).unwrap();
    wait_metric(&m, "acked_total", |v| v == 401, limit, Some(&log));
    fwd.feed(&good[400..]);
    fwd.close_stdin();
    let log = fwd.wait_ok(Duration::from_secs(60));
    eprintln!("refused: {}", log.lines().last().unwrap_or(""));
    assert!(log.contains("acked=601"), "{log}");
    assert!(log.contains("forward_dead_lettered=1"), "{log}");

    let codec = Codec::new(Arc::new(OfflineCache::new(fixtures().join("schema-cache"))));
    let dead = std::fs::read_to_string(dir.join("dead-letter.ndjson")).unwrap();
    let mut reasons = BTreeMap::new();
    for l in dead.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["topic"].as_str(), Some(topic.as_str()), "{l}");
        // The broker's refusal has its own error kind, the same name as the rejection.
        assert_eq!(v["reason"]["kind"], v["reason"]["rejection"], "{l}");
        let value = base64::engine::general_purpose::STANDARD
            .decode(v["value_base64"].as_str().unwrap())
            .unwrap();
        let record = codec
            .decode_json(&value)
            .expect("the refused record decodes");
        let id = record["sensorId"]
            .as_str()
            .unwrap()
            .chars()
            .take(6)
            .collect::<String>();
        let rejection = v["reason"]["rejection"].as_str().unwrap().to_string();
        eprintln!("refused: {rejection}: {}", v["reason"]["message"]);
        reasons.insert(rejection, id);
    }
    assert_eq!(
        reasons,
        BTreeMap::from([("message-too-large".to_string(), big[13..19].to_string())]),
        "{dead}"
    );
    // `spool status` shows the refused records from the stopped forwarder's counters.
    let out = Command::new(BIN)
        .args(["spool", "status"])
        .arg(dir.join("spool"))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        status.contains("refused by the broker message-too-large 1 (dead-lettered")
            && status.contains("refusals              clock-ahead-of-broker "),
        "{status}"
    );
    let got = read_back(&bootstrap, &topic, 601, Duration::from_secs(60));
    let mut ids: Vec<_> = good.iter().map(|l| id_of_line(l)).collect();
    ids.push(id_of_line(&future));
    let t = check(&got, &ids, "refused-for-good");
    assert_eq!((t.delivered, t.duplicates), (601, 0));
    let _ = std::fs::remove_dir_all(&dir);
}
