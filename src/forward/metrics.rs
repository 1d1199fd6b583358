//! Forwarder counters: a periodic one-line log summary, Prometheus text on an optional loopback HTTP port
//! (`GET /metrics`, std `TcpListener`, no HTTP crate), and a `stats.json` snapshot in the spool directory
//! that `avro-edge spool status` shows for a stopped forwarder.
//!
//! Must not block the data path: counters are atomics; the HTTP server is one thread that answers one
//! short request at a time and never reads more than a few KiB from a client.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::held::{self, Held, HeldState};
use crate::error::Kind;
use crate::spool::{SpoolFull, SpoolStatus};

/// The live counters, shared by inputs, sender and reporters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub spooled: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Records read from an input after it was stopped (not accepted).
    pub dropped_input: AtomicU64,
    /// 1 while the sender holds records back because the system clock is below its lower bound
    /// (see `clock_check`), else 0.
    pub clock_insane: AtomicU64,
    /// The clock's lower bound (ms since the epoch) the sender last checked against.
    pub clock_lower_bound_ms: AtomicU64,
    /// Spooled records the broker refused for good (dead-lettered by the sender), by rejection
    /// (`message-too-large`, ...): rare, so a map under a lock.
    forward_dead_lettered: Mutex<BTreeMap<&'static str, u64>>,
    last_error: Mutex<Option<LastError>>,
    /// What keeps records in the spool now, and the refusals so far (see `held`).
    pub held: HeldState,
    /// Records sent and not acknowledged since when (see `stall`).
    pub stall: super::stall::Stall,
}

/// The most recent failure (kind + message + time), for the summary and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// The error's stable kind (see `avro_edge::Kind`).
    pub kind: String,
    /// The error's message (never a secret).
    pub message: String,
    /// When it happened, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Everything the summary, `/metrics`, `stats.json` and `spool status` show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Input lines read, all inputs together.
    pub received: u64,
    /// Records encoded and written to the spool.
    pub spooled: u64,
    /// Records handed to the sink (resends counted again).
    pub sent: u64,
    /// Records the broker acknowledged (and the spool released).
    pub acked: u64,
    /// Records queued for resending after a failed send.
    pub retried: u64,
    /// Lines written to the dead-letter file (not JSON, not encodable, too long).
    pub dead_lettered: u64,
    /// Spooled records the broker refused for good, written to the dead-letter file by the sender and
    /// released from the spool, by rejection (`message-too-large`, `invalid-record`, ...).
    #[serde(default)]
    pub forward_dead_lettered: BTreeMap<String, u64>,
    /// Input drops after stop plus spool `drop_oldest` drops.
    pub dropped: u64,
    /// Corrupt spool records found since the spool was opened (recovery included).
    pub corrupt_records: u64,
    /// Records resent after a restart that may already have been delivered.
    pub possible_duplicates: u64,
    /// Unacknowledged records in the spool now.
    pub spool_records: u64,
    /// Bytes of spool segment files on disk.
    pub spool_bytes: u64,
    /// Spool segment files on disk.
    pub spool_segments: u64,
    /// Age in milliseconds of the oldest unacknowledged record; `None` when the spool is empty.
    pub oldest_unacked_age_ms: Option<u64>,
    /// The most recent failure, if any.
    pub last_error: Option<LastError>,
    /// The system clock is below its lower bound: records are spooled but held back from sending.
    #[serde(default)]
    pub clock_insane: bool,
    /// Unacknowledged records held back while the clock is insane (0 while it is sane).
    #[serde(default)]
    pub clock_held_records: u64,
    /// The clock's lower bound (ms since the epoch): build time or newest spool time seen.
    #[serde(default)]
    pub clock_lower_bound_ms: u64,
    /// What keeps the records in the spool now: the cause of the failing sends (a refusal that
    /// fixing the setup cures, such as `clock-ahead-of-broker`, or a passing failure); `None` while
    /// sends go through.
    #[serde(default)]
    pub held: Option<Held>,
    /// Unacknowledged records while `held` names a cause (0 otherwise).
    #[serde(default)]
    pub held_records: u64,
    /// Records refused for a cause that fixing the setup cures (kept in the spool and sent again),
    /// by kind; each attempt counts.
    #[serde(default)]
    pub forward_refusals: BTreeMap<String, u64>,
    /// Appends wait for space now: the disk is full, or the spool holds `max_bytes`.
    #[serde(default)]
    pub spool_full: Option<SpoolFull>,
    /// Times appends had to wait because the disk was full / the spool held `max_bytes` (since start).
    #[serde(default)]
    pub spool_full_disk_events: u64,
    /// Times appends had to wait because the spool held `max_bytes` (since start).
    #[serde(default)]
    pub spool_full_max_bytes_events: u64,
    /// The spool's effective size limit (`max_bytes`, or less when the disk has less room).
    #[serde(default)]
    pub spool_limit_bytes: u64,
    /// Free bytes on the spool's file system.
    #[serde(default)]
    pub spool_disk_free_bytes: Option<u64>,
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub fn set_error(&self, kind: Kind, message: &str) {
        let e = LastError {
            kind: kind.as_str().into(),
            message: message.into(),
            at_ms: crate::spool::now_ms(),
        };
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
    }

    /// One more spooled record the broker refused for good (`rejection`), now in the dead-letter file.
    pub fn count_refused(&self, rejection: Kind) {
        *self
            .forward_dead_lettered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(rejection.as_str())
            .or_default() += 1;
    }

    pub fn snapshot(&self, spool: &SpoolStatus) -> Snapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let clock_insane = g(&self.clock_insane) != 0;
        let held = self.held.held().map(|(_, h)| h);
        Snapshot {
            received: g(&self.received),
            spooled: g(&self.spooled),
            sent: g(&self.sent),
            acked: g(&self.acked),
            retried: g(&self.retried),
            dead_lettered: g(&self.dead_lettered),
            forward_dead_lettered: self
                .forward_dead_lettered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            dropped: g(&self.dropped_input) + spool.dropped,
            corrupt_records: spool.corrupt_records,
            possible_duplicates: spool.possible_duplicates + g(&self.retried),
            spool_records: spool.records,
            spool_bytes: spool.bytes,
            spool_segments: spool.segments,
            oldest_unacked_age_ms: spool.oldest_unacked_age_ms,
            spool_full: spool.full,
            spool_full_disk_events: spool.full_disk_events,
            spool_full_max_bytes_events: spool.full_max_bytes_events,
            spool_limit_bytes: spool.limit_bytes,
            spool_disk_free_bytes: spool.disk_free_bytes,
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            clock_insane,
            clock_held_records: if clock_insane { spool.records } else { 0 },
            clock_lower_bound_ms: g(&self.clock_lower_bound_ms),
            held_records: if held.is_some() { spool.records } else { 0 },
            held,
            forward_refusals: self.held.refusals(),
        }
    }
}

impl Snapshot {
    /// Log the one-line summary.
    pub fn log(&self) {
        tracing::info!(
            received = self.received,
            spooled = self.spooled,
            sent = self.sent,
            acked = self.acked,
            retried = self.retried,
            dead_lettered = self.dead_lettered,
            forward_dead_lettered = self.forward_dead_lettered.values().sum::<u64>(),
            dropped = self.dropped,
            spool_records = self.spool_records,
            spool_bytes = self.spool_bytes,
            oldest_unacked_age_ms = self.oldest_unacked_age_ms.unwrap_or(0),
            spool_full = self.spool_full.map_or("", SpoolFull::as_str),
            last_error = self.last_error.as_ref().map_or("", |e| e.kind.as_str()),
            clock_insane = self.clock_insane,
            clock_held_records = self.clock_held_records,
            held = self.held.as_ref().map_or("", |h| h.reason.as_str()),
            "forwarder"
        );
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        for (name, kind, help, v) in self.always_shown() {
            unlabelled(&mut s, name, kind, help, v);
        }
        if let Some(free) = self.spool_disk_free_bytes {
            unlabelled(
                &mut s,
                "spool_disk_free_bytes",
                "gauge",
                "Free bytes on the spool's file system.",
                free,
            );
        }
        self.spool_full_by_reason(&mut s);
        self.dead_lettered_by_kind(&mut s);
        held::prometheus(
            &mut s,
            self.held.as_ref(),
            self.held_records,
            &self.forward_refusals,
        );
        self.age_and_last_error(&mut s);
        s
    }

    /// The metrics without labels that are always shown, in exposition order: name (after
    /// `avro_edge_`), type, help, value.
    fn always_shown(&self) -> [(&'static str, &'static str, &'static str, u64); 16] {
        [
            (
                "received_total",
                "counter",
                "Input records read.",
                self.received,
            ),
            (
                "spooled_total",
                "counter",
                "Records accepted into the spool.",
                self.spooled,
            ),
            (
                "sent_total",
                "counter",
                "Records handed to the producer (resends included).",
                self.sent,
            ),
            (
                "acked_total",
                "counter",
                "Records acknowledged by the broker.",
                self.acked,
            ),
            (
                "retried_total",
                "counter",
                "Records resent after a failed send.",
                self.retried,
            ),
            (
                "dead_lettered_total",
                "counter",
                "Input lines written to the dead-letter file.",
                self.dead_lettered,
            ),
            (
                "dropped_total",
                "counter",
                "Records dropped (spool full with drop_oldest, or read after stop).",
                self.dropped,
            ),
            (
                "corrupt_records_total",
                "counter",
                "Corrupt spool records found and removed.",
                self.corrupt_records,
            ),
            (
                "possible_duplicates_total",
                "counter",
                "Records resent that may already have been delivered.",
                self.possible_duplicates,
            ),
            (
                "spool_records",
                "gauge",
                "Unacknowledged records in the spool.",
                self.spool_records,
            ),
            (
                "spool_bytes",
                "gauge",
                "Bytes of spool segment files.",
                self.spool_bytes,
            ),
            (
                "spool_segments",
                "gauge",
                "Spool segment files.",
                self.spool_segments,
            ),
            (
                "clock_insane",
                "gauge",
                "1 while the system clock is below its lower bound and records are held back from sending.",
                u64::from(self.clock_insane),
            ),
            (
                "clock_held_records",
                "gauge",
                "Unacknowledged records held back because the system clock is insane.",
                self.clock_held_records,
            ),
            (
                "clock_lower_bound_seconds",
                "gauge",
                "Lower bound for the system clock: build time or newest spool time seen.",
                self.clock_lower_bound_ms / 1000,
            ),
            (
                "spool_limit_bytes",
                "gauge",
                "Effective spool size limit: max_bytes, or less when the disk has less room.",
                self.spool_limit_bytes,
            ),
        ]
    }

    /// Whether appends wait for space, and how often they started to, by reason.
    fn spool_full_by_reason(&self, s: &mut String) {
        header(
            s,
            "spool_full",
            "gauge",
            "Appends wait for space (1), by reason: disk full or max_bytes reached.",
        );
        for r in [SpoolFull::Disk, SpoolFull::MaxBytes] {
            let v = u8::from(self.spool_full == Some(r));
            s.push_str(&format!("avro_edge_spool_full{{reason=\"{r}\"}} {v}\n"));
        }
        header(
            s,
            "spool_full_events_total",
            "counter",
            "Times appends started waiting for space, by reason.",
        );
        for (r, v) in [
            (SpoolFull::Disk, self.spool_full_disk_events),
            (SpoolFull::MaxBytes, self.spool_full_max_bytes_events),
        ] {
            s.push_str(&format!(
                "avro_edge_spool_full_events_total{{reason=\"{r}\"}} {v}\n"
            ));
        }
    }

    /// Spooled records the broker refused for good, by rejection.
    fn dead_lettered_by_kind(&self, s: &mut String) {
        header(
            s,
            "forward_dead_lettered_total",
            "counter",
            "Spooled records the broker refused for good, written to the dead-letter file and released from the spool, by rejection.",
        );
        for (kind, v) in &self.forward_dead_lettered {
            let kind = label_value(kind);
            s.push_str(&format!(
                "avro_edge_forward_dead_lettered_total{{kind=\"{kind}\"}} {v}\n"
            ));
        }
    }

    /// The oldest unacknowledged record's age (0 when none), and when the last error happened.
    fn age_and_last_error(&self, s: &mut String) {
        header(
            s,
            "oldest_unacked_age_seconds",
            "gauge",
            "Age of the oldest unacknowledged record.",
        );
        s.push_str(&format!(
            "avro_edge_oldest_unacked_age_seconds {}\n",
            self.oldest_unacked_age_ms
                .map_or(0.0, |ms| ms as f64 / 1000.0)
        ));
        if let Some(e) = &self.last_error {
            let kind = label_value(&e.kind);
            header(
                s,
                "last_error_timestamp_seconds",
                "gauge",
                "Time of the last error, labelled with its kind.",
            );
            s.push_str(&format!(
                "avro_edge_last_error_timestamp_seconds{{kind=\"{kind}\"}} {}\n",
                e.at_ms as f64 / 1000.0
            ));
        }
    }

    /// Write `stats.json` into the spool directory (atomically).
    pub fn save(&self, spool_dir: &Path) -> std::io::Result<()> {
        let tmp = spool_dir.join("stats.json.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, spool_dir.join("stats.json"))
    }

    /// Read the `stats.json` a forwarder left in a spool directory.
    pub fn load(spool_dir: &Path) -> Option<Snapshot> {
        let b = std::fs::read(spool_dir.join("stats.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

/// The `# HELP` and `# TYPE` lines of the metric `avro_edge_<name>`.
fn header(s: &mut String, name: &str, kind: &str, help: &str) {
    s.push_str(&format!(
        "# HELP avro_edge_{name} {help}\n# TYPE avro_edge_{name} {kind}\n"
    ));
}

/// One metric without labels: its header and its value.
fn unlabelled(s: &mut String, name: &str, kind: &str, help: &str, v: u64) {
    header(s, name, kind, help);
    s.push_str(&format!("avro_edge_{name} {v}\n"));
}

/// A kind as a label value: letters, digits and `-` only (nothing to escape).
fn label_value(kind: &str) -> String {
    kind.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// Serve `GET /metrics` on a loopback address until `stop` is set. Returns the bound address.
pub fn serve(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let h = std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        if let Err(e) = answer(conn, &*render) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener failed");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        })?;
    Ok((bound, h))
}

fn answer(mut conn: TcpStream, render: &dyn Fn() -> String) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let first = req.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) =
        if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                render(),
            )
        } else {
            (
                "404 Not Found",
                "text/plain; charset=utf-8",
                "not found: try /metrics\n".to_string(),
            )
        };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field set (the optional ones too), so every line of the exposition shows.
    fn full() -> Snapshot {
        Snapshot {
            received: 1,
            spooled: 2,
            sent: 3,
            acked: 4,
            retried: 5,
            dead_lettered: 6,
            forward_dead_lettered: BTreeMap::from([
                ("message-too-large".to_string(), 7),
                ("bad\"kind}".to_string(), 8),
            ]),
            dropped: 9,
            corrupt_records: 10,
            possible_duplicates: 11,
            spool_records: 12,
            spool_bytes: 13,
            spool_segments: 14,
            oldest_unacked_age_ms: Some(1500),
            last_error: Some(LastError {
                kind: "broker-unreachable\n".into(),
                message: "m".into(),
                at_ms: 1_700_000_000_250,
            }),
            clock_insane: true,
            clock_held_records: 15,
            clock_lower_bound_ms: 1_600_000_000_999,
            held: Some(Held {
                reason: "clock-ahead-of-broker".into(),
                refusal: true,
                since_ms: 1_700_000_000_000,
                message: "m".into(),
            }),
            held_records: 20,
            forward_refusals: BTreeMap::from([("clock-ahead-of-broker".to_string(), 21)]),
            spool_full: Some(SpoolFull::MaxBytes),
            spool_full_disk_events: 16,
            spool_full_max_bytes_events: 17,
            spool_limit_bytes: 18,
            spool_disk_free_bytes: Some(19),
        }
    }

    /// The exposition scrapers and dashboards read: names, HELP, TYPE, labels, values and order.
    #[test]
    fn prometheus_text_is_pinned() {
        let want = r##"# HELP avro_edge_received_total Input records read.
# TYPE avro_edge_received_total counter
avro_edge_received_total 1
# HELP avro_edge_spooled_total Records accepted into the spool.
# TYPE avro_edge_spooled_total counter
avro_edge_spooled_total 2
# HELP avro_edge_sent_total Records handed to the producer (resends included).
# TYPE avro_edge_sent_total counter
avro_edge_sent_total 3
# HELP avro_edge_acked_total Records acknowledged by the broker.
# TYPE avro_edge_acked_total counter
avro_edge_acked_total 4
# HELP avro_edge_retried_total Records resent after a failed send.
# TYPE avro_edge_retried_total counter
avro_edge_retried_total 5
# HELP avro_edge_dead_lettered_total Input lines written to the dead-letter file.
# TYPE avro_edge_dead_lettered_total counter
avro_edge_dead_lettered_total 6
# HELP avro_edge_dropped_total Records dropped (spool full with drop_oldest, or read after stop).
# TYPE avro_edge_dropped_total counter
avro_edge_dropped_total 9
# HELP avro_edge_corrupt_records_total Corrupt spool records found and removed.
# TYPE avro_edge_corrupt_records_total counter
avro_edge_corrupt_records_total 10
# HELP avro_edge_possible_duplicates_total Records resent that may already have been delivered.
# TYPE avro_edge_possible_duplicates_total counter
avro_edge_possible_duplicates_total 11
# HELP avro_edge_spool_records Unacknowledged records in the spool.
# TYPE avro_edge_spool_records gauge
avro_edge_spool_records 12
# HELP avro_edge_spool_bytes Bytes of spool segment files.
# TYPE avro_edge_spool_bytes gauge
avro_edge_spool_bytes 13
# HELP avro_edge_spool_segments Spool segment files.
# TYPE avro_edge_spool_segments gauge
avro_edge_spool_segments 14
# HELP avro_edge_clock_insane 1 while the system clock is below its lower bound and records are held back from sending.
# TYPE avro_edge_clock_insane gauge
avro_edge_clock_insane 1
# HELP avro_edge_clock_held_records Unacknowledged records held back because the system clock is insane.
# TYPE avro_edge_clock_held_records gauge
avro_edge_clock_held_records 15
# HELP avro_edge_clock_lower_bound_seconds Lower bound for the system clock: build time or newest spool time seen.
# TYPE avro_edge_clock_lower_bound_seconds gauge
avro_edge_clock_lower_bound_seconds 1600000000
# HELP avro_edge_spool_limit_bytes Effective spool size limit: max_bytes, or less when the disk has less room.
# TYPE avro_edge_spool_limit_bytes gauge
avro_edge_spool_limit_bytes 18
# HELP avro_edge_spool_disk_free_bytes Free bytes on the spool's file system.
# TYPE avro_edge_spool_disk_free_bytes gauge
avro_edge_spool_disk_free_bytes 19
# HELP avro_edge_spool_full Appends wait for space (1), by reason: disk full or max_bytes reached.
# TYPE avro_edge_spool_full gauge
avro_edge_spool_full{reason="disk"} 0
avro_edge_spool_full{reason="max_bytes"} 1
# HELP avro_edge_spool_full_events_total Times appends started waiting for space, by reason.
# TYPE avro_edge_spool_full_events_total counter
avro_edge_spool_full_events_total{reason="disk"} 16
avro_edge_spool_full_events_total{reason="max_bytes"} 17
# HELP avro_edge_forward_dead_lettered_total Spooled records the broker refused for good, written to the dead-letter file and released from the spool, by rejection.
# TYPE avro_edge_forward_dead_lettered_total counter
avro_edge_forward_dead_lettered_total{kind="badkind"} 8
avro_edge_forward_dead_lettered_total{kind="message-too-large"} 7
# HELP avro_edge_forward_held_records Unacknowledged records kept in the spool because sends fail, by the cause.
# TYPE avro_edge_forward_held_records gauge
avro_edge_forward_held_records{reason="clock-ahead-of-broker"} 20
# HELP avro_edge_forward_refusals_total Records refused for a cause that fixing the setup cures (kept in the spool and sent again), by kind; each attempt counts.
# TYPE avro_edge_forward_refusals_total counter
avro_edge_forward_refusals_total{kind="clock-ahead-of-broker"} 21
# HELP avro_edge_oldest_unacked_age_seconds Age of the oldest unacknowledged record.
# TYPE avro_edge_oldest_unacked_age_seconds gauge
avro_edge_oldest_unacked_age_seconds 1.5
# HELP avro_edge_last_error_timestamp_seconds Time of the last error, labelled with its kind.
# TYPE avro_edge_last_error_timestamp_seconds gauge
avro_edge_last_error_timestamp_seconds{kind="broker-unreachable"} 1700000000.25
"##;
        assert_eq!(full().prometheus(), want);
    }

    /// Without the optional values, their lines are left out and the age is 0.
    #[test]
    fn prometheus_leaves_out_what_is_unknown() {
        let text = Snapshot::default().prometheus();
        assert!(!text.contains("spool_disk_free_bytes"), "{text}");
        assert!(!text.contains("last_error"), "{text}");
        assert!(!text.contains("forward_dead_lettered_total{"), "{text}");
        assert!(
            text.contains("\navro_edge_oldest_unacked_age_seconds 0\n"),
            "{text}"
        );
        assert!(
            text.contains("avro_edge_spool_full{reason=\"disk\"} 0\n"),
            "{text}"
        );
    }
}
