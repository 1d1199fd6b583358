//! Spool behaviour through its public API: every record carries a unique id in its value and is counted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::spool_support::{TempDir, segments};
use avro_edge::ErrorKind;
use avro_edge::{FsyncPolicy, Spool, SpoolError, SpoolOptions, SpoolRecord, WhenFull};

fn opts() -> SpoolOptions {
    SpoolOptions {
        fsync: FsyncPolicy::Never,
        max_bytes: 1 << 20,
        when_full: WhenFull::Block,
        segment_bytes: Some(8 * 1024),
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

fn append_ids(spool: &Spool, ids: std::ops::Range<u64>) {
    for i in ids {
        let key = format!("sensor-{}", i % 7);
        spool
            .append(
                "sensor-data",
                Some(key.as_bytes()),
                format!("reading-{i}").as_bytes(),
            )
            .unwrap();
    }
}

/// Read everything the spool hands out now, without acknowledging.
fn drain(spool: &Spool) -> Vec<SpoolRecord> {
    let mut out = Vec::new();
    loop {
        let b = spool.read_batch(64, 1 << 20, Duration::ZERO).unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend(b);
    }
}

#[test]
fn append_ack_restart_resumes_at_the_acked_cursor() {
    let dir = TempDir::new("spool-resume");
    {
        let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
        assert_eq!(report.records, 0);
        append_ids(&spool, 0..1000);
        let recs = drain(&spool);
        assert_eq!(
            recs.iter().map(id_of).collect::<Vec<_>>(),
            (0..1000).collect::<Vec<_>>()
        );
        assert_eq!(recs[0].key.as_deref(), Some(&b"sensor-0"[..]));
        assert_eq!(recs[0].topic, "sensor-data");
        // Acknowledge the first 600 (the sender read 1000).
        spool.ack_through(&recs[599]).unwrap();
        let st = spool.status();
        assert_eq!(st.records, 400);
        assert!(st.segments >= 1);
        assert!(st.oldest_unacked_age_ms.is_some());
        assert!(
            segments(dir.path()).len() < 10,
            "acked segments are deleted"
        );
    }
    let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
    // 400 were handed to the sender but not acked: resent and counted as possible duplicates.
    assert_eq!(report.possible_duplicates, 400);
    assert_eq!(spool.status().possible_duplicates, 400);
    let recs = drain(&spool);
    assert_eq!(
        recs.iter().map(id_of).collect::<Vec<_>>(),
        (600..1000).collect::<Vec<_>>()
    );
    // New appends continue the sequence after the old ones.
    append_ids(&spool, 1000..1010);
    let more = drain(&spool);
    assert_eq!(
        more.iter().map(id_of).collect::<Vec<_>>(),
        (1000..1010).collect::<Vec<_>>()
    );
    assert!(more[0].seq > recs.last().unwrap().seq);
    spool.ack_through(more.last().unwrap()).unwrap();
    assert_eq!(spool.status().records, 0);
    drop(spool);
    let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(report.possible_duplicates, 0);
    assert!(drain(&spool).is_empty());
}

#[test]
fn never_sent_records_are_not_counted_as_duplicates_and_rewind_resends() {
    let dir = TempDir::new("spool-rewind");
    let (spool, _) = Spool::open(dir.path(), opts()).unwrap();
    append_ids(&spool, 0..50);
    let b = spool.read_batch(20, 1 << 20, Duration::ZERO).unwrap();
    spool.ack_through(&b[9]).unwrap();
    spool.rewind();
    let again = drain(&spool);
    assert_eq!(
        again.iter().map(id_of).collect::<Vec<_>>(),
        (10..50).collect::<Vec<_>>()
    );
    drop(spool);
    // Everything up to 49 was handed out now: all 40 unacked may be duplicates.
    let (_s, report) = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(report.possible_duplicates, 40);

    let dir = TempDir::new("spool-unsent");
    let (spool, _) = Spool::open(dir.path(), opts()).unwrap();
    append_ids(&spool, 0..50);
    let b = spool.read_batch(20, 1 << 20, Duration::ZERO).unwrap();
    spool.ack_through(&b[19]).unwrap();
    drop(spool);
    let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(
        report.possible_duplicates, 0,
        "records never handed out are not duplicates"
    );
    assert_eq!(
        drain(&spool).iter().map(id_of).collect::<Vec<_>>(),
        (20..50).collect::<Vec<_>>()
    );
}

#[test]
fn torn_last_record_is_truncated_and_earlier_records_survive() {
    let dir = TempDir::new("spool-torn");
    {
        let (spool, _) = Spool::open(dir.path(), opts()).unwrap();
        append_ids(&spool, 0..300);
    }
    let segs = segments(dir.path());
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(report.corrupt_records, 1);
    assert!(report.truncated_bytes > 0);
    let ids: Vec<u64> = drain(&spool).iter().map(id_of).collect();
    assert_eq!(ids, (0..299).collect::<Vec<_>>());
    // Appends after the repair land on a clean frame boundary.
    append_ids(&spool, 1000..1001);
    drop(spool);
    let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(report.corrupt_records, 0);
    let ids: Vec<u64> = drain(&spool).iter().map(id_of).collect();
    assert_eq!(ids.len(), 300);
    assert_eq!(ids.last(), Some(&1000));
}

#[test]
fn flipped_byte_in_last_record_and_in_the_middle() {
    let dir = TempDir::new("spool-flip");
    {
        let (spool, _) = Spool::open(dir.path(), opts()).unwrap();
        append_ids(&spool, 0..300);
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    // A flipped byte near the end of the last segment (inside the last record's value).
    let last = segs.last().unwrap();
    let mut b = std::fs::read(last).unwrap();
    let n = b.len();
    b[n - 2] ^= 0x01;
    std::fs::write(last, &b).unwrap();
    // A flipped byte in the middle of the first segment.
    let first = &segs[0];
    let mut b = std::fs::read(first).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x80;
    std::fs::write(first, &b).unwrap();

    let (spool, report) = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(report.corrupt_records, 2, "{report:?}");
    assert_eq!(report.rewritten_segments, 1);
    let ids: BTreeSet<u64> = drain(&spool).iter().map(id_of).collect();
    assert_eq!(ids.len(), 298);
    assert!(!ids.contains(&299));
    let missing: Vec<u64> = (0..299).filter(|i| !ids.contains(i)).collect();
    assert_eq!(
        missing.len(),
        1,
        "exactly one record lost in the middle: {missing:?}"
    );
    drop(spool);
    // The repair is durable: a second open finds nothing wrong.
    let (_s, report) = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(report.corrupt_records, 0);
    assert_eq!(report.records, 298);
}

#[test]
fn second_opener_is_refused() {
    let dir = TempDir::new("spool-lock");
    let (_spool, _) = Spool::open(dir.path(), opts()).unwrap();
    let err = Spool::open(dir.path(), opts())
        .err()
        .expect("second open must fail");
    assert_eq!(err.kind(), "spool-locked");
    assert!(
        err.to_string().contains(&std::process::id().to_string()),
        "{err}"
    );
    assert!(matches!(
        Spool::inspect(dir.path()),
        Err(SpoolError::Locked { .. })
    ));
}

#[test]
fn block_when_full_waits_for_acks() {
    let dir = TempDir::new("spool-block");
    let o = SpoolOptions {
        max_bytes: 64 * 1024,
        segment_bytes: Some(8 * 1024),
        ..opts()
    };
    let (spool, _) = Spool::open(dir.path(), o).unwrap();
    let spool = Arc::new(spool);
    let value = vec![b'x'; 900];
    let writer = {
        let spool = spool.clone();
        std::thread::spawn(move || {
            for i in 0..200u64 {
                let mut v = format!("reading-{i}|").into_bytes();
                v.extend_from_slice(&value);
                spool.append("t", None, &v).unwrap();
            }
        })
    };
    // 200 x ~930 bytes cannot fit in 64 KiB: the writer must stop.
    // Wait until the spool is full (no room for one more ~930-byte frame), then give the writer time.
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while spool.status().bytes + 2 * 940 < 64 * 1024 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let st = spool.status();
    assert!(
        st.records < 200 && st.records > 0,
        "writer should be blocked: {st:?}"
    );
    assert!(st.bytes <= 64 * 1024);
    assert!(!writer.is_finished());
    // Ack as the sender would: everything arrives, in order, nothing dropped.
    let mut got = Vec::new();
    while got.len() < 200 {
        let b = spool
            .read_batch(16, 1 << 20, Duration::from_millis(100))
            .unwrap();
        if let Some(last) = b.last() {
            spool.ack_through(last).unwrap();
        }
        got.extend(b.iter().map(|r| {
            let s =
                std::str::from_utf8(&r.value[..r.value.iter().position(|&c| c == b'|').unwrap()])
                    .unwrap();
            s.strip_prefix("reading-").unwrap().parse::<u64>().unwrap()
        }));
    }
    writer.join().unwrap();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    assert_eq!(spool.status().dropped, 0);
}

#[test]
fn drop_oldest_when_full_drops_and_counts() {
    let dir = TempDir::new("spool-drop");
    let o = SpoolOptions {
        max_bytes: 64 * 1024,
        segment_bytes: Some(8 * 1024),
        reserve_bytes: None,
        when_full: WhenFull::DropOldest,
        ..opts()
    };
    let (spool, _) = Spool::open(dir.path(), o).unwrap();
    let pad = "x".repeat(900);
    for i in 0..200u64 {
        spool
            .append("t", None, format!("reading-{i}|{pad}").as_bytes())
            .unwrap();
    }
    let st = spool.status();
    assert!(st.bytes <= 64 * 1024);
    assert!(st.dropped > 0);
    assert_eq!(st.dropped + st.records, 200, "{st:?}");
    let ids: Vec<u64> = drain(&spool)
        .iter()
        .map(|r| {
            std::str::from_utf8(&r.value)
                .unwrap()
                .split('|')
                .next()
                .unwrap()[8..]
                .parse()
                .unwrap()
        })
        .collect();
    // What is left is the newest records, contiguous and in order.
    assert_eq!(ids, (st.dropped..200).collect::<Vec<_>>());
}

#[test]
fn record_larger_than_a_quarter_of_the_spool_is_refused() {
    let dir = TempDir::new("spool-big");
    let (spool, _) = Spool::open(
        dir.path(),
        SpoolOptions {
            max_bytes: 64 * 1024,
            segment_bytes: Some(8192),
            ..opts()
        },
    )
    .unwrap();
    let err = spool.append("t", None, &vec![0u8; 20 * 1024]).unwrap_err();
    assert_eq!(err.kind(), "record-too-large");
}

#[test]
fn interrupt_wakes_a_blocked_appender() {
    let dir = TempDir::new("spool-int");
    let (spool, _) = Spool::open(
        dir.path(),
        SpoolOptions {
            max_bytes: 64 * 1024,
            segment_bytes: Some(8192),
            ..opts()
        },
    )
    .unwrap();
    let spool = Arc::new(spool);
    let s2 = spool.clone();
    let t = std::thread::spawn(move || {
        loop {
            if let Err(e) = s2.append("t", None, &[1u8; 1000]) {
                return e;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    spool.interrupt();
    assert_eq!(t.join().unwrap().kind(), "spool-interrupted");
}

#[test]
fn inspect_reports_a_stopped_spool_without_changing_it() {
    let dir = TempDir::new("spool-inspect");
    {
        let (spool, _) = Spool::open(dir.path(), opts()).unwrap();
        append_ids(&spool, 0..100);
        let b = spool.read_batch(30, 1 << 20, Duration::ZERO).unwrap();
        spool.ack_through(&b[29]).unwrap();
    }
    let last = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (st, report) = Spool::inspect(dir.path()).unwrap();
    assert_eq!(st.records, 69);
    assert_eq!(st.acked_seq, 30);
    assert_eq!(report.corrupt_records, 1);
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        len - 3,
        "inspect must not repair"
    );
}

#[test]
fn concurrent_appends_with_partial_acks_and_rewinds_ack_each_record_once_in_order() {
    let dir = TempDir::new("spool-concurrent");
    let o = SpoolOptions {
        max_bytes: 256 * 1024,
        segment_bytes: Some(8 * 1024),
        ..opts()
    };
    let (spool, _) = Spool::open(dir.path(), o).unwrap();
    let spool = Arc::new(spool);
    const N: u64 = 20_000;
    let writer = {
        let spool = spool.clone();
        std::thread::spawn(move || append_ids(&spool, 0..N))
    };
    let mut acked = Vec::with_capacity(N as usize);
    let mut rng = 0x2545_f491u64;
    let mut rewinds = 0;
    while (acked.len() as u64) < N {
        let b = spool
            .read_batch(97, 1 << 20, Duration::from_millis(50))
            .unwrap();
        if b.is_empty() {
            continue;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Acknowledge a random prefix (sometimes none, sometimes all), rewind when not all.
        let k = (rng % (b.len() as u64 + 2)).min(b.len() as u64) as usize;
        if k > 0 {
            spool.ack_through(&b[k - 1]).unwrap();
            acked.extend(b[..k].iter().map(id_of));
        }
        if k < b.len() {
            spool.rewind();
            rewinds += 1;
        }
    }
    writer.join().unwrap();
    assert!(rewinds > 10);
    assert_eq!(acked, (0..N).collect::<Vec<_>>());
    let st = spool.status();
    assert_eq!(st.records, 0);
    assert!(st.segments <= 1, "fully acked segments are deleted: {st:?}");
}

#[test]
fn close_releases_the_directory_while_old_handles_live_on() {
    let dir = TempDir::new("spool-close");
    let (old, _) = Spool::open(dir.path(), opts()).unwrap();
    append_ids(&old, 0..10);
    let handed = drain(&old);
    old.close().unwrap();
    // A new owner can open it at once; the old handle can no longer change anything.
    let (new, report) = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(report.records, 10);
    assert_eq!(
        old.append("t", None, b"late").unwrap_err().kind(),
        "spool-interrupted"
    );
    old.ack_through(&handed[9]).unwrap();
    assert!(
        old.read_batch(10, 1 << 20, Duration::ZERO)
            .unwrap()
            .is_empty()
    );
    drop(old);
    assert_eq!(
        drain(&new).iter().map(id_of).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>(),
        "a late ack from the old handle is ignored"
    );
}
