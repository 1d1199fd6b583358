//! The dead-letter file: one JSON line per rejected input line, with the original line, the input's name,
//! the reason (stable kind + message) and the time; and one per spooled record the broker refused for good
//! (the sender's), with its topic, key and value (base64: the value is the Confluent-framed Avro message
//! as it was spooled, so nothing is lost), its spool time and the reason (kind, the broker's rejection,
//! message).
//!
//! Must not log the line or the record itself (it may hold secrets): logs carry the input or topic and the
//! kind only. Must not
//! fill the disk: past `max_bytes` the file is renamed to `<path>.1` (replacing the previous one) and a new
//! one is started, so at most twice `max_bytes` is kept.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::Kind;

/// A spooled record the broker refused for good, for [`DeadLetter::write_record`].
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    /// The topic it was sent to.
    pub topic: &'a str,
    /// Its Kafka key.
    pub key: Option<&'a [u8]>,
    /// Its Kafka value (the Confluent-framed Avro message).
    pub value: &'a [u8],
    /// When it was spooled (ms since the epoch).
    pub spooled_ms: u64,
    /// The error's stable kind (see `avro_edge::Kind`), e.g. `kafka-error`.
    pub kind: Kind,
    /// Why the broker refuses it for good, e.g. `message-too-large`.
    pub rejection: Kind,
    /// The error's message.
    pub message: &'a str,
}

/// An append-only dead-letter file shared by every input and the sender.
pub struct DeadLetter {
    path: PathBuf,
    max_bytes: u64,
    file: Mutex<(File, u64)>,
}

impl DeadLetter {
    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<DeadLetter> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(DeadLetter {
            path: path.to_path_buf(),
            max_bytes,
            file: Mutex::new((file, len)),
        })
    }

    /// The file the previous entries move to when the current file is full.
    pub fn rotated_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        PathBuf::from(p)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry. `truncated` says `line` is only the start of a longer line.
    pub fn write(
        &self,
        input: &str,
        line: &[u8],
        truncated: bool,
        kind: Kind,
        message: &str,
    ) -> std::io::Result<()> {
        let mut entry = serde_json::json!({
            "time": rfc3339_ms(crate::spool::now_ms()),
            "input": input,
            "reason": { "kind": kind, "message": message },
            "line": String::from_utf8_lossy(line),
        });
        if truncated && let Some(o) = entry.as_object_mut() {
            o.insert("line_truncated".into(), serde_json::Value::Bool(true));
        }
        self.append(&entry)
    }

    /// Append one entry for a spooled record the broker refused for good.
    pub fn write_record(&self, r: &Refused<'_>) -> std::io::Result<()> {
        let entry = serde_json::json!({
            "time": rfc3339_ms(crate::spool::now_ms()),
            "topic": r.topic,
            "reason": { "kind": r.kind, "rejection": r.rejection, "message": r.message },
            "spooled": rfc3339_ms(r.spooled_ms),
            "key_base64": r.key.map(|k| BASE64.encode(k)),
            "value_base64": BASE64.encode(r.value),
            "value_bytes": r.value.len(),
        });
        self.append(&entry)
    }

    /// Append one JSON line, moving a full file to `.1` first.
    fn append(&self, entry: &serde_json::Value) -> std::io::Result<()> {
        let mut text = entry.to_string();
        text.push('\n');
        let mut g = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.1 > 0 && g.1 + text.len() as u64 > self.max_bytes {
            std::fs::rename(&self.path, self.rotated_path())?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            *g = (file, 0);
            tracing::warn!(path = %self.path.display(), max_bytes = self.max_bytes, "dead-letter file full: moved to .1");
        }
        g.0.write_all(text.as_bytes())?;
        g.1 += text.len() as u64;
        Ok(())
    }
}

/// `2026-11-25T02:10:00.123Z` from milliseconds since the epoch (UTC, proleptic Gregorian).
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn refused_records_keep_their_bytes() {
        use base64::Engine as _;
        let path = std::env::temp_dir().join(format!("avro-edge-dl-{}.ndjson", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let dead = super::DeadLetter::open(&path, 1 << 20).unwrap();
        let value = [0u8, 0, 0, 0, 1, 0xff, b'\n'];
        dead.write_record(&super::Refused {
            topic: "t",
            key: Some(b"s-1"),
            value: &value,
            spooled_ms: 951_827_696_789,
            kind: crate::Kind::KafkaError,
            rejection: crate::Kind::MessageTooLarge,
            message: "kafka error 10 (MessageTooLarge) from produce t-0",
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["topic"], "t");
        assert_eq!(v["reason"]["kind"], "kafka-error");
        assert_eq!(v["reason"]["rejection"], "message-too-large");
        assert_eq!(v["spooled"], "2000-02-29T12:34:56.789Z");
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(
            b64.decode(v["key_base64"].as_str().unwrap()).unwrap(),
            b"s-1"
        );
        assert_eq!(
            b64.decode(v["value_base64"].as_str().unwrap()).unwrap(),
            value
        );
        assert_eq!(v["value_bytes"], 7);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29T12:34:56.789Z (a leap day) = 951827696789 ms (date -d @951827696).
        assert_eq!(
            super::rfc3339_ms(951_827_696_789),
            "2000-02-29T12:34:56.789Z"
        );
    }
}
