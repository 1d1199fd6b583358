//! A gateway clock 2 h ahead against Apache Kafka 4.1.1 with its default settings
//! (`log.message.timestamp.after.max.ms` is 1 h since Kafka 4.0): the real `avro-edge forward` binary
//! under libfaketime (Debian's `faketime`; the whole process's wall clock, so the spool's times too,
//! with `FAKETIME_DONT_FAKE_MONOTONIC=1`). The broker refuses every batch as `clock-ahead-of-broker`:
//! nothing is dead-lettered, the records stay in the spool and the cause is in the log and on the
//! metrics at once. Set right in the running process, the clock lets them go; ahead again, the input
//! ends with records held (exit with the kind, `spool status` says it); restarted with the right
//! clock on the same spool, the forwarder delivers them within its drain time instead of waiting
//! 2 h for the clock to pass their spool times. Every record counted by id. `#[ignore]`d like the
//! other broker tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::forward_bin_support::{BIN, Fwd, check, command, ids_of, read_back, readings};
use avro_edge_testkit::{metric, needs, require_broker, unique_topic, wait_metric};

/// Where Debian's `libfaketime` puts its preload library.
fn libfaketime() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    match candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        Some(p) => p,
        None => needs(
            "libfaketime",
            "no libfaketime.so.1 (apt-get install faketime; scripts/setup does)",
        ),
    }
}

/// Set the faked clock's offset (libfaketime reads the file on every clock call).
fn set_offset(spec: &Path, offset: &str) {
    let tmp = spec.with_extension("tmp");
    std::fs::write(&tmp, format!("{offset}\n")).unwrap();
    std::fs::rename(&tmp, spec).unwrap();
}

/// The forwarder on `dir`'s spool, its clock faked by `spec` when given.
fn spawn(dir: &Path, bootstrap: &str, topic: &str, m: &str, spec: Option<&Path>, tag: &str) -> Fwd {
    let drain = ["--set", "drain_timeout_ms=30000"];
    let mut cmd = command(
        dir,
        bootstrap,
        topic,
        &[&["--metrics-listen", m][..], &drain].concat(),
    );
    if let Some(spec) = spec {
        cmd.env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", spec)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    Fwd::start(cmd, dir.join(format!("forward-{tag}.log")), spec.is_none())
}

#[test]
#[ignore = "needs a Kafka broker and libfaketime"]
fn a_clock_two_hours_ahead_holds_the_records_and_they_go_once_it_is_right() {
    let lib = libfaketime();
    let broker = require_broker();
    let bootstrap = broker.bootstrap();
    let dir = avro_edge_testkit::tmpdir("fwd-clock-ahead");
    let topic = unique_topic("fwd-ahead");
    let spec = dir.join("faketime");
    set_offset(&spec, "+2h");
    let m = avro_edge_testkit::free_addr().unwrap();
    let lines = readings(2000, 5);
    let (first, second) = lines.split_at(1000);
    let mut fwd = spawn(&dir, &bootstrap, &topic, &m, Some(&spec), "ahead");
    let log = fwd.log.clone();
    let limit = Duration::from_secs(60);
    let refused = r#"forward_refusals_total{kind="clock-ahead-of-broker"}"#;
    let held = r#"forward_held_records{reason="clock-ahead-of-broker"}"#;

    // Ahead: refused, held, said; nothing acknowledged or dead-lettered.
    fwd.feed(first);
    let fed = Instant::now();
    wait_metric(&m, "spooled_total", |v| v == 1000, limit, Some(&log));
    wait_metric(&m, refused, |v| v > 0, limit, Some(&log));
    let refused_after = fed.elapsed();
    wait_metric(&m, held, |v| v == 1000, limit, Some(&log));
    fwd.wait_log(
        "records kept in the spool: the system clock is ahead",
        limit,
    );
    let said_after = fed.elapsed();
    assert_eq!(metric(&m, "acked_total"), Some(0));
    assert_eq!(metric(&m, "clock_insane"), Some(0), "not the clock gate");

    // Set right while it runs: the held records go, the gate does not hold them.
    set_offset(&spec, "+0");
    let set_right = Instant::now();
    wait_metric(&m, "acked_total", |v| v == 1000, limit, Some(&log));
    let sent_after = set_right.elapsed();
    assert_eq!(metric(&m, "clock_insane"), Some(0));

    // Ahead again, and the input ends: exit with the kind, the records in the spool.
    set_offset(&spec, "+2h");
    let before = metric(&m, refused).unwrap_or(0);
    fwd.feed(second);
    wait_metric(&m, refused, |v| v > before, limit, Some(&log));
    fwd.close_stdin();
    let (status, text) = fwd.wait_exit(Duration::from_secs(120));
    assert_eq!(status.code(), Some(1), "exit {status}:\n{text}");
    assert!(
        text.contains("error[clock-ahead-of-broker]: 1000 records kept in the spool"),
        "{text}"
    );
    assert!(text.contains("forward_dead_lettered=0"), "{text}");
    assert!(dir.join("spool/clock-refused.json").exists());
    let out = Command::new(BIN)
        .args(["spool", "status"])
        .arg(dir.join("spool"))
        .output()
        .unwrap();
    let st = String::from_utf8_lossy(&out.stdout);
    assert!(
        st.contains("records (unacked)     1000")
            && st.contains("held                  clock-ahead-of-broker"),
        "{st}"
    );

    // Restarted with the right clock on the same spool (its records 2 h "in the future"): sent
    // within the drain time (the gate would hold them 2 h otherwise, and the drain not wait).
    let restarted = Instant::now();
    let again = spawn(&dir, &bootstrap, &topic, &m, None, "right");
    let text = again.wait_ok(Duration::from_secs(120));
    let restart_done = restarted.elapsed();
    assert!(
        text.contains("acked=1000") && text.contains("spool_records=0"),
        "{text}"
    );
    assert!(!text.contains("below its lower bound"), "{text}");
    let dead = std::fs::read_to_string(dir.join("dead-letter.ndjson")).unwrap_or_default();
    assert_eq!(dead, "", "nothing dead-lettered");
    let got = read_back(&bootstrap, &topic, 2000, Duration::from_secs(60));
    let t = check(&got, &ids_of(&lines), "clock-2h-ahead");
    assert_eq!((t.delivered, t.duplicates), (2000, 0));
    eprintln!(
        "clock ahead: refused {refused_after:?} and said {said_after:?} after the input; sent \
         {sent_after:?} after the clock was set right; restarted right: done in {restart_done:?}"
    );
    crate::forward_bin_support::print_row(
        "clock 2 h ahead (libfaketime), set right, ahead again, restarted right",
        2000,
        &t,
        &format!("libfaketime {}", lib.display()),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
