//! The writer: appends framed records to the active segment, rolls segments, applies `when_full`, and
//! fsyncs per the [`FsyncPolicy`].
//!
//! Must not hand records out or move the acknowledged cursor (that is [`super::reader`] and
//! [`super::ledger`]); the only cursor change it makes is dropping the oldest segment under `drop_oldest`.
//!
//! Full is the smaller of `max_bytes` and what the disk allows ([`super::space`]); a write that fails
//! because the disk is full is treated as full too (the append waits, it does not fail).

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use std::sync::MutexGuard;

use super::space::{SpoolFull, is_disk_full};
use super::state::{FRAME_KEEP, Inner, Segment, seg_path};
use super::{FsyncPolicy, Spool, SpoolError, WhenFull, cursor, frame, io, now_ms};

/// How long a full spool waits before it looks again (it is woken sooner by acknowledgements).
const FULL_WAIT: Duration = Duration::from_millis(200);

impl Spool {
    /// The largest frame `append` accepts with these options.
    fn max_frame(&self) -> usize {
        usize::try_from(self.opts.max_bytes / 4)
            .unwrap_or(usize::MAX)
            .min(frame::FRAME_HEADER + frame::MAX_PAYLOAD)
    }

    /// Append one record; when this returns `Ok(seq)` the record is accepted (written to the kernel, and
    /// to disk per the fsync policy). With `when_full = block` this waits for the sender to free space.
    pub fn append(&self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> Result<u64, SpoolError> {
        if self.read_only {
            return Err(SpoolError::BadOptions("spool opened read-only".into()));
        }
        let size = frame::FRAME_HEADER
            + frame::MIN_PAYLOAD
            + topic.len()
            + key.map_or(0, <[u8]>::len)
            + value.len();
        let max = self.max_frame();
        if size > max || topic.len() > u16::MAX as usize {
            return Err(SpoolError::RecordTooLarge { size, max });
        }
        let need = size as u64 + frame::SEGMENT_MAGIC.len() as u64;
        let mut g = self.lock();
        loop {
            g = self.wait_for_room(g, need)?;
            let seq = g.next_seq;
            let mut bytes = std::mem::take(&mut g.frame);
            if frame::encode_into(seq, now_ms(), topic, key, value, &mut bytes).is_none() {
                return Err(SpoolError::RecordTooLarge { size, max });
            }
            let written = self.write_frame(&mut g, &bytes);
            if bytes.capacity() <= FRAME_KEEP {
                g.frame = bytes;
            }
            match written {
                Ok(()) => {}
                Err(SpoolError::Io { source, .. }) if is_disk_full(&source) => {
                    // The disk filled up under the last measurement (another writer, or block rounding).
                    let total = g.total_bytes;
                    g.space.measure(&self.dir, total);
                    g = self.full_step(g, SpoolFull::Disk)?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            g.next_seq += 1;
            if g.space.full.is_some() {
                let total = g.total_bytes;
                g.space.clear_full(&self.dir, total);
            }
            self.wake(&g);
            return Ok(seq);
        }
    }

    /// Wait (per `when_full`) until `need` bytes fit under the effective limit.
    fn wait_for_room<'a>(
        &'a self,
        mut g: MutexGuard<'a, Inner>,
        need: u64,
    ) -> Result<MutexGuard<'a, Inner>, SpoolError> {
        loop {
            if g.interrupted {
                return Err(SpoolError::Interrupted);
            }
            let total = g.total_bytes;
            let Some(reason) = g.space.room(&self.dir, total, need, self.opts.max_bytes) else {
                return Ok(g);
            };
            if reason == SpoolFull::MaxBytes
                && self.opts.when_full == WhenFull::DropOldest
                && g.segments.len() < 2
            {
                // Nothing left to drop: the one segment may exceed max_bytes (as before).
                return Ok(g);
            }
            g = self.full_step(g, reason)?;
        }
    }

    /// One step of waiting for space: free the acknowledged active segment, or drop the oldest segment
    /// (`drop_oldest`), or else enter the full state and wait for a wake-up or [`FULL_WAIT`].
    fn full_step<'a>(
        &'a self,
        mut g: MutexGuard<'a, Inner>,
        reason: SpoolFull,
    ) -> Result<MutexGuard<'a, Inner>, SpoolError> {
        if g.interrupted {
            return Err(SpoolError::Interrupted);
        }
        if self.free_acked_active(&mut g)? {
            return Ok(g);
        }
        if self.opts.when_full == WhenFull::DropOldest && self.drop_oldest(&mut g)? {
            return Ok(g);
        }
        let total = g.total_bytes;
        g.space
            .set_full(&self.dir, reason, total, self.opts.max_bytes);
        Ok(self.wait_changed(g, FULL_WAIT))
    }

    fn write_frame(&self, g: &mut Inner, bytes: &[u8]) -> Result<(), SpoolError> {
        let segment_bytes = g.space.segment_limit(self.segment_bytes);
        let roll = match g.segments.back() {
            None => true,
            Some(s) => {
                g.writer.is_none()
                    || (s.records > 0 && s.bytes + bytes.len() as u64 > segment_bytes)
            }
        };
        if roll {
            self.roll(g)?;
        }
        let Some(seg) = g.segments.back_mut() else {
            return Err(SpoolError::BadOptions("no active segment".into()));
        };
        let Some(w) = g.writer.as_mut() else {
            return Err(SpoolError::BadOptions("no active segment writer".into()));
        };
        if let Err(e) = w.write_all(bytes) {
            // Take a partial frame back out, so the next append starts on a frame boundary.
            let _ = w.set_len(seg.bytes);
            return Err(io("write", &seg_path(&self.dir, seg.id))(e));
        }
        seg.bytes += bytes.len() as u64;
        seg.records += 1;
        g.total_bytes += bytes.len() as u64;
        g.data_dirty = true;
        match self.opts.fsync {
            FsyncPolicy::Always => self.sync_data(g)?,
            FsyncPolicy::Interval(d) if g.last_sync.elapsed() >= d => self.sync_data(g)?,
            _ => {}
        }
        Ok(())
    }

    /// Close the active segment and start a new one named after the next sequence number.
    fn roll(&self, g: &mut Inner) -> Result<(), SpoolError> {
        if g.writer.is_some() && !matches!(self.opts.fsync, FsyncPolicy::Never) {
            self.sync_data(g)?;
        }
        g.writer = None;
        // The old active segment may be fully acknowledged already: it can go now.
        if let Some(s) = g.segments.back()
            && s.acked_records == s.records
        {
            let id = s.id;
            self.remove_segment(g, id)?;
        }
        let id = g.next_seq;
        let path = seg_path(&self.dir, id);
        // Append mode: after a failed write is cut back (`set_len`), the next one lands at the new end.
        // (std refuses `truncate` with `append`: an empty file left by an earlier failed roll is cut here.)
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("create", &path))?;
        f.set_len(0).map_err(io("truncate", &path))?;
        f.write_all(frame::SEGMENT_MAGIC)
            .map_err(io("write", &path))?;
        if !matches!(self.opts.fsync, FsyncPolicy::Never) {
            f.sync_data().map_err(io("fsync", &path))?;
            cursor::sync_dir(&self.dir).map_err(io("fsync", &self.dir))?;
            tracing::debug!(
                segment = id,
                bytes = frame::SEGMENT_MAGIC.len(),
                "spool data synced"
            );
        }
        let magic = frame::SEGMENT_MAGIC.len() as u64;
        g.segments.push_back(Segment {
            id,
            records: 0,
            acked_records: 0,
            bytes: magic,
        });
        g.total_bytes += magic;
        g.writer = Some(f);
        Ok(())
    }

    pub(super) fn sync_data(&self, g: &mut Inner) -> Result<(), SpoolError> {
        if let (Some(w), Some(s)) = (g.writer.as_ref(), g.segments.back()) {
            w.sync_data()
                .map_err(io("fsync", &seg_path(&self.dir, s.id)))?;
            tracing::debug!(segment = s.id, bytes = s.bytes, "spool data synced");
        }
        g.data_dirty = false;
        g.last_sync = Instant::now();
        Ok(())
    }
}
