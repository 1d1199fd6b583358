//! Process crashes: a child process (this test binary, re-run in a child mode) works on a spool and dies
//! without closing it (abort, or SIGKILL from the parent); the parent reopens and counts every record by id.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::spool_support::TempDir;
use avro_edge::{FsyncPolicy, Spool, SpoolOptions, SpoolRecord, WhenFull};

const CHILD_ENV: &str = "AVRO_EDGE_TEST_SPOOL_CHILD";

fn opts() -> SpoolOptions {
    SpoolOptions {
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        max_bytes: 4 << 20,
        when_full: WhenFull::Block,
        segment_bytes: Some(64 * 1024),
        reserve_bytes: None,
    }
}

fn id_of(r: &SpoolRecord) -> u64 {
    std::str::from_utf8(&r.value)
        .unwrap()
        .strip_prefix("reading-")
        .unwrap()
        .parse()
        .unwrap()
}

fn drain(spool: &Spool) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        let b = spool.read_batch(100, 1 << 20, Duration::ZERO).unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend(b.iter().map(id_of));
    }
}

/// Re-run this test binary as a child. Under qemu-user without binfmt (cross tests), set
/// `AVRO_EDGE_TEST_EXEC_WRAPPER=qemu-aarch64-static` so the child runs through the emulator too.
fn child(test: &str, dir: &std::path::Path) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut c = match std::env::var_os("AVRO_EDGE_TEST_EXEC_WRAPPER") {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let test = crate::spool_support::libtest_name(module_path!(), test);
    c.args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir);
    c
}

/// Child mode: append 500, hand out 300, ack 200, then abort (no destructor, no flush).
#[test]
fn crash_child_abort() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (spool, _) = Spool::open(dir.as_ref(), opts()).unwrap();
    for i in 0..500u64 {
        spool
            .append("t", None, format!("reading-{i}").as_bytes())
            .unwrap();
    }
    let mut handed = Vec::new();
    while handed.len() < 300 {
        handed.extend(
            spool
                .read_batch(300 - handed.len(), 1 << 20, Duration::ZERO)
                .unwrap(),
        );
    }
    spool.ack_through(&handed[199]).unwrap();
    std::process::abort();
}

#[test]
fn abort_after_acks_resumes_with_only_the_unacked_tail() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = TempDir::new("spool-abort");
    let status = child("crash_child_abort", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have died");
    let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
    // Nothing acked comes back; the 100 handed out but unacked are counted as possible duplicates.
    assert_eq!(report.possible_duplicates, 100);
    assert_eq!(report.corrupt_records, 0);
    assert_eq!(drain(&spool), (200..500).collect::<Vec<_>>());
}

/// Child mode: append forever, printing each accepted id, until killed.
#[test]
fn crash_child_kill() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (spool, _) = Spool::open(dir.as_ref(), opts()).unwrap();
    let pad = "p".repeat(100);
    for i in 0u64.. {
        spool
            .append("t", None, format!("reading-{i}").as_bytes())
            .unwrap();
        // Acks run alongside: every 1000th record acknowledges the first half so far.
        if i % 1000 == 999 {
            let b = spool.read_batch(500, 1 << 20, Duration::ZERO).unwrap();
            if let Some(last) = b.last() {
                spool.ack_through(last).unwrap();
            }
        }
        println!("{i} {pad}");
    }
}

#[test]
fn sigkill_mid_stream_loses_no_accepted_record() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = TempDir::new("spool-kill");
    let mut c = child("crash_child_kill", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let mut last_accepted = None;
    // Let it write a few thousand records (ack rounds included), then SIGKILL it mid-stream.
    let start = std::time::Instant::now();
    while last_accepted.is_none_or(|n| n < 3_500) && start.elapsed() < Duration::from_secs(60) {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(n) = l.split(' ').next().and_then(|n| n.parse::<u64>().ok()) {
                    last_accepted = Some(n);
                }
            }
            _ => break,
        }
    }
    c.kill().unwrap();
    let _ = c.wait();
    let last_accepted = last_accepted.expect("child accepted records");
    assert!(
        last_accepted > 1000,
        "child wrote too little to be a useful test: {last_accepted}"
    );
    let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
    let ids = drain(&spool);
    // Acked ids never come back; every accepted id after the cursor does, in order, without gaps.
    let first = *ids.first().unwrap();
    assert_eq!(first % 500, 0, "resumes at an ack boundary: {first}");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "no gaps");
    assert!(
        *ids.last().unwrap() >= last_accepted,
        "every accepted record is there"
    );
    // A process kill is not a power loss: at most the single frame being written can be torn.
    assert!(report.corrupt_records <= 1, "{report:?}");
}
