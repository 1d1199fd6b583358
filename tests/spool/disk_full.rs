//! The spool on a full disk: appends wait (they do not fail), acknowledgements still persist (the cursor is
//! rewritten in place) and give the space back, appends resume by themselves, and a restart hands out
//! nothing acknowledged. Runs on a 256 KiB tmpfs in a private mount namespace
//! (`unshare --user --map-root-user --mount`, which works as root and, where user namespaces are allowed,
//! without); ignored by default because it needs that, and it fails (never passes) when it cannot mount.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::spool_support::{TempDir, segments};
use avro_edge::{FsyncPolicy, Spool, SpoolFull, SpoolOptions, SpoolRecord, WhenFull};

const INSIDE: &str = "AVRO_EDGE_TEST_TMPFS";

/// Run `body` on a fresh tmpfs of `size` in a private mount namespace: this test binary runs itself again
/// (only `test`) under `unshare`, after mounting the tmpfs. The child's failure fails the test, and so
/// does a child that ran anything but exactly that one test (a renamed test, run by its old name, would
/// run none and pass).
fn on_small_tmpfs(test: &str, size: &str, body: impl FnOnce(&Path)) {
    if let Some(dir) = std::env::var_os(INSIDE) {
        body(Path::new(&dir));
        return;
    }
    let test = &crate::spool_support::libtest_name(module_path!(), test);
    let dir = TempDir::new("spool-tmpfs");
    let exe = std::env::current_exe().unwrap();
    let script = r#"mount -t tmpfs -o size="$1" avro-edge-test "$2" || { echo "cannot mount a tmpfs on $2" >&2; exit 97; }
exec "$3" --exact "$4" --include-ignored --nocapture --test-threads=1"#;
    let child = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            script,
            "sh",
            size,
        ])
        .arg(dir.path())
        .arg(&exe)
        .arg(test)
        .env(INSIDE, dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
    let stdout = String::from_utf8_lossy(&child.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&child.stderr));
    let status = child.status;
    assert!(
        status.success(),
        "{test} on a {size} tmpfs failed (exit {status}; 97: the tmpfs could not be mounted)"
    );
    if let Err(e) = ran_one_test(&stdout) {
        panic!("{test} on a {size} tmpfs: the child {e}");
    }
}

/// Whether libtest's output `stdout` says it ran exactly one test, and it passed: `running 1 test`,
/// then `test result: ok. 1 passed; 0 failed; ...`.
fn ran_one_test(stdout: &str) -> Result<(), String> {
    let running: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("running "))
        .collect();
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test result: "))
        .collect();
    match (running.as_slice(), results.as_slice()) {
        (["running 1 test"], [result])
            if result.starts_with("test result: ok. 1 passed; 0 failed;") =>
        {
            Ok(())
        }
        _ => Err(format!(
            "did not run exactly one test: {running:?}, {results:?} (renamed? the name is passed to --exact)"
        )),
    }
}

/// [`ran_one_test`] against this binary's own libtest output: one test run by its exact name passes the
/// check, a name that matches no test (what a rename leaves behind) does not. (Any disk: no tmpfs.)
#[test]
fn the_child_check_needs_exactly_one_test_run() {
    let exe = std::env::current_exe().unwrap();
    let run = |name: &str| {
        let out = Command::new(&exe)
            .args(["--exact", name, "--test-threads=1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let name = |f: &str| crate::spool_support::libtest_name(module_path!(), f);
    let one = run(&name("an_old_format_cursor_is_migrated"));
    assert_eq!(ran_one_test(&one), Ok(()), "{one}");
    let none = run(&name(
        "a_full_disk_blocks_appends_and_acks_give_the_space_back_renamed",
    ));
    assert!(ran_one_test(&none).is_err(), "{none}");
}

fn id_of(r: &SpoolRecord) -> u64 {
    std::str::from_utf8(&r.value).unwrap()[8..20]
        .parse()
        .unwrap()
}

/// A ~150-byte value carrying its id.
fn value(i: u64) -> Vec<u8> {
    let mut v = format!("reading-{i:012}|").into_bytes();
    v.resize(150, b'x');
    v
}

/// Fill the file system under `path` completely; the bytes written.
fn fill_up(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    let mut n = 0;
    loop {
        match f.write(&chunk) {
            Ok(k) if k > 0 => n += k as u64,
            _ => break,
        }
    }
    // Single bytes into the last partial page (tmpfs allocates whole pages, so usually nothing).
    while let Ok(1) = f.write(&[0]) {
        n += 1;
    }
    n
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Appends stopped making progress (no new record for `quiet`).
fn stalled(appended: &AtomicU64, quiet: Duration) -> u64 {
    let mut last = appended.load(Ordering::SeqCst);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = appended.load(Ordering::SeqCst);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            return now;
        }
    }
}

/// Read a batch and acknowledge it as a sender would; the ids go to `seen`.
fn ack_batch(spool: &Spool, wait: Duration, seen: &mut Vec<u64>) -> usize {
    let b = spool.read_batch(500, 1 << 20, wait).unwrap();
    seen.extend(b.iter().map(id_of));
    if let Some(last) = b.last() {
        spool
            .ack_through(last)
            .unwrap_or_else(|e| panic!("ack on a full disk failed: {e}"));
    }
    b.len()
}

#[test]
#[ignore = "needs a tmpfs: unshare --user --map-root-user --mount (root, or user namespaces allowed)"]
fn a_full_disk_blocks_appends_and_acks_give_the_space_back() {
    on_small_tmpfs(
        "a_full_disk_blocks_appends_and_acks_give_the_space_back",
        "256k",
        full_disk_body,
    );
}

fn full_disk_body(fs: &Path) {
    const N: u64 = 6000; // ~1 MiB of records through a 256 KiB file system
    let dir = fs.join("spool");
    let opts = SpoolOptions {
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        // max_bytes is far above the disk: the disk is the limit.
        max_bytes: 256 << 20,
        when_full: WhenFull::Block,
        segment_bytes: None,
        reserve_bytes: None,
    };
    std::fs::write(fs.join("filler"), vec![1u8; 64 << 10]).unwrap();
    let (spool, _) = Spool::open(&dir, opts.clone()).unwrap();
    let spool = Arc::new(spool);
    let st = spool.status();
    // Default reserve: 1 MiB, at most 1/16 of the file system (256 KiB / 16).
    assert_eq!(st.reserve_bytes, 16 << 10, "{st:?}");
    assert!(st.limit_bytes < 256 << 10, "{st:?}");

    let appended = Arc::new(AtomicU64::new(0));
    let appender = {
        let (spool, appended) = (spool.clone(), appended.clone());
        std::thread::spawn(move || {
            for i in 0..N {
                let key = format!("sensor-{}", i % 7);
                let seq = spool
                    .append("sensor-data", Some(key.as_bytes()), &value(i))
                    .unwrap_or_else(|e| panic!("append {i} failed instead of waiting: {e}"));
                assert_eq!(seq, i);
                appended.store(i + 1, Ordering::SeqCst);
            }
        })
    };

    // 1. The disk fills: appends wait, they do not fail.
    let first_stop = stalled(&appended, Duration::from_millis(600));
    assert!(first_stop > 100 && first_stop < N, "{first_stop}");
    assert!(!appender.is_finished(), "the appender failed or finished");
    let st = spool.status();
    assert_eq!(st.full, Some(SpoolFull::Disk), "{st:?}");
    assert_eq!(st.full_disk_events, 1, "{st:?}");
    assert!(st.disk_free_bytes.is_some_and(|f| f > 0), "{st:?}");

    // 2. Other software frees space: appends resume by themselves, then wait again.
    std::fs::remove_file(fs.join("filler")).unwrap();
    wait_until(
        "appends resume after the filler went",
        Duration::from_secs(5),
        || appended.load(Ordering::SeqCst) > first_stop,
    );
    let second_stop = stalled(&appended, Duration::from_millis(600));
    assert!(
        second_stop > first_stop + 100,
        "{first_stop} → {second_stop}"
    );
    assert_eq!(spool.status().full, Some(SpoolFull::Disk));

    // 3. Someone takes the rest, reserve included: the disk is 100 % full. Acknowledging must still work
    // (the cursor is rewritten in place) and must give the acknowledged space back.
    let taken = fill_up(&fs.join("hog"));
    assert!(taken > 0);
    let mut seen: Vec<u64> = Vec::new();
    assert!(ack_batch(&spool, Duration::ZERO, &mut seen) > 0);
    wait_until(
        "appends resume after the acks",
        Duration::from_secs(5),
        || appended.load(Ordering::SeqCst) > second_stop,
    );

    // 4. Drain to the end, acknowledging as a sender would: the appender finishes.
    let end = Instant::now() + Duration::from_secs(60);
    while !(appender.is_finished() && spool.status().records == 0) {
        assert!(
            Instant::now() < end,
            "stuck at {} of {N}",
            appended.load(Ordering::SeqCst)
        );
        ack_batch(&spool, Duration::from_millis(50), &mut seen);
    }
    appender.join().unwrap();
    let expected: Vec<u64> = (0..N).collect();
    assert_eq!(seen, expected, "every record exactly once, in order");
    let st = spool.status();
    assert_eq!(st.full, None, "{st:?}");
    assert_eq!((st.records, st.acked_seq), (0, N));
    assert!(st.full_disk_events >= 2, "{st:?}");
    spool.close().unwrap();
    drop(spool);

    // 5. The cursor on disk moved (it never needed a new block): a restart hands out nothing.
    assert_eq!(std::fs::metadata(dir.join("cursor")).unwrap().len(), 1024);
    let (spool, report) = Spool::open(&dir, opts).unwrap();
    assert!(!report.cursor_lost, "{report:?}");
    assert_eq!(report.possible_duplicates, 0, "{report:?}");
    assert!(
        spool
            .read_batch(500, 1 << 20, Duration::ZERO)
            .unwrap()
            .is_empty()
    );
    assert_eq!(spool.status().acked_seq, N);
    assert!(segments(&dir).len() <= 1);
}

/// An old-format (28-byte) cursor is read on open and the file migrated in place; nothing acknowledged
/// under it is handed out again. (Any disk: no tmpfs needed.)
#[test]
fn an_old_format_cursor_is_migrated() {
    let dir = TempDir::new("spool-cursor-v1");
    let opts = SpoolOptions {
        fsync: FsyncPolicy::Never,
        max_bytes: 1 << 20,
        when_full: WhenFull::Block,
        segment_bytes: Some(8 * 1024),
        reserve_bytes: None,
    };
    {
        let (spool, _) = Spool::open(dir.path(), opts.clone()).unwrap();
        for i in 0..100 {
            spool.append("t", None, &value(i)).unwrap();
        }
        spool.close().unwrap();
    }
    // What a spool of the previous version left: acked 40, sent 60.
    let mut v1 = b"AECURS01".to_vec();
    v1.extend_from_slice(&40u64.to_le_bytes());
    v1.extend_from_slice(&60u64.to_le_bytes());
    let crc = crc32c::crc32c(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(dir.join("cursor"), &v1).unwrap();

    let (spool, report) = Spool::open(dir.path(), opts.clone()).unwrap();
    assert!(!report.cursor_lost, "{report:?}");
    assert_eq!(report.possible_duplicates, 20);
    assert_eq!(std::fs::metadata(dir.join("cursor")).unwrap().len(), 1024);
    let b = spool.read_batch(500, 1 << 20, Duration::ZERO).unwrap();
    assert_eq!(b.first().map(id_of), Some(40));
    assert_eq!(b.len(), 60);
    spool.ack_through(&b[9]).unwrap();
    spool.close().unwrap();
    drop(spool);
    let (spool, _) = Spool::open(dir.path(), opts).unwrap();
    let b = spool.read_batch(500, 1 << 20, Duration::ZERO).unwrap();
    assert_eq!(b.first().map(id_of), Some(50));
}
