//! The forwarder end to end with a checking encoder and an in-memory sink: every record counted by a
//! unique id (its `timestamp`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::forward_support::{SensorEncoder, VecSink, good_line, id_of};
use crate::spool_support::TempDir;
use avro_edge::forwarder::Config;
use avro_edge::forwarder::{self, Snapshot};

fn config(dir: &TempDir, extra: &[(&str, &str)]) -> Config {
    let spool = dir.join("spool").display().to_string();
    let dead = dir.join("dead-letter.ndjson").display().to_string();
    let mut flags: Vec<(String, String)> = vec![
        ("spool.dir".into(), spool),
        ("dead_letter".into(), dead),
        ("drain_timeout_ms".into(), "5000".into()),
        ("spool.fsync".into(), "never".into()),
        ("kafka.batch_records".into(), "64".into()),
    ];
    flags.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load(None, Vec::new(), &flags).unwrap()
}

fn stdin_of(text: String) -> Box<dyn std::io::BufRead + Send> {
    Box::new(Cursor::new(text.into_bytes()))
}

fn run_stdin(cfg: &Config, text: String, sink: VecSink) -> Snapshot {
    forwarder::run(
        cfg,
        SensorEncoder,
        sink,
        stdin_of(text),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap()
}

/// Per key, the ids in delivery order must be increasing (duplicates allowed only as resends).
fn assert_ordered_per_key(got: &[crate::forward_support::Got]) {
    let mut last: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for g in got {
        let id = id_of(&g.value);
        let k = g.key.clone().unwrap();
        if let Some(prev) = last.insert(k, id) {
            assert!(id > prev, "out of order for a key: {prev} then {id}");
        }
    }
}

#[test]
fn thousand_lines_with_a_hundred_bad_ones() {
    let dir = TempDir::new("fwd-1000");
    let cfg = config(&dir, &[]);
    let mut text = String::new();
    let mut bad = 0;
    for i in 0..1000u64 {
        let line = match i % 10 {
            3 => match (i / 10) % 5 {
                0 => format!("not json {i}"),
                1 => format!(r#"{{"sensorId":"s","timestamp":{i},"status":"NORMAL"}}"#)
                    .replace(r#""sensorId":"s","#, ""),
                2 => format!(r#"{{"sensorId":"s","timestamp":"{i}","status":"NORMAL"}}"#),
                3 => format!(r#"{{"sensorId":"s","timestamp":{i},"status":"ON_FIRE"}}"#),
                _ => format!(r#"{{"sensorId":"s","timestamp":1e30,"status":"NORMAL","n":{i}}}"#),
            },
            _ => good_line(i),
        };
        if i % 10 == 3 {
            bad += 1;
        }
        text.push_str(&line);
        text.push('\n');
    }
    assert_eq!(bad, 100);
    let sink = VecSink::default();
    let snap = run_stdin(&cfg, text, sink.clone());
    let got = sink.delivered();
    let ids: Vec<u64> = got.iter().map(|g| id_of(&g.value)).collect();
    assert_eq!(ids, (0..1000).filter(|i| i % 10 != 3).collect::<Vec<_>>());
    assert!(got.iter().all(|g| g.topic == "sensor-data"));
    assert_eq!(got[0].key.as_deref(), Some(&b"sensor-0"[..]));
    assert_eq!(
        (snap.received, snap.spooled, snap.acked, snap.dead_lettered),
        (1000, 900, 900, 100)
    );
    assert_eq!((snap.spool_records, snap.dropped), (0, 0));

    let dl = std::fs::read_to_string(dir.join("dead-letter.ndjson")).unwrap();
    let entries: Vec<serde_json::Value> = dl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 100);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entries {
        *kinds
            .entry(e["reason"]["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
        assert_eq!(e["input"], "stdin");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
        assert!(!e["reason"]["message"].as_str().unwrap().is_empty());
    }
    let expect: BTreeMap<String, usize> = [
        ("not-json", 20),
        ("missing-field", 20),
        ("wrong-type", 20),
        ("unknown-enum-symbol", 20),
        ("int-out-of-range", 20),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(kinds, expect);
    assert!(
        entries
            .iter()
            .any(|e| e["line"].as_str().unwrap().starts_with("not json"))
    );
    // The stopped forwarder left its counters for `spool status`.
    let saved = Snapshot::load(&dir.join("spool")).unwrap();
    assert_eq!(saved.acked, 900);
}

#[test]
fn sink_failures_are_retried_in_order_and_partial_acks_resend_the_rest() {
    let dir = TempDir::new("fwd-retry");
    let cfg = config(&dir, &[]);
    let text: String = (0..500u64).map(|i| good_line(i) + "\n").collect();
    let sink = VecSink::default();
    sink.fail_batches.store(3, Ordering::SeqCst);
    *sink.fail_after.lock().unwrap() = None;
    let s2 = sink.clone();
    // After the three failures, one call acknowledges only part of its batch.
    let snap = {
        let t = std::thread::spawn(move || {
            while s2.calls.load(Ordering::SeqCst) < 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
            *s2.fail_after.lock().unwrap() = Some(10);
        });
        let snap = run_stdin(&cfg, text, sink.clone());
        t.join().unwrap();
        snap
    };
    let got = sink.delivered();
    let ids: BTreeSet<u64> = got.iter().map(|g| id_of(&g.value)).collect();
    assert_eq!(
        ids,
        (0..500).collect::<BTreeSet<_>>(),
        "every record arrives"
    );
    assert_eq!(
        got.len(),
        500,
        "the sink only stores what it acknowledged, so no duplicates here"
    );
    assert_ordered_per_key(&got);
    assert!(snap.retried > 0);
    assert_eq!(snap.acked, 500);
    assert_eq!(snap.last_error.as_ref().unwrap().kind, "broker-unreachable");
}

#[test]
fn unsent_records_stay_in_the_spool_and_go_out_on_the_next_run() {
    let dir = TempDir::new("fwd-restart");
    let cfg = config(&dir, &[("drain_timeout_ms", "300")]);
    let text: String = (0..200u64).map(|i| good_line(i) + "\n").collect();
    let down = VecSink::default();
    down.fail_batches.store(usize::MAX, Ordering::SeqCst);
    let snap = run_stdin(&cfg, text, down.clone());
    assert_eq!(snap.spooled, 200);
    assert_eq!(snap.acked, 0);
    assert_eq!(snap.spool_records, 200);
    assert!(down.delivered().is_empty());

    let up = VecSink::default();
    let snap = run_stdin(&cfg, String::new(), up.clone());
    let ids: Vec<u64> = up.delivered().iter().map(|g| id_of(&g.value)).collect();
    assert_eq!(ids, (0..200).collect::<Vec<_>>());
    assert_eq!(snap.spool_records, 0);
    // The failing sink was only ever shown the first batch (64 records, retried with backoff): those are
    // counted as possible duplicates on the next run, never silently; the other 136 were never sent.
    assert_eq!(snap.possible_duplicates, 64);
}

#[test]
fn stop_flag_drains_and_returns() {
    let dir = TempDir::new("fwd-stop");
    let cfg = config(&dir, &[]);
    // A stdin that gives 100 lines and then blocks forever (like an idle pipe).
    struct Endless(Cursor<Vec<u8>>);
    impl Read for Endless {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(b)? {
                0 => loop {
                    std::thread::sleep(Duration::from_secs(3600));
                },
                n => Ok(n),
            }
        }
    }
    let text: String = (0..100u64).map(|i| good_line(i) + "\n").collect();
    let stdin = Box::new(std::io::BufReader::new(Endless(Cursor::new(
        text.into_bytes(),
    ))));
    let stop = Arc::new(AtomicBool::new(false));
    let sink = VecSink::default();
    let (s2, stop2) = (sink.clone(), stop.clone());
    let t = std::thread::spawn(move || {
        while s2.delivered().len() < 100 {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop2.store(true, Ordering::SeqCst);
    });
    let start = Instant::now();
    let snap = forwarder::run(&cfg, SensorEncoder, sink.clone(), stdin, stop).unwrap();
    t.join().unwrap();
    // A hang detector, not a speed target: stop must lead to a return, well within the drain time.
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!((snap.acked, snap.spool_records), (100, 0));
}

fn wait_for(sink: &VecSink, n: usize) -> Vec<u64> {
    let end = Instant::now() + Duration::from_secs(10);
    while sink.delivered().len() < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    sink.delivered().iter().map(|g| id_of(&g.value)).collect()
}

#[test]
fn file_input_follows_appends_rotation_and_truncation() {
    let dir = TempDir::new("fwd-file");
    let feed = dir.join("feed.ndjson");
    let write = |path: &std::path::Path, ids: std::ops::Range<u64>, append: bool| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .unwrap();
        for i in ids {
            writeln!(f, "{}", good_line(i)).unwrap();
        }
    };
    write(&feed, 0..10, false);
    let feed_s = feed.display().to_string();
    let cfg = config(
        &dir,
        &[
            ("input.type", "file"),
            ("input.path", &feed_s),
            ("input.start_at", "beginning"),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sink = VecSink::default();
    let h = {
        let (cfg, sink, stop) = (cfg.clone(), sink.clone(), stop.clone());
        std::thread::spawn(move || {
            forwarder::run(&cfg, SensorEncoder, sink, stdin_of(String::new()), stop).unwrap()
        })
    };
    assert_eq!(wait_for(&sink, 10), (0..10).collect::<Vec<_>>());
    // Appends, including a line written in two parts.
    write(&feed, 10..20, true);
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&feed)
            .unwrap();
        let l = good_line(20);
        f.write_all(&l.as_bytes()[..15]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(&l.as_bytes()[15..]).unwrap();
        f.write_all(b"\n").unwrap();
    }
    assert_eq!(wait_for(&sink, 21), (0..21).collect::<Vec<_>>());
    // Rotation: the writer moves the file away and starts a new one.
    write(&feed, 21..25, true);
    std::fs::rename(&feed, dir.join("feed.ndjson.1")).unwrap();
    write(&feed, 25..40, false);
    assert_eq!(wait_for(&sink, 40), (0..40).collect::<Vec<_>>());
    // Truncation in place (copytruncate).
    std::thread::sleep(Duration::from_millis(300));
    write(&feed, 40..45, false);
    assert_eq!(wait_for(&sink, 45), (0..45).collect::<Vec<_>>());
    stop.store(true, Ordering::SeqCst);
    let snap = h.join().unwrap();
    assert_eq!((snap.acked, snap.dead_lettered), (45, 0));
}

#[test]
fn udp_input_and_metrics_endpoint() {
    let dir = TempDir::new("fwd-udp");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mport = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (bind, listen) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{mport}"));
    let cfg = config(
        &dir,
        &[
            ("input.type", "udp"),
            ("input.bind", &bind),
            ("metrics.listen", &listen),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sink = VecSink::default();
    let h = {
        let (cfg, sink, stop) = (cfg.clone(), sink.clone(), stop.clone());
        std::thread::spawn(move || {
            forwarder::run(&cfg, SensorEncoder, sink, stdin_of(String::new()), stop).unwrap()
        })
    };
    // The metrics listener is bound after the UDP socket: once it answers, datagrams are received.
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0;
    let end = Instant::now() + Duration::from_secs(10);
    // Datagrams sent before the socket is read are queued by the kernel; resend the rest until all arrive.
    while sink.delivered().len() < 30 && Instant::now() < end {
        if sent < 30 {
            tx.send_to(format!("{}\n", good_line(sent)).as_bytes(), &bind)
                .unwrap();
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    tx.send_to(b"{broken", &bind).unwrap();
    let ids = wait_for(&sink, 30);
    assert_eq!(ids, (0..30).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(200));
    let mut c = std::net::TcpStream::connect(&listen).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\navro_edge_acked_total 30\n"), "{resp}");
    assert!(
        resp.contains("\navro_edge_dead_lettered_total 1\n"),
        "{resp}"
    );
    assert!(resp.contains("avro_edge_spool_records 0"), "{resp}");
    let mut c = std::net::TcpStream::connect(&listen).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"));
    stop.store(true, Ordering::SeqCst);
    h.join().unwrap();
}

#[test]
fn drop_oldest_spool_counts_drops_when_the_sink_is_down() {
    let dir = TempDir::new("fwd-drop");
    let cfg = config(
        &dir,
        &[
            ("spool.max_bytes", "64KiB"),
            ("spool.segment_bytes", "8KiB"),
            ("spool.when_full", "drop_oldest"),
            ("drain_timeout_ms", "200"),
        ],
    );
    let text: String = (0..2000u64).map(|i| good_line(i) + "\n").collect();
    let down = VecSink::default();
    down.fail_batches.store(usize::MAX, Ordering::SeqCst);
    let snap = run_stdin(&cfg, text, down);
    assert!(snap.dropped > 0);
    assert_eq!(snap.dropped + snap.spool_records, 2000, "{snap:?}");
    let up = VecSink::default();
    run_stdin(&cfg, String::new(), up.clone());
    let ids: Vec<u64> = up.delivered().iter().map(|g| id_of(&g.value)).collect();
    assert_eq!(
        ids,
        (snap.dropped..2000).collect::<Vec<_>>(),
        "the newest records survive, in order"
    );
}

#[test]
fn sample_sensor_feed_fixture() {
    let dir = TempDir::new("fwd-fixture");
    let cfg = config(&dir, &[]);
    let feed =
        std::fs::read_to_string(avro_edge_testkit::root().join("fixtures/sensor-readings.ndjson"))
            .unwrap();
    let sink = VecSink::default();
    let snap = run_stdin(&cfg, feed.clone(), sink.clone());
    let got = sink.delivered();
    // Every line that parses and fits the schema's rules arrives, in input order, keyed by sensorId.
    let good: Vec<serde_json::Value> = feed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["timestamp"].is_i64() && v["status"] != "ON_FIRE")
        .collect();
    assert!(good.len() >= 50);
    assert_eq!(
        got.iter().map(|g| g.value.clone()).collect::<Vec<_>>(),
        good
    );
    assert!(
        got.iter()
            .all(|g| g.key.as_deref() == g.value["sensorId"].as_str().map(str::as_bytes))
    );
    assert_eq!(snap.dead_lettered, 4);
    let dl = std::fs::read_to_string(dir.join("dead-letter.ndjson")).unwrap();
    let kinds: BTreeSet<String> = dl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let expect: BTreeSet<String> = [
        "not-json",
        "missing-field",
        "wrong-type",
        "unknown-enum-symbol",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kinds, expect);
}

#[test]
fn file_input_start_at_end_skips_old_lines_but_reads_a_file_created_later_from_its_start() {
    let dir = TempDir::new("fwd-file-end");
    let old = dir.join("old.ndjson");
    std::fs::write(
        &old,
        (0..5u64).map(|i| good_line(i) + "\n").collect::<String>(),
    )
    .unwrap();
    let late = dir.join("late.ndjson");
    let file = dir.join("f.toml");
    std::fs::write(
        &file,
        format!(
            "[[input]]\ntype = \"file\"\npath = \"{}\"\n[[input]]\ntype = \"file\"\nname = \"late\"\npath = \"{}\"\nstart_at = \"end\"\n",
            old.display(),
            late.display()
        ),
    )
    .unwrap();
    let base = config(&dir, &[]);
    let mut cfg = Config::load(Some(&file), Vec::new(), &[]).unwrap();
    cfg.spool_dir = base.spool_dir.clone();
    cfg.dead_letter = base.dead_letter.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sink = VecSink::default();
    let h = {
        let (cfg, sink, stop) = (cfg.clone(), sink.clone(), stop.clone());
        std::thread::spawn(move || {
            forwarder::run(&cfg, SensorEncoder, sink, stdin_of(String::new()), stop).unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(
        &late,
        (100..103u64)
            .map(|i| good_line(i) + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&old).unwrap();
    writeln!(f, "{}", good_line(5)).unwrap();
    let mut ids = wait_for(&sink, 4);
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![5, 100, 101, 102],
        "old lines skipped, new ones and the late file read"
    );
    stop.store(true, Ordering::SeqCst);
    h.join().unwrap();
}

#[test]
fn a_failing_input_fails_the_run_after_the_drain() {
    let dir = TempDir::new("fwd-input-fail");
    let not_a_file = dir.join("a-directory");
    std::fs::create_dir(&not_a_file).unwrap();
    let p = not_a_file.display().to_string();
    let cfg = config(
        &dir,
        &[
            ("input.type", "file"),
            ("input.path", &p),
            ("input.start_at", "beginning"),
        ],
    );
    let err = forwarder::run(
        &cfg,
        SensorEncoder,
        VecSink::default(),
        stdin_of(String::new()),
        Arc::new(AtomicBool::new(false)),
    )
    .expect_err("reading a directory must fail the input");
    use avro_edge::ErrorKind;
    assert_eq!(err.kind(), "input-io");
    assert!(err.to_string().starts_with("input 'file'"), "{err}");
}

#[test]
fn dead_letter_file_is_bounded_by_rotation() {
    let dir = TempDir::new("fwd-dl-rotate");
    let cfg = config(&dir, &[("dead_letter_max_bytes", "4KiB")]);
    let text: String = (0..300u64).map(|i| format!("garbage line {i}\n")).collect();
    let snap = run_stdin(&cfg, text, VecSink::default());
    assert_eq!(snap.dead_lettered, 300);
    let cur = std::fs::read_to_string(dir.join("dead-letter.ndjson")).unwrap();
    let old = std::fs::read_to_string(dir.join("dead-letter.ndjson.1")).unwrap();
    assert!(
        cur.len() <= 4096 && old.len() <= 4096,
        "{} {}",
        cur.len(),
        old.len()
    );
    let lines: Vec<serde_json::Value> = old
        .lines()
        .chain(cur.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The newest entries are kept, contiguous, ending with the last bad line.
    let n = lines.len();
    assert!(n > 10 && n < 300);
    for (k, e) in lines.iter().enumerate() {
        assert_eq!(e["line"], format!("garbage line {}", 300 - n + k));
    }
}

#[test]
fn file_input_resumes_after_a_restart_where_it_left_off() {
    let dir = TempDir::new("fwd-file-resume");
    let feed = dir.join("feed.ndjson");
    let append = |ids: std::ops::Range<u64>| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&feed)
            .unwrap();
        for i in ids {
            writeln!(f, "{}", good_line(i)).unwrap();
        }
    };
    let feed_s = feed.display().to_string();
    // start_at = beginning: without a saved position every run would re-read the whole file.
    let cfg = config(
        &dir,
        &[
            ("input.type", "file"),
            ("input.path", &feed_s),
            ("input.start_at", "beginning"),
        ],
    );
    let run_until = |n: usize| {
        let stop = Arc::new(AtomicBool::new(false));
        let sink = VecSink::default();
        let h = {
            let (cfg, sink, stop) = (cfg.clone(), sink.clone(), stop.clone());
            std::thread::spawn(move || {
                forwarder::run(&cfg, SensorEncoder, sink, stdin_of(String::new()), stop).unwrap()
            })
        };
        let mut ids = wait_for(&sink, n);
        // Give a wrongly re-read line the chance to show up before stopping.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        h.join().unwrap();
        ids.extend(
            sink.delivered()
                .iter()
                .skip(ids.len())
                .map(|g| id_of(&g.value)),
        );
        ids
    };
    append(0..10);
    assert_eq!(run_until(10), (0..10).collect::<Vec<_>>());
    append(10..20);
    assert_eq!(
        run_until(10),
        (10..20).collect::<Vec<_>>(),
        "resumes after the last accepted line"
    );
    // Rotated while stopped: the file at the path is new, read from its start.
    std::fs::rename(&feed, dir.join("feed.ndjson.1")).unwrap();
    append(20..25);
    assert_eq!(run_until(5), (20..25).collect::<Vec<_>>());
}
