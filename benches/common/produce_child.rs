//! The library producer's side of the producer and yardstick benches, run in a child process: N
//! SensorData-sized records (40-byte values, keys `sensor-<i % 100>`) cycled from 1,000 built before
//! timing, acks=all, linger 5 ms, metadata fetched before timing; prints one JSON line (msgs, acked,
//! secs, failed, vmhwm_kb). Must not decide what the parent does with it.

use std::time::{Duration, Instant};

use avro_edge::{Acks, Producer, ProducerConfig};

/// Distinct records built before timing and cycled on both sides (passed to bench_produce.py).
pub const DISTINCT: usize = 1000;

fn records() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..DISTINCT)
        .map(|i| {
            let key = format!("sensor-{}", i % 100).into_bytes();
            let mut value = vec![0u8, 0, 0, 0, 1];
            value.extend((0..35).map(|j| ((i + j) % 251) as u8));
            (key, value)
        })
        .collect()
}

pub fn child(bootstrap: &str, topic: &str, n: usize) {
    let recs = records();
    let mut cfg = ProducerConfig::new([bootstrap]);
    cfg.acks = Acks::All;
    cfg.linger = Duration::from_millis(5);
    let p = Producer::connect(cfg).expect("connect");
    p.partitions(topic).expect("metadata");
    let start = Instant::now();
    for i in 0..n {
        let (k, v) = &recs[i % DISTINCT];
        drop(p.enqueue(topic, Some(k), v));
    }
    let flushed = p.flush(Duration::from_secs(120));
    let secs = start.elapsed().as_secs_f64();
    let st = p.stats();
    let failed = st.failed
        + if flushed.is_err() {
            st.enqueued - st.acked - st.failed
        } else {
            0
        };
    println!(
        "{}",
        serde_json::json!({"msgs": n, "acked": st.acked, "secs": secs, "failed": failed, "vmhwm_kb": avro_edge_testkit::peak_rss_kb()})
    );
    let _ = p.close();
}
