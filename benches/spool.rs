//! Spool micro-benchmark: appends/s and drain/s (read + ack) for each fsync policy, then the forwarder's
//! own overhead (NDJSON in → JSON parse → pass-through encoder → spool → sender → null sink), without the
//! Avro codec and the Kafka producer. Prints tables. The pipeline runs first (its table is printed last),
//! so the process's peak RSS it reports is the pipeline's own, not the spool micro-benchmark's before it.
//!
//! `cargo bench --bench spool` (set SPOOL_BENCH_DIR to measure a particular disk; default `target/bench-spool`,
//! which is on the same disk as the build, not a tmpfs, so fsync costs what it costs there).

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use avro_edge::forwarder::Config;
use avro_edge::forwarder::{self, RecordEncoder, RecordSink};
use avro_edge::{Delivery, OutRecord};
use avro_edge::{ErrorKind, Kind};
use avro_edge::{FsyncPolicy, Spool, SpoolOptions, WhenFull};

/// The pass-through encoder's failure: a line that is not JSON (the bench's lines all are).
#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;
impl ErrorKind for Never {
    fn kind(&self) -> Kind {
        Kind::NotJson
    }
}

/// Parses the line and re-serialises the record (stands in for the codec, which is benchmarked on its own).
struct PassThrough;
impl RecordEncoder for PassThrough {
    type Error = Never;
    fn encode_line_into<'l>(
        &self,
        _subject: &str,
        line: &'l [u8],
        key_field: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Option<avro_edge::KeyBytes<'l>>, Never> {
        let record = avro_edge::parse_record(line).map_err(|_| Never)?;
        serde_json::to_writer(out, &record).map_err(|_| Never)?;
        Ok(key_field
            .and_then(|f| avro_edge::record_key(&record, f))
            .map(avro_edge::KeyBytes::Owned))
    }
}

/// Acknowledges everything at once (stands in for the producer).
struct NullSink;
impl RecordSink for NullSink {
    type Error = Never;
    fn send_batch(&mut self, _topic: &str, records: &[OutRecord]) -> Vec<Result<Delivery, Never>> {
        records
            .iter()
            .map(|_| {
                Ok(Delivery {
                    partition: 0,
                    offset: None,
                })
            })
            .collect()
    }
}

fn main() {
    let base = std::env::var_os("SPOOL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| avro_edge_testkit::root().join("target/bench-spool"));
    // First, while VmHWM holds nothing but the pipeline's own peak.
    let pipeline_table = pipeline(&base);
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
            reserve_bytes: None,
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

    print!("{pipeline_table}");
}

/// Generates SensorData NDJSON lines on the fly, so the input does not sit in memory.
struct Feed {
    next: u64,
    n: u64,
    buf: Vec<u8>,
    at: usize,
}

impl std::io::Read for Feed {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            if self.next == self.n {
                return Ok(0);
            }
            self.buf = format!(
                "{{\"sensorId\":\"sensor-{:03}\",\"timestamp\":{},\"temperature\":21.5,\"humidity\":48.25,\"status\":\"NORMAL\"}}\n",
                self.next % 100,
                1_764_028_800_000u64 + self.next
            )
            .into_bytes();
            self.at = 0;
            self.next += 1;
        }
        let k = (self.buf.len() - self.at).min(out.len());
        out[..k].copy_from_slice(&self.buf[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

/// Runs the pipeline and returns its table (printed after the spool table).
fn pipeline(base: &std::path::Path) -> String {
    let n = 200_000u64;
    let input = std::io::BufReader::new(Feed {
        next: 0,
        n,
        buf: Vec::new(),
        at: 0,
    });
    let dir = base.join("pipeline");
    let _ = std::fs::remove_dir_all(&dir);
    let flags: Vec<(String, String)> = [
        ("spool.dir", dir.join("spool").display().to_string()),
        (
            "dead_letter",
            dir.join("dead-letter.ndjson").display().to_string(),
        ),
        ("spool.fsync", "interval".to_string()),
        ("drain_timeout_ms", "60000".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cfg = Config::load(None, Vec::new(), &flags).expect("config");
    let t = Instant::now();
    let snap = forwarder::run(
        &cfg,
        PassThrough,
        NullSink,
        Box::new(input),
        Arc::new(AtomicBool::new(false)),
    )
    .expect("run");
    let secs = t.elapsed().as_secs_f64();
    let rss_kb = avro_edge_testkit::peak_rss_kb().max(0);
    assert_eq!(snap.acked, n);
    let _ = std::fs::remove_dir_all(&dir);
    format!(
        "\nforwarder pipeline without codec and producer (stdin → spool → acked, fsync interval 100 ms, batches of 500)\n\
         | records | records/s (stdin to acked) | peak RSS of the bench process (pipeline run first) |\n\
         | ---: | ---: | ---: |\n\
         | {n} | {:.0} | {rss_kb} KiB |\n",
        n as f64 / secs
    )
}
