//! Spool micro-benchmark: appends/s and drain/s (read + ack) for each fsync policy. Prints a table.
//!
//! `cargo bench --bench spool` (set SPOOL_BENCH_DIR to measure a particular disk; default `target/bench-spool`,
//! which is on the same disk as the build, not a tmpfs, so fsync costs what it costs there).

use std::time::{Duration, Instant};

use avro_edge::spool::{FsyncPolicy, Spool, SpoolOptions, WhenFull};

fn main() {
    let base = std::env::var_os("SPOOL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-spool")
        });
    // A SensorData record is ~40 bytes of Avro plus the 5-byte Confluent header.
    let value = vec![0x2au8; 45];
    let cases: [(&str, FsyncPolicy, u64); 3] = [
        ("never", FsyncPolicy::Never, 300_000),
        (
            "interval 100 ms",
            FsyncPolicy::Interval(Duration::from_millis(100)),
            300_000,
        ),
        ("always", FsyncPolicy::Always, 3_000),
    ];
    println!(
        "spool benchmark: {}-byte values, key 12 bytes, dir {}",
        value.len(),
        base.display()
    );
    println!("| fsync | records | appends/s | drain/s (read+ack, batches of 500) | spool MiB |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, fsync, n) in cases {
        let dir = base.join(name.replace(' ', "-"));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = SpoolOptions {
            fsync,
            max_bytes: 1 << 30,
            when_full: WhenFull::Block,
            segment_bytes: None,
        };
        let (spool, _) = Spool::open(&dir, opts).expect("open spool");
        let t = Instant::now();
        for i in 0..n {
            let key = format!("sensor-{:05}", i % 1000);
            spool
                .append("sensor-data", Some(key.as_bytes()), &value)
                .expect("append");
        }
        let append_s = t.elapsed().as_secs_f64();
        let mib = spool.status().bytes as f64 / (1024.0 * 1024.0);
        let t = Instant::now();
        let mut drained = 0u64;
        loop {
            let b = spool
                .read_batch(500, 1 << 20, Duration::ZERO)
                .expect("read");
            let Some(last) = b.last() else { break };
            spool.ack_through(last).expect("ack");
            drained += b.len() as u64;
        }
        let drain_s = t.elapsed().as_secs_f64();
        assert_eq!(drained, n);
        println!(
            "| {name} | {n} | {:.0} | {:.0} | {mib:.1} |",
            n as f64 / append_s,
            n as f64 / drain_s
        );
        drop(spool);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
