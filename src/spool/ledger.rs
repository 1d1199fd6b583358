//! The ledger: which segments exist, how many of their records are acknowledged, where the acknowledged
//! cursor and the sent mark stand, and the deletion of fully acknowledged (or dropped) segments.
//!
//! Must not read or write record bytes (that is [`super::reader`] and [`super::writer`]); it persists the
//! cursor through [`super::cursor`] only.
//!
//! Order on acknowledgement: the cursor is written first (to the kernel, and synced per the fsync policy),
//! then the segments it covers are deleted. The other way round, a process killed in between restarted
//! with the old cursor and the acknowledged records already gone, resuming mid-way at the start of the
//! next segment instead of at the acknowledged cursor.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;

use super::cursor::{Cursor, CursorFile};
use super::state::{Inner, Pos, seg_path};
use super::{FsyncPolicy, Spool, SpoolError, SpoolRecord, SpoolStatus, frame, io, now_ms};

#[cfg(test)]
type SegmentDeleteHook = Box<dyn FnMut(&std::path::Path)>;

#[cfg(test)]
thread_local! {
    /// Test hook, called with the spool directory right after a segment file is deleted: the point where a
    /// test simulates a crash (by copying the directory as it is).
    static AFTER_SEGMENT_DELETE: std::cell::RefCell<Option<SegmentDeleteHook>> =
        const { std::cell::RefCell::new(None) };
}

impl Spool {
    /// Acknowledge `rec` and every record before it. The cursor is persisted first, then fully acknowledged
    /// segments (other than the active one) are deleted. Acknowledging an already acknowledged record does
    /// nothing.
    pub fn ack_through(&self, rec: &SpoolRecord) -> Result<(), SpoolError> {
        let mut g = self.lock();
        if rec.seq < g.acked || g.closed {
            return Ok(());
        }
        g.acked = rec.seq + 1;
        g.sent = g.sent.max(g.acked);
        g.acked_pos = Pos {
            seg: rec.pos.seg,
            offset: rec.next_offset,
            ordinal: rec.pos.ordinal + 1,
        };
        if let Some(s) = g.segments.iter_mut().find(|s| s.id == rec.pos.seg) {
            s.acked_records = (rec.pos.ordinal + 1).min(s.records);
        }
        g.cursor_dirty = true;
        let sync = match self.opts.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(d) => g.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        // The interval is due: sync the data too, which restarts the interval. (Without this, a drain
        // with no appends never restarted it, and every acknowledgement paid an fsync.)
        if sync && matches!(self.opts.fsync, FsyncPolicy::Interval(_)) {
            self.sync_data(&mut g)?;
        }
        // The cursor before the deletions: a crash between the two must not leave a cursor on disk that is
        // behind records already deleted (a restart would then resume past its own acknowledged cursor).
        let mut written = self.write_cursor(&mut g, sync);
        // Deleted only once the cursor is written; or when there is no cursor file yet (the disk was full
        // at open: a restart resends everything anyway), where deleting is what makes room to create it.
        let mut removed = Ok(());
        if written.is_ok() || g.cursor_file.is_none() {
            removed = self.remove_acked_segments(&mut g, rec.pos.seg);
            if written.is_err() && g.cursor_file.is_none() {
                written = self.write_cursor(&mut g, sync);
            }
        }
        g.acked_pos = Self::normalize(&g, g.acked_pos);
        // Appends wait for space: what is acknowledged of the active segment can go too.
        let freed = if g.space.full.is_some() {
            self.free_acked_active(&mut g)
        } else {
            Ok(false)
        };
        self.wake(&g);
        written?;
        removed?;
        freed.map(|_| ())
    }

    /// Delete the segments before `seg`, and `seg` itself when it is fully acknowledged and not the active
    /// one. Call only after the cursor that acknowledges them is written.
    fn remove_acked_segments(&self, g: &mut Inner, seg: u64) -> Result<(), SpoolError> {
        let older: Vec<u64> = g
            .segments
            .iter()
            .take_while(|s| s.id < seg)
            .map(|s| s.id)
            .collect();
        for id in older {
            self.remove_segment(g, id)?;
        }
        let last_id = g.segments.back().map(|s| s.id);
        if let Some(s) = g.segments.iter().find(|s| s.id == seg)
            && s.acked_records == s.records
            && Some(s.id) != last_id
        {
            self.remove_segment(g, seg)?;
        }
        Ok(())
    }

    /// Delete the active segment when every record in it is acknowledged (the next append starts a new
    /// one), so that a full disk gets that space back. The cursor is synced first. True when it deleted.
    pub(super) fn free_acked_active(&self, g: &mut Inner) -> Result<bool, SpoolError> {
        let Some(s) = g.segments.back() else {
            return Ok(false);
        };
        if s.records == 0 || s.acked_records < s.records {
            return Ok(false);
        }
        let (id, bytes) = (s.id, s.bytes);
        // Durable cursor before the data goes; if it cannot be written, the space is still freed
        // (nothing unacknowledged is in that segment; a restart then numbers new records lower).
        if let Err(e) = self.write_cursor(g, true) {
            tracing::warn!(error = %e, "spool cursor write failed before freeing an acknowledged segment");
        }
        self.remove_segment(g, id)?;
        tracing::info!(dir = %self.dir.display(), segment = id, bytes, "spool full: deleted the fully acknowledged active segment");
        Ok(true)
    }

    /// Go back to the first unacknowledged record: the next `read_batch` resends from there.
    pub fn rewind(&self) {
        let mut g = self.lock();
        g.read_pos = g.acked_pos;
        g.reader = None;
    }

    pub(super) fn remove_segment(&self, g: &mut Inner, id: u64) -> Result<(), SpoolError> {
        let Some(i) = g.segments.iter().position(|s| s.id == id) else {
            return Ok(());
        };
        let path = seg_path(&self.dir, id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("delete", &path)(e)),
        }
        #[cfg(test)]
        AFTER_SEGMENT_DELETE.with_borrow_mut(|hook| {
            if let Some(hook) = hook {
                hook(&self.dir);
            }
        });
        if let Some(s) = g.segments.remove(i) {
            g.total_bytes = g.total_bytes.saturating_sub(s.bytes);
        }
        if i == g.segments.len() {
            g.writer = None;
        }
        if g.reader.as_ref().is_some_and(|r| r.pos.seg == id) {
            g.reader = None;
        }
        Ok(())
    }

    /// Drop the oldest segment to make room; false when there is nothing left to drop.
    pub(super) fn drop_oldest(&self, g: &mut Inner) -> Result<bool, SpoolError> {
        if g.segments.len() < 2 {
            return Ok(false);
        }
        let Some(first) = g.segments.front() else {
            return Ok(false);
        };
        let (id, lost) = (first.id, first.records - first.acked_records);
        let next_id = g.segments.get(1).map_or(g.next_seq, |s| s.id);
        self.remove_segment(g, id)?;
        g.dropped += lost;
        if g.acked < next_id {
            g.acked = next_id;
            g.acked_pos = Pos {
                seg: next_id,
                offset: frame::SEGMENT_MAGIC.len() as u64,
                ordinal: 0,
            };
        }
        g.sent = g.sent.max(g.acked);
        if g.read_pos.seg == id {
            g.read_pos = g.acked_pos;
        }
        g.cursor_dirty = true;
        tracing::warn!(dir = %self.dir.display(), dropped = lost, total_dropped = g.dropped, "spool full: dropped the oldest segment");
        Ok(true)
    }

    /// Move a position past the end of its segment (or out of a deleted one) to where the next record is.
    pub(super) fn normalize(g: &Inner, pos: Pos) -> Pos {
        let magic = frame::SEGMENT_MAGIC.len() as u64;
        let mut it = g.segments.iter().skip_while(|s| s.id < pos.seg);
        match it.next() {
            Some(s) if s.id == pos.seg => {
                if pos.offset < s.bytes {
                    pos
                } else {
                    it.next().map_or(pos, |n| Pos {
                        seg: n.id,
                        offset: magic,
                        ordinal: 0,
                    })
                }
            }
            Some(s) => Pos {
                seg: s.id,
                offset: magic,
                ordinal: 0,
            },
            None => pos,
        }
    }

    pub(super) fn write_cursor(&self, g: &mut Inner, sync: bool) -> Result<(), SpoolError> {
        if self.read_only {
            return Ok(());
        }
        let c = Cursor {
            acked: g.acked,
            sent: g.sent,
        };
        match g.cursor_file.as_mut() {
            Some(f) => f.write(c, sync).map_err(io("write cursor", &self.dir))?,
            // Not created yet (the disk was full at open): creating it writes `c` durably.
            None => self.open_cursor(g)?,
        }
        if sync {
            g.cursor_dirty = false;
            tracing::debug!(acked = c.acked, sent = c.sent, "spool cursor synced");
        }
        Ok(())
    }

    /// Create (or migrate) the cursor file and open it for in-place writes, writing the cursor durably.
    pub(super) fn open_cursor(&self, g: &mut Inner) -> Result<(), SpoolError> {
        let c = Cursor {
            acked: g.acked,
            sent: g.sent,
        };
        let f = CursorFile::open(&self.dir, c).map_err(io("write cursor", &self.dir))?;
        g.cursor_file = Some(f);
        g.cursor_dirty = false;
        tracing::debug!(acked = c.acked, sent = c.sent, "spool cursor synced");
        Ok(())
    }

    /// The sequence number the next append gets ([`SpoolStatus::next_seq`]), without the rest of
    /// [`Spool::status`], which opens a segment for the oldest record's time: for once-per-window callers.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Every sequence number below this one is acknowledged ([`SpoolStatus::acked_seq`]), without the
    /// rest of [`Spool::status`].
    pub fn acked_seq(&self) -> u64 {
        self.lock().acked
    }

    /// Counters and gauges of the spool now.
    pub fn status(&self) -> SpoolStatus {
        let mut g = self.lock();
        let total = g.total_bytes;
        g.space.refresh_now(&self.dir, total);
        let records = g.segments.iter().map(|s| s.records - s.acked_records).sum();
        let oldest = if records == 0 {
            None
        } else {
            self.timestamp_at(&g, Self::normalize(&g, g.acked_pos))
        };
        SpoolStatus {
            records,
            bytes: g.total_bytes,
            segments: g.segments.len() as u64,
            oldest_unacked_ms: oldest,
            oldest_unacked_age_ms: oldest.map(|t| now_ms().saturating_sub(t)),
            next_seq: g.next_seq,
            acked_seq: g.acked,
            dropped: g.dropped,
            corrupt_records: g.corrupt,
            possible_duplicates: g.possible_duplicates,
            max_bytes: self.opts.max_bytes,
            when_full: self.opts.when_full,
            fsync: self.opts.fsync.to_string(),
            full: g.space.full.map(|(r, _)| r),
            full_for_ms: g
                .space
                .full
                .map(|(_, since)| since.elapsed().as_millis() as u64),
            full_disk_events: g.space.episodes.0,
            full_max_bytes_events: g.space.episodes.1,
            limit_bytes: g.space.limit(self.opts.max_bytes).0,
            disk_free_bytes: g.space.free_now(total),
            reserve_bytes: g.space.reserve,
        }
    }

    fn timestamp_at(&self, g: &Inner, pos: Pos) -> Option<u64> {
        let seg = g.segments.iter().find(|s| s.id == pos.seg)?;
        if pos.offset + (frame::FRAME_HEADER + 16) as u64 > seg.bytes {
            return None;
        }
        let f = File::open(seg_path(&self.dir, pos.seg)).ok()?;
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, pos.offset + frame::FRAME_HEADER as u64 + 8)
            .ok()?;
        Some(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{SpoolOptions, WhenFull};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    fn tmpdir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "avro-edge-ledger-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A crash right after an acknowledgement deletes a segment (SIGKILL: what was written to the kernel
    /// stays) must find the cursor of that acknowledgement on disk: a restart resumes exactly at an
    /// acknowledgement boundary, never past its cursor at the start of the next surviving segment.
    #[test]
    fn a_crash_right_after_a_segment_is_deleted_resumes_at_the_acknowledged_cursor() {
        let dir = tmpdir("ack-delete");
        let opts = || SpoolOptions {
            fsync: FsyncPolicy::Interval(Duration::from_secs(3600)),
            max_bytes: 1 << 20,
            when_full: WhenFull::Block,
            segment_bytes: Some(4096),
            reserve_bytes: None,
        };
        let snapshots = std::rc::Rc::new(std::cell::RefCell::new(Vec::<PathBuf>::new()));
        let hook_snapshots = snapshots.clone();
        let root = dir.clone();
        AFTER_SEGMENT_DELETE.set(Some(Box::new(move |spool_dir: &Path| {
            let mut all = hook_snapshots.borrow_mut();
            let snap = root.join(format!("crash-{}", all.len()));
            fs::create_dir_all(&snap).unwrap();
            for e in fs::read_dir(spool_dir).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() && e.file_name() != "lock" {
                    fs::copy(e.path(), snap.join(e.file_name())).unwrap();
                }
            }
            all.push(snap);
        })));
        // About 100 records a segment; acknowledgements every 150 records, so they fall mid-segment.
        let spool_dir = dir.join("spool");
        let (spool, _) = Spool::open(&spool_dir, opts()).unwrap();
        for i in 0..1000u64 {
            spool
                .append("t", None, format!("reading-{i:04}").as_bytes())
                .unwrap();
        }
        assert!(
            fs::read_dir(&spool_dir).unwrap().count() > 8,
            "many segments"
        );
        let mut boundaries = vec![0];
        let mut handed = Vec::new();
        while handed.len() < 1000 {
            handed.extend(spool.read_batch(1000, 1 << 20, Duration::ZERO).unwrap());
        }
        for last in (149..1000).step_by(150) {
            spool.ack_through(&handed[last]).unwrap();
            boundaries.push(last as u64 + 1);
        }
        AFTER_SEGMENT_DELETE.set(None);
        drop(spool);
        let snapshots = snapshots.borrow().clone();
        assert!(snapshots.len() >= 5, "segments were deleted");
        for snap in &snapshots {
            let (spool, report) = Spool::open(snap, opts()).unwrap();
            let mut seqs = Vec::new();
            loop {
                let b = spool.read_batch(1000, 1 << 20, Duration::ZERO).unwrap();
                if b.is_empty() {
                    break;
                }
                seqs.extend(b.iter().map(|r| r.seq));
            }
            let first = seqs[0];
            assert!(
                boundaries.contains(&first),
                "{}: resumes at {first}, not at an acknowledgement ({report:?})",
                snap.display()
            );
            assert_eq!(
                seqs,
                (first..1000).collect::<Vec<_>>(),
                "{}",
                snap.display()
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
