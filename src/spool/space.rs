//! Room for appends: the spool's effective limit is the smaller of `max_bytes` and what its file system
//! allows (the segment bytes it holds plus the free space, minus a reserve), and the "full" state that
//! appends wait in.
//!
//! Must not write or delete anything (the writer and the ledger do): it measures (`statvfs`, through
//! `rustix`), keeps the state, and logs the transitions.
//!
//! The free space is measured at most once a second (looking at the clock every 32 appends) while appends
//! fit by the last measurement (our own writes are subtracted from it in between), and again whenever an append would not fit, so a full spool
//! notices freed space (its own acknowledged segments, or space other software gave back) on the next
//! wake-up. The reserve (default: 1 MiB, but at most 1/16 of the file system) is left free for everything
//! else that lives there; a write that fails with "no space" anyway (another writer took the reserve) counts
//! as full too: the append waits instead of failing.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Why appends wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoolFull {
    /// The file system has no more room than the reserve.
    Disk,
    /// The segments hold `max_bytes`.
    MaxBytes,
}

impl SpoolFull {
    /// The reason as the metric label and log field spell it: `disk` or `max_bytes`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpoolFull::Disk => "disk",
            SpoolFull::MaxBytes => "max_bytes",
        }
    }
}

impl std::fmt::Display for SpoolFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default reserve: 1 MiB, at most 1/16 of a file system of `fs_bytes`.
pub fn default_reserve(fs_bytes: u64) -> u64 {
    (1 << 20).min(fs_bytes / 16)
}

/// How often the free space is measured while appends fit.
const RECHECK: Duration = Duration::from_secs(1);
/// Appends between two looks at the clock (reading it on every append costs ~5 % of an append).
const CLOCK_EVERY: u32 = 32;

/// Free-space bookkeeping, behind the spool's mutex.
#[derive(Debug)]
pub(super) struct Space {
    /// The configured reserve; `None`: [`default_reserve`] of the file system.
    reserve_opt: Option<u64>,
    /// The reserve in effect (known after the first measurement).
    pub(super) reserve: u64,
    /// Segment bytes at the last measurement + free space then: what the segments could hold with no
    /// reserve. `None` when the file system cannot be measured (then only `max_bytes` and write errors
    /// count).
    room: Option<u64>,
    checked: Option<Instant>,
    /// Calls of [`Space::refresh`] since the clock was last read (it is read every [`CLOCK_EVERY`]).
    calls: u32,
    /// Set when appends wait (or a write found the disk full), with since when.
    pub(super) full: Option<(SpoolFull, Instant)>,
    /// Times the spool became full since open: (disk, max_bytes).
    pub(super) episodes: (u64, u64),
}

impl Space {
    pub(super) fn new(reserve: Option<u64>) -> Space {
        Space {
            reserve_opt: reserve,
            reserve: reserve.unwrap_or(0),
            room: None,
            checked: None,
            calls: 0,
            full: None,
            episodes: (0, 0),
        }
    }

    /// Measure the file system of `dir` now; `total` is the spool's segment bytes.
    pub(super) fn measure(&mut self, dir: &Path, total: u64) {
        self.checked = Some(Instant::now());
        match rustix::fs::statvfs(dir) {
            Ok(st) => {
                let frsize = if st.f_frsize > 0 {
                    st.f_frsize
                } else {
                    st.f_bsize
                };
                let free = st.f_bavail.saturating_mul(frsize);
                self.reserve = self
                    .reserve_opt
                    .unwrap_or_else(|| default_reserve(st.f_blocks.saturating_mul(frsize)));
                self.room = Some(total.saturating_add(free));
            }
            Err(e) => {
                if self.room.is_some() {
                    tracing::warn!(dir = %dir.display(), error = %e, "spool cannot measure its file system's free space");
                }
                self.room = None;
            }
        }
    }

    /// Measure again when the last measurement is older than a second (or there is none); the clock is
    /// read every [`CLOCK_EVERY`] calls. True when it measured.
    pub(super) fn refresh(&mut self, dir: &Path, total: u64) -> bool {
        self.calls = self.calls.wrapping_add(1);
        let stale = match self.checked {
            None => true,
            Some(t) => self.calls.is_multiple_of(CLOCK_EVERY) && t.elapsed() >= RECHECK,
        };
        if stale {
            self.measure(dir, total);
        }
        stale
    }

    /// Measure again when the last measurement is older than a second (reading the clock now).
    pub(super) fn refresh_now(&mut self, dir: &Path, total: u64) {
        if self.checked.is_none_or(|t| t.elapsed() >= RECHECK) {
            self.measure(dir, total);
        }
    }

    /// The free space now, by the last measurement less what the spool wrote since.
    pub(super) fn free_now(&self, total: u64) -> Option<u64> {
        self.room.map(|room| room.saturating_sub(total))
    }

    /// Segment bytes the disk allows (free space less the reserve, plus what the segments hold).
    pub(super) fn disk_cap(&self) -> Option<u64> {
        self.room.map(|room| room.saturating_sub(self.reserve))
    }

    /// The effective limit of the segments' total size, and what sets it.
    pub(super) fn limit(&self, max_bytes: u64) -> (u64, SpoolFull) {
        match self.disk_cap() {
            Some(cap) if cap < max_bytes => (cap, SpoolFull::Disk),
            _ => (max_bytes, SpoolFull::MaxBytes),
        }
    }

    /// Whether `need` more bytes fit: `None` if they do, else what is full. Measures again when they do not
    /// fit by the last measurement, or when it is stale.
    pub(super) fn room(
        &mut self,
        dir: &Path,
        total: u64,
        need: u64,
        max_bytes: u64,
    ) -> Option<SpoolFull> {
        let measured = self.refresh(dir, total);
        if total + need <= self.limit(max_bytes).0 {
            return None;
        }
        if !measured && total + need <= max_bytes {
            self.measure(dir, total);
        }
        let (limit, reason) = self.limit(max_bytes);
        (total + need > limit).then_some(reason)
    }

    /// Enter (or stay in) the full state; logs the transition.
    pub(super) fn set_full(&mut self, dir: &Path, reason: SpoolFull, total: u64, max_bytes: u64) {
        match self.full {
            Some((r, _)) if r == reason => return,
            Some((_, since)) => self.full = Some((reason, since)),
            None => {
                self.full = Some((reason, Instant::now()));
                match reason {
                    SpoolFull::Disk => self.episodes.0 += 1,
                    SpoolFull::MaxBytes => self.episodes.1 += 1,
                }
            }
        }
        let (limit, _) = self.limit(max_bytes);
        tracing::warn!(
            dir = %dir.display(),
            reason = reason.as_str(),
            spool_bytes = total,
            limit_bytes = limit,
            max_bytes,
            disk_free_bytes = self.free_now(total).unwrap_or(0),
            reserve_bytes = self.reserve,
            "spool full: appends wait for space"
        );
    }

    /// Leave the full state (after an append went through); logs the transition.
    pub(super) fn clear_full(&mut self, dir: &Path, total: u64) {
        if let Some((reason, since)) = self.full.take() {
            tracing::info!(
                dir = %dir.display(),
                reason = reason.as_str(),
                waited_ms = since.elapsed().as_millis() as u64,
                spool_bytes = total,
                disk_free_bytes = self.free_now(total).unwrap_or(0),
                "spool has room again: appends resume"
            );
        }
    }

    /// Segment size to roll at: `segment_bytes`, but at most a quarter of what the disk allows (4 KiB at
    /// least), so that acknowledged segments can be deleted while the disk is the limit.
    pub(super) fn segment_limit(&self, segment_bytes: u64) -> u64 {
        match self.disk_cap() {
            Some(cap) => segment_bytes.min((cap / 4).max(4096)),
            None => segment_bytes,
        }
    }
}

/// Whether an I/O error says the file system (or the user's quota) is full.
pub(super) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
