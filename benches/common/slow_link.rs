//! The compression bench's third table: the `avro-edge forward` binary sending the same SensorData
//! readings through a 64 kbit/s link (the test kit's TCP proxy in [`Mode::Slow`], 50 ms each way),
//! once per codec, to an Apache Kafka node of its own that advertises the proxy's port (so every
//! connection, metadata redirects included, crosses the link). Per codec: the bytes the proxy
//! delivered up (gateway → broker) and down per reading, the seconds from spawn to the forwarder's
//! exit after the last acknowledgement, and the forwarder's CPU (user + system) per reading. The
//! bytes include the run's fixed traffic (metadata, InitProducerId, topic creation: ~2 KiB), spread
//! over the readings. Must not assert on speed or size; a run that does not get every reading
//! acknowledged is reported as an error instead of a row.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use avro_edge::Compression;
use avro_edge_testkit::net::{Link, Mode, Proxy};
use avro_edge_testkit::{BrokerSetup, TestBroker, root, tmpdir, unique_topic};

use super::CODECS;
use super::builds;

/// The link: 64 kbit/s each way, 50 ms added each way.
const BITS_PER_SEC: u64 = 64_000;
const DELAY: Duration = Duration::from_millis(50);

/// The binary: the glibc release build when `scripts/bench-builds` made it, else cargo's for this bench.
fn forwarder() -> PathBuf {
    builds::builds()
        .0
        .into_iter()
        .find(|b| b.name == "glibc")
        .map(|b| b.path)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_avro-edge")))
}

/// One codec's run through the link.
struct LinkRun {
    up: u64,
    down: u64,
    secs: f64,
    cpu: f64,
}

/// The forwarder's final `acked=` count in its log.
fn acked(log: &str) -> u64 {
    log.rsplit("acked=")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Forward `lines` (`n` readings) through the proxy with codec `c`.
fn run(proxy: &Proxy, c: Compression, lines: &str, n: usize) -> Result<LinkRun, String> {
    let dir = tmpdir(&format!("slow-link-{c}"));
    let (cache, spool, dead) = (
        root().join("fixtures/schema-cache"),
        dir.join("spool"),
        dir.join("dead.ndjson"),
    );
    let (bootstrap, topic, codec) = (
        proxy.addr().to_string(),
        unique_topic(&format!("bench-slow-{c}")),
        format!("kafka.compression={c}"),
    );
    let args = [
        "forward",
        "--brokers",
        &bootstrap,
        "--topic",
        &topic,
        "--subject",
        "sensor-data-value",
        "--fsync",
        "interval",
        "--schema-cache",
        &cache.to_string_lossy(),
        "--spool",
        &spool.to_string_lossy(),
        "--dead-letter",
        &dead.to_string_lossy(),
        "--set",
        "kafka.create_partitions=3",
        "--set",
        &codec,
        "--drain-timeout-ms",
        "600000",
    ];
    let before = proxy.traffic();
    let t = builds::timed(
        &forwarder(),
        &args,
        &[("RUST_LOG", "info")],
        Some(lines.as_bytes()),
    )
    .map_err(|e| format!("{c}: forwarder not run: {e}"))?;
    let after = proxy.traffic();
    let got = acked(&t.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    if !t.ok || got != n as u64 {
        return Err(format!(
            "{c}: {got} of {n} readings acknowledged (exit ok: {}); log tail: {}",
            t.ok,
            t.stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    Ok(LinkRun {
        up: after.up - before.up,
        down: after.down - before.down,
        secs: t.wall,
        cpu: t.user + t.sys,
    })
}

/// Print the table: every codec through one slow link to one broker.
pub fn table(values: &[serde_json::Value]) -> Result<(), String> {
    let n = builds::env_count("AVRO_EDGE_BENCH_SLOW_N", 2_000).min(values.len());
    let lines: String = values[..n].iter().map(|v| format!("{v}\n")).collect();
    let proxy = Proxy::bind().map_err(|e| e.to_string())?;
    let broker = TestBroker::own_with(&BrokerSetup {
        advertised_port: Some(proxy.port()),
        ..BrokerSetup::default()
    })
    .map_err(|e| e.to_string())?;
    let upstream = format!("127.0.0.1:{}", broker.port());
    proxy.set_upstream(upstream.parse().map_err(|e| format!("{upstream}: {e}"))?);
    proxy
        .set(Mode::Slow(Arc::new(Link::new(BITS_PER_SEC, DELAY))))
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for c in CODECS {
        rows.push((c, run(&proxy, c, &lines, n)?));
    }
    println!(
        "avro-edge forward through a {} kbit/s link ({} ms each way): {n} SensorData readings as NDJSON on stdin, fsync interval, 3 partitions, one Apache Kafka node behind the link; bytes the link carried per reading (the run's fixed traffic included), spawn to exit, the forwarder's CPU per reading",
        BITS_PER_SEC / 1000,
        DELAY.as_millis()
    );
    println!("| codec | B/reading up | vs none | B/reading down | seconds | CPU µs/reading |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let none_up = rows[0].1.up as f64;
    for (c, r) in &rows {
        println!(
            "| {c} | {:.1} | {:.0} % | {:.1} | {:.1} | {:.1} |",
            r.up as f64 / n as f64,
            100.0 * r.up as f64 / none_up,
            r.down as f64 / n as f64,
            r.secs,
            r.cpu * 1e6 / n as f64
        );
    }
    Ok(())
}
