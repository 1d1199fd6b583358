//! Random damage to a spool segment (flipped bytes, cut tails, garbage written over a range): opening never
//! fails or panics, never invents or reorders records, and keeps every record that lies before the damage.

use std::time::Duration;

use crate::spool_support::{TempDir, segments};
use avro_edge::__test::frame;
use avro_edge::{FsyncPolicy, Spool, SpoolOptions, WhenFull};

fn opts() -> SpoolOptions {
    SpoolOptions {
        fsync: FsyncPolicy::Never,
        max_bytes: 8 << 20,
        when_full: WhenFull::Block,
        segment_bytes: Some(1 << 20),
        reserve_bytes: None,
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_damage_keeps_every_record_before_it() {
    let clean = TempDir::new("corrupt-src");
    {
        let (spool, _) = Spool::open(clean.path(), opts()).unwrap();
        for i in 0..300u64 {
            // Values of varying length, some containing bytes that look like frame headers.
            let mut v = format!("reading-{i}|").into_bytes();
            v.extend(std::iter::repeat_n((i % 251) as u8, (i % 37) as usize));
            spool
                .append("sensor-data", Some(format!("s{}", i % 4).as_bytes()), &v)
                .unwrap();
        }
    }
    let segs = segments(clean.path());
    assert_eq!(segs.len(), 1);
    let bytes = std::fs::read(&segs[0]).unwrap();
    let ends: Vec<usize> = frame::scan(&bytes, None)
        .frames
        .iter()
        .map(|f| f.1)
        .collect();
    assert_eq!(ends.len(), 300);
    let cursor = std::fs::read(clean.join("cursor")).unwrap();
    let name = segs[0].file_name().unwrap().to_owned();

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..150 {
        let mut b = bytes.clone();
        let at = 8 + rng.below(b.len() - 8);
        let mode = round % 3;
        match mode {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b.truncate(at),
            _ => {
                let n = 1 + rng.below(64);
                for x in b.iter_mut().skip(at).take(n) {
                    *x = rng.next() as u8;
                }
            }
        }
        let dir = TempDir::new("corrupt-case");
        std::fs::write(dir.join(name.to_str().unwrap()), &b).unwrap();
        std::fs::write(dir.join("cursor"), &cursor).unwrap();
        let (spool, report) =
            Spool::open(dir.path(), opts()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let mut ids = Vec::new();
        loop {
            let batch = spool.read_batch(100, 1 << 20, Duration::ZERO).unwrap();
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let s = &r.value[..r.value.iter().position(|&c| c == b'|').unwrap()];
                ids.push(
                    std::str::from_utf8(s).unwrap()[8..]
                        .parse::<usize>()
                        .unwrap(),
                );
            }
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "round {round}: order");
        assert!(
            ids.iter().all(|&i| i < 300),
            "round {round}: invented record"
        );
        let intact = ends.iter().take_while(|&&e| e <= at).count();
        assert!(
            ids.len() >= intact && ids[..intact] == (0..intact).collect::<Vec<_>>()[..],
            "round {round} mode {mode} at {at}: lost a record before the damage"
        );
        // A cut exactly between two records looks like records never written (the fsync window a power
        // loss may take); anything else that loses records must be reported.
        let clean_cut = mode == 1 && (at == 8 || ends.contains(&at));
        if ids.len() < 300 && !clean_cut {
            assert!(
                report.corrupt_records >= 1,
                "round {round}: a loss must be reported"
            );
        }
        // The repaired spool opens clean the second time.
        drop(spool);
        let (_s, again) = Spool::open(dir.path(), opts()).unwrap();
        assert_eq!(
            again.corrupt_records, 0,
            "round {round}: repair was not durable"
        );
        assert_eq!(again.records as usize, ids.len());
    }
}
