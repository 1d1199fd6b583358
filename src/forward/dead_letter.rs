//! The dead-letter file: one JSON line per rejected input line, with the original line, the input's name,
//! the reason (stable kind + message) and the time.
//!
//! Must not log the line itself (it may hold secrets): logs carry the input and the kind only. Must not
//! fill the disk: past `max_bytes` the file is renamed to `<path>.1` (replacing the previous one) and a new
//! one is started, so at most twice `max_bytes` is kept.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// An append-only dead-letter file shared by every input.
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
        kind: &str,
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
    fn rfc3339() {
        assert_eq!(super::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29T12:34:56.789Z (a leap day) = 951827696789 ms (date -d @951827696).
        assert_eq!(
            super::rfc3339_ms(951_827_696_789),
            "2000-02-29T12:34:56.789Z"
        );
    }
}
