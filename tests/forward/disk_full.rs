//! The forwarder (the real binary) with its spool on a full disk and its broker down: the spool
//! on a 256 KiB tmpfs, the broker down for the first 6 s, 20,000 readings on stdin. Input blocks
//! while the disk is full (a "spool full" line and `avro_edge_spool_full{reason="disk"}` say so),
//! the forwarder resumes by itself once the broker takes records, finishes the input, and every
//! accepted record reaches Kafka exactly once (counted by id). A restart on the spool after the
//! episode resends nothing that was acknowledged.
//!
//! The tmpfs is mounted in a private mount namespace (`unshare --user --map-root-user --mount`,
//! as tests/spool/disk_full.rs does for the spool alone) by a small `sh` script that then runs the
//! forwarder and, after it exits, copies the spool out for the restart. Ignored by default: it
//! needs a Kafka broker and that namespace, and fails (never passes) without them.

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::forward_bin_support::{
    Fwd, check, command, ids_of, print_row, read_back, readings, tail, wrapped,
};
use avro_edge_testkit::{free_addr, metric, require_own_broker, unique_topic, wait_metric};

const LINES: usize = 20_000;
const FS_SIZE: &str = "256k";
/// How long the broker stays down after the forwarder started.
const BROKER_DOWN: Duration = Duration::from_secs(6);
const LONG: Duration = Duration::from_secs(300);

/// Mount a tmpfs of `$1` on `$2`, run the forwarder (`"$@"` after them), then copy its spool to
/// `$3` (exit 97: no tmpfs, 98: the copy failed; else the forwarder's status).
const SCRIPT: &str = r#"size="$1"; mnt="$2"; copy="$3"; shift 3
mount -t tmpfs -o size="$size" avro-edge-test "$mnt" || { echo "cannot mount a tmpfs on $mnt" >&2; exit 97; }
"$@"; rc=$?
cp -a "$mnt/spool" "$copy" || exit 98
exit $rc"#;

#[test]
#[ignore = "needs a Kafka broker and a tmpfs: unshare --user --map-root-user --mount"]
fn a_full_disk_with_the_broker_down_delivers_every_record_once() {
    let mut broker = require_own_broker();
    broker.kill();
    let dir = avro_edge_testkit::tmpdir("fwd-disk-full");
    let (mnt, after) = (dir.join("fs"), dir.join("after"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&after).unwrap();
    let topic = unique_topic("fwd-diskfull");
    let m = free_addr().unwrap();
    let inner = command(&mnt, &broker.bootstrap(), &topic, &["--metrics-listen", &m]);
    let args: Vec<OsString> = vec![
        FS_SIZE.into(),
        mnt.clone().into(),
        after.join("spool").into(),
    ];
    let unshare = ["unshare", "--user", "--map-root-user", "--mount"];
    let cmd = wrapped(&unshare, SCRIPT, &args, &inner);
    let mut fwd = Fwd::start(cmd, dir.join("forward.log"), false);
    let started = Instant::now();
    let lines = Arc::new(readings(LINES, 7));
    let never = Arc::new(AtomicBool::new(false));
    let feeder = fwd.feed_until(lines.clone(), 1000, Duration::from_millis(1), never);

    // The disk fills while the broker is down: input waits, nothing fails.
    let full = r#"spool_full{reason="disk"}"#;
    wait_metric(&m, full, |v| v == 1, LONG, Some(&fwd.log));
    let spooled_full = metric(&m, "spooled_total").unwrap_or(0);
    let episodes = r#"spool_full_events_total{reason="disk"}"#;
    let events = metric(&m, episodes).unwrap_or(0);
    eprintln!(
        "disk full after {:?}: {spooled_full} of {LINES} readings spooled, {events} episode(s)",
        started.elapsed()
    );
    assert!(
        spooled_full < LINES as u64,
        "the disk never limited the spool"
    );
    assert!(events >= 1, "no disk-full episode counted");
    std::thread::sleep(BROKER_DOWN.saturating_sub(started.elapsed()));
    assert_eq!(
        metric(&m, "acked_total"),
        Some(0),
        "acked with the broker down"
    );
    broker.restart().unwrap();
    let up = Instant::now();

    // The forwarder finishes the input by itself and exits once the spool is drained.
    let fed = feeder.join().unwrap();
    assert_eq!(fed, LINES, "the feed was cut short");
    let log = fwd.wait_ok(LONG);
    let finished = up.elapsed();
    let disk_lines = (log.lines())
        .filter(|l| l.contains("spool full: appends wait for space") && l.contains("disk"))
        .count();
    assert!(disk_lines > 0, "no disk-full line:\n{}", tail(&log, 40));
    assert!(
        log.contains(&format!("acked={LINES}")),
        "{}",
        tail(&log, 20)
    );
    let got = read_back(&broker.bootstrap(), &topic, LINES, Duration::from_secs(120));
    let t = check(&got, &ids_of(&lines), "disk full, broker down");
    assert_eq!(t.delivered, LINES);
    let note = format!(
        "256 KiB tmpfs; input blocked at {spooled_full} records; {disk_lines} disk-full log \
         lines; all delivered {:.1} s after the broker came up",
        finished.as_secs_f64()
    );
    print_row(
        "forward, spool disk full, broker down 6 s",
        LINES,
        &t,
        &note,
    );
    assert_eq!(t.duplicates, 0, "every accepted record delivered once");

    // A restart on the spool left by the episode sends nothing: everything was acknowledged.
    let log = Fwd::spawn(&after, &broker.bootstrap(), &topic, &[], true).wait_ok(LONG);
    assert!(log.contains("possible_duplicates=0"), "{}", tail(&log, 20));
    assert!(log.contains("sent=0"), "{}", tail(&log, 20));
    let again = read_back(&broker.bootstrap(), &topic, LINES, Duration::from_secs(120));
    assert_eq!(again.len(), got.len(), "the restart resent records");
    let _ = std::fs::remove_dir_all(&dir);
}
