//! Clock sanity with the real `avro-edge forward` binary against a real Apache Kafka node: with the
//! (test-build-only) fake clock set to 1970 the forwarder spools every record but sends none, and
//! says so in its log and on `/metrics`; once the fake clock is moved to the present, the held
//! records go out by themselves, each with a present-day Kafka timestamp and its payload untouched.
//! `#[ignore]`d like the other broker tests (`scripts/test` runs it with `--include-ignored`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use avro_edge::{Codec, Consumer, ConsumerConfig, OfflineCache, OffsetReset};
use avro_edge_testkit::{metric, require_broker, unique_topic, wait_metric};

const BIN: &str = env!("CARGO_BIN_EXE_avro-edge");

fn fixtures() -> PathBuf {
    avro_edge_testkit::root().join("fixtures")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Write the fake clock atomically (the forwarder reads it on every look at the clock).
fn set_fake_now(file: &Path, ms: u64) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, ms.to_string()).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn spawn(dir: &Path, bootstrap: &str, topic: &str, metrics: &str, fake: &Path) -> Child {
    Command::new(BIN)
        .args(["forward", "--brokers", bootstrap, "--topic", topic])
        .args(["--subject", "sensor-data-value"])
        .arg("--schema-cache")
        .arg(fixtures().join("schema-cache"))
        .arg("--spool")
        .arg(dir.join("spool"))
        .arg("--dead-letter")
        .arg(dir.join("dead-letter.ndjson"))
        .args(["--metrics-listen", metrics])
        .args(["--set", "kafka.create_partitions=1"])
        .args(["--set", "kafka.linger_ms=2"])
        .args(["--drain-timeout-ms", "30000"])
        .env("AVRO_EDGE_FAKE_NOW_FILE", fake)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("forward.log")).unwrap())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "needs a Kafka broker"]
fn records_are_held_while_the_clock_is_in_1970_and_sent_once_it_is_sane() {
    let kafka = require_broker();
    let bootstrap = kafka.bootstrap();
    let dir = avro_edge_testkit::tmpdir("fwdclock");
    let log = dir.join("forward.log");
    let topic = unique_topic("clock");
    let fake = dir.join("fake-now");
    set_fake_now(&fake, 1_000); // 1970-01-01T00:00:01Z
    let addr = avro_edge_testkit::free_addr().unwrap();
    let mut child = spawn(&dir, &bootstrap, &topic, &addr, &fake);

    let n = 20u64;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"sensorId":"s-{}","timestamp":{},"temperature":{}.5,"humidity":40.25,"status":"NORMAL"}}"#,
                i % 3,
                1_000 + i, // the sensor's own time, also 1970: it must arrive untouched
                i % 40
            )
        })
        .collect();
    {
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all((lines.join("\n") + "\n").as_bytes())
            .unwrap();
        stdin.flush().unwrap();
    }

    // Spooled, held, and said so.
    wait_metric(
        &addr,
        "spooled_total",
        |v| v == n,
        Duration::from_secs(30),
        Some(&log),
    );
    wait_metric(
        &addr,
        "clock_insane",
        |v| v == 1,
        Duration::from_secs(10),
        Some(&log),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        metric(&addr, "sent_total"),
        Some(0),
        "nothing handed to the producer"
    );
    assert_eq!(metric(&addr, "acked_total"), Some(0));
    assert_eq!(metric(&addr, "clock_held_records"), Some(n));
    assert!(metric(&addr, "clock_lower_bound_seconds").unwrap() > 1_735_689_600);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("system clock is below its lower bound")
            && text.contains("clock=1970-01-01T00:00:01.000Z")
            && text.contains("lower_bound="),
        "{text}"
    );

    // NTP answers: the held records go out by themselves.
    let sane_at = now_ms();
    set_fake_now(&fake, sane_at);
    wait_metric(
        &addr,
        "acked_total",
        |v| v == n,
        Duration::from_secs(60),
        Some(&log),
    );
    wait_metric(
        &addr,
        "clock_insane",
        |v| v == 0,
        Duration::from_secs(5),
        Some(&log),
    );
    wait_metric(
        &addr,
        "clock_held_records",
        |v| v == 0,
        Duration::from_secs(5),
        Some(&log),
    );
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "forwarder exit {status}:\n{text}");
    assert!(text.contains("system clock is sane again"), "{text}");

    // Every record, once, with a sane Kafka timestamp and its own payload.
    let mut cfg = ConsumerConfig::assign(&bootstrap, &[(topic.as_str(), 0)]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    let mut c = Consumer::connect(cfg).unwrap();
    let codec = Codec::new(Arc::new(OfflineCache::new(fixtures().join("schema-cache"))));
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while (got.len() as u64) < n && Instant::now() < end {
        for r in c.poll(Duration::from_millis(300)).unwrap() {
            let v = codec.decode_json(r.value.as_deref().unwrap()).unwrap();
            got.push((r.timestamp, v["timestamp"].as_i64().unwrap()));
        }
    }
    let _ = c.close();
    assert_eq!(got.len() as u64, n, "{got:?}");
    let latest = now_ms() as i64;
    for (i, (kafka_ts, sensor_ts)) in got.iter().enumerate() {
        assert!(
            *kafka_ts >= sane_at as i64 && *kafka_ts <= latest,
            "record {i}: Kafka timestamp {kafka_ts} outside {sane_at}..={latest}"
        );
        assert_eq!(
            *sensor_ts,
            1_000 + i as i64,
            "the sensor's own field is untouched"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
