//! `avro-edge produce` and `avro-edge consume`.
use super::{CmdResult, Failure};

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::kafka::TopicSpec;
use crate::producer::{Acks, Compression, DeliveryHandle, Producer, ProducerConfig};

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Bootstrap brokers, comma-separated.
    #[arg(long, env = "AVRO_EDGE_BROKERS", value_delimiter = ',', required = true)]
    pub brokers: Vec<String>,
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Registry subject whose latest schema encodes the records (e.g. sensor-data-value).
    #[arg(long)]
    pub subject: String,
    /// Schema Registry URL; repeat for several.
    #[arg(long = "registry")]
    pub registry: Vec<String>,
    /// Offline schema cache directory.
    #[arg(long)]
    pub schema_cache: Option<PathBuf>,
    /// all | 1 | 0 (0: no acknowledgement, no offsets, loss possible).
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Record field whose value becomes the Kafka key.
    #[arg(long)]
    pub key_field: Option<String>,
    /// none | gzip | snappy.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Create the topic with this many partitions when it does not exist.
    #[arg(long)]
    pub create_partitions: Option<i32>,
}

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {}

pub fn consume(_a: ConsumeArgs) -> CmdResult {
    Err(Failure::other(1, "unavailable", "consume is not built yet"))
}

// ---- produce ----

struct Tally {
    read: u64,
    sent: u64,
    acked: u64,
    failed: u64,
}

fn settle(h: DeliveryHandle, t: &mut Tally, line: u64) {
    match h.wait() {
        Ok(_) => t.acked += 1,
        Err(e) => {
            t.failed += 1;
            tracing::warn!(line, kind = crate::error::ErrorKind::kind(&e), error = %e, "record not delivered");
        }
    }
}

fn key_of(v: &serde_json::Value, field: &str) -> Option<Vec<u8>> {
    match v.get(field)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone().into_bytes()),
        other => Some(other.to_string().into_bytes()),
    }
}

pub fn produce(a: ProduceArgs) -> CmdResult {
    let source = crate::registry::open_source(&a.registry, a.schema_cache.as_deref()).map_err(|e| Failure::runtime(&e))?;
    let codec = crate::codec::Codec::new(source);
    let mut cfg = ProducerConfig::new(a.brokers.clone());
    cfg.acks = Acks::parse(&a.acks).map_err(|e| Failure::bad_input(&e))?;
    cfg.compression = Compression::parse(&a.compression).map_err(|e| Failure::bad_input(&e))?;
    cfg.auto_create = a.create_partitions.map(|partitions| TopicSpec { partitions, replication: 1 });
    let producer = Producer::connect(cfg).map_err(|e| Failure::runtime(&e))?;
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut t = Tally { read: 0, sent: 0, acked: 0, failed: 0 };
    let mut pending: VecDeque<(u64, DeliveryHandle)> = VecDeque::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Failure::other(1, "stdin", e.to_string()))?;
        t.read += 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                t.failed += 1;
                eprintln!("error[not-json]: line {}: {e}", t.read);
                continue;
            }
        };
        let bytes = match codec.encode_json(&a.subject, &value) {
            Ok(b) => b,
            Err(e) => {
                t.failed += 1;
                eprintln!("error[{}]: line {}: {e}", crate::error::ErrorKind::kind(&e), t.read);
                continue;
            }
        };
        let key = a.key_field.as_deref().and_then(|f| key_of(&value, f));
        pending.push_back((t.read, producer.enqueue(&a.topic, key.as_deref(), &bytes)));
        t.sent += 1;
        // Settle what is done, in order; bound what is outstanding.
        while let Some((_, h)) = pending.front() {
            if h.try_result().is_none() && pending.len() < 100_000 {
                break;
            }
            if let Some((n, h)) = pending.pop_front() {
                settle(h, &mut t, n);
            }
        }
        if last_progress.elapsed() > Duration::from_secs(5) {
            last_progress = Instant::now();
            let rate = t.sent as f64 / start.elapsed().as_secs_f64();
            eprintln!("progress: sent {} acked {} failed {} ({rate:.0} msgs/s)", t.sent, t.acked, t.failed);
        }
    }
    let _ = producer.flush(Duration::from_secs(60));
    for (n, h) in pending {
        settle(h, &mut t, n);
    }
    let _ = producer.close();
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    println!(
        "sent {} acked {} failed {} in {secs:.2}s ({:.0} msgs/s)",
        t.sent,
        t.acked,
        t.failed,
        t.sent as f64 / secs
    );
    if t.failed > 0 {
        return Err(Failure::other(1, "records-failed", format!("{} records not delivered", t.failed)));
    }
    Ok(())
}
