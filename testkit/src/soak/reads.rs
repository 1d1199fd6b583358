//! What the checker reads, each independently of the code under test: every partition from its
//! leader with raw Fetch requests and kafka-protocol's batch decoder, the Avro value's first two
//! fields (sensorId, timestamp) decoded here by hand; the dead-letter file; the consumer members'
//! JSON lines (serde_json); and the members' and forwarders' log lines that matter (joins,
//! heartbeat timeouts, producer ids), with their times.
//!
//! Must not judge (the checker does) and must not use avro-edge's consumer or codec.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use avro_edge::__test::Target;
use base64::Engine as _;

use super::gateway::{ID_BASE, Session, field};
use super::site::Site;

/// One stored record: its reading's id and where and how it was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: u64,
    pub sensor: u32,
    pub partition: i32,
    pub offset: i64,
    pub producer_id: i64,
    pub epoch: i16,
    pub sequence: i32,
    /// The record's Kafka timestamp (the forwarder's clock, faked or not).
    pub timestamp: i64,
    /// The key is the value's sensorId.
    pub key_ok: bool,
}

/// Every record of the topic; records whose value is not one of ours are described in the second
/// list.
pub fn read_stored(site: &Site, accepted: u64) -> Result<(Vec<Stored>, Vec<String>), String> {
    let client = crate::read_client(&site.direct);
    let mut out = Vec::new();
    let mut alien = Vec::new();
    for p in 0..site.partitions {
        let leader = site.leader_addr(p)?;
        let target = Target::Addr(leader);
        crate::fetch_partition_each(&client, &target, &site.topic, p, Duration::ZERO, |r| {
            let value = r.value.as_deref().unwrap_or_default();
            match reading_of(value) {
                Some((sensor, ts)) if ts >= ID_BASE && ((ts - ID_BASE) as u64) < accepted => {
                    let key_ok = r.key.as_deref() == Some(format!("s-{sensor}").as_bytes());
                    out.push(Stored {
                        id: (ts - ID_BASE) as u64,
                        sensor,
                        partition: p,
                        offset: r.offset,
                        producer_id: r.producer_id,
                        epoch: r.producer_epoch,
                        sequence: r.sequence,
                        timestamp: r.timestamp,
                        key_ok,
                    });
                }
                other => alien.push(format!("partition {p} offset {}: {other:?}", r.offset)),
            }
        })?;
    }
    client.close();
    Ok((out, alien))
}

/// An Avro zigzag varint at `at` (moved past it).
fn varint(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((v >> 1) as i64 ^ -((v & 1) as i64));
        }
    }
    None
}

/// (sensor number, timestamp) of a Confluent-framed SensorData value: magic 0, a 4-byte schema
/// id, then the record's first fields, `sensorId` (string `s-N`) and `timestamp` (long).
pub fn reading_of(value: &[u8]) -> Option<(u32, i64)> {
    if value.len() < 5 || value[0] != 0 {
        return None;
    }
    let mut at = 5;
    let len = usize::try_from(varint(value, &mut at)?).ok()?;
    let sensor = std::str::from_utf8(value.get(at..at.checked_add(len)?)?).ok()?;
    at += len;
    let ts = varint(value, &mut at)?;
    Some((sensor.strip_prefix("s-")?.parse().ok()?, ts))
}

/// One dead-letter entry.
#[derive(Debug, Clone)]
pub struct DeadLettered {
    /// The reading's id, when the entry carries one of ours.
    pub id: Option<u64>,
    /// `reason.rejection` (a broker's refusal) or `reason.kind`.
    pub reason: String,
    pub at_ms: u64,
}

/// Every entry of the dead-letter file and its rotated predecessor.
pub fn read_dead_letters(path: &Path) -> Vec<DeadLettered> {
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    let mut out = Vec::new();
    for p in [PathBuf::from(rotated), path.to_path_buf()] {
        for line in lines(&p) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                out.push(DeadLettered {
                    id: None,
                    reason: "unreadable dead-letter line".into(),
                    at_ms: 0,
                });
                continue;
            };
            let reason = &v["reason"];
            let reason = (reason["rejection"].as_str())
                .or(reason["kind"].as_str())
                .unwrap_or("?");
            let id = match v["value_base64"].as_str() {
                Some(b) => (base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|bytes| reading_of(&bytes))
                    .map(|(_, ts)| ts),
                None => (v["line"].as_str())
                    .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .and_then(|l| l["timestamp"].as_i64()),
            };
            out.push(DeadLettered {
                id: id.and_then(|ts| u64::try_from(ts - ID_BASE).ok()),
                reason: reason.to_string(),
                at_ms: v["time"].as_str().and_then(rfc3339_ms).unwrap_or(0),
            });
        }
    }
    out
}

/// What the members wrote: per id how often (ids below `n`), all lines, and lines that are not
/// one of the `n` readings.
#[derive(Debug, Default)]
pub struct Consumed {
    pub counts: Vec<u32>,
    pub lines: u64,
    pub alien: u64,
}

pub fn read_consumed(outputs: &[PathBuf], n: u64) -> Consumed {
    let mut c = Consumed {
        counts: vec![0; n as usize],
        ..Consumed::default()
    };
    for p in outputs {
        for line in lines(p) {
            c.lines += 1;
            let v: Option<serde_json::Value> = serde_json::from_str(&line).ok();
            let id = (v.and_then(|v| v["timestamp"].as_i64()))
                .and_then(|ts| u64::try_from(ts - ID_BASE).ok())
                .filter(|&id| id < n);
            match id {
                Some(id) => c.counts[id as usize] += 1,
                None => c.alien += 1,
            }
        }
    }
    c
}

/// Ids consumed so far (distinct), for waiting on the members.
pub fn consumed_distinct(outputs: &[PathBuf], n: u64) -> u64 {
    let c = read_consumed(outputs, n);
    c.counts.iter().filter(|&&k| k > 0).count() as u64
}

/// One member's group history from its logs.
#[derive(Debug, Clone, Default)]
pub struct Joins {
    /// When it joined ("joined group" lines), ms since the epoch.
    pub joined_ms: Vec<u64>,
    /// "no heartbeat answer for a session timeout; rejoining" lines.
    pub heartbeat_timeouts: u64,
    /// Processes (one log each).
    pub processes: u64,
}

impl Joins {
    /// Joins beyond each process's first.
    pub fn rejoins(&self) -> u64 {
        (self.joined_ms.len() as u64).saturating_sub(self.processes)
    }
}

pub fn read_joins(logs: &[PathBuf]) -> Joins {
    let mut j = Joins {
        processes: logs.len() as u64,
        ..Joins::default()
    };
    for line in logs.iter().flat_map(|p| lines(p)) {
        if line.contains("joined group") {
            j.joined_ms.push(line_time(&line).unwrap_or(0));
        } else if line.contains("no heartbeat answer for a session timeout") {
            j.heartbeat_timeouts += 1;
        }
    }
    j
}

/// The producer ids each forwarder process logged ("idempotent producer id producer_id=N").
pub fn producer_ids(sessions: &[Session]) -> Vec<Vec<i64>> {
    (sessions.iter())
        .map(|s| {
            lines(&s.log)
                .filter(|l| l.contains("idempotent producer id"))
                .filter_map(|l| field(&l, "producer_id="))
                .map(|id| id as i64)
                .collect()
        })
        .collect()
}

/// Lines of a text file, read as they are used (none when it cannot be read).
fn lines(p: &Path) -> impl Iterator<Item = String> + use<> {
    (std::fs::File::open(p).ok().into_iter())
        .flat_map(|f| std::io::BufReader::new(f).lines().map_while(Result::ok))
}

/// The time at the start of a `tracing` log line (`2026-12-04T18:55:33.123456Z  INFO …`).
fn line_time(line: &str) -> Option<u64> {
    rfc3339_ms(line.split_whitespace().next()?)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…]Z` to ms since the epoch (UTC).
pub fn rfc3339_ms(s: &str) -> Option<u64> {
    u64::try_from(crate::log_time_us(s)? / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_reads_what_tracing_and_the_dead_letter_file_write() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ms("2025-11-25T00:00:00.000Z"),
            Some(1_764_028_800_000)
        );
        assert_eq!(
            rfc3339_ms("2025-11-25T00:00:01.234567Z"),
            Some(1_764_028_801_234)
        );
        assert_eq!(rfc3339_ms("garbage"), None);
    }

    #[test]
    fn a_sensor_value_gives_its_sensor_and_timestamp() {
        // magic, schema id 1, "s-3" (len 3 → zigzag 6), timestamp 1 (zigzag 2), then the rest.
        let v = [0, 0, 0, 0, 1, 6, b's', b'-', b'3', 2, 0, 0];
        assert_eq!(reading_of(&v), Some((3, 1)));
        assert_eq!(reading_of(&v[..7]), None);
        assert_eq!(reading_of(&[1, 0, 0, 0, 1, 6]), None);
    }
}
