//! The writer: appends framed records to the active segment, rolls segments, applies `when_full`, and
//! fsyncs per the [`FsyncPolicy`].
//!
//! Must not hand records out or move the acknowledged cursor (that is [`super::reader`] and
//! [`super::ledger`]); the only cursor change it makes is dropping the oldest segment under `drop_oldest`.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use super::ledger::{Inner, Segment, seg_path};
use super::{FsyncPolicy, Spool, SpoolError, WhenFull, cursor, frame, io, now_ms};

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
        let mut g = self.lock();
        loop {
            if g.interrupted {
                return Err(SpoolError::Interrupted);
            }
            let need = size as u64 + frame::SEGMENT_MAGIC.len() as u64;
            if g.total_bytes + need <= self.opts.max_bytes {
                break;
            }
            match self.opts.when_full {
                WhenFull::Block => {
                    g = self
                        .changed
                        .wait_timeout(g, Duration::from_millis(200))
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
                WhenFull::DropOldest => {
                    if !self.drop_oldest(&mut g)? {
                        break;
                    }
                }
            }
        }
        let seq = g.next_seq;
        let bytes = frame::encode(seq, now_ms(), topic, key, value)
            .ok_or(SpoolError::RecordTooLarge { size, max })?;
        self.write_frame(&mut g, &bytes)?;
        g.next_seq += 1;
        self.changed.notify_all();
        Ok(seq)
    }

    fn write_frame(&self, g: &mut Inner, bytes: &[u8]) -> Result<(), SpoolError> {
        let roll = match g.segments.back() {
            None => true,
            Some(s) => {
                g.writer.is_none()
                    || (s.records > 0 && s.bytes + bytes.len() as u64 > self.segment_bytes)
            }
        };
        if roll {
            self.roll(g)?;
        }
        let Some(seg) = g.segments.back_mut() else {
            return Err(SpoolError::BadOptions("no active segment".into()));
        };
        let path = seg_path(&self.dir, seg.id);
        let Some(w) = g.writer.as_mut() else {
            return Err(SpoolError::BadOptions("no active segment writer".into()));
        };
        if let Err(e) = w.write_all(bytes) {
            // Take a partial frame back out, so the next append starts on a frame boundary.
            let _ = w.set_len(seg.bytes);
            return Err(io("write", &path)(e));
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
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io("create", &path))?;
        f.write_all(frame::SEGMENT_MAGIC)
            .map_err(io("write", &path))?;
        if !matches!(self.opts.fsync, FsyncPolicy::Never) {
            f.sync_data().map_err(io("fsync", &path))?;
            cursor::sync_dir(&self.dir).map_err(io("fsync", &self.dir))?;
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
        }
        g.data_dirty = false;
        g.last_sync = Instant::now();
        Ok(())
    }
}
